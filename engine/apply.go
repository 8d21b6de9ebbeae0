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
	"github.com/prometheus/prometheus/model/value"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/invariants"
	"github.com/myelindb/myelin/write"
)

// Apply decodes and applies the write batch of log entry index (an encoded
// write.Batch, either version). See ApplyBatch. A batch that does not
// decode is refused the same way on every replica: the index counts as
// applied and the error wraps write.ErrCorrupt.
func (g *Group) Apply(index uint64, data []byte) ([]write.Refusal, error) {
	o, err := g.apply(index, data)
	if err == nil {
		err = o.Err
	}
	if err != nil {
		return nil, err
	}
	return o.Refused, nil
}

// apply is Apply with what the entry refused as an Outcome: the
// per-series refusals, or the decoding error that refused the whole
// entry. The error return is only an I/O failure.
func (g *Group) apply(index uint64, data []byte) (write.Outcome, error) {
	if write.IsDelete(data) {
		return g.applyDeletion(index, data)
	}
	g.decodeMu.Lock()
	defer g.decodeMu.Unlock()
	b, err := g.decoder.Decode(data)
	if err != nil {
		if err := g.applyEmpty(index); err != nil {
			return write.Outcome{}, err
		}
		return write.Outcome{Err: fmt.Errorf("apply entry %d: %w", index, err)}, nil
	}
	refused, err := g.ApplyBatch(index, b)
	if err != nil {
		return write.Outcome{}, err
	}
	return write.Outcome{Refused: refused}, nil
}

// applyDeletion applies a deletion entry (write.IsDelete): a
// delete_series (ApplyDeleteSeries) or a tenant deletion
// (ApplyDeleteTenant). One that does not decode is refused whole, as a
// batch is.
func (g *Group) applyDeletion(index uint64, data []byte) (write.Outcome, error) {
	var err error
	switch data[0] {
	case write.VersionRetain:
		var r write.Retain
		if r, err = write.DecodeRetain(data); err == nil {
			return write.Outcome{}, g.ApplyRetain(index, r)
		}
	case write.VersionDeleteTenant:
		var tenant string
		if tenant, err = write.DecodeDeleteTenant(data); err == nil {
			return write.Outcome{}, g.ApplyDeleteTenant(index, tenant)
		}
	default:
		var d write.DeleteSeries
		if d, err = write.DecodeDeleteSeries(data); err == nil {
			_, err := g.ApplyDeleteSeries(index, &d)
			return write.Outcome{}, err
		}
	}
	if err := g.applyEmpty(index); err != nil {
		return write.Outcome{}, err
	}
	return write.Outcome{Err: fmt.Errorf("apply entry %d: %w", index, err)}, nil
}

// applyEmpty records index as applied without data.
func (g *Group) applyEmpty(index uint64) error {
	_, err := g.ApplyBatch(index, &write.Batch{})
	return err
}

// ApplyBatch applies b as log entry index. It is deterministic: the state
// after it depends only on the entries applied so far and the Options, not
// on time, scheduling or map order.
//
// Entries must come in increasing index order; an index at or below the
// applied index is ignored (a replay). Per-sample refusals are returned as
// write.Refusals (sorted by series) and never stop the rest of the batch. A
// returned error is an I/O failure: the group is then unusable until the
// store is reopened.
//
// Sealed chunks, new series and postings, and the applied index go to Pebble
// in one atomic batch. Open chunks stay in memory until Checkpoint.
func (g *Group) ApplyBatch(index uint64, b *write.Batch) ([]write.Refusal, error) {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	if g.db.closed() {
		return nil, ErrClosed
	}
	g.mu.Lock()
	if err := g.mu.failed; err != nil {
		g.mu.Unlock()
		return nil, err
	}
	if index <= g.mu.applied {
		g.mu.Unlock()
		return nil, nil
	}
	// INVARIANT: the applied index strictly increases, and the stored
	// one ('a') never goes down: during a replay it stays at the index
	// the store reached before the crash, which the replayed entries
	// rewrite with the same keys and values.
	// Indexed: a merge of sealed chunks reads the chunks sealed earlier in
	// the same entry.
	pb := g.db.pdb.NewIndexedBatch()
	defer pb.Close()
	var t *tenant
	var err error
	if b.Tenant != "" {
		t, err = g.tenantLocked(b.Tenant, true, pb)
	}
	stored := max(g.mu.stored, index)
	g.mu.Unlock()
	if err != nil {
		return nil, g.fail(fmt.Errorf("apply entry %d: %w", index, err))
	}

	var errs []write.Refusal
	if t != nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		a := appender{g: g, t: t, pb: pb, scratch: &g.scratch, index: index}
		errs, err = a.applyLocked(b)
		if err != nil {
			return nil, g.fail(fmt.Errorf("apply entry %d: %w", index, err))
		}
	}
	if err := pb.Set(groupKey(g.scratch.key[:0], g.id, kindApplied), binary.BigEndian.AppendUint64(nil, stored), nil); err != nil {
		return nil, g.fail(err)
	}
	// NoSync: the Raft log is the write-ahead log. A crash loses a suffix
	// of applied entries, which Raft replays; Pebble's WAL keeps the
	// surviving batches a prefix. Checkpoint syncs.
	if err := pb.Commit(pebble.NoSync); err != nil {
		return nil, g.fail(fmt.Errorf("commit entry %d: %w", index, err))
	}
	g.mu.Lock()
	if invariants.Enabled && (index <= g.mu.applied || stored < g.mu.stored || stored < index) {
		panic(fmt.Sprintf("BUG: group %d: entry %d applied after %d, stored index %d after %d", g.id, index, g.mu.applied, stored, g.mu.stored))
	}
	g.mu.applied, g.mu.stored = index, stored
	g.mu.Unlock()
	return errs, nil
}

// fail marks the group failed with err and returns err.
func (g *Group) fail(err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.failed == nil {
		g.mu.failed = fmt.Errorf("engine: group %d failed, reopen the store: %w", g.id, err)
	}
	return err
}

// applyScratch holds buffers reused across Apply calls; guarded by
// Group.applyMu.
type applyScratch struct {
	key, val []byte
	ts       []int64
	vs       []float64
	mts      []int64 // merged samples of a run
	mvs      []float64
	hist     histSealer       // re-encodes sealed histogram chunks
	enc      chunkenc.Encoder // re-encodes chunks an out-of-order sample went into
	ots      []int64          // samples of appender.ooo
	ovs      []float64
	ooh      oooHistScratch // out-of-order histograms (ooo_hist.go)
	hashes   []uint64       // label hashes of a batch's series (resolveLocked)
	found    []*memSeries   // their head series, nil if not found; cleared after the batch
}

// appender applies one batch to one tenant. The caller holds t.mu.
type appender struct {
	g       *Group
	t       *tenant
	pb      *pebble.Batch
	scratch *applyScratch
	index   uint64 // of the entry being applied
	ooo     oooChunk
	oooh    oooHistChunk
}

func (a *appender) applyLocked(b *write.Batch) ([]write.Refusal, error) {
	var errs []write.Refusal
	t, sc := a.t, a.scratch
	opts := &a.g.db.opts
	retMs := t.retentionMsLocked(opts)
	nextID0 := t.mu.nextID
	hashes, found := a.resolveLocked(b)
	defer clear(found) // holds no series past the batch
	for i := range b.Series {
		bs := &b.Series[i]
		h := hashes[i]
		if len(bs.Samples) == 0 && len(bs.Histograms) == 0 {
			// Exemplars or metadata alone: no series to look up (a
			// metadata series' labels only placed it on the group).
			if se := a.applyMetaLocked(h, bs, b.MetaLimits); se.Rejected > 0 {
				se.Series = i
				errs = append(errs, se)
			}
			continue
		}
		s := found[i]
		if s == nil {
			// New, or created by an earlier series of this batch with
			// the same labels.
			s = t.lookupLocked(h, bs.Labels)
		}
		if s == nil && !t.mu.allInHead {
			var err error
			if s, err = a.lookupStoredLocked(h, bs.Labels); err != nil {
				return nil, err
			}
		}
		var se write.Refusal
		sts := bs.StartTimestamps()
		if sts != nil && len(sts) != len(bs.Samples)+len(bs.Histograms) {
			panic(fmt.Sprintf("BUG: series %d of the batch has %d start timestamps for %d samples", i, len(sts), len(bs.Samples)+len(bs.Histograms)))
		}
		for j, smp := range bs.Samples {
			var rej error
			switch {
			case retMs > 0 && smp.T < t.mu.maxT && uint64(t.mu.maxT-smp.T) > uint64(retMs), smp.T < t.mu.retainFloor:
				rej = write.ErrTooOld
			case s != nil && t.hasLastLocked(s):
				lt := t.lastTimeLocked(s)
				switch {
				case smp.T < lt && inWindow(smp.T, t.mu.maxT, b.OutOfOrderWindowMs):
					r, err := a.insertOOOLocked(s, smp)
					if err != nil {
						return nil, err
					}
					if r == nil {
						// Accepted, out of order: the series' newest and
						// the tenant's maxT stay.
						if err := a.notePointSTLocked(s, smp.T, stOf(sts, j)); err != nil {
							return nil, err
						}
						continue
					}
					rej = r
				case smp.T < lt:
					rej = outOfOrder(b.OutOfOrderWindowMs)
				case smp.T == lt:
					l, err := t.lastLocked(s)
					if err != nil {
						return nil, fmt.Errorf("newest sample of series %d: %w", s.id, err)
					}
					if !l.isHist() && math.Float64bits(smp.V) == math.Float64bits(l.v) {
						continue // an idempotent retry: accepted, nothing to do
					}
					rej = write.ErrDuplicateSample
				}
			}
			if rej != nil {
				if se.Rejected == 0 {
					se.Err = fmt.Errorf("sample %d at %d: %w", j, smp.T, rej)
				}
				se.Rejected++
				continue
			}
			// An in-order sample may seal and merge chunks: the
			// out-of-order chunk being filled is written first.
			if err := a.flushOOOLocked(); err != nil {
				return nil, err
			}
			ns, err := a.admitLocked(s, h, bs, b.Limits, &se, len(bs.Samples)-j)
			if err != nil {
				return nil, err
			}
			if ns == nil {
				break // refused: the rest of the series' samples with it
			}
			s = ns
			st, prevT := stOf(sts, j), int64(minTime)
			if (st != 0 || t.mu.hasST) && t.hasLastLocked(s) {
				prevT = t.lastTimeLocked(s)
			}
			// A stale marker of a histogram series is a histogram stale
			// marker, of its kind, as Prometheus's head appends it.
			if isHist, float := t.lastKindLocked(s); isHist && value.IsStaleNaN(smp.V) {
				var err error
				if float {
					err = a.appendHistLocked(s, smp.T, nil, &histogram.FloatHistogram{Sum: smp.V})
				} else {
					err = a.appendHistLocked(s, smp.T, &histogram.Histogram{Sum: smp.V}, nil)
				}
				if err != nil {
					return nil, err
				}
			} else if err := a.appendLocked(s, smp); err != nil {
				return nil, err
			}
			if err := a.noteSTLocked(s, smp.T, st, prevT); err != nil {
				return nil, err
			}
			t.mu.maxT = max(t.mu.maxT, smp.T)
			if len(t.mu.lastOfEmpty) > 0 {
				delete(t.mu.lastOfEmpty, s)
			}
		}
		if err := a.flushOOOLocked(); err != nil {
			return nil, err
		}
		for j := range bs.Histograms {
			hs := &bs.Histograms[j]
			var rej error
			switch {
			case (hs.H == nil) == (hs.FH == nil):
				rej = errors.New("histogram sample with both or neither of integer and float counts")
			case retMs > 0 && hs.T < t.mu.maxT && uint64(t.mu.maxT-hs.T) > uint64(retMs):
				rej = write.ErrTooOld
			default:
				// Checked here, not only by the server: Prometheus's
				// chunk appender assumes a valid histogram (spans and
				// buckets that agree), and every replica must refuse the
				// same ones.
				if err := validHistogram(hs); err != nil {
					rej = fmt.Errorf("invalid native histogram: %w", err)
				}
			}
			if rej == nil && s != nil && t.hasLastLocked(s) {
				lt := t.lastTimeLocked(s)
				switch {
				case hs.T < lt && inWindow(hs.T, t.mu.maxT, b.OutOfOrderWindowMs):
					r, err := a.insertHistOOOLocked(s, hs)
					if err != nil {
						return nil, err
					}
					if r == nil {
						// Accepted, out of order.
						if err := a.notePointSTLocked(s, hs.T, stOf(sts, len(bs.Samples)+j)); err != nil {
							return nil, err
						}
						continue
					}
					rej = r
				case hs.T < lt:
					rej = outOfOrder(b.OutOfOrderWindowMs)
				case hs.T == lt:
					l, err := t.lastLocked(s)
					if err != nil {
						return nil, fmt.Errorf("newest sample of series %d: %w", s.id, err)
					}
					if sameHistogram(hs.H, hs.FH, l.h, l.fh) {
						continue // an idempotent retry
					}
					rej = write.ErrDuplicateSample
				}
			}
			if rej != nil {
				if se.Rejected == 0 {
					se.Err = fmt.Errorf("histogram %d at %d: %w", j, hs.T, rej)
				}
				se.Rejected++
				continue
			}
			// An in-order histogram may seal: the out-of-order chunk
			// being filled is written first.
			if err := a.flushOOOHistLocked(); err != nil {
				return nil, err
			}
			ns, err := a.admitLocked(s, h, bs, b.Limits, &se, len(bs.Histograms)-j)
			if err != nil {
				return nil, err
			}
			if ns == nil {
				break
			}
			s = ns
			st, prevT := stOf(sts, len(bs.Samples)+j), int64(minTime)
			if (st != 0 || t.mu.hasST) && t.hasLastLocked(s) {
				prevT = t.lastTimeLocked(s)
			}
			// Copies: Prometheus's appender may adjust the spans, and the
			// batch's histograms are the caller's.
			if hs.FH != nil {
				err = a.appendHistLocked(s, hs.T, nil, hs.FH.Copy())
			} else {
				err = a.appendHistLocked(s, hs.T, hs.H.Copy(), nil)
			}
			if err != nil {
				return nil, err
			}
			if err := a.noteSTLocked(s, hs.T, st, prevT); err != nil {
				return nil, err
			}
			t.mu.maxT = max(t.mu.maxT, hs.T)
			if len(t.mu.lastOfEmpty) > 0 {
				delete(t.mu.lastOfEmpty, s)
			}
		}
		if err := a.flushOOOHistLocked(); err != nil {
			return nil, err
		}
		if bs.Meta != nil {
			if me := a.applyMetaLocked(h, bs, b.MetaLimits); me.Rejected > 0 {
				if se.Rejected == 0 {
					se.Err = me.Err
				}
				se.Rejected += me.Rejected
			}
		}
		if se.Rejected > 0 {
			se.Series = i
			errs = append(errs, se)
		}
	}
	if err := a.retainLocked(); err != nil {
		return nil, err
	}
	if err := a.evictLocked(); err != nil {
		return nil, err
	}
	if t.mu.nextID != nextID0 {
		k := t.ks.metaKey(sc.key[:0], metaNextSeries)
		if err := a.pb.Set(k, binary.BigEndian.AppendUint64(nil, t.mu.nextID), nil); err != nil {
			return nil, err
		}
	}
	return errs, nil
}

// resolveLocked hashes the label set of every series of b and looks it
// up in the head, before any of them is applied: hashes[i] and found[i]
// (nil if not in the head) are series i's. They are the caller's until
// the next resolveLocked; found must be cleared after the batch.
//
// One pass of lookups rather than a lookup per series as it is applied:
// at 50,000 series the head does not fit the CPU caches, and a lookup is
// a chain of misses (the map's group, the series, its label bytes). With
// nothing else between them, the lookups of consecutive series are
// independent loads the CPU overlaps; in the apply loop each waited
// behind the previous series' append (BenchmarkApplyScrape, docs/design.md
// "Ingest CPU"). Rejected: resolving series references on the proposer
// and carrying them in the entry, which a replica whose head differs (a
// restart, an eviction) cannot trust, and which the replay rules would
// have to cover.
//
// It changes nothing: the apply loop uses found[i] only if not nil
// (INVARIANT: nothing in the loop removes a series from byHash:
// eviction and retention run after it), and looks up again a series not
// found, which an earlier series of the batch may have created.
func (a *appender) resolveLocked(b *write.Batch) (hashes []uint64, found []*memSeries) {
	sc, t := a.scratch, a.t
	n := len(b.Series)
	if cap(sc.hashes) < n {
		sc.hashes = make([]uint64, n)
		sc.found = make([]*memSeries, n)
	}
	hashes, found = sc.hashes[:n], sc.found[:n]
	for i := range b.Series {
		hashes[i] = xxhash.Sum64(b.Series[i].Labels)
	}
	for i := range b.Series {
		found[i] = t.lookupLocked(hashes[i], b.Series[i].Labels)
	}
	return hashes, found
}

// applyMetaLocked applies the exemplars and metadata of batch series bs
// (label hash h), after its samples, and returns what it refused: the
// exemplars refused, and 1 for refused metadata.
func (a *appender) applyMetaLocked(h uint64, bs *write.Series, lim write.MetaLimits) write.Refusal {
	var se write.Refusal
	if len(bs.Exemplars()) > 0 {
		if n, err := a.applyExemplarsLocked(h, bs, lim); n > 0 {
			se.Rejected, se.Err = n, err
		}
	}
	if m := bs.Metadata(); m != nil {
		if err := a.applyMetadataLocked(m, lim); err != nil {
			if se.Rejected == 0 {
				se.Err = err
			}
			se.Rejected++
		}
	}
	return se
}

// admitLocked returns the series the next accepted sample of bs goes to:
// s, or a new series if s is nil. The labels of a new series are checked
// now (write.Decode does not), and a series that enters the count of
// series with samples (appendLocked) is admitted by the limits of the
// entry, the same on every replica. Refused, it returns nil and records
// the refusal in se, counting the n samples left of the series' kind:
// none of them is written; the ones before were refused or were
// idempotent retries.
func (a *appender) admitLocked(s *memSeries, h uint64, bs *write.Series, lim write.SeriesLimits, se *write.Refusal, n int) (*memSeries, error) {
	if s == nil {
		if err := write.CheckLabels(bs.Labels); err != nil {
			if se.Rejected == 0 {
				se.Err = err
			}
			se.Rejected += n
			return nil, nil
		}
	}
	if s == nil || s.numSamples() == 0 {
		if err := a.t.admitLocked(bs.Labels, lim); err != nil {
			if se.Rejected == 0 {
				se.Err = err
			}
			se.Rejected += n
			return nil, nil
		}
	}
	if s == nil {
		return a.createLocked(h, bs.Labels)
	}
	return s, nil
}

// lastKindLocked says whether the newest sample of s is a histogram, and
// if so whether a float one.
func (t *tenant) lastKindLocked(s *memSeries) (isHist, float bool) {
	switch {
	case s.histOpen():
		return true, s.hist.float
	case s.head.NumSamples() > 0:
		return false, false
	}
	l, ok := t.mu.lastOfEmpty[s]
	return ok && l.isHist(), l.fh != nil
}

// validHistogram is Prometheus's validation of a histogram sample
// (histogram.Validate), which its chunk appender relies on.
func validHistogram(hs *write.Histogram) error {
	if hs.FH != nil {
		return hs.FH.Validate()
	}
	return hs.H.Validate()
}

// lookupStoredLocked finds a series in Pebble that is not in the head and
// adds it to the head with an empty open chunk. Either it was evicted (an
// 'e' record holds its newest sample, for the out-of-order check), or it
// was created by an entry after the recovered checkpoint and is being
// replayed from that entry (records written by later entries are ignored:
// at this point of the replay they did not exist).
func (a *appender) lookupStoredLocked(h uint64, lbls []byte) (*memSeries, error) {
	t, db := a.t, a.g.db
	prefix := t.ks.hashPrefix(nil, h)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			return nil, fmt.Errorf("hash key %x: bad length", k)
		}
		id := binary.BigEndian.Uint64(k[len(prefix):])
		v, closer, err := db.pdb.Get(t.ks.seriesKey(a.scratch.key[:0], id))
		if err != nil {
			return nil, fmt.Errorf("read labels of series %d: %w", id, err)
		}
		same := string(v) == string(lbls)
		closer.Close()
		if same {
			s := &memSeries{id: id, lbls: string(lbls)}
			s.head.Reset(nil)
			t.insertLocked(h, s)
			return s, a.reviveLocked(s)
		}
	}
	return nil, it.Error()
}

// createLocked allocates the next series id and writes the series and its
// hash entry.
func (a *appender) createLocked(h uint64, lbls []byte) (*memSeries, error) {
	t, sc := a.t, a.scratch
	// INVARIANT: series ids are allocated in apply order, from 1, and
	// never reused: nextID is past every id in Pebble (it is stored with
	// every batch that creates a series, and a replayed entry finds the
	// series it created by label hash instead of creating it again: no
	// replay starts before a deletion the store holds, ApplyDelete).
	if invariants.Enabled {
		a.checkNewID(t.mu.nextID)
	}
	s := &memSeries{id: t.mu.nextID, lbls: string(lbls), stKnown: true} // a new series has no ST rules
	t.mu.nextID++
	s.head.Reset(nil)
	if err := a.pb.Set(t.ks.seriesKey(sc.key[:0], s.id), lbls, nil); err != nil {
		return nil, err
	}
	if err := a.pb.Set(t.ks.hashKey(sc.key[:0], h, s.id), nil, nil); err != nil {
		return nil, err
	}
	t.insertLocked(h, s)
	return s, nil
}

// checkNewID panics unless id is a fresh series id of the tenant: not 0
// and without a series key, in Pebble or earlier in this entry.
func (a *appender) checkNewID(id uint64) {
	_, closer, err := a.pb.Get(a.t.ks.seriesKey(nil, id))
	switch {
	case err == nil:
		closer.Close()
		panic(fmt.Sprintf("BUG: tenant %q: new series id %d is in use", a.t.name, id))
	case !errors.Is(err, pebble.ErrNotFound):
		panic(fmt.Sprintf("BUG: tenant %q: check series id %d: %v", a.t.name, id, err))
	case id == 0:
		panic(fmt.Sprintf("BUG: tenant %q: series id 0", a.t.name))
	}
}

// appendLocked appends an accepted sample to s, cutting the open chunk
// first when it is full or the sample is in a later partition.
//
// INVARIANT: the samples appended to a head chunk have strictly
// increasing timestamps (applyLocked refuses older and equal ones; XOR
// Append checks it again, for the price of a compare) and lie in the
// partition of its first one, s.mint (a sample at or after s.partEnd
// cuts the chunk first).
func (a *appender) appendLocked(s *memSeries, smp write.Sample) error {
	pw := a.g.db.partitionMs
	n := s.numSamples()
	if n == 0 {
		// New, revived or replayed: the series now has samples in the
		// head (tenant.mu.headSeries).
		a.t.countLocked(s, 1)
	}
	if n == 0 || smp.T >= s.partEnd {
		p := partitionOf(smp.T, pw)
		// First sample of the series in this partition (or of a series
		// being replayed, where rewriting postings is harmless: same key,
		// same value).
		if n > 0 {
			if err := a.sealOpenLocked(s, true); err != nil {
				return err
			}
		}
		if err := a.writePostings(s, p); err != nil {
			return err
		}
		s.mint, s.partEnd = smp.T, partitionEnd(p, pw)
	} else if s.histOpen() {
		// A float after histograms: the histogram chunk ends here.
		if err := a.sealHistLocked(s); err != nil {
			return err
		}
		s.mint = smp.T
	} else if n >= a.g.db.opts.ChunkSamples {
		if err := a.sealLocked(s, false); err != nil {
			return err
		}
		s.mint = smp.T
	}
	if invariants.Enabled && (smp.T < s.mint || smp.T >= s.partEnd || partitionOf(smp.T, pw) != partitionOf(s.mint, pw)) {
		panic(fmt.Sprintf("BUG: series %d: sample at %d outside the head chunk's partition [%d, %d)", s.id, smp.T, s.mint, s.partEnd))
	}
	if err := s.head.Append(smp.T, smp.V); err != nil {
		panic(fmt.Sprintf("BUG: append checked sample %d to series %d: %v", smp.T, s.id, err))
	}
	a.t.appendedLocked(s)
	return nil
}

// sealOpenLocked seals the open chunk of s, float or histogram.
func (a *appender) sealOpenLocked(s *memSeries, final bool) error {
	if s.histOpen() {
		return a.sealHistLocked(s)
	}
	return a.sealLocked(s, final)
}

// appendHistLocked appends an accepted histogram sample (one of h and fh
// set; Prometheus's appender may change it) to s, as appendLocked does a
// float: the open chunk is cut first when the sample is in a later
// partition, the open chunk is of another kind (a float chunk, or a
// histogram chunk of the other count type), or it is full: ChunkSamples
// samples, or histChunkBytes once it holds histChunkMinSamples.
// Prometheus's appender itself starts a new chunk at a counter reset or a
// bucket layout it cannot recode (histHead.append); the old one is sealed
// then. A float series' merge run ends at its last float chunk: histogram
// chunks are sealed alone (docs/design.md, "Native histograms").
func (a *appender) appendHistLocked(s *memSeries, ts int64, h *histogram.Histogram, fh *histogram.FloatHistogram) error {
	pw := a.g.db.partitionMs
	n := s.numSamples()
	if n == 0 {
		a.t.countLocked(s, 1)
	}
	if s.hist == nil {
		s.hist = &histHead{}
	}
	float := fh != nil
	switch hh := s.hist; {
	case n == 0 || ts >= s.partEnd:
		p := partitionOf(ts, pw)
		if n > 0 {
			if err := a.sealOpenLocked(s, true); err != nil {
				return err
			}
		}
		if err := a.writePostings(s, p); err != nil {
			return err
		}
		s.mint, s.partEnd = ts, partitionEnd(p, pw)
		hh.start(float)
	case !s.histOpen():
		// A histogram after floats: the float chunk ends, and its run.
		if err := a.sealLocked(s, true); err != nil {
			return err
		}
		s.mint = ts
		hh.start(float)
	case hh.float != float || hh.numSamples() >= a.g.db.opts.ChunkSamples ||
		hh.numSamples() >= histChunkMinSamples && hh.size() >= histChunkBytes:
		if err := a.sealHistLocked(s); err != nil {
			return err
		}
		s.mint = ts
		hh.start(float)
	}
	if invariants.Enabled && (ts < s.mint || ts >= s.partEnd || partitionOf(ts, pw) != partitionOf(s.mint, pw)) {
		panic(fmt.Sprintf("BUG: series %d: histogram at %d outside the head chunk's partition [%d, %d)", s.id, ts, s.mint, s.partEnd))
	}
	prevMaxt := s.hist.maxt
	cut, err := s.hist.append(ts, h, fh)
	if err != nil {
		return fmt.Errorf("append histogram at %d to series %d: %w", ts, s.id, err)
	}
	if cut != nil {
		if err := a.writeHistChunkLocked(s, cut, s.mint, prevMaxt); err != nil {
			return err
		}
		s.mint = ts
	}
	a.t.appendedLocked(s)
	return nil
}

// sealHistLocked writes the open histogram chunk of s to Pebble, in the
// sealed encoding (sealHist), and empties it.
func (a *appender) sealHistLocked(s *memSeries) error {
	if err := a.writeHistChunkLocked(s, s.hist.c, s.mint, s.hist.maxt); err != nil {
		return err
	}
	s.hist.reset()
	return nil
}

// writeHistChunkLocked writes histogram chunk c of s, from mint to maxt,
// at its chunk key in the sealed encoding (sealHist), or drops it when its
// partition is past retention.
func (a *appender) writeHistChunkLocked(s *memSeries, c promchunk.Chunk, mint, maxt int64) error {
	sc := a.scratch
	p := partitionOf(mint, a.g.db.partitionMs)
	if p < a.t.mu.retainPart {
		return nil
	}
	sc.val = binary.AppendUvarint(sc.val[:0], uint64(maxt-mint))
	var err error
	if sc.val, err = sealHist(sc.val, &sc.hist, c); err != nil {
		return fmt.Errorf("series %d chunk at %d: %w", s.id, mint, err)
	}
	return a.pb.Set(a.t.ks.chunkKey(sc.key[:0], p, s.id, mint), sc.val, nil)
}

// sealLocked writes the open chunk of s to Pebble in the seal encoding and
// empties it. final says the series will seal no more chunks in this
// partition (the next sample is in a later one, or it is being evicted).
//
// Sealed chunks are merged in runs (Options.MergeChunks): the chunk that
// completes a run of MergeChunks chunks of the series in a partition, or
// the last chunk of a partition, is written together with the run's
// earlier chunks as one chunk at the run's first key, and their keys are
// deleted. A head chunk stays at ChunkSamples (memory per series) while
// the stored chunks hold up to MergeChunks*ChunkSamples samples (pack:
// 0.371x of Prometheus's XOR at 1024 samples against 0.475x at 120, and
// one Pebble key instead of eight). The run (s.run, s.runMint) is part of
// the checkpointed head, so replicas merge at the same chunks whether or
// not they restarted.
func (a *appender) sealLocked(s *memSeries, final bool) error {
	sc, opts := a.scratch, &a.g.db.opts
	maxt, _, _ := s.head.Last()
	p := partitionOf(s.mint, a.g.db.partitionMs)
	if p < a.t.mu.retainPart { // the chunk is past retention: drop it
		s.run = 0
		s.head.Reset(nil)
		return nil
	}
	var err error
	if sc.ts, sc.vs, err = chunkenc.Decode(sc.ts[:0], sc.vs[:0], s.head.Bytes()); err != nil {
		return fmt.Errorf("seal chunk of series %d: %w", s.id, err)
	}
	mint := s.mint
	if s.run > 0 && (final || int(s.run)+1 >= opts.MergeChunks) {
		if err := a.mergeRunLocked(s, p); err != nil {
			return fmt.Errorf("seal chunk of series %d: %w", s.id, err)
		}
		// The merged chunk starts at its first sample: the run's earlier
		// chunks may be gone (dropped by retention after they were
		// sealed), and then it starts after s.runMint. It ends at its
		// last: in a replay after a crash, the merged chunk the first
		// run wrote may hold out-of-order samples later entries inserted
		// after the open chunk's last one (ooo.go).
		mint, maxt, s.run = sc.ts[0], sc.ts[len(sc.ts)-1], 0
	} else if !final && opts.MergeChunks > 1 {
		if s.run == 0 {
			s.runMint = s.mint
		}
		s.run++
	}
	sc.val = binary.AppendUvarint(sc.val[:0], uint64(maxt-mint))
	hdr := len(sc.val)
	if sc.val, err = sc.enc.Encode(sc.val, opts.SealEncoding, sc.ts, sc.vs); err != nil {
		return fmt.Errorf("seal chunk of series %d: %w", s.id, err)
	}
	// INVARIANT: a sealed chunk decodes back to the samples it was built
	// from, which run from its key's mint to the maxt in its value.
	if invariants.Enabled {
		checkSealed(s.id, sc.val[hdr:], mint, maxt, sc.ts, sc.vs)
	}
	if err := a.pb.Set(a.t.ks.chunkKey(sc.key[:0], p, s.id, mint), sc.val, nil); err != nil {
		return err
	}
	// A new buffer that grows with the chunk, not the old one: reused, it
	// kept every series at the capacity of its largest chunk (1.3 KB for
	// node_exporter's decimal counters) while the open chunk holds half
	// that on average. Growing costs ~10 ns per sample; see docs/design.md.
	s.head.Reset(nil)
	return nil
}

// mergeRunLocked puts the samples of the run's earlier chunks (keys from
// s.runMint up to s.mint in partition p, read through the batch, so chunks
// sealed earlier in this entry count) in front of the chunk being sealed
// (a.scratch.ts/vs) and deletes their keys; the caller writes the result
// at s.runMint.
//
// A replay after a crash may find the merged chunk the lost run already
// wrote at s.runMint next to the run's chunks rewritten by the replay: the
// samples are the same, so they are sorted and deduplicated by time, and
// the result is the chunk the first run wrote.
func (a *appender) mergeRunLocked(s *memSeries, p uint32) error {
	sc, ks := a.scratch, a.t.ks
	lo := ks.chunkKey(nil, p, s.id, s.runMint)
	hi := ks.chunkKey(nil, p, s.id, s.mint)
	it, err := a.pb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	mts, mvs := sc.mts[:0], sc.mvs[:0]
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		_, n := binary.Uvarint(v)
		if n <= 0 {
			return errors.Join(fmt.Errorf("chunk %x: bad header", it.Key()), it.Close())
		}
		if mts, mvs, err = chunkenc.Decode(mts, mvs, v[n:]); err != nil {
			return errors.Join(fmt.Errorf("merge chunk %x: %w", it.Key(), err), it.Close())
		}
		if err := a.pb.Delete(it.Key(), nil); err != nil {
			return errors.Join(err, it.Close())
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	mts, mvs = append(mts, sc.ts...), append(mvs, sc.vs...)
	if !strictlyIncreasing(mts) { // only in a replay; see above
		mts, mvs = sortDedup(mts, mvs)
	}
	sc.mts, sc.mvs, sc.ts, sc.vs = sc.ts, sc.vs, mts, mvs
	return nil
}

// checkSealed panics unless chunk holds exactly the samples ts, vs (value
// bits compared), from mint to maxt.
func checkSealed(id uint64, chunk []byte, mint, maxt int64, ts []int64, vs []float64) {
	gts, gvs, err := chunkenc.Decode(nil, nil, chunk)
	if err != nil {
		panic(fmt.Sprintf("BUG: sealed chunk of series %d does not decode: %v", id, err))
	}
	if len(ts) == 0 || ts[0] != mint || ts[len(ts)-1] != maxt {
		panic(fmt.Sprintf("BUG: sealed chunk of series %d: %d samples, key says [%d, %d]", id, len(ts), mint, maxt))
	}
	same := len(gts) == len(ts)
	for i := 0; same && i < len(ts); i++ {
		same = gts[i] == ts[i] && math.Float64bits(gvs[i]) == math.Float64bits(vs[i])
	}
	if !same {
		panic(fmt.Sprintf("BUG: sealed chunk of series %d decodes to %d other samples than the %d it was built from", id, len(gts), len(ts)))
	}
}

func strictlyIncreasing(ts []int64) bool {
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			return false
		}
	}
	return true
}

// sortDedup sorts samples by time and keeps the first of equal times.
func sortDedup(ts []int64, vs []float64) ([]int64, []float64) {
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(ts[a], ts[b]) })
	ots, ovs := make([]int64, 0, len(ts)), make([]float64, 0, len(ts))
	for _, i := range idx {
		if len(ots) > 0 && ots[len(ots)-1] == ts[i] {
			continue
		}
		ots, ovs = append(ots, ts[i]), append(ovs, vs[i])
	}
	return ots, ovs
}

// retainLocked applies retention after a batch: when the oldest partition
// to keep moves forward, the chunks and postings of the partitions it
// passed go with two DeleteRanges.
//
// The ranges are [old, new), disjoint: Pebble fragments overlapping range
// tombstones on every iterator it opens, and ranges from partition 0 made
// apply 50x slower in tests that cut every batch. Nothing is written below
// the cut afterwards: sealLocked drops chunks of dropped partitions, and a
// sample accepted in this batch is at or above the old cut, so its
// postings are covered by this batch's range, which comes after them.
func (a *appender) retainLocked() error {
	t := a.t
	rp := retainPartition(t.mu.maxT, t.retentionMsLocked(&a.g.db.opts), a.g.db.partitionMs)
	if rp <= t.mu.retainPart {
		return nil
	}
	old := t.mu.retainPart
	t.mu.retainPart = rp
	if err := a.pb.DeleteRange(t.ks.chunkPart(nil, old), t.ks.chunkPart(nil, rp), nil); err != nil {
		return err
	}
	if t.mu.hasST {
		if err := a.pb.DeleteRange(t.ks.stPart(nil, old), t.ks.stPart(nil, rp), nil); err != nil {
			return err
		}
	}
	return a.pb.DeleteRange(t.ks.postingsPart(nil, old), t.ks.postingsPart(nil, rp), nil)
}

// writePostings writes the postings of s in partition p: one key per label
// and one in the all-series list (empty name and value).
func (a *appender) writePostings(s *memSeries, p uint32) error {
	ks, sc := a.t.ks, a.scratch
	var err error
	put := func(name, value string) {
		if err != nil {
			return
		}
		sc.key = binary.BigEndian.AppendUint64(ks.postingsValue(sc.key[:0], p, name, value), s.id)
		err = a.pb.Set(sc.key, nil, nil)
	}
	put("", "")
	if err2 := write.ForEachLabel(s.lbls, put); err2 != nil {
		return fmt.Errorf("postings of series %d: %w", s.id, err2)
	}
	return err
}
