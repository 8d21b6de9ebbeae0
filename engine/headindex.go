package engine

import (
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/write"
)

// headIndex indexes a tenant's series by label in memory, for selects and
// label queries of recent data (docs/design.md, "Head index"). It holds
// every series in the head and the ghosts: series evicted from the head
// whose newest sample is within Options.IndexGhosts of the tenant's
// newest. With the defaults (EvictIdle 1h, IndexGhosts 3h) the index
// covers the last 3 hours of a tenant that has not restarted: a
// dashboard's "last 1 hour" (plus the 5 minute lookback) and every alert
// rule select from memory. The ghosts cost memory: the series that
// stopped in the last 3 hours, ~100 bytes each and their postings.
//
// The postings may hold ids of series removed since the last compaction
// (stale ids): readers skip ids that are neither in series nor in ghosts.
// Ids are never reused (tenant.mu.nextID only grows), and a series that
// comes back under its id has the same labels, so a stale id never
// stands for another series.
//
// All methods need the tenant's lock: read for the readers, write for the
// writers.
type headIndex struct {
	series map[uint64]*memSeries
	ghosts map[uint64]ghost
	// postings maps a label name and value to the sorted ids of the
	// series with that label. Keys alias the labels of a series.
	postings map[string]map[string][]uint64
	// maxID is the largest id ever added.
	maxID uint64
	// removed lists series removed since the last compaction, whose
	// postings hold stale ids.
	removed []string
	// sorted caches the values of a label name in order, for label
	// value queries (values); a name's entry goes when one of its values
	// is added or removed. Readers share the tenant's read lock, so the
	// cache has a lock of its own.
	sorted *sortedValues
}

// sortedValues is headIndex.sorted.
type sortedValues struct {
	mu     sync.Mutex
	byName map[string][]string
}

// ghost is an evicted series kept in the index.
type ghost struct {
	lbls string
	last int64 // time of its newest sample
}

// compactAfter is how many removed series trigger a compaction of their
// postings.
const compactAfter = 4096

func newHeadIndex() headIndex {
	return headIndex{
		series:   map[uint64]*memSeries{},
		ghosts:   map[uint64]ghost{},
		postings: map[string]map[string][]uint64{},
		sorted:   &sortedValues{byName: map[string][]string{}},
	}
}

// changed drops the cached order of name's values (writers: the tenant's
// write lock is held, no reader runs).
func (x *headIndex) changed(name string) {
	if x.sorted != nil && len(x.sorted.byName) > 0 {
		delete(x.sorted.byName, name)
	}
}

// sortedValuesOf returns the values of name in order, from the cache or
// sorted now and cached. The caller must not change it.
func (x *headIndex) sortedValuesOf(name string, vs map[string][]uint64) []string {
	sortNow := func() []string {
		s := make([]string, 0, len(vs))
		for v := range vs {
			s = append(s, v)
		}
		slices.Sort(s)
		return s
	}
	c := x.sorted
	if c == nil {
		return sortNow() // a headIndex not made by newHeadIndex
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.byName[name]; ok && len(s) == len(vs) {
		return s
	}
	s := sortNow()
	c.byName[name] = s
	return s
}

// add indexes head series s (new, or back from eviction).
func (x *headIndex) add(s *memSeries) {
	x.series[s.id] = s
	if _, ok := x.ghosts[s.id]; ok {
		delete(x.ghosts, s.id) // its postings are in place
		return
	}
	x.maxID = max(x.maxID, s.id)
	_ = write.ForEachLabel(s.lbls, func(name, value string) {
		vs := x.postings[name]
		if vs == nil {
			vs = map[string][]uint64{}
			x.postings[name] = vs
		}
		l, ok := vs[value]
		if !ok {
			x.changed(name)
		}
		vs[value] = insertID(l, s.id)
	})
}

// insertID adds id to the sorted list l, if it is not there.
func insertID(l []uint64, id uint64) []uint64 {
	if n := len(l); n == 0 || l[n-1] < id {
		return append(l, id)
	}
	i, found := slices.BinarySearch(l, id)
	if found {
		return l
	}
	return slices.Insert(l, i, id)
}

// evict turns head series s, whose newest sample is at last, into a
// ghost.
func (x *headIndex) evict(s *memSeries, last int64) {
	delete(x.series, s.id)
	x.ghosts[s.id] = ghost{lbls: s.lbls, last: last}
}

// lower sets the newest sample time of ghost id to last, if it is a
// ghost: a range deletion removed its newer samples.
func (x *headIndex) lower(id uint64, last int64) {
	if g, ok := x.ghosts[id]; ok && last < g.last {
		x.ghosts[id] = ghost{lbls: g.lbls, last: last}
	}
}

// remove drops series id (in the head or a ghost) with encoded labels
// lbls from the index.
func (x *headIndex) remove(id uint64, lbls string) {
	delete(x.series, id)
	delete(x.ghosts, id)
	x.removed = append(x.removed, lbls)
	if len(x.removed) >= compactAfter {
		x.compact()
	}
}

// expire removes the ghosts whose newest sample is before horizon.
func (x *headIndex) expire(horizon int64) {
	for id, g := range x.ghosts {
		if g.last < horizon {
			x.remove(id, g.lbls)
		}
	}
}

// removeGhosts removes the ghosts whose labels del selects.
func (x *headIndex) removeGhosts(del func(lbls string) bool) {
	for id, g := range x.ghosts {
		if del(g.lbls) {
			x.remove(id, g.lbls)
		}
	}
}

// compact removes stale ids from the postings of the removed series'
// labels, and the values and names left without ids.
func (x *headIndex) compact() {
	done := map[string]struct{}{}
	for _, lbls := range x.removed {
		_ = write.ForEachLabel(lbls, func(name, value string) {
			vs := x.postings[name]
			if vs == nil {
				return
			}
			l, ok := vs[value]
			if !ok {
				return
			}
			key := name + "\xff" + value
			if _, ok := done[key]; ok {
				return
			}
			done[key] = struct{}{}
			l = slices.DeleteFunc(l, func(id uint64) bool { return !x.live(id) })
			if len(l) == 0 {
				x.changed(name)
				delete(vs, value)
				if len(vs) == 0 {
					delete(x.postings, name)
				}
				return
			}
			vs[value] = slices.Clip(l)
		})
	}
	x.removed = x.removed[:0]
}

// live reports whether id is indexed.
func (x *headIndex) live(id uint64) bool {
	if _, ok := x.series[id]; ok {
		return true
	}
	_, ok := x.ghosts[id]
	return ok
}

// labels returns the encoded labels of indexed series id and the head
// series, nil for a ghost; ok is false for a stale id.
func (x *headIndex) labels(id uint64) (lbls string, s *memSeries, ok bool) {
	if s, ok := x.series[id]; ok {
		return s.lbls, s, true
	}
	g, ok := x.ghosts[id]
	return g.lbls, nil, ok
}

// match returns the sorted ids of the indexed series matching all of ms.
// The result is the caller's. It may hold stale ids.
func (x *headIndex) match(ms []*labels.Matcher) []uint64 {
	var pos, neg [][]uint64
	for _, m := range ms {
		f, negate := filterFor(m)
		ids := x.union(m.Name, f) // may be the index's own list: read only
		if negate {
			neg = append(neg, ids)
			continue
		}
		if len(ids) == 0 {
			return nil
		}
		pos = append(pos, ids)
	}
	if len(pos) == 0 {
		all := make([]uint64, 0, len(x.series)+len(x.ghosts))
		for id := range x.series {
			all = append(all, id)
		}
		for id := range x.ghosts {
			all = append(all, id)
		}
		slices.Sort(all)
		pos = append(pos, all)
	}
	// combine writes into the shortest list: a copy of it (a few ids when
	// a matcher is selective).
	slices.SortFunc(pos, func(a, b []uint64) int { return len(a) - len(b) })
	pos[0] = slices.Clone(pos[0])
	return combine(pos, neg)
}

// union returns the sorted ids of the series with label name and a value
// that f selects: for one value the index's own list, which the caller
// must not change. An empty valueFilter selects every value.
func (x *headIndex) union(name string, f valueFilter) []uint64 {
	vs := x.postings[name]
	var lists [][]uint64
	total := 0
	if f.literals != nil {
		for _, v := range f.literals {
			if l := vs[v]; len(l) > 0 {
				lists = append(lists, l)
				total += len(l)
			}
		}
	} else {
		for v, l := range vs {
			if strings.HasPrefix(v, f.prefix) && (f.match == nil || f.match(v)) {
				lists = append(lists, l)
				total += len(l)
			}
		}
	}
	switch {
	case len(lists) == 0:
		return nil
	case len(lists) == 1:
		return lists[0]
	}
	words := x.maxID/64 + 1
	if uint64(total) < words {
		out := make([]uint64, 0, total)
		for _, l := range lists {
			out = append(out, l...)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	// A large union: a bitmap over the ids is linear, not n log n. The
	// lists are disjoint (one value per name per series).
	bm := make([]uint64, words)
	for _, l := range lists {
		for _, id := range l {
			bm[id/64] |= 1 << (id % 64)
		}
	}
	out := make([]uint64, 0, total)
	for w, b := range bm {
		for b != 0 {
			out = append(out, uint64(w)*64+uint64(bits.TrailingZeros64(b)))
			b &= b - 1
		}
	}
	return out
}

// names returns the label names of the indexed series that in selects
// (see any).
func (x *headIndex) names(in func(id uint64) bool) []string {
	var out []string
	for name, vs := range x.postings {
		for _, l := range vs {
			if x.any(l, in) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// values returns the values of label name of the indexed series that in
// selects (see any), in order: sorting 6,300 values of a million series'
// instance label was a fifth of the query's CPU, and the values of a
// name change far less often than they are asked for.
func (x *headIndex) values(name string, in func(id uint64) bool) []string {
	vs := x.postings[name]
	if len(vs) == 0 {
		return nil
	}
	sorted := x.sortedValuesOf(name, vs)
	out := make([]string, 0, len(vs))
	for _, v := range sorted {
		if x.any(vs[v], in) {
			out = append(out, v)
		}
	}
	return out
}

// any reports whether the sorted list l holds an id that in selects. It
// stops at the first: a value's series are mostly alike. in must refuse
// stale ids (querier.inViewLocked does, through headIndex.last: one map
// lookup per id, not two).
func (x *headIndex) any(l []uint64, in func(id uint64) bool) bool {
	for _, id := range l {
		if in(id) {
			return true
		}
	}
	return false
}

// last returns the time of the newest sample of indexed series id, with
// lastOfEmpty the tenant's (tenant.mu.lastOfEmpty); ok is false for a
// stale id or a series that never accepted a sample.
func (x *headIndex) last(id uint64, lastOfEmpty map[*memSeries]lastSample) (t int64, ok bool) {
	if s, ok := x.series[id]; ok {
		if s.numSamples() > 0 {
			return s.maxt(), true
		}
		l, ok := lastOfEmpty[s]
		return l.t, ok
	}
	g, ok := x.ghosts[id]
	return g.last, ok
}

// keepGhosts is how long ghosts stay: IndexGhosts, or the retention if
// shorter (older data is gone).
func keepGhosts(o *Options) time.Duration {
	if o.Retention > 0 && o.Retention < o.IndexGhosts {
		return o.Retention
	}
	return o.IndexGhosts
}

// covers returns the earliest time from which every series of the tenant
// with a sample at or after it is in the index, given the tenant's newest
// sample maxT. A series leaves the head when its newest sample is before
// maxT - idle (evictLocked), and the index when it is also before maxT -
// keep (expire), keep being keepGhosts. from is the bound the tenant was
// loaded with: a restart forgets the ghosts (loadTenant).
func covers(from, maxT int64, idle, keep time.Duration) int64 {
	h := max(idle, keep).Milliseconds()
	if maxT == minTime || maxT < math.MinInt64+h {
		return from
	}
	return max(from, maxT-h)
}
