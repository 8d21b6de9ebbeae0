package histdata

import (
	"bytes"
	"math"
	"os"
	"testing"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/stretchr/testify/require"
)

func TestWriteRead(t *testing.T) {
	stale := math.Float64frombits(0x7ff0000000000002)
	in := []Series{
		{Labels: `{__name__="a"}`, Kind: KindInt, T: []int64{-5, 1000, 2000, 2001}, H: []chunkenc.Histogram{
			{Schema: 3, ZeroThreshold: 1e-128, Count: 3, Sum: 1.5, PositiveSpans: []chunkenc.Span{{Offset: -2, Length: 2}}, PositiveBuckets: []int64{1, 1}},
			{Schema: 3, ZeroThreshold: 1e-128, Count: 5, Sum: 2.5, PositiveSpans: []chunkenc.Span{{Offset: -2, Length: 2}}, PositiveBuckets: []int64{2, 1}, CounterResetHint: chunkenc.NotCounterReset},
			{Sum: stale},
			{Schema: -53, Count: math.MaxUint64, CustomValues: []float64{0.1, 1}, PositiveSpans: []chunkenc.Span{{Offset: 0, Length: 1}, {Offset: 1, Length: 1}}, PositiveBuckets: []int64{math.MinInt64, 7},
				NegativeSpans: []chunkenc.Span{{Offset: math.MaxInt32, Length: 1}}, NegativeBuckets: []int64{-3}, CounterResetHint: chunkenc.GaugeType},
		}},
		{Labels: `{__name__="b"}`, Kind: KindFloat, T: []int64{7, 8}, FH: []chunkenc.FloatHistogram{
			{Schema: 0, Count: 0.5, ZeroCount: math.Copysign(0, -1), Sum: math.NaN(), PositiveSpans: []chunkenc.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []float64{0.5}},
			{Schema: 0, Count: 0.25, Sum: stale, PositiveSpans: []chunkenc.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []float64{math.Inf(1)}},
		}},
	}
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, in))
	out, err := Read(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Len(t, out, len(in))
	for i := range in {
		require.Equal(t, in[i].Labels, out[i].Labels)
		require.Equal(t, in[i].T, out[i].T)
		for j := range in[i].H {
			require.True(t, chunkenc.EqualHistograms(&in[i].H[j], &out[i].H[j]), "%d/%d: %+v", i, j, out[i].H[j])
		}
		for j := range in[i].FH {
			require.True(t, chunkenc.EqualFloatHistograms(&in[i].FH[j], &out[i].FH[j]), "%d/%d: %+v", i, j, out[i].FH[j])
		}
	}
	// Truncations fail cleanly.
	raw := buf.Bytes()
	for l := 0; l < len(raw); l += 7 {
		_, err := Read(bytes.NewReader(raw[:l]))
		require.Error(t, err)
	}
}

// TestDataSet reads the committed data set: it must parse and hold what
// README says (integer and float series, stale samples).
func TestDataSet(t *testing.T) {
	const path = "../../chunkenc/testdata/histograms.hd.gz"
	if _, err := os.Stat(path); err != nil {
		t.Skip("no data set:", err)
	}
	series, err := ReadFile(path)
	require.NoError(t, err)
	kinds, stale, samples := map[byte]int{}, 0, 0
	for _, s := range series {
		kinds[s.Kind]++
		samples += s.Len()
		for _, h := range s.H {
			if math.Float64bits(h.Sum) == 0x7ff0000000000002 {
				stale++
			}
		}
	}
	require.Equal(t, 40, kinds[KindInt])
	require.Equal(t, 40, kinds[KindFloat])
	require.Positive(t, stale)
	require.Greater(t, samples, 200_000)
}
