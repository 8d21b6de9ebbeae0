package server

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/encoding/protowire"

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
func partial(t *testing.T, w *httptest.ResponseRecorder) (int64, string) {
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
		}), code: 200, rejected: 1, msg: "exponential histograms are not supported yet (they need native histograms): 1 data points were not written", want: want},
		{name: "delta", md: otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			counter(ms, ts)
			addSum(ms, "d", "", pmetric.AggregationTemporalityDelta, ts, 1)
		}), code: 200, rejected: 1, msg: `delta temporality is not supported: 1 data points of delta sums and histograms (the first "d") were not written`, want: want},
		{name: "too far in the future", md: func() pmetric.Metrics {
			md := otlpMetrics(now, counter)
			// A resource of its own: no target_info spanning the hour.
			rm := md.ResourceMetrics().AppendEmpty()
			rm.Resource().Attributes().PutStr("service.name", "svc")
			addGauge(rm.ScopeMetrics().AppendEmpty().Metrics(), "future", "", pcommon.NewTimestampFromTime(now.Add(time.Hour)), 1)
			return md
		}(), code: 200, rejected: 1, msg: "too far in the future", want: want},
		{name: "everything refused", md: otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addExpHistogram(ms, "latency", ts)
		}), code: 400, msg: "exponential histograms are not supported yet"},
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
// Prometheus 3's settings of the same names do.
func TestOTLPTranslationOptions(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	md := func() pmetric.Metrics {
		return otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addSum(ms, "http.server.requests", "s", pmetric.AggregationTemporalityCumulative, ts, 7, "http.method", "GET")
		})
	}
	for _, tc := range []struct {
		name string
		opts OTLPOptions
		want []string
	}{
		{"default", OTLPOptions{}, []string{
			`{__name__="http_server_requests_seconds_total", http_method="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", host_name="h1", instance="i1", job="svc"}: 1000000=1`}},
		{"without suffixes", OTLPOptions{TranslationStrategy: "UnderscoreEscapingWithoutSuffixes"}, []string{
			`{__name__="http_server_requests", http_method="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", host_name="h1", instance="i1", job="svc"}: 1000000=1`}},
		{"UTF-8 with suffixes", OTLPOptions{TranslationStrategy: "NoUTF8EscapingWithSuffixes"}, []string{
			`{__name__="http.server.requests_seconds_total", "http.method"="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", "host.name"="h1", instance="i1", job="svc"}: 1000000=1`}},
		{"no translation", OTLPOptions{TranslationStrategy: "NoTranslation"}, []string{
			`{__name__="http.server.requests", "http.method"="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", "host.name"="h1", instance="i1", job="svc"}: 1000000=1`}},
		{"promoted, no target_info", OTLPOptions{PromoteResourceAttributes: []string{"host.name"}, DisableTargetInfo: true}, []string{
			`{__name__="http_server_requests_seconds_total", host_name="h1", http_method="GET", instance="i1", job="svc"}: 1000000=7`}},
		{"identifying attributes kept", OTLPOptions{KeepIdentifyingResourceAttributes: true}, []string{
			`{__name__="http_server_requests_seconds_total", http_method="GET", instance="i1", job="svc"}: 1000000=7`,
			`{__name__="target_info", host_name="h1", instance="i1", job="svc", service_instance_id="i1", service_name="svc"}: 1000000=1`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := newGroupWriter(t)
			wh, err := NewWriteHandler(gw, WriteOptions{Now: func() time.Time { return now }})
			require.NoError(t, err)
			h, err := NewOTLPHandler(wh, tc.opts)
			require.NoError(t, err)
			w := postOTLP(h, "", otlpProto, "", otlpBody(t, md(), false, false))
			require.Equal(t, 200, w.Code, w.Body.String())
			require.Equal(t, tc.want, stored(t, gw.g, "anonymous"))
		})
	}
	_, err := NewOTLPHandler(nil, OTLPOptions{TranslationStrategy: "Bogus"})
	require.ErrorContains(t, err, `unknown OTLP translation strategy "Bogus"`)
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
