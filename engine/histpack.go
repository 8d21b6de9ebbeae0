package engine

import (
	"fmt"

	"github.com/prometheus/prometheus/model/histogram"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/chunkenc"
)

// This file converts between Prometheus's model/histogram samples and
// chunkenc's, field for field (chunkenc/doc.go, "Use"), for the sealed
// histogram chunks of histchunk.go: histSealer re-encodes one of
// Prometheus's chunks as EncHistPack or EncFloatHistPack, packHistIterator
// reads one back as a promchunk.Iterator.

// histSealer re-encodes Prometheus's histogram chunks into chunkenc's
// encodings, reusing its scratch space across calls. The zero value is
// ready to use. Not safe for concurrent use (one per apply scratch).
type histSealer struct {
	enc chunkenc.Encoder
	it  promchunk.Iterator
	ph  histogram.Histogram
	pfh histogram.FloatHistogram
	ts  []int64
	hs  []chunkenc.Histogram
	fhs []chunkenc.FloatHistogram
}

// seal appends the stored form of c (a HistogramChunk or
// FloatHistogramChunk) in chunkenc's encoding: every sample as
// Prometheus's iterator returns it, the counter reset hint included, so a
// reader of the sealed chunk sees exactly what a reader of c saw. The
// bytes depend only on c's samples: the same on every replica.
func (hs *histSealer) seal(dst []byte, c promchunk.Chunk) ([]byte, error) {
	hs.it = c.Iterator(hs.it)
	hs.ts = hs.ts[:0]
	float := c.Encoding() == promchunk.EncFloatHistogram
	n := 0
	for vt := hs.it.Next(); vt != promchunk.ValNone; vt = hs.it.Next() {
		switch {
		case vt == promchunk.ValHistogram && !float:
			t, h := hs.it.AtHistogram(&hs.ph)
			if n == len(hs.hs) {
				hs.hs = append(hs.hs, chunkenc.Histogram{})
			}
			fromPromHistogram(&hs.hs[n], h)
			hs.ts = append(hs.ts, t)
		case vt == promchunk.ValFloatHistogram && float:
			t, fh := hs.it.AtFloatHistogram(&hs.pfh)
			if n == len(hs.fhs) {
				hs.fhs = append(hs.fhs, chunkenc.FloatHistogram{})
			}
			fromPromFloatHistogram(&hs.fhs[n], fh)
			hs.ts = append(hs.ts, t)
		default:
			return dst, fmt.Errorf("sample of type %v in a histogram chunk of encoding %v", vt, c.Encoding())
		}
		n++
	}
	if err := hs.it.Err(); err != nil {
		return dst, err
	}
	if float {
		return hs.enc.EncodeFloatHistograms(dst, hs.ts, hs.fhs[:n])
	}
	return hs.enc.EncodeHistograms(dst, hs.ts, hs.hs[:n])
}

// fromPromHistogram copies h into dst, reusing dst's slices.
func fromPromHistogram(dst *chunkenc.Histogram, h *histogram.Histogram) {
	*dst = chunkenc.Histogram{
		CounterResetHint: chunkenc.CounterResetHint(h.CounterResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCount,
		Count:            h.Count,
		Sum:              h.Sum,
		PositiveSpans:    spansFromProm(dst.PositiveSpans[:0], h.PositiveSpans),
		NegativeSpans:    spansFromProm(dst.NegativeSpans[:0], h.NegativeSpans),
		PositiveBuckets:  append(dst.PositiveBuckets[:0], h.PositiveBuckets...),
		NegativeBuckets:  append(dst.NegativeBuckets[:0], h.NegativeBuckets...),
		CustomValues:     append(dst.CustomValues[:0], h.CustomValues...),
	}
}

// fromPromFloatHistogram copies h into dst, reusing dst's slices.
func fromPromFloatHistogram(dst *chunkenc.FloatHistogram, h *histogram.FloatHistogram) {
	*dst = chunkenc.FloatHistogram{
		CounterResetHint: chunkenc.CounterResetHint(h.CounterResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCount,
		Count:            h.Count,
		Sum:              h.Sum,
		PositiveSpans:    spansFromProm(dst.PositiveSpans[:0], h.PositiveSpans),
		NegativeSpans:    spansFromProm(dst.NegativeSpans[:0], h.NegativeSpans),
		PositiveBuckets:  append(dst.PositiveBuckets[:0], h.PositiveBuckets...),
		NegativeBuckets:  append(dst.NegativeBuckets[:0], h.NegativeBuckets...),
		CustomValues:     append(dst.CustomValues[:0], h.CustomValues...),
	}
}

func spansFromProm(dst []chunkenc.Span, ss []histogram.Span) []chunkenc.Span {
	for _, s := range ss {
		dst = append(dst, chunkenc.Span{Offset: s.Offset, Length: s.Length})
	}
	return dst
}

func spansToProm(dst []histogram.Span, ss []chunkenc.Span) []histogram.Span {
	for _, s := range ss {
		dst = append(dst, histogram.Span{Offset: s.Offset, Length: s.Length})
	}
	return dst
}

// toPromHistogram copies h into dst (a new histogram if nil), reusing
// dst's spans and buckets; an empty field of h is nil in a new histogram.
// The custom values are cv, never written into dst's: Prometheus treats
// them as immutable and shares them between histograms (CopyTo), so a
// caller's dst may share its custom values with a histogram it still
// holds.
func toPromHistogram(dst *histogram.Histogram, h *chunkenc.Histogram, cv []float64) *histogram.Histogram {
	if dst == nil {
		dst = &histogram.Histogram{}
	}
	*dst = histogram.Histogram{
		CounterResetHint: histogram.CounterResetHint(h.CounterResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCount,
		Count:            h.Count,
		Sum:              h.Sum,
		PositiveSpans:    spansToProm(dst.PositiveSpans[:0], h.PositiveSpans),
		NegativeSpans:    spansToProm(dst.NegativeSpans[:0], h.NegativeSpans),
		PositiveBuckets:  append(dst.PositiveBuckets[:0], h.PositiveBuckets...),
		NegativeBuckets:  append(dst.NegativeBuckets[:0], h.NegativeBuckets...),
		CustomValues:     cv,
	}
	return dst
}

// toPromFloatHistogram is toPromHistogram for float histograms.
func toPromFloatHistogram(dst *histogram.FloatHistogram, h *chunkenc.FloatHistogram, cv []float64) *histogram.FloatHistogram {
	if dst == nil {
		dst = &histogram.FloatHistogram{}
	}
	*dst = histogram.FloatHistogram{
		CounterResetHint: histogram.CounterResetHint(h.CounterResetHint),
		Schema:           h.Schema,
		ZeroThreshold:    h.ZeroThreshold,
		ZeroCount:        h.ZeroCount,
		Count:            h.Count,
		Sum:              h.Sum,
		PositiveSpans:    spansToProm(dst.PositiveSpans[:0], h.PositiveSpans),
		NegativeSpans:    spansToProm(dst.NegativeSpans[:0], h.NegativeSpans),
		PositiveBuckets:  append(dst.PositiveBuckets[:0], h.PositiveBuckets...),
		NegativeBuckets:  append(dst.NegativeBuckets[:0], h.NegativeBuckets...),
		CustomValues:     cv,
	}
	return dst
}

// packHistIterator reads an EncHistPack or EncFloatHistPack chunk as
// Prometheus's iterators read theirs. Histograms returned into a nil
// argument are new and the caller's; into a non-nil one, that one's
// slices are reused.
type packHistIterator struct {
	it chunkenc.HistogramIterator
	vt promchunk.ValueType
	// cv is a copy of the custom values at cvOf (the chunk's, shared by
	// the samples of a layout run), handed to every sample of the run
	// as Prometheus's iterators hand out theirs: immutable, shared.
	cv   []float64
	cvOf *float64
}

// customValues returns the immutable copy of src, a sample's custom
// values, made once per layout run.
func (p *packHistIterator) customValues(src []float64) []float64 {
	if len(src) == 0 {
		return nil
	}
	if &src[0] != p.cvOf || len(src) != len(p.cv) {
		p.cv, p.cvOf = append([]float64(nil), src...), &src[0]
	}
	return p.cv
}

var _ promchunk.Iterator = (*packHistIterator)(nil)

func (p *packHistIterator) reset(chunk []byte) {
	p.it.Reset(chunk)
	p.cv, p.cvOf = nil, nil // the decoder reuses its buffers
	p.vt = promchunk.ValHistogram
	if p.it.Encoding() == chunkenc.EncFloatHistPack {
		p.vt = promchunk.ValFloatHistogram
	}
}

// Next implements promchunk.Iterator.
func (p *packHistIterator) Next() promchunk.ValueType {
	if !p.it.Next() {
		return promchunk.ValNone
	}
	return p.vt
}

// Seek implements promchunk.Iterator.
func (p *packHistIterator) Seek(t millis) promchunk.ValueType {
	if !p.it.Seek(t) {
		return promchunk.ValNone
	}
	return p.vt
}

// At implements promchunk.Iterator: a histogram chunk has no floats.
func (p *packHistIterator) At() (int64, float64) {
	panic("BUG: At on a histogram chunk")
}

// AtHistogram implements promchunk.Iterator (integer chunks only).
func (p *packHistIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	t, ch := p.it.At()
	return t, toPromHistogram(h, ch, p.customValues(ch.CustomValues))
}

// AtFloatHistogram implements promchunk.Iterator: an integer sample is
// converted as Prometheus's Histogram.ToFloat and its chunk iterator do.
func (p *packHistIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	t, ch := p.it.AtFloat()
	return t, toPromFloatHistogram(fh, ch, p.customValues(ch.CustomValues))
}

// AtT implements promchunk.Iterator.
func (p *packHistIterator) AtT() int64 {
	if p.vt == promchunk.ValHistogram {
		t, _ := p.it.At() // no conversion, unlike AtFloat
		return t
	}
	t, _ := p.it.AtFloat()
	return t
}

// AtST implements promchunk.Iterator: no start timestamps.
func (p *packHistIterator) AtST() int64 { return 0 }

// Err implements promchunk.Iterator.
func (p *packHistIterator) Err() error { return p.it.Err() }
