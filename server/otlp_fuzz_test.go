package server

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/otlptranslator"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/myelindb/myelin/server/limits"
)

// FuzzOTLPHandler: arbitrary bytes as an OTLP/HTTP metrics body, in
// protobuf or JSON, for a tenant of arbitrary OTel settings (bits of
// opts: NHCB, native delta ingestion, no name translation), through the
// whole handler (pdata's decoder,
// Prometheus's translator, our appender, validation, the engine). Nothing
// panics; the answer is 200 or 400 (the content type and the tenant are
// right, there are no limits); a body pdata cannot decode is a 400; a 200
// carries an ExportMetricsServiceResponse in the request's content type,
// whose rejected count is never negative. STYLE.md asks a fuzz target of
// every decoder of outside bytes; `make test` runs the seeds.
//
//	go test -run '^$' -fuzz '^FuzzOTLPHandler$' -fuzztime 60s ./server
func FuzzOTLPHandler(f *testing.F) {
	now := time.UnixMilli(1_000_000)
	seeds := []pmetric.Metrics{
		otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addSum(ms, "http.server.requests", "1", pmetric.AggregationTemporalityCumulative, ts, 7, "http.method", "GET")
			addGauge(ms, "process.memory.usage", "By", ts, 1024)
			addExpHistogram(ms, "latency", ts)
			addSum(ms, "d", "", pmetric.AggregationTemporalityDelta, ts, 1)
			addDeltaHistograms(ms, ts)
			m := ms.AppendEmpty()
			m.SetName("rpc.duration")
			h := m.SetEmptyHistogram()
			h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			dp := h.DataPoints().AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetCount(3)
			dp.ExplicitBounds().FromRaw([]float64{0.1, 1})
			dp.BucketCounts().FromRaw([]uint64{1, 1, 1})
		}),
	}
	for _, md := range otlpShapes(now, 2048) { // small: a seed is run on every make test
		seeds = append(seeds, md)
	}
	for _, md := range seeds {
		req := pmetricotlp.NewExportRequestFromMetrics(md)
		b, err := req.MarshalProto()
		require.NoError(f, err)
		j, err := req.MarshalJSON()
		require.NoError(f, err)
		for _, opts := range []uint8{0, 7} {
			f.Add(b, false, opts)
			f.Add(j, true, opts)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, json bool, opts uint8) {
		d := limits.Defaults()
		d.OTelConvertHistogramsToNHCB = opts&1 != 0
		d.OTelNativeDeltaIngestion = opts&2 != 0
		if opts&4 != 0 {
			d.OTelTranslationStrategy, d.OTelMetricSuffixesEnabled = otlptranslator.NoTranslation, false
		}
		lim, err := limits.NewOverrides(d)
		require.NoError(t, err)
		gw := newGroupWriter(t)
		wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Limits: lim, Now: func() time.Time { return now }})
		require.NoError(t, err)
		h, err := NewOTLPHandler(wh, OTLPOptions{})
		require.NoError(t, err)
		ct := otlpProto
		if json {
			ct = otlpJSON
		}
		w := postOTLP(h, "t1", ct, "", body)
		req := pmetricotlp.NewExportRequest()
		var derr error
		if json {
			derr = req.UnmarshalJSON(body)
		} else {
			derr = req.UnmarshalProto(body)
		}
		switch w.Code {
		case 200:
			require.NoError(t, derr, "a body pdata cannot decode was answered 200")
			require.Equal(t, ct, w.Header().Get("Content-Type"))
			rejected, _ := partial(t, w)
			require.GreaterOrEqual(t, rejected, int64(0))
		case 400:
		default:
			t.Fatalf("answer %d: %s", w.Code, w.Body.String())
		}
	})
}

// FuzzOTLPFast: arbitrary bytes as a protobuf OTLP body, for a tenant
// of arbitrary OTel settings (otlpVariant), through both translations:
// the fast path never takes a body pdata refuses or a request the
// translator refuses part of, and whenever it takes one it lays out the
// same series, samples and histograms and refuses the same points as
// pdata and Prometheus's translator (otlpFastCheck). Seeds: random
// requests of every shape the fast path takes or hands over.
//
//	go test -run '^$' -fuzz '^FuzzOTLPFast$' -fuzztime 60s ./server
func FuzzOTLPFast(f *testing.F) {
	now := time.UnixMilli(1_700_000_000_000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 24 {
		req := pmetricotlp.NewExportRequestFromMetrics(randomOTLP(r, now))
		b, err := req.MarshalProto()
		require.NoError(f, err)
		f.Add(b, uint8(i*37))
	}
	wh, err := NewWriteHandler(nodeWriter(f, nil), WriteOptions{})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte, opts uint8) {
		// Without target_info: both paths write one every 2.5 minutes
		// between a resource's first and last point, and random
		// timestamps are years apart (docs/design.md, "The fast path");
		// TestOTLPFastEquivalence checks target_info.
		h, lim := otlpVariant(wh, opts|128)
		otlpFastCheck(t, h, lim, body)
	})
}
