package raftgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Snapshot body (see "Snapshots" in doc.go).
const (
	snapMagic      = "mysn"
	snapVersion    = 1
	snapKindRef    = 0 // the state is the applier's own checkpoint
	snapKindState  = 1 // Applier.Snapshot's stream follows the header
	snapHeaderSize = len(snapMagic) + 2 + 8
)

// fsm adapts an Applier to raft.BatchingFSM. Raft calls ApplyBatch,
// Snapshot and Restore from its one FSM goroutine, and Persist from the
// snapshot goroutine, concurrently with ApplyBatch.
//
// Locking: the counters are atomics read by Stats; failed is set once.
type fsm struct {
	applier Applier
	// openLast is the last log index when the group was opened: entries
	// up to it that reach the applier are replay.
	openLast uint64

	skipThrough atomic.Uint64 // entries <= this are already in the applier's state
	lastIndex   atomic.Uint64 // index of the last entry raft handed to ApplyBatch
	lastCommand atomic.Uint64 // index of the last LogCommand seen (applied or skipped)
	applied     atomic.Uint64 // entries handed to Applier.Apply
	replayed    atomic.Uint64 // of those, entries with index <= openLast
	skipped     atomic.Uint64 // entries not applied because index <= skipThrough
	failed      atomic.Pointer[error]
	// failedCh is closed when failed is set.
	failedCh chan struct{}

	// The snapshot policy's counters: bytes of command entries applied
	// since open, their count at the last snapshot, and its time (unix
	// ns; the open's until the first).
	maxLogBytes  uint64 // Options.SnapshotMaxLogBytes, immutable
	appliedBytes atomic.Uint64
	snapBytes    atomic.Uint64
	snapAt       atomic.Int64
	// appliedAt is the time (unix ns) of the last command entry applied.
	appliedAt atomic.Int64
	// snapshotDue gets a value when appliedBytes reaches maxLogBytes past
	// the last snapshot (one slot: a pending signal is enough).
	snapshotDue chan struct{}
}

func newFSM(a Applier, openLast, checkpoint, maxLogBytes uint64) *fsm {
	f := &fsm{applier: a, openLast: openLast, failedCh: make(chan struct{}),
		maxLogBytes: maxLogBytes, snapshotDue: make(chan struct{}, 1)}
	f.skipThrough.Store(checkpoint)
	f.snapAt.Store(time.Now().UnixNano())
	return f
}

// sinceSnapshot returns the bytes applied since the last snapshot, how
// long ago it was, and how long ago the last entry was applied.
func (f *fsm) sinceSnapshot(now time.Time) (bytes uint64, age, idle time.Duration) {
	return f.appliedBytes.Load() - f.snapBytes.Load(), now.Sub(time.Unix(0, f.snapAt.Load())), now.Sub(time.Unix(0, f.appliedAt.Load()))
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) failure() error {
	if p := f.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in order. The response of an entry
// is the outcome Applier.Apply returned for it ([]byte, nil if none), or
// the failure (an error wrapping ErrApplierFailed); raft hands it to the
// entry's future on the leader.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	resp := make([]any, len(logs))
	if len(logs) > 0 {
		defer f.lastIndex.Store(logs[len(logs)-1].Index)
	}
	now := time.Now().UnixNano() // for the snapshot policy only
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		f.lastCommand.Store(l.Index)
		if l.Index <= f.skipThrough.Load() {
			f.skipped.Add(1)
			continue
		}
		if err := f.failure(); err != nil {
			resp[i] = err
			continue
		}
		outcome, err := f.applier.Apply(l.Index, l.Data)
		f.applied.Add(1)
		f.appliedAt.Store(now)
		if n := f.appliedBytes.Add(uint64(len(l.Data))); n-f.snapBytes.Load() >= f.maxLogBytes {
			select {
			case f.snapshotDue <- struct{}{}:
			default:
			}
		}
		if l.Index <= f.openLast {
			f.replayed.Add(1)
		}
		if err != nil {
			if !errors.Is(err, ErrApplierFailed) {
				err = fmt.Errorf("%w: %w", ErrApplierFailed, err)
			}
			err = fmt.Errorf("apply entry %d: %w", l.Index, err)
			if f.failed.CompareAndSwap(nil, &err) {
				close(f.failedCh)
			}
			resp[i] = err
			continue
		}
		if outcome != nil {
			resp[i] = outcome
		}
	}
	return resp
}

// Snapshot implements raft.FSM. It runs between applies and returns at
// once; the checkpoint happens in Persist.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.failure(); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &fsmSnapshot{f: f, covers: f.lastCommand.Load(), bytes: f.appliedBytes.Load()}, nil
}

// Restore implements raft.FSM: it is called when a leader installs a
// snapshot on this replica (never at start: NoSnapshotRestoreOnStart).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	kind, idx, err := readSnapHeader(rc)
	if err != nil {
		return err
	}
	switch kind {
	case snapKindState:
		got, err := f.applier.Restore(rc)
		if err != nil {
			return fmt.Errorf("restore snapshot at %d: %w", idx, err)
		}
		idx = got
	case snapKindRef:
		// A reference only describes a state this replica already holds.
		if f.skipThrough.Load() < idx {
			return fmt.Errorf("restore snapshot at %d: %w", idx, ErrSnapshotUnavailable)
		}
	}
	if idx > f.skipThrough.Load() {
		f.skipThrough.Store(idx)
	}
	return nil
}

// fsmSnapshot is a snapshot taken by raft: Persist checkpoints the applier
// and records the checkpoint's index.
type fsmSnapshot struct {
	f      *fsm
	covers uint64 // last LogCommand index raft had applied at Snapshot
	bytes  uint64 // fsm.appliedBytes at Snapshot
}

// Persist checkpoints the applier (concurrently with Apply) and writes the
// reference header. Raft truncates the log only after Persist succeeded.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	idx, err := s.f.applier.Checkpoint()
	if err == nil && idx < s.covers {
		err = fmt.Errorf("applier checkpointed index %d, want at least %d: %w", idx, s.covers, ErrApplierBehind)
	}
	if err == nil {
		_, err = sink.Write(appendSnapHeader(nil, snapKindRef, idx))
	}
	if err != nil {
		return errors.Join(fmt.Errorf("persist snapshot: %w", err), sink.Cancel())
	}
	if err := sink.Close(); err != nil {
		return err
	}
	// The checkpoint covers at least the entries applied before Snapshot.
	s.f.snapBytes.Store(s.bytes)
	s.f.snapAt.Store(time.Now().UnixNano())
	return nil
}

func (s *fsmSnapshot) Release() {}

func appendSnapHeader(dst []byte, kind byte, index uint64) []byte {
	dst = append(dst, snapMagic...)
	dst = append(dst, snapVersion, kind)
	return binary.BigEndian.AppendUint64(dst, index)
}

func readSnapHeader(r io.Reader) (kind byte, index uint64, err error) {
	var h [snapHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, fmt.Errorf("read snapshot header: %w", err)
	}
	if string(h[:4]) != snapMagic || h[4] != snapVersion || h[5] > snapKindState {
		return 0, 0, fmt.Errorf("read snapshot header %x: %w", h[:6], ErrSnapshotFormat)
	}
	return h[5], binary.BigEndian.Uint64(h[6:]), nil
}

func unixNano(ns int64) time.Time { return time.Unix(0, ns) }
