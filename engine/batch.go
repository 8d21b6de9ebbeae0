package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
)

// BatchVersion is the first byte of every encoded batch. A format change
// bumps it, updates the layout in doc.go and the golden test together.
const BatchVersion byte = 1

// Sample is one float sample: a millisecond timestamp and a value. Values
// round-trip bit-exact (the Prometheus StaleNaN included).
type Sample struct {
	T int64
	V float64
}

// Batch is one write batch: the unit the server proposes to a Raft group and
// the engine applies. It holds samples of one tenant. Label strings are
// interned in Symbols; a series names its labels by index into Symbols.
//
// Build one with BatchBuilder; decode one with DecodeBatch.
type Batch struct {
	Tenant  string
	Symbols []string
	Series  []BatchSeries
}

// BatchSeries is one series of a Batch.
type BatchSeries struct {
	// Labels holds name, value pairs of indexes into Batch.Symbols.
	// INVARIANT: names are non-empty and strictly increasing, values are
	// non-empty (DecodeBatch and BatchBuilder.Add check it).
	Labels []uint32
	// Samples in the order the sender sent them. They need not be sorted:
	// Apply rejects the ones that are out of order.
	Samples []Sample
}

// Labels returns the label set of series i. It allocates; the engine's
// apply path uses the symbol references directly.
func (b *Batch) Labels(i int) labels.Labels {
	refs := b.Series[i].Labels
	sb := labels.NewScratchBuilder(len(refs) / 2)
	for j := 0; j+1 < len(refs); j += 2 {
		sb.Add(b.Symbols[refs[j]], b.Symbols[refs[j+1]])
	}
	return sb.Labels()
}

// NumSamples returns the number of samples in the batch.
func (b *Batch) NumSamples() int {
	n := 0
	for i := range b.Series {
		n += len(b.Series[i].Samples)
	}
	return n
}

// BatchBuilder builds a Batch, interning label strings. The zero value is
// not usable; use NewBatchBuilder. Not safe for concurrent use.
type BatchBuilder struct {
	b   Batch
	sym map[string]uint32
}

// NewBatchBuilder returns a builder of a batch for tenant.
func NewBatchBuilder(tenant string) *BatchBuilder {
	return &BatchBuilder{b: Batch{Tenant: tenant}, sym: map[string]uint32{}}
}

// Add appends a series and its samples. lset must be a valid label set:
// non-empty, sorted names (labels.Labels always is), no empty name or value.
// The samples slice is retained, not copied.
func (bb *BatchBuilder) Add(lset labels.Labels, samples []Sample) error {
	if lset.IsEmpty() {
		return fmt.Errorf("add series: %w", ErrInvalidLabels)
	}
	refs := make([]uint32, 0, 2*lset.Len())
	var err error
	prev := ""
	lset.Range(func(l labels.Label) {
		if l.Name == "" || l.Value == "" || (len(refs) > 0 && l.Name <= prev) {
			err = fmt.Errorf("add series %s: %w", lset, ErrInvalidLabels)
		}
		prev = l.Name
		refs = append(refs, bb.intern(l.Name), bb.intern(l.Value))
	})
	if err != nil {
		return err
	}
	bb.b.Series = append(bb.b.Series, BatchSeries{Labels: refs, Samples: samples})
	return nil
}

// AddLabels is Add for a label set held as bytes, such as a decoded
// remote-write request: label i is at(i), for i < n. Symbols are looked up
// without converting the bytes; only a symbol new to the batch is copied.
// The same rules as Add apply.
func (bb *BatchBuilder) AddLabels(n int, at func(i int) (name, value []byte), samples []Sample) error {
	if n == 0 {
		return fmt.Errorf("add series: %w", ErrInvalidLabels)
	}
	refs := make([]uint32, 0, 2*n)
	var prev []byte
	for i := range n {
		name, value := at(i)
		if len(name) == 0 || len(value) == 0 || (i > 0 && string(name) <= string(prev)) {
			return fmt.Errorf("add series (label %d %q=%q): %w", i, name, value, ErrInvalidLabels)
		}
		prev = name
		refs = append(refs, bb.internBytes(name), bb.internBytes(value))
	}
	bb.b.Series = append(bb.b.Series, BatchSeries{Labels: refs, Samples: samples})
	return nil
}

func (bb *BatchBuilder) internBytes(b []byte) uint32 {
	if r, ok := bb.sym[string(b)]; ok { // no allocation: the compiler's map lookup
		return r
	}
	return bb.intern(string(b))
}

func (bb *BatchBuilder) intern(s string) uint32 {
	if r, ok := bb.sym[s]; ok {
		return r
	}
	r := uint32(len(bb.b.Symbols))
	bb.b.Symbols = append(bb.b.Symbols, s)
	bb.sym[s] = r
	return r
}

// Batch returns the built batch. The builder must not be used afterwards.
func (bb *BatchBuilder) Batch() *Batch { return &bb.b }

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
	dst = append(dst, BatchVersion)
	dst = appendString(dst, b.Tenant)
	dst = binary.AppendUvarint(dst, uint64(len(b.Symbols)))
	for _, s := range b.Symbols {
		dst = appendString(dst, s)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b.Series)))
	for i := range b.Series {
		s := &b.Series[i]
		dst = binary.AppendUvarint(dst, uint64(len(s.Labels)/2))
		for _, r := range s.Labels {
			dst = binary.AppendUvarint(dst, uint64(r))
		}
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

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Minimum encoded sizes, used to bound counts read from the input before
// allocating: a count never makes DecodeBatch allocate more than a small
// multiple of len(src).
const (
	minSymbolBytes = 1         // uvarint length
	minSeriesBytes = 1 + 2 + 1 // label count, one label pair, sample count
	minLabelBytes  = 2         // two uvarint refs
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
	if r.off < len(r.src) && r.src[r.off] < 0x80 { // one byte: most counts and refs
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

// DecodeBatch decodes an encoded batch. It checks the whole structure:
// version, counts, symbol references, label order; it never panics and
// allocates O(len(src)). The returned batch does not alias src: the symbol
// strings share one string converted from src, and the samples share one
// slice.
func DecodeBatch(src []byte) (Batch, error) {
	var d batchDecoder
	b, err := d.decode(src)
	if err != nil {
		return Batch{}, err
	}
	return *b, nil
}

// batchDecoder decodes batches reusing its slices: the Batch it returns is
// valid until the next decode. Apply keeps one per group (a 1000-series
// batch otherwise allocates ~200 KB of slices).
type batchDecoder struct {
	b       Batch
	spans   []span
	ext     []extent
	refs    []uint32
	samples []Sample
}

type span struct{ a, b int }

type extent struct{ l0, l1, s0, s1 int }

func (d *batchDecoder) decode(src []byte) (*Batch, error) {
	r := batchReader{src: src}
	if len(src) == 0 {
		return nil, r.fail("empty")
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

	nsym, err := r.count("symbol count", minSymbolBytes)
	if err != nil {
		return nil, err
	}
	// One conversion for the whole symbol table; symbols are substrings.
	// Two passes: find the extent, then slice.
	start := r.off
	spans := d.spans[:0]
	if cap(spans) < nsym {
		spans = make([]span, 0, nsym)
	}
	for range nsym {
		l, err := r.count("symbol length", 1)
		if err != nil {
			return nil, err
		}
		spans = append(spans, span{r.off - start, r.off - start + l})
		r.off += l
	}
	d.spans = spans
	b.Symbols = b.Symbols[:0]
	if nsym == 0 {
		b.Symbols = nil
	} else {
		table := string(src[start:r.off])
		if cap(b.Symbols) < nsym {
			b.Symbols = make([]string, 0, nsym)
		}
		for _, sp := range spans {
			b.Symbols = append(b.Symbols, table[sp.a:sp.b])
		}
	}

	nser, err := r.count("series count", minSeriesBytes)
	if err != nil {
		return nil, err
	}
	// Label refs and samples of all series share one slice each. Capacity
	// guesses (10 labels, 1 sample per series: remote write's shape) are
	// capped by what the remaining input can hold.
	rem := len(src) - r.off
	refs, samples := d.refs[:0], d.samples[:0]
	if c := min(20*nser, rem); cap(refs) < c {
		refs = make([]uint32, 0, c)
	}
	if c := min(nser, rem/minSampleBytes); cap(samples) < c {
		samples = make([]Sample, 0, c)
	}
	ext := d.ext[:0]
	if cap(ext) < nser {
		ext = make([]extent, 0, nser)
	}
	for i := range nser {
		nl, err := r.count("label count", minLabelBytes)
		if err != nil {
			return nil, err
		}
		if nl == 0 {
			return nil, r.fail("series %d has no labels", i)
		}
		var e extent
		e.l0 = len(refs)
		for j := 0; j < 2*nl; j++ {
			ref, err := r.uvarint("label ref")
			if err != nil {
				return nil, err
			}
			if ref >= uint64(nsym) {
				return nil, r.fail("series %d: label ref %d out of %d symbols", i, ref, nsym)
			}
			s := b.Symbols[ref]
			if s == "" {
				return nil, r.fail("series %d: empty label name or value", i)
			}
			if j%2 == 0 && j > 0 {
				// Names differ in the first byte nearly always; compare
				// it inline before the full string comparison.
				p := b.Symbols[refs[len(refs)-2]]
				if s[0] < p[0] || (s[0] == p[0] && s <= p) {
					return nil, r.fail("series %d: label names not strictly increasing", i)
				}
			}
			refs = append(refs, uint32(ref))
		}
		e.l1 = len(refs)
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
	d.refs, d.samples, d.ext = refs, samples, ext
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
		b.Series = append(b.Series, BatchSeries{Labels: refs[e.l0:e.l1:e.l1], Samples: samples[e.s0:e.s1:e.s1]})
	}
	return b, nil
}
