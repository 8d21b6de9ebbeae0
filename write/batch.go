package write

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/internal/invariants"
)

// Version is the first byte of every uncompressed batch Append writes. A
// format change bumps it, updates the layout in doc.go and the golden test
// together. Version 1 (an interned symbol table) was replaced by 2 (each
// series' label set as it is stored) before any release; version 4 adds
// the series limits (SeriesLimits); Decode reads 2 and 4. See
// docs/design.md.
const Version byte = 4

// VersionNoLimits is the batch version before the series limits: the
// layout of Version without the limits. Decode reads it (entries in Raft
// logs written before version 4) as a batch without limits.
const VersionNoLimits byte = 2

// VersionS2 is the first byte of a compressed batch: an S2 block
// (github.com/klauspost/compress/s2) of a Version (or VersionNoLimits)
// batch follows.
const VersionS2 byte = 3

// VersionS2Prefix is the first byte of a compressed batch whose label
// sets are prefix-coded: each series' label set is written as the number
// of leading bytes it shares with the previous series' label set and the
// rest (doc.go). It is what Encoder writes; Decode reads it and
// VersionS2.
const VersionS2Prefix byte = 9

// maxLabelExpansion bounds the label sets a VersionS2Prefix batch
// decodes to: at most this many times the length of its decompressed
// content. Shared prefixes make a few bytes of input name a long label
// set; without a bound a crafted entry would decode to a quadratic
// amount of memory. The Encoder writes VersionS2 instead for a batch
// past it (a remote-write batch decodes to ~2x).
const maxLabelExpansion = 64

// Sample is one float sample: a millisecond timestamp and a value. Values
// round-trip bit-exact (the Prometheus StaleNaN included).
type Sample struct {
	T int64
	V float64
}

// Batch is one write batch: the unit the server proposes to a Raft group
// and the engine applies. It holds samples of one tenant.
//
// Build one with a Builder; decode one with Decode or a Decoder.
type Batch struct {
	Tenant string
	// Limits: the series limits the group applies to the batch's
	// tenant, set by the proposer (server/distributor) for the group it
	// sends the batch to. Every replica applies the entry with the same
	// limits, so they refuse the same series.
	Limits SeriesLimits
	// OutOfOrderWindowMs: the tenant's out-of-order time window
	// (out_of_order_time_window) in milliseconds, 0 for none, at most
	// MaxOutOfOrderWindow. Set by the proposer, like Limits: every
	// replica accepts a sample older than its series' newest one when it
	// is within this of the tenant's newest sample in the group.
	OutOfOrderWindowMs int64
	// MetaLimits: the exemplar and metadata limits the group applies to
	// the batch's tenant, set by the proposer as Limits. Encoded only in a
	// VersionExemplars batch (one with exemplars or metadata).
	MetaLimits MetaLimits
	Series     []Series
}

// SeriesLimits bound the series a tenant has in one group's head: the
// tenant's global limits (max_global_series_per_user and _per_metric)
// scaled to the group's share of the ring. A series the head does not
// hold yet is refused (ErrSeriesLimit, ErrMetricSeriesLimit) when it
// would go past them; series it holds keep being written. Zero means no
// limit.
type SeriesLimits struct {
	// MaxSeries: series of the tenant with samples in the group's head.
	MaxSeries int
	// MaxSeriesPerMetric: of them, series of one metric name.
	MaxSeriesPerMetric int
}

// maxLimit bounds a decoded limit: 2^31-1 series is more than any head
// holds, and keeps an int of any platform.
const maxLimit = 1<<31 - 1

// Series is one series of a Batch.
type Series struct {
	// Labels is the label set in its encoding (AppendLabel): name LabelSep
	// value LabelSep per label, names strictly increasing, names and
	// values non-empty and free of LabelSep. It is the series' identity
	// and the input of labels.StableHash. In a decoded batch it aliases
	// the decoded bytes and is not checked yet (CheckLabels).
	Labels []byte
	// Samples in the order the sender sent them. They need not be sorted:
	// the engine refuses the ones that are out of order.
	Samples []Sample
	// Histograms are the series' native histogram samples, in the order
	// the sender sent them, as Samples. A batch with any is encoded as
	// VersionHistograms.
	Histograms []Histogram
	// Meta holds the series' exemplars and metric metadata; nil for none,
	// as most series: a pointer costs every Series 8 bytes where the two
	// fields cost 32 (a 2,000-series batch lives in three copies on the
	// write path). A batch with any is encoded as VersionExemplars.
	Meta *SeriesMeta
}

// Labels returns the label set of series i, or an error wrapping
// ErrInvalidLabels for a label set that is not valid. It allocates; the
// engine's apply path uses the encoded bytes directly.
func (b *Batch) Labels(i int) (labels.Labels, error) {
	if err := CheckLabels(b.Series[i].Labels); err != nil {
		return labels.EmptyLabels(), fmt.Errorf("series %d: %w", i, err)
	}
	var sb labels.ScratchBuilder
	return DecodeLabels(&sb, string(b.Series[i].Labels))
}

// NumSamples returns the number of float samples in the batch.
func (b *Batch) NumSamples() int {
	n := 0
	for i := range b.Series {
		n += len(b.Series[i].Samples)
	}
	return n
}

// Builder builds a Batch. The zero value is not usable; use NewBuilder.
// Not safe for concurrent use.
type Builder struct {
	b   Batch
	buf []byte // the label sets of all series, series after series
	ext []int  // end of each series' label set in buf
}

// NewBuilder returns a builder of a batch for tenant.
func NewBuilder(tenant string) *Builder {
	return &Builder{b: Batch{Tenant: tenant}}
}

// Add appends a series and its samples. lset must be a valid label set:
// non-empty, sorted names (labels.Labels always is), no empty name or
// value, no LabelSep byte; otherwise the error wraps ErrInvalidLabels. The
// samples slice is retained, not copied.
func (bb *Builder) Add(lset labels.Labels, samples []Sample) error {
	start := len(bb.buf)
	lset.Range(func(l labels.Label) { bb.buf = AppendLabel(bb.buf, l.Name, l.Value) })
	if err := CheckLabels(bb.buf[start:]); err != nil {
		bb.buf = bb.buf[:start]
		return fmt.Errorf("add series %s: %w", lset, err)
	}
	bb.add(samples, nil)
	return nil
}

// AddHistograms is Add for a series with histogram samples too (either
// may be empty). The slices are retained, not copied.
func (bb *Builder) AddHistograms(lset labels.Labels, samples []Sample, hists []Histogram) error {
	if err := bb.Add(lset, samples); err != nil {
		return err
	}
	bb.b.Series[len(bb.b.Series)-1].Histograms = hists
	return nil
}

// AddEncodedHistograms is AddEncoded for a series with histogram samples
// too (either may be empty). enc is copied; the slices are retained.
func (bb *Builder) AddEncodedHistograms(enc []byte, samples []Sample, hists []Histogram) {
	bb.AddEncoded(enc, samples)
	bb.b.Series[len(bb.b.Series)-1].Histograms = hists
}

// AddEncoded is Add for a label set already in its encoding
// (Series.Labels), which the caller has checked: the remote-write series
// key of a validated series is one. enc is copied; samples are retained.
// An invalid enc makes the engine refuse the series, so it is checked
// again under the invariants build tag.
func (bb *Builder) AddEncoded(enc []byte, samples []Sample) {
	if invariants.Enabled {
		if err := CheckLabels(enc); err != nil {
			panic(fmt.Sprintf("BUG: AddEncoded(%q): %v", enc, err))
		}
	}
	bb.buf = append(bb.buf, enc...)
	bb.add(samples, nil)
}

// SetStartTimestamps gives the series added last its start timestamps
// (SeriesMeta.StartTimestamps). The slice is retained.
func (bb *Builder) SetStartTimestamps(sts []int64) {
	bb.b.Series[len(bb.b.Series)-1].SetStartTimestamps(sts)
}

func (bb *Builder) add(samples []Sample, hists []Histogram) {
	bb.ext = append(bb.ext, len(bb.buf))
	bb.b.Series = append(bb.b.Series, Series{Samples: samples, Histograms: hists})
}

// BufferBytes is the capacity of the builder's label buffer: a pool of
// builders should drop one that outgrew what it wants to keep.
func (bb *Builder) BufferBytes() int { return cap(bb.buf) }

// Reset empties the builder for a new batch of tenant, keeping its
// buffers: a builder reused across requests allocates nothing once they
// have grown. The previous Batch must no longer be in use.
func (bb *Builder) Reset(tenant string) {
	clear(bb.b.Series) // drop references to the samples
	bb.b = Batch{Tenant: tenant, Series: bb.b.Series[:0]}
	bb.buf, bb.ext = bb.buf[:0], bb.ext[:0]
}

// Batch returns the built batch, valid until the next Add, AddEncoded or
// Reset.
func (bb *Builder) Batch() *Batch {
	// Link now: buf may have moved while it grew.
	start := 0
	for i, end := range bb.ext {
		bb.b.Series[i].Labels = bb.buf[start:end:end]
		start = end
	}
	return &bb.b
}

// Append appends the encoding of b (layout in doc.go) to dst and returns
// the extended slice: VersionHistograms if a series has histogram
// samples, Version otherwise, in a VersionST envelope if a series has
// start timestamps, that in a VersionWindow envelope if the batch has an
// out-of-order window. b must be valid (as built by a Builder or
// returned by Decode, each Histogram with exactly one of H and FH); Append
// does not check it.
func Append(dst []byte, b *Batch) []byte {
	return appendBatch(dst, b, false)
}

// appendBatch is Append, with the label sets prefix-coded if prefix (the
// content of a VersionS2Prefix batch).
func appendBatch(dst []byte, b *Batch, prefix bool) []byte {
	// A float-only batch keeps the version a replica of the previous
	// release decodes: a rolling upgrade writes nothing it cannot apply
	// until histograms arrive.
	meta := b.HasMeta()
	hists := meta || b.hasHistograms()
	version := Version
	switch {
	case meta:
		version = VersionExemplars
	case hists:
		version = VersionHistograms
	}
	// Grow once to the exact size: appending a 2000-series batch to a nil
	// slice doubled it a dozen times (6% of the node's write path), and an
	// upper bound (10 bytes per varint) left entries twice their size in
	// Raft's log cache.
	sts := b.HasStartTimestamps()
	size := windowSize(b.OutOfOrderWindowMs) + encodedSize(b, hists, meta)
	if sts {
		size += stsSize(b)
	}
	dst = slices.Grow(dst, size)
	dst = appendWindow(dst, b.OutOfOrderWindowMs)
	if sts {
		dst = appendSTs(dst, b)
	}
	dst = append(dst, version)
	dst = appendString(dst, b.Tenant)
	dst = binary.AppendUvarint(dst, uint64(clampLimit(b.Limits.MaxSeries)))
	dst = binary.AppendUvarint(dst, uint64(clampLimit(b.Limits.MaxSeriesPerMetric)))
	if meta {
		dst = appendMetaLimits(dst, b.MetaLimits)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b.Series)))
	var prev []byte // the previous series' label set
	for i := range b.Series {
		s := &b.Series[i]
		if prefix {
			n := sharedPrefix(prev, s.Labels)
			dst = binary.AppendUvarint(dst, uint64(n))
			dst = binary.AppendUvarint(dst, uint64(len(s.Labels)-n))
			dst = append(dst, s.Labels[n:]...)
			prev = s.Labels
		} else {
			dst = binary.AppendUvarint(dst, uint64(len(s.Labels)))
			dst = append(dst, s.Labels...)
		}
		dst = binary.AppendUvarint(dst, uint64(len(s.Samples)))
		prev := int64(0)
		for _, smp := range s.Samples {
			dst = binary.AppendVarint(dst, smp.T-prev)
			prev = smp.T
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(smp.V))
		}
		if hists {
			dst = binary.AppendUvarint(dst, uint64(len(s.Histograms)))
			prev = 0
			for j := range s.Histograms {
				h := &s.Histograms[j]
				dst = binary.AppendVarint(dst, h.T-prev)
				prev = h.T
				dst = appendHistogram(dst, h)
			}
			if meta {
				dst = append(dst, flagsOf(s))
				dst = appendSeriesMeta(dst, s)
			} else {
				dst = append(dst, seriesFlags)
			}
		}
	}
	return dst
}

// sharedPrefix returns the length of the longest common prefix of a and
// b, comparing 8 bytes at a time.
func sharedPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// clampLimit is a limit as encoded: negative means none (0), and a limit
// above maxLimit is maxLimit.
func clampLimit(v int) int { return min(max(v, 0), maxLimit) }

// encodedSize is the length of Append's encoding of b, in
// VersionHistograms if hists, VersionExemplars if meta too.
func encodedSize(b *Batch, hists, meta bool) int {
	n := 1 + uvarintLen(uint64(len(b.Tenant))) + len(b.Tenant) + uvarintLen(uint64(len(b.Series))) +
		uvarintLen(uint64(clampLimit(b.Limits.MaxSeries))) + uvarintLen(uint64(clampLimit(b.Limits.MaxSeriesPerMetric)))
	if meta {
		n += metaLimitsSize(b.MetaLimits)
	}
	for i := range b.Series {
		s := &b.Series[i]
		n += uvarintLen(uint64(len(s.Labels))) + len(s.Labels) + uvarintLen(uint64(len(s.Samples)))
		prev := int64(0)
		for _, smp := range s.Samples {
			d := smp.T - prev
			n += uvarintLen(uint64(d<<1)^uint64(d>>63)) + 8 // zigzag, as binary.AppendVarint
			prev = smp.T
		}
		if hists {
			n += uvarintLen(uint64(len(s.Histograms))) + 1
			prev = 0
			for j := range s.Histograms {
				h := &s.Histograms[j]
				n += varintLen(h.T-prev) + histogramSize(h)
				prev = h.T
			}
			if meta {
				n += seriesMetaSize(s)
			}
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

// Compress appends to dst the VersionS2 form of enc, a batch as Append
// encodes it. A remote-write batch's label sets repeat names and values
// from series to series: a 2,000-series node_exporter batch shrinks 10x in
// ~30 ns per series, and the Raft log writes (and keeps) that much less.
func Compress(dst, enc []byte) []byte {
	return append(append(dst, VersionS2), s2.Encode(nil, enc)...)
}
