package querier

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server/distributor"
	"github.com/myelindb/myelin/write"
)

const (
	genStep  = 15_000 // ms
	genSteps = 2 * 3600 * 1000 / genStep
)

// genStart is aligned to the hour so the 1h partitions split the data.
var genStart = t0 / 3_600_000 * 3_600_000

// generated is a data set: series and their samples, in time order.
type generated struct {
	lsets   []labels.Labels
	samples [][]write.Sample
}

// generate makes 200 series of a few metric names and jobs over 2h at
// 15s: counters (with resets), gauges, classic histogram buckets, and
// stale markers (series that pause and resume, series that end).
func generate(seed uint64) *generated {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &generated{}
	type gen func(i int, prev float64) float64
	var gens []gen
	add := func(l labels.Labels, f gen) {
		g.lsets = append(g.lsets, l)
		gens = append(gens, f)
	}
	counter := func(maxInc int) gen {
		return func(i int, prev float64) float64 {
			if i > 0 && rng.IntN(200) == 0 {
				return 0 // reset
			}
			return prev + float64(rng.IntN(maxInc+1))
		}
	}
	les := []string{"0.05", "0.1", "0.5", "1", "5", "+Inf"}
	for _, job := range []string{"api", "db", "cache"} {
		for inst := range 5 {
			instance := fmt.Sprintf("host-%d:9090", inst)
			base := []string{"job", job, "instance", instance}
			lbl := func(name string, kv ...string) labels.Labels {
				return labels.FromStrings(append(append([]string{"__name__", name}, base...), kv...)...)
			}
			add(lbl("http_requests_total", "code", "200"), counter(50))
			add(lbl("http_requests_total", "code", "500"), counter(3))
			add(lbl("up"), func(int, float64) float64 { return float64(min(1, rng.IntN(20))) })
			add(lbl("node_temperature_celsius"), func(int, float64) float64 { return 20 + 10*rng.Float64() })
			add(lbl("process_cpu_seconds_total"), func(_ int, prev float64) float64 { return prev + rng.Float64() })
			// Buckets: cumulative counts of observations, so each bucket's
			// counter is at least the one below it.
			counts := make([]float64, len(les))
			for b, le := range les {
				add(lbl("request_duration_seconds_bucket", "le", le), func(int, float64) float64 {
					if b == 0 {
						for range rng.IntN(10) {
							o := rng.IntN(len(les))
							for j := o; j < len(les); j++ {
								counts[j]++
							}
						}
					}
					return counts[b]
				})
			}
			add(lbl("request_duration_seconds_count"), func(int, float64) float64 { return counts[len(les)-1] })
		}
	}
	for q := range 20 {
		add(labels.FromStrings("__name__", "queue_length", "queue", fmt.Sprintf("q%02d", q)), func(int, float64) float64 { return float64(rng.IntN(11)) })
	}
	if len(g.lsets) != 200 {
		panic(fmt.Sprintf("BUG: %d series", len(g.lsets)))
	}
	stale := math.Float64frombits(value.StaleNaN)
	g.samples = make([][]write.Sample, len(g.lsets))
	prev := make([]float64, len(g.lsets))
	for i := range genSteps {
		ts := genStart + int64(i)*genStep
		for j, f := range gens {
			v := f(i, prev[j]) // every generator runs at every step: buckets share state
			prev[j] = v
			switch {
			case j%17 == 5 && i == genSteps/2:
				v = stale // pause ...
			case j%17 == 5 && i > genSteps/2 && i < genSteps/2+20:
				continue // ... and resume
			case j%23 == 7 && i == 3*genSteps/4:
				v = stale // the series ends
			case j%23 == 7 && i > 3*genSteps/4:
				continue
			}
			g.samples[j] = append(g.samples[j], write.Sample{T: ts, V: v})
		}
	}
	return g
}

// evenRing returns a ring of groups 1..n, each owning 1/n of the hashes.
func evenRing(t testing.TB, n int) *ring.Ring {
	t.Helper()
	var tokens []ring.Token
	for i := 1; i <= n; i++ {
		tok := uint64(math.MaxUint64)
		if i < n {
			tok = math.MaxUint64 / uint64(n) * uint64(i)
		}
		tokens = append(tokens, ring.Token{Token: tok, Group: ring.GroupID(i)})
	}
	r, err := ring.NewRing(tokens)
	require.NoError(t, err)
	return r
}

// window returns the samples of s with timestamps in [from, to).
func window(s []write.Sample, from, to int64) []write.Sample {
	lo, _ := slices.BinarySearchFunc(s, from, func(x write.Sample, t int64) int { return cmp.Compare(x.T, t) })
	hi, _ := slices.BinarySearchFunc(s, to, func(x write.Sample, t int64) int { return cmp.Compare(x.T, t) })
	return s[lo:hi]
}

// storeSingle writes d to one group, 20 scrapes per batch.
func storeSingle(t testing.TB, g *engine.Group, d *generated) {
	var a applier
	for i := 0; i < genSteps; i += 20 {
		from, to := genStart+int64(i)*genStep, genStart+int64(i+20)*genStep
		bb := write.NewBuilder(tenant)
		for j, l := range d.lsets {
			if w := window(d.samples[j], from, to); len(w) > 0 {
				require.NoError(t, bb.Add(l, w))
			}
		}
		a.apply(t, g, bb.Batch())
	}
}

// storeSplit writes d to groups 1..3 as the distributor places it, except
// that every ninth series was moved by a rebalance at 50% of the time:
// the ring owner holds its samples from 40% on, and its old group (the
// next one) holds them up to 60%, so the middle fifth is in both.
func storeSplit(t testing.TB, groups localGroups, d *generated) (moved int) {
	r := evenRing(t, 3)
	var a applier
	movedFrom, movedTo := genStart+int64(genSteps*4/10)*genStep, genStart+int64(genSteps*6/10)*genStep
	for i := 0; i < genSteps; i += 20 {
		from, to := genStart+int64(i)*genStep, genStart+int64(i+20)*genStep
		bb := write.NewBuilder(tenant)
		old := map[ring.GroupID]*write.Builder{}
		for j, l := range d.lsets {
			w := window(d.samples[j], from, to)
			if j%9 != 0 {
				if len(w) > 0 {
					require.NoError(t, bb.Add(l, w))
				}
				continue
			}
			if nw := window(w, movedFrom, math.MaxInt64); len(nw) > 0 {
				require.NoError(t, bb.Add(l, nw))
			}
			owner := r.Lookup(ring.Hash(tenant, encodeLabels(l)))
			og := owner%3 + 1
			if ow := window(w, math.MinInt64, movedTo); len(ow) > 0 {
				if old[og] == nil {
					old[og] = write.NewBuilder(tenant)
				}
				require.NoError(t, old[og].Add(l, ow))
			}
		}
		for _, p := range distributor.Split(r, bb.Batch()) {
			a.apply(t, groups[p.Group], &p.Batch)
		}
		for g, obb := range old {
			a.apply(t, groups[g], obb.Batch())
		}
	}
	for j := range d.lsets {
		if j%9 == 0 {
			moved++
		}
	}
	return moved
}

// encodeLabels returns l in write's encoding, the ring hash input.
func encodeLabels(l labels.Labels) []byte {
	var enc []byte
	l.Range(func(l labels.Label) { enc = write.AppendLabel(enc, l.Name, l.Value) })
	return enc
}

// splitGroups serves groups 1..3: group 1 locally, 2 and 3 through an
// httptest server of the remote protocol.
func splitGroups(t testing.TB, groups localGroups) Groups {
	srv := serve(t, groups)
	return staticGroups{owners: []ring.GroupID{1, 2, 3}, open: func(_ context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
		if g == 1 {
			return groups[1].Querier(tenant, mint, maxt)
		}
		return NewRemote(srv.Client(), srv.URL, g, tenant, mint, maxt), nil
	}}
}

func TestPromQLEquivalence(t *testing.T) {
	ctx := context.Background()
	d := generate(7)
	opts := engine.Options{Partition: time.Hour}
	single := openGroups(t, opts, 100)
	storeSingle(t, single[100], d)
	split := openGroups(t, opts, 1, 2, 3)
	moved := storeSplit(t, split, d)
	require.Equal(t, 23, moved)
	f := New(splitGroups(t, split), Options{MaxConcurrency: 2})

	want := single[100].Queryable(tenant)
	got := storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) { return f.Querier(tenant, mint, maxt) })

	start := time.UnixMilli(genStart)
	end := time.UnixMilli(genStart + genSteps*genStep)
	at := float64(genStart+30*60_000) / 1000
	eng := promql.NewEngine(promql.EngineOpts{
		MaxSamples: 1e8, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
		EnableAtModifier: true, EnableNegativeOffset: true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
	})
	for _, q := range []string{
		`up`,
		`rate(http_requests_total[5m])`,
		`sum by (job) (rate(http_requests_total{code!="200"}[5m]))`,
		`topk(3, rate(process_cpu_seconds_total[5m]))`,
		`count by (job) (up == 1)`,
		`count({__name__=~".+"})`,
		`histogram_quantile(0.9, sum by (le, job) (rate(request_duration_seconds_bucket[5m])))`,
		`histogram_quantile(0.5, rate(request_duration_seconds_bucket{job="db"}[10m]))`,
		`label_replace(up, "host", "$1", "instance", "(.*):.*")`,
		`absent(nonexistent_metric)`,
		`absent(up{job="api"})`,
		`http_requests_total offset 10m`,
		fmt.Sprintf(`http_requests_total @ %g`, at),
		`rate(http_requests_total[5m] @ end())`,
		`max_over_time(rate(http_requests_total{job="api"}[5m])[30m:1m])`,
		`avg_over_time(node_temperature_celsius[10m:])`,
		`stddev by (job) (node_temperature_celsius)`,
		`queue_length > 5`,
		`{__name__=~"queue.*", queue!~"q1."}`,
		`increase(process_cpu_seconds_total[1h])`,
		`sum(http_requests_total{code="500"}) / sum(http_requests_total)`,
		`last_over_time(up[10m])`,
		`timestamp(up)`,
	} {
		t.Run(q, func(t *testing.T) {
			// run returns the result and its query, to close after the
			// comparison: Close recycles the result's points.
			run := func(qa storage.Queryable, instant bool, ts time.Time) (parser.Value, []string, promql.Query) {
				var qry promql.Query
				var err error
				if instant {
					qry, err = eng.NewInstantQuery(ctx, qa, nil, q, ts)
				} else {
					qry, err = eng.NewRangeQuery(ctx, qa, nil, q, start, end, time.Minute)
				}
				require.NoError(t, err)
				res := qry.Exec(ctx)
				require.NoError(t, res.Err)
				ws, infos := res.Warnings.AsStrings(q, 0, 0)
				return res.Value, append(ws, infos...), qry
			}
			for _, tc := range []struct {
				instant bool
				ts      time.Time
			}{
				{false, time.Time{}},
				{true, end.Add(-time.Minute)},
				{true, start.Add(time.Hour + 2*time.Minute)}, // in the pause
				{true, start.Add(50 * time.Minute)},          // in the overlap
			} {
				w, wws, wq := run(want, tc.instant, tc.ts)
				g, gws, gq := run(got, tc.instant, tc.ts)
				requireSameValue(t, w, g)
				require.ElementsMatch(t, wws, gws, "annotations")
				if q != `absent(up{job="api"})` {
					require.NotEmpty(t, w.String(), "instant=%v at %v", tc.instant, tc.ts)
				}
				wq.Close()
				gq.Close()
			}
		})
	}

	// The raw series: the fan-out merges the moved series back into one,
	// bit-exact.
	t.Run("select", func(t *testing.T) {
		mint, maxt := genStart, genStart+genSteps*genStep
		wq, err := want.Querier(mint, maxt)
		require.NoError(t, err)
		defer wq.Close()
		gq, err := got.Querier(mint, maxt)
		require.NoError(t, err)
		defer gq.Close()
		all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
		ws, err := selectAll(t, wq, true, nil, all)
		require.NoError(t, err)
		require.Len(t, ws, 200)
		gs, err := selectAll(t, gq, false, nil, all)
		require.NoError(t, err)
		require.Equal(t, ws, gs)

		// Limit: the first series of the sorted union.
		gs, err = selectAll(t, gq, true, &storage.SelectHints{Limit: 7}, all)
		require.NoError(t, err)
		require.Equal(t, ws[:7], gs)

		// /api/v1/series: labels only.
		hints := &storage.SelectHints{Start: mint, End: maxt, Func: "series"}
		job := labels.MustNewMatcher(labels.MatchEqual, "job", "db")
		ws, err = selectAll(t, wq, true, hints, job)
		require.NoError(t, err)
		gs, err = selectAll(t, gq, true, hints, job)
		require.NoError(t, err)
		require.Len(t, gs, len(ws))
		for i := range ws {
			require.Equal(t, ws[i].Labels, gs[i].Labels)
		}
	})

	t.Run("labels", func(t *testing.T) {
		mint, maxt := genStart, genStart+genSteps*genStep
		wq, err := want.Querier(mint, maxt)
		require.NoError(t, err)
		defer wq.Close()
		gq, err := got.Querier(mint, maxt)
		require.NoError(t, err)
		defer gq.Close()
		for _, tc := range []struct {
			name  string
			label string
			limit int
			ms    []*labels.Matcher
		}{
			{"names", "", 0, nil},
			{"names limit", "", 3, nil},
			{"names of queues", "", 0, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "queue_length")}},
			{"metric names", "__name__", 0, nil},
			{"le", "le", 0, nil},
			{"instances of api", "instance", 0, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "api")}},
			{"queues limit", "queue", 5, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				hints := &storage.LabelHints{Limit: tc.limit}
				var w, g []string
				var err error
				if tc.label == "" {
					w, _, err = wq.LabelNames(ctx, hints, tc.ms...)
					require.NoError(t, err)
					g, _, err = gq.LabelNames(ctx, hints, tc.ms...)
				} else {
					w, _, err = wq.LabelValues(ctx, tc.label, hints, tc.ms...)
					require.NoError(t, err)
					g, _, err = gq.LabelValues(ctx, tc.label, hints, tc.ms...)
				}
				require.NoError(t, err)
				require.NotEmpty(t, w)
				require.Equal(t, w, g)
			})
		}
	})
}

// requireSameValue compares two PromQL results: same series (by labels),
// same timestamps, same value bits (NaNs by NaN-ness). Exact equality is
// not guaranteed in general: aggregations add in the order of their
// input series, the engine's series id order over one group but label
// order over the fan-out's merged set. PromQL's sum and avg use Kahan
// summation, and over this data no value differed in a single bit; a
// data change that makes one differ should compare to 1e-12 relative
// rather than weaken the data.
func requireSameValue(t *testing.T, want, got parser.Value) {
	t.Helper()
	require.Equal(t, want.Type(), got.Type())
	switch w := want.(type) {
	case promql.Matrix:
		g := got.(promql.Matrix)
		require.Equal(t, len(w), len(g), "series")
		slices.SortFunc(w, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
		slices.SortFunc(g, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
		for i := range w {
			require.Equal(t, w[i].Metric.String(), g[i].Metric.String())
			require.Equal(t, len(w[i].Floats), len(g[i].Floats), "%s", w[i].Metric)
			for k := range w[i].Floats {
				require.Equal(t, w[i].Floats[k].T, g[i].Floats[k].T)
				requireClose(t, w[i].Floats[k].F, g[i].Floats[k].F, "%s at %d", w[i].Metric, w[i].Floats[k].T)
			}
			require.Empty(t, g[i].Histograms)
		}
	case promql.Vector:
		g := got.(promql.Vector)
		require.Equal(t, len(w), len(g), "series")
		slices.SortFunc(w, func(a, b promql.Sample) int { return labels.Compare(a.Metric, b.Metric) })
		slices.SortFunc(g, func(a, b promql.Sample) int { return labels.Compare(a.Metric, b.Metric) })
		for i := range w {
			require.Equal(t, w[i].Metric.String(), g[i].Metric.String())
			require.Equal(t, w[i].T, g[i].T)
			requireClose(t, w[i].F, g[i].F, "%s", w[i].Metric)
		}
	case promql.Scalar:
		g := got.(promql.Scalar)
		require.Equal(t, w.T, g.T)
		requireClose(t, w.V, g.V, "scalar")
	default:
		require.Equal(t, want.String(), got.String())
	}
}

func requireClose(t *testing.T, want, got float64, msg string, args ...any) {
	t.Helper()
	if math.Float64bits(want) == math.Float64bits(got) || (math.IsNaN(want) && math.IsNaN(got)) {
		return
	}
	t.Fatalf("%s: want %v, got %v", fmt.Sprintf(msg, args...), want, got)
}
