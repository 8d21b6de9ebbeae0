package distributor

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/write"
)

type fixedLimits struct {
	perUser, perMetric int
	window             time.Duration
}

func (l fixedLimits) MaxGlobalSeriesPerUser(string) int         { return l.perUser }
func (l fixedLimits) MaxGlobalSeriesPerMetric(string) int       { return l.perMetric }
func (l fixedLimits) OutOfOrderTimeWindow(string) time.Duration { return l.window }

func TestGroupLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		global int
		share  float64
		want   int
	}{
		{"no limit", 0, 0.5, 0},
		{"one group: exact", 150_000, 1, 150_000},
		{"a third of 150k", 150_000, 1.0 / 3, 50_000 + 548},
		{"a twelfth of 150k", 150_000, 1.0 / 12, 12_500 + 322},
		{"tiny", 10, 1.0 / 3, 8},
		{"share above 1 is 1", 7, 1.5, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := GroupLimit(tc.global, tc.share); got != tc.want {
				t.Fatalf("GroupLimit(%d, %v) = %d, want %d", tc.global, tc.share, got, tc.want)
			}
		})
	}
}

// TestWriteCarriesLimits: every part carries its tenant's limits scaled
// to its group's share; a batch of one group carries them too.
func TestWriteCarriesLimits(t *testing.T) {
	for _, groups := range []int{1, 3, 12} {
		t.Run(fmt.Sprint(groups, " groups"), func(t *testing.T) {
			r := evenRing(t, groups)
			w := &fakeWriter{r: r}
			d := New(w, func() (*ring.Ring, error) { return r, nil }, fixedLimits{perUser: 150_000, perMetric: 3_000})
			if _, err := d.Write(context.Background(), batch(t, "tenant-a", 500, nil)); err != nil {
				t.Fatal(err)
			}
			share := 1 / float64(groups)
			want := write.SeriesLimits{MaxSeries: GroupLimit(150_000, share), MaxSeriesPerMetric: GroupLimit(3_000, share)}
			for g, parts := range w.parts {
				for _, p := range parts {
					if p.Limits != want {
						t.Fatalf("group %d got limits %+v, want %+v", g, p.Limits, want)
					}
				}
			}
			if len(w.parts) != groups {
				t.Fatalf("%d groups got parts, want %d", len(w.parts), groups)
			}
		})
	}
	// No limits: the entries carry none.
	r := evenRing(t, 3)
	// A window alone: every part carries it whole, in milliseconds, and
	// through the log entry's encoding.
	{
		w := &fakeWriter{r: r}
		d := New(w, func() (*ring.Ring, error) { return r, nil }, fixedLimits{window: 10 * time.Minute})
		if _, err := d.Write(context.Background(), batch(t, "t", 50, nil)); err != nil {
			t.Fatal(err)
		}
		for g, parts := range w.parts {
			for _, p := range parts {
				if p.OutOfOrderWindowMs != 600_000 || p.Limits != (write.SeriesLimits{}) {
					t.Fatalf("group %d: window %d ms, limits %+v; want 600000 ms and no limits", g, p.OutOfOrderWindowMs, p.Limits)
				}
			}
		}
	}
	w := &fakeWriter{r: r}
	if _, err := New(w, func() (*ring.Ring, error) { return r, nil }, fixedLimits{}).Write(context.Background(), batch(t, "t", 50, nil)); err != nil {
		t.Fatal(err)
	}
	for _, parts := range w.parts {
		for _, p := range parts {
			if p.Limits != (write.SeriesLimits{}) || p.OutOfOrderWindowMs != 0 {
				t.Fatalf("limits %+v, window %d ms without limits", p.Limits, p.OutOfOrderWindowMs)
			}
		}
	}
}

// TestSeriesSkew measures how a tenant's series spread over the groups
// of a ring, which GroupLimit's slack covers: for tenants of L
// realistic series (node_exporter-like label sets, the tenant hashed
// in), how far the fullest group is above L·s, in standard deviations
// of the binomial, and how often a tenant with exactly L series would
// meet a refusal (some group above GroupLimit). docs/design.md quotes
// the log of
//
//	go test -run TestSeriesSkew -v ./server/distributor
func TestSeriesSkew(t *testing.T) {
	const tenants = 200
	var sets [][]byte // label sets of the largest case; each case takes a prefix
	for i := range 150_000 {
		enc := write.AppendLabel(nil, "__name__", fmt.Sprintf("node_metric_%d_total", i%200))
		enc = write.AppendLabel(enc, "instance", fmt.Sprintf("10.%d.%d.%d:9100", i/65536%256, i/256%256, i%256))
		enc = write.AppendLabel(enc, "job", "node-exporter")
		enc = write.AppendLabel(enc, "mode", []string{"user", "system", "idle", "iowait"}[i%4])
		sets = append(sets, enc)
	}
	for _, tc := range []struct{ groups, series int }{{3, 1_000}, {3, 30_000}, {12, 1_000}, {12, 30_000}, {3, 150_000}} {
		r := evenRing(t, tc.groups)
		share := 1 / float64(tc.groups)
		mean, sd := float64(tc.series)*share, math.Sqrt(float64(tc.series)*share*(1-share))
		limit := GroupLimit(tc.series, share)
		n := tenants
		if tc.series >= 100_000 {
			n = 10
		}
		var worst []float64
		refused := 0
		counts := make([]int, tc.groups)
		for tn := range n {
			tenant := fmt.Sprintf("tenant-%d", tn)
			clear(counts)
			for _, enc := range sets[:tc.series] {
				counts[r.LookupIndex(ring.Hash(tenant, enc))]++
			}
			top := slices.Max(counts)
			worst = append(worst, (float64(top)-mean)/sd)
			if top > limit {
				refused++
			}
		}
		slices.Sort(worst)
		t.Logf("%d groups, %d series per tenant, %d tenants: fullest group at median %+.2f, p90 %+.2f, max %+.2f sd; group limit %d (mean %.0f + %d); %d tenants would meet a refusal below their limit",
			tc.groups, tc.series, n, worst[len(worst)/2], worst[len(worst)*9/10], worst[len(worst)-1], limit, mean, limit-int(math.Round(mean)), refused)
		// Three sd per group: 1-(1-0.00135)^groups of the tenants (0.4%
		// on 3 groups, 1.6% on 12) if the hash spreads series as a
		// binomial does; four times that is not noise.
		if expect := (1 - math.Pow(1-0.00135, float64(tc.groups))) * float64(n); float64(refused) > 4*expect+2 {
			t.Errorf("%d of %d tenants over a group's limit", refused, n)
		}
	}
}
