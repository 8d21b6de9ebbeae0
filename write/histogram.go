package write

import (
	"encoding/binary"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
)

// VersionHistograms is the first byte of a batch with native histograms:
// Version's layout with, per series, its histogram samples after its float
// samples and a flags byte reserved for exemplars and metadata (doc.go,
// "Batch encoding (version 5)"). Append writes it only for a batch that
// holds histograms, so float-only batches stay Version and a replica of
// the previous release still decodes them during a rolling upgrade.
const VersionHistograms byte = 5

// Histogram kinds: the byte before each histogram sample.
const (
	kindHistogram      byte = 1 // an integer histogram (histogram.Histogram)
	kindFloatHistogram byte = 2 // a float histogram (histogram.FloatHistogram)
)

// Histogram is one native histogram sample: exactly one of H (integer
// counts) and FH (float counts) is set. A series may switch between them
// from sample to sample, as Prometheus allows. The histogram is the
// sender's, not validated: the engine validates it (histogram.Validate)
// and refuses it if invalid, so a batch needs no second copy.
type Histogram struct {
	T  int64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

// Minimum encoded sizes of a histogram sample and its parts, to bound
// counts read from the input before allocating. A histogram sample is
// tdelta, kind, hint, schema, the zero threshold, zero count, count and
// sum, and five counts (spans, buckets, custom values); an integer one is
// the smallest.
const (
	minHistogramBytes = 1 + 1 + 1 + 1 + 8 + 1 + 1 + 8 + 5
	minSpanBytes      = 2 // offset varint, length uvarint
	minIntBucketBytes = 1
	floatBytes        = 8
)

// seriesFlags is the byte that ends a series in VersionHistograms. No flag
// is defined yet: exemplars and metadata will be announced here by their
// own bits, each followed by its section, in a later version. A decoder of
// this version refuses a non-zero byte.
const seriesFlags byte = 0

// appendHistogram appends the encoding of h (doc.go, hsample) after its
// timestamp delta.
func appendHistogram(dst []byte, h *Histogram) []byte {
	if h.H != nil {
		x := h.H
		dst = append(dst, kindHistogram, byte(x.CounterResetHint))
		dst = binary.AppendVarint(dst, int64(x.Schema))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x.ZeroThreshold))
		dst = binary.AppendUvarint(dst, x.ZeroCount)
		dst = binary.AppendUvarint(dst, x.Count)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x.Sum))
		dst = appendSpans(dst, x.PositiveSpans)
		dst = appendSpans(dst, x.NegativeSpans)
		dst = appendIntBuckets(dst, x.PositiveBuckets)
		dst = appendIntBuckets(dst, x.NegativeBuckets)
		return appendFloats(dst, x.CustomValues)
	}
	x := h.FH
	dst = append(dst, kindFloatHistogram, byte(x.CounterResetHint))
	dst = binary.AppendVarint(dst, int64(x.Schema))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x.ZeroThreshold))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x.ZeroCount))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x.Count))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x.Sum))
	dst = appendSpans(dst, x.PositiveSpans)
	dst = appendSpans(dst, x.NegativeSpans)
	dst = appendFloats(dst, x.PositiveBuckets)
	dst = appendFloats(dst, x.NegativeBuckets)
	return appendFloats(dst, x.CustomValues)
}

func appendSpans(dst []byte, spans []histogram.Span) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(spans)))
	for _, s := range spans {
		dst = binary.AppendVarint(dst, int64(s.Offset))
		dst = binary.AppendUvarint(dst, uint64(s.Length))
	}
	return dst
}

func appendIntBuckets(dst []byte, b []int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	for _, v := range b {
		dst = binary.AppendVarint(dst, v)
	}
	return dst
}

func appendFloats(dst []byte, f []float64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(f)))
	for _, v := range f {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
	}
	return dst
}

// histogramSize is the length of appendHistogram's encoding of h.
func histogramSize(h *Histogram) int {
	if h.H != nil {
		x := h.H
		return 2 + varintLen(int64(x.Schema)) + 8 + uvarintLen(x.ZeroCount) + uvarintLen(x.Count) + 8 +
			spansSize(x.PositiveSpans) + spansSize(x.NegativeSpans) +
			intBucketsSize(x.PositiveBuckets) + intBucketsSize(x.NegativeBuckets) + floatsSize(x.CustomValues)
	}
	x := h.FH
	return 2 + varintLen(int64(x.Schema)) + 4*8 +
		spansSize(x.PositiveSpans) + spansSize(x.NegativeSpans) +
		floatsSize(x.PositiveBuckets) + floatsSize(x.NegativeBuckets) + floatsSize(x.CustomValues)
}

func spansSize(spans []histogram.Span) int {
	n := uvarintLen(uint64(len(spans)))
	for _, s := range spans {
		n += varintLen(int64(s.Offset)) + uvarintLen(uint64(s.Length))
	}
	return n
}

func intBucketsSize(b []int64) int {
	n := uvarintLen(uint64(len(b)))
	for _, v := range b {
		n += varintLen(v)
	}
	return n
}

func floatsSize(f []float64) int { return uvarintLen(uint64(len(f))) + 8*len(f) }

// varintLen is the length of binary.AppendVarint's encoding of x (zigzag).
func varintLen(x int64) int { return uvarintLen(uint64(x<<1) ^ uint64(x>>63)) }

// hasHistograms reports whether any series of b has histogram samples.
func (b *Batch) hasHistograms() bool {
	for i := range b.Series {
		if len(b.Series[i].Histograms) > 0 {
			return true
		}
	}
	return false
}

// NumHistograms returns the number of histogram samples in the batch.
func (b *Batch) NumHistograms() int {
	n := 0
	for i := range b.Series {
		n += len(b.Series[i].Histograms)
	}
	return n
}

// varint reads a zigzag varint.
func (r *reader) varint(what string) (int64, error) {
	v, n := binary.Varint(r.src[r.off:])
	if n <= 0 {
		return 0, r.fail("bad %s", what)
	}
	r.off += n
	return v, nil
}

// float reads 8 bytes of IEEE 754 bits, little-endian.
func (r *reader) float(what string) (float64, error) {
	if len(r.src)-r.off < 8 {
		return 0, r.fail("truncated %s", what)
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.src[r.off:]))
	r.off += 8
	return v, nil
}

func (r *reader) spans(what string) ([]histogram.Span, error) {
	n, err := r.count(what+" count", minSpanBytes)
	if err != nil || n == 0 {
		return nil, err
	}
	spans := make([]histogram.Span, n)
	for i := range spans {
		off := r.off
		o, err := r.varint(what + " offset")
		if err != nil {
			return nil, err
		}
		if o < math.MinInt32 || o > math.MaxInt32 {
			r.off = off
			return nil, r.fail("%s offset %d out of int32 range", what, o)
		}
		off = r.off
		l, err := r.uvarint(what + " length")
		if err != nil {
			return nil, err
		}
		if l > math.MaxUint32 {
			r.off = off
			return nil, r.fail("%s length %d out of uint32 range", what, l)
		}
		spans[i] = histogram.Span{Offset: int32(o), Length: uint32(l)}
	}
	return spans, nil
}

func (r *reader) intBuckets(what string) ([]int64, error) {
	n, err := r.count(what+" count", minIntBucketBytes)
	if err != nil || n == 0 {
		return nil, err
	}
	b := make([]int64, n)
	for i := range b {
		if b[i], err = r.varint(what); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (r *reader) floats(what string) ([]float64, error) {
	n, err := r.count(what+" count", floatBytes)
	if err != nil || n == 0 {
		return nil, err
	}
	f := make([]float64, n)
	for i := range f {
		f[i] = math.Float64frombits(binary.LittleEndian.Uint64(r.src[r.off:]))
		r.off += 8
	}
	return f, nil
}

// histogram reads one histogram sample after its timestamp delta. It
// checks the encoding, not the histogram (the engine validates it).
func (r *reader) histogram(t int64) (Histogram, error) {
	if len(r.src)-r.off < 2 {
		return Histogram{}, r.fail("truncated histogram")
	}
	kind, hint := r.src[r.off], r.src[r.off+1]
	if kind != kindHistogram && kind != kindFloatHistogram {
		return Histogram{}, r.fail("unknown histogram kind %d", kind)
	}
	if hint > byte(histogram.GaugeType) {
		r.off++
		return Histogram{}, r.fail("unknown counter reset hint %d", hint)
	}
	r.off += 2
	off := r.off
	schema, err := r.varint("schema")
	if err != nil {
		return Histogram{}, err
	}
	if schema < math.MinInt32 || schema > math.MaxInt32 {
		r.off = off
		return Histogram{}, r.fail("schema %d out of int32 range", schema)
	}
	zt, err := r.float("zero threshold")
	if err != nil {
		return Histogram{}, err
	}
	if kind == kindHistogram {
		h := &histogram.Histogram{CounterResetHint: histogram.CounterResetHint(hint), Schema: int32(schema), ZeroThreshold: zt}
		if h.ZeroCount, err = r.uvarint("zero count"); err != nil {
			return Histogram{}, err
		}
		if h.Count, err = r.uvarint("count"); err != nil {
			return Histogram{}, err
		}
		if h.Sum, err = r.float("sum"); err != nil {
			return Histogram{}, err
		}
		if h.PositiveSpans, err = r.spans("positive span"); err != nil {
			return Histogram{}, err
		}
		if h.NegativeSpans, err = r.spans("negative span"); err != nil {
			return Histogram{}, err
		}
		if h.PositiveBuckets, err = r.intBuckets("positive bucket"); err != nil {
			return Histogram{}, err
		}
		if h.NegativeBuckets, err = r.intBuckets("negative bucket"); err != nil {
			return Histogram{}, err
		}
		if h.CustomValues, err = r.floats("custom value"); err != nil {
			return Histogram{}, err
		}
		return Histogram{T: t, H: h}, nil
	}
	h := &histogram.FloatHistogram{CounterResetHint: histogram.CounterResetHint(hint), Schema: int32(schema), ZeroThreshold: zt}
	if h.ZeroCount, err = r.float("zero count"); err != nil {
		return Histogram{}, err
	}
	if h.Count, err = r.float("count"); err != nil {
		return Histogram{}, err
	}
	if h.Sum, err = r.float("sum"); err != nil {
		return Histogram{}, err
	}
	if h.PositiveSpans, err = r.spans("positive span"); err != nil {
		return Histogram{}, err
	}
	if h.NegativeSpans, err = r.spans("negative span"); err != nil {
		return Histogram{}, err
	}
	if h.PositiveBuckets, err = r.floats("positive bucket"); err != nil {
		return Histogram{}, err
	}
	if h.NegativeBuckets, err = r.floats("negative bucket"); err != nil {
		return Histogram{}, err
	}
	if h.CustomValues, err = r.floats("custom value"); err != nil {
		return Histogram{}, err
	}
	return Histogram{T: t, FH: h}, nil
}
