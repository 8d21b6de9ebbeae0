package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// groupWriter applies batches straight to an engine group, standing in for
// a Raft group.
type groupWriter struct {
	g     *engine.Group
	index atomic.Uint64
	err   error
}

func (w *groupWriter) Write(_ context.Context, b *write.Batch) ([]write.Refusal, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.g.ApplyBatch(w.index.Add(1), b)
}

func newGroupWriter(t *testing.T) *groupWriter {
	db, err := engine.Open(engine.Options{Dir: "db", FS: vfs.NewMem()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	g, _, err := db.OpenGroup(1)
	require.NoError(t, err)
	return &groupWriter{g: g}
}

func series(lset []string, samples ...prompb.Sample) prompb.TimeSeries {
	var ls []prompb.Label
	for i := 0; i < len(lset); i += 2 {
		ls = append(ls, prompb.Label{Name: lset[i], Value: lset[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: samples}
}

func encodeWrite(t *testing.T, ts ...prompb.TimeSeries) []byte {
	req := prompb.WriteRequest{Timeseries: ts}
	b, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

func post(h http.Handler, path, org, contentType string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.Header.Set("Content-Encoding", "snappy")
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if org != "" {
		r.Header.Set(tenant.Header, org)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// stored returns tenant's samples of every series as "labels: t=v ...".
func stored(t *testing.T, g *engine.Group, tenant string) []string {
	q, err := g.Querier(tenant, 0, 1<<62)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var out []string
	for ss.Next() {
		s := ss.At()
		var b strings.Builder
		b.WriteString(s.Labels().String() + ":")
		it := s.Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt == chunkenc.ValFloat {
				ts, v := it.At()
				fmt.Fprintf(&b, " %d=%g", ts, v)
				continue
			}
			ts, fh := it.AtFloatHistogram(nil)
			fmt.Fprintf(&b, " %d=%s", ts, fh.String())
		}
		require.NoError(t, it.Err())
		out = append(out, b.String())
	}
	require.NoError(t, ss.Err())
	return out
}

func TestWriteHandler(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	gw := newGroupWriter(t)
	reg := prometheus.NewRegistry()
	h, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Now: func() time.Time { return now }, Registerer: reg})
	require.NoError(t, err)
	up := []string{"__name__", "up", "job", "a"}

	w := post(h, "/api/v1/push", "t1", "application/x-protobuf", encodeWrite(t,
		series(up, prompb.Sample{Timestamp: 1000, Value: 1}, prompb.Sample{Timestamp: 2000, Value: 0}),
		series([]string{"__name__", "x", "empty", "", "k", "v"}, prompb.Sample{Timestamp: 1000, Value: 7}),
	))
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, []string{`{__name__="up", job="a"}: 1000=1 2000=0`, `{__name__="x", k="v"}: 1000=7`}, stored(t, gw.g, "t1"))
	require.Empty(t, stored(t, gw.g, "t2"), "tenants are isolated")

	for _, tc := range []struct {
		name, path, tenant, contentType string
		body                            []byte
		wantCode                        int
		wantBody                        string
	}{
		{"no-tenant", "/api/v1/push", "", "", encodeWrite(t, series(up, prompb.Sample{Timestamp: 3000, Value: 1})), 401, "no org id"},
		{"bad-snappy", "/api/v1/write", "t1", "", []byte("not snappy"), 400, "snappy"},
		{"bad-protobuf", "/api/v1/write", "t1", "", snappy.Encode(nil, []byte{0x0a, 0x05, 0x01}), 400, "malformed"},
		{"snappy-bomb", "/api/v1/write", "t1", "", []byte{0xff, 0xff, 0xff, 0xff, 0x7f, 0}, 400, ""},
		{"unknown message", "/api/v1/write", "t1", "application/x-protobuf;proto=foo.Bar", nil, 415, `unsupported remote write message "foo.Bar"`},
		{"bad-label-name", "/api/v1/push", "t1", "", encodeWrite(t,
			series([]string{"__name__", "ok", "job", "a"}, prompb.Sample{Timestamp: 1000, Value: 1}),
			series([]string{"__name__", "bad", "b\xffad", "v"}, prompb.Sample{Timestamp: 1000, Value: 1}),
			// Unsorted labels are sorted and accepted, as in Prometheus 3;
			// a duplicate name is refused.
			series([]string{"__name__", "unsorted", "l", "v", "a", "v"}, prompb.Sample{Timestamp: 1000, Value: 1}),
			series([]string{"__name__", "bad2", "l", "v", "a", "v", "l", "w"}, prompb.Sample{Timestamp: 1000, Value: 1}),
		), 400, `2 series (2 samples) refused in total; 2 series (2 samples) were written`},
		{"future", "/api/v1/push", "t1", "", encodeWrite(t,
			series([]string{"__name__", "future"}, prompb.Sample{Timestamp: now.Add(time.Hour).UnixMilli(), Value: 1})), 400, "future"},
		{"out-of-order", "/api/v1/push", "t1", "", encodeWrite(t,
			series(up, prompb.Sample{Timestamp: 1500, Value: 5}, prompb.Sample{Timestamp: 3000, Value: 1})), 400, "out-of-order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := post(h, tc.path, tc.tenant, tc.contentType, tc.body)
			require.Equal(t, tc.wantCode, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), tc.wantBody)
			t.Logf("%d %s", w.Code, w.Body.String())
		})
	}
	// The valid parts of the partly bad requests were stored.
	got := stored(t, gw.g, "t1")
	require.Contains(t, got, `{__name__="ok", job="a"}: 1000=1`)
	require.Contains(t, got, `{__name__="unsorted", a="v", l="v"}: 1000=1`)
	require.Contains(t, got, `{__name__="up", job="a"}: 1000=1 2000=0 3000=1`)
	for _, s := range got {
		require.NotContains(t, s, "bad")
		require.NotContains(t, s, "future")
	}

	for _, c := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{"myelin_ingested_samples_total", map[string]string{"tenant": "t1"}, 2 + 1 + 2 + 1},
		{"myelin_discarded_samples_total", map[string]string{"tenant": "t1", "reason": "label_invalid"}, 1},
		{"myelin_discarded_samples_total", map[string]string{"tenant": "t1", "reason": "duplicate_label_names"}, 1},
		{"myelin_discarded_samples_total", map[string]string{"tenant": "t1", "reason": "too_far_in_future"}, 1},
		{"myelin_discarded_samples_total", map[string]string{"tenant": "t1", "reason": "sample_out_of_order"}, 1},
		{"myelin_write_requests_total", map[string]string{"tenant": "t1", "code": "204"}, 1},
		{"myelin_write_requests_total", map[string]string{"tenant": "t1", "code": "400"}, 6},
		{"myelin_write_requests_total", map[string]string{"tenant": "", "code": "415"}, 1},
	} {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		got := -1.0
		for _, mf := range mfs {
			if mf.GetName() != c.metric {
				continue
			}
		metrics:
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetValue() != c.labels[lp.GetName()] {
						continue metrics
					}
				}
				got = m.GetCounter().GetValue()
			}
		}
		require.Equal(t, c.want, got, "%s%v", c.metric, c.labels)
	}

	// Content-Encoding: snappy or none; anything else is a 415 (the body
	// is a valid snappy body, so only the header decides).
	for _, tc := range []struct {
		name     string
		encoding []string
		wantCode int
	}{
		{"no encoding", nil, http.StatusNoContent},
		{"snappy", []string{"snappy"}, http.StatusNoContent},
		{"Snappy", []string{" Snappy "}, http.StatusNoContent},
		{"gzip", []string{"gzip"}, http.StatusUnsupportedMediaType},
		{"deflate", []string{"deflate"}, http.StatusUnsupportedMediaType},
		{"identity", []string{"identity"}, http.StatusUnsupportedMediaType},
		{"snappy twice", []string{"snappy", "snappy"}, http.StatusUnsupportedMediaType},
		{"snappy, gzip", []string{"snappy, gzip"}, http.StatusUnsupportedMediaType},
	} {
		t.Run("encoding "+tc.name, func(t *testing.T) {
			ts := 10_000 + int64(len(tc.name)) + int64(len(tc.encoding))*100
			r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(encodeWrite(t,
				series([]string{"__name__", "enc", "case", tc.name}, prompb.Sample{Timestamp: ts, Value: 1}))))
			r.Header.Set(tenant.Header, "t3")
			for _, e := range tc.encoding {
				r.Header.Add("Content-Encoding", e)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			require.Equal(t, tc.wantCode, rec.Code, rec.Body.String())
			if tc.wantCode == http.StatusUnsupportedMediaType {
				require.Contains(t, rec.Body.String(), "Content-Encoding")
			}
		})
	}
	require.Len(t, stored(t, gw.g, "t3"), 3, "only the snappy requests were written")

	r := httptest.NewRequest(http.MethodGet, "/api/v1/push", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)

	gw.err = fmt.Errorf("propose: %w", cluster.ErrUnavailable)
	w = post(h, "/api/v1/push", "t1", "", encodeWrite(t, series(up, prompb.Sample{Timestamp: 4000, Value: 1})))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	gw.err = fmt.Errorf("disk on fire")
	w = post(h, "/api/v1/push", "t1", "", encodeWrite(t, series(up, prompb.Sample{Timestamp: 4000, Value: 1})))
	require.Equal(t, http.StatusInternalServerError, w.Code)
}

// A sample is accepted only if a query can read it back: the oldest and
// newest readable timestamps round-trip through remote write and the
// query API; a sample 1 ms outside them, or at math.MinInt64 (accepted
// before and then invisible), is refused with a 400 that says why, and
// the rest of the batch is written.
func TestWriteReadableTimestamps(t *testing.T) {
	gw := newGroupWriter(t)
	now := time.UnixMilli(remotewrite.MaxTimestamp) // so that the newest is not in the future
	h, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
	require.NoError(t, err)
	at := func(name string, ts int64) prompb.TimeSeries {
		return series([]string{"__name__", "x", "at", name}, prompb.Sample{Timestamp: ts, Value: 42})
	}
	w := post(h, "/api/v1/push", "t1", "", encodeWrite(t,
		at("min-int64", math.MinInt64),
		at("oldest", remotewrite.MinTimestamp),
		at("before-oldest", remotewrite.MinTimestamp-1),
		at("zero", 0),
		at("newest", remotewrite.MaxTimestamp),
		at("after-newest", remotewrite.MaxTimestamp+1),
	))
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Equal(t, `remotewrite: sample timestamp outside the range queries can read (sample 0 at -9223372036854775808 ms; `+
		`queries read -9223372036854 to 9223372036854 ms, 1677-09-21 to 2262-04-11) in series {__name__="x", at="min-int64"}; `+
		"3 series (3 samples) refused in total; 3 series (3 samples) were written\n", w.Body.String())

	api, err := NewQueryAPI(gw.g, QueryOptions{MultiTenant: true})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, time, want string
	}{
		{"oldest", "-9223372036.854", `[{"metric":{"__name__":"x","at":"oldest"},"values":[[-9223372036.854,"42"]]}]`},
		{"zero", "0", `[{"metric":{"__name__":"x","at":"zero"},"values":[[0,"42"]]}]`},
		{"newest", "9223372036.854", `[{"metric":{"__name__":"x","at":"newest"},"values":[[9223372036.854,"42"]]}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := call(t, api, "GET", "/api/v1/query", "t1", url.Values{"query": {`x[1m]`}, "time": {tc.time}})
			require.Equal(t, http.StatusOK, code, resp.Error)
			require.JSONEq(t, `{"resultType":"matrix","result":`+tc.want+`}`, string(resp.Data))
		})
	}
	code, resp := call(t, api, "GET", "/api/v1/series", "t1", url.Values{"match[]": {"x"}})
	require.Equal(t, http.StatusOK, code, resp.Error)
	var got []map[string]string
	require.NoError(t, json.Unmarshal(resp.Data, &got))
	require.ElementsMatch(t, []map[string]string{{"__name__": "x", "at": "oldest"}, {"__name__": "x", "at": "zero"}, {"__name__": "x", "at": "newest"}}, got)
}

// tenantsInMetrics returns the tenant label values in the write metrics.
func tenantsInMetrics(t *testing.T, reg *prometheus.Registry) []string {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "tenant" {
					seen[lp.GetValue()] = true
				}
			}
		}
	}
	var out []string
	for tenant := range seen {
		out = append(out, tenant)
	}
	slices.Sort(out)
	return out
}

// Per-tenant series leave /metrics when their tenant goes idle, and the
// number of tenants with series of their own is bounded: the rest are
// counted together, not dropped.
func TestWriteMetricsTenants(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	reg := prometheus.NewRegistry()
	h, err := NewWriteHandler(newGroupWriter(t), WriteOptions{
		MultiTenant: true, Now: func() time.Time { return now }, Registerer: reg,
		TenantMetricsIdle: 15 * time.Minute, MetricsMaxTenants: 3,
	})
	require.NoError(t, err)
	write := func(tenant string) {
		body := encodeWrite(t, series([]string{"__name__", "up"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1}))
		w := post(h, "/api/v1/push", tenant, "", body)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	}

	write("a")
	write("b")
	now = now.Add(10 * time.Minute)
	write("a")
	require.Equal(t, []string{"a", "b"}, tenantsInMetrics(t, reg))
	now = now.Add(5 * time.Minute) // b idle for 15m
	require.Equal(t, []string{"a"}, tenantsInMetrics(t, reg))
	write("b") // back, counting from zero
	require.Equal(t, 1.0, testutil.ToFloat64(h.metrics.samples.WithLabelValues("b")))

	// Past 3 tenants, the others share one label value.
	write("c")
	write("d")
	write("e")
	require.Equal(t, []string{"<overflow>", "a", "b", "c"}, tenantsInMetrics(t, reg))
	require.Equal(t, 2.0, testutil.ToFloat64(h.metrics.samples.WithLabelValues(OverflowTenant)))
	require.Equal(t, 2.0, testutil.ToFloat64(h.metrics.requests.WithLabelValues(OverflowTenant, "204")))

	// Once idle, tenants make room for others, without a scrape in between.
	now = now.Add(15 * time.Minute)
	write("d")
	require.Equal(t, []string{"d"}, tenantsInMetrics(t, reg))

	// A flood of made-up tenant IDs adds at most the limit.
	for i := range 1000 {
		post(h, "/api/v1/push", fmt.Sprintf("fake-%d", i), "", []byte("not snappy"))
	}
	require.Len(t, tenantsInMetrics(t, reg), 3+1)
	require.Equal(t, 998.0, testutil.ToFloat64(h.metrics.requests.WithLabelValues(OverflowTenant, "400")))
	now = now.Add(15 * time.Minute)
	require.Empty(t, tenantsInMetrics(t, reg))
}
