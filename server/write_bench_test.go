package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/server/distributor"
	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/write"
)

// logWriter is the node's write path without Raft: every batch is encoded
// as the log entry it would be, then decoded and applied by the engine.
type logWriter struct {
	g     *engine.Group
	index uint64
	buf   []byte
}

func (w *logWriter) Write(_ context.Context, b *write.Batch) ([]write.Refusal, error) {
	w.buf = write.Append(w.buf[:0], b)
	w.index++
	return w.g.Apply(w.index, w.buf)
}

// nodeExporterSeries returns n label sets shaped like node_exporter's: a
// few dozen metric families per host with their extra labels, an instance
// and a job label, sorted by name.
func nodeExporterSeries(n int) [][]prompb.Label {
	type family struct {
		name  string
		extra []string // extra label names; values are generated
		count int      // series per host
	}
	families := []family{
		{"node_cpu_seconds_total", []string{"cpu", "mode"}, 64},
		{"node_filesystem_avail_bytes", []string{"device", "fstype", "mountpoint"}, 12},
		{"node_filesystem_size_bytes", []string{"device", "fstype", "mountpoint"}, 12},
		{"node_network_receive_bytes_total", []string{"device"}, 8},
		{"node_network_transmit_bytes_total", []string{"device"}, 8},
		{"node_disk_read_bytes_total", []string{"device"}, 8},
		{"node_disk_written_bytes_total", []string{"device"}, 8},
		{"node_memory_MemAvailable_bytes", nil, 1},
		{"node_load1", nil, 1},
		{"node_vmstat_pgfault", nil, 1},
		{"go_gc_duration_seconds", []string{"quantile"}, 5},
		{"node_scrape_collector_duration_seconds", []string{"collector"}, 40},
	}
	var out [][]prompb.Label
	for host := 0; len(out) < n; host++ {
		for _, f := range families {
			for i := 0; i < f.count && len(out) < n; i++ {
				ls := []prompb.Label{{Name: "__name__", Value: f.name}}
				for j, e := range f.extra {
					// The first extra label tells the family's series apart.
					ls = append(ls, prompb.Label{Name: e, Value: fmt.Sprintf("%s%d", e[:1], i/(1+3*j))})
				}
				ls = append(ls,
					prompb.Label{Name: "instance", Value: fmt.Sprintf("host-%d.example.org:9100", host)},
					prompb.Label{Name: "job", Value: "node"})
				sortLabels(ls)
				out = append(out, ls)
			}
		}
	}
	return out
}

func sortLabels(ls []prompb.Label) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Name < ls[j-1].Name; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

// BenchmarkWrite measures the server's remote-write path as the node runs
// it, minus HTTP and Raft: decode, validate, build and encode the batch,
// decode and apply it to an engine on disk. Each request carries one
// sample of each of 2000 series, as Prometheus's remote write sends them;
// 50,000 series are written scrape after scrape at 15 s.
func BenchmarkWrite(b *testing.B) {
	benchmarkWrite(b, nil)
}

// BenchmarkWriteLimits is BenchmarkWrite with every write limit of the
// tenant on and never reached: the ingestion rate's bucket, the series
// limits the distributor puts in each entry (scaled to the group as it
// does) and the engine checks for new series. Against BenchmarkWrite of
// the commit before the limits it is their cost (docs/design.md
// "Limits").
func BenchmarkWriteLimits(b *testing.B) {
	o, err := limits.NewOverrides(limits.Defaults())
	require.NoError(b, err)
	c, err := limits.ParseConfig([]byte(`
overrides:
  bench:
    ingestion_rate: 1e12
    ingestion_burst_size: 1000000000
    max_global_series_per_user: 10000000
    max_global_series_per_metric: 1000000
`), o.Defaults())
	require.NoError(b, err)
	o.Set(c)
	benchmarkWrite(b, o)
}

// limitedWriter puts the tenant's series limits in each batch, as the
// distributor does for a ring of one group, before the logWriter.
type limitedWriter struct {
	*logWriter
	o *limits.Overrides
}

func (w limitedWriter) Write(ctx context.Context, b *write.Batch) ([]write.Refusal, error) {
	b.Limits = write.SeriesLimits{
		MaxSeries:          distributor.GroupLimit(w.o.MaxGlobalSeriesPerUser(b.Tenant), 1),
		MaxSeriesPerMetric: distributor.GroupLimit(w.o.MaxGlobalSeriesPerMetric(b.Tenant), 1),
	}
	return w.logWriter.Write(ctx, b)
}

func benchmarkWrite(b *testing.B, o *limits.Overrides) {
	const nSeries, perReq = 50_000, 2000
	db, err := engine.Open(engine.Options{Dir: b.TempDir()})
	require.NoError(b, err)
	defer func() { require.NoError(b, db.Close()) }()
	g, _, err := db.OpenGroup(1)
	require.NoError(b, err)
	var w Writer = &logWriter{g: g}
	if o != nil {
		w = limitedWriter{&logWriter{g: g}, o}
	}
	h, err := NewWriteHandler(w, WriteOptions{Limits: o})
	require.NoError(b, err)

	lsets := nodeExporterSeries(nSeries)
	body := func(req int) []byte { return scrapeBody(b, lsets, perReq, req) }
	post := func(body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
		r.Header.Set("X-Scope-OrgID", "bench")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	// Warm the head with every series so the loop measures the steady
	// state, not series creation.
	req := 0
	for ; req < nSeries/perReq; req++ {
		post(body(req))
	}
	b.ReportAllocs()
	n := 0
	var cpu time.Duration // of the process while posting, background work included
	for b.Loop() {
		b.StopTimer()
		next := body(req)
		req++
		b.StartTimer()
		c0 := processCPU()
		post(next)
		cpu += processCPU() - c0
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*perReq), "ns/sample")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n*perReq), "cpu-ns/sample")
	b.ReportMetric(float64(n*perReq)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkWriteLimitChecks is the work the write limits add to one
// request of 2,000 samples on a node of three, outside the engine: the
// tenant's limits looked up, its validation limits built, its ingestion
// bucket taken from, and the two series limits scaled to a group (the
// distributor, once per part). Divided by BenchmarkWrite's time per
// request it bounds the limits' share of ingest CPU from above more
// sharply than the difference of two noisy write benchmarks.
func BenchmarkWriteLimitChecks(b *testing.B) {
	o, err := limits.NewOverrides(limits.Defaults())
	require.NoError(b, err)
	c, err := limits.ParseConfig([]byte("overrides:\n  bench:\n    ingestion_rate: 1e12\n    ingestion_burst_size: 1000000000\n    max_global_series_per_user: 10000000\n    max_global_series_per_metric: 1000000\n"), o.Defaults())
	require.NoError(b, err)
	o.Set(c)
	il := limits.NewIngestionLimiter(o, func() int { return 3 })
	now := time.Now()
	var sink int
	for b.Loop() {
		now = now.Add(time.Millisecond)
		v := o.For("bench").Validation(false)
		if !il.AllowN(now, "bench", 2000) {
			b.Fatal("refused")
		}
		sink += v.MaxLabelNames + distributor.GroupLimit(o.MaxGlobalSeriesPerUser("bench"), 1.0/3) +
			distributor.GroupLimit(o.MaxGlobalSeriesPerMetric("bench"), 1.0/3)
	}
	if sink == 0 {
		b.Fatal("no work")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2000, "ns/sample")
}

// scrapeBody is the snappy remote-write 1.0 body of request req of a
// replay of lsets at 15 s scrapes, perReq series per request: request req
// holds series [lo, lo+perReq) of scrape req/(len(lsets)/perReq).
func scrapeBody(tb testing.TB, lsets [][]prompb.Label, perReq, req int) []byte {
	n := len(lsets)
	scrape, lo := req/(n/perReq), req%(n/perReq)*perReq
	var wr prompb.WriteRequest
	for i := lo; i < lo+perReq; i++ {
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
			Labels:  lsets[i],
			Samples: []prompb.Sample{{Timestamp: int64(scrape) * 15000, Value: float64(i*scrape) * 0.25}},
		})
	}
	raw, err := wr.Marshal()
	require.NoError(tb, err)
	return snappy.Encode(nil, raw)
}
