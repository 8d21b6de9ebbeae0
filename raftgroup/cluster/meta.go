package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/myelindb/myelin/internal/atomicfile"
	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// Metadata log entries: a ring step (ring.AppendStep, first byte
// ring.StepVersion, 1), a rule change (0x81, rules.go) or a cache
// generation bump (0x82, cachegen.go). Logs written before StepStartGroup existed may
// also hold
//
//	entryStarted | group:uvarint
//
// which applies as StepStartGroup of that group.
const entryStarted byte = 0x80

// View is an immutable copy of the metadata: the ring state and the log
// index it reflects. Share it freely; never modify it.
type View struct {
	State *ring.State
	// Index is the metadata log index the view reflects.
	Index uint64
	// Rules are the tenants' rule groups (nil: none).
	Rules *RuleGroups
	// CacheGens are the tenants' results-cache generations (nil: all
	// zero).
	CacheGens *CacheGenerations

	ruleRing *ruleRing // RuleOwner's, nil: built per call
}

// Removed reports whether node id was drained and removed: it may not
// join again under that ID (IDs are unique for all time).
func (v *View) Removed(id ring.NodeID) bool {
	_, drained := v.State.WasRemoved(id)
	return drained
}

// Gone reports whether node id was removed from the metadata, drained or
// after it was declared dead (a dead node may join again).
func (v *View) Gone(id ring.NodeID) bool {
	removed, _ := v.State.WasRemoved(id)
	return removed
}

// Bootstraps reports whether node must bootstrap group g: it created it
// and nobody has started it yet.
func (v *View) Bootstraps(g ring.GroupID, node ring.NodeID) bool {
	return v.State.Bootstraps(g, node)
}

// metaFSM is the metadata group's state machine (a raftgroup.Applier):
// one ring.State fed ring steps in log order. Its durable form is one
// file, rewritten atomically at every checkpoint (the state is small: a
// few KB for hundreds of groups).
//
// Checkpoint file and snapshot stream (version 4):
//
//	"mymt" | version:byte(4) | index:uint64 big-endian | rules section (rules.go) |
//	  cache generations section (cachegen.go) | state: the rest, ring.AppendState
//
// Version 3 is version 4 without the cache generations section, version
// 2 also without the rules section; each is still written while the
// sections it lacks would be empty (encodeLocked).
//
// Version 1 held two side maps between the index and the state (groups
// awaiting their bootstrap, removed nodes); they are part of ring.State
// now, and a version 1 file decodes into it:
//
//	pending:uvarint { group:uvarint node:str }
//	removed:uvarint { node:str drained:byte }
type metaFSM struct {
	path string
	// checkpoint is the index of the file read at open.
	checkpoint uint64
	// mu guards state and index: Apply and Restore on raft's goroutine
	// against Checkpoint and Snapshot on others.
	mu    sync.Mutex
	state *ring.State
	index uint64
	rules *RuleGroups       // immutable; replaced by a rule change
	gens  *CacheGenerations // immutable; replaced by a bump

	view    atomic.Pointer[View]
	changed func() // called after every change, outside mu
}

var _ raftgroup.Applier = (*metaFSM)(nil)

const (
	metaMagic   = "mymt"
	metaVersion = 4
)

// ErrCorruptMeta: the metadata checkpoint or snapshot does not decode.
var ErrCorruptMeta = errors.New("cluster: corrupt metadata")

func openMetaFSM(dir string, opts ring.Options, changed func()) (*metaFSM, error) {
	f := &metaFSM{path: filepath.Join(dir, "state"), changed: changed}
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
	f.view.Store(&View{State: f.state.Clone(), Index: f.index, Rules: f.rules, CacheGens: f.gens, ruleRing: &ruleRing{}})
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
	var st ring.Step
	if len(entry) > 0 && entry[0] == entryCacheGen {
		tenant, err := DecodeCacheGenBump(entry)
		if err != nil {
			return err
		}
		f.gens = f.gens.Bump(tenant)
		return nil
	}
	if len(entry) > 0 && entry[0] == entryRules {
		c, err := DecodeRuleChange(entry)
		if err != nil {
			return err
		}
		r, err := f.rules.Apply(c)
		if err != nil {
			return err
		}
		f.rules = r
		return nil
	}
	if len(entry) > 0 && entry[0] == entryStarted {
		g, n := binary.Uvarint(entry[1:])
		if n <= 0 || 1+n != len(entry) || g == 0 || g > 1<<32-1 {
			return fmt.Errorf("%w: started entry %x", ErrCorruptMeta, entry)
		}
		st = ring.Step{Kind: ring.StepStartGroup, Group: ring.GroupID(g)}
	} else {
		var err error
		if st, err = ring.DecodeStep(entry); err != nil {
			return err
		}
	}
	return f.state.Apply(st)
}

func (f *metaFSM) CheckpointIndex() uint64 { return f.checkpoint }

func (f *metaFSM) Checkpoint() (uint64, error) {
	f.mu.Lock()
	b, idx := f.encodeLocked(), f.index
	f.mu.Unlock()
	if err := atomicfile.WriteFile(f.path, b); err != nil {
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

// encodeLocked writes the oldest version that holds the state: version
// 2 while there is no rule group and no cache generation, 3 while there
// is no cache generation, so nodes of the versions before them still
// restore this node's snapshots during a rolling upgrade (until the
// first rule group is set or the first deletion is made).
func (f *metaFSM) encodeLocked() []byte {
	version := byte(metaVersion)
	switch {
	case f.rules.Len() == 0 && f.gens.Len() == 0:
		version = 2
	case f.gens.Len() == 0:
		version = 3
	}
	b := append([]byte(metaMagic), version)
	b = binary.BigEndian.AppendUint64(b, f.index)
	if version >= 3 {
		b = appendRulesSection(b, f.rules)
	}
	if version >= 4 {
		b = appendCacheGenSection(b, f.gens)
	}
	return ring.AppendState(b, f.state)
}

// decode replaces the FSM's contents with b (version 1 to 4); on error it
// changes nothing.
func (f *metaFSM) decode(b []byte) (err error) {
	if len(b) < len(metaMagic)+9 || !bytes.HasPrefix(b, []byte(metaMagic)) {
		return fmt.Errorf("%w: bad header", ErrCorruptMeta)
	}
	version := b[len(metaMagic)]
	if version < 1 || version > metaVersion {
		return fmt.Errorf("%w: unknown version %d", ErrCorruptMeta, version)
	}
	b = b[len(metaMagic)+1:]
	index := binary.BigEndian.Uint64(b)
	b = b[8:]
	var pending map[ring.GroupID]ring.NodeID
	var removed []ring.Removed
	var rules *RuleGroups
	var gens *CacheGenerations
	if version >= 3 {
		if rules, b, err = decodeRulesSection(b); err != nil {
			return err
		}
	}
	if version >= 4 {
		if gens, b, err = decodeCacheGenSection(b); err != nil {
			return err
		}
	}
	if version == 1 {
		if pending, removed, b, err = decodeSideMaps(b); err != nil {
			return err
		}
	}
	s, err := ring.DecodeState(b)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptMeta, err)
	}
	if version == 1 {
		// Fold version 1's side maps into the state.
		for g, node := range pending {
			if grp := s.Group(g); grp != nil {
				grp.Starter = node
			}
		}
		s.Removed = removed
		if err := s.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptMeta, err)
		}
	}
	f.state, f.index, f.rules, f.gens = s, index, rules, gens
	return nil
}

// decodeSideMaps reads the pending groups and removed nodes of a version 1
// file and returns the rest.
func decodeSideMaps(b []byte) (map[ring.GroupID]ring.NodeID, []ring.Removed, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, nil, nil, fmt.Errorf("%w: pending count", ErrCorruptMeta)
	}
	b = b[k:]
	pending := make(map[ring.GroupID]ring.NodeID, n)
	for range n {
		g, k := binary.Uvarint(b)
		if k <= 0 || g == 0 || g > 1<<32-1 {
			return nil, nil, nil, fmt.Errorf("%w: pending group", ErrCorruptMeta)
		}
		id, rest, err := readStr(b[k:])
		if err != nil {
			return nil, nil, nil, err
		}
		pending[ring.GroupID(g)] = ring.NodeID(id)
		b = rest
	}
	n, k = binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, nil, nil, fmt.Errorf("%w: removed count", ErrCorruptMeta)
	}
	b = b[k:]
	var removed []ring.Removed
	for range n {
		id, rest, err := readStr(b)
		if err != nil {
			return nil, nil, nil, err
		}
		b = rest
		if len(b) == 0 || b[0] > 1 {
			return nil, nil, nil, fmt.Errorf("%w: removed node flag", ErrCorruptMeta)
		}
		removed = append(removed, ring.Removed{ID: ring.NodeID(id), Drained: b[0] == 1})
		b = b[1:]
	}
	slices.SortFunc(removed, func(a, b ring.Removed) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return pending, slices.CompactFunc(removed, func(a, b ring.Removed) bool { return a.ID == b.ID }), b, nil
}

func readStr(b []byte) (string, []byte, error) {
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) || l > ring.MaxNameBytes {
		return "", nil, fmt.Errorf("%w: string", ErrCorruptMeta)
	}
	return string(b[k : k+int(l)]), b[k+int(l):], nil
}

// DecodeMetadata decodes a metadata checkpoint or snapshot (the format of
// metaFSM) into a view. Errors wrap ErrCorruptMeta.
func DecodeMetadata(b []byte) (*View, error) {
	f := &metaFSM{}
	if err := f.decode(b); err != nil {
		return nil, err
	}
	return &View{State: f.state, Index: f.index, Rules: f.rules, CacheGens: f.gens}, nil
}

// AppendMetadata appends the encoding of v, as a checkpoint holds it.
func AppendMetadata(dst []byte, v *View) []byte {
	f := &metaFSM{state: v.State, index: v.Index, rules: v.Rules, gens: v.CacheGens}
	return append(dst, f.encodeLocked()...)
}
