package frontend

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/myelindb/myelin/server/cpuslot"
	"github.com/myelindb/myelin/server/queryshard"
)

// Query sharding, after Mimir's: a query whose data is all read inside
// shardable aggregations is rewritten so that each such aggregation runs
// as n queries over disjoint sets of series (a shard selector,
// queryshard, in each of their vector selectors), and the frontend's own
// PromQL engine evaluates the rest of the query over the shards' answers:
//
//	sum by (job) (rate(x[5m]))  ->  sum by (job) (E0)
//	                                E0 = sum by (job) (rate(x{__query_shard__="1_of_n"}[5m])), ... "n_of_n"
//	count(...)                  ->  sum(E0),  E0 = count(... shard i ...)
//	avg by (g) (...)            ->  sum by (g) (E0) / sum by (g) (E1),  E0 = sum, E1 = count of each shard
//	min, max, topk(k), bottomk(k): the same aggregation of the shards' answers
//
// E0, E1 are embedded selectors __embedded_queries__{__embedded_id__="0"}:
// the frontend's queryable answers them with the union of the shards'
// series (Select runs the shards through the queue in parallel).
//
// Shardable: sum, count, min, max, avg, topk and bottomk (k a number) of
// an expression that reads each series on its own (selectors,
// per-series functions, arithmetic with scalars; no aggregation,
// vector-vector operation, subquery of an aggregation, absent, scalar,
// histogram_quantile, ...) and reads at least one selector. Everything
// outside such aggregations must read no data (numbers, operations and
// functions over the aggregations' results), or the query is not
// sharded. A query whose shards, or whose evaluation over them, give an
// annotation runs again unsharded: annotations name positions in the
// query, which the rewriting moves.
const (
	embeddedName  = "__embedded_queries__"
	embeddedLabel = "__embedded_id__"
)

// shardPlan is a query rewritten for n shards.
type shardPlan struct {
	n        int        // shards of each embedded query
	outer    string     // evaluated by the frontend's engine
	embedded [][]string // by embedded ID: the query of each shard
}

// planShards rewrites query for n shards; ok is false if it cannot be
// sharded.
func planShards(p parser.Parser, query string, n int, delayedNameRemoval bool) (*shardPlan, bool) {
	expr, err := p.ParseExpr(query)
	if err != nil {
		return nil, false
	}
	pl := &planner{n: n, plan: &shardPlan{}, delayedNameRemoval: delayedNameRemoval}
	out, ok := pl.rewrite(expr)
	if !ok || len(pl.plan.embedded) == 0 {
		return nil, false
	}
	pl.plan.outer = out.String()
	pl.plan.n = n
	return pl.plan, true
}

type planner struct {
	n                  int
	plan               *shardPlan
	delayedNameRemoval bool
}

// rewrite returns node with its shardable aggregations replaced by
// embedded selectors; ok is false if data would still be read outside
// them.
func (p *planner) rewrite(node parser.Expr) (parser.Expr, bool) {
	switch n := node.(type) {
	case *parser.AggregateExpr:
		if shardable(n) {
			return p.embed(n), true
		}
		if n.Param != nil && hasSelector(n.Param) {
			return nil, false
		}
		inner, ok := p.rewrite(n.Expr)
		if !ok {
			return nil, false
		}
		n.Expr = inner
		return n, true
	case *parser.BinaryExpr:
		lhs, ok1 := p.rewrite(n.LHS)
		rhs, ok2 := p.rewrite(n.RHS)
		if !ok1 || !ok2 {
			return nil, false
		}
		n.LHS, n.RHS = lhs, rhs
		return n, true
	case *parser.ParenExpr:
		inner, ok := p.rewrite(n.Expr)
		if !ok {
			return nil, false
		}
		n.Expr = inner
		return n, true
	case *parser.UnaryExpr:
		inner, ok := p.rewrite(n.Expr)
		if !ok {
			return nil, false
		}
		n.Expr = inner
		return n, true
	case *parser.Call:
		switch n.Func.Name {
		case "start", "end", "range":
			return nil, false // the query's range: a piece has another one
		}
		if p.delayedNameRemoval {
			return nil, false // it could read a __name__ the shards dropped
		}
		for i, a := range n.Args {
			r, ok := p.rewrite(a)
			if !ok {
				return nil, false
			}
			n.Args[i] = r
		}
		return n, true
	case *parser.NumberLiteral, *parser.StringLiteral:
		return n, true
	}
	// Selectors, subqueries and anything else read data or may: not
	// outside a shardable aggregation.
	return nil, false
}

// embed replaces a shardable aggregation with the aggregation of its
// shards' answers.
func (p *planner) embed(a *parser.AggregateExpr) parser.Expr {
	outerOf := func(op parser.ItemType, id int) *parser.AggregateExpr {
		return &parser.AggregateExpr{Op: op, Expr: embeddedSelector(id), Param: a.Param, Grouping: a.Grouping, Without: a.Without}
	}
	switch a.Op {
	case parser.COUNT:
		return outerOf(parser.SUM, p.add(a, parser.COUNT))
	case parser.AVG:
		sum := outerOf(parser.SUM, p.add(a, parser.SUM))
		count := outerOf(parser.SUM, p.add(a, parser.COUNT))
		return &parser.BinaryExpr{Op: parser.DIV, LHS: sum, RHS: count,
			VectorMatching: &parser.VectorMatching{Card: parser.CardOneToOne}}
	}
	return outerOf(a.Op, p.add(a, a.Op))
}

// add makes the n shard queries of a with op and returns their ID.
func (p *planner) add(a *parser.AggregateExpr, op parser.ItemType) int {
	orig := a.Op
	a.Op = op
	defer func() { a.Op = orig }()
	var sels []*parser.VectorSelector
	parser.Inspect(a.Expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			sels = append(sels, vs)
		}
		return nil
	})
	qs := make([]string, p.n)
	for i := range p.n {
		m := queryshard.Shard{Index: uint64(i), Count: uint64(p.n)}.Matcher()
		for _, vs := range sels {
			vs.LabelMatchers = append(vs.LabelMatchers, m)
		}
		qs[i] = a.String()
		for _, vs := range sels {
			vs.LabelMatchers = vs.LabelMatchers[:len(vs.LabelMatchers)-1]
		}
	}
	p.plan.embedded = append(p.plan.embedded, qs)
	return len(p.plan.embedded) - 1
}

func embeddedSelector(id int) *parser.VectorSelector {
	return &parser.VectorSelector{Name: embeddedName, LabelMatchers: []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, embeddedName),
		labels.MustNewMatcher(labels.MatchEqual, embeddedLabel, strconv.Itoa(id)),
	}}
}

// shardable reports whether an aggregation can run as shards.
func shardable(a *parser.AggregateExpr) bool {
	switch a.Op {
	case parser.SUM, parser.COUNT, parser.MIN, parser.MAX, parser.AVG:
	case parser.TOPK, parser.BOTTOMK:
		if _, ok := unparen(a.Param).(*parser.NumberLiteral); !ok {
			return false
		}
	default:
		return false
	}
	return hasSelector(a.Expr) && perSeries(a.Expr)
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// perSeries reports whether e computes each output series from one input
// series alone, so that it gives the same series over a shard as over
// all series restricted to the shard.
func perSeries(e parser.Expr) bool {
	switch n := e.(type) {
	case *parser.VectorSelector:
		for _, m := range n.LabelMatchers {
			if m.Name == queryshard.Label {
				return false
			}
		}
		return true
	case *parser.MatrixSelector:
		return perSeries(n.VectorSelector)
	case *parser.SubqueryExpr:
		return perSeries(n.Expr)
	case *parser.ParenExpr:
		return perSeries(n.Expr)
	case *parser.UnaryExpr:
		return perSeries(n.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true
	case *parser.BinaryExpr:
		if n.LHS.Type() == parser.ValueTypeVector && n.RHS.Type() == parser.ValueTypeVector {
			return false
		}
		return perSeries(n.LHS) && perSeries(n.RHS)
	case *parser.Call:
		if !perSeriesFuncs[n.Func.Name] {
			return false
		}
		for _, a := range n.Args {
			if !perSeries(a) {
				return false
			}
		}
		return true
	}
	return false
}

// perSeriesFuncs are the functions whose output series each come from
// one input series (or that take no series).
var perSeriesFuncs = map[string]bool{}

func init() {
	for _, f := range []string{
		"abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "round", "sgn", "clamp", "clamp_min", "clamp_max",
		"acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad", "pi",
		"rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "changes", "resets",
		"avg_over_time", "count_over_time", "last_over_time", "max_over_time", "min_over_time", "present_over_time",
		"quantile_over_time", "stddev_over_time", "stdvar_over_time", "sum_over_time", "mad_over_time",
		"double_exponential_smoothing", "timestamp", "time", "label_replace", "label_join",
		"day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month", "year",
	} {
		perSeriesFuncs[f] = true
	}
}

// hasSelector reports whether e reads data.
func hasSelector(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if _, ok := node.(*parser.VectorSelector); ok {
			found = true
		}
		return nil
	})
	return found
}

// errShardFallback: the sharded run gave annotations (or native
// histograms); the piece runs unsharded.
var errShardFallback = errors.New("frontend: run unsharded")

// shardRun is one evaluation of a plan for one piece (or instant query).
type shardRun struct {
	f          *Frontend
	req        *request
	plan       *shardPlan
	start, end int64 // of the piece; equal for an instant query

	// legs are the embedded queries' shards, all started at once (launch)
	// and waited for by Select.
	legs   []*leg
	cancel context.CancelFunc // stops the shards still running
	wg     sync.WaitGroup     // the shards' goroutines

	mu     sync.Mutex
	failed *response // the first shard the API did not answer with success
	annots bool
	stats  *queryStats
	shards int
}

// leg is the shards of one embedded query.
type leg struct {
	done    chan struct{} // closed when every shard has answered or failed
	results []*result     // by shard; nil for one that failed
}

// launch runs the shards of every embedded query at once: the engine
// selects its embedded queries one after the other, and a query with
// two legs (avg: sum and count) would otherwise wait for the first's
// shards before it starts the second's.
func (r *shardRun) launch(ctx context.Context) {
	// The shards run beside the engine, which holds its slot until its
	// first select pauses it: each takes a slot of its own (under the
	// engine's, they would share it, and its checkpoint counter).
	ctx, r.cancel = context.WithCancel(cpuslot.Detach(ctx))
	for _, queries := range r.plan.embedded {
		l := &leg{done: make(chan struct{}), results: make([]*result, len(queries))}
		r.legs = append(r.legs, l)
		var shards sync.WaitGroup
		for i, q := range queries {
			shards.Add(1)
			r.wg.Go(func() {
				defer shards.Done()
				resp, err := r.f.call(ctx, r.req, q, r.start, r.end, false)
				switch {
				case err != nil:
				case resp.code != http.StatusOK:
					r.fail(resp)
				case resp.res == nil || resp.res.resultType != "matrix" && resp.res.resultType != "vector":
					r.fail(resp)
				default:
					l.results[i] = resp.res
					return
				}
				r.cancel()
			})
		}
		r.wg.Go(func() {
			shards.Wait()
			close(l.done)
		})
	}
}

// stop cancels the shards still running and waits for them.
func (r *shardRun) stop() {
	r.cancel()
	r.wg.Wait()
}

// callSharded evaluates the plan over [start, end] (an instant query at
// start): it returns the answer, or the response of a shard the API
// refused, or an error (errShardFallback: run it unsharded).
func (f *Frontend) callSharded(ctx context.Context, req *request, plan *shardPlan, start, end int64) (*result, *response, error) {
	run := &shardRun{f: f, req: req, plan: plan, start: start, end: end}
	// The frontend's engine evaluates under a CPU slot of the tenant's,
	// paused while it waits for the shards (shardRun.Select), which take
	// slots of their own.
	sl, ctx, err := f.acquire(ctx, req.tenant)
	if err != nil {
		return nil, nil, err
	}
	defer sl.Release()
	var q promql.Query
	if req.instant {
		q, err = f.engine.NewInstantQuery(ctx, run, nil, plan.outer, timestamp.Time(start))
	} else {
		q, err = f.engine.NewRangeQuery(ctx, run, nil, plan.outer, timestamp.Time(start), timestamp.Time(end),
			msDuration(req.step))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errShardFallback, err)
	}
	defer q.Close()
	run.launch(ctx)
	defer run.stop()
	res := q.Exec(ctx)
	f.m.sharded.Inc()
	f.m.shards.Add(float64(run.shards))
	run.mu.Lock()
	failed, annots, st := run.failed, run.annots, run.stats
	run.mu.Unlock()
	switch {
	case failed != nil:
		return nil, failed, nil
	case ctx.Err() != nil:
		return nil, nil, ctx.Err()
	case res.Err != nil:
		return nil, nil, fmt.Errorf("%w: %v", errShardFallback, res.Err)
	case annots || len(res.Warnings) > 0:
		return nil, nil, errShardFallback
	}
	out := &result{stats: st}
	switch v := res.Value.(type) {
	case promql.Matrix:
		out.resultType = "matrix"
		out.series = make([]series, 0, len(v))
		for _, s := range v {
			if len(s.Histograms) > 0 {
				return nil, nil, errShardFallback
			}
			fs := make([]fpoint, len(s.Floats))
			for i, p := range s.Floats {
				fs[i] = fpoint{t: p.T, v: p.F}
			}
			out.series = append(out.series, series{metric: appendLabels(nil, s.Metric), lbls: s.Metric, floats: fs})
		}
	case promql.Vector:
		out.resultType = "vector"
		out.series = make([]series, 0, len(v))
		for _, s := range v {
			if s.H != nil {
				return nil, nil, errShardFallback
			}
			out.series = append(out.series, series{metric: appendLabels(nil, s.Metric), lbls: s.Metric, floats: []fpoint{{t: s.T, v: s.F}}})
		}
	default:
		return nil, nil, errShardFallback
	}
	return out, nil, nil
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// appendLabels writes a label set as the API's codec does: an object of
// names and values in label order.
func appendLabels(dst []byte, lset labels.Labels) []byte {
	dst = append(dst, '{')
	i := 0
	lset.Range(func(l labels.Label) {
		if i > 0 {
			dst = append(dst, ',')
		}
		i++
		dst = appendString(dst, l.Name)
		dst = append(dst, ':')
		dst = appendString(dst, l.Value)
	})
	return append(dst, '}')
}

// Querier implements storage.Queryable for the frontend's engine.
func (r *shardRun) Querier(int64, int64) (storage.Querier, error) { return r, nil }

// Select answers an embedded selector with the union of its shards'
// series, each with a stale marker after every gap so that the engine's
// lookback never carries a value of one step into the next.
func (r *shardRun) Select(ctx context.Context, sortSeries bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	id := -1
	for _, m := range ms {
		if m.Name == embeddedLabel {
			id, _ = strconv.Atoi(m.Value)
		}
	}
	if id < 0 || id >= len(r.plan.embedded) {
		return storage.ErrSeriesSet(fmt.Errorf("frontend: no embedded query %v", ms))
	}
	l := r.legs[id]
	// The shards need slots: this goroutine holds none while it waits.
	sl := cpuslot.FromContext(ctx)
	sl.Pause()
	select {
	case <-l.done:
	case <-ctx.Done():
		// The shards may still write their results: not read.
		sl.Resume()
		return storage.ErrSeriesSet(ctx.Err())
	}
	if err := sl.Resume(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	r.mu.Lock()
	r.shards += len(l.results)
	r.mu.Unlock()
	results := l.results
	var out []storage.Series
	for _, res := range results {
		if res == nil {
			if err := ctx.Err(); err != nil {
				return storage.ErrSeriesSet(err)
			}
			return storage.ErrSeriesSet(errors.New("frontend: shard failed"))
		}
		r.mu.Lock()
		if len(res.warnings) > 0 || len(res.infos) > 0 {
			r.annots = true
		}
		if res.stats != nil {
			if r.stats == nil {
				r.stats = &queryStats{}
			}
			r.stats.add(res.stats)
		}
		r.mu.Unlock()
		for _, s := range res.series {
			if len(s.hists) > 0 {
				r.mu.Lock()
				r.annots = true // not sharded: fall back
				r.mu.Unlock()
				continue
			}
			out = append(out, storage.NewListSeries(s.lbls, r.samples(s.floats)))
		}
	}
	if sortSeries {
		slices.SortStableFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &sliceSeriesSet{series: out, i: -1}
}

// samples are a shard series' points with a stale marker at the step
// after each point not followed by one.
func (r *shardRun) samples(ps []fpoint) []chunks.Sample {
	out := make([]chunks.Sample, 0, len(ps)+1)
	stale := math.Float64frombits(value.StaleNaN)
	for i, p := range ps {
		out = append(out, fsample{t: p.t, f: p.v})
		next := p.t + r.req.step
		if !r.req.instant && next <= r.end && (i+1 == len(ps) || ps[i+1].t != next) {
			out = append(out, fsample{t: next, f: stale})
		}
	}
	return out
}

func (r *shardRun) fail(resp *response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed == nil {
		r.failed = resp
	}
}

func (r *shardRun) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (r *shardRun) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (r *shardRun) Close() error { return nil }

type sliceSeriesSet struct {
	series []storage.Series
	i      int
}

func (s *sliceSeriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *sliceSeriesSet) At() storage.Series                { return s.series[s.i] }
func (s *sliceSeriesSet) Err() error                        { return nil }
func (s *sliceSeriesSet) Warnings() annotations.Annotations { return nil }

// fsample is a float sample for storage.NewListSeries.
type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) F() float64                    { return s.f }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }
