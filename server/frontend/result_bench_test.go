package frontend

import (
	"fmt"
	"strings"
	"testing"
)

// matrixBody is a query_range answer as Prometheus's API writes it: n
// series of points float points each, a minute apart.
func matrixBody(n, points int) []byte {
	var b strings.Builder
	b.WriteString(`{"status":"success","data":{"resultType":"matrix","result":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"metric":{"instance":"host-%d:9100","job":"node"},"values":[`, i)
		for j := range points {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `[%d.001,"%g"]`, 1796666497+60*j, float64(i*j)/7)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// BenchmarkDecodeResult: the frontend decodes every piece's answer to
// join pieces and shards (make bench's range queries: 35 series of 91
// points; a dashboard panel: 1,000 series of 1,440).
func BenchmarkDecodeResult(b *testing.B) {
	for _, c := range []struct{ series, points int }{{35, 91}, {1000, 1440}} {
		body := matrixBody(c.series, c.points)
		b.Run(fmt.Sprintf("%dx%d", c.series, c.points), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := decodeResult(body, nil)
				if err != nil || len(r.series) != c.series {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*c.series*c.points), "ns/point")
		})
	}
}
