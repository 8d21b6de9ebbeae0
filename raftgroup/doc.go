// Package raftgroup replicates opaque write batches through a
// hashicorp/raft group. The Raft log is the write-ahead log: there is no
// second WAL, and a batch is acknowledged only after it is committed (in
// the fsynced log of a quorum) and applied by the local Applier.
//
// It owns the Raft log and stable store on disk, the FSM adapter, the
// snapshot protocol that ties log truncation to Applier checkpoints, and
// group commit. It must not import engine (an arch test enforces it): it
// declares Applier and cmd wires the engine to it. It never interprets a
// batch.
//
// A group has one replica (a single node, in-memory transport) or
// several on different nodes. A node's replicas share one listener: Mux
// reads a small header on every accepted connection and hands it to the
// group's raft.StreamLayer (Mux.Transport), or to the node's HTTP server
// for requests forwarded by other nodes. Options.Voters bootstraps a new
// group (every replica gets the same list), Options.Join opens a replica
// that waits to be added (Group.AddVoter on the leader). Reads use
// Group.VerifyRead (a read index). Metrics go to Options.Registerer,
// labelled with the group ID.
//
// # Caller protocol
//
//  1. Open the applier (the engine group) and note the index of its
//     durable checkpoint; the Applier reports it as CheckpointIndex.
//  2. g, err := Open(Options{Dir, ID, Applier, ...}). The first Open of a
//     Dir bootstraps a group of Voters (default: this replica alone), or
//     with Join waits to be added; later ones recover from the log. For
//     several replicas, Transport comes from the node's Mux
//     (Mux.Transport(group, ...)).
//     Open fails with ErrApplierBehind if the applier's checkpoint is
//     older than the last snapshot (its data was lost; the log it would
//     need is gone).
//  3. g.WaitLeader(ctx): after the election, raft replays the log entries
//     after the checkpoint to Apply; WaitLeader returns once they are
//     applied, so reads after it see every acknowledged write. Until then
//     Propose fails with ErrNotLeader. With several replicas, check
//     g.VerifyRead(ctx) before every read instead (leadership can move).
//  4. g.Propose(ctx, batch) from any number of goroutines. It returns the
//     entry's index after commit and apply, with the Applier's outcome for
//     the entry (opaque bytes, nil if none). ErrNotLeader (a *NotLeaderError naming the leader): not
//     proposed, send it to the leader. ErrLeadershipLost, ctx errors and
//     ErrClosed: the outcome is unknown, retry (apply of identical samples
//     is idempotent). ErrDiskFull (a *DiskFullError, or the log's own
//     disk-full error) and ErrLogFailed: not proposed, the disk has no
//     room or the log cannot write; retry later (see "Disk full").
//     ErrApplierFailed: the replica must be reopened.
//  5. Raft snapshots by itself every Options.SnapshotThreshold entries,
//     and the group once the entries since the last snapshot hold
//     Options.SnapshotMaxLogBytes or Options.SnapshotMaxLogAge has passed
//     (see "Snapshots"); g.Checkpoint() snapshots now (at a graceful
//     shutdown, so that the next start replays nothing).
//  6. g.Close(): stops raft and closes the log. Idempotent. Then close the
//     applier.
//
// # Apply and restart
//
// Raft calls Applier.Apply from one goroutine in log order, for committed
// LogCommand entries only. Apply must be deterministic and returns the
// entry's outcome, bytes identical on every replica that the group hands
// to the proposer without reading them (carried between nodes as they
// are); an error from Apply stops the group (it fails every later
// proposal with ErrApplierFailed and takes no more snapshots, so no log
// entry the applier lacks is deleted). Rejected: the outcome as an error
// value, which needed a codec for errors between nodes and a sentinel the
// engine could not import to tell a refusal from a failure.
//
// Raft starts with NoSnapshotRestoreOnStart: the applier's own durable
// state is the starting point. On restart raft replays the entries after
// its last snapshot; the FSM drops those at or below the applier's
// CheckpointIndex and hands the rest to Apply (Stats.Replayed counts
// them). The applier may apply without syncing (the engine does): what a
// crash loses after its checkpoint is replayed from the log.
//
// The engine's Applier (engine.NewApplier, which satisfies Applier
// without importing this package): CheckpointIndex is the index OpenGroup
// returned. Checkpoint must read the applied index before it checkpoints
// (idx := g.AppliedIndex(); err := g.Checkpoint(); return idx, err): read
// after, it could name entries applied during the checkpoint that are not
// in it. Apply returns per-series refusals and undecodable batches as the
// outcome, and any other engine error (I/O, the group's state unknown) as
// its error.
//
// INVARIANT: every snapshot's index is at or below a durable applier
// checkpoint, so the log always holds every entry after the applier's
// checkpoint. Open checks it.
//
// # Snapshots
//
// A raft snapshot here is a reference to an applier checkpoint, not a
// copy of the state. FSM.Snapshot (on raft's FSM goroutine, between
// applies) only notes the last applied command index N; Persist, on raft's
// snapshot goroutine concurrently with Apply, calls Applier.Checkpoint,
// which makes durable every entry applied before the call and returns the
// durable index C >= N, then writes the body below. Raft then deletes the
// log up to C' - TrailingLogs, where C' is raft's snapshot index. The
// rejected alternative, checkpointing in FSM.Snapshot, would block Apply
// for the whole checkpoint; streaming the state into the snapshot file
// would copy the whole engine at every snapshot for a single replica that
// never reads it.
//
// When: raft's own trigger counts entries only (SnapshotThreshold,
// 8,192), and a restart replays every entry after the last snapshot, so
// the replay grew with the entries' size: 8,192 entries of the make bench
// load are ~285 MB of log, 2.9-6.6 s to the first write after kill -9
// here (7-17 s on a busier day), and 5x that for a sender with 10,000-
// sample batches. The FSM counts the bytes of the entries it applies on
// every replica, and the group's snapshot loop asks raft for a snapshot
// (raft.Snapshot, the same path) once they reach SnapshotMaxLogBytes
// since the last one (64 MiB: ~1.1 s to ready, replaying at ~60 MB/s
// under that load), or SnapshotMaxLogAge (1 m) has passed with entries
// applied, or the writes stopped (no entry for SnapshotInterval) after
// at least a segment's worth (WALSegmentBytes) of entries, so the log's
// disk is freed when a load ends, not a minute later; Options.Quiesced
// is then told that the burst is over (the node returns the memory it
// held to the operating system). A group whose
// configuration has one server keeps no TrailingLogs behind a snapshot
// (raft.ReloadConfig, checked every SnapshotInterval): no replica can
// lag, and one that joins later catches up from a snapshot. The loop
// backs off after a failed snapshot and skips while the disk is full. A restart after a crash replays at
// most SnapshotMaxLogBytes plus what was applied while the last snapshot
// ran. docs/design.md "Restart time" has the measurements.
//
// Snapshot body (version 1), in a raft FileSnapshotStore in Dir/snapshots:
//
//	magic "mysn" | version:byte(1) | kind:byte | index:uint64 big-endian | state
//
// kind 0: a reference, state is empty; the applier holds the state up to
// index durably. Every snapshot a replica takes itself is kind 0. kind 1:
// the state follows as written by Applier.Snapshot and is read by
// Applier.Restore; index is the index the state covers. When raft on the
// leader opens a snapshot to send it to a replica that is behind the
// log's first entry, the snapshot store (streamingSnapshots) writes kind 1
// from the applier (concurrently with Apply; the engine streams a Pebble
// snapshot taken at a checkpoint) to a temporary file in
// Dir/snapshots-stream and sends that: raft sends the size before the
// body, so a pipe would not do. The data is copied only when a follower
// needs it. The streamed state may be newer than the snapshot's raft
// index; the receiver's FSM records the index Restore returns and drops
// the entries at or below it that the leader sends next.
//
// # Node listener
//
// Every connection to a node's Mux starts with
//
//	magic "myrx" | version:byte | kind:byte | group:uint32 big-endian
//
// kind 1 (KindRaft): raft RPCs of that group; kind 2 (KindHTTP): an HTTP
// connection forwarded by another node (group 0). The header is read
// within MuxOptions.HeaderTimeout (after the TLS handshake when TLS is
// on); a connection naming an unknown group or kind is closed. Raft's
// NetworkTransport then speaks its own protocol on the connection and
// pools connections per peer.
//
// Version 1 (no MuxOptions.Secret) is the header alone: mutual TLS
// authenticates the nodes, or nothing does (an open port, which cmd
// refuses without -raft.insecure). Version 2 (with a Secret, the same on
// every node) adds a challenge-response in both directions before any
// Raft or HTTP byte, all within HeaderTimeout (DialTimeout when dialing):
//
//	dialer   -> listener: header (version 2) | client nonce [32]
//	listener -> dialer:   server nonce [32] | HMAC(key, "myrx v2 server" | hello | server nonce | binding)
//	dialer   -> listener: HMAC(key, "myrx v2 client" | hello | server nonce | binding)
//
// where hello is the dialer's 42 bytes, key = HMAC-SHA256(secret,
// "myelin node listener v2"), HMAC is HMAC-SHA256, and binding is empty
// on plain TCP and 32 bytes of the TLS session's keying material (RFC
// 5705, label "EXPORTER-myelin-node-listener") on TLS. The dialer
// checks the listener's proof before it sends its own (a listener
// without the secret learns nothing but a nonce); the listener routes
// the connection only after checking the dialer's. A node of one
// version closes a connection of the other. Formats are pinned by
// testdata/mux_handshake.golden (TestMuxHandshakeGolden); muxauth.go has
// why each part is there, docs/design.md "Auth" the rejected designs.
//
// INVARIANT: with a Secret, no connection reaches a group's transport or
// the HTTP listener, and Dial returns none, before the other end has
// proven the secret on that connection.
//
// # Reads and membership
//
// Group.VerifyRead makes a read on the leader linearizable: it applies a
// barrier once per term (every entry earlier leaders committed is then
// applied) and confirms leadership with a quorum (raft VerifyLeader). A
// follower must not serve reads from its own state; cmd forwards them.
// AddVoter and RemoveServer change the configuration one server at a
// time (raft's own rules).
//
// An applier failure (ErrApplierFailed) shuts the replica's raft down:
// it leaves the group as if it had crashed, so it can neither lead nor
// vote with a state machine that no longer applies; the others go on if
// they are a quorum.
//
// # Group commit
//
// Every Propose is one raft entry. Raft (BatchApplyCh) takes every queued
// proposal, up to MaxAppendEntries, into one StoreLogs call, so one fsync
// covers all of them, and hands them to the FSM in one ApplyBatch.
// BenchmarkPropose, 20 KB batches, raft-wal, on the shared 2-core dev VM
// (medians of 4 paired runs): 1 proposer 2,240 proposals/s (46 MB/s,
// fsync-bound), 8: 6,400/s (131 MB/s), 64: 11,900/s (244 MB/s), 5.3x the
// single proposer.
//
// An extra layer that packs many batches into one entry was measured and
// rejected. Its best case (proposers=4/merge=16: 4 callers proposing 16
// batches per 320 KB entry, no queueing cost) is 1.21x the 64-proposer
// rate (range 1.03-1.29). Raft's cost per entry is about 10 ns per sample
// at 2,000 samples per batch, ~1% of the ingest CPU budget. And packing
// would give several batches one index, which breaks the Applier's one
// index per batch, the contract behind the engine's idempotent replay.
// Revisit if a profile shows raft's per-entry cost.
//
// # Disk full
//
// A node's writes stop before its disk does. Options.Disk is the node's
// DiskGuard: it reads the free space of the data directory (statfs,
// every second) and Propose refuses with a *DiskFullError (ErrDiskFull)
// while less than its minimum is free, and, once a write met ENOSPC,
// until the minimum plus a margin is free again. The refusal happens
// before the entry reaches raft, so the leader keeps leading and reads
// go on; the log and the engine report their ENOSPC errors to the guard.
// The metadata group (ProposeBelowDiskMinimum) is refused only once a
// write found the disk full.
//
// The raft-wal log (walStore) survives a disk that fills behind the
// guard's back (another process, no minimum):
//
//  1. raft-wal cannot retry a failed segment rotation: its tail stays
//     sealed and every later append fails, forever. So the log keeps a
//     spare segment, preallocated ahead, which a rotation renames into
//     place; when the spare cannot be made again, the group refuses
//     proposals (ErrDiskFull) while the current segment still holds the
//     ones in flight. Without a spare, a segment that cannot be
//     preallocated is created without (raft-wal supports that), so the
//     rotation still succeeds. Segments are preallocated a quarter
//     larger than their size, because the append that seals a segment
//     writes past it.
//  2. An append that fails anyway (a batch larger than the room left,
//     an I/O error) leaves raft-wal's writer unusable. The log then
//     fails every append and truncation at once (ErrDiskFull or
//     ErrLogFailed) and reopens itself once the guard sees room: a new
//     raft-wal on the same files and metadata, opened while the old one
//     serves reads, then swapped in; the entries of the failed append
//     are removed if they reached the file (raft was told they did not),
//     so no acknowledged entry is lost and no refused one appears. The
//     raft messages of the election cycle a single replica goes through
//     meanwhile (its appends fail, it steps down, elects itself, ...)
//     are logged at DEBUG; the log store logs the outage, at most every
//     5 minutes.
//
// A restart on a full disk opens the log (its tail has room, or is
// created without preallocation) and refuses writes until there is room.
// The Pebble log store has only the guard.
//
// # Log store
//
// Options.LogStore picks github.com/hashicorp/raft-wal (default, Dir/wal)
// or a Pebble instance of its own (Dir/log). Both fsync every StoreLogs.
// raft-wal was as fast or faster in every configuration: median ratios
// raft-wal/Pebble over alternating paired runs on the same machine (two
// sessions where given). BenchmarkLogStore, a synced StoreLogs of n
// 20 KB entries: 1.35x for n=1, 1.49x for n=16, 1.15x for n=64.
// BenchmarkPropose: 1.01x and 1.40x with 1 proposer, 1.23x and 1.66x with
// 8, 1.38x and 1.40x with 64. raft-wal writes each entry once to a
// preallocated segment file; Pebble writes it to its WAL and again to an
// SST once the memtable flushes.
//
// Pebble log store key schema (version 1):
//
//	'l' index:uint64 big-endian -> entry
//	's' key                     -> stable value (raft's term and vote;
//	                               uint64s are 8 bytes big-endian)
//	entry = version:byte(1) term:uvarint type:byte appendedAt:varint
//	        (unix ns, 0 if unset) nextensions:uvarint extensions data
//
// data runs to the end of the value. Truncation is one range tombstone.
//
// Directory layout of a replica:
//
//	Dir/wal/        raft-wal segments, wal-meta.db and the spare segment
//	                (LogStoreWAL)
//	Dir/log/        the Pebble log store (LogStorePebble)
//	Dir/snapshots/  raft snapshot metadata and the bodies above
//	Dir/snapshots-stream/  kind 1 bodies being sent (removed at Open)
package raftgroup
