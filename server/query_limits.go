package server

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/server/limits"
)

// engineTimeout is the PromQL engine's own timeout: a backstop only, as
// every request runs under its tenant's query_timeout (ServeHTTP), which
// the engine reports as its own timeout (503). 100 years keeps the
// deadline's arithmetic far from overflow.
const engineTimeout = 100 * 365 * 24 * time.Hour

// queryLimits are the read limits of a request, in its context for the
// storage and the engine behind Prometheus's interfaces, which carry no
// tenant.
type queryLimits struct {
	limits        limits.Limits
	lookbackDelta time.Duration
	now           time.Time // of the request: max_query_lookback counts from it
}

type queryLimitsKey struct{}

func withQueryLimits(ctx context.Context, ql *queryLimits) context.Context {
	return context.WithValue(ctx, queryLimitsKey{}, ql)
}

func queryLimitsFrom(ctx context.Context) *queryLimits {
	ql, _ := ctx.Value(queryLimitsKey{}).(*queryLimits)
	return ql
}

// rangeLength returns end - start of a query_range's parameters, false
// when either does not parse (the API's handler refuses those). The
// forms are Prometheus's: seconds since the epoch (a float) or RFC 3339.
func rangeLength(start, end string) (time.Duration, bool) {
	s, ok1 := parseTime(start)
	e, ok2 := parseTime(end)
	if !ok1 || !ok2 {
		return 0, false
	}
	return e.Sub(s), true
}

func parseTime(v string) (time.Time, bool) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e15 {
			return time.Time{}, false
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

// checkSelectLength refuses a PromQL select longer than the request's
// max_query_length: its range selectors and offsets included (an instant
// query of rate(x[31d]) reads 31 days). A select's range is what PromQL
// hands the storage: the evaluation range widened by the lookback delta
// for an instant selector, by its range for a range selector; the
// lookback delta is allowed on top of the limit, so a query_range of
// exactly the limit passes. The series and label endpoints (hints.Func
// "series", or no hints) are not limited by it, as Mimir's are not.
func checkSelectLength(ctx context.Context, hints *storage.SelectHints) error {
	ql := queryLimitsFrom(ctx)
	if ql == nil || ql.limits.MaxQueryLength <= 0 || hints == nil || hints.Func == "series" {
		return nil
	}
	length := time.Duration(hints.End-hints.Start) * time.Millisecond
	if limit := time.Duration(ql.limits.MaxQueryLength); length > limit+ql.lookbackDelta {
		// Prometheus 3's selectors are left-open: [2h] is 2h - 1ms.
		return limits.QueryLengthError(length.Round(time.Second), limit)
	}
	return nil
}

// countedSet counts the series of a select against the query's
// max_fetched_series_per_query as they are returned: each label set once
// per query, whichever select or group returned it (count false: no
// series limit). The storage below stops selects that would hold more on
// their own (QueryBudget's CheckSelect), before loading them. Err gives
// a read limit's error as it is, without the layers of the fan-out (the
// group, the node) around it: its text is what the user is told.
type countedSet struct {
	storage.SeriesSet
	budget *limits.QueryBudget
	count  bool
	err    error
}

func (s *countedSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	if !s.count {
		return true
	}
	if err := s.budget.AddSeries(labels.StableHash(s.SeriesSet.At().Labels())); err != nil {
		s.err = err
		return false
	}
	return true
}

func (s *countedSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return limitError(s.SeriesSet.Err())
}

// At unwraps the limit errors of the series' iterators too.
func (s *countedSet) At() storage.Series { return limitSeries{s.SeriesSet.At()} }

type limitSeries struct{ storage.Series }

func (s limitSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if li, ok := it.(*limitIterator); ok {
		li.Iterator = s.Series.Iterator(li.Iterator)
		return li
	}
	return &limitIterator{s.Series.Iterator(it)}
}

type limitIterator struct{ chunkenc.Iterator }

func (it *limitIterator) Err() error { return limitError(it.Iterator.Err()) }

// limitError returns the read limit's error err wraps, or err.
func limitError(err error) error {
	if qle := (*limits.QueryLimitError)(nil); errors.As(err, &qle) {
		return qle
	}
	return err
}

// engines are the PromQL engines of the query API, one per
// max_samples_per_query in use: Prometheus's engine takes the limit as an
// option of the engine (EngineOpts.MaxSamples) and has no per-query one.
// An engine holds no query state of its own (no active query tracker),
// so one per distinct value, created on first use, costs a few KB.
// Only the default's registers metrics. Safe for concurrent use.
type engines struct {
	def  *promql.Engine
	opts promql.EngineOpts // of def
	mu   struct {
		sync.Mutex
		byMax map[int]*promql.Engine
	}
}

func newEngines(def *promql.Engine, opts promql.EngineOpts) *engines {
	e := &engines{def: def, opts: opts}
	e.mu.byMax = map[int]*promql.Engine{opts.MaxSamples: def}
	return e
}

// maxEngines bounds the engines kept: beyond it a new value gets an
// engine of its own that is not kept (runtime configs with hundreds of
// distinct sample limits are not expected).
const maxEngines = 64

// forContext returns the engine of the request's max_samples_per_query,
// and that limit.
func (e *engines) forContext(ctx context.Context) (*promql.Engine, int) {
	ql := queryLimitsFrom(ctx)
	if ql == nil || ql.limits.MaxSamplesPerQuery == e.opts.MaxSamples {
		return e.def, e.opts.MaxSamples
	}
	n := ql.limits.MaxSamplesPerQuery
	e.mu.Lock()
	defer e.mu.Unlock()
	if eng, ok := e.mu.byMax[n]; ok {
		return eng, n
	}
	opts := e.opts
	opts.MaxSamples, opts.Reg = n, nil
	eng := promql.NewEngine(opts)
	if len(e.mu.byMax) < maxEngines {
		e.mu.byMax[n] = eng
	}
	return eng, n
}
