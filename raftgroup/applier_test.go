package raftgroup

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// chainApplier is a deterministic fake Applier: its state is a hash chain
// over the applied (index, batch) pairs plus the list of them, persisted
// to one file by Checkpoint (write, fsync, rename), like the engine it
// ignores entries at or below its applied index.
type chainApplier struct {
	path      string
	recovered uint64        // checkpoint index at open
	failAt    uint64        // Apply of this index fails (errWriteFailed)
	gate      chan struct{} // if set, Apply waits until it is closed
	restores  atomic.Int32
	mu        struct {
		sync.Mutex
		st      chainState
		changed chan struct{} // closed and replaced by every Apply
	}
}

type chainState struct {
	Index   uint64
	Hash    [32]byte
	Entries []chainEntry
}

type chainEntry struct {
	Index uint64
	Batch string
}

// outcomeBad is the outcome of an entry "bad"; errWriteFailed the
// failure of Apply at failAt.
const outcomeBad = "bad batch"

var errWriteFailed = errors.New("write failed")

var _ Applier = (*chainApplier)(nil)

// openChain loads the applier's checkpoint from path if it exists.
func openChain(t testing.TB, path string) *chainApplier {
	t.Helper()
	a := &chainApplier{path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &a.mu.st); err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	a.recovered = a.mu.st.Index
	return a
}

func (a *chainApplier) Apply(index uint64, batch []byte) ([]byte, error) {
	if a.gate != nil {
		<-a.gate
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if index == a.failAt {
		return nil, fmt.Errorf("write entry %d: %w", index, errWriteFailed)
	}
	if index <= a.mu.st.Index {
		return nil, nil
	}
	h := sha256.New()
	h.Write(a.mu.st.Hash[:])
	h.Write(binary.BigEndian.AppendUint64(nil, index))
	h.Write(batch)
	h.Sum(a.mu.st.Hash[:0])
	a.mu.st.Index = index
	a.mu.st.Entries = append(a.mu.st.Entries, chainEntry{index, string(batch)})
	if a.mu.changed != nil {
		close(a.mu.changed)
		a.mu.changed = nil
	}
	if string(batch) == "bad" {
		return []byte(outcomeBad), nil
	}
	return nil, nil
}

func (a *chainApplier) CheckpointIndex() uint64 { return a.recovered }

func (a *chainApplier) Checkpoint() (uint64, error) {
	a.mu.Lock()
	b, err := json.Marshal(&a.mu.st)
	idx := a.mu.st.Index
	a.mu.Unlock()
	if err != nil {
		return 0, err
	}
	tmp := a.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	_, err = f.Write(b)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, a.path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(a.path)); err == nil {
			err = errors.Join(d.Sync(), d.Close())
		}
	}
	return idx, err
}

func (a *chainApplier) Snapshot(w io.Writer) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mu.st.Index, json.NewEncoder(w).Encode(&a.mu.st)
}

func (a *chainApplier) Restore(r io.Reader) (uint64, error) {
	a.restores.Add(1)
	var st chainState
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mu.st = st
	return st.Index, nil
}

// waitIndex waits until the applier applied index.
func (a *chainApplier) waitIndex(ctx context.Context, index uint64) error {
	for {
		a.mu.Lock()
		if a.mu.st.Index >= index {
			a.mu.Unlock()
			return nil
		}
		if a.mu.changed == nil {
			a.mu.changed = make(chan struct{})
		}
		ch := a.mu.changed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d: %w", index, ctx.Err())
		}
	}
}

func (a *chainApplier) state() chainState {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.mu.st
	st.Entries = append([]chainEntry(nil), st.Entries...)
	return st
}
