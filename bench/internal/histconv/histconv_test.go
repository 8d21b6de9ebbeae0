package histconv

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/stretchr/testify/require"
)

func TestFromTo(t *testing.T) {
	h := &histogram.Histogram{
		CounterResetHint: histogram.GaugeType, Schema: -53, ZeroThreshold: 1e-9, ZeroCount: 2, Count: 9,
		Sum: math.Float64frombits(0x7ff0000000000002), CustomValues: []float64{0.1, 1},
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}}, PositiveBuckets: []int64{1, 2, -1},
		NegativeSpans: []histogram.Span{{Offset: -3, Length: 1}}, NegativeBuckets: []int64{4},
	}
	c := From(h)
	back := To(&c)
	require.Equal(t, uint64(0x7ff0000000000002), math.Float64bits(back.Sum))
	h.Sum, back.Sum = 1, 1 // DeepEqual never equates NaNs
	require.Equal(t, h, back)
	fh := h.ToFloat(nil)
	fc := FromFloat(fh)
	require.Equal(t, fh, ToFloat(&fc))
}

// TestExponential: counts are integers that add up to the count, every
// bucket only grows between scrapes, and a classic reset resets them.
func TestExponential(t *testing.T) {
	les := []float64{0.005, 0.01, 0.1, 1, math.Inf(1)}
	e, err := NewExponential(3, les)
	require.NoError(t, err)
	abs := func(h *histogram.Histogram) map[int]int64 {
		out := map[int]int64{}
		it := h.PositiveBucketIterator()
		for it.Next() {
			b := it.At()
			out[int(b.Index)] = int64(b.Count)
		}
		return out
	}
	var prev map[int]int64
	scrapes := [][]float64{{0, 0, 0, 0, 0}, {1, 3, 10, 10, 12}, {1, 5, 40, 41, 41}, {9, 20, 90, 95, 99}, {0, 1, 2, 2, 3}}
	for i, cum := range scrapes {
		h, err := e.Next(cum, cum[4], float64(i))
		require.NoError(t, err)
		require.NoError(t, h.Validate())
		require.Equal(t, uint64(cum[4]), h.Count)
		got := abs(h)
		total := int64(0)
		for idx, c := range got {
			total += c
			if prev != nil && i != 4 {
				require.GreaterOrEqual(t, c, prev[idx], "scrape %d bucket %d shrank", i, idx)
			}
		}
		require.Equal(t, int64(cum[4]), total, "scrape %d", i)
		if i == 4 {
			require.Equal(t, histogram.CounterReset, h.CounterResetHint)
		}
		prev = got
	}
	_, err = NewExponential(3, []float64{-1, 1})
	require.Error(t, err)
}
