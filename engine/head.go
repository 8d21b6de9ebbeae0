package engine

import (
	"fmt"
	"math"
	"sync"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/write"
)

// minTime is the maxT of a tenant without samples.
const minTime = math.MinInt64

// memSeries is a series in the head: its identity and its open chunk.
//
// Memory: 160 bytes of struct (the 160-byte size class; the histogram
// chunk pointer took it from 144, the start timestamp cache's pointer
// and flag to 160), the encoded labels, the open chunk's
// buffer (grows to the largest chunk the series has cut, ~160 bytes at
// 120 samples of real data) and one map entry in tenant.mu.byHash.
// BenchmarkHeadBytesPerSeries measures ~481 heap bytes per series with 10
// labels (~190 bytes encoded) and one sample (464 before the histogram
// pointer), ~805 with 119 samples of poorly compressible values (789).
type memSeries struct {
	id   uint64
	lbls string     // encoded labels (write.AppendLabel); INVARIANT: immutable
	next *memSeries // next series with the same labels hash
	// mint is the time of the first sample of the open chunk; valid when
	// the chunk is not empty.
	mint int64
	// partEnd is the end of mint's partition: a sample at or after it
	// cuts the chunk. Kept to save a division per sample (the struct stays
	// in the 112-byte size class).
	partEnd int64
	// head is the open chunk. INVARIANT: all its samples are in one
	// partition, the partition of mint; it is never empty once the series
	// has accepted a sample (a cut is followed by the append that caused
	// it).
	head chunkenc.XOR
	// runMint is the mint of the first sealed chunk of the current run,
	// run the number of chunks in it (see sealLocked); both are
	// checkpointed with the open chunk.
	runMint int64
	run     uint8
	// hist is the open histogram chunk, nil until the series' first
	// histogram sample. A series is float or histogram-typed per chunk, as
	// in Prometheus: INVARIANT: at most one of head and hist holds
	// samples; a sample of the other kind seals the open chunk first
	// (appendLocked, appendHistLocked), and s.mint is the first sample of
	// whichever is open.
	hist *histHead
	// dirty: head changed since the last checkpoint; the series is in
	// tenant.mu.dirty.
	dirty bool
	// evicted: removed from the head; Checkpoint skips it.
	evicted bool
	// stKnown: st is what Pebble holds of the series' start timestamp
	// rules at its newest sample (nil: no rule in force); false: unknown,
	// read from Pebble at the next sample (st.go). Memory only.
	stKnown bool
	// appended: the series accepted a sample into its open chunk since
	// the last eviction scan (evictLocked), which keeps it in the head
	// and clears the flag. Checkpointed in the 'o' key (appendOpen), so
	// a restarted replica decides the next scan as one that did not
	// restart. It sits in the padding before st: the struct stays 160
	// bytes.
	appended bool
	st       *stCache
}

// tenant is the head of one tenant in one group.
type tenant struct {
	name string
	ks   keyspace // immutable
	mu   struct {
		// Apply and Checkpoint hold the write lock for the whole batch,
		// Pebble commit included, so that a reader holding the read lock
		// sees the head and Pebble at the same point (no chunk is both
		// missing from the head and not yet committed).
		sync.RWMutex
		byHash map[uint64]*memSeries
		// numSeries counts series in byHash.
		numSeries int
		// headSeries counts the series in byHash whose open chunk holds
		// samples: what the series limits count (write.SeriesLimits),
		// what Stats reports and Mimir calls in-memory series. A series
		// looked up again after eviction (revived) counts from its first
		// accepted sample: until then it is in byHash on a replica that
		// did not restart and not on one that did, and the count must be
		// the same on both. metricSeries counts them by metric name (the
		// key aliases the labels of one of its series).
		//
		// INVARIANT: headSeries is the number of series in byHash with
		// numSamples() > 0, and metricSeries[n] the number of them
		// whose metric name is n, with no zero entries (checked at every
		// checkpoint under the invariants tag). Both change only where a
		// head goes from empty to not (appendLocked) or a series with
		// samples leaves (evictSeriesLocked), and are rebuilt from the
		// checkpoint on load, so replicas and restarts agree.
		headSeries   int
		metricSeries map[string]int
		// nextID is the id of the next new series. Series ids start at 1.
		// INVARIANT: above every series id of the tenant, in the head or
		// in Pebble (createLocked checks it under the invariants tag).
		nextID uint64
		// maxT is the newest accepted sample time; retention is relative
		// to it, not to the wall clock.
		maxT int64
		// allInHead: every series ever created is in byHash, so a label
		// set missing from byHash is new and Apply need not look in
		// Pebble. False after a restart that replays entries whose series
		// are in Pebble but not in the recovered head.
		allInHead bool
		// retainPart is the oldest partition kept under retention:
		// partitionOf(maxT - retention) after the last batch, 0 without
		// retention. Older partitions are deleted and never read.
		retainPart uint32
		// retainMs is the tenant's retention_period (write.Retain.Period)
		// in place of Options.Retention, 0 for none. Stored under 'm' 'r'
		// after the partition.
		retainMs int64
		// collectedPart is the partition of the last retention entry
		// (ApplyRetain): series with no samples at or after it were
		// collected. retainFloor is its first time: older samples are
		// refused (minTime without such an entry). Stored under 'm' 'r'.
		collectedPart uint32
		retainFloor   int64
		dirty         []*memSeries
		// index indexes the head series and the recently evicted ones by
		// label, for reads; indexFrom is the bound covers starts from:
		// minTime, or after a restart that forgot evicted series, the
		// newest sample then minus EvictIdle (or later: 'm' 'g').
		index     headIndex
		indexFrom int64
		// evictedNewest is the newest sample time left to a series that
		// a range deletion evicted (minTime if none), stored under 'm'
		// 'g': a restarted replica's index covers only after it.
		evictedNewest int64
		// lastOfEmpty holds the newest sample of revived series (evicted,
		// then looked up again) until their first append: their open
		// chunk is empty but out-of-order checks need it.
		lastOfEmpty map[*memSeries]lastSample
		// evictEpoch is floor(maxT / eviction interval) at the last
		// eviction scan.
		evictEpoch int64
		// evictedOpen lists series evicted since the last checkpoint,
		// whose 'o' keys it deletes.
		evictedOpen []uint64
		// exemplars and metadata: the tenant's exemplars and metric
		// metadata in the group (exemplars.go), nil until some arrive.
		// Stored by Checkpoint under 'm' 'E' and 'm' 'M' when dirty.
		exemplars *exemplarStore
		metadata  *metaStore
		// hasST: a sample of the tenant had a start timestamp (stored
		// under 'm' 's'); until then samples skip the ST rules and
		// readers do not look for any.
		hasST bool
	}
}

// lookupLocked returns the head series with encoded labels lbls and hash
// h, or nil.
func (t *tenant) lookupLocked(h uint64, lbls []byte) *memSeries {
	for s := t.mu.byHash[h]; s != nil; s = s.next {
		if s.lbls == string(lbls) {
			return s
		}
	}
	return nil
}

// numSamples is the number of samples in the open chunk of s, float or
// histogram.
func (s *memSeries) numSamples() int { return s.head.NumSamples() + s.hist.numSamples() }

// histOpen reports whether the open chunk of s is a histogram chunk with
// samples.
func (s *memSeries) histOpen() bool { return s.hist.numSamples() > 0 }

// maxt is the time of the newest sample of the open chunk, which is not
// empty.
func (s *memSeries) maxt() int64 {
	if s.histOpen() {
		return s.hist.maxt
	}
	t, _, _ := s.head.Last()
	return t
}

// hasLastLocked reports whether s has a newest sample.
func (t *tenant) hasLastLocked(s *memSeries) bool {
	if s.numSamples() > 0 {
		return true
	}
	_, ok := t.mu.lastOfEmpty[s]
	return ok
}

// lastTimeLocked returns the time of the newest sample of s;
// hasLastLocked must be true.
func (t *tenant) lastTimeLocked(s *memSeries) int64 {
	if s.numSamples() > 0 {
		return s.maxt()
	}
	return t.mu.lastOfEmpty[s].t
}

// lastLocked returns the newest sample of s; hasLastLocked must be true.
// For a histogram it reads the open chunk to its end: callers need the
// value only for a sample at the same time (a duplicate or a retry).
func (t *tenant) lastLocked(s *memSeries) (lastSample, error) {
	switch {
	case s.histOpen():
		return lastHistogram(s.hist.appendBytes(nil))
	case s.head.NumSamples() > 0:
		lt, lv, _ := s.head.Last()
		return lastSample{t: lt, v: lv}, nil
	}
	return t.mu.lastOfEmpty[s], nil
}

// lookupStringLocked is lookupLocked for labels in a string.
func (t *tenant) lookupStringLocked(h uint64, lbls string) *memSeries {
	for s := t.mu.byHash[h]; s != nil; s = s.next {
		if s.lbls == lbls {
			return s
		}
	}
	return nil
}

// insertLocked adds s, hashed h, to the head.
func (t *tenant) insertLocked(h uint64, s *memSeries) {
	s.next = t.mu.byHash[h]
	t.mu.byHash[h] = s
	t.mu.numSeries++
	t.mu.index.add(s)
}

// countLocked adds d (+1 or -1) to the counts of series in the head
// with samples, for s.
func (t *tenant) countLocked(s *memSeries, d int) {
	t.mu.headSeries += d
	name := metricName(s.lbls)
	if n := t.mu.metricSeries[name] + d; n > 0 {
		t.mu.metricSeries[name] = n
	} else {
		delete(t.mu.metricSeries, name)
	}
}

// admitLocked reports whether a series with encoded labels lbls may
// enter the count of series with samples under lim: nil, or the refusal
// naming the limit it would pass.
func (t *tenant) admitLocked(lbls []byte, lim write.SeriesLimits) error {
	if lim.MaxSeries > 0 && t.mu.headSeries >= lim.MaxSeries {
		return fmt.Errorf("%w: %d series of the tenant in this group, the group's share of the limit is %d", write.ErrSeriesLimit, t.mu.headSeries, lim.MaxSeries)
	}
	if lim.MaxSeriesPerMetric > 0 {
		name := metricName(lbls)
		if n := t.mu.metricSeries[string(name)]; n >= lim.MaxSeriesPerMetric {
			return fmt.Errorf("%w: %d series of metric %q in this group, the group's share of the limit is %d", write.ErrMetricSeriesLimit, n, name, lim.MaxSeriesPerMetric)
		}
	}
	return nil
}

// metricName returns the value of __name__ in an encoded label set, ""
// if it has none. The result aliases lbls.
func metricName[S string | []byte](lbls S) S {
	const key = "__name__\xff"
	for len(lbls) > 0 {
		i := index(lbls, write.LabelSep)
		if i < 0 {
			break
		}
		j := index(lbls[i+1:], write.LabelSep)
		if j < 0 {
			break
		}
		if string(lbls[:i+1]) == key {
			return lbls[i+1 : i+1+j]
		}
		lbls = lbls[i+2+j:]
	}
	return lbls[:0]
}

// index is strings.IndexByte for a string or a byte slice.
func index[S string | []byte](s S, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// appendedLocked records that s accepted a sample into its open chunk:
// it stays in the head at the next eviction scan, and its open chunk is
// written at the next checkpoint.
func (t *tenant) appendedLocked(s *memSeries) {
	s.appended = true
	t.markDirtyLocked(s)
}

// markDirtyLocked records that s must be written at the next checkpoint.
func (t *tenant) markDirtyLocked(s *memSeries) {
	if !s.dirty {
		s.dirty = true
		t.mu.dirty = append(t.mu.dirty, s)
	}
}

// retentionMsLocked is the tenant's retention in milliseconds: its
// retention_period if a retention step gave one, else the engine's.
func (t *tenant) retentionMsLocked(o *Options) int64 {
	if t.mu.retainMs > 0 {
		return t.mu.retainMs
	}
	return o.Retention.Milliseconds()
}

// retainPartition returns the oldest partition kept when the newest sample
// is at maxT.
func retainPartition(maxT, retentionMs, partitionMs int64) uint32 {
	if retentionMs <= 0 || maxT == minTime || maxT < math.MinInt64+retentionMs {
		return 0
	}
	return partitionOf(maxT-retentionMs, partitionMs)
}

// headCopy is a copy of an open chunk taken for a reader.
type headCopy struct {
	chunk      []byte
	mint, maxt int64
}

// copyHeadLocked returns a copy of the open chunk of s, ok false if empty.
// A histogram chunk is copied in its stored form (histchunk.go).
func copyHeadLocked(s *memSeries) (headCopy, bool) {
	switch {
	case s.histOpen():
		return headCopy{chunk: s.hist.appendBytes(nil), mint: s.mint, maxt: s.hist.maxt}, true
	case s.head.NumSamples() == 0:
		return headCopy{}, false
	}
	maxt, _, _ := s.head.Last()
	return headCopy{chunk: append([]byte(nil), s.head.Bytes()...), mint: s.mint, maxt: maxt}, true
}
