package ring

import (
	"fmt"
	"testing"
)

// BenchmarkHash: the ring hash of a node-exporter-like series (~110
// bytes of labels).
func BenchmarkHash(b *testing.B) {
	lbls := []byte("__name__\xffnode_cpu_seconds_total\xffcpu\xff7\xffinstance\xffhost-001.example.org:9100\xffjob\xffnode\xffmode\xffidle\xff")
	b.ReportAllocs()
	for b.Loop() {
		Hash("tenant-a", lbls)
	}
	b.ReportMetric(float64(len(lbls))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// BenchmarkLookup: a ring of n groups as the planner builds it.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{3, 48} {
		b.Run(fmt.Sprint("groups=", n), func(b *testing.B) {
			var r *Ring
			for g := range n {
				r = r.withGroup(GroupID(g + 1))
			}
			h := uint64(0x9e3779b97f4a7c15)
			for b.Loop() {
				r.LookupIndex(h)
				h += 0x9e3779b97f4a7c15
			}
		})
	}
}
