package raftgroup

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/types"
	"github.com/prometheus/client_golang/prometheus"
)

// LogStore names an implementation of the on-disk Raft log.
type LogStore string

const (
	// LogStoreWAL is github.com/hashicorp/raft-wal in Dir/wal (default:
	// faster, see "Log store" in doc.go).
	LogStoreWAL LogStore = "raft-wal"
	// LogStorePebble is a Pebble instance of its own in Dir/log.
	LogStorePebble LogStore = "pebble"
)

// The snapshot policy's defaults (docs/design.md "Restart time" has the
// measurements): a restart after kill -9 under the make bench load
// replays at most about this much log.
const (
	DefaultSnapshotMaxLogBytes = 64 << 20
	DefaultSnapshotMaxLogAge   = time.Minute
)

// Voter is a replica of a group: its Raft server ID and transport address.
type Voter struct {
	ID, Address string
}

// Options configure a group replica. The zero value of every field but
// Dir, ID and Applier is a usable default.
type Options struct {
	// Dir holds the replica's Raft log, stable store and snapshot metadata.
	// It is created if missing. Required.
	Dir string
	// ID is the replica's Raft server ID, unique in the cluster for all
	// time. Required.
	ID string
	// Name labels the replica's metrics (group="Name") and its log lines.
	// Empty means ID. A node with many groups, all with its node ID as
	// their Raft ID, names each by its group number.
	Name string
	// Applier is the state machine. Required.
	Applier Applier
	// Transport carries Raft RPCs; the group owns it after Open succeeds
	// (raft closes it). Nil means an in-memory transport with address ID,
	// enough for a group of one replica.
	Transport raft.Transport
	// Voters are the replicas a new group is bootstrapped with, this one
	// included; every replica of the group must be given the same list.
	// Nil means a group of this replica alone. Ignored when Dir already
	// holds the group (membership then lives in the log).
	Voters []Voter
	// Join: do not bootstrap a new Dir; the replica waits until a leader
	// adds it (Group.AddVoter on the leader) and catches up from the log
	// or a snapshot. Must not be set with Voters.
	Join bool
	// LogCacheEntries: recent log entries kept in memory, which the
	// leader replicates to followers without reading them back from disk.
	// Zero means 512 (two AppendEntries of MaxAppendEntries in flight);
	// negative means none, for a group of one replica, which never reads
	// entries back (512 remote-write batches are ~40 MB it would hold for
	// nothing).
	LogCacheEntries int
	// LogStore selects the log implementation. Empty means LogStoreWAL.
	LogStore LogStore
	// WALSegmentBytes: the size of one raft-wal segment file, allocated
	// on disk when the segment is created (LogStoreWAL). The log's disk
	// footprint is whole segments: the live entries plus up to one
	// segment. Zero means 8 MiB (raft-wal's own default is 64 MiB, which
	// made a tiny node's data directory 65 MB).
	WALSegmentBytes int

	// SnapshotThreshold: take a snapshot (an Applier checkpoint) once this
	// many entries were appended since the last one. Zero means 8192.
	// The log holds at most about SnapshotThreshold + TrailingLogs +
	// (entries per second) * 2 * SnapshotInterval entries, and a restart
	// replays at most that many less TrailingLogs.
	SnapshotThreshold uint64
	// SnapshotMaxLogBytes: also take a snapshot once the entries applied
	// since the last one hold this many bytes, so that a restart replays
	// a bounded amount of log whatever the entries' size. Zero means
	// DefaultSnapshotMaxLogBytes.
	SnapshotMaxLogBytes uint64
	// SnapshotMaxLogAge: also take a snapshot once this long has passed
	// since the last one and entries were applied since, so that a slow
	// trickle of writes is not replayed from hours back. Zero means
	// DefaultSnapshotMaxLogAge.
	SnapshotMaxLogAge time.Duration
	// SnapshotInterval: how often raft checks SnapshotThreshold (it waits a
	// random time in [interval, 2*interval)), and the group
	// SnapshotMaxLogAge. Zero means 2s.
	SnapshotInterval time.Duration
	// Quiesced, if set, is called after each snapshot the group took
	// while its writes had stopped (no entry for SnapshotInterval; see
	// "Snapshots" in doc.go): a burst of writes is over and checkpointed,
	// so what it held in memory (requests, entries, the checkpoint's
	// batch) is garbage. Called from the group's snapshot loop, which
	// waits for it: it must return quickly.
	Quiesced func()
	// TrailingLogs: entries kept behind a snapshot so a lagging follower can
	// catch up from the log instead of a snapshot. Zero means 1024.
	TrailingLogs uint64
	// HeartbeatTimeout: a follower that hears nothing from a leader for
	// this long starts an election; also the election timeout. A replica of
	// a single-voter group waits this long after start before it leads.
	// Zero means 1s.
	HeartbeatTimeout time.Duration
	// MaxAppendEntries: the most entries raft writes to the log in one
	// StoreLogs (one fsync) and sends in one AppendEntries RPC. Zero means
	// 256.
	MaxAppendEntries int
	// ApplyTimeout bounds how long Propose waits for room in raft's apply
	// queue when ctx has no deadline. Zero means 10s.
	ApplyTimeout time.Duration

	Logger *slog.Logger // nil means discard
	// Stopping reports whether the node is shutting down: raft's errors
	// about unreachable peers are then expected and logged at INFO (the
	// whole cluster may be stopping). Nil means never.
	Stopping func() bool
	// Registerer receives the replica's metrics (labelled group=ID), and
	// Close unregisters them. Nil means no metrics.
	Registerer prometheus.Registerer

	// Disk is the node's free-space guard: Propose refuses with
	// ErrDiskFull while it says the disk is full or under its minimum,
	// and the log reports disk-full errors to it. Nil means no guard
	// (the log still refuses while it cannot write).
	Disk *DiskGuard
	// ProposeBelowDiskMinimum: refuse proposals only once a write found
	// the disk full, not already under Disk's minimum. For the metadata
	// group, whose entries are few and small and which the cluster needs
	// to place, join and drain.
	ProposeBelowDiskMinimum bool

	// walVFS replaces raft-wal's file system (tests inject faults).
	walVFS types.VFS
	// walRetry: how often a broken raft-wal log retries to reopen; zero
	// means walRetry (tests shorten it).
	walRetry time.Duration
}

func (o Options) withDefaults() Options {
	if o.LogStore == "" {
		o.LogStore = LogStoreWAL
	}
	if o.WALSegmentBytes == 0 {
		o.WALSegmentBytes = 8 << 20
	}
	if o.SnapshotThreshold == 0 {
		o.SnapshotThreshold = 8192
	}
	if o.SnapshotInterval == 0 {
		o.SnapshotInterval = 2 * time.Second
	}
	if o.SnapshotMaxLogBytes == 0 {
		o.SnapshotMaxLogBytes = DefaultSnapshotMaxLogBytes
	}
	if o.SnapshotMaxLogAge == 0 {
		o.SnapshotMaxLogAge = DefaultSnapshotMaxLogAge
	}
	if o.TrailingLogs == 0 {
		o.TrailingLogs = 1024
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = time.Second
	}
	if o.MaxAppendEntries == 0 {
		o.MaxAppendEntries = 256
	}
	if o.ApplyTimeout == 0 {
		o.ApplyTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every problem of o at once.
func (o Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("missing Dir"))
	}
	if o.ID == "" {
		errs = append(errs, errors.New("missing ID"))
	}
	if o.Applier == nil {
		errs = append(errs, errors.New("missing Applier"))
	}
	if len(o.Voters) > 0 && !slices.ContainsFunc(o.Voters, func(v Voter) bool { return v.ID == o.ID }) {
		errs = append(errs, fmt.Errorf("ID %q is not one of Voters %v", o.ID, o.Voters))
	}
	if o.Join && len(o.Voters) > 0 {
		errs = append(errs, errors.New("set either Join or Voters: a joining replica is added by the leader"))
	}
	switch o.LogStore {
	case "", LogStorePebble, LogStoreWAL:
	default:
		errs = append(errs, fmt.Errorf("LogStore %q: want %q or %q", o.LogStore, LogStorePebble, LogStoreWAL))
	}
	if o.WALSegmentBytes != 0 && (o.WALSegmentBytes < 64<<10 || o.WALSegmentBytes > 1<<30) {
		errs = append(errs, fmt.Errorf("WALSegmentBytes %d: want 64 KiB to 1 GiB", o.WALSegmentBytes))
	}
	if o.HeartbeatTimeout != 0 && o.HeartbeatTimeout < 5*time.Millisecond {
		errs = append(errs, fmt.Errorf("HeartbeatTimeout %v: want at least 5ms", o.HeartbeatTimeout))
	}
	if o.SnapshotInterval < 0 || o.ApplyTimeout < 0 || o.SnapshotMaxLogAge < 0 {
		errs = append(errs, errors.New("SnapshotInterval, SnapshotMaxLogAge and ApplyTimeout must not be negative"))
	}
	if o.MaxAppendEntries < 0 || o.MaxAppendEntries > 1024 {
		errs = append(errs, fmt.Errorf("MaxAppendEntries %d: want 0..1024", o.MaxAppendEntries))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raftgroup options: %w", err)
	}
	return nil
}
