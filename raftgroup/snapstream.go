package raftgroup

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/raft"
)

// streamingSnapshots is the group's raft.SnapshotStore: a FileSnapshotStore
// whose snapshots are references (kind 0), except when raft opens one to
// send it to a follower that is behind the log's first entry: Open then
// writes the applier's state (kind 1) to a temporary file and returns
// that. The state is copied only when a follower needs it.
//
// Why a temporary file and not a pipe: raft sends SnapshotMeta.Size in
// the InstallSnapshot request before the body, and the follower refuses a
// body of another length, so the size must be known before the first
// byte is sent.
type streamingSnapshots struct {
	*raft.FileSnapshotStore
	applier Applier
	tmpDir  string
}

var _ raft.SnapshotStore = (*streamingSnapshots)(nil)

// Open implements raft.SnapshotStore. Raft calls it on the leader to send
// a snapshot (and on a user Restore, which we never call).
func (s *streamingSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.FileSnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	kind, refIndex, err := readSnapHeader(rc)
	rc.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("open snapshot %s: %w", id, err)
	}
	if kind == snapKindState {
		// Already the state (installed from a leader): send it as is.
		return s.FileSnapshotStore.Open(id)
	}
	f, err := os.CreateTemp(s.tmpDir, "stream-*.snap")
	if err != nil {
		return nil, nil, fmt.Errorf("stream snapshot %s: %w", id, err)
	}
	tf := &tempFile{f}
	fail := func(err error) (*raft.SnapshotMeta, io.ReadCloser, error) {
		return nil, nil, errors.Join(fmt.Errorf("stream snapshot %s: %w", id, err), tf.Close())
	}
	// The header's index is known only after the state is written.
	if _, err := f.Write(appendSnapHeader(nil, snapKindState, 0)); err != nil {
		return fail(err)
	}
	idx, err := s.applier.Snapshot(f)
	if err != nil {
		return fail(err)
	}
	// INVARIANT: the streamed state covers every command entry at or
	// below the snapshot's index, so the entries after meta.Index that
	// the follower gets next are either in the state (dropped by its FSM)
	// or after it. The reference's index is the applier checkpoint
	// Persist took, which covers the last command raft had applied at the
	// snapshot; the applier's index only grows. (Comparing with
	// meta.Index itself was wrong: raft's index counts configuration
	// entries and no-ops, the applier's only commands, so a snapshot
	// taken after a membership change could never be sent.)
	if idx < refIndex {
		return fail(fmt.Errorf("applier state at %d, snapshot's checkpoint at %d: %w", idx, refIndex, ErrApplierBehind))
	}
	if _, err := f.WriteAt(appendSnapHeader(nil, snapKindState, idx), 0); err != nil {
		return fail(err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return fail(err)
	}
	m := *meta
	m.Size = size
	return &m, tf, nil
}

// tempFile removes itself on Close.
type tempFile struct{ *os.File }

func (f *tempFile) Close() error {
	return errors.Join(f.File.Close(), os.Remove(f.Name()))
}
