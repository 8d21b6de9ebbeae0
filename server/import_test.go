package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// newImportHandlers returns an import handler over a real engine group,
// cutting chunks and batches small so that every test crosses them, and
// the export handler reading the same group.
func newImportHandlers(t *testing.T, opts ImportOptions) (*ImportHandler, *ExportHandler, *groupWriter) {
	gw := newGroupWriter(t)
	wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Now: func() time.Time { return time.UnixMilli(10_000_000) }})
	require.NoError(t, err)
	return NewImportHandler(wh, opts), NewExportHandler(gw.g, true), gw
}

func postImport(t *testing.T, h http.Handler, org, contentType, body string) (int, ImportResult) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/import/prometheus", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	r.Header.Set(tenant.Header, org)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var res ImportResult
	if w.Code == http.StatusOK || w.Code == http.StatusBadRequest {
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &res), w.Body.String())
	}
	return w.Code, res
}

func getExport(t *testing.T, h http.Handler, org string, form url.Values) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/v1/export?"+form.Encode(), nil)
	r.Header.Set(tenant.Header, org)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestImportText(t *testing.T) {
	imp, _, gw := newImportHandlers(t, ImportOptions{ChunkBytes: 64, BatchSamples: 4})
	// Series interleaved, one series' samples out of time order within
	// a batch (sorted before the write: the first four samples), comments
	// and blank lines.
	body := `# HELP up whether the target is up
# TYPE up gauge
up{job="a",instance="x"} 1 1000
up{job="a",instance="y"} 0 1000

up{job="a",instance="x"} 1 3000
up{job="a",instance="x"} 0 2000
# a comment
up{job="a",instance="y"} 1 2000
http_requests_total{code="200"} 7 1500
http_requests_total{code="200"} 9 2500`
	code, res := postImport(t, imp, "t1", "text/plain; version=0.0.4", body)
	require.Equal(t, http.StatusOK, code, res)
	require.Equal(t, "success", res.Status)
	require.Equal(t, 11, res.Lines)
	require.Equal(t, 7, res.SamplesWritten)
	require.Zero(t, res.SamplesRefused)
	require.Equal(t, []string{
		`{__name__="http_requests_total", code="200"}: 1500=7 2500=9`,
		`{__name__="up", instance="x", job="a"}: 1000=1 2000=0 3000=1`,
		`{__name__="up", instance="y", job="a"}: 1000=0 2000=1`,
	}, stored(t, gw.g, "t1"))
	require.Empty(t, stored(t, gw.g, "t2"), "another tenant sees nothing")

	// Again, overlapping: the engine refuses what is not newer than the
	// series' newest sample, counted per reason; the new samples land.
	code, res = postImport(t, imp, "t1", "", "up{job=\"a\",instance=\"x\"} 5 3000\nup{job=\"a\",instance=\"x\"} 5 2500\nup{job=\"a\",instance=\"x\"} 4 4000\n")
	require.Equal(t, http.StatusOK, code, res)
	require.Equal(t, 1, res.SamplesWritten)
	require.Equal(t, 2, res.SamplesRefused)
	require.Equal(t, 2, res.Refused["sample_out_of_order"]+res.Refused["new_value_for_timestamp"], res.Refused)
	require.NotEmpty(t, res.FirstRefusal)
	require.Contains(t, stored(t, gw.g, "t1"), `{__name__="up", instance="x", job="a"}: 1000=1 2000=0 3000=1 4000=4`)

	// Out of order across batches: refused and counted, the rest kept.
	code, res = postImport(t, imp, "t4", "", "a 1 1000\nb 1 1000\nc 1 1000\nd 1 1000\na 2 500\na 3 2000\n")
	require.Equal(t, http.StatusOK, code, res)
	require.Equal(t, 5, res.SamplesWritten)
	require.Equal(t, map[string]int{"sample_out_of_order": 1}, res.Refused)
	require.Contains(t, stored(t, gw.g, "t4"), `{__name__="a"}: 1000=1 2000=3`)
}

func TestImportBadLine(t *testing.T) {
	imp, _, gw := newImportHandlers(t, ImportOptions{ChunkBytes: 64, BatchSamples: 100})
	// The contract: a bad line is a 400 naming it; the valid lines before
	// it are written, nothing after it is read.
	var b strings.Builder
	for i := range 10 {
		fmt.Fprintf(&b, "m{i=\"%d\"} %d %d\n", i, i, 1000+i)
	}
	b.WriteString("m{i=\"oops} 1 2000\n")
	b.WriteString("m{i=\"after\"} 1 3000\n")
	code, res := postImport(t, imp, "t1", "text/plain", b.String())
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "error", res.Status)
	require.Contains(t, res.Error, "line 11:")
	require.Equal(t, 10, res.SamplesWritten)
	got := stored(t, gw.g, "t1")
	require.Len(t, got, 10)
	require.NotContains(t, strings.Join(got, "\n"), "after")

	// A sample without a timestamp is a bad line too.
	code, res = postImport(t, imp, "t2", "text/plain", "a 1 1000\n\n# c\nb 2\nc 3 1000\n")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, res.Error, "line 4:")
	require.Contains(t, res.Error, "no timestamp")
	require.Equal(t, 1, res.SamplesWritten)
	require.Equal(t, []string{`{__name__="a"}: 1000=1`}, stored(t, gw.g, "t2"))

	// A series the write path's validation refuses (here a sample too
	// far in the future) is counted per reason, not fatal.
	code, res = postImport(t, imp, "t3", "text/plain", "future 1 1000000000000\nok 1 1000\n")
	require.Equal(t, http.StatusOK, code, res)
	require.Equal(t, 1, res.SamplesWritten)
	require.Equal(t, 1, res.Refused["too_far_in_future"], res)

	code, _ = postImport(t, imp, "t1", "application/json", "")
	require.Equal(t, http.StatusUnsupportedMediaType, code)
	code, _ = postImport(t, imp, "", "text/plain", "a 1 1")
	require.Equal(t, http.StatusUnauthorized, code)
}

func TestImportOpenMetrics(t *testing.T) {
	imp, _, gw := newImportHandlers(t, ImportOptions{ChunkBytes: 80, BatchSamples: 2})
	// Timestamps in seconds; a counter family cut between chunks keeps
	// its type; _created lines are not samples.
	body := `# HELP requests Requests.
# TYPE requests counter
requests_total{path="/"} 1 1.5
requests_created{path="/"} 1
requests_total{path="/"} 2 2.5
requests_total{path="/"} 3 3.5
requests_total{path="/a"} 1 1.5
# TYPE temp gauge
temp 21.5 1
# EOF
`
	code, res := postImport(t, imp, "t1", "application/openmetrics-text; version=1.0.0", body)
	require.Equal(t, http.StatusOK, code, res)
	require.Equal(t, 5, res.SamplesWritten, res)
	require.Equal(t, []string{
		`{__name__="requests_total", path="/"}: 1500=1 2500=2 3500=3`,
		`{__name__="requests_total", path="/a"}: 1500=1`,
		`{__name__="temp"}: 1000=21.5`,
	}, stored(t, gw.g, "t1"))
}

func TestExportImportRoundTrip(t *testing.T) {
	imp, exp, gw := newImportHandlers(t, ImportOptions{ChunkBytes: 128, BatchSamples: 7})
	var b strings.Builder
	// Values the text format must keep exactly, label values that need
	// escaping, a UTF-8 metric name.
	values := []string{"0.1", "1e-300", "-2.5e+300", "NaN", "+Inf", "-Inf", "123456789.123456789", "-0"}
	for s := range 5 {
		for i, v := range values {
			fmt.Fprintf(&b, "rt_metric{s=\"%d\",q=\"a\\\"b\\\\c\\nd\"} %s %d\n", s, v, 1000*(i+1))
		}
	}
	fmt.Fprintf(&b, "{\"my.metric\",\"label.x\"=\"v\"} 1 5000\nname_only 2 5000\n")
	code, res := postImport(t, imp, "src", "text/plain", b.String())
	require.Equal(t, http.StatusOK, code, res)
	require.Equal(t, 42, res.SamplesWritten, res)

	code, out := getExport(t, exp, "src", url.Values{"match[]": {`{__name__=~".+"}`}, "start": {"0"}, "end": {"100"}})
	require.Equal(t, http.StatusOK, code, out)
	require.NotContains(t, out, "# ERROR")
	require.Equal(t, 42, strings.Count(out, "\n"), out)
	require.Contains(t, out, "\nname_only 2 5000\n")

	code, res = postImport(t, imp, "dst", "text/plain", out)
	require.Equal(t, http.StatusOK, code, res)
	require.Equal(t, 42, res.SamplesWritten, res)
	require.Equal(t, stored(t, gw.g, "src"), stored(t, gw.g, "dst"))
	// The NaN came back a NaN (stored renders it), and -0 kept its sign.
	require.Contains(t, out, " -0 8000\n")

	// Time range and matchers: only what they select.
	code, out = getExport(t, exp, "src", url.Values{"match[]": {`rt_metric{s="1"}`, `rt_metric{s="2"}`}, "start": {"2"}, "end": {"3"}})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 4, strings.Count(out, "\n"), out)
	// Tenants see only their own series.
	code, out = getExport(t, exp, "other", url.Values{"match[]": {`{__name__=~".+"}`}})
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, out)
	code, _ = getExport(t, exp, "src", url.Values{})
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = getExport(t, exp, "src", url.Values{"match[]": {"up{"}})
	require.Equal(t, http.StatusBadRequest, code)
}

// genBody yields n lines of the text format, series series after series,
// without holding them: a large import streamed from a generator.
type genBody struct {
	series, perSeries, s, i int
	buf                     []byte
}

func (g *genBody) Read(p []byte) (int, error) {
	for len(g.buf) < len(p) && g.s < g.series {
		g.buf = fmt.Appendf(g.buf, "gen_metric{instance=\"host-%04d.example.com:9100\",job=\"node\",mode=\"idle\"} %d %d\n", g.s, g.i*7, 1_000_000+int64(g.i)*4_000)
		if g.i++; g.i == g.perSeries {
			g.s, g.i = g.s+1, 0
		}
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.buf)
	g.buf = g.buf[:copy(g.buf, g.buf[n:])]
	return n, nil
}

// TestImportMemory: the import's memory does not grow with the body. A
// body of 600,000 samples (~55 MB of text) streamed through the handler
// keeps the heap within the handler's reservation plus the engine's own
// (measured: see the log line).
func TestImportMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 55 MB")
	}
	imp, _, gw := newImportHandlers(t, ImportOptions{})
	body := &genBody{series: 300, perSeries: 2000}
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/import/prometheus", body)
	r.Header.Set(tenant.Header, "t")
	w := httptest.NewRecorder()
	start := time.Now()
	imp.ServeHTTP(w, r)
	took := time.Since(start)
	close(stop)
	<-done
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var res ImportResult
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &res))
	require.Equal(t, 600_000, res.SamplesWritten, res)
	got := stored(t, gw.g, "t")
	require.Len(t, got, 300)
	t.Logf("600,000 samples in %v (%.0f samples/s), peak heap in use %d MiB, the handler reserves %d MiB",
		took, 600_000/took.Seconds(), peak.Load()>>20, imp.memoryBytes()>>20)
	require.Less(t, peak.Load(), uint64(40<<20), "the import holds the body (54 MB) or grows with it")
}

// TestImportLimits: an import is throttled to the tenant's ingestion
// rate, not refused; series past the tenant's series limit are refused
// and counted, the others written.
func TestImportLimits(t *testing.T) {
	def := limits.Defaults()
	def.IngestionRate, def.IngestionBurstSize = 2000, 100
	def.MaxGlobalSeriesPerUser = 3
	o, err := limits.NewOverrides(def)
	require.NoError(t, err)
	// The distributor over an engine group: it attaches the series
	// limits to each entry, as on a node.
	d, groups := limitedNode(t, 1, o)
	// The real clock: the rate refills with it.
	wh, err := NewWriteHandler(d, WriteOptions{MultiTenant: true, Limits: o})
	require.NoError(t, err)
	imp := NewImportHandler(wh, ImportOptions{BatchSamples: 1000}) // cut to the burst
	var b strings.Builder
	for s := range 5 {
		for i := range 100 {
			fmt.Fprintf(&b, "lim{s=\"%d\"} %d %d\n", s, i, 1000+i)
		}
	}
	start := time.Now()
	code, res := postImport(t, imp, "t", "text/plain", b.String())
	took := time.Since(start)
	require.Equal(t, http.StatusOK, code, res)
	require.Equal(t, 300, res.SamplesWritten, res)
	require.Equal(t, 200, res.SamplesRefused, res)
	require.Equal(t, map[string]int{"per_user_series_limit": 200}, res.Refused)
	require.Contains(t, res.FirstRefusal, "per-user series limit")
	// 500 samples at 2,000/s past a burst of 100: about 0.2 s of waiting.
	require.Greater(t, took, 150*time.Millisecond, "the rate was not applied")
	require.Len(t, stored(t, groups[1], "t"), 3)
}

// TestImportOpenMetricsUTF8: a family with a UTF-8 name cut between
// chunks keeps its (quoted) type line.
func TestImportOpenMetricsUTF8(t *testing.T) {
	imp, _, gw := newImportHandlers(t, ImportOptions{ChunkBytes: 40, BatchSamples: 2})
	body := "# TYPE \"my.counter\" counter\n{\"my.counter_total\",a=\"1\"} 1 1\n{\"my.counter_total\",a=\"1\"} 2 2\n{\"my.counter_total\",a=\"1\"} 3 3\n# EOF\n"
	code, res := postImport(t, imp, "t", "application/openmetrics-text", body)
	require.Equal(t, http.StatusOK, code, res)
	require.Equal(t, 3, res.SamplesWritten, res)
	require.Equal(t, []string{`{__name__="my.counter_total", a="1"}: 1000=1 2000=2 3000=3`}, stored(t, gw.g, "t"))
}

// TestExportSkipsHistograms: native histogram samples, which the text
// format cannot carry, are counted in a last "# SKIPPED" line, not
// dropped silently; the float samples beside them are exported.
func TestExportSkipsHistograms(t *testing.T) {
	_, exp, gw := newImportHandlers(t, ImportOptions{})
	h := &histogram.Histogram{Count: 3, Sum: 2, Schema: 0, ZeroThreshold: 0.001,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{3}}
	_, err := gw.Write(context.Background(), &write.Batch{Tenant: "t", Series: []write.Series{
		{Labels: write.AppendLabel(nil, []byte("__name__"), []byte("h")), Histograms: []write.Histogram{{T: 1000, H: h}, {T: 2000, H: h}}},
		{Labels: write.AppendLabel(nil, []byte("__name__"), []byte("f")), Samples: []write.Sample{{T: 1000, V: 1}}},
	}})
	require.NoError(t, err)
	code, out := getExport(t, exp, "t", url.Values{"match[]": {`{__name__=~".+"}`}})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "f 1 1000\n# SKIPPED 2 native histogram samples: the text format cannot carry them\n", out)
}
