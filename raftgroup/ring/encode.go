package ring

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Format versions. A format change bumps the version and updates doc.go
// and the golden test together.
//
// State version 2 added each group's Starter and the removed nodes (they
// were side maps of the metadata FSM); DecodeState still reads version 1
// (without them) for the metadata written before.
const (
	StateVersion byte = 2
	StepVersion  byte = 1
)

const stateMagic = "myrg"

// CorruptError reports encoded state or a step that does not decode. It
// matches ErrInvalidState.
type CorruptError struct {
	What   string // "state" or "step"
	Offset int    // byte offset where decoding failed
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("ring: corrupt %s at byte %d: %s", e.What, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidState) true.
func (e *CorruptError) Is(target error) bool { return target == ErrInvalidState }

// AppendState appends the encoding of s (layout in doc.go) to dst. The
// encoding is deterministic: equal states give equal bytes. s must be
// valid (Validate).
func AppendState(dst []byte, s *State) []byte {
	dst = append(dst, stateMagic...)
	dst = append(dst, StateVersion)
	dst = binary.AppendUvarint(dst, s.Generation)
	dst = binary.AppendUvarint(dst, uint64(s.ReplicationFactor))
	dst = binary.AppendUvarint(dst, uint64(s.GroupsPerNode))
	dst = binary.AppendUvarint(dst, uint64(len(s.Nodes)))
	index := make(map[NodeID]int, len(s.Nodes))
	for i, n := range s.Nodes {
		index[n.ID] = i
		dst = appendString(dst, string(n.ID))
		dst = appendString(dst, n.Addr)
		dst = append(dst, byte(n.State))
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.Groups)))
	for _, g := range s.Groups {
		dst = binary.AppendUvarint(dst, uint64(g.ID))
		dst = binary.AppendUvarint(dst, uint64(index[g.Leader]))
		dst = binary.AppendUvarint(dst, uint64(len(g.Replicas)))
		for _, r := range g.Replicas {
			dst = binary.AppendUvarint(dst, uint64(index[r]))
		}
		dst = appendString(dst, string(g.Starter))
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.Epochs)))
	for _, e := range s.Epochs {
		dst = binary.AppendUvarint(dst, e.Generation)
		dst = binary.AppendVarint(dst, e.FromMillis)
		dst = binary.AppendUvarint(dst, uint64(len(e.Ring.tokens)))
		for i, t := range e.Ring.tokens {
			dst = binary.BigEndian.AppendUint64(dst, t)
			dst = binary.AppendUvarint(dst, uint64(e.Ring.groups[e.Ring.owner[i]]))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(s.Removed)))
	for _, r := range s.Removed {
		dst = appendString(dst, string(r.ID))
		drained := byte(0)
		if r.Drained {
			drained = 1
		}
		dst = append(dst, drained)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// reader decodes and tracks the offset for errors.
type reader struct {
	what string
	src  []byte
	off  int
}

func (r *reader) fail(format string, args ...any) error {
	return &CorruptError{What: r.what, Offset: r.off, Reason: fmt.Sprintf(format, args...)}
}

func (r *reader) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(r.src[r.off:])
	if n <= 0 {
		return 0, r.fail("bad %s", what)
	}
	r.off += n
	return v, nil
}

func (r *reader) varint(what string) (int64, error) {
	v, n := binary.Varint(r.src[r.off:])
	if n <= 0 {
		return 0, r.fail("bad %s", what)
	}
	r.off += n
	return v, nil
}

// count reads a count of items of at least minBytes each, checked against
// the remaining input, so a corrupt count cannot make decoding allocate
// more than a small multiple of the input.
func (r *reader) count(what string, minBytes int) (int, error) {
	v, err := r.uvarint(what)
	if err != nil {
		return 0, err
	}
	if v > uint64(len(r.src)-r.off)/uint64(minBytes) {
		return 0, r.fail("%s %d exceeds the remaining %d bytes", what, v, len(r.src)-r.off)
	}
	return int(v), nil
}

func (r *reader) small(what string, limit uint64) (uint64, error) {
	v, err := r.uvarint(what)
	if err == nil && v > limit {
		err = r.fail("%s %d above %d", what, v, limit)
	}
	return v, err
}

func (r *reader) string(what string) (string, error) {
	n, err := r.count(what+" length", 1)
	if err != nil {
		return "", err
	}
	if n > MaxNameBytes {
		return "", r.fail("%s of %d bytes", what, n)
	}
	s := string(r.src[r.off : r.off+n])
	r.off += n
	return s, nil
}

func (r *reader) byte(what string) (byte, error) {
	if r.off >= len(r.src) {
		return 0, r.fail("missing %s", what)
	}
	r.off++
	return r.src[r.off-1], nil
}

// DecodeState decodes an encoded state and checks its invariants
// (Validate). Errors match ErrInvalidState. It never panics, and the
// state does not alias src.
func DecodeState(src []byte) (*State, error) {
	r := &reader{what: "state", src: src}
	if len(src) < len(stateMagic)+1 || string(src[:4]) != stateMagic {
		return nil, r.fail("bad magic")
	}
	version := src[4]
	if version != 1 && version != StateVersion {
		r.off = 4
		return nil, r.fail("unknown version %d", src[4])
	}
	r.off = 5
	s := &State{}
	var err error
	if s.Generation, err = r.uvarint("generation"); err != nil {
		return nil, err
	}
	rf, err := r.small("replication factor", maxReplicationFactor)
	if err != nil {
		return nil, err
	}
	gpn, err := r.small("groups per node", maxGroupsPerNode)
	if err != nil {
		return nil, err
	}
	s.ReplicationFactor, s.GroupsPerNode = int(rf), int(gpn)
	nn, err := r.count("node count", 3)
	if err != nil {
		return nil, err
	}
	for range nn {
		id, err := r.string("node ID")
		if err != nil {
			return nil, err
		}
		addr, err := r.string("node address")
		if err != nil {
			return nil, err
		}
		st, err := r.byte("node state")
		if err != nil {
			return nil, err
		}
		s.Nodes = append(s.Nodes, Node{ID: NodeID(id), Addr: addr, State: NodeState(st)})
	}
	nodeAt := func(what string) (NodeID, error) {
		i, err := r.uvarint(what)
		if err != nil {
			return "", err
		}
		if i >= uint64(len(s.Nodes)) {
			return "", r.fail("%s %d of %d nodes", what, i, len(s.Nodes))
		}
		return s.Nodes[i].ID, nil
	}
	ng, err := r.count("group count", 3)
	if err != nil {
		return nil, err
	}
	for range ng {
		id, err := r.small("group ID", 1<<32-1)
		if err != nil {
			return nil, err
		}
		g := Group{ID: GroupID(id)}
		if g.Leader, err = nodeAt("leader"); err != nil {
			return nil, err
		}
		nr, err := r.count("replica count", 1)
		if err != nil {
			return nil, err
		}
		g.Replicas = make([]NodeID, 0, nr)
		for range nr {
			n, err := nodeAt("replica")
			if err != nil {
				return nil, err
			}
			g.Replicas = append(g.Replicas, n)
		}
		if version >= 2 {
			starter, err := r.string("group starter")
			if err != nil {
				return nil, err
			}
			g.Starter = NodeID(starter)
		}
		s.Groups = append(s.Groups, g)
	}
	ne, err := r.count("epoch count", 3+9)
	if err != nil {
		return nil, err
	}
	for range ne {
		var e Epoch
		if e.Generation, err = r.uvarint("epoch generation"); err != nil {
			return nil, err
		}
		if e.FromMillis, err = r.varint("epoch start"); err != nil {
			return nil, err
		}
		nt, err := r.count("token count", 9)
		if err != nil {
			return nil, err
		}
		tokens := make([]Token, 0, nt)
		for range nt {
			if len(src)-r.off < 8 {
				return nil, r.fail("truncated token")
			}
			t := binary.BigEndian.Uint64(src[r.off:])
			r.off += 8
			g, err := r.small("token group", 1<<32-1)
			if err != nil {
				return nil, err
			}
			tokens = append(tokens, Token{Token: t, Group: GroupID(g)})
		}
		if e.Ring, err = NewRing(tokens); err != nil {
			return nil, r.fail("epoch ring: %v", err)
		}
		s.Epochs = append(s.Epochs, e)
	}
	if version >= 2 {
		nr, err := r.count("removed count", 3)
		if err != nil {
			return nil, err
		}
		for range nr {
			id, err := r.string("removed node")
			if err != nil {
				return nil, err
			}
			d, err := r.byte("drained flag")
			if err != nil {
				return nil, err
			}
			if d > 1 {
				return nil, r.fail("drained flag %d", d)
			}
			s.Removed = append(s.Removed, Removed{ID: NodeID(id), Drained: d == 1})
		}
	}
	if r.off != len(src) {
		return nil, r.fail("%d trailing bytes", len(src)-r.off)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	return s, nil
}

// AppendStep appends the encoding of st (layout in doc.go), the payload
// of a metadata log entry.
func AppendStep(dst []byte, st Step) []byte {
	dst = append(dst, StepVersion, byte(st.Kind))
	dst = appendString(dst, string(st.Node))
	dst = appendString(dst, st.Addr)
	dst = append(dst, byte(st.State))
	dst = binary.AppendUvarint(dst, uint64(st.Group))
	return binary.AppendVarint(dst, st.AtMillis)
}

// DecodeStep decodes an encoded step. It checks the encoding only; Apply
// checks the step against the state. Errors match ErrInvalidState.
func DecodeStep(src []byte) (Step, error) {
	r := &reader{what: "step", src: src}
	v, err := r.byte("version")
	if err != nil {
		return Step{}, err
	}
	if v != StepVersion {
		return Step{}, r.fail("unknown version %d", v)
	}
	var st Step
	k, err := r.byte("kind")
	if err != nil {
		return Step{}, err
	}
	st.Kind = StepKind(k)
	node, err := r.string("node")
	if err != nil {
		return Step{}, err
	}
	st.Node = NodeID(node)
	if st.Addr, err = r.string("address"); err != nil {
		return Step{}, err
	}
	state, err := r.byte("state")
	if err != nil {
		return Step{}, err
	}
	st.State = NodeState(state)
	g, err := r.small("group", 1<<32-1)
	if err != nil {
		return Step{}, err
	}
	st.Group = GroupID(g)
	if st.AtMillis, err = r.varint("time"); err != nil {
		return Step{}, err
	}
	if r.off != len(src) {
		return Step{}, r.fail("%d trailing bytes", len(src)-r.off)
	}
	return st, nil
}

// Equal reports whether s and o hold the same state.
func (s *State) Equal(o *State) bool {
	if s.Generation != o.Generation || s.ReplicationFactor != o.ReplicationFactor || s.GroupsPerNode != o.GroupsPerNode ||
		!slices.Equal(s.Nodes, o.Nodes) || len(s.Groups) != len(o.Groups) || len(s.Epochs) != len(o.Epochs) {
		return false
	}
	for i := range s.Groups {
		a, b := s.Groups[i], o.Groups[i]
		if a.ID != b.ID || a.Leader != b.Leader || a.Starter != b.Starter || !slices.Equal(a.Replicas, b.Replicas) {
			return false
		}
	}
	if !slices.Equal(s.Removed, o.Removed) {
		return false
	}
	for i := range s.Epochs {
		a, b := s.Epochs[i], o.Epochs[i]
		if a.Generation != b.Generation || a.FromMillis != b.FromMillis || !a.Ring.equal(b.Ring) {
			return false
		}
	}
	return true
}
