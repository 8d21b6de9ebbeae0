package engine

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// TestPromQLMatchesPrometheus runs the same queries through promql.Engine
// over the engine and over Prometheus's own TSDB holding the same samples.
func TestPromQLMatchesPrometheus(t *testing.T) {
	ctx := context.Background()
	prom := teststorage.New(t)
	opts := testOptions(vfs.NewMem())
	opts.ChunkSamples = 30
	opts.Partition = time.Hour       // the data spans 3 partitions
	opts.EvictIdle = 5 * time.Minute // the series with a gap are evicted and revived
	_, g := openTest(t, opts)

	const step = 15_000 // ms
	const n = 2*3600*1000/step + 20
	start := int64(1_700_000_000_000)/3600000*3600000 + 600_000
	rng := newRand(42)
	var lsets []labels.Labels
	for _, job := range []string{"api", "api-canary", "db"} {
		for inst := range 4 {
			for _, code := range []string{"200", "500"} {
				lsets = append(lsets, labels.FromStrings("__name__", "http_requests_total", "job", job,
					"instance", fmt.Sprintf("host-%d", inst), "code", code))
			}
			lsets = append(lsets, labels.FromStrings("__name__", "up", "job", job, "instance", fmt.Sprintf("host-%d", inst)))
		}
	}
	app := prom.Appender(ctx)
	counters := make([]float64, len(lsets))
	index := uint64(0)
	for i := range n {
		ts := start + int64(i)*step
		bb := write.NewBuilder("t")
		for j, l := range lsets {
			if j%7 == 3 && i > n/2 && i < n/2+30 {
				continue // a gap: tests lookback and rate extrapolation
			}
			v := float64(rng.IntN(2))
			if l.Get("__name__") == "http_requests_total" {
				counters[j] += float64(rng.IntN(100))
				if i == n/3 && j%5 == 0 {
					counters[j] = 0 // counter reset
				}
				v = counters[j]
			}
			if j == 0 && i == n-5 {
				v = math.Float64frombits(value.StaleNaN)
			}
			_, err := app.Append(0, l, ts, v)
			require.NoError(t, err)
			require.NoError(t, bb.Add(l, []write.Sample{{T: ts, V: v}}))
		}
		index++
		require.Empty(t, apply(t, g, index, bb.Batch()))
	}
	require.NoError(t, app.Commit())

	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e8, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qStart := time.UnixMilli(start)
	qEnd := time.UnixMilli(start + int64(n)*step)
	for _, q := range []string{
		`up`,
		`rate(http_requests_total[5m])`,
		`sum by (job) (rate(http_requests_total{code!="200"}[5m]))`,
		`count by (__name__) ({__name__=~".+"})`,
		`http_requests_total{job=~"api.*", instance!~"host-[01]"}`,
		`max_over_time(up{job="db"}[10m])`,
		`increase(http_requests_total{zone="", job!="db"}[1h])`,
		`count({job=~"api|db", code=""})`,
		`topk(3, http_requests_total offset 30m)`,
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
				return res.Value.String()
			}
			for _, instant := range []bool{false, true} {
				want := run(prom, instant)
				require.NotEmpty(t, want)
				require.Equal(t, want, run(g.Queryable("t"), instant), "instant=%v", instant)
			}
		})
	}
}
