package server

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// Defaults of the memory releaser.
const (
	// DefaultFreeMemorySamples: ~240 MB of a query's memory at ~24 bytes
	// a sample (BenchmarkQueryMemory), well above what a dashboard's
	// queries hold, so the release follows the rare heavy query only.
	DefaultFreeMemorySamples = 10_000_000
	// freeMemoryInterval: at most one release this often. A release
	// (freeMemory) took 30 ms after an 11-million-sample query and 100 ms
	// after a 50-million one, and a GC costs more the more other running
	// queries hold: a flood of heavy queries must not become a flood of
	// GCs. Once per 5 s is at most ~2% of a core.
	freeMemoryInterval = 5 * time.Second
)

// memoryReleaser decides when to return freed memory to the operating
// system after heavy queries (their cost is the samples they held at
// once) or heavy pushes (the bytes of their decompressed body; each
// handler has its own releaser).
//
// Go keeps freed heap to reuse it and returns it lazily. After one query
// that held 50 million samples (BenchmarkQueryMemory, series=4500) the
// process kept 1.15 GB resident, and idle it stayed there for four
// minutes (two forced GCs, two minutes apart, then the background
// scavenger); the issue saw 5.8 GB stay after four such queries.
// freeMemory right after the query brings it back to 60 MB, the size
// before the query, in 100 ms; the response waits for it (~5% of that
// query's 2.2 s). Rejected: a soft memory limit (debug.SetMemoryLimit,
// GOMEMLIMIT), which at best brings the process down to the limit, and
// while a query needs more than the limit makes the GC run nearly all
// the time: with GOMEMLIMIT=512MiB the same query took 2.9-3.7 s instead
// of 2.3 s and the process still kept 790 MB after it (then ~480 MB for
// as long as it stayed idle).
//
// A release that is due but too soon after the previous one is pending:
// the next query to finish, heavy or not, does it.
type memoryReleaser struct {
	minCost  int
	interval time.Duration
	mu       struct {
		sync.Mutex
		last    time.Time // of the last release
		pending bool      // a heavy request finished since
	}
}

// done records that a request of the given cost finished at now, and
// reports whether the caller should release memory now (freeMemory).
func (m *memoryReleaser) done(now time.Time, cost int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cost >= m.minCost {
		m.mu.pending = true
	}
	if !m.mu.pending || now.Sub(m.mu.last) < m.interval {
		return false
	}
	m.mu.pending, m.mu.last = false, now
	return true
}

// queryCost collects what the queries of one request held at the most,
// filled in by costEngine, and the series their selects returned,
// counted by tenantQuerier (renderStats reports them), from the request's
// context.
type queryCost struct {
	peakSamples atomic.Int64
	series      atomic.Int64
}

type queryCostKey struct{}

// costEngine is the PromQL engine as the API sees it: it evaluates each
// query with an engine of its tenant's max_samples_per_query (engines),
// names that limit in the error of a query past it, and records each
// query's peak samples, when the API closes the query after writing the
// response, in the queryCost of the query's context.
type costEngine struct{ e *engines }

var _ promql.QueryEngine = costEngine{}

func (c costEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	eng, maxSamples := c.e.forContext(ctx)
	qry, err := eng.NewInstantQuery(ctx, q, opts, qs, ts)
	return costQuery(ctx, qry, maxSamples), err
}

func (c costEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	eng, maxSamples := c.e.forContext(ctx)
	qry, err := eng.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
	return costQuery(ctx, qry, maxSamples), err
}

func costQuery(ctx context.Context, qry promql.Query, maxSamples int) promql.Query {
	if qry == nil {
		return qry
	}
	c, _ := ctx.Value(queryCostKey{}).(*queryCost)
	return &costedQuery{Query: qry, cost: c, maxSamples: maxSamples}
}

type costedQuery struct {
	promql.Query
	cost       *queryCost // nil: not recorded
	maxSamples int
}

// Exec names the limit in the error of a query past it: Prometheus's
// text says only that there were too many samples. The API still answers
// 422 "execution", as Prometheus and Mimir do.
func (q *costedQuery) Exec(ctx context.Context) *promql.Result {
	res := q.Query.Exec(ctx)
	var tooMany promql.ErrTooManySamples
	if res != nil && errors.As(res.Err, &tooMany) {
		res.Err = fmt.Errorf("%w (limit: %d samples). To adjust the related per-tenant limit, configure -query.max-samples (max_samples_per_query), or contact your service administrator", res.Err, q.maxSamples)
	}
	return res
}

func (q *costedQuery) Close() {
	q.Query.Close()
	if q.cost == nil {
		return
	}
	if s := q.Stats(); s != nil && s.Samples != nil {
		n := int64(s.Samples.PeakSamples)
		for {
			old := q.cost.peakSamples.Load()
			if n <= old || q.cost.peakSamples.CompareAndSwap(old, n) {
				break
			}
		}
	}
}

// freeMemory returns the heap the last queries freed to the OS. It runs
// two GCs: the engine keeps its result slices in sync.Pools, which keep
// what they hold through one GC (their victim cache); debug.FreeOSMemory
// alone left 790 of 1,070 MB after a 50-million-sample query.
func freeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}
