package engine

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// TestHeadIndexAgainstBruteForce applies random adds, evictions, removals
// and expiries to a headIndex and after each checks every matcher set's
// answer, label names and values against a scan of the series it should
// hold. compactAfter is far above the removals of one run at first, so
// stale ids are skipped by readers, then compaction runs too.
func TestHeadIndexAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedFromEnv(t), 1))
	x := newHeadIndex()
	type entry struct {
		lbls  string
		lset  labels.Labels
		ghost bool
		last  int64
	}
	ref := map[uint64]*entry{} // what the index must hold
	known := map[uint64]*entry{}
	var nextID uint64
	newSeries := func() *entry {
		var kv []string
		kv = append(kv, "__name__", []string{"up", "mem", "cpu"}[rng.IntN(3)])
		for _, n := range []string{"job", "instance", "zone"} {
			if rng.IntN(3) > 0 {
				kv = append(kv, n, fmt.Sprintf("%s-%d", n, rng.IntN(4)))
			}
		}
		lset := labels.FromStrings(kv...)
		var enc []byte
		lset.Range(func(l labels.Label) { enc = write.AppendLabel(enc, l.Name, l.Value) })
		return &entry{lbls: string(enc), lset: lset}
	}
	matchers := [][]*labels.Matcher{
		{labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")},
		{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")},
		{labels.MustNewMatcher(labels.MatchEqual, "job", "job-1"), labels.MustNewMatcher(labels.MatchEqual, "instance", "instance-2")},
		{labels.MustNewMatcher(labels.MatchNotEqual, "zone", "zone-0")},
		{labels.MustNewMatcher(labels.MatchEqual, "zone", "")},
		{labels.MustNewMatcher(labels.MatchRegexp, "instance", "instance-[12]"), labels.MustNewMatcher(labels.MatchNotRegexp, "job", "job-0|")},
		{labels.MustNewMatcher(labels.MatchRegexp, "job", ".*")},
	}
	check := func(step int) {
		for _, ms := range matchers {
			var want []uint64
			for id, e := range ref {
				ok := true
				for _, m := range ms {
					ok = ok && m.Matches(e.lset.Get(m.Name))
				}
				if ok {
					want = append(want, id)
				}
			}
			slices.Sort(want)
			var got []uint64
			for _, id := range x.match(ms) {
				if x.live(id) {
					got = append(got, id)
				}
			}
			require.Equal(t, want, got, "step %d %v", step, ms)
		}
		wantNames, wantJobs := map[string]bool{}, map[string]bool{}
		for _, e := range ref {
			e.lset.Range(func(l labels.Label) { wantNames[l.Name] = true })
			if j := e.lset.Get("job"); j != "" {
				wantJobs[j] = true
			}
		}
		all := x.live // in refuses stale ids (headIndex.any)
		require.ElementsMatch(t, keys(wantNames), x.names(all), "step %d names", step)
		// In order: the index keeps each name's values sorted between
		// the adds and removals that change them.
		if wantValues := slices.Sorted(maps.Keys(wantJobs)); len(wantValues) == 0 {
			require.Empty(t, x.values("job", all), "step %d values", step)
		} else {
			require.Equal(t, wantValues, x.values("job", all), "step %d values", step)
		}
	}
	for step := range 3000 {
		if step == 1500 {
			for range compactAfter {
				x.removed = append(x.removed, "") // force the next removal to compact
			}
		}
		switch op := rng.IntN(10); {
		case op < 4 || len(known) == 0: // a new series
			nextID++
			e := newSeries()
			s := &memSeries{id: nextID, lbls: e.lbls}
			x.add(s)
			ref[nextID], known[nextID] = e, e
		case op < 6: // evict a head series
			for id, e := range ref {
				if !e.ghost {
					e.ghost, e.last = true, int64(step)
					x.evict(&memSeries{id: id, lbls: e.lbls}, e.last)
					break
				}
			}
		case op < 7: // a series comes back under its id
			for id, e := range known {
				if _, in := ref[id]; !in || e.ghost {
					e.ghost = false
					ref[id] = e
					x.add(&memSeries{id: id, lbls: e.lbls})
					break
				}
			}
		case op < 8: // delete a series
			for id, e := range ref {
				delete(ref, id)
				x.remove(id, e.lbls)
				break
			}
		default: // expire old ghosts
			h := int64(step - 50)
			for id, e := range ref {
				if e.ghost && e.last < h {
					delete(ref, id)
				}
			}
			x.expire(h)
		}
		check(step)
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestIntersectSubtract checks both against a set, with lists of very
// different lengths (intersect's binary search) and alike (its merge).
func TestIntersectSubtract(t *testing.T) {
	rng := rand.New(rand.NewPCG(seedFromEnv(t), 2))
	list := func(n, max int) []uint64 {
		set := map[uint64]bool{}
		for range n {
			set[uint64(rng.IntN(max))] = true
		}
		var out []uint64
		for id := range set {
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}
	for range 500 {
		a, b := list(rng.IntN(20), 1000), list(rng.IntN(2000), 1000)
		if rng.IntN(2) == 0 {
			a, b = b, a
		}
		inB := map[uint64]bool{}
		for _, id := range b {
			inB[id] = true
		}
		var wantI, wantS []uint64
		for _, id := range a {
			if inB[id] {
				wantI = append(wantI, id)
			} else {
				wantS = append(wantS, id)
			}
		}
		require.Equal(t, wantI, nilIfEmptyIDs(intersect(slices.Clone(a), b)))
		require.Equal(t, wantS, nilIfEmptyIDs(subtract(slices.Clone(a), b)))
	}
}

func nilIfEmptyIDs(l []uint64) []uint64 {
	if len(l) == 0 {
		return nil
	}
	return l
}
