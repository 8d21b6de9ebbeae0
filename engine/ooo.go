package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	prommodel "github.com/prometheus/common/model"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/invariants"
	"github.com/myelindb/myelin/write"
)

// Out-of-order samples (docs/design.md, "Out-of-order window"): a float
// sample older than its series' newest one is accepted when the batch
// carries an out-of-order window (write.Batch.OutOfOrderWindowMs, the
// tenant's out_of_order_time_window stamped by the proposer) and the
// sample is within it of the tenant's newest sample in the group
// (tenant.mu.maxT, as apply sees it: Prometheus's and Mimir's head max
// time). It is written where it belongs at once, never kept aside:
//
//   - at or after the first sample of the open float chunk, into the open
//     chunk, re-encoded with the sample in its place (memory only, like
//     every append; the checkpoint writes it);
//   - before it, into the sealed chunk of its partition with the newest
//     first sample at or before it, re-encoded in Options.SealEncoding at
//     the same key (its maxt may grow); if there is none, into a new
//     chunk of that one sample at its own key, with the series' postings
//     of that partition.
//
// INVARIANT: chunks of a series never overlap, and a sealed chunk's
// samples lie at or after its key's mint. A chunk's key never moves and
// a chunk is never split: a replay after a crash reads a store that may
// already hold what later entries wrote (doc.go, "Recovery"), and the
// keys the chunk chosen for a sample depends on are then the same as in
// the first run, so a replayed entry makes the same decisions and writes
// the samples it wrote (they are there already: a no-op) or the ones a
// replayed seal overwrote. Reads need no merge of overlapping chunks.
//
// Native histograms follow the same rules (ooo_hist.go); a float sample
// that falls in the time range of a histogram chunk is refused
// (errOOOInHistogram).

// errOOOInHistogram refuses an out-of-order float sample in the time
// range of a histogram chunk of its series.
var errOOOInHistogram = fmt.Errorf("%w: a float sample in the time range of the series' native histograms", write.ErrOutOfOrder)

// errOOOChunkFull refuses an out-of-order sample whose chunk holds
// chunkenc.MaxSamples already: chunks are never split (see above), and
// only a window of more than 65,535 sample intervals over one chunk's
// time range gets there.
var errOOOChunkFull = fmt.Errorf("%w: the chunk of its time range holds %d samples, the most a chunk holds", write.ErrOutOfOrder, chunkenc.MaxSamples)

// inWindow reports whether a sample at ts, older than its series' newest
// one, is within the out-of-order window windowMs (0: none) of maxT, the
// tenant's newest sample.
func inWindow(ts, maxT, windowMs int64) bool {
	// ts < maxT here; the difference as uint64 does not overflow.
	return windowMs > 0 && uint64(maxT-ts) <= uint64(windowMs)
}

// outOfOrder is the refusal of a sample older than its series' newest
// one and beyond the window windowMs (0: none). With a window it names
// it in Mimir's words and error id (its ingester's
// err-mimir-sample-timestamp-too-old, which users' runbooks know); the
// text travels to the sender in the apply outcome.
func outOfOrder(windowMs int64) error {
	if windowMs <= 0 {
		return write.ErrOutOfOrder
	}
	return fmt.Errorf("%w: the sample has been rejected because another sample with a more recent timestamp has already been ingested "+
		"and this sample is beyond the out-of-order time window of %s (err-mimir-sample-timestamp-too-old)", write.ErrOutOfOrder, windowString(windowMs))
}

// windowString renders a window as Prometheus durations are (10m, 1h30m).
func windowString(windowMs int64) string {
	return prommodel.Duration(time.Duration(windowMs) * time.Millisecond).String()
}

// insertOOOLocked writes smp, accepted as out of order (older than the
// newest sample of s, within the window), where it belongs. It returns a
// refusal for a sample it cannot write (write.ErrDuplicateSample for
// another value at its time, errOOOInHistogram), an error only for I/O.
// A sample equal to one stored (same time, same value bits) is accepted
// and changes nothing: a retried write is idempotent.
func (a *appender) insertOOOLocked(s *memSeries, smp write.Sample) (refusal, err error) {
	if s.numSamples() > 0 && smp.T >= s.mint {
		if s.histOpen() {
			return errOOOInHistogram, nil
		}
		if err := a.flushOOOLocked(); err != nil {
			return nil, err
		}
		return a.insertHeadLocked(s, smp)
	}
	return a.insertSealedLocked(s, smp)
}

// insertHeadLocked inserts smp into the open float chunk of s, at or
// after its first sample. The chunk may hold more than ChunkSamples
// afterwards; the next in-order sample cuts it.
func (a *appender) insertHeadLocked(s *memSeries, smp write.Sample) (refusal, err error) {
	sc := a.scratch
	ts, vs, err := chunkenc.Decode(sc.ts[:0], sc.vs[:0], s.head.Bytes())
	sc.ts, sc.vs = ts, vs
	if err != nil {
		return nil, fmt.Errorf("open chunk of series %d: %w", s.id, err)
	}
	i, found := slices.BinarySearch(ts, smp.T)
	switch {
	case found:
		return sameOrDuplicate(vs[i], smp.V), nil
	case len(ts) >= chunkenc.MaxSamples:
		return errOOOChunkFull, nil
	}
	sc.ts, sc.vs = slices.Insert(ts, i, smp.T), slices.Insert(vs, i, smp.V)
	// One allocation of about the new size (an XOR sample takes up to
	// ~20 bytes; append grows it if it needs more), not the doubling of
	// a buffer from nil: 4 allocations a sample down to 1.
	s.head.Reset(make([]byte, 0, len(s.head.Bytes())+20))
	for j, t := range sc.ts {
		if err := s.head.Append(t, sc.vs[j]); err != nil {
			panic(fmt.Sprintf("BUG: re-append sorted sample %d to series %d: %v", t, s.id, err))
		}
	}
	a.t.appendedLocked(s)
	return nil, nil
}

// sameOrDuplicate is the answer to a sample of value v at the time of a
// stored sample of value stored: none if the bits are equal (a retry),
// write.ErrDuplicateSample otherwise.
func sameOrDuplicate(stored, v float64) error {
	if math.Float64bits(stored) == math.Float64bits(v) {
		return nil
	}
	return write.ErrDuplicateSample
}

// oooChunk is the sealed chunk the last out-of-order sample of a batch
// went into, decoded (in applyScratch.ots, ovs), while the next samples
// of the series go into it too: a backfill of n samples into one chunk
// decodes and encodes it once, not n times. It takes the samples in
// [mint, end): from its key's mint to the next chunk's in the partition
// (or the partition's end), the ones insertSealedLocked would send to it.
// flushOOOLocked writes it before anything else reads or writes chunks
// (an in-order append may seal and merge), so the entry writes what
// inserting the samples one by one would.
type oooChunk struct {
	s         *memSeries // nil: none
	key       []byte
	mint, end int64
	dirty     bool // holds samples not written yet
}

// insertSealedLocked inserts smp, older than the open chunk of s (or s has
// none), into the sealed chunks of its partition, read through the apply
// batch (chunks sealed earlier in the entry count), through a.ooo.
func (a *appender) insertSealedLocked(s *memSeries, smp write.Sample) (refusal, err error) {
	sc, c := a.scratch, &a.ooo
	if c.s != s || smp.T < c.mint || smp.T >= c.end {
		if err := a.flushOOOLocked(); err != nil {
			return nil, err
		}
		if r, err := a.loadOOOLocked(s, smp.T); r != nil || err != nil {
			return r, err
		}
	}
	i, found := slices.BinarySearch(sc.ots, smp.T)
	switch {
	case found:
		return sameOrDuplicate(sc.ovs[i], smp.V), nil
	case len(sc.ots) >= chunkenc.MaxSamples:
		return errOOOChunkFull, nil
	}
	sc.ots, sc.ovs = slices.Insert(sc.ots, i, smp.T), slices.Insert(sc.ovs, i, smp.V)
	c.dirty = true
	if invariants.Enabled && sc.ots[0] != c.mint {
		panic(fmt.Sprintf("BUG: series %d: chunk at %d holds samples from %d", s.id, c.mint, sc.ots[0]))
	}
	return nil, nil
}

// loadOOOLocked makes a.ooo the chunk of s that a sample at ts goes into:
// the one of its partition with the newest mint at or before ts, or, if
// there is none, a new one at ts (empty until the sample is inserted;
// the series' postings of the partition are written now). It returns a
// refusal if that chunk is a histogram chunk.
func (a *appender) loadOOOLocked(s *memSeries, ts int64) (refusal, err error) {
	sc, ks, c := a.scratch, a.t.ks, &a.ooo
	p := partitionOf(ts, a.g.db.partitionMs)
	if p < a.t.mu.retainPart {
		return write.ErrTooOld, nil
	}
	series := ks.chunkSeries(nil, p, s.id)
	it, err := a.pb.NewIter(&pebble.IterOptions{LowerBound: series, UpperBound: successor(series)})
	if err != nil {
		return nil, err
	}
	// ts is below the series' newest sample: ts+1 does not overflow.
	*c = oooChunk{s: s, key: c.key[:0], mint: ts, end: partitionEnd(p, a.g.db.partitionMs)}
	sc.ots, sc.ovs = sc.ots[:0], sc.ovs[:0]
	hist, found := false, it.SeekLT(ks.chunkKey(nil, p, s.id, ts+1))
	if found {
		c.key = append(c.key[:0], it.Key()...)
		c.mint = readTime(c.key[len(c.key)-8:])
		v := it.Value()
		_, n := binary.Uvarint(v)
		switch {
		case n <= 0:
			err = fmt.Errorf("chunk %x: bad header", c.key)
		case isHistChunk(v[n:]):
			hist = true
		default:
			sc.ots, sc.ovs, err = chunkenc.Decode(sc.ots, sc.ovs, v[n:])
		}
		if err == nil && it.Next() {
			c.end = readTime(it.Key()[len(it.Key())-8:])
		}
	} else if it.First() {
		c.end = readTime(it.Key()[len(it.Key())-8:])
	}
	if err := errors.Join(err, it.Error(), it.Close()); err != nil {
		c.s = nil
		return nil, fmt.Errorf("out-of-order sample of series %d at %d: %w", s.id, ts, err)
	}
	switch {
	case hist:
		c.s = nil
		return errOOOInHistogram, nil
	case !found:
		// The series' first sample in this partition before its sealed
		// chunks there, if any: a chunk of its own.
		c.key = ks.chunkKey(c.key[:0], p, s.id, ts)
		return nil, a.writePostings(s, p)
	}
	return nil, nil
}

// flushOOOLocked writes a.ooo if it holds samples not written yet, and
// forgets it.
func (a *appender) flushOOOLocked() error {
	c := &a.ooo
	if c.s == nil {
		return nil
	}
	s, dirty := c.s, c.dirty
	c.s, c.dirty = nil, false
	if !dirty {
		return nil
	}
	return a.writeSealedLocked(s, c.key, c.mint, a.scratch.ots, a.scratch.ovs)
}

// writeSealedLocked writes the sealed chunk of samples ts, vs (sorted,
// from mint) at key.
func (a *appender) writeSealedLocked(s *memSeries, key []byte, mint int64, ts []int64, vs []float64) error {
	sc, opts := a.scratch, &a.g.db.opts
	maxt := ts[len(ts)-1]
	sc.val = binary.AppendUvarint(sc.val[:0], uint64(maxt-mint))
	hdr := len(sc.val)
	var err error
	if sc.val, err = sc.enc.Encode(sc.val, opts.SealEncoding, ts, vs); err != nil {
		return fmt.Errorf("out-of-order chunk of series %d at %d: %w", s.id, mint, err)
	}
	if invariants.Enabled {
		checkSealed(s.id, sc.val[hdr:], mint, maxt, ts, vs)
	}
	return a.pb.Set(key, sc.val, nil)
}
