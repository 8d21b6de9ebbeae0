package engine

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/histogram"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/write"
)

// partitionStart returns the first time of partition p.
func partitionStart(p uint32, width int64) int64 {
	if p == 0 {
		return math.MinInt64
	}
	return partitionEnd(p-1, width)
}

// deleteRangeLocked is ApplyDeleteSeries for a range that is not every
// time, not a replay: it deletes, in pb, the samples in [d.Start, d.End]
// of the tenant's series matching d.Matchers, reading Pebble as of the
// entry before, and changes the head to match. It returns the number of
// series matched.
func (g *Group) deleteRangeLocked(t *tenant, pb *pebble.Batch, index uint64, d *write.DeleteSeries) (int, error) {
	prefix := appendPrefix(nil, g.id, t.ks.tenant, kindSeries)
	it, err := g.db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return 0, err
	}
	type victim struct {
		id   uint64
		lbls string
	}
	var vs []victim
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != prefixLen+8 {
			return 0, errors.Join(fmt.Errorf("series key %x: bad length", k), it.Close())
		}
		if lbls := string(it.Value()); matchesEncoded(lbls, d.Matchers) {
			vs = append(vs, victim{binary.BigEndian.Uint64(k[prefixLen:]), lbls})
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, fmt.Errorf("read series: %w", err)
	}
	for _, v := range vs {
		if err := g.deleteSeriesRangeLocked(t, pb, index, v.id, v.lbls, d.Start, d.End); err != nil {
			return 0, fmt.Errorf("delete [%d, %d] of series %d: %w", d.Start, d.End, v.id, err)
		}
	}
	t.forgetSTsLocked()
	return len(vs), nil
}

// deleteSeriesRangeLocked deletes the samples in [start, end] of series
// id (labels lbls): in Pebble through pb, and in the head.
func (g *Group) deleteSeriesRangeLocked(t *tenant, pb *pebble.Batch, index, id uint64, lbls string, start, end int64) error {
	ks, pw := t.ks, g.db.partitionMs
	h := xxhash.Sum64String(lbls)
	s := t.lookupStringLocked(h, lbls)
	// The open chunk's samples left, before anything changes.
	var ots []int64
	var ovs []float64
	openPart, openLeft, openTouched := uint32(0), 0, false
	var ht histTrim
	histOpen := s != nil && s.histOpen()
	if histOpen {
		var err error
		if ht, err = trimHist(s, start, end); err != nil {
			return fmt.Errorf("open histogram chunk: %w", err)
		}
		openPart, openLeft, openTouched = partitionOf(s.mint, pw), ht.kept, ht.touched
	} else if s != nil && s.head.NumSamples() > 0 {
		var err error
		if ots, ovs, err = chunkenc.Decode(nil, nil, s.head.Bytes()); err != nil {
			return fmt.Errorf("decode open chunk: %w", err)
		}
		n := len(ots)
		ots, ovs = outside(ots, ovs, start, end)
		openPart, openLeft, openTouched = partitionOf(s.mint, pw), len(ots), len(ots) < n
	}

	parts, err := g.seriesPartitions(ks, id)
	if err != nil {
		return err
	}
	left := openLeft
	// newest: at or after the newest sample left, in its partition (the
	// head index's ghosts and inViewLocked read the partition).
	newest := int64(minTime)
	switch {
	case histOpen && openLeft > 0:
		newest = ht.last
	case openLeft > 0:
		newest = ots[openLeft-1]
	}
	var ts []int64
	var vs []float64
	var val []byte
	for _, p := range parts {
		ps, pe := partitionStart(p, pw), partitionEnd(p, pw)
		if pe <= start || ps > end {
			left++ // untouched: a partition in the postings holds samples
			newest = max(newest, pe-1)
			continue
		}
		partLeft := 0
		if p == openPart {
			partLeft = openLeft
		}
		cprefix := ks.chunkSeries(nil, p, id)
		it, err := g.db.pdb.NewIter(&pebble.IterOptions{LowerBound: cprefix, UpperBound: successor(cprefix)})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			k, v := it.Key(), it.Value()
			if len(k) != len(cprefix)+8 {
				return errors.Join(fmt.Errorf("chunk key %x: bad length", k), it.Close())
			}
			span, n := binary.Uvarint(v)
			if n <= 0 {
				return errors.Join(fmt.Errorf("chunk %x: bad header", k), it.Close())
			}
			mint := readTime(k[len(cprefix):])
			maxt := mint + int64(span)
			switch {
			case maxt < start || mint > end: // outside the range: kept
				partLeft++
				newest = max(newest, maxt)
				continue
			case mint >= start && maxt <= end: // inside: deleted
				if err := pb.Delete(k, nil); err != nil {
					return errors.Join(err, it.Close())
				}
				continue
			}
			// Straddles start or end: rewritten with the samples left.
			if isHistChunk(v[n:]) {
				hb, first, last, _, ok, err := histOutside(v[n:], start, end)
				if err != nil {
					return errors.Join(fmt.Errorf("rewrite chunk %x: %w", k, err), it.Close())
				}
				if !ok { // cannot be re-appended: kept whole, on every replica
					partLeft++
					newest = max(newest, maxt)
					continue
				}
				if err := pb.Delete(k, nil); err != nil {
					return errors.Join(err, it.Close())
				}
				if hb == nil {
					continue
				}
				partLeft++
				newest = max(newest, last)
				val = append(binary.AppendUvarint(val[:0], uint64(last-first)), hb...)
				if err := pb.Set(ks.chunkKey(nil, p, id, first), val, nil); err != nil {
					return errors.Join(err, it.Close())
				}
				continue
			}
			if ts, vs, err = chunkenc.Decode(ts[:0], vs[:0], v[n:]); err != nil {
				return errors.Join(fmt.Errorf("decode chunk %x: %w", k, err), it.Close())
			}
			ts, vs = outside(ts, vs, start, end)
			if err := pb.Delete(k, nil); err != nil {
				return errors.Join(err, it.Close())
			}
			if len(ts) == 0 {
				continue
			}
			partLeft++
			newest = max(newest, ts[len(ts)-1])
			val = binary.AppendUvarint(val[:0], uint64(ts[len(ts)-1]-ts[0]))
			if val, err = chunkenc.Encode(val, g.db.opts.SealEncoding, ts, vs); err != nil {
				return errors.Join(fmt.Errorf("encode chunk %x: %w", k, err), it.Close())
			}
			// Delete, then Set: a chunk that keeps its first sample keeps
			// its key, and in a batch the later write wins.
			if err := pb.Set(ks.chunkKey(nil, p, id, ts[0]), val, nil); err != nil {
				return errors.Join(err, it.Close())
			}
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
		if partLeft == 0 {
			if err := g.deleteSeriesPart(pb, ks, p, id, lbls); err != nil {
				return err
			}
		} else if t.mu.hasST {
			if err := g.deleteSTRangeLocked(t, pb, id, p, start, end); err != nil {
				return err
			}
		}
		left += partLeft
	}

	if left == 0 {
		// Nothing left: the series goes whole, identity included.
		if err := g.deleteSeriesKeys(t, pb, id, lbls); err != nil {
			return err
		}
		if s != nil {
			t.unlinkLocked(h, s)
			t.forgetLocked(s)
		} else {
			t.mu.index.remove(id, lbls) // a ghost, if it is one
		}
		return nil
	}
	if s == nil {
		t.mu.index.lower(id, newest) // an evicted series lost its newest samples
		return nil
	}
	if openTouched && openLeft == 0 {
		// The open chunk is left empty: evicted, with its newest sample
		// recorded as eviction records it.
		l, err := t.lastLocked(s)
		if err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint64(nil, uint64(l.t))
		if l.isHist() {
			if v, err = singleHistogramChunk(v, l); err != nil {
				return err
			}
		} else {
			v = binary.BigEndian.AppendUint64(v, math.Float64bits(l.v))
		}
		if err := pb.Set(ks.evictedKey(nil, id, index), v, nil); err != nil {
			return err
		}
		if err := pb.Delete(ks.openKey(nil, id), nil); err != nil {
			return err
		}
		// A restart would not find it in the head, though it has samples
		// up to newest: the head index of a restarted replica covers only
		// after them ('m' 'g', loadTenant).
		if newest > t.mu.evictedNewest {
			t.mu.evictedNewest = newest
			if err := pb.Set(ks.metaKey(nil, metaEvictedNewest), appendTime(nil, newest), nil); err != nil {
				return err
			}
		}
	}
	if err := t.trimHeadLocked(h, s, ots, ovs, ht, openTouched, end); err != nil {
		return err
	}
	if openTouched && openLeft == 0 {
		t.mu.index.evict(s, newest) // a ghost, with the samples left
	}
	return nil
}

// trimHeadLocked changes head series s (hashed h) after a range deletion
// ending at end that left it samples somewhere: its merge run is
// abandoned if the range may reach the run's chunks; if touched, its
// open chunk becomes ts, vs, and a chunk left empty is evicted from the
// head. It reads only the head, so the first run of a deletion and its
// replay change the head alike.
func (t *tenant) trimHeadLocked(h uint64, s *memSeries, ts []int64, vs []float64, ht histTrim, touched bool, end int64) error {
	// The run's chunks lie in [s.runMint, s.mint); the range may have
	// rewritten or deleted them, and a later merge reads them from
	// s.runMint. They stay as they are, unmerged.
	if s.run > 0 && end >= s.runMint {
		s.run = 0
		t.markDirtyLocked(s)
	}
	if !touched {
		return nil
	}
	if s.histOpen() && ht.kept > 0 {
		if err := s.hist.load(ht.chunk); err != nil {
			return fmt.Errorf("trim open histogram chunk of series %d: %w", s.id, err)
		}
		s.mint = ht.first
		t.markDirtyLocked(s)
		return nil
	}
	if len(ts) == 0 && ht.kept == 0 {
		t.unlinkLocked(h, s)
		t.forgetLocked(s)
		t.mu.evictedOpen = append(t.mu.evictedOpen, s.id)
		t.mu.allInHead = false
		return nil
	}
	s.head.Reset(nil)
	for i := range ts {
		if err := s.head.Append(ts[i], vs[i]); err != nil {
			panic(fmt.Sprintf("BUG: series %d: re-append of its own samples: %v", s.id, err))
		}
	}
	s.mint = ts[0]
	t.markDirtyLocked(s)
	return nil
}

// histTrim is what a range deletion leaves of a histogram open chunk:
// kept samples, the chunk holding them (stored form) and their first and
// last times; touched if it removed any. A chunk Prometheus's appender
// will not rebuild is kept whole (untouched), on every replica alike.
type histTrim struct {
	chunk       []byte
	first, last int64
	kept        int
	touched     bool
}

// trimHist returns what [start, end] leaves of the histogram open chunk
// of s. It reads only the head.
func trimHist(s *memSeries, start, end int64) (histTrim, error) {
	n := s.hist.numSamples()
	hb, first, last, kept, ok, err := histOutside(s.hist.appendBytes(nil), start, end)
	if err != nil {
		return histTrim{}, err
	}
	if !ok || kept == n {
		return histTrim{kept: n, last: s.hist.maxt}, nil
	}
	return histTrim{chunk: hb, first: first, last: last, kept: kept, touched: true}, nil
}

// replayRangeLocked is ApplyDeleteSeries for a range that is not every
// time, replayed: the store holds the entry, and the head is the
// checkpoint at the entry before. A head series matching d whose 's' key
// is gone was deleted whole by the entry; the others have their open
// chunks trimmed.
func (g *Group) replayRangeLocked(t *tenant, d *write.DeleteSeries) (int, error) {
	t.forgetSTsLocked()
	type match struct {
		h uint64
		s *memSeries
	}
	var found []match
	for h, head := range t.mu.byHash {
		for s := head; s != nil; s = s.next {
			if matchesEncoded(s.lbls, d.Matchers) {
				found = append(found, match{h, s})
			}
		}
	}
	// In id order, as the first run (a scan of the 's' keys): the evicted
	// list the next checkpoint reads is then the same.
	slices.SortFunc(found, func(a, b match) int { return cmp.Compare(a.s.id, b.s.id) })
	for _, m := range found {
		h, s := m.h, m.s
		_, closer, err := g.db.pdb.Get(t.ks.seriesKey(nil, s.id))
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			t.unlinkLocked(h, s)
			t.forgetLocked(s)
			continue
		case err != nil:
			return 0, fmt.Errorf("read series %d: %w", s.id, err)
		}
		closer.Close()
		var ts []int64
		var vs []float64
		var ht histTrim
		touched := false
		if s.histOpen() {
			if ht, err = trimHist(s, d.Start, d.End); err != nil {
				return 0, fmt.Errorf("open histogram chunk of series %d: %w", s.id, err)
			}
			touched = ht.touched
		} else if s.head.NumSamples() > 0 {
			if ts, vs, err = chunkenc.Decode(nil, nil, s.head.Bytes()); err != nil {
				return 0, fmt.Errorf("decode open chunk of series %d: %w", s.id, err)
			}
			n := len(ts)
			ts, vs = outside(ts, vs, d.Start, d.End)
			touched = len(ts) < n
		}
		if err := t.trimHeadLocked(h, s, ts, vs, ht, touched, d.End); err != nil {
			return 0, err
		}
	}
	return len(found), nil
}

// unlinkLocked removes s, hashed h, from byHash.
func (t *tenant) unlinkLocked(h uint64, s *memSeries) {
	var prev *memSeries
	for x := t.mu.byHash[h]; x != nil; prev, x = x, x.next {
		if x != s {
			continue
		}
		switch {
		case prev != nil:
			prev.next = x.next
		case x.next != nil:
			t.mu.byHash[h] = x.next
		default:
			delete(t.mu.byHash, h)
		}
		return
	}
}

// outside returns the samples of ts, vs outside [start, end], in place.
func outside(ts []int64, vs []float64, start, end int64) ([]int64, []float64) {
	n := 0
	for i, t := range ts {
		if t < start || t > end {
			ts[n], vs[n] = t, vs[i]
			n++
		}
	}
	return ts[:n], vs[:n]
}

// histOutside returns the stored form of a histogram chunk (data, with its
// encoding byte) holding its samples outside [start, end], and the times
// of the first and last of them; nil if none is left. The samples are
// appended again in order, as histHead.load does, so the bytes depend
// only on them: the same on every replica. The result has the encoding
// of data: Prometheus's stays Prometheus's (the open chunk, sealed chunks
// of earlier stores), a sealed chunk of chunkenc's is sealed again. ok is
// false when Prometheus's appender refuses one of them in a chunk of its
// encoding (the chunk is then kept whole; a histpack chunk is rewritten
// by histpackOutside); err is a chunk that does not decode.
func histOutside(data []byte, start, end int64) (out []byte, first, last int64, kept int, ok bool, err error) {
	var hi histIters
	it, err := hi.iterator(data)
	if err != nil {
		return nil, 0, 0, 0, false, err
	}
	var hh histHead
	hh.start(data[0] == encPromFloatHistogram || data[0] == encFloatHistPack)
	n := 0
	for vt := it.Next(); vt != promchunk.ValNone; vt = it.Next() {
		var nc promchunk.Chunk
		var t int64
		var aerr error
		switch {
		case vt == promchunk.ValHistogram && !hh.float:
			var h *histogram.Histogram
			t, h = it.AtHistogram(&histogram.Histogram{})
			if t >= start && t <= end {
				continue
			}
			nc, _, hh.app, aerr = hh.app.AppendHistogram(nil, 0, t, h, true)
		case vt == promchunk.ValFloatHistogram && hh.float:
			var fh *histogram.FloatHistogram
			t, fh = it.AtFloatHistogram(&histogram.FloatHistogram{})
			if t >= start && t <= end {
				continue
			}
			nc, _, hh.app, aerr = hh.app.AppendFloatHistogram(nil, 0, t, fh, true)
		default:
			return nil, 0, 0, 0, false, fmt.Errorf("sample of type %v in a histogram chunk of encoding %#x", vt, data[0])
		}
		if aerr != nil || nc != nil {
			if !isPromHistChunk(data) { // out-of-order histograms went into it
				out, first, last, kept, err = histpackOutside(data, start, end)
				return out, first, last, kept, err == nil, err
			}
			return nil, 0, 0, 0, false, nil
		}
		if n == 0 {
			first = t
		}
		last = t
		n++
	}
	if err := it.Err(); err != nil {
		return nil, 0, 0, 0, false, err
	}
	if n == 0 {
		return nil, 0, 0, 0, true, nil
	}
	if isPromHistChunk(data) {
		return hh.appendBytes(nil), first, last, n, true, nil
	}
	// A sealed chunk of ours: sealed again, as its samples would have
	// been had they been appended without the deleted ones.
	var hs histSealer
	if out, err = sealHist(nil, &hs, hh.c); err != nil {
		return nil, 0, 0, 0, false, err
	}
	return out, first, last, n, true, nil
}
