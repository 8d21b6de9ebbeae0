package write

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// benchBatch returns a remote-write shaped batch: n series of 10 labels
// (~180 bytes), one sample each.
func benchBatch(b *testing.B, n int) *Batch {
	bb := NewBuilder("bench")
	for i := range n {
		lset := labels.FromStrings(
			"__name__", fmt.Sprintf("node_metric_%d_total", i%200),
			"cluster", "prod-eu-west-1",
			"env", "production",
			"instance", fmt.Sprintf("10.%d.%d.%d:9100", i/65536%256, i/256%256, i%256),
			"job", "node-exporter",
			"mode", []string{"user", "system", "idle", "iowait"}[i%4],
			"namespace", "monitoring",
			"pod", fmt.Sprintf("node-exporter-%05d", i/200),
			"region", "eu-west-1",
			"service", "node-exporter",
		)
		if err := bb.Add(lset, []Sample{{1_700_000_000_000, float64(i%1000) * 1.5}}); err != nil {
			b.Fatal(err)
		}
	}
	return bb.Batch()
}

// BenchmarkDecode decodes a 1000-series batch with a warm Decoder, as the
// engine does, uncompressed, compressed (VersionS2) and as the Encoder
// writes it (VersionS2Prefix); and with Decode, which allocates the
// batch's slices every time.
func BenchmarkDecode(b *testing.B) {
	const n = 1000
	enc := Append(nil, benchBatch(b, n))
	b.Run("fresh", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(enc); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
	})
	var e Encoder
	for _, tc := range []struct {
		name string
		in   []byte
	}{{"v2", enc}, {"s2", Compress(nil, enc)}, {"s2prefix", e.Entry(benchBatch(b, n))}} {
		b.Run(tc.name, func(b *testing.B) {
			var d Decoder
			b.SetBytes(int64(len(tc.in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Decode(tc.in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
		})
	}
}

// BenchmarkEncoderEntry makes the log entry of a 2000-series batch.
func BenchmarkEncoderEntry(b *testing.B) {
	const n = 2000
	batch := benchBatch(b, n)
	var e Encoder
	b.ReportAllocs()
	var size int
	for b.Loop() {
		size = len(e.Entry(batch))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
	b.ReportMetric(float64(size)/n, "bytes/series")
}
