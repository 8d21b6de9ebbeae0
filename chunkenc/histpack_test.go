package chunkenc

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// staleNaN is Prometheus's staleness marker.
var staleNaN = math.Float64frombits(0x7ff0000000000002)

// randHistograms returns n integer histograms that behave like a scraped
// counter histogram (buckets growing at their own rates, occasionally a new
// bucket, a reset, a stale sample) with the odd corner case mixed in:
// NaN payloads, -0, empty and zero-length spans, negative buckets, custom
// buckets, every hint.
func randHistograms(rng *rand.Rand, n int) ([]int64, []Histogram) {
	ts := make([]int64, n)
	hs := make([]Histogram, n)
	t := rng.Int64N(1<<40) - 1<<39
	schema := int32(rng.IntN(12) - 4)
	custom := rng.IntN(4) == 0
	var cv []float64
	if custom {
		schema = -53
		for i := range rng.IntN(12) + 1 {
			cv = append(cv, float64(i)*0.25+0.005)
		}
	}
	pos := []Span{{Offset: int32(rng.IntN(20) - 10), Length: uint32(rng.IntN(8) + 1)}}
	if rng.IntN(2) == 0 {
		pos = append(pos, Span{Offset: int32(rng.IntN(4)), Length: uint32(rng.IntN(5))})
	}
	var neg []Span
	if !custom && rng.IntN(3) == 0 {
		neg = []Span{{Offset: int32(rng.IntN(6)), Length: uint32(rng.IntN(4) + 1)}}
	}
	abs := make([]int64, spansLen(pos)+spansLen(neg))
	rates := make([]int64, len(abs))
	for i := range rates {
		rates[i] = rng.Int64N(20)
	}
	zt := []float64{0, 1e-128, 0.001}[rng.IntN(3)]
	var zero, sumInc uint64
	sum := 0.0
	for i := range n {
		t += 1000 + rng.Int64N(3) - 1
		if rng.IntN(50) == 0 {
			t += rng.Int64N(100000)
		}
		ts[i] = t
		hint := NotCounterReset
		switch rng.IntN(40) {
		case 0: // a new bucket at the end
			pos = append(append([]Span(nil), pos...), Span{Offset: 1, Length: 1})
			abs = append(append([]int64(nil), abs[:spansLen(pos)-1]...), append([]int64{0}, abs[spansLen(pos)-1:]...)...)
			rates = append(append([]int64(nil), rates[:spansLen(pos)-1]...), append([]int64{3}, rates[spansLen(pos)-1:]...)...)
		case 1: // a reset
			clear(abs)
			zero, sum = 0, 0
			hint = CounterReset
		case 2:
			hint = CounterResetHint(rng.IntN(4))
		}
		count := zero
		for b := range abs {
			abs[b] += rng.Int64N(rates[b] + 1)
			count += uint64(abs[b])
		}
		zero += uint64(rng.IntN(2))
		count += zero
		sumInc = uint64(rng.IntN(1000))
		sum += float64(sumInc) * 0.0013
		h := Histogram{
			CounterResetHint: hint, Schema: schema, ZeroThreshold: zt,
			ZeroCount: zero, Count: count, Sum: sum,
			PositiveSpans: pos, NegativeSpans: neg, CustomValues: cv,
		}
		np := int(spansLen(pos))
		h.PositiveBuckets = deltas(abs[:np])
		h.NegativeBuckets = deltas(abs[np:])
		switch rng.IntN(60) {
		case 0:
			h.Sum = staleNaN
		case 1:
			h.Sum = math.Float64frombits(0x7ff8000000000001)
		case 2:
			h.Sum = math.Copysign(0, -1)
		case 3:
			h.Count = math.MaxUint64 - uint64(rng.IntN(3))
		}
		hs[i] = h
	}
	return ts, hs
}

func deltas(abs []int64) []int64 {
	if len(abs) == 0 {
		return nil
	}
	out := make([]int64, len(abs))
	prev := int64(0)
	for i, a := range abs {
		out[i] = a - prev
		prev = a
	}
	return out
}

// toFloat converts like Prometheus's Histogram.ToFloat, with a twist to
// make the counts non-integer as a rate() recording rule would.
func toFloat(hs []Histogram, div float64) []FloatHistogram {
	out := make([]FloatHistogram, len(hs))
	sum := func(v float64) float64 {
		if div == 1 {
			return v // v/1 would quieten a signalling NaN such as the stale marker
		}
		return v / div
	}
	for i, h := range hs {
		f := FloatHistogram{
			CounterResetHint: h.CounterResetHint, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
			ZeroCount: float64(h.ZeroCount) / div, Count: float64(h.Count) / div, Sum: sum(h.Sum),
			PositiveSpans: h.PositiveSpans, NegativeSpans: h.NegativeSpans, CustomValues: h.CustomValues,
		}
		for _, bs := range [2]struct {
			in  []int64
			out *[]float64
		}{{h.PositiveBuckets, &f.PositiveBuckets}, {h.NegativeBuckets, &f.NegativeBuckets}} {
			abs := int64(0)
			for _, d := range bs.in {
				abs += d
				*bs.out = append(*bs.out, float64(abs)/div)
			}
		}
		out[i] = f
	}
	return out
}

func requireHistogramsRoundTrip(t *testing.T, ts []int64, hs []Histogram) []byte {
	t.Helper()
	var e Encoder
	chunk, err := e.EncodeHistograms([]byte{0xAA}, ts, hs)
	require.NoError(t, err)
	require.Equal(t, byte(0xAA), chunk[0], "appends to dst")
	chunk = chunk[1:]
	n, err := NumSamples(chunk)
	require.NoError(t, err)
	require.Equal(t, len(hs), n)
	var it HistogramIterator
	it.Reset(chunk)
	i := 0
	for ; it.Next(); i++ {
		got, h := it.At()
		require.Equal(t, ts[i], got)
		require.True(t, EqualHistograms(h, &hs[i]), "sample %d:\n got %+v\nwant %+v", i, *h, hs[i])
		_, fh := it.AtFloat()
		want := toFloat(hs[i:i+1], 1)[0]
		require.True(t, EqualFloatHistograms(fh, &want), "sample %d as float", i)
	}
	require.NoError(t, it.Err())
	require.Equal(t, len(hs), i)
	return chunk
}

func requireFloatHistogramsRoundTrip(t *testing.T, ts []int64, hs []FloatHistogram) []byte {
	t.Helper()
	chunk, err := EncodeFloatHistograms(nil, ts, hs)
	require.NoError(t, err)
	var it HistogramIterator
	it.Reset(chunk)
	i := 0
	for ; it.Next(); i++ {
		got, h := it.AtFloat()
		require.Equal(t, ts[i], got)
		require.True(t, EqualFloatHistograms(h, &hs[i]), "sample %d:\n got %+v\nwant %+v", i, *h, hs[i])
	}
	require.NoError(t, it.Err())
	require.Equal(t, len(hs), i)
	return chunk
}

func TestHistogramsRoundTrip(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, n := range []int{1, 2, 3, 120, 1024} {
		for range 20 {
			ts, hs := randHistograms(rng, n)
			requireHistogramsRoundTrip(t, ts, hs)
			requireFloatHistogramsRoundTrip(t, ts, toFloat(hs, 1))
			requireFloatHistogramsRoundTrip(t, ts, toFloat(hs, 60))
		}
	}
}

func TestHistogramsCorner(t *testing.T) {
	nan := math.Float64frombits(0x7ff8000000000001)
	for _, tc := range []struct {
		name string
		hs   []Histogram
	}{
		{"empty histogram", []Histogram{{}}},
		{"zero-length spans", []Histogram{{PositiveSpans: []Span{{3, 0}, {-2, 1}, {0, 0}}, PositiveBuckets: []int64{5}}}},
		{"negative offsets without overlap", []Histogram{{PositiveSpans: []Span{{3, 2}, {-4, 1}}, PositiveBuckets: []int64{5, 1, -3}}}},
		{"extreme offsets", []Histogram{
			{PositiveSpans: []Span{{math.MinInt32, 1}, {math.MaxInt32, 1}}, PositiveBuckets: []int64{math.MinInt64, math.MaxInt64}},
			{PositiveSpans: []Span{{math.MaxInt32, 2}}, PositiveBuckets: []int64{-1, 1}},
		}},
		{"stale and NaN", []Histogram{
			{Sum: staleNaN, ZeroThreshold: nan, CustomValues: []float64{nan, math.Inf(1), math.Copysign(0, -1)}, Schema: -53},
			{Sum: nan, ZeroThreshold: math.Inf(-1), Schema: math.MinInt32, Count: math.MaxUint64},
			{Sum: staleNaN, Schema: math.MaxInt32, CounterResetHint: GaugeType},
		}},
		{"layout back and forth", []Histogram{
			{PositiveSpans: []Span{{0, 2}}, PositiveBuckets: []int64{1, 1}},
			{PositiveSpans: []Span{{0, 3}}, PositiveBuckets: []int64{1, 1, 1}},
			{PositiveSpans: []Span{{0, 2}}, PositiveBuckets: []int64{1, 1}, CustomValues: []float64{1, 2}},
			{PositiveSpans: []Span{{0, 2}}, PositiveBuckets: []int64{1, 1}},
			{NegativeSpans: []Span{{0, 2}}, NegativeBuckets: []int64{4, -1}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := make([]int64, len(tc.hs))
			for i := range ts {
				ts[i] = int64(i)*15000 - 1
			}
			requireHistogramsRoundTrip(t, ts, tc.hs)
			requireFloatHistogramsRoundTrip(t, ts, toFloat(tc.hs, 1))
		})
	}
}

func TestHistogramsEncodeErrors(t *testing.T) {
	ok := Histogram{PositiveSpans: []Span{{0, 2}}, PositiveBuckets: []int64{1, 2}}
	big := Histogram{PositiveSpans: []Span{{0, 1 << 20}}, PositiveBuckets: make([]int64, 1<<20)}
	for _, tc := range []struct {
		name string
		ts   []int64
		hs   []Histogram
		want error
	}{
		{"empty", nil, nil, ErrEmpty},
		{"out of order", []int64{2, 2}, []Histogram{ok, ok}, ErrOutOfOrder},
		{"spans and counts", []int64{1}, []Histogram{{PositiveSpans: []Span{{0, 3}}, PositiveBuckets: []int64{1}}}, nil},
		{"hint", []int64{1}, []Histogram{{CounterResetHint: 4}}, nil},
		{"lengths", []int64{1, 2}, []Histogram{ok}, nil},
		{"too many buckets", []int64{1, 2, 3}, []Histogram{big, big, big}, ErrFull},
		{"overlapping spans", []int64{1, 2}, []Histogram{ok, {PositiveSpans: []Span{{0, 2}, {-1, 1}}, PositiveBuckets: []int64{1, 1, 1}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := EncodeHistograms([]byte{7}, tc.ts, tc.hs)
			require.Error(t, err)
			require.Equal(t, []byte{7}, out)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
			fh := toFloat(tc.hs, 1)
			if len(tc.hs) > 0 && tc.name == "spans and counts" {
				fh[0].PositiveBuckets = fh[0].PositiveBuckets[:1]
			}
			if tc.name == "hint" {
				fh[0].CounterResetHint = 4
			}
			_, err = EncodeFloatHistograms(nil, tc.ts, fh)
			require.Error(t, err)
		})
	}
}

// TestHistogramsCorrupt: every truncation and many bit flips of valid
// chunks are read without a panic; truncations fail with a CorruptError.
func TestHistogramsCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	ts, hs := randHistograms(rng, 60)
	ci, err := EncodeHistograms(nil, ts, hs)
	require.NoError(t, err)
	cf, err := EncodeFloatHistograms(nil, ts, toFloat(hs, 30))
	require.NoError(t, err)
	var it HistogramIterator
	for _, chunk := range [][]byte{ci, cf} {
		for l := 0; l < len(chunk); l++ {
			it.Reset(chunk[:l])
			for it.Next() {
			}
			var ce *CorruptError
			require.True(t, errors.As(it.Err(), &ce), "truncated to %d of %d bytes: %v", l, len(chunk), it.Err())
		}
		for range 500 {
			c := append([]byte(nil), chunk...)
			c[rng.IntN(len(c))] ^= 1 << rng.IntN(8)
			it.Reset(c)
			for it.Next() {
				_, _ = it.AtFloat()
			}
		}
	}
}

func TestHistogramIteratorSeek(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	ts, hs := randHistograms(rng, 100)
	chunk := requireHistogramsRoundTrip(t, ts, hs)
	var it HistogramIterator
	it.Reset(chunk)
	require.True(t, it.Seek(ts[10]-1))
	got, _ := it.At()
	require.Equal(t, ts[10], got)
	require.True(t, it.Seek(ts[5]), "never moves back")
	got, _ = it.At()
	require.Equal(t, ts[10], got)
	require.True(t, it.Next())
	got, h := it.At()
	require.Equal(t, ts[11], got)
	require.True(t, EqualHistograms(h, &hs[11]))
	require.False(t, it.Seek(ts[99]+1))
	require.False(t, it.Next())
	require.NoError(t, it.Err())

	// Each iterator refuses the other kind of chunk.
	var fit Iterator
	fit.Reset(chunk)
	require.False(t, fit.Next())
	require.Error(t, fit.Err())
	_, _, err := Decode(nil, nil, chunk)
	require.Error(t, err)
	xor, err := Encode(nil, EncPack, []int64{1}, []float64{1})
	require.NoError(t, err)
	it.Reset(xor)
	require.False(t, it.Next())
	require.Error(t, it.Err())
}

// TestHistogramsAllocs: a warm Encoder and HistogramIterator allocate
// nothing.
func TestHistogramsAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	ts, hs := randHistograms(rng, 1024)
	fhs := toFloat(hs, 60)
	var e Encoder
	var it HistogramIterator
	buf := make([]byte, 0, 1<<20)
	run := func() {
		c, err := e.EncodeHistograms(buf[:0], ts, hs)
		require.NoError(t, err)
		it.Reset(c)
		for it.Next() {
		}
		c, err = e.EncodeFloatHistograms(buf[:0], ts, fhs)
		require.NoError(t, err)
		it.Reset(c)
		for it.Next() {
		}
	}
	run()
	require.Zero(t, testing.AllocsPerRun(5, run))
}

func TestRecodeHistograms(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	ts, hs := randHistograms(rng, 300)
	fhs := toFloat(hs, 60)
	var e Encoder
	var parts, fparts [][]byte
	for _, cut := range [][2]int{{0, 100}, {100, 101}, {101, 300}} {
		c, err := EncodeHistograms(nil, ts[cut[0]:cut[1]], hs[cut[0]:cut[1]])
		require.NoError(t, err)
		parts = append(parts, c)
		c, err = EncodeFloatHistograms(nil, ts[cut[0]:cut[1]], fhs[cut[0]:cut[1]])
		require.NoError(t, err)
		fparts = append(fparts, c)
	}
	merged, err := e.RecodeHistograms([]byte("x"), parts...)
	require.NoError(t, err)
	want, err := EncodeHistograms([]byte("x"), ts, hs)
	require.NoError(t, err)
	require.Equal(t, want, merged, "merging is encoding the samples at once")
	fmerged, err := e.RecodeHistograms(nil, fparts...)
	require.NoError(t, err)
	fwant, err := EncodeFloatHistograms(nil, ts, fhs)
	require.NoError(t, err)
	require.Equal(t, fwant, fmerged)

	_, err = e.RecodeHistograms(nil, parts[2], parts[0])
	require.ErrorIs(t, err, ErrOutOfOrder)
	_, err = e.RecodeHistograms(nil, parts[0], fparts[1])
	require.Error(t, err, "mixed encodings")
	_, err = e.RecodeHistograms(nil, parts[0], parts[1][:3])
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
}
