package chunkenc

import (
	"fmt"
	"math"
	"slices"
)

// CounterResetHint says whether a histogram sample follows a counter reset.
// Its values are those of Prometheus's model/histogram.CounterResetHint.
type CounterResetHint uint8

// The hints, numbered as in Prometheus.
const (
	UnknownCounterReset CounterResetHint = 0
	CounterReset        CounterResetHint = 1
	NotCounterReset     CounterResetHint = 2
	GaugeType           CounterResetHint = 3
)

// Span is a run of consecutive buckets, as Prometheus's histogram.Span:
// Offset is the gap (in bucket indices) to the end of the previous span,
// or the index of the first bucket for the first span; Length buckets
// follow.
type Span struct {
	Offset int32
	Length uint32
}

// Histogram is an integer native histogram sample, field for field
// Prometheus's model/histogram.Histogram: PositiveBuckets and
// NegativeBuckets hold each bucket's count as a delta to the previous
// bucket of the same sign (the first one absolute); CustomValues are the
// upper bounds of custom buckets (schema -53). A nil and an empty slice
// are the same sample: decoded samples have empty slices.
type Histogram struct {
	CounterResetHint CounterResetHint
	Schema           int32
	ZeroThreshold    float64
	ZeroCount        uint64
	Count            uint64
	Sum              float64
	PositiveSpans    []Span
	NegativeSpans    []Span
	PositiveBuckets  []int64
	NegativeBuckets  []int64
	CustomValues     []float64
}

// FloatHistogram is a float native histogram sample, field for field
// Prometheus's model/histogram.FloatHistogram: buckets hold absolute
// counts.
type FloatHistogram struct {
	CounterResetHint CounterResetHint
	Schema           int32
	ZeroThreshold    float64
	ZeroCount        float64
	Count            float64
	Sum              float64
	PositiveSpans    []Span
	NegativeSpans    []Span
	PositiveBuckets  []float64
	NegativeBuckets  []float64
	CustomValues     []float64
}

// MaxHistogramBuckets bounds the buckets of one histogram chunk, summed
// over its samples (a sample of 160 buckets, Prometheus's usual limit,
// 13,107 times), plus the custom values it stores. A block decoder
// materializes all of them, so the bound caps what a chunk of a few bytes
// can make a reader allocate (16 MiB each for values and custom values).
const MaxHistogramBuckets = 1 << 21

// spansLen returns the number of buckets the spans describe.
func spansLen(ss []Span) uint64 {
	n := uint64(0)
	for _, s := range ss {
		n += uint64(s.Length)
	}
	return n
}

// histLayout is what a sample's buckets mean: everything but counts, sum
// and hint. Samples with equal layouts form a run in the chunk.
type histLayout struct {
	schema   int32
	zt       uint64 // ZeroThreshold's bits
	cv       []float64
	pos, neg []Span
}

func (l *histLayout) sameHeader(o *histLayout) bool {
	return l.schema == o.schema && l.zt == o.zt && slices.EqualFunc(l.cv, o.cv, func(a, b float64) bool {
		return math.Float64bits(a) == math.Float64bits(b)
	})
}

func (l *histLayout) equal(o *histLayout) bool {
	return l.sameHeader(o) && slices.Equal(l.pos, o.pos) && slices.Equal(l.neg, o.neg)
}

func (l *histLayout) buckets() uint64 { return spansLen(l.pos) + spansLen(l.neg) }

func layoutOfHistogram(h *Histogram) histLayout {
	return histLayout{h.Schema, math.Float64bits(h.ZeroThreshold), h.CustomValues, h.PositiveSpans, h.NegativeSpans}
}

func layoutOfFloatHistogram(h *FloatHistogram) histLayout {
	return histLayout{h.Schema, math.Float64bits(h.ZeroThreshold), h.CustomValues, h.PositiveSpans, h.NegativeSpans}
}

// checkHistogramSamples validates the input of a histogram encoder: equal
// lengths, 1..MaxSamples samples, strictly increasing timestamps, hints
// 0..3, as many buckets as the spans say, at most MaxHistogramBuckets
// buckets and stored custom values in all.
func checkHistogramSamples(n int, ts []int64, hint func(i int) CounterResetHint, counts func(i int) (pos, neg int), l func(i int) histLayout) error {
	if len(ts) != n {
		return fmt.Errorf("chunkenc: %d timestamps but %d histograms", len(ts), n)
	}
	if n == 0 {
		return ErrEmpty
	}
	if n > MaxSamples {
		return fmt.Errorf("chunkenc: %d samples: %w", n, ErrFull)
	}
	total := uint64(0)
	var prev histLayout
	for i := range n {
		if i > 0 && ts[i] <= ts[i-1] {
			return fmt.Errorf("chunkenc: sample %d at %d after %d: %w", i, ts[i], ts[i-1], ErrOutOfOrder)
		}
		if h := hint(i); h > GaugeType {
			return fmt.Errorf("chunkenc: histogram %d: counter reset hint %d", i, h)
		}
		lay := l(i)
		np, nn := counts(i)
		if sp, sn := spansLen(lay.pos), spansLen(lay.neg); sp != uint64(np) || sn != uint64(nn) {
			return fmt.Errorf("chunkenc: histogram %d: spans hold %d positive and %d negative buckets, counts %d and %d", i, sp, sn, np, nn)
		}
		total += uint64(np + nn)
		// A chunk stores the custom values of each sample whose header
		// differs from the one before; the decoder bounds them too.
		if i == 0 || !lay.sameHeader(&prev) {
			total += uint64(len(lay.cv))
		}
		prev = lay
	}
	if total > MaxHistogramBuckets {
		return fmt.Errorf("chunkenc: %d buckets in %d histograms, more than %d: %w", total, n, MaxHistogramBuckets, ErrFull)
	}
	return nil
}
