package raftgroup

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// Snapshot policy: raft snapshots by itself every SnapshotThreshold
// entries; the group also snapshots once the entries applied since the
// last snapshot hold SnapshotMaxLogBytes bytes, or SnapshotMaxLogAge has
// passed since it with entries applied (see "Snapshots" in doc.go).

// snapshotDue is the policy's decision: whether to snapshot now, given
// the bytes applied since the last snapshot and how long ago it was.
func snapshotDue(sinceBytes uint64, sinceAge time.Duration, maxBytes uint64, maxAge time.Duration) bool {
	if sinceBytes == 0 {
		return false // nothing new: raft would say so
	}
	return sinceBytes >= maxBytes || sinceAge >= maxAge
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
		sinceBytes, sinceAge := g.fsm.sinceSnapshot(now)
		if !snapshotDue(sinceBytes, sinceAge, g.opts.SnapshotMaxLogBytes, g.opts.SnapshotMaxLogAge) {
			continue
		}
		err := g.raft.Snapshot().Error()
		switch {
		case err == nil, errors.Is(err, raft.ErrNothingNewToSnapshot):
			backoff = minSnapshotBackoff
			notBefore = time.Time{}
		case errors.Is(err, raft.ErrRaftShutdown):
			return
		default:
			g.opts.Logger.Debug("snapshot by the log's size or age failed", "group", g.opts.ID, "err", err, "retry_in", backoff)
			notBefore = now.Add(backoff)
			backoff = min(2*backoff, maxSnapshotBackoff)
		}
	}
}
