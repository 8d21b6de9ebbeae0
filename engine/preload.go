package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

// preloadBytes bounds the sealed chunk bytes one select reads ahead for
// its series (preload). A day piece of the 30-day panel over 1,000
// series reads ~1.5 MB; 8 MiB keeps four concurrent pieces of ten times
// that many series within 32 MiB of heap, and a larger select reads the
// rest of its chunks as before, series by series.
const preloadBytes = 8 << 20

// preloaded is what a select read ahead of a series' sealed chunks in its
// range: the chunks of partitions [s.p0, rest), in time order. The
// iterator reads partitions [rest, s.p1] from Pebble itself (none when
// rest > s.p1).
//
// INVARIANT: chunks' data is never written after the select: iterators
// of the series (PromQL may make more than one) read it in place.
type preloaded struct {
	chunks []storedChunk
	rest   uint32
}

// preload reads the sealed chunks of the series ss (which share the
// view's partitions, mint and maxt) for the select, so that deciding
// whether a series has a sample in the range and iterating it later read
// Pebble once, not twice (series.hasSamples, then seriesIterator.load's
// own iterator and seeks). It reads partition by partition and, within
// one, in series id order, so the view's iterator only moves forward
// (Pebble then seeks by stepping when the next key is near). Series read
// from their open chunk alone (headOnly) are skipped. Past preloadBytes
// it stops at the start of the partition it was reading: the series keep
// what they have of the partitions before it, and read the rest
// themselves. Every chunk is counted against the query's budget before it
// is held, as the iterator counts it.
//
// Rejected: deciding presence from the iterator when it is first used
// (lazily), dropping series then: PromQL expands the whole series set
// before it iterates any series, so presence is needed at Select, and a
// storage.SeriesSet that returns series with no samples would change the
// series API's answers.
func (q *querier) preload(v *view, ss []*series) error {
	order := make([]*series, 0, len(ss))
	for _, s := range ss {
		if !s.headOnly {
			order = append(order, s)
		}
	}
	if len(order) == 0 {
		return nil
	}
	slices.SortFunc(order, func(a, b *series) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	r, err := v.reader()
	if err != nil {
		return err
	}
	pres := make([]preloaded, len(order))
	for i, s := range order {
		pres[i].rest = v.p0
		s.pre = &pres[i]
	}
	limit := q.preloadLimit
	if limit == 0 {
		limit = preloadBytes
	}
	var arena []byte // the current block of chunk data
	total := 0
	first := order[0]
	mint, maxt := first.mint, first.maxt
	for p := v.p0; p <= v.p1; p++ {
		// Chunks of partition p, read into lens so that a stop in p
		// takes them back.
		lens := make([]int, 0, len(order))
		for _, s := range order {
			lens = append(lens, len(s.pre.chunks))
		}
		var next uint64 // the partition of the key after the last series' chunks
		over := false
		for _, s := range order {
			r.key = s.ks.chunkSeries(r.key[:0], p, s.id)
			n := len(r.key)
			for ok := r.it.SeekGE(r.key); ok && bytes.HasPrefix(r.it.Key(), r.key); ok = r.it.Next() {
				k := r.it.Key()
				if len(k) != n+8 {
					return fmt.Errorf("chunk key %x: bad length", k)
				}
				cmint := readTime(k[n:])
				if cmint > maxt {
					break
				}
				val, err := r.it.ValueAndErr()
				if err != nil {
					return err
				}
				d, m := binary.Uvarint(val)
				if m <= 0 {
					return fmt.Errorf("chunk %x: bad maxt", k)
				}
				cmaxt := cmint + int64(d)
				if cmaxt < mint {
					continue
				}
				data := val[m:]
				if total+len(data) > limit {
					over = true
					break
				}
				if s.budget != nil {
					if err := s.budget.AddChunkBytes(len(data)); err != nil {
						return budgetError{err}
					}
				}
				total += len(data)
				if cap(arena)-len(arena) < len(data) {
					arena = make([]byte, 0, max(64<<10, len(data)))
				}
				off := len(arena)
				arena = append(arena, data...)
				s.pre.chunks = append(s.pre.chunks, storedChunk{mint: cmint, maxt: cmaxt, pre: arena[off:len(arena):len(arena)]})
			}
			if err := r.it.Error(); err != nil {
				return err
			}
			if over {
				break
			}
			// Past the tenant's chunk keys: none in later partitions.
			next = uint64(v.p1) + 1
			if k := r.it.Key(); r.it.Valid() && len(k) >= prefixLen+4 && k[prefixLen-1] == kindChunk {
				next = uint64(binary.BigEndian.Uint32(k[prefixLen:]))
			}
		}
		if over {
			for i, s := range order {
				s.pre.chunks = s.pre.chunks[:lens[i]]
			}
			return nil // each series' rest is p
		}
		for _, s := range order {
			s.pre.rest = p + 1
		}
		if p >= v.p1 { // p++ must not wrap at MaxUint32
			break
		}
		// Jump over partitions in which none of the series has chunks:
		// the last seek, of the largest id, found the next chunk key in
		// partition next.
		if next > uint64(v.p1) {
			for _, s := range order {
				s.pre.rest = v.p1 + 1 // never wraps: p < v.p1 here
			}
			return nil
		}
		if next > uint64(p)+1 {
			p = uint32(next) - 1
			for _, s := range order {
				s.pre.rest = p + 1
			}
		}
	}
	return nil
}
