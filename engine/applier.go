package engine

import (
	"io"

	"github.com/myelindb/myelin/write"
)

// Applier is a Group as the state machine of its Raft group: it has the
// methods of raftgroup.Applier, which cmd asserts (engine does not import
// raftgroup). Raft calls Apply, Snapshot and Restore from one goroutine
// and Checkpoint concurrently with Apply (raftgroup/doc.go, "Wiring the
// engine"); the Group's locks make that safe.
type Applier struct {
	g          *Group
	checkpoint uint64 // immutable: the index OpenGroup recovered to
}

// NewApplier returns the applier of g; checkpoint is the index OpenGroup
// returned with g, which Raft replays the log after.
func NewApplier(g *Group, checkpoint uint64) *Applier {
	return &Applier{g: g, checkpoint: checkpoint}
}

// Apply applies the log entry at index (Group.Apply) and returns what it
// refused, encoded for the proposer (write.AppendOutcome; nil when every
// sample was applied): the per-series refusals, or the error that refused
// an entry that does not decode, wrapping write.ErrCorrupt. The outcome
// is the same on every replica, and the entry counts as applied either
// way. An error is an I/O failure: the group's state is unknown until the
// store is reopened. The outcome does not alias entry.
func (a *Applier) Apply(index uint64, entry []byte) ([]byte, error) {
	o, err := a.g.apply(index, entry)
	if err != nil {
		return nil, err
	}
	return write.AppendOutcome(nil, o), nil
}

// CheckpointIndex is the index the group recovered to when it was opened
// (NewApplier's checkpoint).
func (a *Applier) CheckpointIndex() uint64 { return a.checkpoint }

// Checkpoint makes every entry applied before the call durable
// (Group.Checkpoint) and returns the index it covers.
func (a *Applier) Checkpoint() (uint64, error) {
	// Read before: read after, the index could name entries applied
	// while the checkpoint ran, which it may not hold.
	// INVARIANT: the returned index is at or below the checkpoint index
	// now durable, so Raft never truncates an entry the store lacks.
	idx := a.g.AppliedIndex()
	if err := a.g.Checkpoint(); err != nil {
		return 0, err
	}
	return idx, nil
}

// Snapshot streams the group's state for a replica that is behind the
// leader's log (Group.SnapshotIndex: a checkpoint, then every key of the
// group from a Pebble snapshot) and returns the index it covers.
func (a *Applier) Snapshot(w io.Writer) (uint64, error) {
	return a.g.SnapshotIndex(w)
}

// Restore replaces the group's state with a Snapshot stream (Group.Restore)
// and returns the index the group is then at.
func (a *Applier) Restore(r io.Reader) (uint64, error) {
	if err := a.g.Restore(r); err != nil {
		return 0, err
	}
	return a.g.AppliedIndex(), nil
}
