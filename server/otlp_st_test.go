package server

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// TestOTLPStartTimestamps: a cumulative sum's and an exponential
// histogram's start time (StartTimeUnixNano) are stored as the samples'
// start timestamps, read back through AtST; a gauge has none.
func TestOTLPStartTimestamps(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	start := pcommon.NewTimestampFromTime(time.UnixMilli(940_500))
	gw := newGroupWriter(t)
	wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
	require.NoError(t, err)
	h, err := NewOTLPHandler(wh, OTLPOptions{DisableTargetInfo: true})
	require.NoError(t, err)
	md := otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
		addSum(ms, "requests", "", pmetric.AggregationTemporalityCumulative, ts, 7)
		ms.At(0).Sum().DataPoints().At(0).SetStartTimestamp(start)
		addGauge(ms, "temp", "", ts, 21)
		m := ms.AppendEmpty()
		m.SetName("latency")
		eh := m.SetEmptyExponentialHistogram()
		eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := eh.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetStartTimestamp(start)
		dp.SetCount(1)
		dp.SetSum(1.5)
		dp.Positive().BucketCounts().FromRaw([]uint64{1})
	})
	w := postOTLP(h, "t1", otlpProto, "", otlpBody(t, md, false, false))
	require.Equal(t, 200, w.Code, w.Body.String())
	q, err := gw.g.Querier("t1", 0, 1<<62)
	require.NoError(t, err)
	defer q.Close()
	got := map[string]int64{}
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		it := ss.At().Iterator(nil)
		require.NotEqual(t, chunkenc.ValNone, it.Next())
		got[ss.At().Labels().Get("__name__")] = it.AtST()
	}
	require.NoError(t, ss.Err())
	require.Equal(t, map[string]int64{"requests_total": 940_500, "temp": 0, "latency": 940_500}, got)
}
