package server

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/tenant"
)

const contentTypeV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"

// v2Series is a 2.0 series of labels (name, value, ...) and samples, its
// labels symbolized into st in the order given.
func v2Series(st *writev2.SymbolsTable, lset []string, samples ...writev2.Sample) writev2.TimeSeries {
	ts := writev2.TimeSeries{Samples: samples}
	for i := 0; i < len(lset); i += 2 {
		ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(lset[i]), st.Symbolize(lset[i+1]))
	}
	return ts
}

func encodeV2(t *testing.T, st *writev2.SymbolsTable, ts ...writev2.TimeSeries) []byte {
	req := writev2.Request{Symbols: st.Symbols(), Timeseries: ts}
	b, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

// written returns the three X-Prometheus-Remote-Write-*-Written headers
// of w ("" for a missing one).
func written(w *httptest.ResponseRecorder) [3]string {
	h := w.Result().Header
	return [3]string{h.Get(headerSamplesWritten), h.Get(headerHistogramsWritten), h.Get(headerExemplarsWritten)}
}

func counts(samples, histograms, exemplars int) [3]string {
	return [3]string{strconv.Itoa(samples), strconv.Itoa(histograms), strconv.Itoa(exemplars)}
}

// TestWriteHandlerV2 sends remote write 2.0 requests, built with the
// reference types, to the handler: each answer has the right status,
// says what was refused, counts what was written in the Written headers,
// and the valid part of every request is stored.
func TestWriteHandlerV2(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	gw := newGroupWriter(t)
	reg := prometheus.NewRegistry()
	h, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Now: func() time.Time { return now }, Registerer: reg})
	require.NoError(t, err)
	smp := func(ts int64, v float64) writev2.Sample { return writev2.Sample{Timestamp: ts, Value: v} }
	hist := writev2.Histogram{Count: &writev2.Histogram_CountInt{CountInt: 1}, Sum: 1, Schema: 0,
		PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 1}}, PositiveDeltas: []int64{1}, Timestamp: 1000}

	for _, tc := range []struct {
		name     string
		body     func(st *writev2.SymbolsTable) []byte
		wantCode int
		wantBody []string
		written  [3]string
	}{
		{
			name: "samples",
			body: func(st *writev2.SymbolsTable) []byte {
				return encodeV2(t, st,
					v2Series(st, []string{"__name__", "up", "job", "a"}, smp(1000, 1), smp(2000, 0)),
					// Unsorted labels are sorted, as Prometheus 3 does; the
					// staleness marker is stored bit for bit.
					v2Series(st, []string{"job", "b", "__name__", "up", "empty", ""}, smp(1000, math.Float64frombits(0x7ff0000000000002))))
			},
			wantCode: http.StatusNoContent,
			written:  counts(3, 0, 0),
		},
		{
			name: "metadata is stored, start timestamps accepted and not stored",
			body: func(st *writev2.SymbolsTable) []byte {
				s := v2Series(st, []string{"__name__", "requests_total", "job", "a"}, writev2.Sample{Timestamp: 1000, Value: 5, StartTimestamp: 500})
				s.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Requests."), UnitRef: st.Symbolize("")}
				return encodeV2(t, st, s)
			},
			wantCode: http.StatusNoContent,
			written:  counts(1, 0, 0),
		},
		{
			name: "partial: every kind of refused series",
			body: func(st *writev2.SymbolsTable) []byte {
				noSamples := v2Series(st, []string{"__name__", "nosamples"})
				badRef := v2Series(st, []string{"__name__", "badref"}, smp(1000, 1))
				badRef.LabelsRefs[1] = 999
				odd := v2Series(st, []string{"__name__", "odd"}, smp(1000, 1))
				odd.LabelsRefs = append(odd.LabelsRefs, 1)
				badMeta := v2Series(st, []string{"__name__", "badmeta"}, smp(1000, 1))
				badMeta.Metadata.HelpRef = 999
				return encodeV2(t, st,
					v2Series(st, []string{"__name__", "ok", "job", "a"}, smp(1000, 1)),
					v2Series(st, []string{"job", "a"}, smp(1000, 1)),
					v2Series(st, []string{"__name__", "dup", "a", "1", "a", "2"}, smp(1000, 1)),
					v2Series(st, []string{"__name__", "future"}, smp(now.Add(time.Hour).UnixMilli(), 1)),
					noSamples, badRef, odd, badMeta,
					v2Series(st, []string{"__name__", "ok2"}, smp(1000, 1), smp(2000, 2)),
				)
			},
			wantCode: http.StatusBadRequest,
			wantBody: []string{"series has no metric name", "7 series (6 samples) refused in total", "2 series (3 samples) were written"},
			written:  counts(3, 0, 0),
		},
		{
			name: "histograms are stored with the samples beside them",
			body: func(st *writev2.SymbolsTable) []byte {
				hs := v2Series(st, []string{"__name__", "latency"})
				h2 := hist
				h2.Timestamp = 2000
				hs.Histograms = []writev2.Histogram{hist, h2}
				return encodeV2(t, st, v2Series(st, []string{"__name__", "beside_histograms"}, smp(1000, 1)), hs)
			},
			wantCode: http.StatusNoContent,
			written:  counts(1, 2, 0),
		},
		{
			name: "invalid histograms are refused naming the series, the valid ones stored",
			body: func(st *writev2.SymbolsTable) []byte {
				bad := hist
				bad.Timestamp = 3000
				bad.PositiveSpans = []writev2.BucketSpan{{Offset: 0, Length: 2}} // 2 buckets, 1 delta
				neg := hist
				neg.Timestamp = 4000
				neg.PositiveDeltas = []int64{-1}
				good := hist
				good.Timestamp = 5000
				hs := v2Series(st, []string{"__name__", "latency"}, smp(6000, 7)) // a float after the histograms
				hs.Histograms = []writev2.Histogram{bad, neg, good}
				return encodeV2(t, st, hs)
			},
			wantCode: http.StatusBadRequest,
			wantBody: []string{
				`invalid native histogram (histogram 0 at 3000 ms: positive side: spans need 2 buckets, have 1 buckets: histogram spans specify different number of buckets than provided) in series {__name__="latency"}`,
				"1 series (0 samples, 2 histograms) refused in total", "1 series (1 samples, 1 histograms) were written",
				// The histogram at 5000, then the float at 6000: stored in time order.
			},
			written: counts(1, 1, 0),
		},
		{
			name: "histograms the engine refuses are not counted written",
			body: func(st *writev2.SymbolsTable) []byte {
				old := hist
				old.Timestamp = 5500 // before latency's float at 6000
				next := hist
				next.Timestamp = 7000
				hs := v2Series(st, []string{"__name__", "latency"})
				hs.Histograms = []writev2.Histogram{old, next}
				return encodeV2(t, st, hs)
			},
			wantCode: http.StatusBadRequest,
			wantBody: []string{"histogram 0 at 5500: write: out-of-order sample: 1 of 2 samples refused in series {__name__=\"latency\"}",
				"1 series (0 samples, 1 histograms) refused in total", "1 series (0 samples, 1 histograms) were written"},
			written: counts(0, 1, 0),
		},
		{
			name: "exemplars are refused for a tenant that keeps none, their samples stored",
			body: func(st *writev2.SymbolsTable) []byte {
				s := v2Series(st, []string{"__name__", "with_exemplar"}, smp(1000, 1))
				s.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("abc")}, Value: 1, Timestamp: 1000}}
				return encodeV2(t, st, s)
			},
			wantCode: http.StatusBadRequest,
			wantBody: []string{"exemplars are not kept for this tenant (max_global_exemplars_per_user is 0; -ingester.max-global-exemplars-per-user): 1 exemplars were not written", "1 series (1 samples) were written"},
			written:  counts(1, 0, 0),
		},
		{
			name: "symbols after the series",
			body: func(*writev2.SymbolsTable) []byte {
				// Field 5 (a series: refs 1 2, one sample), then field 4 x3.
				series := []byte{0x2a, 0x00, 0x0a, 0x02, 0x01, 0x02, 0x12, 0x0c, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0xe8, 0x07}
				series[1] = byte(len(series) - 2)
				body := append(series, 0x22, 0x00, 0x22, 0x08)
				body = append(body, "__name__"...)
				body = append(body, 0x22, 0x0b)
				body = append(body, "late_symbol"...)
				return snappy.Encode(nil, body)
			},
			wantCode: http.StatusNoContent,
			written:  counts(1, 0, 0),
		},
		{
			name:     "malformed",
			body:     func(*writev2.SymbolsTable) []byte { return snappy.Encode(nil, []byte{0x2a, 0x05, 0x0a}) },
			wantCode: http.StatusBadRequest,
			wantBody: []string{"malformed protobuf at byte"},
			written:  counts(0, 0, 0),
		},
		{
			name:     "not snappy",
			body:     func(*writev2.SymbolsTable) []byte { return []byte("not snappy at all") },
			wantCode: http.StatusBadRequest,
			wantBody: []string{"snappy"},
			written:  counts(0, 0, 0),
		},
		{
			// A 1.0 body under the 2.0 content type decodes to an empty
			// message (fields 1 to 3 are reserved in 2.0): nothing to write.
			name:     "a 1.0 body",
			body:     func(*writev2.SymbolsTable) []byte { return encodeWrite(t, series([]string{"__name__", "v1"})) },
			wantCode: http.StatusNoContent,
			written:  counts(0, 0, 0),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := writev2.NewSymbolTable()
			w := post(h, "/api/v1/write", "t1", contentTypeV2, tc.body(&st))
			require.Equal(t, tc.wantCode, w.Code, w.Body.String())
			for _, s := range tc.wantBody {
				require.Contains(t, w.Body.String(), s)
			}
			require.Equal(t, tc.written, written(w), "Written headers")
			t.Logf("%d %s", w.Code, w.Body.String())
		})
	}
	require.Equal(t, []string{
		`{__name__="beside_histograms"}: 1000=1`,
		`{__name__="late_symbol"}: 1000=1`,
		`{__name__="latency"}: 1000={count:1, sum:1, (0.5,1]:1} 2000={count:1, sum:1, (0.5,1]:1} 5000={count:1, sum:1, (0.5,1]:1} 6000=7 7000={count:1, sum:1, (0.5,1]:1}`,
		`{__name__="ok", job="a"}: 1000=1`,
		`{__name__="ok2"}: 1000=1 2000=2`,
		`{__name__="requests_total", job="a"}: 1000=5`,
		`{__name__="up", job="a"}: 1000=1 2000=0`,
		`{__name__="up", job="b"}: 1000=NaN`,
		`{__name__="with_exemplar"}: 1000=1`,
	}, stored(t, gw.g, "t1"))

	// The refusals by reason, and what was not stored yet.
	for _, c := range []struct {
		metric, labels string
		want           float64
	}{
		{"myelin_discarded_samples_total", `reason="missing_metric_name",tenant="t1"`, 1},
		{"myelin_discarded_samples_total", `reason="duplicate_label_names",tenant="t1"`, 1},
		{"myelin_discarded_samples_total", `reason="too_far_in_future",tenant="t1"`, 1},
		{"myelin_discarded_samples_total", `reason="symbol_ref_invalid",tenant="t1"`, 3},
		{"myelin_discarded_samples_total", `reason="invalid_native_histogram",tenant="t1"`, 2},
		{"myelin_discarded_exemplars_total", `reason="exemplars_disabled",tenant="t1"`, 1},
		{"myelin_ingested_metadata_total", `tenant="t1"`, 1}, // not badmeta's: its series is refused
	} {
		require.Contains(t, gatherText(t, reg, c.metric), c.metric+"{"+c.labels+"} "+strconv.FormatFloat(c.want, 'g', -1, 64), c.metric)
	}

	// Content negotiation: 415 for what is not 1.0's or 2.0's, without
	// the Written headers (nothing was negotiated).
	body := func() []byte {
		st := writev2.NewSymbolTable()
		return encodeV2(t, &st, v2Series(&st, []string{"__name__", "never"}, smp(5000, 1)))
	}
	for _, tc := range []struct {
		name, contentType, encoding string
	}{
		{"json", "application/json", "snappy"},
		{"png", "image/png", "snappy"},
		{"unknown message", "application/x-protobuf;proto=io.prometheus.write.v3.Request", "snappy"},
		{"bad parameters", "application/x-protobuf;proto", "snappy"},
		{"gzip", contentTypeV2, "gzip"},
		{"deflate", contentTypeV2, "deflate"},
	} {
		t.Run("415 "+tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body()))
			r.Header.Set("Content-Type", tc.contentType)
			r.Header.Set("Content-Encoding", tc.encoding)
			r.Header.Set(tenant.Header, "t1")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(t, http.StatusUnsupportedMediaType, w.Code, w.Body.String())
			require.Equal(t, [3]string{}, written(w))
		})
	}
	// A 2.0 request without a tenant is answered 401, with zero counts.
	w := post(h, "/api/v1/write", "", contentTypeV2, body())
	require.Equal(t, http.StatusUnauthorized, w.Code)
	require.Equal(t, counts(0, 0, 0), written(w))
	// 1.0 answers have no Written headers.
	w = post(h, "/api/v1/push", "t1", "application/x-protobuf", encodeWrite(t, series([]string{"__name__", "v1"})))
	require.Equal(t, http.StatusNoContent, w.Code)
	require.Equal(t, [3]string{}, written(w))
	require.NotContains(t, stored(t, gw.g, "t1"), "never")
}

// gatherText returns metric's series in reg, in the text format.
func gatherText(t *testing.T, reg *prometheus.Registry, metric string) string {
	t.Helper()
	var b bytes.Buffer
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == metric {
			_, err := expfmt.MetricFamilyToText(&b, mf)
			require.NoError(t, err)
		}
	}
	return b.String()
}
