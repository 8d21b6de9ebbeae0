package write

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/klauspost/compress/s2"
)

// ErrCorrupt matches every *CorruptError.
var ErrCorrupt = errors.New("write: corrupt batch")

// CorruptError reports an encoded batch that cannot be decoded.
type CorruptError struct {
	// Offset is the byte offset where decoding failed: in the encoded
	// batch, or for a VersionS2 batch whose content is bad, in its
	// decompressed content.
	Offset int
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("write: corrupt batch at byte %d: %s", e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Decode decodes an encoded batch, VersionHistograms, Version,
// VersionNoLimits (whose Limits are zero), VersionWindow of one of the
// first two, or VersionS2 of any of them (Compress), or VersionS2Prefix
// (Encoder). It
// checks the structure: version, counts, lengths; not the label sets
// (CheckLabels; the engine refuses a series with invalid labels). It
// never panics and allocates O(len(src)); an error is a *CorruptError.
// The returned batch's label sets alias src (or, for VersionS2 and
// VersionS2Prefix, a buffer of its own); the samples share one slice, and so do the histogram
// samples (each histogram's spans and buckets are allocated).
func Decode(src []byte) (Batch, error) {
	var d Decoder
	b, err := d.Decode(src)
	if err != nil {
		return Batch{}, err
	}
	return *b, nil
}

// Decoder decodes batches reusing its slices. The zero value is ready to
// use; it is not safe for concurrent use. The engine keeps one per group:
// a 1000-series batch otherwise allocates ~60 KB of slices.
type Decoder struct {
	b       Batch
	samples []Sample
	ext     []extent
	hists   []Histogram
	exs     []Exemplar
	metas   []SeriesMeta
	raw     []byte  // the decompressed form of a VersionS2 or VersionS2Prefix batch
	lbls    []byte  // the label sets of a VersionS2Prefix batch, one after the other
	sts     []int64 // start timestamps of a VersionST batch, all series'
	stn     []int   // the number of start timestamps of each series
	stMetas []SeriesMeta
}

// maxDecompressed bounds the decompressed size of a VersionS2 batch, read
// from its header before allocating. Batches come from remote-write
// requests of at most 100 MiB decompressed by default
// (-distributor.max-recv-msg-size), whose batch is smaller.
const maxDecompressed = 1 << 30

// Minimum encoded sizes, used to bound counts read from the input before
// allocating: a count never makes Decode allocate more than a small
// multiple of len(src).
const (
	minSeriesBytes = 1 + 1 + 1 // label set length, one byte of labels (Decode does not check them), sample count
	minSampleBytes = 1 + 8     // varint delta + value
)

// reader reads an encoded batch and tracks the offset for errors.
type reader struct {
	src []byte
	off int
}

func (r *reader) fail(reason string, args ...any) error {
	return &CorruptError{Offset: r.off, Reason: fmt.Sprintf(reason, args...)}
}

func (r *reader) uvarint(what string) (uint64, error) {
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

// limit reads a series limit, at most maxLimit.
func (r *reader) limit(what string) (int, error) {
	off := r.off
	v, err := r.uvarint(what)
	if err != nil {
		return 0, err
	}
	if v > maxLimit {
		r.off = off
		return 0, r.fail("%s %d above %d", what, v, maxLimit)
	}
	return int(v), nil
}

// count reads a count of items of at least minBytes each, checking it
// against the remaining input.
func (r *reader) count(what string, minBytes int) (int, error) {
	v, err := r.uvarint(what)
	if err != nil {
		return 0, err
	}
	if v > uint64(len(r.src)-r.off)/uint64(minBytes) {
		return 0, r.fail("%s %d exceeds remaining %d bytes", what, v, len(r.src)-r.off)
	}
	return int(v), nil
}

// decompress returns the Version batch inside a VersionS2 one, in d.raw.
func (d *Decoder) decompress(src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src[1:])
	if err != nil {
		return nil, &CorruptError{Offset: 1, Reason: fmt.Sprintf("s2 header: %v", err)}
	}
	if n > maxDecompressed {
		return nil, &CorruptError{Offset: 1, Reason: fmt.Sprintf("decompresses to %d bytes, more than %d", n, maxDecompressed)}
	}
	if cap(d.raw) < n {
		d.raw = make([]byte, n)
	}
	raw, err := s2.Decode(d.raw[:cap(d.raw)], src[1:])
	if err != nil {
		return nil, &CorruptError{Offset: 1, Reason: fmt.Sprintf("s2: %v", err)}
	}
	if len(raw) == 0 || !knownVersion(raw[0]) && raw[0] != VersionWindow && raw[0] != VersionST {
		return nil, &CorruptError{Offset: 1, Reason: "compressed content is not a version 2, 4, 5, 6, 7 or 8 batch"}
	}
	return raw, nil
}

// knownVersion reports whether v is the version of a batch Decode reads.
func knownVersion(v byte) bool {
	return v == Version || v == VersionNoLimits || v == VersionHistograms || v == VersionExemplars
}

// extent locates one series in the input: its label set in [l0, l1), its
// samples in [s0, s1) of the shared sample slice, its histograms in
// [h0, h1) of the shared histogram slice, its exemplars in [e0, e1) of
// the shared exemplar slice; meta is its metadata.
type extent struct {
	l0, l1, s0, s1, h0, h1, e0, e1 int
	meta                           *Metadata
}

// Decode is the package's Decode reusing d's slices. The Batch it returns
// is d's own, valid until the next Decode; its label sets alias src (or,
// for VersionS2, d's decompression buffer, and for VersionS2Prefix, d's
// label buffer, both reused by the next Decode).
func (d *Decoder) Decode(src []byte) (*Batch, error) {
	r := reader{src: src}
	if len(src) == 0 {
		return nil, r.fail("empty")
	}
	prefixed := src[0] == VersionS2Prefix
	if src[0] == VersionS2 || prefixed {
		raw, err := d.decompress(src)
		if err != nil {
			return nil, err
		}
		// Offsets in errors below are in the decompressed batch.
		src = raw
		r = reader{src: src}
	}
	window, err := r.window()
	if err != nil {
		return nil, err
	}
	stOff := r.off
	hasSTs, err := d.readSTs(&r)
	if err != nil {
		return nil, err
	}
	version := src[r.off]
	if !knownVersion(version) {
		return nil, r.fail("unknown version %d", version)
	}
	if window > 0 && version == VersionNoLimits {
		return nil, r.fail("version %d batch in an out-of-order window", version)
	}
	r.off++
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
	b.Limits = SeriesLimits{}
	b.OutOfOrderWindowMs = window
	if version != VersionNoLimits {
		if b.Limits.MaxSeries, err = r.limit("series limit"); err != nil {
			return nil, err
		}
		if b.Limits.MaxSeriesPerMetric, err = r.limit("per-metric series limit"); err != nil {
			return nil, err
		}
	}
	b.MetaLimits = MetaLimits{}
	if version == VersionExemplars {
		if b.MetaLimits.MaxExemplars, err = r.limit("exemplar limit"); err != nil {
			return nil, err
		}
		if b.MetaLimits.MaxMetadata, err = r.limit("metadata limit"); err != nil {
			return nil, err
		}
		if b.MetaLimits.MaxMetadataPerMetric, err = r.limit("per-metric metadata limit"); err != nil {
			return nil, err
		}
	}

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
	hists := d.hists[:0]
	exs := d.exs[:0]
	ext := d.ext[:0]
	if cap(ext) < nser {
		ext = make([]extent, 0, nser)
	}
	// The label sets of a prefixed batch are rebuilt in lbls, and the
	// extents' label offsets are in it; they are in src otherwise.
	lbls := d.lbls[:0]
	maxLbls := min(maxLabelExpansion*len(src), maxDecompressed)
	for i := range nser {
		// The label set itself is checked by the engine's apply, and only
		// for a series it does not know: bytes equal to a stored label set
		// are valid. Checking every series here cost 19% of apply.
		var e extent
		if prefixed {
			var prev []byte // the previous series' label set
			if i > 0 {
				p := ext[i-1]
				prev = lbls[p.l0:p.l1]
			}
			e.l0 = len(lbls)
			if lbls, err = r.prefixedLabels(lbls, prev, maxLbls, i); err != nil {
				return nil, err
			}
			e.l1 = len(lbls)
		} else {
			nl, err := r.count("label set length", 1)
			if err != nil {
				return nil, err
			}
			if nl == 0 {
				return nil, r.fail("series %d has no labels", i)
			}
			e.l0, e.l1 = r.off, r.off+nl
			r.off = e.l1
		}
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
		e.h0 = len(hists)
		e.e0 = len(exs)
		if version == VersionHistograms || version == VersionExemplars {
			var flags byte
			if hists, flags, err = decodeHistograms(&r, hists, version == VersionExemplars); err != nil {
				return nil, err
			}
			if flags != 0 {
				if exs, e.meta, err = decodeSeriesMeta(&r, flags, exs); err != nil {
					return nil, err
				}
			}
		}
		e.h1, e.e1 = len(hists), len(exs)
		ext = append(ext, e)
	}
	d.samples, d.ext, d.hists, d.exs, d.lbls = samples, ext, hists, exs, lbls
	if r.off != len(src) {
		return nil, r.fail("%d trailing bytes", len(src)-r.off)
	}
	lsrc := src
	if prefixed {
		lsrc = lbls
	}
	b.Series = b.Series[:0]
	if nser == 0 {
		b.Series = nil
	} else if cap(b.Series) < nser {
		b.Series = make([]Series, 0, nser)
	}
	// Room for every series' SeriesMeta at once: Series.Meta points into
	// it, so it must not move while the batch is built.
	nmeta := 0
	for _, e := range ext {
		if e.e1 > e.e0 || e.meta != nil {
			nmeta++
		}
	}
	clear(d.metas)
	if cap(d.metas) < nmeta {
		d.metas = make([]SeriesMeta, 0, nmeta)
	}
	d.metas = d.metas[:0]
	for _, e := range ext {
		s := Series{Labels: lsrc[e.l0:e.l1:e.l1], Samples: samples[e.s0:e.s1:e.s1]}
		if e.h1 > e.h0 {
			s.Histograms = hists[e.h0:e.h1:e.h1]
		}
		if e.e1 > e.e0 || e.meta != nil {
			d.metas = append(d.metas, SeriesMeta{Metadata: e.meta})
			if e.e1 > e.e0 {
				d.metas[len(d.metas)-1].Exemplars = exs[e.e0:e.e1:e.e1]
			}
			s.Meta = &d.metas[len(d.metas)-1]
		}
		b.Series = append(b.Series, s)
	}
	if hasSTs {
		if err := d.linkSTs(b, stOff); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// prefixedLabels reads the label set of series i of a VersionS2Prefix
// batch, whose previous series' label set is prev, and appends it to
// lbls, which must stay within maxLbls bytes.
func (r *reader) prefixedLabels(lbls, prev []byte, maxLbls, i int) ([]byte, error) {
	off := r.off
	shared, err := r.uvarint("shared label set length")
	if err != nil {
		return lbls, err
	}
	if shared > uint64(len(prev)) {
		r.off = off
		return lbls, r.fail("series %d shares %d bytes of the previous label set of %d", i, shared, len(prev))
	}
	nl, err := r.count("label set length", 1)
	if err != nil {
		return lbls, err
	}
	if shared == 0 && nl == 0 {
		return lbls, r.fail("series %d has no labels", i)
	}
	if n := len(lbls) + int(shared) + nl; n > maxLbls {
		return lbls, r.fail("label sets of %d bytes, more than %d", n, maxLbls)
	}
	// prev is in lbls, before the bytes appended: an append that moves
	// lbls copies from the old array, which prev still holds.
	lbls = append(lbls, prev[:shared]...)
	lbls = append(lbls, r.src[r.off:r.off+nl]...)
	r.off += nl
	return lbls, nil
}

// decodeHistograms reads the histogram samples and the flags byte that
// end a VersionHistograms series, appending the samples to hists. With
// meta (VersionExemplars) the flags may announce exemplars and metadata,
// returned for the caller to read their sections.
func decodeHistograms(r *reader, hists []Histogram, meta bool) ([]Histogram, byte, error) {
	nh, err := r.count("histogram count", minHistogramBytes)
	if err != nil {
		return hists, 0, err
	}
	prev := int64(0)
	for range nh {
		dt, err := r.varint("histogram timestamp delta")
		if err != nil {
			return hists, 0, err
		}
		prev += dt
		h, err := r.histogram(prev)
		if err != nil {
			return hists, 0, err
		}
		hists = append(hists, h)
	}
	if r.off >= len(r.src) {
		return hists, 0, r.fail("truncated series flags")
	}
	f := r.src[r.off]
	if f != seriesFlags && (!meta || f&^knownFlags != 0) {
		return hists, 0, r.fail("unknown series flags %#x", f)
	}
	r.off++
	return hists, f, nil
}
