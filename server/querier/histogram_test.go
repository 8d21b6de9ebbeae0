package querier

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/write"
)

// TestRemoteHistogramsPromQL: PromQL over native histograms read from a
// group through the remote protocol ('H' frames) answers exactly as over
// the group itself: integer counter histograms that grow buckets and
// reset, float gauge histograms, custom buckets, a series that switches
// between floats and histograms, and a histogram stale marker.
func TestRemoteHistogramsPromQL(t *testing.T) {
	ctx := context.Background()
	groups := openGroups(t, engine.Options{Partition: time.Hour}, 5)
	g := groups[5]
	rng := rand.New(rand.NewPCG(3, 4))
	var a applier
	const steps = 2 * 3600 * 1000 / genStep
	counters := map[string]*histogram.Histogram{}
	for i := range steps {
		ts := genStart + int64(i)*genStep
		bb := write.NewBuilder(tenant)
		for _, job := range []string{"api", "db"} {
			for _, kind := range []string{"exp", "nhcb"} {
				l := labels.FromStrings("__name__", "rpc_seconds", "job", job, "kind", kind)
				h := counters[l.String()]
				if h == nil || rng.IntN(150) == 0 {
					h = &histogram.Histogram{Schema: 1, ZeroThreshold: 0.001, PositiveSpans: []histogram.Span{{Length: 2}}, PositiveBuckets: []int64{1, 0}, Count: 2, Sum: 1}
					if kind == "nhcb" {
						h = &histogram.Histogram{Schema: histogram.CustomBucketsSchema, CustomValues: []float64{0.1, 1, 10},
							PositiveSpans: []histogram.Span{{Length: 2}}, PositiveBuckets: []int64{1, 0}, Count: 2, Sum: 1}
					}
				} else {
					h = h.Copy()
					if rng.IntN(40) == 0 && h.PositiveSpans[0].Length < 4 {
						h.PositiveSpans[0].Length++
						h.PositiveBuckets = append(h.PositiveBuckets, 0)
						for _, d := range h.PositiveBuckets[:len(h.PositiveBuckets)-1] {
							h.PositiveBuckets[len(h.PositiveBuckets)-1] -= d
						}
					}
					h.PositiveBuckets[0] += int64(rng.IntN(3)) // the first bucket grows, the others keep their deltas
					var c, abs int64
					for _, d := range h.PositiveBuckets {
						abs += d
						c += abs
					}
					h.Count = uint64(c)
					h.Sum += float64(rng.IntN(10))
					h.CounterResetHint = histogram.UnknownCounterReset
				}
				counters[l.String()] = h
				if job == "db" && kind == "exp" && i == steps-10 {
					require.NoError(t, bb.Add(l, []write.Sample{{T: ts, V: math.Float64frombits(value.StaleNaN)}}))
					continue
				}
				if job == "db" && kind == "exp" && i > steps-10 {
					continue
				}
				require.NoError(t, bb.AddHistograms(l, nil, []write.Histogram{{T: ts, H: h.Copy()}}))
			}
			gauge := &histogram.FloatHistogram{CounterResetHint: histogram.GaugeType, Count: 3, Sum: float64(rng.IntN(100)),
				PositiveSpans: []histogram.Span{{Offset: int32(rng.IntN(2)), Length: 2}}, PositiveBuckets: []float64{1, 2}}
			require.NoError(t, bb.AddHistograms(labels.FromStrings("__name__", "queue_bytes", "job", job), nil, []write.Histogram{{T: ts, FH: gauge}}))
			mixed := labels.FromStrings("__name__", "mixed", "job", job)
			if (i/50)%2 == 0 {
				require.NoError(t, bb.Add(mixed, []write.Sample{{T: ts, V: float64(i)}}))
			} else {
				require.NoError(t, bb.AddHistograms(mixed, nil, []write.Histogram{{T: ts, FH: gauge.Copy()}}))
			}
		}
		a.apply(t, g, bb.Batch())
	}
	srv := serve(t, groups)
	// The data is there, as histograms.
	q, err := g.Querier(tenant, genStart, genStart+steps*genStep)
	require.NoError(t, err)
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "rpc_seconds"))
	n := 0
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for vt := it.Next(); vt != 0; vt = it.Next() {
			n++
		}
	}
	require.NoError(t, q.Close())
	require.Greater(t, n, 4*steps-20)
	want := g.Queryable(tenant)
	got := storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		return NewRemote(srv.Client(), srv.URL, 5, tenant, mint, maxt), nil
	})
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e8, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	start, end := time.UnixMilli(genStart), time.UnixMilli(genStart+steps*genStep)
	for _, q := range []string{
		`rpc_seconds`,
		`rate(rpc_seconds[5m])`,
		`histogram_quantile(0.9, sum by (job, kind) (rate(rpc_seconds[5m])))`,
		`histogram_count(increase(rpc_seconds{kind="nhcb"}[10m]))`,
		`resets(rpc_seconds[1h])`,
		`queue_bytes`,
		`histogram_sum(queue_bytes)`,
		`avg_over_time(queue_bytes[10m])`,
		`mixed`,
		`count_over_time(mixed[10m])`,
	} {
		t.Run(q, func(t *testing.T) {
			run := func(qa storage.Queryable, instant bool) string {
				var qry promql.Query
				var err error
				if instant {
					qry, err = eng.NewInstantQuery(ctx, qa, nil, q, end.Add(-3*time.Minute))
				} else {
					qry, err = eng.NewRangeQuery(ctx, qa, nil, q, start, end, time.Minute)
				}
				require.NoError(t, err)
				defer qry.Close()
				res := qry.Exec(ctx)
				require.NoError(t, res.Err)
				return res.Value.String() + fmt.Sprint(res.Warnings)
			}
			for _, instant := range []bool{false, true} {
				w := run(want, instant)
				require.Greater(t, len(w), 40, "an answer with data: %s", w)
				require.Equal(t, w, run(got, instant), "instant=%v", instant)
			}
		})
	}
}
