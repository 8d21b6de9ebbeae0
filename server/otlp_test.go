package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/tenant"
)

// otlpMetrics builds a request of one resource (service "svc",
// instance "i1", attribute host.name) at time ts, and lets fill add its
// metrics.
func otlpMetrics(ts time.Time, fill func(ms pmetric.MetricSlice, ts pcommon.Timestamp)) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "svc")
	rm.Resource().Attributes().PutStr("service.instance.id", "i1")
	rm.Resource().Attributes().PutStr("host.name", "h1")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("test")
	fill(sm.Metrics(), pcommon.NewTimestampFromTime(ts))
	return md
}

func addSum(ms pmetric.MetricSlice, name, unit string, temporality pmetric.AggregationTemporality, ts pcommon.Timestamp, v float64, attrs ...string) {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit(unit)
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(temporality)
	dp := s.DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetDoubleValue(v)
	for i := 0; i < len(attrs); i += 2 {
		dp.Attributes().PutStr(attrs[i], attrs[i+1])
	}
}

func addGauge(ms pmetric.MetricSlice, name, unit string, ts pcommon.Timestamp, v float64, attrs ...string) {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit(unit)
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetDoubleValue(v)
	for i := 0; i < len(attrs); i += 2 {
		dp.Attributes().PutStr(attrs[i], attrs[i+1])
	}
}

func addExpHistogram(ms pmetric.MetricSlice, name string, ts pcommon.Timestamp) {
	m := ms.AppendEmpty()
	m.SetName(name)
	h := m.SetEmptyExponentialHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetCount(2)
	dp.SetSum(3)
	dp.Positive().BucketCounts().FromRaw([]uint64{2})
}

// addDeltaHistograms adds an explicit and an exponential histogram of
// delta temporality, "dh" and "deh".
func addDeltaHistograms(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
	m := ms.AppendEmpty()
	m.SetName("dh")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := h.DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetCount(1)
	dp.ExplicitBounds().FromRaw([]float64{1})
	dp.BucketCounts().FromRaw([]uint64{1, 0})
	addExpHistogram(ms, "deh", ts)
	ms.At(ms.Len() - 1).ExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
}

func otlpBody(t *testing.T, md pmetric.Metrics, json, zip bool) []byte {
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	var b []byte
	var err error
	if json {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	require.NoError(t, err)
	if zip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, err := zw.Write(b)
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		b = buf.Bytes()
	}
	return b
}

func postOTLP(h http.Handler, org, contentType, encoding string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/otlp/v1/metrics", bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	if encoding != "" {
		r.Header.Set("Content-Encoding", encoding)
	}
	if org != "" {
		r.Header.Set(tenant.Header, org)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// partial decodes an ExportMetricsServiceResponse (protobuf or JSON).
func partial(t testing.TB, w *httptest.ResponseRecorder) (int64, string) {
	t.Helper()
	resp := pmetricotlp.NewExportResponse()
	if w.Header().Get("Content-Type") == otlpJSON {
		require.NoError(t, resp.UnmarshalJSON(w.Body.Bytes()))
	} else {
		require.NoError(t, resp.UnmarshalProto(w.Body.Bytes()))
	}
	return resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage()
}

// statusMessage decodes a google.rpc.Status in protobuf.
func statusMessage(t *testing.T, b []byte) (code int, msg string) {
	t.Helper()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		require.GreaterOrEqual(t, n, 0)
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			code, b = int(v), b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			msg, b = string(v), b[n:]
		default:
			t.Fatalf("unexpected field %d", num)
		}
	}
	return code, msg
}

func TestOTLPHandler(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	nowMs := now.UnixMilli()
	counter := func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
		addSum(ms, "http.server.requests", "1", pmetric.AggregationTemporalityCumulative, ts, 7, "http.method", "GET")
		addGauge(ms, "process.memory.usage", "By", ts, 1024)
	}
	want := []string{
		fmt.Sprintf(`{__name__="http_server_requests_total", http_method="GET", instance="i1", job="svc"}: %d=7`, nowMs),
		fmt.Sprintf(`{__name__="process_memory_usage_bytes", instance="i1", job="svc"}: %d=1024`, nowMs),
		fmt.Sprintf(`{__name__="target_info", host_name="h1", instance="i1", job="svc"}: %d=1`, nowMs),
	}
	withHist := append(want[:0:0], want...)
	withHist = append(withHist[:1], append([]string{fmt.Sprintf(`{__name__="latency", instance="i1", job="svc"}: %d={count:2, sum:3, (1,2]:2}`, nowMs)}, withHist[1:]...)...)
	for _, tc := range []struct {
		name       string
		md         pmetric.Metrics
		json, zip  bool
		ct, enc    string
		body       []byte // instead of md
		code       int
		rejected   int64
		msg        string // in the partial success or the status
		want       []string
		noTenantID bool
	}{
		{name: "protobuf", md: otlpMetrics(now, counter), code: 200, want: want},
		{name: "json", md: otlpMetrics(now, counter), json: true, code: 200, want: want},
		{name: "gzip", md: otlpMetrics(now, counter), zip: true, enc: "gzip", code: 200, want: want},
		{name: "json gzip", md: otlpMetrics(now, counter), json: true, zip: true, enc: "gzip", code: 200, want: want},
		{name: "exponential histogram", md: otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			counter(ms, ts)
			addExpHistogram(ms, "latency", ts)
		}), code: 200, want: withHist},
		{name: "delta", md: otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			counter(ms, ts)
			addSum(ms, "d", "", pmetric.AggregationTemporalityDelta, ts, 1)
			addSum(ms, "d", "", pmetric.AggregationTemporalityDelta, ts, 2)
			addDeltaHistograms(ms, ts)
		}), code: 200, rejected: 4, msg: `delta temporality is not supported: 4 data points of delta sums and histograms ("d", "dh", "deh") were not written; ` +
			`Myelin stores cumulative series and does not convert deltas`, want: want},
		{name: "too far in the future", md: func() pmetric.Metrics {
			md := otlpMetrics(now, counter)
			// A resource of its own: no target_info spanning the hour.
			rm := md.ResourceMetrics().AppendEmpty()
			rm.Resource().Attributes().PutStr("service.name", "svc")
			addGauge(rm.ScopeMetrics().AppendEmpty().Metrics(), "future", "", pcommon.NewTimestampFromTime(now.Add(time.Hour)), 1)
			return md
		}(), code: 200, rejected: 1, msg: "too far in the future", want: want},
		{name: "exponential histogram of scale -5", md: otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			counter(ms, ts)
			addExpHistogram(ms, "latency", ts)
			// A point of scale -5 before the valid one: the translator
			// would stop at it and drop the valid one without a word.
			dps := ms.At(ms.Len() - 1).ExponentialHistogram().DataPoints()
			bad := pmetric.NewExponentialHistogramDataPoint()
			dps.At(0).CopyTo(bad)
			bad.SetScale(-5)
			valid := dps.AppendEmpty()
			dps.At(0).CopyTo(valid)
			bad.CopyTo(dps.At(0))
		}), code: 200, rejected: 1, msg: `exponential histograms of a scale below -4 cannot be native histograms: 1 data points ("latency") were not written`, want: withHist},
		{name: "invalid histogram", md: otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			counter(ms, ts)
			addExpHistogram(ms, "latency", ts)
			// Two observations in its one bucket, one counted.
			ms.At(ms.Len() - 1).ExponentialHistogram().DataPoints().At(0).SetCount(1)
		}), code: 200, rejected: 1, msg: `invalid native histogram (histogram 0 at 1000000 ms: 2 observations found in buckets, but the Count field is 1`, want: want},
		{name: "only a histogram written", md: func() pmetric.Metrics {
			md := otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
				addExpHistogram(ms, "latency", ts)
				addSum(ms, "d", "", pmetric.AggregationTemporalityDelta, ts, 1)
			})
			md.ResourceMetrics().At(0).Resource().Attributes().Remove("host.name") // no target_info
			return md
		}(), code: 200, rejected: 1, msg: `delta temporality is not supported: 1 data points of delta sums and histograms ("d")`,
			want: []string{fmt.Sprintf(`{__name__="latency", instance="i1", job="svc"}: %d={count:2, sum:3, (1,2]:2}`, nowMs)}},
		{name: "everything refused", md: otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addDeltaHistograms(ms, ts)
		}), code: 400, msg: `delta temporality is not supported: 2 data points of delta sums and histograms ("dh", "deh")`},
		{name: "undecodable", body: []byte("\xff\xff"), code: 400, msg: "decode OTLP metrics request"},
		{name: "bad gzip", body: []byte("not gzip"), enc: "gzip", code: 400, msg: "decompress gzip body"},
		{name: "snappy", md: otlpMetrics(now, counter), enc: "snappy", code: 415, msg: "unsupported Content-Encoding"},
		{name: "content type", md: otlpMetrics(now, counter), ct: "text/plain", code: 415},
		{name: "no tenant", md: otlpMetrics(now, counter), noTenantID: true, code: 401, msg: "no org id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := newGroupWriter(t)
			wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
			require.NoError(t, err)
			h, err := NewOTLPHandler(wh, OTLPOptions{})
			require.NoError(t, err)
			body := tc.body
			if body == nil {
				body = otlpBody(t, tc.md, tc.json, tc.zip)
			}
			ct := tc.ct
			if ct == "" {
				ct = otlpProto
				if tc.json {
					ct = otlpJSON + "; charset=utf-8"
				}
			}
			org := "t1"
			if tc.noTenantID {
				org = ""
			}
			w := postOTLP(h, org, ct, tc.enc, body)
			require.Equal(t, tc.code, w.Code, w.Body.String())
			switch {
			case tc.code == 200:
				wantCT := otlpProto
				if tc.json {
					wantCT = otlpJSON
				}
				require.Equal(t, wantCT, w.Header().Get("Content-Type"))
				rejected, msg := partial(t, w)
				require.Equal(t, tc.rejected, rejected, msg)
				require.Contains(t, msg, tc.msg)
				if tc.rejected == 0 {
					require.Empty(t, msg)
				}
			case tc.code == 415 && tc.ct != "":
			default:
				_, msg := statusMessage(t, w.Body.Bytes())
				require.Contains(t, msg, tc.msg)
			}
			require.Equal(t, tc.want, stored(t, gw.g, "t1"))
		})
	}
}

// The name strategies and the resource options change the series as
// Prometheus 3's settings of the same names do, per tenant: each case is
// tenant t1's runtime config overrides, and tenant t2 (no overrides)
// keeps the defaults.
func TestOTLPTranslationOptions(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	md := func() pmetric.Metrics {
		return otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addSum(ms, "http.server.requests", "s", pmetric.AggregationTemporalityCumulative, ts, 7, "http.method", "GET")
		})
	}
	defaults := []string{
		`{__name__="http_server_requests_seconds_total", http_method="GET", instance="i1", job="svc"}: 1000000=7`,
		`{__name__="target_info", host_name="h1", instance="i1", job="svc"}: 1000000=1`}
	for _, tc := range []struct {
		name      string
		overrides string // tenant t1's
		opts      OTLPOptions
		want      []string
	}{
		{"default", "", OTLPOptions{}, defaults},
		{"without suffixes", "otel_translation_strategy: UnderscoreEscapingWithoutSuffixes", OTLPOptions{}, []string{
			`{__name__="http_server_requests", http_method="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", host_name="h1", instance="i1", job="svc"}: 1000000=1`}},
		{"Mimir's suffixes switch alone", "otel_metric_suffixes_enabled: false", OTLPOptions{}, []string{
			`{__name__="http_server_requests", http_method="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", host_name="h1", instance="i1", job="svc"}: 1000000=1`}},
		{"UTF-8 with suffixes", "otel_translation_strategy: NoUTF8EscapingWithSuffixes", OTLPOptions{}, []string{
			`{__name__="http.server.requests_seconds_total", "http.method"="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", "host.name"="h1", instance="i1", job="svc"}: 1000000=1`}},
		{"no translation", "otel_translation_strategy: NoTranslation", OTLPOptions{}, []string{
			`{__name__="http.server.requests", "http.method"="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", "host.name"="h1", instance="i1", job="svc"}: 1000000=1`}},
		{"derived: UTF-8 names allowed, no suffixes", "otel_translation_strategy: ''\n    otel_metric_suffixes_enabled: false", OTLPOptions{}, []string{
			`{__name__="http.server.requests", "http.method"="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", "host.name"="h1", instance="i1", job="svc"}: 1000000=1`}},
		{"promoted, no target_info", "promote_otel_resource_attributes: host.name", OTLPOptions{DisableTargetInfo: true}, []string{
			`{__name__="http_server_requests_seconds_total", host_name="h1", http_method="GET", instance="i1", job="svc"}: 1000000=7`}},
		{"identifying attributes kept", "otel_keep_identifying_resource_attributes: true", OTLPOptions{}, []string{
			`{__name__="http_server_requests_seconds_total", http_method="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", host_name="h1", instance="i1", job="svc", service_instance_id="i1", service_name="svc"}: 1000000=1`}},
		{"scope metadata", "otel_promote_scope_metadata: true", OTLPOptions{}, []string{
			`{__name__="http_server_requests_seconds_total", http_method="GET", instance="i1", job="svc", otel_scope_name="test"}: 1000000=7`,
			`{__name__="target_info", host_name="h1", instance="i1", job="svc"}: 1000000=1`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := limits.NewOverrides(limits.Defaults())
			require.NoError(t, err)
			cfg, err := limits.ParseConfig([]byte("overrides:\n  t1:\n    "+tc.overrides+"\n"), limits.Defaults())
			require.NoError(t, err)
			o.Set(cfg)
			gw := newGroupWriter(t)
			wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Limits: o, Now: func() time.Time { return now }})
			require.NoError(t, err)
			h, err := NewOTLPHandler(wh, tc.opts)
			require.NoError(t, err)
			for _, org := range []string{"t1", "t2"} {
				w := postOTLP(h, org, otlpProto, "", otlpBody(t, md(), false, false))
				require.Equal(t, 200, w.Code, w.Body.String())
			}
			require.Equal(t, tc.want, stored(t, gw.g, "t1"))
			if !tc.opts.DisableTargetInfo {
				require.Equal(t, defaults, stored(t, gw.g, "t2"))
			}
		})
	}
}

// otlpShapes are request shapes for the memory bound: realistic
// node_exporter-like gauges, and the densest data points (one-byte
// attributes, many per point; points without attributes).
func otlpShapes(now time.Time, size int) map[string]pmetric.Metrics {
	ts := pcommon.NewTimestampFromTime(now)
	out := map[string]pmetric.Metrics{}
	build := func(name string, point func(ms pmetric.MetricSlice, i int)) {
		md := otlpMetrics(now, func(pmetric.MetricSlice, pcommon.Timestamp) {})
		ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
		for i := 0; ; i++ {
			point(ms, i)
			if i%256 == 0 {
				var sz pmetric.ProtoMarshaler
				if sz.MetricsSize(md) > size {
					break
				}
			}
		}
		out[name] = md
	}
	lsets := nodeExporterSeries(size / 64)
	build("node_exporter", func(ms pmetric.MetricSlice, i int) {
		ls := lsets[i%len(lsets)]
		var attrs []string
		for _, l := range ls {
			if l.Name != "__name__" {
				attrs = append(attrs, l.Name, l.Value)
			}
		}
		addGauge(ms, ls[0].Value, "", ts, float64(i), attrs...)
	})
	build("bare points", func(ms pmetric.MetricSlice, i int) {
		m := ms.AppendEmpty()
		m.SetName("m")
		g := m.SetEmptyGauge()
		for range 64 {
			g.DataPoints().AppendEmpty().SetTimestamp(ts)
		}
	})
	// Exponential histograms: points without buckets or attributes (the
	// most memory per wire byte: a pdata point and a native histogram
	// each), and points of 160 buckets of small counts (one byte each on
	// the wire, 8 in pdata and 8 as the translator's deltas).
	build("bare exponential histograms", func(ms pmetric.MetricSlice, i int) {
		m := ms.AppendEmpty()
		m.SetName("m")
		h := m.SetEmptyExponentialHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for range 64 {
			dp := h.DataPoints().AppendEmpty()
			dp.SetTimestamp(ts)
		}
	})
	build("exponential histograms of 160 buckets", func(ms pmetric.MetricSlice, i int) {
		m := ms.AppendEmpty()
		m.SetName("m")
		h := m.SetEmptyExponentialHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := h.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetScale(3)
		dp.Attributes().PutStr("i", fmt.Sprint(i))
		counts := make([]uint64, 160)
		for j := range counts {
			counts[j] = uint64(j % 5)
			dp.SetCount(dp.Count() + counts[j])
		}
		dp.Positive().BucketCounts().FromRaw(counts)
	})
	build("one-byte attributes", func(ms pmetric.MetricSlice, i int) {
		m := ms.AppendEmpty()
		m.SetName("m")
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		for j := range 28 {
			dp.Attributes().PutStr(string(rune('a'+j%26))+fmt.Sprint(j/26), "v")
		}
	})
	return out
}

// An OTLP request allocates at most otlpMemPerByte bytes per byte of its
// decompressed body, which is what it reserves of the node's in-flight
// bytes (scaled to pushMemPerByte).
func TestOTLPMemory(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, size := range []int{256 << 10, 4 << 20} {
		for name, md := range otlpShapes(now, size) {
			t.Run(fmt.Sprintf("%s/%dKiB", name, size>>10), func(t *testing.T) {
				wh, err := NewWriteHandler(nodeWriter(t, nil), WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
				require.NoError(t, err)
				h, err := NewOTLPHandler(wh, OTLPOptions{})
				require.NoError(t, err)
				for _, zip := range []bool{false, true} {
					body := otlpBody(t, md, false, zip)
					raw := len(otlpBody(t, md, false, false))
					enc := ""
					if zip {
						enc = "gzip"
					}
					for i := range 2 { // cold, then with a pooled state
						r := httptest.NewRequest(http.MethodPost, "/otlp/v1/metrics", bytes.NewReader(body))
						r.Header.Set("Content-Type", otlpProto)
						r.Header.Set("Content-Encoding", enc)
						r.Header.Set(tenant.Header, "t")
						w := httptest.NewRecorder()
						a0 := heapAllocs()
						h.ServeHTTP(w, r)
						alloc := heapAllocs() - a0
						require.Equal(t, 200, w.Code, w.Body.String())
						t.Logf("gzip %v request %d: %d+%d bytes, allocated %d (%.2f per decompressed byte)",
							zip, i, len(body), raw, alloc, float64(alloc)/float64(raw))
						if limit := otlpMemPerByte*raw + 256<<10; alloc > uint64(limit) {
							t.Errorf("allocated %d bytes, over %d per decompressed byte (%d)", alloc, otlpMemPerByte, limit)
						}
					}
				}
				runtime.KeepAlive(md)
			})
		}
	}
}

// Exponential histograms become native histograms as Prometheus 3's
// OTLP receiver makes them (its translator, then its appender's
// rules): scales above 8 merged down to schema 8, OTel's bucket index i
// as Prometheus's i+1, the zero bucket with Prometheus's threshold
// (1e-128; OTel's zero_threshold, min and max are not kept), no recorded
// value as the stale marker. Explicit histograms become native
// histograms with custom buckets for a tenant with
// otel_convert_histograms_to_nhcb, and deltas are stored raw for one
// with otel_native_delta_ingestion.
func TestOTLPNativeHistograms(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	expo := func(name string, scale int32, fill func(dp pmetric.ExponentialHistogramDataPoint)) func(pmetric.MetricSlice, pcommon.Timestamp) {
		return func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			m := ms.AppendEmpty()
			m.SetName(name)
			m.SetUnit("s")
			h := m.SetEmptyExponentialHistogram()
			h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			dp := h.DataPoints().AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetScale(scale)
			fill(dp)
		}
	}
	explicit := func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
		m := ms.AppendEmpty()
		m.SetName("rpc.duration")
		m.SetUnit("s")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := h.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetCount(6)
		dp.SetSum(5)
		dp.ExplicitBounds().FromRaw([]float64{0.1, 1})
		dp.BucketCounts().FromRaw([]uint64{1, 2, 3})
	}
	for _, tc := range []struct {
		name      string
		overrides string
		fill      func(pmetric.MetricSlice, pcommon.Timestamp)
		want      string // the one series but target_info
		stale     bool   // want is a stale marker
	}{
		{name: "scale 10 to schema 8, zero and negative buckets, min and max ignored",
			fill: expo("latency", 10, func(dp pmetric.ExponentialHistogramDataPoint) {
				dp.SetCount(9)
				dp.SetSum(1.5)
				dp.SetMin(-5)
				dp.SetMax(10)
				dp.SetZeroCount(3)
				dp.SetZeroThreshold(0.5)
				dp.Positive().BucketCounts().FromRaw([]uint64{1, 1, 1, 1}) // OTel indexes 0-3: Prometheus's 1-4 at schema 10, 1 at 8
				dp.Negative().SetOffset(-1)
				dp.Negative().BucketCounts().FromRaw([]uint64{2})
			}),
			want: `{__name__="latency_seconds", instance="i1", job="svc"}: 1000000={count:9, sum:1.5, [-1,-0.9972960560854698):2, [-1e-128,1e-128]:3, (1,1.0027112750502025]:4}`},
		{name: "scale 8 kept", fill: expo("latency", 8, func(dp pmetric.ExponentialHistogramDataPoint) {
			dp.SetCount(1)
			dp.SetSum(1.001)
			dp.Positive().BucketCounts().FromRaw([]uint64{1})
		}), want: `{__name__="latency_seconds", instance="i1", job="svc"}: 1000000={count:1, sum:1.001, (1,1.0027112750502025]:1}`},
		{name: "no recorded value is the stale marker", fill: expo("latency", 0, func(dp pmetric.ExponentialHistogramDataPoint) {
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		}), want: `{__name__="latency_seconds", instance="i1", job="svc"}: 1000000={count:0, sum:NaN}`, stale: true},
		{name: "explicit buckets as classic series by default", fill: explicit,
			want: `{__name__="rpc_duration_seconds_bucket", instance="i1", job="svc", le="+Inf"}: 1000000=6`},
		{name: "explicit buckets as NHCB", overrides: "otel_convert_histograms_to_nhcb: true", fill: explicit,
			want: `{__name__="rpc_duration_seconds", instance="i1", job="svc"}: 1000000={count:6, sum:5, [-Inf,0.1]:1, (0.1,1]:2, (1,+Inf]:3}`},
		{name: "native delta: a raw delta sum", overrides: "otel_native_delta_ingestion: true", fill: func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addSum(ms, "d", "", pmetric.AggregationTemporalityDelta, ts, 2.5)
		}, want: `{__name__="d_total", instance="i1", job="svc"}: 1000000=2.5`},
		{name: "native delta: a raw delta exponential histogram", overrides: "otel_native_delta_ingestion: true", fill: func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			expo("deh", 0, func(dp pmetric.ExponentialHistogramDataPoint) {
				dp.SetCount(2)
				dp.SetSum(3)
				dp.Positive().BucketCounts().FromRaw([]uint64{2})
			})(ms, ts)
			ms.At(0).ExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		}, want: `{__name__="deh_seconds", instance="i1", job="svc"}: 1000000={count:2, sum:3, (1,2]:2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := limits.NewOverrides(limits.Defaults())
			require.NoError(t, err)
			if tc.overrides != "" {
				cfg, err := limits.ParseConfig([]byte("overrides:\n  t1:\n    "+tc.overrides+"\n"), limits.Defaults())
				require.NoError(t, err)
				o.Set(cfg)
			}
			gw := newGroupWriter(t)
			wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Limits: o, Now: func() time.Time { return now }})
			require.NoError(t, err)
			h, err := NewOTLPHandler(wh, OTLPOptions{DisableTargetInfo: true})
			require.NoError(t, err)
			w := postOTLP(h, "t1", otlpProto, "", otlpBody(t, otlpMetrics(now, tc.fill), false, false))
			require.Equal(t, 200, w.Code, w.Body.String())
			rejected, msg := partial(t, w)
			require.Zero(t, rejected, msg)
			got := stored(t, gw.g, "t1")
			require.Contains(t, got, tc.want, "stored: %q", got)
			if tc.stale {
				q, err := gw.g.Querier("t1", 0, 1<<62)
				require.NoError(t, err)
				defer q.Close()
				ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "latency_seconds"))
				require.True(t, ss.Next())
				it := ss.At().Iterator(nil)
				require.Equal(t, chunkenc.ValHistogram, it.Next())
				_, hist := it.AtHistogram(nil)
				require.True(t, value.IsStaleNaN(hist.Sum), "not the stale marker: %v", hist)
			}
		})
	}
}

// A pooled OTLP state holds no histogram of the request it served: the
// next request starts from empty slices, and the old histograms can be
// collected.
func TestOTLPStateReleasesHistograms(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	gw := newGroupWriter(t)
	wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
	require.NoError(t, err)
	h, err := NewOTLPHandler(wh, OTLPOptions{})
	require.NoError(t, err)
	st := &otlpState{}
	md := otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) { addExpHistogram(ms, "latency", ts) })
	tr, err := h.translate(context.Background(), wh.opts.Limits.For("t1"), st, otlpBody(t, md, false, false), otlpProto)
	require.NoError(t, err)
	res, msg, err := h.write(context.Background(), "t1", st, tr)
	require.NoError(t, err)
	require.Equal(t, 1, res.histograms, msg)
	require.Len(t, st.push.hists, 1)
	require.Len(t, st.push.built, 1)
	h.putState(st)
	require.Empty(t, st.push.hists)
	require.Empty(t, st.push.built)
	for _, x := range st.push.hists[:cap(st.push.hists)] {
		require.Nil(t, x.H)
	}
	for _, x := range st.push.built[:cap(st.push.built)] {
		require.Nil(t, x.H)
	}
}

// TestOTLPTargetInfoBound: a resource whose data points span a year
// would make 210,000 target_info samples (250 MB from 140 bytes): the
// request's points are written, its target_info is not, and the partial
// success says why; a day's span is written as Prometheus writes it. The
// fast path and the pdata path answer alike.
func TestOTLPTargetInfoBound(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	spanned := func(span time.Duration) pmetric.Metrics {
		return otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addGauge(ms, "g", "", pcommon.NewTimestampFromTime(now.Add(-span)), 2)
			dp := ms.At(0).Gauge().DataPoints().AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetDoubleValue(1)
		})
	}
	for _, pdataOnly := range []bool{false, true} {
		for _, tc := range []struct {
			span       time.Duration
			targetInfo int // samples written
		}{
			{365 * 24 * time.Hour, 0},
			{24 * time.Hour, 577},
			{24*time.Hour + 150*time.Second, 0},
			{time.Minute, 2},
		} {
			t.Run(fmt.Sprintf("pdata=%v/%v", pdataOnly, tc.span), func(t *testing.T) {
				gw := newGroupWriter(t)
				wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
				require.NoError(t, err)
				h, err := NewOTLPHandler(wh, OTLPOptions{})
				require.NoError(t, err)
				h.pdataOnly = pdataOnly
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				w := postOTLP(h, "t1", otlpProto, "", otlpBody(t, spanned(tc.span), false, false))
				runtime.ReadMemStats(&m1)
				require.Equal(t, http.StatusOK, w.Code, w.Body.String())
				rejected, msg := partial(t, w)
				require.Zero(t, rejected)
				var g, ti int
				for _, s := range stored(t, gw.g, "t1") {
					n := strings.Count(s, "=") - strings.Count(strings.SplitN(s, "}", 2)[0], "=")
					switch {
					case strings.HasPrefix(s, `{__name__="g"`):
						g += n
					case strings.HasPrefix(s, `{__name__="target_info"`):
						ti += n
					}
				}
				require.Equal(t, 2, g, "the data points are written")
				require.Equal(t, tc.targetInfo, ti)
				if tc.targetInfo == 0 {
					require.Contains(t, msg, "target_info was not written for this request (its data points were)")
					require.Less(t, m1.TotalAlloc-m0.TotalAlloc, uint64(64<<20), "the request allocated as if it wrote the target_info")
				} else {
					require.Empty(t, msg)
				}
			})
		}
	}
}
