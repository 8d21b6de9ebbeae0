package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
)

// evictEpoch returns the eviction epoch of sample time maxT: eviction scans
// run when it changes, every idleMs/4 of sample time.
func evictEpoch(maxT, idleMs int64) int64 {
	if maxT == minTime {
		return math.MinInt64
	}
	iv := max(idleMs/4, 1)
	e := maxT / iv
	if maxT%iv != 0 && maxT < 0 {
		e--
	}
	return e
}

// evictLocked runs after a batch. When the tenant's sample time enters a
// new eviction epoch it scans the head once and evicts every series that
// is idle: its newest sample is older than maxT - EvictIdle and it
// accepted no sample since the previous scan (memSeries.appended, which
// the scan clears). Its open chunk is sealed to Pebble, its newest sample
// written to an 'e' record keyed by the entry index, and it leaves
// memory. The next Checkpoint deletes its 'o' key.
//
// Why not by age alone: a series written all the time but behind the
// tenant's newest sample (a sender catching up after an outage while
// another of the tenant is current, a loader's shards drifting apart)
// was evicted at every scan, its open chunk sealed each time: 97 chunks
// a day instead of 2 at 90 minutes behind, found by the 30-day benchmark
// (docs/design.md, "Eviction of lagging series"). A dead series still
// leaves at the first scan after it falls behind, or one scan later if
// it was written since the previous one.
//
// The scan is O(series in the head) once per epoch (15 minutes of sample
// time by default), not per batch. It ranges over a map, which is fine for
// determinism: each series' writes touch only its own keys, so the order
// does not change the resulting Pebble state.
func (a *appender) evictLocked() error {
	t, opts := a.t, &a.g.db.opts
	idleMs := opts.EvictIdle.Milliseconds()
	e := evictEpoch(t.mu.maxT, idleMs)
	if e == t.mu.evictEpoch {
		return nil
	}
	t.mu.evictEpoch = e
	if t.mu.maxT < math.MinInt64+idleMs {
		return nil
	}
	horizon := t.mu.maxT - idleMs
	for h, head := range t.mu.byHash {
		var keep *memSeries // rebuilt chain, reversed: order in a chain does not matter
		for s := head; s != nil; {
			next := s.next
			evict := false
			if s.appended {
				// The flag is in the 'o' key: a restarted replica must
				// find it cleared too.
				s.appended = false
				t.markDirtyLocked(s)
			} else if t.hasLastLocked(s) {
				evict = t.lastTimeLocked(s) < horizon
			}
			if evict {
				lt := t.lastTimeLocked(s)
				if err := a.evictSeriesLocked(s); err != nil {
					return err
				}
				t.mu.index.evict(s, lt)
			} else {
				s.next = keep
				keep = s
			}
			s = next
		}
		if keep == nil {
			delete(t.mu.byHash, h)
		} else {
			t.mu.byHash[h] = keep
		}
	}
	t.mu.index.expire(t.mu.maxT - keepGhosts(opts).Milliseconds())
	return nil
}

// evictSeriesLocked seals s, records its newest sample and marks it
// evicted; the caller unlinks it.
func (a *appender) evictSeriesLocked(s *memSeries) error {
	t := a.t
	// A series with an empty open chunk was revived from an 'e' record
	// and accepted nothing since: that record is still right, and a new
	// one would make the bytes depend on whether the replica restarted in
	// between (a restart forgets revived series).
	if s.numSamples() > 0 {
		t.countLocked(s, -1)
		l, err := t.lastLocked(s)
		if err != nil {
			return fmt.Errorf("evict series %d: %w", s.id, err)
		}
		if err := a.sealOpenLocked(s, true); err != nil {
			return fmt.Errorf("evict series %d: %w", s.id, err)
		}
		v := binary.BigEndian.AppendUint64(nil, uint64(l.t))
		if l.isHist() {
			// t:8, then a chunk of the one histogram (histchunk.go):
			// longer than a float record's 16 bytes.
			if v, err = singleHistogramChunk(v, l); err != nil {
				return fmt.Errorf("evict series %d: %w", s.id, err)
			}
		} else {
			v = binary.BigEndian.AppendUint64(v, math.Float64bits(l.v))
		}
		if err := a.pb.Set(t.ks.evictedKey(a.scratch.key[:0], s.id, a.index), v, nil); err != nil {
			return err
		}
	}
	delete(t.mu.lastOfEmpty, s)
	s.evicted = true
	t.mu.evictedOpen = append(t.mu.evictedOpen, s.id)
	t.mu.numSeries--
	t.mu.allInHead = false
	return nil
}

// reviveLocked restores the newest sample of a series found in Pebble from
// its newest eviction record written before the entry being applied.
// Records are keyed by entry index, so a replay after a restart sees the
// record that was current at that point of the log even if the series was
// evicted again later (Checkpoint deletes records the recovered state can
// no longer need).
func (a *appender) reviveLocked(s *memSeries) error {
	t := a.t
	lo := t.ks.evictedKey(nil, s.id, 0)
	it, err := a.g.db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: t.ks.evictedKey(nil, s.id, a.index)})
	if err != nil {
		return err
	}
	defer it.Close()
	if !it.Last() {
		return it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return fmt.Errorf("read eviction of series %d: %w", s.id, err)
	}
	switch {
	case len(v) == 16:
		t.mu.lastOfEmpty[s] = lastSample{t: int64(binary.BigEndian.Uint64(v)), v: math.Float64frombits(binary.BigEndian.Uint64(v[8:]))}
	case len(v) > 16 && isHistChunk(v[8:]):
		l, err := lastHistogram(v[8:])
		if err != nil {
			return fmt.Errorf("eviction of series %d: %w", s.id, err)
		}
		t.mu.lastOfEmpty[s] = l
	default:
		return fmt.Errorf("eviction of series %d: value of %d bytes, want 16 or a histogram chunk", s.id, len(v))
	}
	return nil
}

// pruneEvictionsLocked adds to pb the deletion of the eviction records of
// series id older than its newest one at or before index: after a
// checkpoint at index no replay starts before it, so they are dead.
func (g *Group) pruneEvictionsLocked(pb *pebble.Batch, ks keyspace, id, index uint64) error {
	lo := ks.evictedKey(nil, id, 0)
	it, err := g.db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: ks.evictedKey(nil, id, index+1)})
	if err != nil {
		return err
	}
	var newest []byte
	if it.Last() {
		newest = append(newest, it.Key()...)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if newest == nil {
		return nil
	}
	return pb.DeleteRange(lo, newest, nil)
}
