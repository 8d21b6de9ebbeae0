package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/internal/invariants"
	"github.com/myelindb/myelin/write"
)

// ApplyDelete applies log entry index as the deletion of every series of
// tenant whose labels match all of ms, with all their data: chunks,
// postings, open chunk, eviction records and identity ('s', 'h'). It
// returns the number of series deleted. Like ApplyBatch it is
// deterministic, ignores an index at or below the applied index, and
// returns only I/O failures (after which the group is unusable until the
// store is reopened). An unknown tenant deletes nothing; the index counts
// as applied.
//
// A deletion is a checkpoint barrier (docs/design.md, "Deletion and
// retention: deterministic series identity"):
//
//  1. Not a replay (index above the stored applied index): checkpoint at
//     the entry before, synced, then delete in one batch with the applied
//     index. So no recovered replica replays an entry before this one on
//     top of a store that holds the deletion.
//  2. A replay (index at or below the stored applied index): the store
//     already holds the deletion, and the head is the checkpoint at the
//     entry before (step 1). Only the head is changed; matching postings
//     as of the stored index would also find series created after this
//     entry.
func (g *Group) ApplyDelete(index uint64, tenant string, ms []*labels.Matcher) (int, error) {
	return g.ApplyDeleteSeries(index, &write.DeleteSeries{Tenant: tenant, Matchers: ms, Start: math.MinInt64, End: math.MaxInt64})
}

// ApplyDeleteSeries applies log entry index as the deletion of the
// samples in [d.Start, d.End] of every series of d.Tenant matching all of
// d.Matchers, and returns the number of series deleted whole or in part.
// A series left without a sample is deleted whole, identity included (as
// ApplyDelete); one with samples left keeps its id and labels, its
// chunks that straddle the range are rewritten with the samples outside
// it (re-encoded in Options.SealEncoding at the key of their first
// sample left), its open chunk likewise, and the postings of partitions
// where it has no sample left go. An open chunk left empty is evicted:
// its newest sample goes to an 'e' record of this entry, as eviction
// writes it, so later samples are checked against it on every replica,
// restarted or not. The barrier and the replay are ApplyDelete's; a
// replayed deletion finds which head series the entry deleted whole by
// their 's' key (gone from the store, which holds the entry), and trims
// the others' open chunks as the first run did.
func (g *Group) ApplyDeleteSeries(index uint64, d *write.DeleteSeries) (int, error) {
	ms := d.Matchers
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	e, ok, err := g.beginControl(index, d.Tenant)
	if !ok {
		return 0, err
	}
	replay, t := e.replay, e.t
	// A tenant this group does not have loses nothing: no barrier (a
	// delete_series goes to every group, most of which may not hold the
	// tenant).
	if !replay && t != nil {
		// The barrier (step 1). It fails on a full disk; the deletion is
		// then not applied, and the group must be reopened as after any
		// failed apply.
		if err := g.checkpointLocked(); err != nil {
			return 0, g.fail(fmt.Errorf("apply deletion %d: checkpoint before it: %w", index, err))
		}
	}

	pb := g.db.pdb.NewBatch()
	defer pb.Close()
	n := 0
	if t != nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		var err error
		switch {
		case replay && d.All():
			n = t.deleteHeadLocked(ms)
		case replay:
			if n, err = g.replayRangeLocked(t, d); err != nil {
				return 0, g.fail(fmt.Errorf("replay deletion %d: %w", index, err))
			}
		case d.All():
			n, err = g.deleteStoredLocked(t, pb, ms)
		default:
			n, err = g.deleteRangeLocked(t, pb, index, d)
		}
		if err != nil {
			return 0, g.fail(fmt.Errorf("apply deletion %d: %w", index, err))
		}
	}
	if err := g.commitControl(pb, e, "deletion", nil); err != nil {
		return 0, err
	}
	return n, nil
}

// matchesEncoded reports whether the encoded label set lbls matches every
// matcher (a missing label has the empty value, as in Prometheus).
func matchesEncoded(lbls string, ms []*labels.Matcher) bool {
	for _, m := range ms {
		v := ""
		_ = write.ForEachLabel(lbls, func(name, value string) {
			if name == m.Name {
				v = value
			}
		})
		if !m.Matches(v) {
			return false
		}
	}
	return true
}

// deleteHeadLocked removes the head series matching ms from memory and
// returns how many. Pebble is not touched.
func (t *tenant) deleteHeadLocked(ms []*labels.Matcher) int {
	n := 0
	for h, head := range t.mu.byHash {
		var keep *memSeries
		for s := head; s != nil; {
			next := s.next
			if matchesEncoded(s.lbls, ms) {
				t.forgetLocked(s)
				n++
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
	t.mu.index.removeGhosts(func(lbls string) bool { return matchesEncoded(lbls, ms) })
	return n
}

// forgetLocked drops s from the head's counts and state; the caller
// unlinks it from byHash. A dirty s stays on the dirty list, marked
// evicted, so Checkpoint skips it.
func (t *tenant) forgetLocked(s *memSeries) {
	if s.numSamples() > 0 {
		t.countLocked(s, -1)
	}
	delete(t.mu.lastOfEmpty, s)
	s.evicted = true
	t.mu.numSeries--
	t.mu.index.remove(s.id, s.lbls)
}

// deleteStoredLocked deletes, in pb, every key of the tenant's series
// matching ms, in Pebble or in the head, and removes them from the head.
// It reads Pebble, which is the state as of the entry before (no replay).
//
// The series are found by a scan of the 's' keys: a deletion is a rare
// administrative operation, and the scan finds evicted series too, which
// the head does not hold. Per series it seeks once per partition that
// holds the series' postings.
func (g *Group) deleteStoredLocked(t *tenant, pb *pebble.Batch, ms []*labels.Matcher) (int, error) {
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
		if lbls := string(it.Value()); matchesEncoded(lbls, ms) {
			vs = append(vs, victim{binary.BigEndian.Uint64(k[prefixLen:]), lbls})
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, fmt.Errorf("read series: %w", err)
	}
	for _, v := range vs {
		if err := g.deleteSeriesKeys(t, pb, v.id, v.lbls); err != nil {
			return 0, fmt.Errorf("delete series %d: %w", v.id, err)
		}
	}
	if n := t.deleteHeadLocked(ms); invariants.Enabled && n > len(vs) {
		panic(fmt.Sprintf("BUG: tenant %q: deleted %d head series, only %d in Pebble", t.name, n, len(vs)))
	}
	return len(vs), nil
}

// deleteSeriesKeys adds to pb the deletion of every key of series id with
// encoded labels lbls.
func (g *Group) deleteSeriesKeys(t *tenant, pb *pebble.Batch, id uint64, lbls string) error {
	ks := t.ks
	for _, k := range [][]byte{ks.seriesKey(nil, id), ks.hashKey(nil, xxhash.Sum64String(lbls), id), ks.openKey(nil, id)} {
		if err := pb.Delete(k, nil); err != nil {
			return err
		}
	}
	if err := deletePrefix(g.db.pdb, pb, ks.evictedKey(nil, id, 0)[:prefixLen+8]); err != nil {
		return err
	}
	parts, err := g.seriesPartitions(ks, id)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if err := g.deleteSeriesPart(pb, ks, p, id, lbls); err != nil {
			return err
		}
	}
	return nil
}

// seriesPartitions returns the partitions holding series id, in order: a
// skip scan over the postings' partitions, then a Get of the series in
// each partition's all-series list.
func (g *Group) seriesPartitions(ks keyspace, id uint64) ([]uint32, error) {
	pprefix := appendPrefix(nil, g.id, ks.tenant, kindPostings)
	it, err := g.db.pdb.NewIter(&pebble.IterOptions{LowerBound: pprefix, UpperBound: successor(pprefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var parts []uint32
	var seek, key []byte // apart: the iterator may keep the seek key
	for p, ok := uint32(0), it.First(); ok; ok = it.SeekGE(ks.postingsPart(seek[:0], p)) {
		k := it.Key()
		if len(k) < prefixLen+4 {
			return nil, fmt.Errorf("postings key %x: bad length", k)
		}
		q := binary.BigEndian.Uint32(k[prefixLen:])
		key = binary.BigEndian.AppendUint64(ks.postingsValue(key[:0], q, "", ""), id)
		_, closer, err := g.db.pdb.Get(key)
		switch {
		case err == nil:
			closer.Close()
			parts = append(parts, q)
		case !errors.Is(err, pebble.ErrNotFound):
			return nil, err
		}
		if q == math.MaxUint32 {
			break
		}
		p = q + 1
	}
	return parts, it.Error()
}

// deleteSeriesPart adds to pb the deletion of the postings and chunks of
// series id in partition p.
func (g *Group) deleteSeriesPart(pb *pebble.Batch, ks keyspace, p uint32, id uint64, lbls string) error {
	var err error
	del := func(name, value string) {
		if err == nil {
			err = pb.Delete(binary.BigEndian.AppendUint64(ks.postingsValue(nil, p, name, value), id), nil)
		}
	}
	del("", "")
	if err2 := write.ForEachLabel(lbls, del); err2 != nil {
		return err2
	}
	if err != nil {
		return err
	}
	if err := deletePrefix(g.db.pdb, pb, ks.stSeries(nil, p, id)); err != nil {
		return err
	}
	return deletePrefix(g.db.pdb, pb, ks.chunkSeries(nil, p, id))
}

// deletePrefix adds to pb a point deletion of every key of pdb with the
// given prefix. Point deletions, not a DeleteRange: a delete of many series
// would leave as many range tombstones, which every iterator fragments.
func deletePrefix(pdb *pebble.DB, pb *pebble.Batch, prefix []byte) error {
	it, err := pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := pb.Delete(it.Key(), nil); err != nil {
			return errors.Join(err, it.Close())
		}
	}
	return errors.Join(it.Error(), it.Close())
}
