package chunkenc

import (
	"fmt"
	"math"
	"slices"
)

// HistogramIterator reads the samples of a histogram chunk (EncHistPack or
// EncFloatHistPack). The zero value is an exhausted iterator; Reset points
// it at a chunk. Both encodings are blocks, so Reset decodes the whole
// chunk into the iterator's buffers; once they have grown, an iterator
// allocates nothing per Reset or sample: reuse one per goroutine.
//
// Protocol:
//  1. Reset(chunk).
//  2. Next() until it returns false; At() (EncHistPack only) or AtFloat()
//     (either encoding) returns the current sample. Seek(t) may be called
//     instead of or between Next calls.
//  3. Err() once at the end: nil means the chunk was read completely.
//
// Ownership: the returned samples and their slices belong to the
// iterator; they stay valid until the next Reset (AtFloat's result of an
// integer chunk: until the next AtFloat), and the caller must not modify
// them. Samples of one layout run share their spans and custom values.
type HistogramIterator struct {
	enc  Encoding
	err  error
	d    histDecoder
	ts   []int64
	hs   []Histogram
	fhs  []FloatHistogram
	ib   []int64   // bucket counts of hs
	fb   []float64 // bucket counts of fhs
	conv FloatHistogram
	cb   []float64 // bucket counts of conv
	pos  int
	done bool
}

// Reset makes the iterator read chunk from its first sample.
func (it *HistogramIterator) Reset(chunk []byte) {
	it.err, it.done, it.pos = nil, false, -1
	it.ts, it.hs, it.fhs = it.ts[:0], it.hs[:0], it.fhs[:0]
	it.enc, it.err = EncodingOf(chunk)
	if it.err != nil {
		return
	}
	switch it.enc {
	case EncHistPack:
		it.ts, it.hs, it.err = it.d.decodeHistograms(it.ts, it.hs, &it.ib, chunk)
	case EncFloatHistPack:
		it.ts, it.fhs, it.err = it.d.decodeFloatHistograms(it.ts, it.fhs, &it.fb, chunk)
	default:
		it.err = corrupt(it.enc, 0, "holds float samples: read it with an Iterator")
	}
}

// Encoding returns the encoding of the chunk given to Reset.
func (it *HistogramIterator) Encoding() Encoding { return it.enc }

// Next advances to the next sample and reports whether there is one.
func (it *HistogramIterator) Next() bool {
	if it.err != nil || it.done {
		return false
	}
	if it.pos+1 >= len(it.ts) {
		it.pos, it.done = len(it.ts), true
		return false
	}
	it.pos++
	return true
}

// Seek advances to the first sample with timestamp >= t and reports whether
// there is one. It never moves backwards.
func (it *HistogramIterator) Seek(t millis) bool {
	if it.err != nil || it.done {
		return false
	}
	if it.pos >= 0 && it.ts[it.pos] >= t {
		return true
	}
	lo, _ := slices.BinarySearch(it.ts[max(it.pos, 0):], t)
	lo += max(it.pos, 0)
	it.pos, it.done = lo, lo >= len(it.ts)
	return !it.done
}

// At returns the current sample of an EncHistPack chunk; it panics on an
// EncFloatHistPack chunk (use AtFloat). Only valid after Next or Seek
// returned true.
func (it *HistogramIterator) At() (int64, *Histogram) {
	if it.enc != EncHistPack {
		panic("BUG: HistogramIterator.At on a " + it.enc.String() + " chunk")
	}
	return it.ts[it.pos], &it.hs[it.pos]
}

// AtFloat returns the current sample as a float histogram. An integer
// sample is converted as Prometheus's Histogram.ToFloat does (absolute
// bucket counts as float64).
func (it *HistogramIterator) AtFloat() (int64, *FloatHistogram) {
	if it.enc == EncFloatHistPack {
		return it.ts[it.pos], &it.fhs[it.pos]
	}
	h := &it.hs[it.pos]
	it.cb = it.cb[:0]
	for _, bs := range [2][]int64{h.PositiveBuckets, h.NegativeBuckets} {
		abs := int64(0)
		for _, d := range bs {
			abs += d
			it.cb = append(it.cb, float64(abs))
		}
	}
	np := len(h.PositiveBuckets)
	it.conv = FloatHistogram{
		CounterResetHint: h.CounterResetHint,
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        float64(h.ZeroCount),
		Count:            float64(h.Count),
		Sum:              h.Sum,
		PositiveSpans:    h.PositiveSpans,
		NegativeSpans:    h.NegativeSpans,
		PositiveBuckets:  it.cb[:np:np],
		NegativeBuckets:  it.cb[np:],
		CustomValues:     h.CustomValues,
	}
	return it.ts[it.pos], &it.conv
}

// Err returns the first decoding error, nil if none.
func (it *HistogramIterator) Err() error { return it.err }

// EqualHistograms reports whether a and b are the same sample bit for
// bit (nil and empty slices are equal). Tests and the invariants checks
// use it.
func EqualHistograms(a, b *Histogram) bool {
	return a.CounterResetHint == b.CounterResetHint && a.Schema == b.Schema &&
		math.Float64bits(a.ZeroThreshold) == math.Float64bits(b.ZeroThreshold) &&
		a.ZeroCount == b.ZeroCount && a.Count == b.Count &&
		math.Float64bits(a.Sum) == math.Float64bits(b.Sum) &&
		slices.Equal(a.PositiveSpans, b.PositiveSpans) && slices.Equal(a.NegativeSpans, b.NegativeSpans) &&
		slices.Equal(a.PositiveBuckets, b.PositiveBuckets) && slices.Equal(a.NegativeBuckets, b.NegativeBuckets) &&
		equalFloatBits(a.CustomValues, b.CustomValues)
}

// EqualFloatHistograms is EqualHistograms for float histograms: every
// float compares by its bits (NaN payloads, -0).
func EqualFloatHistograms(a, b *FloatHistogram) bool {
	return a.CounterResetHint == b.CounterResetHint && a.Schema == b.Schema &&
		math.Float64bits(a.ZeroThreshold) == math.Float64bits(b.ZeroThreshold) &&
		math.Float64bits(a.ZeroCount) == math.Float64bits(b.ZeroCount) &&
		math.Float64bits(a.Count) == math.Float64bits(b.Count) &&
		math.Float64bits(a.Sum) == math.Float64bits(b.Sum) &&
		slices.Equal(a.PositiveSpans, b.PositiveSpans) && slices.Equal(a.NegativeSpans, b.NegativeSpans) &&
		equalFloatBits(a.PositiveBuckets, b.PositiveBuckets) && equalFloatBits(a.NegativeBuckets, b.NegativeBuckets) &&
		equalFloatBits(a.CustomValues, b.CustomValues)
}

func equalFloatBits(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
}

// checkHistogramsDecode panics unless chunk, just encoded from (ts, hs),
// decodes to exactly those samples, bit for bit (invariants build tag).
func checkHistogramsDecode(it *HistogramIterator, chunk []byte, ts []int64, hs []Histogram) {
	it.Reset(chunk)
	i := 0
	for ; it.Next(); i++ {
		t, h := it.At()
		if i >= len(ts) || t != ts[i] || !EqualHistograms(h, &hs[i]) {
			panic(fmt.Sprintf("BUG: %s chunk of %d samples decodes to %d %+v at sample %d", it.enc, len(ts), t, *h, i))
		}
	}
	if err := it.Err(); err != nil || i != len(ts) {
		panic(fmt.Sprintf("BUG: %s chunk of %d samples decodes to %d: %v", it.enc, len(ts), i, err))
	}
}

// checkFloatHistogramsDecode is checkHistogramsDecode for float histograms.
func checkFloatHistogramsDecode(it *HistogramIterator, chunk []byte, ts []int64, hs []FloatHistogram) {
	it.Reset(chunk)
	i := 0
	for ; it.Next(); i++ {
		t, h := it.AtFloat()
		if i >= len(ts) || t != ts[i] || !EqualFloatHistograms(h, &hs[i]) {
			panic(fmt.Sprintf("BUG: %s chunk of %d samples decodes to %d %+v at sample %d", it.enc, len(ts), t, *h, i))
		}
	}
	if err := it.Err(); err != nil || i != len(ts) {
		panic(fmt.Sprintf("BUG: %s chunk of %d samples decodes to %d: %v", it.enc, len(ts), i, err))
	}
}
