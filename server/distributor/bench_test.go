package distributor

import (
	"fmt"
	"testing"

	"github.com/myelindb/myelin/write"
)

// BenchmarkSplit: splitting a remote-write sized batch (2,000 series of
// node-exporter-like label sets, ~110 bytes each) by group.
func BenchmarkSplit(b *testing.B) {
	const n = 2000
	bb := write.NewBuilder("tenant-a")
	for i := range n {
		enc := write.AppendLabel(nil, "__name__", "node_cpu_seconds_total")
		enc = write.AppendLabel(enc, "cpu", fmt.Sprint(i%64))
		enc = write.AppendLabel(enc, "instance", fmt.Sprintf("host-%03d.example.org:9100", i/64))
		enc = write.AppendLabel(enc, "job", "node")
		enc = write.AppendLabel(enc, "mode", "idle")
		bb.AddEncoded(enc, []write.Sample{{T: 1_700_000_000_000, V: float64(i)}})
	}
	batch := bb.Batch()
	for _, groups := range []int{3, 12, 48} {
		b.Run(fmt.Sprint("groups=", groups), func(b *testing.B) {
			r := evenRing(b, groups)
			b.ReportAllocs()
			for b.Loop() {
				Split(r, batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
		})
	}
}
