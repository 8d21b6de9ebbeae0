package write

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// VersionST is the first byte of a batch that carries start timestamps
// (Series.StartTimestamps): the start timestamps of every series, then
// the batch itself in the version Append would write without them
// (Version, VersionHistograms or VersionExemplars). doc.go, "Batch
// encoding (version 8)". Append writes it only for a batch in which some
// sample has a start timestamp, so a batch without any is byte-identical
// to what the previous release writes and decodes.
//
// An envelope, as VersionWindow: the start timestamps are a column beside
// the samples, and the batch inside keeps evolving on its own.
const VersionST byte = 8

// HasStartTimestamps reports whether a series of b has start
// timestamps.
func (b *Batch) HasStartTimestamps() bool {
	for i := range b.Series {
		if len(b.Series[i].StartTimestamps()) > 0 {
			return true
		}
	}
	return false
}

// appendSTs appends the VersionST header of b: the version, the series
// count and every series' start timestamps. b must have some.
func appendSTs(dst []byte, b *Batch) []byte {
	dst = append(dst, VersionST)
	dst = binary.AppendUvarint(dst, uint64(len(b.Series)))
	for i := range b.Series {
		sts := b.Series[i].StartTimestamps()
		dst = binary.AppendUvarint(dst, uint64(len(sts)))
		prev := int64(0)
		for _, st := range sts {
			dst = binary.AppendVarint(dst, st-prev)
			prev = st
		}
	}
	return dst
}

// stsSize is the length of appendSTs' output.
func stsSize(b *Batch) int {
	n := 1 + uvarintLen(uint64(len(b.Series)))
	for i := range b.Series {
		sts := b.Series[i].StartTimestamps()
		n += uvarintLen(uint64(len(sts)))
		prev := int64(0)
		for _, st := range sts {
			n += varintLen(st - prev)
			prev = st
		}
	}
	return n
}

// readSTs reads a VersionST header at r.off (the version byte), if there
// is one: the start timestamps of every series, all in d.sts, and each
// series' count in d.stn. r.off is then at the inner batch's version
// byte. ok reports whether there was a header.
func (d *Decoder) readSTs(r *reader) (ok bool, err error) {
	if r.off >= len(r.src) || r.src[r.off] != VersionST {
		return false, nil
	}
	r.off++
	nser, err := r.count("start timestamp series count", 1)
	if err != nil {
		return false, err
	}
	d.sts, d.stn = d.sts[:0], d.stn[:0]
	if cap(d.stn) < nser {
		d.stn = make([]int, 0, nser)
	}
	for range nser {
		n, err := r.count("start timestamp count", 1)
		if err != nil {
			return false, err
		}
		d.sts = slices.Grow(d.sts, n)
		prev := int64(0)
		for range n {
			dv, m := binary.Varint(r.src[r.off:])
			if m <= 0 {
				return false, r.fail("bad start timestamp delta")
			}
			r.off += m
			prev += dv
			d.sts = append(d.sts, prev)
		}
		d.stn = append(d.stn, n)
	}
	if r.off >= len(r.src) {
		return false, r.fail("no batch after the start timestamps")
	}
	if v := r.src[r.off]; v != Version && v != VersionHistograms && v != VersionExemplars {
		return false, r.fail("version %d batch after start timestamps", v)
	}
	return true, nil
}

// linkSTs gives the decoded batch's series their start timestamps, read
// by readSTs; off is the offset of the VersionST header, for errors.
func (d *Decoder) linkSTs(b *Batch, off int) error {
	if len(d.stn) != len(b.Series) {
		return &CorruptError{Offset: off, Reason: fmt.Sprintf("start timestamps of %d series for a batch of %d", len(d.stn), len(b.Series))}
	}
	// SeriesMetas for the series with start timestamps and no exemplars
	// nor metadata, allocated at once: Series.Meta points into them.
	nmeta := 0
	for i, n := range d.stn {
		if n > 0 && b.Series[i].Meta == nil {
			nmeta++
		}
	}
	clear(d.stMetas)
	if cap(d.stMetas) < nmeta {
		d.stMetas = make([]SeriesMeta, 0, nmeta)
	}
	d.stMetas = d.stMetas[:0]
	start := 0
	for i, n := range d.stn {
		s := &b.Series[i]
		if n == 0 {
			continue
		}
		if n != len(s.Samples)+len(s.Histograms) {
			return &CorruptError{Offset: off, Reason: fmt.Sprintf("series %d has %d start timestamps for %d samples", i, n, len(s.Samples)+len(s.Histograms))}
		}
		if s.Meta == nil {
			d.stMetas = append(d.stMetas, SeriesMeta{})
			s.Meta = &d.stMetas[len(d.stMetas)-1]
		}
		s.Meta.StartTimestamps = d.sts[start : start+n : start+n]
		start += n
	}
	return nil
}
