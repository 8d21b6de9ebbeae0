package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"

	"github.com/myelindb/myelin/write"
)

// ApplyRetain applies log entry index as a retention step of r.Tenant:
// the time partitions that end at or before r.Before are dropped (their
// 'c' and 'p' keys with two DeleteRanges, as Options.Retention drops
// them), samples older than the first kept partition are refused from
// then on (write.ErrTooOld), and the series left with no sample in a kept
// partition are collected: their 's', 'h', 'o' and 'e' keys go, and they
// leave the head. r.Before = math.MinInt64 drops nothing new and only
// collects what Options.Retention left. r.Period becomes the tenant's
// retention in place of Options.Retention (0: Options.Retention again).
//
// A step with a period for a tenant the group does not have yet creates
// it (empty) with that period. A step whose partition is at or below the
// tenant's last collected one, with the period the tenant has, changes
// nothing but the applied index,
// and takes no barrier: nodes
// propose the same step once each (cmd's retention loop), and only the
// first one costs. Otherwise it is a checkpoint barrier like
// ApplyDelete, and its replay changes only the head: the series whose
// 's' key is gone leave it.
func (g *Group) ApplyRetain(index uint64, r write.Retain) error {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	e, ok, err := g.beginControl(index, r.Tenant)
	if !ok {
		return err
	}
	replay, t := e.replay, e.t

	pw := g.db.partitionMs
	cut := uint32(0)
	if r.Before != math.MinInt64 {
		cut = partitionOf(r.Before, pw)
	}
	// A step with a period creates the tenant, which keeps its period
	// for the data that comes later. (In a replay, a tenant it created
	// was loaded from the store.)
	create := t == nil && r.Period != 0
	if t != nil {
		t.mu.RLock()
		// A new period moves the kept partitions to what it keeps
		// behind the tenant's newest sample: a shorter one drops at
		// once what it no longer keeps, a longer one takes samples
		// older than the engine's retention kept (the partitions it
		// dropped stay empty). Either way the partition kept after any
		// entry is retainPartition of the tenant's newest sample and
		// retention, or the last step's cut, which a restart recomputes
		// (openTenant) without replaying the entries before.
		base := t.mu.retainPart
		if r.Period != t.mu.retainMs {
			ret := r.Period
			if ret == 0 {
				ret = g.db.opts.Retention.Milliseconds()
			}
			base = retainPartition(t.mu.maxT, ret, pw)
		}
		cut = max(cut, base)
		done := cut <= t.mu.collectedPart && r.Period == t.mu.retainMs
		t.mu.RUnlock()
		if done {
			t = nil // nothing new to drop or collect
		}
	}
	if (t != nil || create) && !replay {
		if err := g.checkpointLocked(); err != nil {
			return g.fail(fmt.Errorf("apply retention %d: checkpoint before it: %w", index, err))
		}
	}
	pb := g.db.pdb.NewBatch()
	defer pb.Close()
	if create {
		g.mu.Lock()
		var err error
		t, err = g.tenantLocked(r.Tenant, true, pb)
		g.mu.Unlock()
		if err != nil {
			return g.fail(fmt.Errorf("apply retention %d: %w", index, err))
		}
	}
	if t != nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		var err error
		if replay {
			err = g.replayRetainLocked(t, cut, r.Period)
		} else {
			err = g.retainStoredLocked(t, pb, cut, r.Period)
		}
		if err != nil {
			return g.fail(fmt.Errorf("apply retention %d of tenant %q: %w", index, r.Tenant, err))
		}
	}
	return g.commitControl(pb, e, "retention", nil)
}

// appendRetainMeta appends the value of a tenant's 'm' 'r' key: the
// partition of its last retention step, uint32 big-endian, then its
// retention period in milliseconds, uint64 big-endian, if it has one
// (keys written before periods existed have 4 bytes).
func appendRetainMeta(dst []byte, cut uint32, period int64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, cut)
	if period > 0 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(period))
	}
	return dst
}

// decodeRetainMeta decodes appendRetainMeta's value.
func decodeRetainMeta(v []byte) (cut uint32, period int64, err error) {
	switch len(v) {
	case 4:
	case 12:
		period = int64(binary.BigEndian.Uint64(v[4:]))
		if period <= 0 {
			return 0, 0, fmt.Errorf("retention period %d", period)
		}
	default:
		return 0, 0, fmt.Errorf("value of %d bytes, want 4 or 12", len(v))
	}
	return binary.BigEndian.Uint32(v), period, nil
}

// setPeriodLocked makes period the tenant's retention (write.Retain.Period);
// when it changes, cut is its first kept partition, also when lower.
func (t *tenant) setPeriodLocked(cut uint32, period int64) {
	if period != t.mu.retainMs {
		t.mu.retainMs, t.mu.retainPart = period, cut
	}
}

// raiseRetainLocked moves the tenant's retention to partition cut.
func (t *tenant) raiseRetainLocked(cut uint32, pw int64) {
	t.mu.retainPart = max(t.mu.retainPart, cut)
	t.mu.collectedPart = cut
	t.mu.retainFloor = partitionStart(cut, pw)
}

// retainStoredLocked drops the partitions below cut and collects the
// series with no postings in a kept partition, in pb; the head follows,
// with period as its retention (write.Retain.Period).
func (g *Group) retainStoredLocked(t *tenant, pb *pebble.Batch, cut uint32, period int64) error {
	ks := t.ks
	if cut > t.mu.retainPart {
		if err := pb.DeleteRange(ks.chunkPart(nil, t.mu.retainPart), ks.chunkPart(nil, cut), nil); err != nil {
			return err
		}
		if err := pb.DeleteRange(ks.postingsPart(nil, t.mu.retainPart), ks.postingsPart(nil, cut), nil); err != nil {
			return err
		}
		if t.mu.hasST {
			if err := pb.DeleteRange(ks.stPart(nil, t.mu.retainPart), ks.stPart(nil, cut), nil); err != nil {
				return err
			}
		}
	}
	t.setPeriodLocked(cut, period)
	t.raiseRetainLocked(cut, g.db.partitionMs)
	if err := pb.Set(ks.metaKey(nil, metaRetain), appendRetainMeta(nil, cut, period), nil); err != nil {
		return err
	}

	// The series alive: in the all-series list of a kept partition. The
	// open chunk's partition is always in the postings (writePostings
	// on its first sample), so a head series with samples there is too.
	live := map[uint64]struct{}{}
	lo := ks.postingsPart(nil, cut)
	hi := successor(appendPrefix(nil, g.id, ks.tenant, kindPostings))
	it, err := g.db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	var seek []byte
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < prefixLen+4 {
			return errors.Join(fmt.Errorf("postings key %x: bad length", k), it.Close())
		}
		p := binary.BigEndian.Uint32(k[prefixLen:])
		all := ks.postingsValue(seek[:0], p, "", "")
		for ok = it.SeekGE(all); ok && len(it.Key()) == len(all)+8 && string(it.Key()[:len(all)]) == string(all); ok = it.Next() {
			live[binary.BigEndian.Uint64(it.Key()[len(all):])] = struct{}{}
		}
		if p == math.MaxUint32 {
			break
		}
		ok = it.SeekGE(ks.postingsPart(seek[:0], p+1))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("read postings: %w", err)
	}

	sprefix := appendPrefix(nil, g.id, ks.tenant, kindSeries)
	sit, err := g.db.pdb.NewIter(&pebble.IterOptions{LowerBound: sprefix, UpperBound: successor(sprefix)})
	if err != nil {
		return err
	}
	type dead struct {
		id   uint64
		lbls string
	}
	var ds []dead
	for sit.First(); sit.Valid(); sit.Next() {
		k := sit.Key()
		if len(k) != prefixLen+8 {
			return errors.Join(fmt.Errorf("series key %x: bad length", k), sit.Close())
		}
		id := binary.BigEndian.Uint64(k[prefixLen:])
		if _, ok := live[id]; !ok {
			ds = append(ds, dead{id, string(sit.Value())})
		}
	}
	if err := errors.Join(sit.Error(), sit.Close()); err != nil {
		return fmt.Errorf("read series: %w", err)
	}
	for _, d := range ds {
		// Only identity keys are left: the postings and chunks were in
		// dropped partitions.
		for _, k := range [][]byte{ks.seriesKey(nil, d.id), ks.hashKey(nil, xxhash.Sum64String(d.lbls), d.id), ks.openKey(nil, d.id)} {
			if err := pb.Delete(k, nil); err != nil {
				return err
			}
		}
		if err := deletePrefix(g.db.pdb, pb, ks.evictedKey(nil, d.id, 0)[:prefixLen+8]); err != nil {
			return err
		}
		h := xxhash.Sum64String(d.lbls)
		if s := t.lookupStringLocked(h, d.lbls); s != nil {
			t.unlinkLocked(h, s)
			t.forgetLocked(s)
		} else {
			t.mu.index.remove(d.id, d.lbls) // a ghost, if it is one
		}
	}
	return nil
}

// replayRetainLocked is the head's part of a replayed retention step:
// the store holds its deletions, so a head series whose 's' key is gone
// was collected.
func (g *Group) replayRetainLocked(t *tenant, cut uint32, period int64) error {
	t.setPeriodLocked(cut, period)
	t.raiseRetainLocked(cut, g.db.partitionMs)
	type match struct {
		h uint64
		s *memSeries
	}
	var gone []match
	for h, head := range t.mu.byHash {
		for s := head; s != nil; s = s.next {
			_, closer, err := g.db.pdb.Get(t.ks.seriesKey(nil, s.id))
			switch {
			case errors.Is(err, pebble.ErrNotFound):
				gone = append(gone, match{h, s})
				continue
			case err != nil:
				return fmt.Errorf("read series %d: %w", s.id, err)
			}
			closer.Close()
		}
	}
	for _, m := range gone {
		t.unlinkLocked(m.h, m.s)
		t.forgetLocked(m.s)
	}
	return nil
}
