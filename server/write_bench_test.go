package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
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
	const nSeries, perReq = 50_000, 2000
	db, err := engine.Open(engine.Options{Dir: b.TempDir()})
	require.NoError(b, err)
	defer func() { require.NoError(b, db.Close()) }()
	g, _, err := db.OpenGroup(1)
	require.NoError(b, err)
	h, err := NewWriteHandler(&logWriter{g: g}, WriteOptions{})
	require.NoError(b, err)

	lsets := nodeExporterSeries(nSeries)
	body := func(req int) []byte {
		scrape, lo := req/(nSeries/perReq), req%(nSeries/perReq)*perReq
		var wr prompb.WriteRequest
		for i := lo; i < lo+perReq; i++ {
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
				Labels:  lsets[i],
				Samples: []prompb.Sample{{Timestamp: int64(scrape) * 15000, Value: float64(i*scrape) * 0.25}},
			})
		}
		raw, err := wr.Marshal()
		require.NoError(b, err)
		return snappy.Encode(nil, raw)
	}
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
	for b.Loop() {
		b.StopTimer()
		next := body(req)
		req++
		b.StartTimer()
		post(next)
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*perReq), "ns/sample")
	b.ReportMetric(float64(n*perReq)/b.Elapsed().Seconds(), "samples/s")
}
