package raftgroup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Applier is what a group needs from storage (the engine, wired by cmd).
// Raft calls Apply and Restore from one goroutine in log order;
// Checkpoint and Snapshot run concurrently with Apply.
type Applier interface {
	// Apply applies the committed entry at index. It must be deterministic
	// (no clock, no rand, no map order): every replica applies the same
	// entries and must reach the same state. outcome is the entry's result
	// for its proposer (nil: nothing to report; per-series refusals, say),
	// opaque to the group and identical on every replica; the entry counts
	// as applied either way. A non-nil error means the applier can no
	// longer apply (an I/O error, state unknown): the group then stops
	// applying and truncating and fails every proposal with an error
	// wrapping ErrApplierFailed until it is reopened. entry belongs to
	// raft and is valid only during the call; outcome must not alias it.
	Apply(index uint64, entry []byte) (outcome []byte, err error)
	// CheckpointIndex is the index of the durable state the applier
	// recovered when it was opened; called once by Open. Entries after it
	// are replayed to Apply; entries at or below it are not.
	CheckpointIndex() uint64
	// Checkpoint makes durable every entry applied before the call and
	// returns the highest durable index. Afterwards raft may delete the
	// log up to that index.
	Checkpoint() (index uint64, err error)
	// Snapshot streams the applier's state (at a checkpoint it takes) for
	// a replica that is behind the log's first entry, and returns the
	// index it covers. Restore replaces the state with such a stream and
	// returns the index it covers. A single replica never calls them.
	Snapshot(w io.Writer) (index uint64, err error)
	Restore(r io.Reader) (index uint64, err error)
}

var (
	// ErrNotLeader: this replica is not the group's leader; the error is a
	// *NotLeaderError naming the leader if one is known. The entry was not
	// proposed.
	ErrNotLeader = errors.New("raftgroup: not the leader")
	// ErrLeadershipLost: the leader stepped down while the entry was in
	// flight; it may or may not be committed. Retry (apply is idempotent
	// for identical samples).
	ErrLeadershipLost = errors.New("raftgroup: leadership lost, entry may or may not be committed")
	// ErrClosed: the group is closed.
	ErrClosed = errors.New("raftgroup: closed")
	// ErrApplierFailed wraps the error of an Applier whose state is unknown
	// after an error; the group fails every later proposal.
	ErrApplierFailed = errors.New("raftgroup: applier failed")
	// ErrApplierBehind: the applier's durable state is older than the last
	// snapshot, so the log entries it would need were deleted.
	ErrApplierBehind = errors.New("raftgroup: applier behind the log")
	// ErrSnapshotUnavailable: a snapshot references state this replica does
	// not hold.
	ErrSnapshotUnavailable = errors.New("raftgroup: snapshot state unavailable")
	// ErrNoState: Recover found no log, vote or snapshot in the directory.
	ErrNoState = errors.New("raftgroup: no state to recover")
	// ErrSnapshotFormat: a snapshot body has an unknown header.
	ErrSnapshotFormat = errors.New("raftgroup: unknown snapshot format")
)

// logCacheEntries is the size of the cache of recent log entries: two
// AppendEntries of MaxAppendEntries (256) in flight to a follower, about
// 10 MB with 20 KB batches.
const logCacheEntries = 512

// NotLeaderError is returned (as ErrNotLeader) by Propose on a replica that
// is not the leader. Leader and LeaderID are empty when no leader is known.
type NotLeaderError struct {
	Leader   string // transport address of the leader
	LeaderID string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "raftgroup: not the leader, leader unknown"
	}
	return fmt.Sprintf("raftgroup: not the leader, leader is %s at %s", e.LeaderID, e.Leader)
}

func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// CorruptLogError reports an undecodable log store record.
type CorruptLogError struct {
	Index  uint64 // log index, 0 for a stable store value
	Reason string
}

func (e *CorruptLogError) Error() string {
	return fmt.Sprintf("raftgroup: corrupt log entry %d: %s", e.Index, e.Reason)
}

// Group is one replica of a Raft group. Its methods are safe for
// concurrent use.
type Group struct {
	opts    Options // immutable after Open
	raft    *raft.Raft
	fsm     *fsm
	logs    raft.LogStore
	metrics *metrics
	store   io.Closer // the log and stable store
	wal     *walStore // the store if it is raft-wal, else nil

	obsCh     chan raft.Observation
	observer  *raft.Observer
	done      chan struct{} // closed by Close: stops the observer goroutine
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	closing   atomic.Bool // set when Close starts, for the logger

	// readTerm is the term in which this replica, as leader, applied a
	// barrier: from then on every entry committed before its term is
	// applied here.
	readTerm atomic.Uint64
	// barrier is set while CaughtUp's barrier runs.
	barrier atomic.Bool
	// caughtUp is set once CaughtUp said yes; it never goes back.
	caughtUp atomic.Bool

	mu struct {
		sync.Mutex
		closed bool
		// leaderChanged is closed and replaced on every leader change.
		leaderChanged chan struct{}
	}
}

// Stats are counters of a replica since Open.
type Stats struct {
	FirstIndex   uint64 // first index in the log (0: empty)
	LastIndex    uint64 // last index in the log
	AppliedIndex uint64 // last index raft applied
	Applied      uint64 // entries handed to Applier.Apply
	Replayed     uint64 // of those, entries that were in the log at Open
	Skipped      uint64 // entries at or below the applier's checkpoint, not applied
	// SinceSnapshotBytes: bytes of the entries applied since the last
	// snapshot (since Open before the first): what a crash now would
	// replay, at most.
	SinceSnapshotBytes uint64
}

// Open opens (or on first start bootstraps as the single voter) the
// replica in opts.Dir. The replica leads only after an election
// (HeartbeatTimeout to twice that); WaitLeader waits for it.
func Open(opts Options) (*Group, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open group %s: %w", opts.ID, err)
	}
	g := &Group{opts: opts, done: make(chan struct{})}
	g.mu.leaderChanged = make(chan struct{})
	hlog := newGroupLogger(opts.Logger, func() bool {
		return g.closing.Load() || opts.Stopping != nil && opts.Stopping()
	}, func() bool {
		return g.wal != nil && g.wal.isBroken() || opts.Disk.FullErr() != nil
	})

	logs, stable, store, wal, err := openLogStore(opts, hlog)
	if err != nil {
		return nil, fmt.Errorf("open group %s: %w", opts.ID, err)
	}
	g.store, g.wal = store, wal
	// The leader reads every entry back from the log to replicate it;
	// the cache serves the recent ones from memory. Measured with
	// BenchmarkProposeReplicated (3 replicas, 64 proposers): raft-wal's
	// GetLog was 27% of the CPU profile without it.
	if n := cmp.Or(opts.LogCacheEntries, logCacheEntries); n > 0 {
		cache, err := raft.NewLogCache(n, logs)
		if err != nil {
			panic("BUG: raft log cache: " + err.Error()) // only for a capacity <= 0
		}
		logs = cache
	}
	g.logs = logs
	fail := func(err error) (*Group, error) {
		return nil, errors.Join(fmt.Errorf("open group %s: %w", opts.ID, err), g.store.Close())
	}
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(opts.Dir, 2, hlog)
	if err != nil {
		return fail(err)
	}
	tmpDir := filepath.Join(opts.Dir, "snapshots-stream")
	// Streams left by a crash are garbage; RemoveAll, then recreate.
	if err := errors.Join(os.RemoveAll(tmpDir), os.MkdirAll(tmpDir, 0o755)); err != nil {
		return fail(err)
	}
	snaps := &streamingSnapshots{FileSnapshotStore: fileSnaps, applier: opts.Applier, tmpDir: tmpDir}
	// INVARIANT: the applier's durable state covers the last snapshot, or
	// the entries between them are gone from the log.
	from := opts.Applier.CheckpointIndex()
	if snapIdx, err := lastSnapshotIndex(fileSnaps); err != nil {
		return fail(err)
	} else if from < snapIdx {
		return fail(fmt.Errorf("applier at %d, snapshot at %d: %w", from, snapIdx, ErrApplierBehind))
	}
	last, err := logs.LastIndex()
	if err != nil {
		return fail(err)
	}
	g.fsm = newFSM(opts.Applier, last, from, opts.SnapshotMaxLogBytes)

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(opts.ID)
	conf.HeartbeatTimeout = opts.HeartbeatTimeout
	conf.ElectionTimeout = opts.HeartbeatTimeout
	conf.LeaderLeaseTimeout = opts.HeartbeatTimeout / 2
	conf.MaxAppendEntries = opts.MaxAppendEntries
	conf.BatchApplyCh = true
	conf.SnapshotThreshold = opts.SnapshotThreshold
	conf.SnapshotInterval = opts.SnapshotInterval
	conf.TrailingLogs = opts.TrailingLogs
	conf.NoSnapshotRestoreOnStart = true // the applier recovers itself
	// A replica removed from the configuration stays a follower: a
	// cluster may add it back (a placement that moved away and back), and
	// its owner closes it once it knows it left.
	conf.ShutdownOnRemove = false
	conf.NoLegacyTelemetry = true
	conf.Logger = hlog

	trans := opts.Transport
	if trans == nil {
		_, trans = raft.NewInmemTransport(raft.ServerAddress(opts.ID))
	}
	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fail(err)
	}
	if !existing && !opts.Join {
		servers := []raft.Server{{Suffrage: raft.Voter, ID: conf.LocalID, Address: trans.LocalAddr()}}
		if len(opts.Voters) > 0 {
			servers = servers[:0]
			for _, v := range opts.Voters {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.ID), Address: raft.ServerAddress(v.Address)})
			}
		}
		err := raft.BootstrapCluster(conf, logs, stable, snaps, trans, raft.Configuration{Servers: servers})
		if err != nil {
			return fail(fmt.Errorf("bootstrap: %w", err))
		}
	}
	g.metrics = newMetrics(g)
	if opts.Registerer != nil {
		if err := g.metrics.register(opts.Registerer); err != nil {
			g.metrics.unregister(opts.Registerer)
			return fail(fmt.Errorf("register metrics: %w", err))
		}
	}
	g.raft, err = raft.NewRaft(conf, g.fsm, logs, stable, snaps, trans)
	if err != nil {
		if opts.Registerer != nil {
			g.metrics.unregister(opts.Registerer)
		}
		return fail(err)
	}
	// Non-blocking with one slot: a dropped observation means one is
	// pending, and the goroutine wakes the waiters after it anyway.
	g.obsCh = make(chan raft.Observation, 1)
	g.observer = raft.NewObserver(g.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	g.raft.RegisterObserver(g.observer)
	g.wg.Add(2)
	go g.watchLeader()
	go g.snapshotLoop()
	return g, nil
}

// openLogStore opens the replica's log and stable store (one store; the
// closer closes it). wal is the raft-wal store, nil for Pebble.
func openLogStore(opts Options, hlog hclog.Logger) (logs raft.LogStore, stable raft.StableStore, store io.Closer, wal *walStore, err error) {
	switch opts.LogStore {
	case LogStorePebble:
		p, err := openPebbleLog(filepath.Join(opts.Dir, "log"), opts.Logger)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		return p, p, p, nil, nil
	}
	w, err := openWALStore(opts, hlog)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return w, w, w, w, nil
}

// Recover rewrites the stopped replica in opts.Dir into a group whose
// only members are voters (raft's RecoverCluster): it replays the log
// after the applier's checkpoint into opts.Applier, checkpoints it, and
// records the new configuration in a snapshot that replaces the log.
// The next Open starts from there, with the new configuration and the
// same data. It is how a replica's data moves under a new Raft server
// ID. Idempotent: recovering a recovered replica changes nothing but the
// snapshot. A directory without state is ErrNoState.
func Recover(opts Options, voters []Voter) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	hlog := newHCLogger(opts.Logger, nil)
	logs, stable, store, _, err := openLogStore(opts, hlog)
	if err != nil {
		return fmt.Errorf("recover group %s: %w", opts.ID, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(opts.Dir, 2, hlog)
	if err != nil {
		return errors.Join(fmt.Errorf("recover group %s: %w", opts.ID, err), store.Close())
	}
	last, err := logs.LastIndex()
	if err != nil {
		return errors.Join(fmt.Errorf("recover group %s: %w", opts.ID, err), store.Close())
	}
	if ok, err := raft.HasExistingState(logs, stable, snaps); err != nil || !ok {
		if err == nil {
			err = ErrNoState
		}
		return errors.Join(fmt.Errorf("recover group %s: %w", opts.ID, err), store.Close())
	}
	f := newFSM(opts.Applier, last, opts.Applier.CheckpointIndex(), opts.SnapshotMaxLogBytes)
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(opts.ID)
	conf.Logger = hlog
	conf.NoSnapshotRestoreOnStart = true
	_, trans := raft.NewInmemTransport(raft.ServerAddress(opts.ID))
	var servers []raft.Server
	for _, v := range voters {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.ID), Address: raft.ServerAddress(v.Address)})
	}
	err = raft.RecoverCluster(conf, f, logs, stable, snaps, trans, raft.Configuration{Servers: servers})
	if ferr := f.failure(); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		err = fmt.Errorf("recover group %s: %w", opts.ID, err)
	}
	return errors.Join(err, trans.Close(), store.Close())
}

func lastSnapshotIndex(snaps raft.SnapshotStore) (uint64, error) {
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return 0, err
	}
	_, rc, err := snaps.Open(metas[0].ID)
	if err != nil {
		return 0, fmt.Errorf("open snapshot %s: %w", metas[0].ID, err)
	}
	defer rc.Close()
	_, idx, err := readSnapHeader(rc)
	if err != nil {
		return 0, fmt.Errorf("snapshot %s: %w", metas[0].ID, err)
	}
	return idx, nil
}

// watchLeader wakes WaitLeader calls on every leader change until Close.
// When the applier fails it shuts raft down: the replica leaves the group
// as if it had crashed (the others go on if they are a quorum) instead of
// voting, or leading, with a state machine that no longer applies.
func (g *Group) watchLeader() {
	defer g.wg.Done()
	failed := g.fsm.failedCh
	for {
		select {
		case <-failed:
			failed = nil
			g.opts.Logger.Error("applier failed: replica leaves the group until reopened",
				"group", g.opts.ID, "err", g.fsm.failure())
			if err := g.raft.Shutdown().Error(); err != nil {
				g.opts.Logger.Error("shut down raft after applier failure", "group", g.opts.ID, "err", err)
			}
			g.mu.Lock()
			close(g.mu.leaderChanged)
			g.mu.leaderChanged = make(chan struct{})
			g.mu.Unlock()
		case <-g.obsCh:
			g.mu.Lock()
			close(g.mu.leaderChanged)
			g.mu.leaderChanged = make(chan struct{})
			g.mu.Unlock()
		case <-g.done:
			return
		}
	}
}

// WaitLeader blocks until the group has a leader; if it is this replica,
// also until the entries it inherited are applied (a raft barrier), so
// reads after it see every acknowledged write.
func (g *Group) WaitLeader(ctx context.Context) error {
	for {
		g.mu.Lock()
		closed, changed := g.mu.closed, g.mu.leaderChanged
		g.mu.Unlock()
		if closed {
			return fmt.Errorf("wait for leader of %s: %w", g.opts.ID, ErrClosed)
		}
		if _, id := g.raft.LeaderWithID(); id != "" {
			if string(id) != g.opts.ID {
				return nil
			}
			term := g.raft.CurrentTerm()
			if err := g.raft.Barrier(g.timeout(ctx)).Error(); err != nil {
				return fmt.Errorf("barrier of %s: %w", g.opts.ID, g.mapErr(err))
			}
			g.readTerm.Store(term) // as VerifyRead's barrier
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for leader of %s: %w", g.opts.ID, ctx.Err())
		}
	}
}

func (g *Group) timeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return g.opts.ApplyTimeout
}

// Propose appends batch to the group's log and returns its index once it
// is committed and applied, with the outcome Applier.Apply returned for it.
// Concurrent proposals share log writes and fsyncs (group commit, see
// doc.go). Propose takes ownership of batch: raft may still read it after
// Propose returns (replication, its log cache), so never modify it. When ctx ends first, Propose returns ctx's error
// and the entry may still commit.
func (g *Group) Propose(ctx context.Context, batch []byte) (index uint64, outcome []byte, err error) {
	start := time.Now()
	idx, outcome, err := g.propose(ctx, batch)
	result := resultOK
	switch {
	case err == nil && outcome != nil:
		result = resultOutcome
		g.metrics.propose.Observe(time.Since(start).Seconds())
	case err == nil:
		g.metrics.propose.Observe(time.Since(start).Seconds())
	case errors.Is(err, ErrApplierFailed):
		result = resultApplierFail
	case errors.Is(err, ErrNotLeader):
		result = resultNotLeader
	case errors.Is(err, ErrDiskFull):
		result = resultDiskFull
	case errors.Is(err, ErrLogFailed):
		result = resultLogFailed
	default:
		result = resultUnknown
	}
	g.metrics.proposals.WithLabelValues(result).Inc()
	return idx, outcome, err
}

func (g *Group) propose(ctx context.Context, batch []byte) (uint64, []byte, error) {
	if err := g.fsm.failure(); err != nil {
		return 0, nil, fmt.Errorf("propose to %s: %w", g.opts.ID, err)
	}
	if err := g.writes(); err != nil {
		return 0, nil, fmt.Errorf("propose to %s: %w", g.opts.ID, err)
	}
	wait := ctx.Done() != nil
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return 0, nil, fmt.Errorf("propose to %s: %w", g.opts.ID, ErrClosed)
	}
	if wait {
		g.wg.Add(1) // for the waiter below; before Close's wg.Wait
	}
	g.mu.Unlock()
	if g.raft.State() != raft.Leader {
		if wait {
			g.wg.Done()
		}
		return 0, nil, g.notLeader()
	}
	var failedBefore uint64
	if g.wal != nil {
		failedBefore, _ = g.wal.failed()
	}
	f := g.raft.Apply(batch, g.timeout(ctx))
	if wait {
		// Wait for the future in a goroutine of ours so ctx can end the
		// wait; raft resolves every future by the end of its shutdown.
		done := make(chan struct{})
		go func() {
			defer g.wg.Done()
			_ = f.Error()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("propose to %s: %w", g.opts.ID, ctx.Err())
		}
	}
	if err := f.Error(); err != nil {
		if g.wal != nil {
			// The log refused the entry (raft's log cache keeps only the
			// text of the store's error, and the log may have reopened
			// since): say why.
			if n, werr := g.wal.failed(); n != failedBefore && werr != nil {
				err = werr
			}
		}
		return 0, nil, fmt.Errorf("propose to %s: %w", g.opts.ID, g.mapErr(err))
	}
	switch r := f.Response().(type) {
	case error:
		return f.Index(), nil, r
	case []byte:
		return f.Index(), r, nil
	}
	return f.Index(), nil, nil
}

// writes returns nil if the replica may append an entry now; else a
// *DiskFullError or an error wrapping ErrDiskFull or ErrLogFailed.
// Options.Disk refuses below its minimum free space (only once the disk
// is full for a group with ProposeBelowDiskMinimum); the log refuses
// while it cannot write.
func (g *Group) writes() error {
	disk := g.opts.Disk.Err
	if g.opts.ProposeBelowDiskMinimum {
		disk = g.opts.Disk.FullErr
	}
	if err := disk(); err != nil {
		return err
	}
	if g.wal != nil {
		return g.wal.writes()
	}
	return nil
}

// CaughtUp returns nil once the replica has applied the entries its log
// held when it opened (after a restart raft leads before it has applied
// them, and writes wait behind the replay), else an error saying how far
// the replay is. Once it has said yes it always does: a later change of
// leader does not make the replica replay anything, and /ready must not
// flap with elections.
//
// Before that, on the leader the replay is done once an entry after the
// log at open is applied, or a barrier in its term is (VerifyRead's):
// CaughtUp starts one and says no until it is done. (Raft's AppliedIndex
// counts the entries queued for the state machine, up to thousands ahead
// of it, and the last entry at open may be one raft does not hand to the
// FSM.) A follower compares raft's applied index with its log at open,
// or with its leader's commit index when the leader replaced its tail.
func (g *Group) CaughtUp() error {
	if g.caughtUp.Load() {
		return nil
	}
	if err := g.caughtUpNow(); err != nil {
		return err
	}
	g.caughtUp.Store(true)
	return nil
}

func (g *Group) caughtUpNow() error {
	if g.raft.State() == raft.Leader {
		term := g.raft.CurrentTerm()
		if g.readTerm.Load() == term || g.fsm.lastIndex.Load() > g.fsm.openLast || g.fsm.openLast == 0 {
			return nil
		}
		g.startBarrier(term)
	} else {
		applied := g.raft.AppliedIndex()
		if applied >= g.fsm.openLast {
			return nil
		}
		if _, id := g.raft.LeaderWithID(); id != "" {
			if commit := g.raft.CommitIndex(); commit > 0 && applied >= commit {
				return nil
			}
		}
	}
	if last := g.fsm.lastIndex.Load(); last < g.fsm.openLast {
		return fmt.Errorf("replaying its log: entry %d of %d applied", last, g.fsm.openLast)
	}
	return errors.New("confirming it has applied its log (a barrier)")
}

// startBarrier applies a barrier in term, in a goroutine of the group's,
// unless one runs; readTerm records it.
func (g *Group) startBarrier(term uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.closed || !g.barrier.CompareAndSwap(false, true) {
		return
	}
	g.wg.Go(func() {
		defer g.barrier.Store(false)
		if g.raft.Barrier(g.opts.ApplyTimeout).Error() == nil {
			g.readTerm.Store(term)
		}
	})
}

// Writable returns nil if a proposal to this replica would be appended
// to the log, else why not (ErrDiskFull, ErrLogFailed, ErrApplierFailed).
// For /ready: a replica that cannot write cannot serve writes.
func (g *Group) Writable() error {
	if err := g.fsm.failure(); err != nil {
		return err
	}
	return g.writes()
}

func (g *Group) notLeader() error {
	addr, id := g.raft.LeaderWithID()
	return &NotLeaderError{Leader: string(addr), LeaderID: string(id)}
}

func (g *Group) mapErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return g.notLeader()
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	}
	return err
}

// Checkpoint takes a snapshot now: the applier checkpoints, then raft
// deletes the log up to the checkpoint less TrailingLogs. Raft also does
// this by itself every SnapshotThreshold entries; cmd calls Checkpoint
// at a graceful shutdown so the next start replays nothing.
//
// Raft refuses a snapshot while the newest configuration entry is not
// applied yet ("cannot take snapshot now, wait until the configuration
// entry at N has been applied"): a replica just added or a membership
// change in flight. Checkpoint waits up to configWait for it, then gives
// up without an error: the log holds every entry, and the next start
// replays the few since the last checkpoint (a replica that lost its
// quorum may never apply the entry).
func (g *Group) Checkpoint() error {
	if err := g.fsm.failure(); err != nil {
		return fmt.Errorf("checkpoint %s: %w", g.opts.ID, err)
	}
	deadline := time.Now().Add(configWait)
	for {
		err := g.raft.Snapshot().Error()
		switch {
		case err == nil || errors.Is(err, raft.ErrNothingNewToSnapshot):
			return nil
		case configPending(err) && time.Now().Before(deadline):
			time.Sleep(10 * time.Millisecond)
			continue
		case configPending(err):
			return nil
		}
		return fmt.Errorf("checkpoint %s: %w", g.opts.ID, g.mapErr(err))
	}
}

// configWait bounds how long Checkpoint waits for a configuration entry
// to be applied.
const configWait = 2 * time.Second

// configPending reports whether err is raft's refusal to snapshot before
// its newest configuration entry is applied (an error without a
// sentinel: its text is what there is).
func configPending(err error) bool {
	return strings.Contains(err.Error(), "cannot take snapshot now, wait until the configuration entry")
}

// Leader returns the ID and transport address of the group's leader as
// this replica knows it; empty strings when no leader is known.
func (g *Group) Leader() (id, address string) {
	addr, lid := g.raft.LeaderWithID()
	return string(lid), string(addr)
}

// Err returns the applier failure that stopped the replica (wrapping
// ErrApplierFailed), or nil.
func (g *Group) Err() error { return g.fsm.failure() }

// Stats returns the replica's counters.
func (g *Group) Stats() Stats {
	first, _ := g.logs.FirstIndex() // 0 on error: Stats is for display and tests
	return Stats{
		FirstIndex:   first,
		LastIndex:    g.raft.LastIndex(),
		AppliedIndex: g.raft.AppliedIndex(),
		Applied:      g.fsm.applied.Load(),
		Replayed:     g.fsm.replayed.Load(),
		Skipped:      g.fsm.skipped.Load(),
		SinceSnapshotBytes: func() uint64 {
			b, _, _ := g.fsm.sinceSnapshot(time.Now())
			return b
		}(),
	}
}

// Close shuts raft down (in-flight proposals fail with ErrClosed or
// ErrLeadershipLost), stops the group's goroutines and closes the log. It
// does not checkpoint. Close is idempotent; later calls return the first
// call's error.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		g.closing.Store(true)
		g.mu.Lock()
		g.mu.closed = true
		g.mu.Unlock()
		err := g.raft.Shutdown().Error()
		g.raft.DeregisterObserver(g.observer)
		close(g.done)
		g.wg.Wait()
		if g.opts.Registerer != nil {
			g.metrics.unregister(g.opts.Registerer)
		}
		g.closeErr = errors.Join(err, g.store.Close())
		if g.closeErr != nil {
			g.closeErr = fmt.Errorf("close group %s: %w", g.opts.ID, g.closeErr)
		}
	})
	return g.closeErr
}
