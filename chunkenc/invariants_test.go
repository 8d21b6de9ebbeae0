package chunkenc

import (
	"math"
	"testing"

	"github.com/myelindb/myelin/internal/invariants"
	"github.com/stretchr/testify/require"
)

// TestInvariantChecks: each self-check fires on the state it guards
// against. The checks are plain functions, so this runs in every build;
// the build tag only decides whether the encoders call them.
func TestInvariantChecks(t *testing.T) {
	ts, vs := []int64{1000, 2000, 3000}, []float64{1, 2.5, math.NaN()}
	valid := func() *XOR {
		x := NewXOR(nil)
		for i := range ts {
			require.NoError(t, x.Append(ts[i], vs[i]))
		}
		x.checkInvariants()
		return x
	}
	for _, tc := range []struct {
		name  string
		spoil func(x *XOR)
	}{
		{"header count", func(x *XOR) { x.w.b[2]++ }},
		{"zero delta", func(x *XOR) { x.tDelta = 0 }},
		{"window past 31 leading zeros", func(x *XOR) { x.leading = 32 }},
		{"window without bits", func(x *XOR) { x.leading, x.trailing = 31, 33 }},
		{"no window but trailing zeros", func(x *XOR) { x.leading, x.trailing = 0xff, 3 }},
		{"dirty padding", func(x *XOR) { x.w.free = 1; x.w.b[len(x.w.b)-1] |= 1 }},
		{"free bits beyond a byte", func(x *XOR) { x.w.free = 8 }},
		{"encoding byte", func(x *XOR) { x.w.b[0] = byte(EncPack) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := valid()
			tc.spoil(x)
			require.Panics(t, x.checkInvariants)
		})
	}

	var it Iterator
	chunk, err := Encode(nil, EncPack, ts, vs)
	require.NoError(t, err)
	checkDecodes(&it, chunk, ts, vs)
	require.Panics(t, func() { checkDecodes(&it, chunk, ts[:2], vs[:2]) }, "a sample too many")
	require.Panics(t, func() { checkDecodes(&it, chunk, append(ts, 4000), append(vs, 1)) }, "a sample short")
	require.Panics(t, func() { checkDecodes(&it, chunk, ts, []float64{1, 2.5, math.Float64frombits(0x7ff8000000000002)}) }, "another NaN")
	require.Panics(t, func() { checkDecodes(&it, chunk[:len(chunk)-1], ts, vs) }, "truncated")
}

// TestInvariantsInEncoders: under the invariants build tag the encoders
// check themselves; appending out of order below Append's own check is a
// bug they catch.
func TestInvariantsInEncoders(t *testing.T) {
	if !invariants.Enabled {
		t.Skip("needs -tags invariants")
	}
	x := NewXOR(nil)
	x.append(0, 10, 1)
	require.Panics(t, func() { x.append(1, 10, 1) }, "same timestamp")
	require.Panics(t, func() { x.append(2, 11, 1) }, "sample number skipped")
}

// TestXORLoadZeroBitWindow: a chunk of another writer may code an
// unchanged value as a new window of zero bits (found by FuzzChunkDecode
// under -tags invariants). Load must leave the state of a writer without
// a window, and appends must still read.
func TestXORLoadZeroBitWindow(t *testing.T) {
	chunk := []byte("\x01\x00\r0000000000\xc4\b@ 0A00000")
	ts, vs, err := Decode(nil, nil, chunk)
	require.NoError(t, err)
	var x XOR
	require.NoError(t, x.Load(nil, chunk))
	x.checkInvariants()
	require.Equal(t, uint8(0xff), x.leading)
	last := ts[len(ts)-1]
	for i, v := range []float64{vs[len(vs)-1], 2.5, 2.5, -1} {
		require.NoError(t, x.Append(last+int64(i+1)*1000, v))
		ts, vs = append(ts, last+int64(i+1)*1000), append(vs, v)
	}
	var it Iterator
	checkDecodes(&it, x.Bytes(), ts, vs)
}

// TestHistogramInvariantChecks: the histogram encoders' self-checks fire
// on a chunk that does not decode to its input.
func TestHistogramInvariantChecks(t *testing.T) {
	ts := []int64{1000, 2000}
	hs := []Histogram{
		{Count: 3, Sum: 1.5, PositiveSpans: []Span{{0, 2}}, PositiveBuckets: []int64{1, 1}},
		{Count: 5, Sum: math.Float64frombits(0x7ff0000000000002), PositiveSpans: []Span{{0, 2}}, PositiveBuckets: []int64{2, 1}},
	}
	chunk, err := EncodeHistograms(nil, ts, hs)
	require.NoError(t, err)
	var it HistogramIterator
	checkHistogramsDecode(&it, chunk, ts, hs)
	other := append([]Histogram(nil), hs...)
	other[1].Sum = math.Float64frombits(0x7ff8000000000002) // another NaN
	require.Panics(t, func() { checkHistogramsDecode(&it, chunk, ts, other) }, "another NaN")
	other[1] = hs[1]
	other[1].PositiveSpans = []Span{{1, 2}}
	require.Panics(t, func() { checkHistogramsDecode(&it, chunk, ts, other) }, "other spans")
	require.Panics(t, func() { checkHistogramsDecode(&it, chunk, ts[:1], hs[:1]) }, "a sample too many")
	require.Panics(t, func() { checkHistogramsDecode(&it, chunk[:len(chunk)-1], ts, hs) }, "truncated")

	fhs := []FloatHistogram{{Count: 0.5, ZeroCount: math.Copysign(0, -1)}, {Count: 0.75}}
	fchunk, err := EncodeFloatHistograms(nil, ts, fhs)
	require.NoError(t, err)
	checkFloatHistogramsDecode(&it, fchunk, ts, fhs)
	fother := append([]FloatHistogram(nil), fhs...)
	fother[0].ZeroCount = 0 // +0 is not -0
	require.Panics(t, func() { checkFloatHistogramsDecode(&it, fchunk, ts, fother) }, "+0 for -0")
	require.Panics(t, func() { checkFloatHistogramsDecode(&it, chunk, ts, fhs) }, "an integer chunk")
}

// TestHistogramColumnInvariants: the column index's self-check fires on
// each broken part of its INVARIANT.
func TestHistogramColumnInvariants(t *testing.T) {
	hs := []Histogram{
		{PositiveSpans: []Span{{0, 2}}, PositiveBuckets: []int64{1, 1}},
		{PositiveSpans: []Span{{0, 3}}, PositiveBuckets: []int64{1, 1, 1}, NegativeSpans: []Span{{1, 1}}, NegativeBuckets: []int64{2}},
	}
	valid := func() *histCols {
		var c histCols
		require.NoError(t, c.plan(len(hs), func(i int) histLayout { return layoutOfHistogram(&hs[i]) }))
		c.checkInvariants()
		return &c
	}
	for _, tc := range []struct {
		name  string
		spoil func(c *histCols)
	}{
		{"unsorted", func(c *histCols) { c.keys[0], c.keys[1] = c.keys[1], c.keys[0] }},
		{"duplicate", func(c *histCols) { c.keys[1] = c.keys[0] }},
		{"empty column", func(c *histCols) { c.colLen[2] = 0 }},
		{"offset", func(c *histCols) { c.colOff[1]++ }},
		{"total", func(c *histCols) { c.total++ }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.spoil(c)
			require.Panics(t, c.checkInvariants)
		})
	}
}
