package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// Metadata log entries. A ring step is its ring.AppendStep encoding,
// which starts with ring.StepVersion (1); an entry starting with
// entryStarted records that a group's first replica bootstrapped it.
//
//	entryStarted | group:uvarint
const entryStarted byte = 0x80

// View is an immutable copy of the metadata: the ring state and which
// groups still await their bootstrap. Share it freely; never modify it.
type View struct {
	State *ring.State
	// Index is the metadata log index the view reflects.
	Index uint64
	// pending maps a group created but not yet bootstrapped to the node
	// that must bootstrap it (the node of its StepCreateGroup).
	pending map[ring.GroupID]ring.NodeID
	// removed: nodes removed from the metadata; true if drained.
	removed map[ring.NodeID]bool
}

// Removed reports whether node id was drained and removed: it may not
// join again under that ID (IDs are unique for all time).
func (v *View) Removed(id ring.NodeID) bool { return v.removed[id] }

// Gone reports whether node id was removed from the metadata, drained or
// after it was declared dead (a dead node may join again).
func (v *View) Gone(id ring.NodeID) bool {
	_, ok := v.removed[id]
	return ok
}

// Bootstraps reports whether node must bootstrap group g: it created it
// and nobody has started it yet.
func (v *View) Bootstraps(g ring.GroupID, node ring.NodeID) bool {
	return v.pending[g] == node && node != ""
}

// metaFSM is the metadata group's state machine (a raftgroup.Applier):
// a ring.State fed ring steps in log order. Its durable form is one file,
// rewritten atomically at every checkpoint (the state is small: a few KB
// for hundreds of groups).
//
// Checkpoint file and snapshot stream (version 1):
//
//	"mymt" | version:byte(1) | index:uint64 big-endian
//	pending:uvarint { group:uvarint node:str }  (sorted by group)
//	removed:uvarint { node:str drained:byte }   (removed nodes, sorted)
//	state: the rest, ring.AppendState
//
// str is a uvarint length and that many bytes (at most ring.MaxNameBytes).
// Equal metadata encodes to equal bytes: testdata/meta.golden holds a
// fixed view's encoding (TestMetaGolden). A format change updates this
// doc, metaVersion and the golden file together.
type metaFSM struct {
	path string
	// checkpoint is the index of the file read at open.
	checkpoint uint64
	// mu guards state, pending and index: Apply and Restore on raft's
	// goroutine against Checkpoint and Snapshot on others.
	mu      sync.Mutex
	state   *ring.State
	pending map[ring.GroupID]ring.NodeID
	removed map[ring.NodeID]bool
	index   uint64

	view    atomic.Pointer[View]
	changed func() // called after every change, outside mu
}

var _ raftgroup.Applier = (*metaFSM)(nil)

const (
	metaMagic   = "mymt"
	metaVersion = 1
)

// ErrCorruptMeta: the metadata checkpoint or snapshot does not decode.
var ErrCorruptMeta = errors.New("cluster: corrupt metadata")

func openMetaFSM(dir string, opts ring.Options, changed func()) (*metaFSM, error) {
	f := &metaFSM{path: filepath.Join(dir, "state"), pending: map[ring.GroupID]ring.NodeID{},
		removed: map[ring.NodeID]bool{}, changed: changed}
	b, err := os.ReadFile(f.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if f.state, err = ring.NewState(opts); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read metadata checkpoint: %w", err)
	default:
		if err := f.decode(b); err != nil {
			return nil, fmt.Errorf("metadata checkpoint %s: %w", f.path, err)
		}
		f.checkpoint = f.index
	}
	f.publishLocked()
	return f, nil
}

func (f *metaFSM) View() *View { return f.view.Load() }

// publishLocked stores a copy of the state as the current view.
func (f *metaFSM) publishLocked() {
	f.view.Store(&View{State: f.state.Clone(), Index: f.index, pending: maps.Clone(f.pending), removed: maps.Clone(f.removed)})
}

// Apply applies one metadata entry. An entry that does not decode or a
// step the state refuses (it no longer fits: planned on an older state)
// changes nothing; its error text is the entry's outcome. The metadata
// FSM never fails: its state is in memory until Checkpoint.
func (f *metaFSM) Apply(index uint64, entry []byte) ([]byte, error) {
	err := f.apply(index, entry)
	f.changed()
	if err != nil {
		return []byte(err.Error()), nil
	}
	return nil, nil
}

func (f *metaFSM) apply(index uint64, entry []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = index
	defer f.publishLocked()
	if len(entry) > 0 && entry[0] == entryStarted {
		g, n := binary.Uvarint(entry[1:])
		if n <= 0 || 1+n != len(entry) {
			return fmt.Errorf("%w: started entry %x", ErrCorruptMeta, entry)
		}
		delete(f.pending, ring.GroupID(g))
		return nil
	}
	st, err := ring.DecodeStep(entry)
	if err != nil {
		return err
	}
	drained := false
	if nd := f.state.Node(st.Node); nd != nil && st.Kind == ring.StepRemoveNode {
		drained = nd.State == ring.NodeDraining
	}
	if err := f.state.Apply(st); err != nil {
		return err
	}
	switch st.Kind {
	case ring.StepRemoveNode:
		f.removed[st.Node] = drained
	case ring.StepAddNode:
		delete(f.removed, st.Node) // a dead node came back
	}
	if st.Kind == ring.StepCreateGroup {
		f.pending[st.Group] = st.Node
	}
	return nil
}

func (f *metaFSM) CheckpointIndex() uint64 { return f.checkpoint }

func (f *metaFSM) Checkpoint() (uint64, error) {
	f.mu.Lock()
	b, idx := f.encodeLocked(), f.index
	f.mu.Unlock()
	if err := writeFileAtomic(f.path, b); err != nil {
		return 0, fmt.Errorf("checkpoint metadata: %w: %w", raftgroup.ErrApplierFailed, err)
	}
	return idx, nil
}

func (f *metaFSM) Snapshot(w io.Writer) (uint64, error) {
	f.mu.Lock()
	b, idx := f.encodeLocked(), f.index
	f.mu.Unlock()
	_, err := w.Write(b)
	return idx, err
}

func (f *metaFSM) Restore(r io.Reader) (uint64, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return 0, fmt.Errorf("restore metadata: %w", err)
	}
	f.mu.Lock()
	err = f.decode(b)
	if err == nil {
		f.publishLocked()
	}
	idx := f.index
	f.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("restore metadata: %w: %w", raftgroup.ErrApplierFailed, err)
	}
	// The restored state must survive a crash before the next checkpoint:
	// the log before it is gone.
	if _, err := f.Checkpoint(); err != nil {
		return 0, err
	}
	f.changed()
	return idx, nil
}

func (f *metaFSM) encodeLocked() []byte {
	b := append([]byte(metaMagic), metaVersion)
	b = binary.BigEndian.AppendUint64(b, f.index)
	groups := make([]ring.GroupID, 0, len(f.pending))
	for g := range f.pending {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	b = binary.AppendUvarint(b, uint64(len(groups)))
	for _, g := range groups {
		b = binary.AppendUvarint(b, uint64(g))
		b = appendStr(b, string(f.pending[g]))
	}
	removed := slices.Sorted(maps.Keys(f.removed))
	b = binary.AppendUvarint(b, uint64(len(removed)))
	for _, id := range removed {
		b = appendStr(b, string(id))
		drained := byte(0)
		if f.removed[id] {
			drained = 1
		}
		b = append(b, drained)
	}
	return ring.AppendState(b, f.state)
}

// decode replaces the FSM's contents with b; on error it changes nothing.
func (f *metaFSM) decode(b []byte) (err error) {
	if len(b) < len(metaMagic)+9 || !bytes.HasPrefix(b, []byte(metaMagic)) || b[len(metaMagic)] != metaVersion {
		return fmt.Errorf("%w: bad header", ErrCorruptMeta)
	}
	b = b[len(metaMagic)+1:]
	index := binary.BigEndian.Uint64(b)
	b = b[8:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return fmt.Errorf("%w: pending count", ErrCorruptMeta)
	}
	b = b[k:]
	pending := make(map[ring.GroupID]ring.NodeID, n)
	for range n {
		g, k := binary.Uvarint(b)
		if k <= 0 || g == 0 || g > 1<<32-1 {
			return fmt.Errorf("%w: pending group", ErrCorruptMeta)
		}
		var id string
		if id, b, err = readStr(b[k:]); err != nil {
			return err
		}
		pending[ring.GroupID(g)] = ring.NodeID(id)
	}
	n, k = binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return fmt.Errorf("%w: removed count", ErrCorruptMeta)
	}
	b = b[k:]
	removed := make(map[ring.NodeID]bool, n)
	for range n {
		var id string
		if id, b, err = readStr(b); err != nil {
			return err
		}
		if len(b) == 0 || b[0] > 1 {
			return fmt.Errorf("%w: removed node flag", ErrCorruptMeta)
		}
		removed[ring.NodeID(id)] = b[0] == 1
		b = b[1:]
	}
	s, err := ring.DecodeState(b)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptMeta, err)
	}
	f.state, f.pending, f.removed, f.index = s, pending, removed, index
	return nil
}

// writeFileAtomic writes b to path through a synced temporary file and a
// rename, then syncs the directory.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	fd, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = fd.Write(b)
	if err == nil {
		err = fd.Sync()
	}
	if err = errors.Join(err, fd.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

func appendStr(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func readStr(b []byte) (string, []byte, error) {
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) || l > ring.MaxNameBytes {
		return "", nil, fmt.Errorf("%w: string", ErrCorruptMeta)
	}
	return string(b[k : k+int(l)]), b[k+int(l):], nil
}

func appendStarted(dst []byte, g ring.GroupID) []byte {
	return binary.AppendUvarint(append(dst, entryStarted), uint64(g))
}

// DecodeMetadata decodes a metadata checkpoint or snapshot (the format of
// metaFSM) into a view. Errors wrap ErrCorruptMeta.
func DecodeMetadata(b []byte) (*View, error) {
	f := &metaFSM{}
	if err := f.decode(b); err != nil {
		return nil, err
	}
	return &View{State: f.state, Index: f.index, pending: f.pending, removed: f.removed}, nil
}

// AppendMetadata appends the encoding of v, as a checkpoint holds it.
func AppendMetadata(dst []byte, v *View) []byte {
	f := &metaFSM{state: v.State, pending: v.pending, removed: v.removed, index: v.Index}
	return append(dst, f.encodeLocked()...)
}
