package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/internal/invariants"
)

// BatchVersion is the first byte of every encoded batch. A format change
// bumps it, updates the layout in doc.go and the golden test together.
// Version 1 (an interned symbol table) was replaced by 2 (each series'
// label set as it is stored) before any release; see docs/design.md.
const BatchVersion byte = 2

// Sample is one float sample: a millisecond timestamp and a value. Values
// round-trip bit-exact (the Prometheus StaleNaN included).
type Sample struct {
	T int64
	V float64
}

// Batch is one write batch: the unit the server proposes to a Raft group and
// the engine applies. It holds samples of one tenant.
//
// Build one with BatchBuilder; decode one with DecodeBatch.
type Batch struct {
	Tenant string
	Series []BatchSeries
}

// BatchSeries is one series of a Batch.
type BatchSeries struct {
	// Labels is the label set in the engine's encoding (AppendLabel):
	// name 0xff value 0xff per label, names strictly increasing, names and
	// values non-empty and free of 0xff. It is the series' identity and
	// the input of labels.StableHash. In a decoded batch it aliases the
	// decoded bytes and is not checked yet (CheckLabels).
	Labels []byte
	// Samples in the order the sender sent them. They need not be sorted:
	// Apply rejects the ones that are out of order.
	Samples []Sample
}

// Labels returns the label set of series i, or an error for a label set
// that does not decode. It allocates; the engine's apply path uses the
// encoded bytes directly.
func (b *Batch) Labels(i int) (labels.Labels, error) {
	if err := CheckLabels(b.Series[i].Labels); err != nil {
		return labels.EmptyLabels(), fmt.Errorf("series %d: %w", i, err)
	}
	var sb labels.ScratchBuilder
	return decodeLabels(&sb, string(b.Series[i].Labels))
}

// NumSamples returns the number of samples in the batch.
func (b *Batch) NumSamples() int {
	n := 0
	for i := range b.Series {
		n += len(b.Series[i].Samples)
	}
	return n
}

// BatchBuilder builds a Batch. The zero value is not usable; use
// NewBatchBuilder. Not safe for concurrent use.
type BatchBuilder struct {
	b   Batch
	buf []byte // the label sets of all series, series after series
	ext []int  // end of each series' label set in buf
}

// NewBatchBuilder returns a builder of a batch for tenant.
func NewBatchBuilder(tenant string) *BatchBuilder {
	return &BatchBuilder{b: Batch{Tenant: tenant}}
}

// Add appends a series and its samples. lset must be a valid label set:
// non-empty, sorted names (labels.Labels always is), no empty name or value,
// no 0xff byte. The samples slice is retained, not copied.
func (bb *BatchBuilder) Add(lset labels.Labels, samples []Sample) error {
	start := len(bb.buf)
	lset.Range(func(l labels.Label) { bb.buf = AppendLabel(bb.buf, l.Name, l.Value) })
	if err := CheckLabels(bb.buf[start:]); err != nil {
		bb.buf = bb.buf[:start]
		return fmt.Errorf("add series %s: %w", lset, err)
	}
	bb.add(samples)
	return nil
}

// AddEncoded is Add for a label set already in the engine's encoding
// (BatchSeries.Labels), which the caller has checked: the remote-write
// hash input of a validated series is one. enc is copied. An invalid enc
// makes the whole batch fail to decode, so it is checked again under the
// invariants build tag.
func (bb *BatchBuilder) AddEncoded(enc []byte, samples []Sample) {
	if invariants.Enabled {
		if err := CheckLabels(enc); err != nil {
			panic(fmt.Sprintf("BUG: AddEncoded(%q): %v", enc, err))
		}
	}
	bb.buf = append(bb.buf, enc...)
	bb.add(samples)
}

func (bb *BatchBuilder) add(samples []Sample) {
	bb.ext = append(bb.ext, len(bb.buf))
	bb.b.Series = append(bb.b.Series, BatchSeries{Samples: samples})
}

// BufferBytes is the capacity of the builder's label buffer: a pool of
// builders should drop one that outgrew what it wants to keep.
func (bb *BatchBuilder) BufferBytes() int { return cap(bb.buf) }

// Reset empties the builder for a new batch of tenant, keeping its
// buffers: a builder reused across requests allocates nothing once they
// have grown. The previous Batch must no longer be in use.
func (bb *BatchBuilder) Reset(tenant string) {
	clear(bb.b.Series) // drop references to the samples
	bb.b = Batch{Tenant: tenant, Series: bb.b.Series[:0]}
	bb.buf, bb.ext = bb.buf[:0], bb.ext[:0]
}

// Batch returns the built batch, valid until the next Add or Reset.
func (bb *BatchBuilder) Batch() *Batch {
	// Link now: buf may have moved while it grew.
	start := 0
	for i, end := range bb.ext {
		bb.b.Series[i].Labels = bb.buf[start:end:end]
		start = end
	}
	return &bb.b
}

// ErrInvalidLabels is returned for a label set that is empty, unsorted, has
// a duplicate or empty label name, or an empty value.
var ErrInvalidLabels = errors.New("engine: invalid label set")

// ErrCorruptBatch matches every *CorruptBatchError.
var ErrCorruptBatch = errors.New("engine: corrupt batch")

// CorruptBatchError reports an encoded batch that cannot be decoded.
type CorruptBatchError struct {
	Offset int // byte offset in the encoded batch where decoding failed
	Reason string
}

func (e *CorruptBatchError) Error() string {
	return fmt.Sprintf("engine: corrupt batch at byte %d: %s", e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorruptBatch) true.
func (e *CorruptBatchError) Is(target error) bool { return target == ErrCorruptBatch }

// AppendBatch appends the encoding of b (layout in doc.go) to dst and
// returns the extended slice. b must be valid (as built by BatchBuilder or
// returned by DecodeBatch); AppendBatch does not check it.
func AppendBatch(dst []byte, b *Batch) []byte {
	// Grow once to the exact size: appending a 2000-series batch to a nil
	// slice doubled it a dozen times (6% of the node's write path), and an
	// upper bound (10 bytes per varint) left entries twice their size in
	// Raft's log cache.
	dst = slices.Grow(dst, batchSize(b))
	dst = append(dst, BatchVersion)
	dst = appendString(dst, b.Tenant)
	dst = binary.AppendUvarint(dst, uint64(len(b.Series)))
	for i := range b.Series {
		s := &b.Series[i]
		dst = binary.AppendUvarint(dst, uint64(len(s.Labels)))
		dst = append(dst, s.Labels...)
		dst = binary.AppendUvarint(dst, uint64(len(s.Samples)))
		prev := int64(0)
		for _, smp := range s.Samples {
			dst = binary.AppendVarint(dst, smp.T-prev)
			prev = smp.T
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(smp.V))
		}
	}
	return dst
}

// batchSize is the length of AppendBatch's encoding of b.
func batchSize(b *Batch) int {
	n := 1 + uvarintLen(uint64(len(b.Tenant))) + len(b.Tenant) + uvarintLen(uint64(len(b.Series)))
	for i := range b.Series {
		s := &b.Series[i]
		n += uvarintLen(uint64(len(s.Labels))) + len(s.Labels) + uvarintLen(uint64(len(s.Samples)))
		prev := int64(0)
		for _, smp := range s.Samples {
			d := smp.T - prev
			n += uvarintLen(uint64(d<<1)^uint64(d>>63)) + 8 // zigzag, as binary.AppendVarint
			prev = smp.T
		}
	}
	return n
}

// uvarintLen is the length of binary.AppendUvarint's encoding of x.
func uvarintLen(x uint64) int {
	return (bits.Len64(x|1) + 6) / 7
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Minimum encoded sizes, used to bound counts read from the input before
// allocating: a count never makes DecodeBatch allocate more than a small
// multiple of len(src).
const (
	minSeriesBytes = 1 + 4 + 1 // label set length, one label ("a\xffb\xff"), sample count
	minSampleBytes = 1 + 8     // varint delta + value
)

// batchReader reads an encoded batch and tracks the offset for errors.
type batchReader struct {
	src []byte
	off int
}

func (r *batchReader) fail(reason string, args ...any) error {
	return &CorruptBatchError{Offset: r.off, Reason: fmt.Sprintf(reason, args...)}
}

func (r *batchReader) uvarint(what string) (uint64, error) {
	if r.off < len(r.src) && r.src[r.off] < 0x80 { // one byte: most counts
		r.off++
		return uint64(r.src[r.off-1]), nil
	}
	v, n := binary.Uvarint(r.src[r.off:])
	if n <= 0 {
		return 0, r.fail("bad %s", what)
	}
	r.off += n
	return v, nil
}

// count reads a count of items of at least minBytes each, checking it
// against the remaining input.
func (r *batchReader) count(what string, minBytes int) (int, error) {
	v, err := r.uvarint(what)
	if err != nil {
		return 0, err
	}
	if v > uint64(len(r.src)-r.off)/uint64(minBytes) {
		return 0, r.fail("%s %d exceeds remaining %d bytes", what, v, len(r.src)-r.off)
	}
	return int(v), nil
}

// DecodeBatch decodes an encoded batch, BatchVersion or BatchVersionS2
// (CompressBatch). It checks the structure: version,
// counts, lengths; not the label sets (CheckLabels; Apply refuses a series
// with invalid labels). It never panics and allocates O(len(src)).
// The returned batch's label sets alias src; the samples share one slice.
func DecodeBatch(src []byte) (Batch, error) {
	var d batchDecoder
	b, err := d.decode(src)
	if err != nil {
		return Batch{}, err
	}
	return *b, nil
}

// batchDecoder decodes batches reusing its slices: the Batch it returns is
// valid until the next decode and aliases the decoded bytes. Apply keeps
// one per group (a 1000-series batch otherwise allocates ~60 KB of slices).
type batchDecoder struct {
	b       Batch
	samples []Sample
	ext     []extent
	raw     []byte // the decompressed form of a BatchVersionS2 batch
}

// BatchVersionS2 is the first byte of a compressed batch: an S2 block
// (github.com/klauspost/compress/s2) of a BatchVersion batch follows.
const BatchVersionS2 byte = 3

// maxDecompressedBatch bounds the decompressed size of a BatchVersionS2
// batch, read from its header before allocating. Batches come from
// remote-write requests of at most 100 MiB decompressed by default
// (-distributor.max-recv-msg-size), whose batch is smaller.
const maxDecompressedBatch = 1 << 30

// CompressBatch appends to dst the BatchVersionS2 form of enc, a batch as
// AppendBatch encodes it. A remote-write batch's label sets repeat names
// and values from series to series: a 2,000-series node_exporter batch
// shrinks 10x in ~30 ns per series, and the Raft log writes (and keeps)
// that much less.
func CompressBatch(dst, enc []byte) []byte {
	return append(append(dst, BatchVersionS2), s2.Encode(nil, enc)...)
}

// decompress returns the BatchVersion batch inside a BatchVersionS2 one,
// in d.raw.
func (d *batchDecoder) decompress(src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src[1:])
	if err != nil {
		return nil, &CorruptBatchError{Offset: 1, Reason: fmt.Sprintf("s2 header: %v", err)}
	}
	if n > maxDecompressedBatch {
		return nil, &CorruptBatchError{Offset: 1, Reason: fmt.Sprintf("decompresses to %d bytes, more than %d", n, maxDecompressedBatch)}
	}
	if cap(d.raw) < n {
		d.raw = make([]byte, n)
	}
	raw, err := s2.Decode(d.raw[:cap(d.raw)], src[1:])
	if err != nil {
		return nil, &CorruptBatchError{Offset: 1, Reason: fmt.Sprintf("s2: %v", err)}
	}
	if len(raw) == 0 || raw[0] != BatchVersion {
		return nil, &CorruptBatchError{Offset: 1, Reason: "compressed content is not a version 2 batch"}
	}
	return raw, nil
}

type extent struct{ l0, l1, s0, s1 int }

func (d *batchDecoder) decode(src []byte) (*Batch, error) {
	r := batchReader{src: src}
	if len(src) == 0 {
		return nil, r.fail("empty")
	}
	if src[0] == BatchVersionS2 {
		raw, err := d.decompress(src)
		if err != nil {
			return nil, err
		}
		// Offsets in errors below are in the decompressed batch.
		src = raw
		r = batchReader{src: src}
	}
	if src[0] != BatchVersion {
		return nil, r.fail("unknown version %d", src[0])
	}
	r.off = 1
	n, err := r.count("tenant length", 1)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, r.fail("empty tenant")
	}
	b := &d.b
	b.Tenant = string(src[r.off : r.off+n])
	r.off += n

	nser, err := r.count("series count", minSeriesBytes)
	if err != nil {
		return nil, err
	}
	// Samples of all series share one slice. The capacity guess (1 sample
	// per series: remote write's shape) is capped by what the remaining
	// input can hold.
	samples := d.samples[:0]
	if c := min(nser, (len(src)-r.off)/minSampleBytes); cap(samples) < c {
		samples = make([]Sample, 0, c)
	}
	ext := d.ext[:0]
	if cap(ext) < nser {
		ext = make([]extent, 0, nser)
	}
	for i := range nser {
		nl, err := r.count("label set length", 1)
		if err != nil {
			return nil, err
		}
		if nl == 0 {
			return nil, r.fail("series %d has no labels", i)
		}
		// The label set itself is checked by Apply, and only for a series
		// it does not know: bytes equal to a stored label set are valid.
		// Checking every series here cost 19% of apply.
		var e extent
		e.l0, e.l1 = r.off, r.off+nl
		r.off = e.l1
		ns, err := r.count("sample count", minSampleBytes)
		if err != nil {
			return nil, err
		}
		e.s0 = len(samples)
		prev := int64(0)
		for range ns {
			dt, n := binary.Varint(src[r.off:])
			if n <= 0 {
				return nil, r.fail("bad timestamp delta")
			}
			r.off += n
			if len(src)-r.off < 8 {
				return nil, r.fail("truncated value")
			}
			v := math.Float64frombits(binary.LittleEndian.Uint64(src[r.off:]))
			r.off += 8
			prev += dt
			samples = append(samples, Sample{T: prev, V: v})
		}
		e.s1 = len(samples)
		ext = append(ext, e)
	}
	d.samples, d.ext = samples, ext
	if r.off != len(src) {
		return nil, r.fail("%d trailing bytes", len(src)-r.off)
	}
	b.Series = b.Series[:0]
	if nser == 0 {
		b.Series = nil
	} else if cap(b.Series) < nser {
		b.Series = make([]BatchSeries, 0, nser)
	}
	for _, e := range ext {
		b.Series = append(b.Series, BatchSeries{Labels: src[e.l0:e.l1:e.l1], Samples: samples[e.s0:e.s1:e.s1]})
	}
	return b, nil
}
