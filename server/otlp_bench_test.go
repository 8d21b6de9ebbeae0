package server

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/myelindb/myelin/engine"
)

// BenchmarkIngest compares the CPU per sample of OTLP ingest with remote
// write 1.0's on the same series: BenchmarkWrite's node_exporter shape,
// 2,000 samples a request, 50,000 series scrape after scrape, through
// the handler, validation, the batch encoding and the engine. The OTLP
// request holds one resource per host (service.name "node" and
// service.instance.id become job and instance, no target_info) and a
// gauge per family whose points carry the other labels as attributes:
// Prometheus 3's translation gives exactly the remote-write series.
//
//	go test -run '^$' -bench 'Ingest' -benchtime 200x ./server
func BenchmarkIngest(b *testing.B) {
	const nSeries, perReq = 50_000, 2000
	lsets := nodeExporterSeries(nSeries)
	rw := func(req int) []byte { return scrapeBody(b, lsets, perReq, req) }
	// The same samples in the text format, for the backfill import.
	text := func(req int) []byte {
		scrape, lo := req/(nSeries/perReq), req%(nSeries/perReq)*perReq
		var out []byte
		for i := lo; i < lo+perReq; i++ {
			var ls labels.ScratchBuilder
			for _, l := range lsets[i] {
				ls.Add(l.Name, l.Value)
			}
			out = AppendSampleText(out, AppendSeriesText(nil, ls.Labels()), int64(scrape)*15000, float64(i*scrape)*0.25)
		}
		return out
	}
	otlp := func(zip bool) func(req int) []byte {
		return func(req int) []byte {
			scrape, lo := req/(nSeries/perReq), req%(nSeries/perReq)*perReq
			md := pmetric.NewMetrics()
			var rm pmetric.ResourceMetrics
			var m pmetric.Metric
			instance, family := "", ""
			for i := lo; i < lo+perReq; i++ {
				var name, inst string
				attrs := pcommon.NewMap()
				for _, l := range lsets[i] {
					switch l.Name {
					case "__name__":
						name = l.Value
					case "instance":
						inst = l.Value
					case "job":
					default:
						attrs.PutStr(l.Name, l.Value)
					}
				}
				if inst != instance {
					rm = md.ResourceMetrics().AppendEmpty()
					rm.Resource().Attributes().PutStr("service.name", "node")
					rm.Resource().Attributes().PutStr("service.instance.id", inst)
					rm.ScopeMetrics().AppendEmpty()
					instance, family = inst, ""
				}
				if name != family {
					m = rm.ScopeMetrics().At(0).Metrics().AppendEmpty()
					m.SetName(name)
					m.SetEmptyGauge()
					family = name
				}
				dp := m.Gauge().DataPoints().AppendEmpty()
				attrs.MoveTo(dp.Attributes())
				dp.SetTimestamp(pcommon.Timestamp(int64(scrape) * 15000 * 1e6))
				dp.SetDoubleValue(float64(i*scrape) * 0.25)
			}
			raw, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
			require.NoError(b, err)
			if !zip {
				return raw
			}
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(raw)
			require.NoError(b, zw.Close())
			return buf.Bytes()
		}
	}
	for _, c := range []struct {
		name      string
		body      func(req int) []byte
		path, enc string
		code      int
	}{
		{"remote-write-1.0", rw, "/api/v1/push", "snappy", http.StatusNoContent},
		{"otlp-gzip", otlp(true), "/otlp/v1/metrics", "gzip", http.StatusOK},
		{"otlp-uncompressed", otlp(false), "/otlp/v1/metrics", "", http.StatusOK},
		{"import-text", text, "/api/v1/import/prometheus", "", http.StatusOK},
	} {
		b.Run(c.name, func(b *testing.B) {
			db, err := engine.Open(engine.Options{Dir: b.TempDir()})
			require.NoError(b, err)
			defer func() { require.NoError(b, db.Close()) }()
			g, _, err := db.OpenGroup(1)
			require.NoError(b, err)
			wh, err := NewWriteHandler(&logWriter{g: g}, WriteOptions{})
			require.NoError(b, err)
			var h http.Handler = wh
			ct := "application/x-protobuf"
			switch c.path {
			case "/otlp/v1/metrics":
				if h, err = NewOTLPHandler(wh, OTLPOptions{}); err != nil {
					b.Fatal(err)
				}
			case "/api/v1/import/prometheus":
				h, ct = NewImportHandler(wh, ImportOptions{}), "text/plain"
			}
			post := func(body []byte) {
				r := httptest.NewRequest(http.MethodPost, c.path, bytes.NewReader(body))
				r.Header.Set("Content-Type", ct)
				if c.enc != "" {
					r.Header.Set("Content-Encoding", c.enc)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != c.code {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			req := 0
			for ; req < nSeries/perReq; req++ { // every series in the head
				post(c.body(req))
			}
			b.ReportAllocs()
			n := 0
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				next := c.body(req)
				req++
				b.StartTimer()
				c0 := processCPU()
				post(next)
				cpu += processCPU() - c0
				n++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*perReq), "ns/sample")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n*perReq), "cpu-ns/sample")
		})
	}
}
