package engine

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// TestHistogramPromQLMatchesPrometheus runs PromQL over native
// histograms through promql.Engine over the engine and over Prometheus's
// TSDB holding the same samples: integer counter histograms whose
// buckets grow (recoded chunks), reset (new chunks) and change schema,
// float gauge histograms, custom-bucket (NHCB) histograms, a series that
// switches between floats and histograms, stale markers written as float
// StaleNaN (stored as histogram stale markers, as Prometheus's head
// does), partitions, eviction and a restart in the middle.
func TestHistogramPromQLMatchesPrometheus(t *testing.T) {
	ctx := context.Background()
	prom := teststorage.New(t)
	fs := vfs.NewMem()
	opts := testOptions(fs)
	opts.ChunkSamples = 30
	opts.Partition = time.Hour
	opts.EvictIdle = 5 * time.Minute
	db, err := Open(opts)
	require.NoError(t, err)
	g, _, err := db.OpenGroup(7)
	require.NoError(t, err)

	const step = 15_000
	const n = 2*3600*1000/step + 20
	start := int64(1_700_000_000_000)/3600000*3600000 + 600_000
	rng := newRand(7)
	type hseries struct {
		lset  labels.Labels
		kind  string // counter, gauge, nhcb, mixed
		state *histogram.Histogram
	}
	var ss []*hseries
	for _, job := range []string{"api", "db"} {
		for inst := range 3 {
			l := func(name string) labels.Labels {
				return labels.FromStrings("__name__", name, "job", job, "instance", fmt.Sprintf("host-%d", inst))
			}
			ss = append(ss,
				&hseries{lset: l("rpc_seconds"), kind: "counter"},
				&hseries{lset: l("queue_bytes"), kind: "gauge"},
				&hseries{lset: l("req_seconds"), kind: "nhcb"},
				&hseries{lset: l("mixed_metric"), kind: "mixed"},
			)
		}
	}
	app := prom.Appender(ctx)
	index := uint64(0)
	log := map[uint64]*write.Batch{} // the Raft log, for the replay after the restart
	for i := range n {
		ts := start + int64(i)*step
		bb := write.NewBuilder("t")
		for j, s := range ss {
			if j%5 == 3 && i > n/2 && i < n/2+30 {
				continue // a gap: lookback, eviction and revival
			}
			var smp []write.Sample
			var hs []write.Histogram
			stale := j == 0 && i == n-5
			switch {
			case stale:
				smp = append(smp, write.Sample{T: ts, V: math.Float64frombits(value.StaleNaN)})
				_, err := app.Append(0, s.lset, ts, smp[0].V)
				require.NoError(t, err)
			case s.kind == "mixed" && (i/40)%2 == 1:
				v := float64(i)
				smp = append(smp, write.Sample{T: ts, V: v})
				_, err := app.Append(0, s.lset, ts, v)
				require.NoError(t, err)
			case s.kind == "gauge":
				h := &histogram.FloatHistogram{CounterResetHint: histogram.GaugeType, Schema: 0, ZeroThreshold: 0.001,
					PositiveSpans: []histogram.Span{{Offset: int32(rng.IntN(2)), Length: 3}}}
				for range 3 {
					c := float64(rng.IntN(50))
					h.PositiveBuckets = append(h.PositiveBuckets, c)
					h.Count += c
				}
				h.Sum = h.Count * 1.5
				hs = append(hs, write.Histogram{T: ts, FH: h})
				_, err := app.AppendHistogram(0, s.lset, ts, nil, h.Copy())
				require.NoError(t, err)
			default:
				s.state = nextCounterHistogram(rng, s.state, s.kind == "nhcb", i == n/3 && j%3 == 0, i == n/4 && j%4 == 0)
				h := s.state.Copy()
				hs = append(hs, write.Histogram{T: ts, H: h})
				_, err := app.AppendHistogram(0, s.lset, ts, h.Copy(), nil)
				require.NoError(t, err)
			}
			require.NoError(t, bb.AddHistograms(s.lset, smp, hs))
		}
		index++
		log[index] = bb.Batch()
		require.Empty(t, apply(t, g, index, log[index]))
		if i == n/2 {
			require.NoError(t, g.Checkpoint())
		}
		if i == n/2+50 { // restart: replay from the checkpoint
			require.NoError(t, db.Close())
			db, err = Open(opts)
			require.NoError(t, err)
			var from uint64
			g, from, err = db.OpenGroup(7)
			require.NoError(t, err)
			require.Less(t, from, index)
			for k := from + 1; k <= index; k++ {
				require.Empty(t, apply(t, g, k, log[k]))
			}
		}
	}
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	require.NoError(t, app.Commit())

	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e8, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, EnableAtModifier: true})
	qStart := time.UnixMilli(start)
	qEnd := time.UnixMilli(start + int64(n)*step)
	for _, q := range []string{
		`rpc_seconds`,
		`queue_bytes`,
		`req_seconds`,
		`mixed_metric`,
		`rate(rpc_seconds[5m])`,
		`histogram_quantile(0.9, sum by (job) (rate(rpc_seconds[5m])))`,
		`histogram_quantile(0.5, rate(req_seconds[10m]))`,
		`histogram_count(increase(rpc_seconds[10m]))`,
		`histogram_sum(queue_bytes)`,
		`histogram_fraction(0, 2, queue_bytes)`,
		`histogram_avg(rate(req_seconds[5m]))`,
		`histogram_stddev(queue_bytes)`,
		`sum(queue_bytes)`,
		`avg_over_time(queue_bytes[10m])`,
		`resets(rpc_seconds[30m])`,
		`count_over_time(mixed_metric[10m])`,
		`rate(mixed_metric[5m])`,
		`last_over_time(rpc_seconds[1h])`,
	} {
		t.Run(q, func(t *testing.T) {
			run := func(qa storage.Queryable, instant bool) string {
				var qry promql.Query
				var err error
				if instant {
					qry, err = eng.NewInstantQuery(ctx, qa, nil, q, qEnd.Add(-10*time.Minute))
				} else {
					qry, err = eng.NewRangeQuery(ctx, qa, nil, q, qStart, qEnd, time.Minute)
				}
				require.NoError(t, err)
				defer qry.Close()
				res := qry.Exec(ctx)
				require.NoError(t, res.Err)
				return res.Value.String() + fmt.Sprint(res.Warnings)
			}
			for _, instant := range []bool{false, true} {
				want := run(prom, instant)
				require.NotEmpty(t, want)
				require.Equal(t, want, run(g.Queryable("t"), instant), "instant=%v", instant)
			}
		})
	}
}

// nextCounterHistogram returns the next sample of a counter histogram:
// counts grow, a bucket appears now and then (the chunk is recoded), and
// reset or schema (a new chunk) as asked. nhcb: custom buckets.
func nextCounterHistogram(rng randSource, prev *histogram.Histogram, nhcb, reset, reschema bool) *histogram.Histogram {
	if prev == nil || reset {
		h := &histogram.Histogram{Schema: 1, ZeroThreshold: 0.001,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 0}, Count: 2, Sum: 1}
		if nhcb {
			h = &histogram.Histogram{Schema: histogram.CustomBucketsSchema, CustomValues: []float64{0.1, 0.5, 1, 5},
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 0}, Count: 2, Sum: 1}
		}
		return h
	}
	h := prev.Copy()
	if reschema && !nhcb {
		if err := h.ReduceResolution(0); err != nil {
			panic(err)
		}
	}
	if rng.IntN(20) == 0 && h.PositiveSpans[len(h.PositiveSpans)-1].Length < 5 {
		// A new bucket at the end.
		h.PositiveSpans[len(h.PositiveSpans)-1].Length++
		h.PositiveBuckets = append(h.PositiveBuckets, -sumDeltas(h.PositiveBuckets))
	}
	// Add to every bucket: deltas stay, the first grows.
	abs := make([]int64, len(h.PositiveBuckets))
	var c int64
	for i, d := range h.PositiveBuckets {
		c += d
		abs[i] = c + int64(rng.IntN(5))
	}
	var prevAbs, total int64
	for i, a := range abs {
		h.PositiveBuckets[i] = a - prevAbs
		prevAbs = a
		total += a
	}
	h.Count = uint64(total) + h.ZeroCount
	h.Sum += float64(rng.IntN(100)) / 10
	h.CounterResetHint = histogram.UnknownCounterReset
	return h
}

func sumDeltas(d []int64) int64 {
	var s int64
	for _, x := range d {
		s += x
	}
	return s
}
