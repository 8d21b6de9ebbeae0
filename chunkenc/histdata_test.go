package chunkenc_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/histdata"
	"github.com/stretchr/testify/require"
)

// TestHistogramData encodes every series of the native-histogram data set
// (testdata/histograms.hd.gz and histograms-recorded.hd.gz, README
// "Native histogram data set") in chunks
// of 120 and 1024 samples, checks the bit-exact round trip, logs where the
// bits go and guards the size against regressions. The comparison with
// Prometheus's chunks is in bench (go run ./bench/cmd/histbench).
func TestHistogramData(t *testing.T) {
	var series []histdata.Series
	for _, path := range []string{"testdata/histograms.hd.gz", "testdata/histograms-recorded.hd.gz"} {
		ss, err := histdata.ReadFile(path)
		require.NoError(t, err)
		series = append(series, ss...)
	}
	// Bytes per sample at 1024 samples per chunk, measured when the
	// encoding was written; a regression of more than 2 % fails.
	limits := map[string]float64{"nhcb": 1.22, "exp": 1.48, "nhcb:rate1m": 2.93, "exp:rate1m": 16.56, "recorded": 5.01, "recorded:float": 86.81}
	var e chunkenc.Encoder
	var it chunkenc.HistogramIterator
	var buf []byte
	var err error
	for _, size := range []int{120, 1024} {
		bytes, samples := map[string]int{}, map[string]int{}
		secs := map[string][5]int{}
		for _, s := range series {
			kind := s.Labels[strings.Index(s.Labels, `kind="`)+6:]
			kind = kind[:strings.IndexByte(kind, '"')]
			if kind == "recorded" && s.Kind == histdata.KindFloat {
				kind = "recorded:float"
			}
			for off := 0; off < s.Len(); off += size {
				end := min(off+size, s.Len())
				if s.Kind == histdata.KindInt {
					buf, err = e.EncodeHistograms(buf[:0], s.T[off:end], s.H[off:end])
				} else {
					buf, err = e.EncodeFloatHistograms(buf[:0], s.T[off:end], s.FH[off:end])
				}
				require.NoError(t, err)
				bytes[kind] += len(buf)
				samples[kind] += end - off
				it.Reset(buf)
				for i := off; it.Next(); i++ {
					tm, fh := it.AtFloat()
					require.Equal(t, s.T[i], tm)
					if s.Kind == histdata.KindInt {
						_, h := it.At()
						require.True(t, chunkenc.EqualHistograms(h, &s.H[i]), "%s sample %d", s.Labels, i)
					} else {
						require.True(t, chunkenc.EqualFloatHistograms(fh, &s.FH[i]), "%s sample %d", s.Labels, i)
					}
				}
				require.NoError(t, it.Err())
				sb := chunkenc.HistogramSectionBits(&e)
				x := secs[kind]
				for j := range x {
					x[j] += sb[j]
				}
				secs[kind] = x
			}
		}
		for kind, b := range bytes {
			n := samples[kind]
			bps := float64(b) / float64(n)
			x := secs[kind]
			t.Logf("%4d/chunk %-12s %8d samples %6.2f bytes/sample; bits/sample: times %.2f layout %.2f counts %.2f sum %.2f buckets %.2f",
				size, kind, n, bps, float64(x[0])/float64(n), float64(x[1])/float64(n), float64(x[2])/float64(n), float64(x[3])/float64(n), float64(x[4])/float64(n))
			if size == 1024 {
				require.LessOrEqual(t, bps, limits[kind]*1.02, fmt.Sprintf("%s: %.3f bytes/sample, was %.3f", kind, bps, limits[kind]))
			}
		}
	}
}
