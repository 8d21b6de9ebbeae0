package frontend

import (
	"github.com/prometheus/prometheus/promql/parser"
)

// span is a range of a range query's steps: start and end are steps of
// the query (start + k*step), end included.
type span struct{ start, end int64 }

// splitByInterval cuts the steps of [start, end] (step apart) at the
// multiples of interval since the epoch: each piece holds the steps of
// one interval, the first and last possibly fewer. Every step of the
// query is in exactly one piece, so the pieces' answers joined are the
// query's (PromQL evaluates each step on its own). Cortex's
// splitQuery and nextIntervalBoundary, in milliseconds. interval <= 0
// gives one piece.
func splitByInterval(start, end, step, interval int64) []span {
	if step <= 0 {
		return []span{{start, end}}
	}
	if interval <= 0 {
		return []span{{start, start + (end-start)/step*step}}
	}
	end = start + (end-start)/step*step // the last step
	var out []span
	for s := start; s <= end; {
		e := lastStepBefore(s, step, interval)
		if e >= end {
			e = end
		}
		out = append(out, span{s, e})
		s = e + step
	}
	return out
}

// lastStepBefore returns the last step (t + k*step, k >= 0) before the
// next multiple of interval after t.
func lastStepBefore(t, step, interval int64) int64 {
	next := (floorDiv(t, interval) + 1) * interval
	return t + (next-1-t)/step*step
}

// floorDiv is a/b rounded down (timestamps before 1970 are negative).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// floorMod is a - floorDiv(a, b)*b, in [0, b).
func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// exprInfo is what the frontend needs to know of a query's expression.
type exprInfo struct {
	// startEnd: it uses @ start() or @ end(), which name the query's
	// range, so a piece must get them as the times of the whole query.
	startEnd bool
	// at: it uses @ with a fixed time (after start() and end() are
	// resolved); maxAt is the latest such time, in milliseconds.
	at    bool
	maxAt int64
	// negativeOffset: it looks at samples after the evaluation time.
	negativeOffset bool
	// rangeFunc: it calls start(), end() or range() (Prometheus 3's
	// experimental functions), whose values are the query's range: it is
	// neither split nor cached.
	rangeFunc bool
}

func inspect(expr parser.Expr) exprInfo {
	var info exprInfo
	visit := func(ts *int64, startOrEnd parser.ItemType, offset int64) {
		if startOrEnd == parser.START || startOrEnd == parser.END {
			info.startEnd = true
		}
		if ts != nil {
			if !info.at || *ts > info.maxAt {
				info.maxAt = *ts
			}
			info.at = true
		}
		if offset < 0 {
			info.negativeOffset = true
		}
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			visit(n.Timestamp, n.StartOrEnd, int64(n.OriginalOffset))
		case *parser.SubqueryExpr:
			visit(n.Timestamp, n.StartOrEnd, int64(n.OriginalOffset))
		case *parser.Call:
			switch n.Func.Name {
			case "start", "end", "range":
				info.rangeFunc = true
			}
		}
		return nil
	})
	return info
}

// resolveStartEnd replaces @ start() and @ end() in expr with the
// query's start and end (milliseconds), as Mimir does before it splits:
// each piece must see the times of the whole query, not its own.
func resolveStartEnd(expr parser.Expr, start, end int64) {
	set := func(ts **int64, startOrEnd *parser.ItemType) {
		switch *startOrEnd {
		case parser.START:
			v := start
			*ts = &v
		case parser.END:
			v := end
			*ts = &v
		default:
			return
		}
		*startOrEnd = 0
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			set(&n.Timestamp, &n.StartOrEnd)
		case *parser.SubqueryExpr:
			set(&n.Timestamp, &n.StartOrEnd)
		}
		return nil
	})
}
