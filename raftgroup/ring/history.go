package ring

import (
	"math"
	"slices"
)

// Window bounds how far a sample's timestamp may be from the time its
// write was routed, which is what the ring's history is kept by: a group
// that owned a hash range from t0 to t1 holds the samples routed to it
// then, whose timestamps are in [t0 - Late, t1 + Stale + Future).
type Window struct {
	// FutureMillis: the server refuses samples later than now plus this
	// (remotewrite.Limits.MaxFutureSkew).
	FutureMillis int64
	// LateMillis: the server refuses samples older than now minus this.
	// Zero means no bound (today's engine takes any sample within
	// retention): a group may then hold samples of any age older than the
	// end of its ownership.
	LateMillis int64
	// StaleMillis: how long a node may go on routing with a ring it has
	// not yet seen replaced (cmd bounds the staleness of its ring cache).
	StaleMillis int64
}

// Owners returns the groups that may hold a series' samples with
// timestamps in [mint, maxt] (inclusive, unix ms), sorted: the groups
// that owned some hash range in an epoch whose widened span (see Window)
// meets [mint, maxt]. A tenant's series are spread over the whole ring,
// so these are the groups a query of the tenant fans out to; data written
// before a rebalance stays visible because the old owners stay in the
// answer for as long as the time range reaches back to them.
func (s *State) Owners(mint, maxt int64, w Window) []GroupID {
	var out []GroupID
	s.epochsIn(mint, maxt, w, func(e Epoch) { out = append(out, e.Ring.Groups()...) })
	slices.Sort(out)
	return slices.Compact(out)
}

// OwnersOfHash is Owners for the series with ring hash h (Hash): the
// owners of h in those epochs. A query naming a whole label set needs
// only these.
func (s *State) OwnersOfHash(h uint64, mint, maxt int64, w Window) []GroupID {
	var out []GroupID
	s.epochsIn(mint, maxt, w, func(e Epoch) { out = append(out, e.Ring.Lookup(h)) })
	slices.Sort(out)
	return slices.Compact(out)
}

func (s *State) epochsIn(mint, maxt int64, w Window, f func(Epoch)) {
	for i, e := range s.Epochs {
		lo := int64(math.MinInt64)
		if w.LateMillis > 0 {
			lo = subSat(e.FromMillis, w.LateMillis)
		}
		hi := int64(math.MaxInt64)
		if i+1 < len(s.Epochs) {
			hi = addSat(addSat(s.Epochs[i+1].FromMillis, w.StaleMillis), w.FutureMillis)
		}
		// Samples in [lo, hi): overlap with [mint, maxt].
		if lo <= maxt && mint < hi {
			f(e)
		}
	}
}

func addSat(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	if b < 0 && a < math.MinInt64-b {
		return math.MinInt64
	}
	return a + b
}

func subSat(a, b int64) int64 {
	if b == math.MinInt64 {
		return addSat(addSat(a, math.MaxInt64), 1)
	}
	return addSat(a, -b)
}
