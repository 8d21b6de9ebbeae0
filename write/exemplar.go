package write

import (
	"encoding/binary"
	"fmt"
	"math"
)

// VersionExemplars is the first byte of a batch with exemplars or metric
// metadata: VersionHistograms' layout with the tenant's exemplar and
// metadata limits after the series limits, and the series flags byte
// announcing each series' exemplars (flagExemplars) and metadata
// (flagMetadata), each followed by its section (doc.go, "Batch encoding
// (version 7)"). Append writes it only for a batch that holds either, so
// other batches keep the versions a replica of an earlier release
// decodes. Version 6 is left to the out-of-order window.
const VersionExemplars byte = 7

// Series flags of VersionExemplars: the bits of the byte that ends a
// series. A decoder refuses any other bit.
const (
	flagExemplars byte = 1 << 0
	flagMetadata  byte = 1 << 1
	knownFlags         = flagExemplars | flagMetadata
)

// SeriesMeta is what a batch series carries beside its samples.
type SeriesMeta struct {
	// Exemplars of the series, in the order the sender sent them.
	Exemplars []Exemplar
	// Metadata of the series' metric family, or nil. A batch series with
	// no samples, histograms nor exemplars may carry metadata alone (its
	// labels then only place it on a group).
	Metadata *Metadata
	// StartTimestamps are the start (created) timestamps of the series'
	// samples, as remote write 2.0 sends them: nil for none, as most
	// series, or one per sample, Samples' then Histograms', 0 where the
	// sender gave none. A batch with any is encoded as VersionST. Here,
	// behind Series.Meta, rather than in Series: 24 bytes more per
	// Series cost a push of tiny series 14% more memory
	// (TestWriteMemory), for a field most series leave empty.
	StartTimestamps []int64
}

// StartTimestamps returns the series' start timestamps (nil for none).
func (s *Series) StartTimestamps() []int64 {
	if s.Meta == nil {
		return nil
	}
	return s.Meta.StartTimestamps
}

// SetStartTimestamps sets the series' start timestamps: one per sample,
// its float samples' first, 0 where the sender gave none; nil for none.
// It allocates the series' SeriesMeta if it has none. The slice is
// retained.
func (s *Series) SetStartTimestamps(sts []int64) {
	if sts != nil && len(sts) != len(s.Samples)+len(s.Histograms) {
		panic(fmt.Sprintf("BUG: %d start timestamps for %d samples", len(sts), len(s.Samples)+len(s.Histograms)))
	}
	if s.Meta == nil {
		if sts == nil {
			return
		}
		s.Meta = &SeriesMeta{}
	}
	s.Meta.StartTimestamps = sts
}

// Exemplars returns the series' exemplars (nil for none).
func (s *Series) Exemplars() []Exemplar {
	if s.Meta == nil {
		return nil
	}
	return s.Meta.Exemplars
}

// Metadata returns the series' metadata, or nil.
func (s *Series) Metadata() *Metadata {
	if s.Meta == nil {
		return nil
	}
	return s.Meta.Metadata
}

// Exemplar is one exemplar of a series: a sample of its value at T with
// labels of its own (typically a trace ID), as Prometheus's
// exemplar.Exemplar.
type Exemplar struct {
	T int64
	V float64
	// Labels is the exemplar's label set in its encoding (AppendLabel),
	// possibly empty. In a decoded batch it aliases the decoded bytes and
	// is not checked (the server validated it before proposing it).
	Labels []byte
}

// MetricType is the type of a metric family, with the values of
// remote write's MetricMetadata.MetricType (prompb): 0 unknown, 1 counter,
// 2 gauge, 3 histogram, 4 gaugehistogram, 5 summary, 6 info, 7 stateset.
type MetricType uint8

// MaxMetricType is the largest MetricType a batch may carry.
const MaxMetricType MetricType = 7

// Metadata is the metadata of one metric family, as remote write carries
// it: its type, unit and help text.
type Metadata struct {
	// Family is the metric family name (the metric name, without the
	// _bucket, _sum, _count suffixes of a histogram's or summary's series).
	Family string
	Type   MetricType
	Unit   string
	Help   string
}

// MetaLimits bound what a tenant keeps of exemplars and metadata in one
// group: its global limits (max_global_exemplars_per_user,
// max_global_metadata_per_user, max_global_metadata_per_metric) scaled
// to the group's share of the ring by the proposer. Every replica
// applies an entry with the limits it carries. Zero: no exemplars are
// kept (MaxExemplars), no limit (the others).
type MetaLimits struct {
	// MaxExemplars is the size of the tenant's exemplar buffer: the
	// oldest exemplar goes when a new one arrives in a full buffer.
	MaxExemplars int
	// MaxMetadata: metric families with metadata; a new family past it is
	// refused.
	MaxMetadata int
	// MaxMetadataPerMetric: different metadata of one family.
	MaxMetadataPerMetric int
}

// Minimum encoded sizes, to bound counts read from the input: an exemplar
// is a timestamp delta, a value and an empty label set.
const minExemplarBytes = 1 + 8 + 1

// HasMeta reports whether any series of b has exemplars or metadata.
func (b *Batch) HasMeta() bool {
	for i := range b.Series {
		if len(b.Series[i].Exemplars()) > 0 || b.Series[i].Metadata() != nil {
			return true
		}
	}
	return false
}

// NumExemplars returns the number of exemplars in the batch.
func (b *Batch) NumExemplars() int {
	n := 0
	for i := range b.Series {
		n += len(b.Series[i].Exemplars())
	}
	return n
}

// flagsOf returns the series flags byte of s.
func flagsOf(s *Series) byte {
	var f byte
	if len(s.Exemplars()) > 0 {
		f |= flagExemplars
	}
	if s.Metadata() != nil {
		f |= flagMetadata
	}
	return f
}

// appendMetaLimits appends the version 7 limits of b.
func appendMetaLimits(dst []byte, l MetaLimits) []byte {
	dst = binary.AppendUvarint(dst, uint64(clampLimit(l.MaxExemplars)))
	dst = binary.AppendUvarint(dst, uint64(clampLimit(l.MaxMetadata)))
	return binary.AppendUvarint(dst, uint64(clampLimit(l.MaxMetadataPerMetric)))
}

func metaLimitsSize(l MetaLimits) int {
	return uvarintLen(uint64(clampLimit(l.MaxExemplars))) + uvarintLen(uint64(clampLimit(l.MaxMetadata))) +
		uvarintLen(uint64(clampLimit(l.MaxMetadataPerMetric)))
}

// appendSeriesMeta appends the sections flagsOf(s) announces: the
// exemplars, then the metadata.
func appendSeriesMeta(dst []byte, s *Series) []byte {
	if exs := s.Exemplars(); len(exs) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(exs)))
		prev := int64(0)
		for _, e := range exs {
			dst = binary.AppendVarint(dst, e.T-prev)
			prev = e.T
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.V))
			dst = binary.AppendUvarint(dst, uint64(len(e.Labels)))
			dst = append(dst, e.Labels...)
		}
	}
	if m := s.Metadata(); m != nil {
		dst = append(dst, byte(m.Type))
		dst = appendString(dst, m.Family)
		dst = appendString(dst, m.Unit)
		dst = appendString(dst, m.Help)
	}
	return dst
}

func seriesMetaSize(s *Series) int {
	n := 0
	if exs := s.Exemplars(); len(exs) > 0 {
		n += uvarintLen(uint64(len(exs)))
		prev := int64(0)
		for _, e := range exs {
			n += varintLen(e.T-prev) + 8 + uvarintLen(uint64(len(e.Labels))) + len(e.Labels)
			prev = e.T
		}
	}
	if m := s.Metadata(); m != nil {
		n += 1 + uvarintLen(uint64(len(m.Family))) + len(m.Family) + uvarintLen(uint64(len(m.Unit))) + len(m.Unit) +
			uvarintLen(uint64(len(m.Help))) + len(m.Help)
	}
	return n
}

// decodeSeriesMeta reads the sections flags announces, appending the
// exemplars to exs (their labels alias r.src) and returning the metadata
// (nil if none).
func decodeSeriesMeta(r *reader, flags byte, exs []Exemplar) ([]Exemplar, *Metadata, error) {
	if flags&flagExemplars != 0 {
		n, err := r.count("exemplar count", minExemplarBytes)
		if err != nil {
			return exs, nil, err
		}
		if n == 0 {
			return exs, nil, r.fail("exemplars flagged, none follow")
		}
		prev := int64(0)
		for range n {
			dt, err := r.varint("exemplar timestamp delta")
			if err != nil {
				return exs, nil, err
			}
			prev += dt
			v, err := r.float("exemplar value")
			if err != nil {
				return exs, nil, err
			}
			nl, err := r.count("exemplar label set length", 1)
			if err != nil {
				return exs, nil, err
			}
			var l []byte
			if nl > 0 {
				l = r.src[r.off : r.off+nl : r.off+nl]
			}
			r.off += nl
			exs = append(exs, Exemplar{T: prev, V: v, Labels: l})
		}
	}
	if flags&flagMetadata == 0 {
		return exs, nil, nil
	}
	if r.off >= len(r.src) {
		return exs, nil, r.fail("truncated metadata")
	}
	typ := MetricType(r.src[r.off])
	if typ > MaxMetricType {
		return exs, nil, r.fail("unknown metric type %d", typ)
	}
	r.off++
	m := &Metadata{Type: typ}
	for _, f := range []*string{&m.Family, &m.Unit, &m.Help} {
		n, err := r.count("metadata string length", 1)
		if err != nil {
			return exs, nil, err
		}
		*f = string(r.src[r.off : r.off+n])
		r.off += n
	}
	if m.Family == "" {
		return exs, nil, r.fail("metadata without a metric family name")
	}
	return exs, m, nil
}
