package frontend

import (
	"slices"
	"sync"
	"time"

	"github.com/myelindb/myelin/server/queryshard"
)

// Cardinality estimates, after Mimir's: how many series (and, ours,
// samples) a query read the last time it ran, which decides whether, and
// into how many shards, it is cut the next time
// (Limits.TargetSeriesPerShard, Limits.TargetSamplesPerShard). A query with no
// estimate runs unsharded and leaves one: a small query is never cut,
// and a heavy one is cut from its second run on (dashboards and alerts
// run the same queries over and over). Mimir keeps its estimates in the
// results cache; ours stay in the frontend's memory, apart from the
// results, so that a request that neither reads nor writes cached
// results (Cache-Control: no-store) still learns and uses them, and a
// node's estimates are its own (its shards are bounded by its own cores
// anyway).
//
// An estimate is per computation: an instant query, or one piece of a
// range query (pieces are at most a split interval long, so pieces of a
// query read about as many series as each other).

// maxEstimates bounds the estimates kept; past it the oldest tenth goes.
// An entry is the key (tenant and query) and ~50 bytes.
const maxEstimates = 10_000

// estimateKey names a query: the tenant ID, instant or range, the text.
type estimateKey struct {
	tenant  string
	instant bool
	query   string
}

// estimate is what the last runs of a query said.
type estimate struct {
	series  int64 // read by one computation
	samples int64 // its totalQueryableSamples
	// unshardable: its shards gave annotations (or native histograms),
	// so it ran again unsharded; it is not cut again.
	unshardable bool
	used        time.Time
}

// shards is how many shards the estimate calls for under l's targets:
// one per TargetSeriesPerShard series or per TargetSamplesPerShard
// samples, whichever gives more (a target of 0 is not used).
func (est estimate) shards(l Limits) int {
	n := int64(1)
	if t := int64(l.TargetSeriesPerShard); t > 0 {
		n = max(n, (est.series+t-1)/t)
	}
	if t := int64(l.TargetSamplesPerShard); t > 0 {
		n = max(n, (est.samples+t-1)/t)
	}
	return int(min(n, queryshard.MaxShards))
}

type estimates struct {
	mu sync.Mutex
	m  map[estimateKey]*estimate
}

// get returns the estimate of key, if there is one.
func (e *estimates) get(key estimateKey, now time.Time) (estimate, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	est, ok := e.m[key]
	if !ok {
		return estimate{}, false
	}
	est.used = now
	return *est, true
}

// record notes the series and samples a computation of key read;
// unshardable marks a query whose shards sent it back to run unsharded.
func (e *estimates) record(key estimateKey, series, samples int64, unshardable bool, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	est, ok := e.m[key]
	if !ok {
		if e.m == nil {
			e.m = map[estimateKey]*estimate{}
		}
		if len(e.m) >= maxEstimates {
			e.evictLocked()
		}
		est = &estimate{}
		e.m[key] = est
	}
	est.series, est.samples = series, samples
	est.unshardable = est.unshardable || unshardable
	est.used = now
}

// evictLocked drops the least recently used tenth of the estimates
// (a sort of all of them, once per tenth of maxEstimates new queries).
func (e *estimates) evictLocked() {
	type aged struct {
		k    estimateKey
		used time.Time
	}
	all := make([]aged, 0, len(e.m))
	for k, est := range e.m {
		all = append(all, aged{k, est.used})
	}
	slices.SortFunc(all, func(a, b aged) int { return a.used.Compare(b.used) })
	for _, a := range all[:max(1, len(all)/10)] {
		delete(e.m, a.k)
	}
}

func (e *estimates) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.m)
}
