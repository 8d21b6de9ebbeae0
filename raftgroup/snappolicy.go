package raftgroup

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// Snapshot policy: raft snapshots by itself every SnapshotThreshold
// entries; the group also snapshots once the entries applied since the
// last snapshot hold SnapshotMaxLogBytes bytes, or SnapshotMaxLogAge has
// passed since it with entries applied, or the writes stopped (no entry
// for SnapshotInterval) after at least a log segment's worth of entries
// (see "Snapshots" in doc.go).

// snapshotPolicy is what the policy compares against.
type snapshotPolicy struct {
	maxBytes  uint64        // SnapshotMaxLogBytes
	maxAge    time.Duration // SnapshotMaxLogAge
	idle      time.Duration // SnapshotInterval: writes stopped
	idleBytes uint64        // WALSegmentBytes: worth a snapshot when idle
}

// due is the policy's decision: whether to snapshot now, given the bytes
// applied since the last snapshot, how long ago it was, and how long ago
// the last entry was applied.
//
// The idle rule frees the log's disk when a load stops (a backfill, a
// benchmark, a sender that went away) instead of up to maxAge later: the
// log is most of a node's data directory right after a load (a 64 MiB
// window and the trailing entries against the engine's ~0.65 bytes per
// sample). It waits for a segment's worth, since raft-wal frees whole
// segments and a checkpoint costs a flush: a trickle of writes with
// pauses does not checkpoint at every pause.
func (p snapshotPolicy) due(sinceBytes uint64, sinceAge, idle time.Duration) bool {
	if sinceBytes == 0 {
		return false // nothing new: raft would say so
	}
	return sinceBytes >= p.maxBytes || sinceAge >= p.maxAge || idle >= p.idle && sinceBytes >= p.idleBytes
}

// snapshotBackoff is the wait after a failed snapshot before the policy
// tries again (doubling up to maxSnapshotBackoff): a failing checkpoint
// (a full disk) costs a flush attempt each time.
const (
	minSnapshotBackoff = 2 * time.Second
	maxSnapshotBackoff = time.Minute
)

// snapshotLoop takes the policy's snapshots until Close: when the FSM
// says the bytes are reached, and every SnapshotInterval for the age.
// It skips while the disk is full.
func (g *Group) snapshotLoop() {
	defer g.wg.Done()
	tick := time.NewTicker(g.opts.SnapshotInterval)
	defer tick.Stop()
	var notBefore time.Time
	backoff := minSnapshotBackoff
	policy := snapshotPolicy{
		maxBytes: g.opts.SnapshotMaxLogBytes, maxAge: g.opts.SnapshotMaxLogAge,
		idle: g.opts.SnapshotInterval, idleBytes: uint64(g.opts.WALSegmentBytes),
	}
	for {
		select {
		case <-g.done:
			return
		case <-g.fsm.snapshotDue:
		case <-tick.C:
		}
		now := time.Now()
		if now.Before(notBefore) || g.opts.Disk.FullErr() != nil || g.fsm.failure() != nil {
			continue
		}
		g.trailForVoters()
		sinceBytes, sinceAge, idle := g.fsm.sinceSnapshot(now)
		if !policy.due(sinceBytes, sinceAge, idle) {
			continue
		}
		err := g.raft.Snapshot().Error()
		switch {
		case err == nil, errors.Is(err, raft.ErrNothingNewToSnapshot):
			backoff = minSnapshotBackoff
			notBefore = time.Time{}
			if err == nil && idle >= policy.idle && g.opts.Quiesced != nil {
				g.opts.Quiesced()
			}
		case errors.Is(err, raft.ErrRaftShutdown):
			return
		default:
			g.opts.Logger.Debug("snapshot by the log's size or age failed", "group", g.opts.ID, "err", err, "retry_in", backoff)
			notBefore = now.Add(backoff)
			backoff = min(2*backoff, maxSnapshotBackoff)
		}
	}
}

// trailForVoters keeps TrailingLogs entries behind a snapshot only while
// the group has another server that may lag: a group of one voter keeps
// none (whoever joins later catches up from a snapshot, as one that
// lagged past the trailing entries would). With the make bench load that
// is ~35 MB of log (1,024 entries of ~35 KB) a single node no longer
// keeps. raft-wal still keeps the entries of its open segment.
func (g *Group) trailForVoters() {
	cf := g.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	want := g.opts.TrailingLogs
	if len(cf.Configuration().Servers) <= 1 {
		want = 0
	}
	rc := g.raft.ReloadableConfig()
	if rc.TrailingLogs == want {
		return
	}
	rc.TrailingLogs = want
	if err := g.raft.ReloadConfig(rc); err != nil {
		g.opts.Logger.Warn("set the trailing log entries", "group", g.opts.ID, "entries", want, "err", err)
	}
}
