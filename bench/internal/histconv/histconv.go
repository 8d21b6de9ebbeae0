// Package histconv converts between Prometheus's model/histogram types and
// chunkenc's histogram samples (field for field, as chunkenc/doc.go
// describes), and spreads a classic histogram over exponential buckets for
// the native-histogram data set (bench/cmd/histdata).
package histconv

import (
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"

	"github.com/myelindb/myelin/chunkenc"
)

func spansFrom(ss []histogram.Span) []chunkenc.Span {
	if len(ss) == 0 {
		return nil
	}
	out := make([]chunkenc.Span, len(ss))
	for i, s := range ss {
		out[i] = chunkenc.Span{Offset: s.Offset, Length: s.Length}
	}
	return out
}

func spansTo(ss []chunkenc.Span) []histogram.Span {
	if len(ss) == 0 {
		return nil
	}
	out := make([]histogram.Span, len(ss))
	for i, s := range ss {
		out[i] = histogram.Span{Offset: s.Offset, Length: s.Length}
	}
	return out
}

func clone[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append([]T(nil), s...)
}

// From returns h as a chunkenc.Histogram (a deep copy).
func From(h *histogram.Histogram) chunkenc.Histogram {
	return chunkenc.Histogram{
		CounterResetHint: chunkenc.CounterResetHint(h.CounterResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCount,
		Count:            h.Count,
		Sum:              h.Sum,
		PositiveSpans:    spansFrom(h.PositiveSpans),
		NegativeSpans:    spansFrom(h.NegativeSpans),
		PositiveBuckets:  clone(h.PositiveBuckets),
		NegativeBuckets:  clone(h.NegativeBuckets),
		CustomValues:     clone(h.CustomValues),
	}
}

// FromFloat returns h as a chunkenc.FloatHistogram (a deep copy).
func FromFloat(h *histogram.FloatHistogram) chunkenc.FloatHistogram {
	return chunkenc.FloatHistogram{
		CounterResetHint: chunkenc.CounterResetHint(h.CounterResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCount,
		Count:            h.Count,
		Sum:              h.Sum,
		PositiveSpans:    spansFrom(h.PositiveSpans),
		NegativeSpans:    spansFrom(h.NegativeSpans),
		PositiveBuckets:  clone(h.PositiveBuckets),
		NegativeBuckets:  clone(h.NegativeBuckets),
		CustomValues:     clone(h.CustomValues),
	}
}

// To returns h as Prometheus's Histogram (a deep copy).
func To(h *chunkenc.Histogram) *histogram.Histogram {
	return &histogram.Histogram{
		CounterResetHint: histogram.CounterResetHint(h.CounterResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCount,
		Count:            h.Count,
		Sum:              h.Sum,
		PositiveSpans:    spansTo(h.PositiveSpans),
		NegativeSpans:    spansTo(h.NegativeSpans),
		PositiveBuckets:  clone(h.PositiveBuckets),
		NegativeBuckets:  clone(h.NegativeBuckets),
		CustomValues:     clone(h.CustomValues),
	}
}

// ToFloat returns h as Prometheus's FloatHistogram (a deep copy).
func ToFloat(h *chunkenc.FloatHistogram) *histogram.FloatHistogram {
	return &histogram.FloatHistogram{
		CounterResetHint: histogram.CounterResetHint(h.CounterResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCount,
		Count:            h.Count,
		Sum:              h.Sum,
		PositiveSpans:    spansTo(h.PositiveSpans),
		NegativeSpans:    spansTo(h.NegativeSpans),
		PositiveBuckets:  clone(h.PositiveBuckets),
		NegativeBuckets:  clone(h.NegativeBuckets),
		CustomValues:     clone(h.CustomValues),
	}
}

// zeroThreshold is client_golang's default zero bucket width, 2^-128.
var zeroThreshold = math.Ldexp(1, -128)

// Exponential turns the scrapes of one classic histogram into
// exponential histograms of one schema, as if the classic histogram's
// observations had been recorded by an exponential one: each new
// observation of a classic bucket (the increase of its count since the
// previous scrape) is placed at a point of the bucket, spread uniformly as
// histogram_quantile assumes, by a deterministic low-discrepancy sequence
// (the k-th observation of a bucket at the fraction frac(k*phi) of its
// width). The first bucket is taken to start at half its upper bound, the
// +Inf bucket to end at twice the largest finite bound. Bucket counts are
// then integers that add up to the count and only grow, until the classic
// histogram resets (any count goes down), which resets them too. Spans are
// compacted as Prometheus does (Compact(2)).
type Exponential struct {
	schema int32
	lo, hi []float64 // the classic buckets' bounds, +Inf bucket last
	seen   []float64 // each classic bucket's own count at the last scrape
	k      []uint64  // observations placed per classic bucket
	counts map[int32]int64
}

// NewExponential returns a converter for a classic histogram with the
// finite upper bounds les (increasing, positive).
func NewExponential(schema int32, les []float64) (*Exponential, error) {
	e := &Exponential{schema: schema, counts: map[int32]int64{}}
	prev := 0.0
	for _, le := range les {
		if math.IsInf(le, 1) {
			break
		}
		if le <= prev {
			return nil, fmt.Errorf("exponential buckets: le %g after %g", le, prev)
		}
		lo := prev
		if prev == 0 {
			lo = le / 2
		}
		e.lo, e.hi = append(e.lo, lo), append(e.hi, le)
		prev = le
	}
	if len(e.hi) == 0 {
		return nil, fmt.Errorf("exponential buckets: no finite le")
	}
	e.lo, e.hi = append(e.lo, prev), append(e.hi, 2*prev)
	e.seen = make([]float64, len(e.hi))
	e.k = make([]uint64, len(e.hi))
	return e, nil
}

// phi is the fractional part of the golden ratio.
const phi = 0.6180339887498949

// Next takes the cumulative counts of the finite buckets (as les), the
// total count and the sum of one scrape and returns the exponential
// histogram.
func (e *Exponential) Next(cum []float64, count, sum float64) (*histogram.Histogram, error) {
	nb := len(e.hi)
	own := make([]float64, nb)
	prev := 0.0
	for i := range nb - 1 {
		own[i] = cum[i] - prev
		prev = cum[i]
	}
	own[nb-1] = count - prev
	reset := false
	for i, c := range own {
		if c < 0 || c != math.Trunc(c) || c >= 1<<53 {
			return nil, fmt.Errorf("exponential buckets: bucket %d count %g", i, c)
		}
		reset = reset || c < e.seen[i]
	}
	if reset {
		clear(e.seen)
		clear(e.k)
		clear(e.counts)
	}
	scale := math.Ldexp(1, int(e.schema))
	for i, c := range own {
		w := e.hi[i] - e.lo[i]
		for n := uint64(c - e.seen[i]); n > 0; n-- {
			f := math.Mod(float64(e.k[i])*phi, 1)
			x := e.hi[i] - w*f // in (lo, hi]
			e.counts[int32(math.Ceil(math.Log2(x)*scale))]++
			e.k[i]++
		}
		e.seen[i] = c
	}
	idx := make([]int32, 0, len(e.counts))
	for i := range e.counts {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	h := &histogram.Histogram{
		Schema:        e.schema,
		ZeroThreshold: zeroThreshold,
		Count:         uint64(count),
		Sum:           sum,
	}
	if reset {
		h.CounterResetHint = histogram.CounterReset
	}
	if len(idx) > 0 {
		h.PositiveSpans = []histogram.Span{{Offset: idx[0], Length: uint32(idx[len(idx)-1] - idx[0] + 1)}}
		prevCount := int64(0)
		for i := idx[0]; i <= idx[len(idx)-1]; i++ {
			c := e.counts[i]
			h.PositiveBuckets = append(h.PositiveBuckets, c-prevCount)
			prevCount = c
		}
	}
	return h.Compact(2), nil
}
