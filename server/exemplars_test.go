package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/myelindb/myelin/server/querier"
)

// requireJSON compares a JSON answer's data with want, both parsed.
func requireJSON(t *testing.T, want string, got json.RawMessage) {
	t.Helper()
	var w, g any
	require.NoError(t, json.Unmarshal([]byte(want), &w), want)
	require.NoError(t, json.Unmarshal(got, &g), string(got))
	require.Equal(t, w, g, "got %s", got)
}

// TestExemplarsAndMetadata writes exemplars and metadata by remote write
// 1.0 and 2.0 through the distributor into two groups, and reads them
// back with /api/v1/query_exemplars and /api/v1/metadata in Prometheus's
// JSON: the Written header counts exactly, invalid and out-of-order
// exemplars get a 400 while the rest is written, and tenants see only
// their own.
func TestExemplarsAndMetadata(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	o := testOverrides(t, `
overrides:
  ex:
    max_global_exemplars_per_user: 100
  other:
    max_global_exemplars_per_user: 100
`)
	d, groups := limitedNode(t, 2, o)
	reg := prometheus.NewRegistry()
	h, err := NewWriteHandler(d, WriteOptions{MultiTenant: true, Limits: o, Now: func() time.Time { return now }, Registerer: reg})
	require.NoError(t, err)
	api, err := NewQueryAPI(querier.New(engineReadGroups(groups), querier.Options{}), QueryOptions{MultiTenant: true, Limits: o})
	require.NoError(t, err)

	// 1.0: two series with exemplars, one exemplar too long; metadata of
	// two families, one without a name.
	long := strings.Repeat("x", 130)
	req := prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{Labels: []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "job", Value: "api"}},
				Samples: []prompb.Sample{{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: 2}},
				Exemplars: []prompb.Exemplar{
					{Labels: []prompb.Label{{Name: "trace_id", Value: "t1"}}, Value: 1, Timestamp: 1000},
					{Labels: []prompb.Label{{Name: "trace_id", Value: long}}, Value: 2, Timestamp: 2000},
				}},
			{Labels: []prompb.Label{{Name: "__name__", Value: "rpc_seconds_bucket"}, {Name: "le", Value: "0.5"}},
				Samples: []prompb.Sample{{Timestamp: 1000, Value: 3}},
				// Unsorted labels, an empty value dropped.
				Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "t2"}, {Name: "span_id", Value: "s2"}, {Name: "empty", Value: ""}}, Value: 0.3, Timestamp: 1000}}},
		},
		Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests.", Unit: ""},
			{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "rpc_seconds", Help: "RPC latency.", Unit: "seconds"},
			{Type: prompb.MetricMetadata_GAUGE, Help: "no name"},
		},
	}
	w := post(h, "/api/v1/push", "ex", "", encodeRW1(t, &req))
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), `exemplar 1 of series {__name__="http_requests_total", job="api"}`)
	require.Contains(t, w.Body.String(), "label length for exemplar exceeds maximum of 128 UTF-8 characters")
	require.Contains(t, w.Body.String(), "1 exemplars refused in total")
	require.Contains(t, w.Body.String(), "no metric family name; 1 metadata refused in total")
	require.Contains(t, w.Body.String(), "2 series (3 samples, 2 exemplars) were written")

	// 2.0: exemplars counted exactly in the header; one older than its
	// series' newest is refused (Prometheus's out of order exemplar).
	st := writev2.NewSymbolTable()
	s := v2Series(&st, []string{"__name__", "http_requests_total", "job", "api"}, writev2.Sample{Timestamp: 3000, Value: 3})
	s.Exemplars = []writev2.Exemplar{
		{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("t3")}, Value: 3, Timestamp: 3000},
		{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("t0")}, Value: 0.5, Timestamp: 500},
	}
	s.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Requests.")}
	w = post(h, "/api/v1/write", "ex", contentTypeV2, encodeV2(t, &st, s))
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Equal(t, counts(1, 0, 1), written(w))
	require.Contains(t, w.Body.String(), "exemplar 1 at 500: out of order exemplar: 1 of 2 exemplars refused in series")

	st = writev2.NewSymbolTable()
	s = v2Series(&st, []string{"__name__", "http_requests_total", "job", "api"}, writev2.Sample{Timestamp: 4000, Value: 4})
	s.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("t4")}, Value: 4, Timestamp: 4000}}
	w = post(h, "/api/v1/write", "ex", contentTypeV2, encodeV2(t, &st, s))
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, counts(1, 0, 1), written(w))
	w = post(h, "/api/v1/write", "ex", contentTypeV2, encodeV2(t, &st, s))
	require.Equal(t, http.StatusNoContent, w.Code, "a retry is accepted: %s", w.Body.String())
	require.Equal(t, counts(1, 0, 1), written(w))

	// As Prometheus 3.14's 2.0 sender sends them: exemplars in series of
	// their own, after the samples; exemplars of a series without samples
	// are refused.
	st = writev2.NewSymbolTable()
	s = v2Series(&st, []string{"__name__", "http_requests_total", "job", "api"}, writev2.Sample{Timestamp: 5000, Value: 5})
	exOnly := v2Series(&st, []string{"__name__", "http_requests_total", "job", "api"})
	exOnly.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("t5")}, Value: 5, Timestamp: 5000}}
	orphan := v2Series(&st, []string{"__name__", "orphan"})
	orphan.Exemplars = []writev2.Exemplar{{Value: 1, Timestamp: 5000}}
	w = post(h, "/api/v1/write", "ex", contentTypeV2, encodeV2(t, &st, s, exOnly, orphan))
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Equal(t, counts(1, 0, 1), written(w))
	require.Contains(t, w.Body.String(), `exemplar for a series with no samples in the head: 1 of 1 exemplars refused in series {__name__="orphan"}`)

	code, resp := call(t, api, http.MethodGet, "/api/v1/query_exemplars", "ex", url.Values{
		"query": {`http_requests_total or rpc_seconds_bucket`}, "start": {"0"}, "end": {"10"}})
	require.Equal(t, http.StatusOK, code, resp.Error)
	requireJSON(t, `[
		{"seriesLabels": {"__name__": "http_requests_total", "job": "api"}, "exemplars": [
			{"labels": {"trace_id": "t1"}, "value": "1", "timestamp": 1},
			{"labels": {"trace_id": "t3"}, "value": "3", "timestamp": 3},
			{"labels": {"trace_id": "t4"}, "value": "4", "timestamp": 4},
			{"labels": {"trace_id": "t5"}, "value": "5", "timestamp": 5}]},
		{"seriesLabels": {"__name__": "rpc_seconds_bucket", "le": "0.5"}, "exemplars": [
			{"labels": {"span_id": "s2", "trace_id": "t2"}, "value": "0.3", "timestamp": 1}]}
	]`, resp.Data)
	code, resp = call(t, api, http.MethodPost, "/api/v1/query_exemplars", "ex", url.Values{
		"query": {`http_requests_total`}, "start": {"2.5"}, "end": {"3.5"}})
	require.Equal(t, http.StatusOK, code, resp.Error)
	requireJSON(t, `[{"seriesLabels": {"__name__": "http_requests_total", "job": "api"}, "exemplars": [
		{"labels": {"trace_id": "t3"}, "value": "3", "timestamp": 3}]}]`, resp.Data)

	code, resp = call(t, api, http.MethodGet, "/api/v1/metadata", "ex", nil)
	require.Equal(t, http.StatusOK, code, resp.Error)
	requireJSON(t, `{
		"http_requests_total": [{"type": "counter", "help": "Requests.", "unit": ""}],
		"rpc_seconds": [{"type": "histogram", "help": "RPC latency.", "unit": "seconds"}]
	}`, resp.Data)
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"metric": {"rpc_seconds"}}, `{"rpc_seconds": [{"type": "histogram", "help": "RPC latency.", "unit": "seconds"}]}`},
		{url.Values{"limit": {"1"}}, `{"http_requests_total": [{"type": "counter", "help": "Requests.", "unit": ""}]}`},
		{url.Values{"metric": {"nope"}}, `{}`},
	} {
		code, resp = call(t, api, http.MethodGet, "/api/v1/metadata", "ex", c.form)
		require.Equal(t, http.StatusOK, code, resp.Error)
		requireJSON(t, c.want, resp.Data)
	}
	code, resp = call(t, api, http.MethodGet, "/api/v1/metadata", "ex", url.Values{"limit": {"x"}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "limit must be a number", resp.Error)

	// Another tenant sees none of it.
	code, resp = call(t, api, http.MethodGet, "/api/v1/query_exemplars", "other", url.Values{"query": {`{__name__=~".+"}`}, "start": {"0"}, "end": {"10"}})
	require.Equal(t, http.StatusOK, code, resp.Error)
	requireJSON(t, `[]`, resp.Data)
	code, resp = call(t, api, http.MethodGet, "/api/v1/metadata", "other", nil)
	require.Equal(t, http.StatusOK, code, resp.Error)
	requireJSON(t, `{}`, resp.Data)

	for _, c := range []struct{ metric, labels, want string }{
		{"myelin_ingested_exemplars_total", `tenant="ex"`, "6"},
		{"myelin_discarded_exemplars_total", `reason="exemplar_invalid",tenant="ex"`, "1"},
		{"myelin_discarded_exemplars_total", `reason="exemplar_out_of_order",tenant="ex"`, "1"},
		{"myelin_discarded_exemplars_total", `reason="exemplar_series_missing",tenant="ex"`, "1"},
		{"myelin_discarded_metadata_total", `reason="metadata_invalid",tenant="ex"`, "1"},
	} {
		require.Contains(t, gatherText(t, reg, c.metric), c.metric+"{"+c.labels+"} "+c.want, c.metric)
	}
}

// TestExemplarLimits: a tenant keeps its newest max_global_exemplars_per_user
// exemplars (one group: its whole share); with 0, 1.0 exemplars are
// dropped (204, counted as ignored) and 2.0 ones refused (400); past
// max_global_metadata_per_user a new family gets Mimir's error.
func TestExemplarLimits(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	o := testOverrides(t, `
overrides:
  small:
    max_global_exemplars_per_user: 3
    max_global_metadata_per_user: 1
`)
	d, groups := limitedNode(t, 1, o)
	reg := prometheus.NewRegistry()
	h, err := NewWriteHandler(d, WriteOptions{MultiTenant: true, Limits: o, Now: func() time.Time { return now }, Registerer: reg})
	require.NoError(t, err)
	api, err := NewQueryAPI(querier.New(engineReadGroups(groups), querier.Options{}), QueryOptions{MultiTenant: true, Limits: o})
	require.NoError(t, err)
	push := func(tenant string, ts int64, meta ...string) *httptest.ResponseRecorder {
		req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:    []prompb.Label{{Name: "__name__", Value: "m"}},
			Samples:   []prompb.Sample{{Timestamp: ts, Value: 1}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: fmt.Sprint(ts)}}, Value: 1, Timestamp: ts}},
		}}}
		for _, m := range meta {
			req.Metadata = append(req.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: m})
		}
		return post(h, "/api/v1/push", tenant, "", encodeRW1(t, &req))
	}
	for ts := int64(1000); ts <= 5000; ts += 1000 {
		w := push("small", ts)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	}
	code, resp := call(t, api, http.MethodGet, "/api/v1/query_exemplars", "small", url.Values{"query": {"m"}, "start": {"0"}, "end": {"10"}})
	require.Equal(t, http.StatusOK, code, resp.Error)
	requireJSON(t, `[{"seriesLabels": {"__name__": "m"}, "exemplars": [
		{"labels": {"trace_id": "3000"}, "value": "1", "timestamp": 3},
		{"labels": {"trace_id": "4000"}, "value": "1", "timestamp": 4},
		{"labels": {"trace_id": "5000"}, "value": "1", "timestamp": 5}]}]`, resp.Data)

	w := push("small", 6000, "a", "b")
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "per-user metric metadata limit of 1 exceeded (err-mimir-max-metadata-per-user)")
	require.Contains(t, w.Body.String(), "This is for metric b")

	// Exemplars off (the default): 1.0 drops them, 2.0 refuses them.
	w = push("off", 1000)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	st := writev2.NewSymbolTable()
	s := v2Series(&st, []string{"__name__", "m"}, writev2.Sample{Timestamp: 2000, Value: 1})
	s.Exemplars = []writev2.Exemplar{{Value: 1, Timestamp: 2000}}
	w = post(h, "/api/v1/write", "off", contentTypeV2, encodeV2(t, &st, s))
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Equal(t, counts(1, 0, 0), written(w))
	require.Contains(t, w.Body.String(), "exemplars are not kept for this tenant")
	code, resp = call(t, api, http.MethodGet, "/api/v1/query_exemplars", "off", url.Values{"query": {"m"}, "start": {"0"}, "end": {"10"}})
	require.Equal(t, http.StatusOK, code, resp.Error)
	requireJSON(t, `[]`, resp.Data)
	require.Contains(t, gatherText(t, reg, "myelin_ignored_total"), `myelin_ignored_total{kind="exemplars",tenant="off"} 1`)
}

func encodeRW1(t *testing.T, req *prompb.WriteRequest) []byte {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

// TestStartTimestampZeroIngestion: with start_timestamp_zero_ingestion_enabled
// a 2.0 sample's start timestamp before it stores a zero sample there
// first, once (a later request's zero at the same start is refused by the
// engine and ignored, not a 400), and not counted as written; without
// it, start timestamps are accepted and not stored.
func TestStartTimestampZeroIngestion(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	o := testOverrides(t, "overrides:\n  st:\n    start_timestamp_zero_ingestion_enabled: true\n")
	d, groups := limitedNode(t, 1, o)
	h, err := NewWriteHandler(d, WriteOptions{MultiTenant: true, Limits: o, Now: func() time.Time { return now }})
	require.NoError(t, err)
	push := func(tenant string, samples ...writev2.Sample) *httptest.ResponseRecorder {
		st := writev2.NewSymbolTable()
		return post(h, "/api/v1/write", tenant, contentTypeV2, encodeV2(t, &st,
			v2Series(&st, []string{"__name__", "c_total"}, samples...),
			v2Series(&st, []string{"__name__", "no_start"}, writev2.Sample{Timestamp: 9000, Value: 1})))
	}
	for _, tenant := range []string{"st", "off"} {
		w := push(tenant, writev2.Sample{Timestamp: 10_000, Value: 5, StartTimestamp: 5000})
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
		require.Equal(t, counts(2, 0, 0), written(w))
		// Same start, later samples: the zero is not stored again.
		w = push(tenant, writev2.Sample{Timestamp: 20_000, Value: 7, StartTimestamp: 5000}, writev2.Sample{Timestamp: 30_000, Value: 9, StartTimestamp: 5000})
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
		require.Equal(t, counts(3, 0, 0), written(w)) // no_start's retry is idempotent and counted
		// A start at or after the sample is ignored.
		w = push(tenant, writev2.Sample{Timestamp: 40_000, Value: 1, StartTimestamp: 40_000})
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	}
	require.Equal(t, []string{
		`{__name__="c_total"}: 5000=0 10000=5 20000=7 30000=9 40000=1`,
		`{__name__="no_start"}: 9000=1`,
	}, stored(t, groups[1], "st"))
	require.Equal(t, []string{
		`{__name__="c_total"}: 10000=5 20000=7 30000=9 40000=1`,
		`{__name__="no_start"}: 9000=1`,
	}, stored(t, groups[1], "off"))
}

// TestOTLPExemplars: an OTLP point's exemplars (trace and span IDs as
// labels, as Prometheus's translator gives them) are kept like remote
// write's for a tenant that keeps exemplars, and dropped for one that
// keeps none (the points are written either way).
func TestOTLPExemplars(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	o := testOverrides(t, `
overrides:
  ex:
    max_global_exemplars_per_user: 100
`)
	d, groups := limitedNode(t, 2, o)
	reg := prometheus.NewRegistry()
	wh, err := NewWriteHandler(d, WriteOptions{MultiTenant: true, Limits: o, Now: func() time.Time { return now }, Registerer: reg})
	require.NoError(t, err)
	h, err := NewOTLPHandler(wh, OTLPOptions{DisableTargetInfo: true})
	require.NoError(t, err)
	api, err := NewQueryAPI(querier.New(engineReadGroups(groups), querier.Options{}), QueryOptions{MultiTenant: true, Limits: o})
	require.NoError(t, err)
	md := otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
		addSum(ms, "requests", "", pmetric.AggregationTemporalityCumulative, ts, 7)
		ex := ms.At(0).Sum().DataPoints().At(0).Exemplars().AppendEmpty()
		ex.SetTimestamp(ts - 500_000_000) // half a second before the point
		ex.SetDoubleValue(1.5)
		ex.SetTraceID(pcommon.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36})
		ex.SetSpanID(pcommon.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7})
	})
	for _, org := range []string{"ex", "none"} {
		w := postOTLP(h, org, otlpProto, "", otlpBody(t, md, false, false))
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		rejected, msg := partial(t, w)
		require.Zero(t, rejected, msg)
	}
	code, resp := call(t, api, http.MethodGet, "/api/v1/query_exemplars", "ex", url.Values{
		"query": {`requests_total`}, "start": {"999"}, "end": {"1001"}})
	require.Equal(t, http.StatusOK, code, resp.Error)
	requireJSON(t, `[{"seriesLabels": {"__name__": "requests_total", "instance": "i1", "job": "svc"}, "exemplars": [
		{"labels": {"span_id": "00f067aa0ba902b7", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}, "value": "1.5", "timestamp": 999.5}]}]`, resp.Data)
	code, resp = call(t, api, http.MethodGet, "/api/v1/query_exemplars", "none", url.Values{
		"query": {`requests_total`}, "start": {"999"}, "end": {"1001"}})
	require.Equal(t, http.StatusOK, code, resp.Error)
	requireJSON(t, `[]`, resp.Data)
	require.Contains(t, gatherText(t, reg, "myelin_ingested_exemplars_total"), `myelin_ingested_exemplars_total{tenant="ex"} 1`)
}
