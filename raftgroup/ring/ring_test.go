package ring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestHash(t *testing.T) {
	// Hash is a format: these values must never change.
	for _, tc := range []struct {
		name   string
		tenant string
		labels string
		want   uint64
	}{
		{"empty", "", "", 0x95634172a60b7544},
		{"up", "tenant-a", "__name__\xffup\xffjob\xffnode\xff", 0x6eb368f0a0b24913},
		{"other tenant", "tenant-b", "__name__\xffup\xffjob\xffnode\xff", 0x000bfc5ada8b6232},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Hash(tc.tenant, []byte(tc.labels)); got != tc.want {
				t.Errorf("Hash(%q, %q) = %#x, want %#x", tc.tenant, tc.labels, got, tc.want)
			}
			// The definition, independently: XXH64 of the concatenation.
			if got := xxhash.Sum64String(tc.tenant + "\xff" + tc.labels); got != tc.want {
				t.Errorf("xxhash of the concatenation = %#x, want %#x", got, tc.want)
			}
		})
	}
}

func TestHashAllocs(t *testing.T) {
	lbls := []byte("__name__\xffup\xffjob\xffnode\xff")
	if n := testing.AllocsPerRun(100, func() { Hash("tenant-a", lbls) }); n != 0 {
		t.Errorf("Hash allocates %v times", n)
	}
}

func TestLookup(t *testing.T) {
	r, err := NewRing([]Token{{100, 1}, {200, 2}, {math.MaxUint64, 3}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		h    uint64
		want GroupID
	}{
		{"zero", 0, 1},
		{"at first token", 100, 1},
		{"after first", 101, 2},
		{"at second", 200, 2},
		{"after second", 201, 3},
		{"max", math.MaxUint64, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Lookup(tc.h); got != tc.want {
				t.Errorf("Lookup(%d) = %d, want %d", tc.h, got, tc.want)
			}
		})
	}
}

func TestNewRingRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tokens []Token
	}{
		{"empty", nil},
		{"not increasing", []Token{{5, 1}, {5, 2}, {math.MaxUint64, 3}}},
		{"adjacent same group", []Token{{5, 1}, {math.MaxUint64, 1}}},
		{"no max token", []Token{{5, 1}, {6, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewRing(tc.tokens); err == nil {
				t.Errorf("NewRing(%v) did not fail", tc.tokens)
			}
		})
	}
}

// TestWithGroupBalance adds groups one by one: every group must own 1/n
// of the hash space, and a hash may only move to the new group.
func TestWithGroupBalance(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	probes := make([]uint64, 20000)
	for i := range probes {
		probes[i] = rng.Uint64()
	}
	var r *Ring
	const groups = 100
	for g := GroupID(1); g <= groups; g++ {
		next := r.withGroup(g)
		n := uint64(g)
		target := uint64(math.MaxUint64) / n
		for i, o := range next.Ownership() {
			if diff := max(o, target) - min(o, target); diff > 2*n {
				t.Fatalf("%d groups: group %d owns %d, want %d (off by %d)", n, next.Groups()[i], o, target, diff)
			}
		}
		if r != nil {
			for _, h := range probes {
				if before, after := r.Lookup(h), next.Lookup(h); after != before && after != g {
					t.Fatalf("adding group %d moved hash %#x from group %d to %d", g, h, before, after)
				}
			}
		}
		r = next
	}
	t.Logf("%d groups: %d tokens", groups, len(r.Tokens()))
	if len(r.Tokens()) > groups*groups/2+groups {
		t.Errorf("%d tokens for %d groups, want O(n²/2)", len(r.Tokens()), groups)
	}
}

// TestSeriesSpread: series of realistic label sets spread evenly over
// the groups of a planned ring.
func TestSeriesSpread(t *testing.T) {
	var r *Ring
	const groups, series = 12, 120_000
	for g := range GroupID(groups) {
		r = r.withGroup(g + 1)
	}
	counts := make([]int, groups)
	for i := range series {
		lbls := fmt.Sprintf("__name__\xffnode_cpu_seconds_total\xffcpu\xff%d\xffinstance\xffhost-%d:9100\xffmode\xffidle\xff", i%64, i/64)
		counts[r.LookupIndex(Hash("tenant-a", []byte(lbls)))]++
	}
	mean := float64(series) / groups
	for i, c := range counts {
		// 5 standard deviations of a binomial count: ~5*sqrt(mean).
		if dev := math.Abs(float64(c)-mean) / mean; dev > 5*math.Sqrt(mean)/mean {
			t.Errorf("group %d holds %d series, mean %.0f (%.1f%% off)", r.Groups()[i], c, mean, 100*dev)
		}
	}
	t.Logf("series per group: %v", counts)
}
