package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/myelindb/myelin/internal/invariants"
)

// Checkpoint makes everything applied so far survive a restart: it writes
// the open chunk of every series changed since the last checkpoint and each
// tenant's newest sample time, with the applied index as the checkpoint
// index, in one synced Pebble batch. After it returns, OpenGroup recovers to
// the current applied index and the Raft log up to it may be truncated.
//
// Why write open chunks instead of sealing them: sealing at a checkpoint
// would make chunk boundaries depend on when each replica checkpoints (a
// local decision), so replicas would store different chunks, and every
// checkpoint would cut short chunks (a 10-sample XOR chunk costs ~3.5
// bytes/sample against ~1.3 at 120). Open-chunk keys are overwritten in
// place and cost one key per series changed since the last checkpoint.
func (g *Group) Checkpoint() error {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	return g.checkpointLocked()
}

// checkpointLocked is Checkpoint; the caller holds applyMu.
func (g *Group) checkpointLocked() error {
	if g.db.closed() {
		return ErrClosed
	}
	g.mu.Lock()
	if err := g.mu.failed; err != nil {
		g.mu.Unlock()
		return err
	}
	applied := g.mu.applied
	// INVARIANT: the checkpoint index ('k') is at or below the stored
	// applied index ('a'): a recovered group never claims an entry whose
	// sealed chunks and series the store does not hold.
	if invariants.Enabled && applied > g.mu.stored {
		panic(fmt.Sprintf("BUG: group %d: checkpoint at %d above the stored applied index %d", g.id, applied, g.mu.stored))
	}
	ts := make([]*tenant, 0, len(g.mu.tenants))
	for _, t := range g.mu.tenants {
		ts = append(ts, t)
	}
	g.mu.Unlock()
	slices.SortFunc(ts, func(a, b *tenant) int { return strings.Compare(a.name, b.name) })

	pages, err := g.commitCheckpointLocked(ts, applied)
	if err != nil {
		return err
	}
	// Durable only once flushed (no Pebble WAL): this is the point after
	// which Raft may delete the log up to applied. The tenants are not
	// locked meanwhile, so queries go on during the flush; applies wait
	// (applyMu), so the dirty lists do not change. A failed flush leaves
	// them as they are: the next checkpoint writes the same keys again.
	// (The committed batch itself is a valid checkpoint whenever Pebble
	// manages to flush it.)
	if err := g.db.syncPebble(); err != nil {
		return fmt.Errorf("sync checkpoint of group %d at %d: %w", g.id, applied, err)
	}
	for i, t := range ts {
		t.mu.Lock()
		if p := pages[i][0]; p >= 0 {
			t.mu.exemplars.pages, t.mu.exemplars.dirty = p, false
		}
		if p := pages[i][1]; p >= 0 {
			t.mu.metadata.pages, t.mu.metadata.dirty = p, false
		}
		for _, s := range t.mu.dirty {
			s.dirty = false
		}
		clear(t.mu.dirty)
		t.mu.dirty = t.mu.dirty[:0]
		t.mu.evictedOpen = t.mu.evictedOpen[:0]
		// INVARIANT: after a checkpoint no series in the head is dirty:
		// every open chunk that changed since the previous checkpoint is
		// in its 'o' key (a change puts the series on the dirty list,
		// markDirtyLocked).
		if invariants.Enabled {
			for _, s := range t.mu.byHash {
				for ; s != nil; s = s.next {
					if s.dirty {
						panic(fmt.Sprintf("BUG: tenant %q: series %d dirty after a checkpoint", t.name, s.id))
					}
				}
			}
			t.checkCountsLocked()
		}
		t.mu.Unlock()
	}
	return nil
}

// commitCheckpointLocked writes the checkpoint at applied (the open
// chunks of the dirty series, the evictions, the tenants' newest sample
// times, their changed exemplars and metadata, and the checkpoint index)
// in one batch to the memtable; the caller holds applyMu. It holds every
// tenant's write lock while it reads them. It returns per tenant the
// exemplar and metadata pages written (-1: unchanged).
func (g *Group) commitCheckpointLocked(ts []*tenant, applied uint64) ([][2]int, error) {
	for _, t := range ts {
		t.mu.Lock()
		defer t.mu.Unlock()
	}
	pb := g.db.pdb.NewBatchWithSize(checkpointBytesLocked(ts))
	defer pb.Close()
	var key, val []byte
	pages := make([][2]int, len(ts))
	for i, t := range ts {
		ex, md, err := checkpointMetaLocked(pb, t)
		if err != nil {
			return nil, fmt.Errorf("checkpoint exemplars and metadata of tenant %q: %w", t.name, err)
		}
		pages[i] = [2]int{ex, md}
		// Deletes before sets: a series evicted and then revived is both.
		for _, id := range t.mu.evictedOpen {
			if err := pb.Delete(t.ks.openKey(key[:0], id), nil); err != nil {
				return nil, err
			}
			if err := g.pruneEvictionsLocked(pb, t.ks, id, applied); err != nil {
				return nil, fmt.Errorf("checkpoint group %d: %w", g.id, err)
			}
		}
		for _, s := range t.mu.dirty {
			if s.evicted {
				continue
			}
			key = t.ks.openKey(key[:0], s.id)
			val = appendOpen(val[:0], s)
			if err := pb.Set(key, val, nil); err != nil {
				return nil, err
			}
		}
		if t.mu.maxT != minTime {
			key = t.ks.metaKey(key[:0], metaMaxTime)
			if err := pb.Set(key, appendTime(nil, t.mu.maxT), nil); err != nil {
				return nil, err
			}
		}
	}
	if err := pb.Set(groupKey(key[:0], g.id, kindCheckpoint), binary.BigEndian.AppendUint64(nil, applied), nil); err != nil {
		return nil, err
	}
	if err := pb.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("commit checkpoint of group %d at %d: %w", g.id, applied, err)
	}
	return pages, nil
}

// checkCountsLocked panics unless the counts of series with samples
// (tenant.mu.headSeries, metricSeries) match the head.
func (t *tenant) checkCountsLocked() {
	n, byName := 0, map[string]int{}
	for _, s := range t.mu.byHash {
		for ; s != nil; s = s.next {
			if s.numSamples() > 0 {
				n++
				byName[metricName(s.lbls)]++
			}
		}
	}
	if n != t.mu.headSeries || !maps.Equal(byName, t.mu.metricSeries) {
		panic(fmt.Sprintf("BUG: tenant %q: %d series with samples in the head, counted %d (by metric: %v, counted %v)",
			t.name, n, t.mu.headSeries, byName, t.mu.metricSeries))
	}
}

// openVersion is the first byte of an 'o' value, openAppended the bit of
// its flags byte (the second) that says the series accepted a sample
// since the last eviction scan (memSeries.appended). The rest is the
// body, the layout of version 1, which had neither byte: the series'
// merge run, or openHistogram. Groups of format 3 and before hold
// version 1 values; OpenGroup rewrites them to version 2 with the flag
// set before it reads them (upgradeOpenRecords): the series stays in
// the head one more eviction scan, as a series just written does.
const (
	openVersion  byte = 2
	openAppended byte = 1 << 0
)

// checkpointBytesLocked is the capacity to give the checkpoint batch of
// ts: an upper bound of the bytes of its open-chunk records, plus room
// for the few small records beside them (newest sample times, the
// checkpoint index). The caller holds the tenants' locks.
//
// The batch holds a copy of every dirty open chunk (~370 bytes a series
// under the make bench load: 18 MiB at 50,000 series, 370 MB at a
// million) until the flush that ends the checkpoint. Grown by Pebble's
// doubling instead, it ends at up to twice that, after copies of half,
// a quarter, ... of it: the transient that set the heap goal, and so the
// resident memory, of a node right after a checkpoint (make bench's heap
// profile at the settle point: 28 MiB of batch for ~18 MiB of records).
// Exemplar and metadata pages and eviction records, rare and small, are
// not counted: the batch grows for them if it must.
func checkpointBytesLocked(ts []*tenant) int {
	const (
		header = 12 // Pebble's batch header: sequence number and count
		// per record: the kind byte and the key's and value's lengths
		// as uvarints
		record = 1 + 2*binary.MaxVarintLen32
		small  = 4 << 10 // the tenants' newest sample times, the checkpoint index
	)
	n := header + small
	for _, t := range ts {
		for _, s := range t.mu.dirty {
			if !s.evicted {
				n += record + openKeyLen + openLen(s)
			}
		}
	}
	return n
}

// openHistogram is the first byte of the body of an 'o' value whose
// open chunk is a histogram chunk: its stored form follows
// (histchunk.go). A merge run is at most 254 chunks (Options.MergeChunks
// is at most 255, and a run that reaches it is merged), so the byte is
// never a run length; a float series' run ends before its histograms
// start, so there is no run to record.
const openHistogram byte = 0xff

// appendOpen appends the 'o' value of s: the version, the flags, then
// its merge run and its open chunk, or openHistogram and its open
// histogram chunk (doc.go has the layout).
func appendOpen(dst []byte, s *memSeries) []byte {
	var flags byte
	if s.appended {
		flags |= openAppended
	}
	dst = append(dst, openVersion, flags)
	if s.histOpen() {
		return s.hist.appendBytes(append(dst, openHistogram))
	}
	dst = append(dst, s.run)
	if s.run > 0 {
		dst = appendTime(dst, s.runMint)
	}
	return append(dst, s.head.Bytes()...)
}

// openLen is len(appendOpen(nil, s)).
func openLen(s *memSeries) int {
	if s.histOpen() {
		return 2 + 1 + s.hist.storedLen()
	}
	n := 2 + 1 + len(s.head.Bytes())
	if s.run > 0 {
		n += 8
	}
	return n
}

// openRecord is a parsed 'o' value. chunk aliases the value.
type openRecord struct {
	run      uint8
	runMint  int64
	chunk    []byte // the open chunk, EncXOR, or the histogram chunk if hist
	hist     bool
	appended bool
}

// parseOpen parses an 'o' value of version 2 (appendOpen).
func parseOpen(v []byte) (openRecord, error) {
	var r openRecord
	if len(v) < 2 {
		return r, errors.New("truncated open chunk record")
	}
	if v[0] != openVersion {
		return r, fmt.Errorf("open chunk record of version %d, want %d", v[0], openVersion)
	}
	if v[1]&^openAppended != 0 {
		return r, fmt.Errorf("open chunk record with unknown flags %#x", v[1])
	}
	r.appended = v[1]&openAppended != 0
	v = v[2:]
	if len(v) == 0 {
		return r, errors.New("open chunk record without a body")
	}
	if v[0] == openHistogram {
		if !isPromHistChunk(v[1:]) {
			return r, errors.New("open histogram chunk record without a histogram chunk")
		}
		r.chunk, r.hist = v[1:], true
		return r, nil
	}
	r.run, v = v[0], v[1:]
	if r.run > 0 {
		if len(v) < 8 {
			return r, errors.New("truncated open chunk record")
		}
		r.runMint, v = int64(binary.BigEndian.Uint64(v)^(1<<63)), v[8:]
	}
	r.chunk = v
	return r, nil
}

// upgradeOpen returns the version 2 value of a version 1 'o' value v (a
// group of format 3 or before): the flags say appended, which keeps the
// series one more eviction scan, never less than the binary that wrote
// it would have.
func upgradeOpen(v []byte) []byte {
	return append([]byte{openVersion, openAppended}, v...)
}
