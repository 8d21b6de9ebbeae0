package server

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
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
// The -pdata cases take OTLP through pdata's decoder and Prometheus's
// translator only (the path for requests the fast path hands over, and
// the only one before it).
//
// The -histograms cases send the same series as native histograms: an
// OTLP exponential histogram point (scale 3, 16 dense buckets from an
// offset per series, counts growing scrape after scrape) against remote
// write 1.0 carrying the integer histogram Prometheus's translator makes
// of it (schema 3, OTel's bucket index i at i+1); ns/sample is per
// histogram.
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
	// The histogram of series i at a scrape.
	const nBuckets = 16
	histAt := func(i, scrape int) (offset int32, counts []uint64, count uint64, sum float64) {
		offset = int32(i%7) - 3
		counts = make([]uint64, nBuckets)
		for j := range counts {
			counts[j] = uint64((i+j)%5) * uint64(scrape+1)
			count += counts[j]
		}
		return offset, counts, count, float64(count) * 0.37
	}
	rwHist := func(req int) []byte {
		scrape, lo := req/(nSeries/perReq), req%(nSeries/perReq)*perReq
		var wr prompb.WriteRequest
		for i := lo; i < lo+perReq; i++ {
			offset, counts, count, sum := histAt(i, scrape)
			h := histogram.Histogram{Schema: 3, ZeroThreshold: 1e-128, Count: count, Sum: sum,
				PositiveSpans: []histogram.Span{{Offset: offset + 1, Length: nBuckets}}}
			prev := int64(0)
			for _, c := range counts {
				h.PositiveBuckets = append(h.PositiveBuckets, int64(c)-prev)
				prev = int64(c)
			}
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: lsets[i],
				Histograms: []prompb.Histogram{prompb.FromIntHistogram(int64(scrape)*15000, &h)}})
		}
		raw, err := wr.Marshal()
		require.NoError(b, err)
		return snappy.Encode(nil, raw)
	}
	otlp := func(zip, hist bool) func(req int) []byte {
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
					if hist {
						m.SetEmptyExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
					} else {
						m.SetEmptyGauge()
					}
					family = name
				}
				ts := pcommon.Timestamp(int64(scrape) * 15000 * 1e6)
				if hist {
					dp := m.ExponentialHistogram().DataPoints().AppendEmpty()
					attrs.MoveTo(dp.Attributes())
					dp.SetTimestamp(ts)
					offset, counts, count, sum := histAt(i, scrape)
					dp.SetScale(3)
					dp.SetCount(count)
					dp.SetSum(sum)
					dp.Positive().SetOffset(offset)
					dp.Positive().BucketCounts().FromRaw(counts)
					continue
				}
				dp := m.Gauge().DataPoints().AppendEmpty()
				attrs.MoveTo(dp.Attributes())
				dp.SetTimestamp(ts)
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
		pdata     bool // OTLP through pdata and Prometheus's translator only
	}{
		{"remote-write-1.0", rw, "/api/v1/push", "snappy", http.StatusNoContent, false},
		{"otlp-gzip", otlp(true, false), "/otlp/v1/metrics", "gzip", http.StatusOK, false},
		{"otlp-gzip-pdata", otlp(true, false), "/otlp/v1/metrics", "gzip", http.StatusOK, true},
		{"otlp-uncompressed", otlp(false, false), "/otlp/v1/metrics", "", http.StatusOK, false},
		{"remote-write-1.0-histograms", rwHist, "/api/v1/push", "snappy", http.StatusNoContent, false},
		{"otlp-gzip-histograms", otlp(true, true), "/otlp/v1/metrics", "gzip", http.StatusOK, false},
		{"otlp-gzip-histograms-pdata", otlp(true, true), "/otlp/v1/metrics", "gzip", http.StatusOK, true},
		{"import-text", text, "/api/v1/import/prometheus", "", http.StatusOK, false},
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
				oh, err := NewOTLPHandler(wh, OTLPOptions{})
				if err != nil {
					b.Fatal(err)
				}
				oh.pdataOnly = c.pdata
				h = oh
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
				if c.path == "/otlp/v1/metrics" {
					if rejected, msg := partial(b, w); rejected != 0 || msg != "" {
						b.Fatalf("partial success: %d rejected: %s", rejected, msg)
					}
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
