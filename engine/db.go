package engine

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/storage"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/write"
)

// DB is the store of one node: one Pebble database holding the data of all
// the node's group replicas. Safe for concurrent use.
type DB struct {
	opts        Options // immutable after Open
	partitionMs int64   // opts.Partition in milliseconds
	pdb         *pebble.DB
	disk        *diskFull
	collector   *collector // nil without Options.Registerer
	mu          struct {
		sync.Mutex
		groups map[uint32]*Group
		closed bool
	}
}

// ErrClosed is returned by operations on a closed DB.
var ErrClosed = errors.New("engine: closed")

// Open opens (creating if needed) the store in opts.Dir.
func Open(opts Options) (*DB, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	disk := newDiskFull(opts.Dir, opts.OnDiskFull, opts.Logger)
	po := &pebble.Options{
		// A write that meets ENOSPC waits a second and is retried once,
		// and wakes the flushes waited for (diskFull).
		FS:            vfs.OnDiskFull(opts.FS, disk.onFull),
		Logger:        pebbleLogger{opts},
		Cache:         cache,
		MemTableSize:  uint64(opts.MemTableBytes),
		EventListener: &pebble.EventListener{BackgroundError: disk.backgroundError},
	}
	// No Pebble WAL: the Raft log is the write-ahead log. Applies reach
	// the memtable only, and a crash loses what was not flushed, a prefix
	// of the entries after the last checkpoint, which Raft replays. What
	// must survive a crash by itself (checkpoints, the format key, group
	// drops, restored snapshots) is flushed explicitly (syncPebble).
	// Rejected: the WAL with NoSync, which wrote every byte twice and left
	// up to three memtables of recyclable WAL files on disk (~100 MB).
	po.DisableWAL = true
	pdb, err := pebble.Open(opts.Dir, po)
	if err != nil {
		return nil, fmt.Errorf("open pebble %s: %w", opts.Dir, err)
	}
	db := &DB{opts: opts, partitionMs: opts.Partition.Milliseconds(), pdb: pdb, disk: disk}
	db.mu.groups = map[uint32]*Group{}
	if opts.Registerer != nil {
		db.collector = newCollector(db)
		if err := opts.Registerer.Register(db.collector); err != nil {
			return nil, errors.Join(fmt.Errorf("register engine metrics: %w", err), pdb.Close())
		}
	}
	return db, nil
}

// Close closes the store. Stop applying and close queriers first: Close
// does not wait for them (Apply and Querier after Close return ErrClosed).
// Idempotent.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return nil
	}
	db.mu.closed = true
	if db.collector != nil {
		db.opts.Registerer.Unregister(db.collector)
	}
	// Flush first: without a WAL, the memtables would be lost (Raft would
	// replay them, from the last checkpoint). A failed flush still closes;
	// on a full disk it fails within about a second.
	flushErr := db.syncPebble()
	close(db.disk.closing) // a write waiting to retry on a full disk gives up
	if err := errors.Join(flushErr, db.pdb.Close()); err != nil {
		return fmt.Errorf("close pebble %s: %w", db.opts.Dir, err)
	}
	return nil
}

// syncPebble makes every write so far durable. Pebble runs without a WAL,
// so that is a flush of the memtables to SSTs. On a full disk it fails
// with the ENOSPC about a second after the flush's first failure, instead
// of waiting for space (Pebble retries the flush until it succeeds).
func (db *DB) syncPebble() error {
	gen := db.disk.generation()
	flushed, err := db.pdb.AsyncFlush()
	if err != nil {
		return err
	}
	return db.disk.wait(gen, flushed)
}

// closed reports whether Close was called.
func (db *DB) closed() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.mu.closed
}

// pebbleLogger sends Pebble's log lines to the engine's logger.
type pebbleLogger struct{ opts Options }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.opts.Logger.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.opts.Logger.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// Group is one Raft group's replica in the store. Apply and Checkpoint are
// called from one goroutine (the group's FSM); queriers from any.
type Group struct {
	db *DB
	id uint32
	// decodeMu guards decoder, whose batch is valid until the next
	// decode; Apply holds it for the whole call.
	decodeMu sync.Mutex
	decoder  write.Decoder
	// applyMu serializes Apply and Checkpoint.
	applyMu sync.Mutex
	scratch applyScratch // guarded by applyMu
	mu      struct {
		sync.Mutex
		// applied is the index of the last applied entry.
		applied uint64
		// stored is the applied index stored in Pebble: applied, or more
		// while entries after a checkpoint are being replayed.
		stored     uint64
		nextTenant uint32
		tenants    map[string]*tenant
		// failed is set when a Pebble write failed after the head changed:
		// head and Pebble disagree and the group must be reopened.
		failed error
	}
}

// OpenGroup loads group id, creating it if it does not exist, and returns
// it with the index it recovered to: the index of its last checkpoint (0 for
// a new group). The caller must replay every log entry after that index,
// in order, before applying new ones. Calling OpenGroup again for the same
// id returns the same Group.
func (db *DB) OpenGroup(id uint32) (*Group, uint64, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return nil, 0, ErrClosed
	}
	if g, ok := db.mu.groups[id]; ok {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g, g.mu.applied, nil
	}
	g := &Group{db: db, id: id}
	g.mu.tenants = map[string]*tenant{}
	g.mu.nextTenant = 1
	if err := g.load(); err != nil {
		return nil, 0, fmt.Errorf("open group %d: %w", id, err)
	}
	db.mu.groups[id] = g
	return g, g.mu.applied, nil
}

// Group returns the open group id, or nil if OpenGroup has not opened it
// (or DropGroup dropped it).
func (db *DB) Group(id uint32) *Group {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.mu.groups[id]
}

// openGroups returns the open groups in id order.
func (db *DB) openGroups() []*Group {
	db.mu.Lock()
	gs := make([]*Group, 0, len(db.mu.groups))
	for _, g := range db.mu.groups {
		gs = append(gs, g)
	}
	db.mu.Unlock()
	slices.SortFunc(gs, func(a, b *Group) int { return cmp.Compare(a.id, b.id) })
	return gs
}

// Querier returns a querier over tenant's data in [mint, maxt] in the open
// group id. Reading a replica is the caller's decision: with Raft, only
// the group's leader, after confirming its leadership, reads consistently.
func (db *DB) Querier(group uint32, tenant string, mint, maxt int64) (storage.Querier, error) {
	return db.QuerierWithBudget(group, tenant, mint, maxt, nil)
}

// QuerierWithBudget is Querier with its reads counted against b (nil: no
// bound).
func (db *DB) QuerierWithBudget(group uint32, tenant string, mint, maxt int64, b ReadBudget) (storage.Querier, error) {
	g := db.Group(group)
	if g == nil {
		return nil, fmt.Errorf("querier of group %d: %w", group, ErrNoGroup)
	}
	return g.QuerierWithBudget(tenant, mint, maxt, b)
}

// ErrNoGroup: the group is not open on this store.
var ErrNoGroup = errors.New("engine: group not open")

func (db *DB) getUint64(key []byte) (uint64, bool, error) {
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("key %x: value of %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// load reads the group's checkpoint: tenants, their head series and open
// chunks.
func (g *Group) load() error {
	db := g.db
	if err := g.checkFormat(); err != nil {
		return err
	}
	var err error
	if g.mu.applied, _, err = db.getUint64(groupKey(nil, g.id, kindCheckpoint)); err != nil {
		return fmt.Errorf("read checkpoint index: %w", err)
	}
	if g.mu.stored, _, err = db.getUint64(groupKey(nil, g.id, kindApplied)); err != nil {
		return fmt.Errorf("read applied index: %w", err)
	}
	v, closer, err := db.pdb.Get(groupKey(nil, g.id, kindNextTenant))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read next tenant id: %w", err)
	default:
		if len(v) == 4 {
			g.mu.nextTenant = binary.BigEndian.Uint32(v)
		}
		closer.Close()
	}
	prefix := groupKey(nil, g.id, kindTenant)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return err
	}
	type nameID struct {
		name string
		id   uint32
	}
	var ts []nameID
	for it.First(); it.Valid(); it.Next() {
		if len(it.Value()) != 4 {
			it.Close()
			return fmt.Errorf("tenant key %q: bad value", it.Key())
		}
		ts = append(ts, nameID{string(it.Key()[len(prefix):]), binary.BigEndian.Uint32(it.Value())})
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("read tenants: %w", err)
	}
	for _, x := range ts {
		t, err := g.loadTenant(x.name, x.id)
		if err != nil {
			return fmt.Errorf("load tenant %q: %w", x.name, err)
		}
		g.mu.tenants[x.name] = t
	}
	return nil
}

func newTenant(name string, ks keyspace) *tenant {
	t := &tenant{name: name, ks: ks}
	t.mu.byHash = map[uint64]*memSeries{}
	t.mu.index = newHeadIndex()
	t.mu.indexFrom = minTime
	t.mu.nextID = 1
	t.mu.maxT = minTime
	t.mu.retainFloor = minTime
	t.mu.evictedNewest = minTime
	t.mu.allInHead = true
	t.mu.lastOfEmpty = map[*memSeries]lastSample{}
	t.mu.metricSeries = map[string]int{}
	t.mu.evictEpoch = math.MinInt64 // = evictEpoch(minTime), as after a restart
	return t
}

// loadTenant restores a tenant's head from its checkpoint.
// checkFormat checks the group's on-disk format, writing it for a new
// group.
func (g *Group) checkFormat() error {
	db := g.db
	key := groupKey(nil, g.id, kindFormat)
	v, closer, err := db.pdb.Get(key)
	switch {
	case err == nil:
		ok := len(v) == 1 && v[0] == formatVersion
		upgrade := len(v) == 1 && v[0] >= formatUpgradable && v[0] < formatVersion
		if !ok && !upgrade {
			err := fmt.Errorf("%w: group %d has format %x, this binary reads %d to %d", ErrFormat, g.id, v, formatUpgradable, formatVersion)
			return errors.Join(err, closer.Close())
		}
		if err := closer.Close(); err != nil || ok {
			return err
		}
		// Marked before anything of the new version is written: a
		// binary of the old one then refuses the group with ErrFormat
		// instead of failing on a chunk it cannot read. The 'o' values
		// are rewritten in the same synced batch.
		return g.upgradeFormat(key)
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("read format: %w", err)
	}
	// No format key: a new group, unless it holds data of a version
	// before the key existed.
	prefix := appendPrefix(nil, g.id, 0, 0)[:4]
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return err
	}
	found := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("read group: %w", err)
	}
	if found {
		return fmt.Errorf("%w: group %d has data but no format key (written before format %d)", ErrFormat, g.id, formatVersion)
	}
	return g.writeFormat(key)
}

// upgradeFormat rewrites every 'o' value of the group (format 3 and
// before: version 1, without the flags byte) to version 2
// (upgradeOpen) and formatVersion at key, in one synced batch: a crash
// leaves the group in the old format or the new one, never between.
// Only the head's open chunks are rewritten, one key per series in the
// head.
func (g *Group) upgradeFormat(key []byte) error {
	db := g.db
	pb := db.pdb.NewBatch()
	defer pb.Close()
	prefix := groupKey(nil, g.id, kindTenant)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return err
	}
	var ids []uint32
	for it.First(); it.Valid(); it.Next() {
		if len(it.Value()) != 4 {
			it.Close()
			return fmt.Errorf("tenant key %q: bad value", it.Key())
		}
		ids = append(ids, binary.BigEndian.Uint32(it.Value()))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("upgrade format: read tenants: %w", err)
	}
	for _, id := range ids {
		prefix := appendPrefix(nil, g.id, id, kindOpen)
		it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			v, err := it.ValueAndErr()
			if err == nil {
				err = pb.Set(it.Key(), upgradeOpen(v), nil)
			}
			if err != nil {
				it.Close()
				return fmt.Errorf("upgrade format: open chunk %x: %w", it.Key(), err)
			}
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return fmt.Errorf("upgrade format: read open chunks: %w", err)
		}
	}
	if err := pb.Set(key, []byte{formatVersion}, nil); err != nil {
		return err
	}
	if err := pb.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("upgrade format: %w", err)
	}
	if err := db.syncPebble(); err != nil {
		return fmt.Errorf("upgrade format: %w", err)
	}
	return nil
}

// writeFormat writes formatVersion at key, durably.
func (g *Group) writeFormat(key []byte) error {
	if err := g.db.pdb.Set(key, []byte{formatVersion}, pebble.NoSync); err != nil {
		return fmt.Errorf("write format: %w", err)
	}
	if err := g.db.syncPebble(); err != nil {
		return fmt.Errorf("write format: %w", err)
	}
	return nil
}

func (g *Group) loadTenant(name string, id uint32) (*tenant, error) {
	db := g.db
	t := newTenant(name, keyspace{group: g.id, tenant: id})
	var err error
	var ok bool
	if t.mu.nextID, ok, err = db.getUint64(t.ks.metaKey(nil, metaNextSeries)); err != nil {
		return nil, err
	} else if !ok {
		t.mu.nextID = 1
	}
	if u, ok, err := db.getUint64(t.ks.metaKey(nil, metaMaxTime)); err != nil {
		return nil, err
	} else if ok {
		t.mu.maxT = int64(u ^ 1<<63)
	}
	if v, closer, err := db.pdb.Get(t.ks.metaKey(nil, metaHasST)); err == nil {
		t.mu.hasST = true
		_ = v
		if err := closer.Close(); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return nil, err
	}
	prefix := appendPrefix(nil, g.id, id, kindOpen)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	// The labels come from a second iterator over the 's' keys, in the
	// same id order: a merge join instead of a point Get per series (the
	// Gets were 36% of loading 10k series).
	sprefix := appendPrefix(nil, g.id, id, kindSeries)
	sit, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: sprefix, UpperBound: successor(sprefix)})
	if err != nil {
		return nil, err
	}
	defer sit.Close()
	sit.First()
	var key []byte
	var ci chunkenc.Iterator // for the first time of a chunk
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != prefixLen+8 {
			return nil, fmt.Errorf("open chunk key %x: bad length", k)
		}
		sid := binary.BigEndian.Uint64(k[prefixLen:])
		key = t.ks.seriesKey(key[:0], sid)
		// A few Nexts over series without an open chunk, else a seek.
		for i := 0; sit.Valid() && bytes.Compare(sit.Key(), key) < 0; i++ {
			if i == 8 {
				sit.SeekGE(key)
				break
			}
			sit.Next()
		}
		if !sit.Valid() || !bytes.Equal(sit.Key(), key) {
			if err := sit.Error(); err != nil {
				return nil, fmt.Errorf("read labels of series %d: %w", sid, err)
			}
			return nil, fmt.Errorf("read labels of series %d: %w", sid, pebble.ErrNotFound)
		}
		s := &memSeries{id: sid, lbls: string(sit.Value())}
		rec, err := parseOpen(it.Value())
		if err != nil {
			return nil, fmt.Errorf("restore open chunk of series %d: %w", sid, err)
		}
		s.run, s.runMint, s.appended = rec.run, rec.runMint, rec.appended
		chunk := rec.chunk
		if rec.hist {
			// Prometheus's histogram chunk: load recovers its appender
			// from the bytes, as the head left it.
			s.head.Reset(nil)
			s.hist = &histHead{}
			if err := s.hist.load(chunk); err != nil {
				return nil, fmt.Errorf("restore open histogram chunk of series %d: %w", sid, err)
			}
			if s.mint, err = firstHistogramTime(chunk); err != nil {
				return nil, fmt.Errorf("restore open histogram chunk of series %d: %w", sid, err)
			}
			s.partEnd = partitionEnd(partitionOf(s.mint, db.partitionMs), db.partitionMs)
		} else {
			// The open chunk is stored in EncXOR, the head's own format:
			// Load adopts it and recovers its appender state.
			if err := s.head.Load(make([]byte, 0, len(chunk)), chunk); err != nil {
				return nil, fmt.Errorf("restore open chunk of series %d: %w", sid, err)
			}
			if s.head.NumSamples() > 0 {
				ci.Reset(s.head.Bytes())
				ci.Next()
				s.mint, _ = ci.At()
				s.partEnd = partitionEnd(partitionOf(s.mint, db.partitionMs), db.partitionMs)
			}
		}
		t.insertLocked(xxhash.Sum64String(s.lbls), s)
		if s.numSamples() > 0 {
			t.countLocked(s, 1)
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	t.mu.allInHead = uint64(t.mu.numSeries) == t.mu.nextID-1
	if idle := db.opts.EvictIdle.Milliseconds(); !t.mu.allInHead && t.mu.maxT != minTime && t.mu.maxT >= math.MinInt64+idle {
		// Series evicted before the restart are not in the index; their
		// newest sample is before maxT - EvictIdle (evictLocked).
		t.mu.indexFrom = t.mu.maxT - idle
	}
	if u, ok, err := db.getUint64(t.ks.metaKey(nil, metaEvictedNewest)); err != nil {
		return nil, err
	} else if ok {
		t.mu.evictedNewest = int64(u ^ 1<<63)
		// Series a range deletion evicted are not in the head, and their
		// newest sample may be after maxT - EvictIdle.
		if t.mu.evictedNewest != math.MaxInt64 {
			t.mu.indexFrom = max(t.mu.indexFrom, t.mu.evictedNewest+1)
		}
	}
	// The last retention step's partition and period, if any.
	v, closer, err := db.pdb.Get(t.ks.metaKey(nil, metaRetain))
	stepped := err == nil
	cut := uint32(0)
	switch {
	case stepped:
		cut, t.mu.retainMs, err = decodeRetainMeta(v)
		closer.Close()
		if err != nil {
			return nil, fmt.Errorf("retention key of tenant %q: %w", name, err)
		}
	case !errors.Is(err, pebble.ErrNotFound):
		return nil, fmt.Errorf("read retention: %w", err)
	}
	t.mu.retainPart = retainPartition(t.mu.maxT, t.retentionMsLocked(&db.opts), db.partitionMs)
	if stepped {
		t.raiseRetainLocked(cut, db.partitionMs)
	}
	t.mu.evictEpoch = evictEpoch(t.mu.maxT, db.opts.EvictIdle.Milliseconds())
	if err := g.loadMetaLocked(t); err != nil {
		return nil, fmt.Errorf("load exemplars and metadata of tenant %q: %w", name, err)
	}
	return t, nil
}

// AppliedIndex returns the index of the last applied entry.
func (g *Group) AppliedIndex() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.applied
}

// replayed reports whether the group has applied every entry whose
// effects Pebble may hold (applied >= stored, Recovery in doc.go). Once
// true it stays true: stored moves past applied only on a reopen.
func (g *Group) replayed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.applied >= g.mu.stored
}

// tenantLocked returns the tenant named name, creating it (and writing its
// id to pb) if create is set. nil if it does not exist and create is false.
// Tenant ids are allocated in apply order, so replicas agree on them.
func (g *Group) tenantLocked(name string, create bool, pb *pebble.Batch) (*tenant, error) {
	if t, ok := g.mu.tenants[name]; ok || !create {
		return t, nil
	}
	// A tenant created by an entry after the checkpoint that is being
	// replayed already has an id in Pebble; load() found it. So a name
	// missing from the map is new.
	id := g.mu.nextTenant
	if id == math.MaxUint32 {
		return nil, fmt.Errorf("create tenant %q: tenant ids exhausted", name)
	}
	g.mu.nextTenant++
	if err := pb.Set(tenantNameKey(nil, g.id, name), binary.BigEndian.AppendUint32(nil, id), nil); err != nil {
		return nil, err
	}
	if err := pb.Set(groupKey(nil, g.id, kindNextTenant), binary.BigEndian.AppendUint32(nil, g.mu.nextTenant), nil); err != nil {
		return nil, err
	}
	t := newTenant(name, keyspace{group: g.id, tenant: id})
	g.mu.tenants[name] = t
	return t, nil
}

// DropGroup deletes every key of group id with one range delete (synced) and
// forgets the group: for a replica removed from this node. The Group must
// not be used afterwards (its Apply fails); a later OpenGroup(id) starts it
// empty. Do not call OpenGroup(id) concurrently with DropGroup(id).
func (db *DB) DropGroup(id uint32) error {
	db.mu.Lock()
	if db.mu.closed {
		db.mu.Unlock()
		return ErrClosed
	}
	g := db.mu.groups[id]
	delete(db.mu.groups, id)
	db.mu.Unlock()
	// Lock order: applyMu before db.mu (Apply checks closed() under
	// applyMu), so db.mu is released first.
	if g != nil {
		g.applyMu.Lock()
		defer g.applyMu.Unlock()
		g.fail(fmt.Errorf("group %d dropped", id))
	}
	lo := binary.BigEndian.AppendUint32(nil, id)
	hi := []byte{0xff, 0xff, 0xff, 0xff, 0xff} // above every key of group 2^32-1
	if id != math.MaxUint32 {
		hi = binary.BigEndian.AppendUint32(nil, id+1)
	}
	if err := db.pdb.DeleteRange(lo, hi, pebble.NoSync); err != nil {
		return fmt.Errorf("drop group %d: %w", id, err)
	}
	if err := db.syncPebble(); err != nil {
		return fmt.Errorf("drop group %d: %w", id, err)
	}
	return nil
}
