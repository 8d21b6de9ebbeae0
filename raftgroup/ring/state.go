package ring

import (
	"errors"
	"fmt"
	"slices"
)

// NodeID names a node; it is its Raft server ID. Non-empty, at most
// MaxNameBytes bytes.
type NodeID string

// GroupID names a Raft group (the group number of the node listener's
// header). Group 0 is reserved (the listener's HTTP kind uses it).
type GroupID uint32

// NodeState is a node's membership state.
type NodeState uint8

// Node states. The numbers are part of the encoding.
const (
	// NodeActive: the node takes replicas and leaders.
	NodeActive NodeState = 1
	// NodeDraining: the node is leaving; its replicas move away (add
	// elsewhere, then remove here), then it is removed.
	NodeDraining NodeState = 2
	// NodeDead: the node was declared dead (by the failure detector,
	// after a delay); its replicas are replaced, then it is removed.
	NodeDead NodeState = 3
)

func (s NodeState) String() string {
	switch s {
	case NodeActive:
		return "active"
	case NodeDraining:
		return "draining"
	case NodeDead:
		return "dead"
	}
	return fmt.Sprintf("NodeState(%d)", uint8(s))
}

// MaxNameBytes bounds node IDs and addresses.
const MaxNameBytes = 1024

// Node is a cluster member.
type Node struct {
	ID    NodeID
	Addr  string // host:port of its listener
	State NodeState
}

// Group is a Raft group and its placement.
type Group struct {
	ID GroupID
	// Replicas: the nodes holding a replica, sorted.
	Replicas []NodeID
	// Leader: the preferred leader, one of Replicas. Raft elects whom it
	// elects; the node running the group transfers leadership to the
	// preferred leader when it is healthy.
	Leader NodeID
	// Starter: the node that must bootstrap the group's first replica
	// (the node it was created on), until StepStartGroup records that it
	// did; empty afterwards. Every other replica joins: only one replica
	// of a group may ever bootstrap it.
	Starter NodeID
}

// Removed is a node removed from the cluster.
type Removed struct {
	ID NodeID
	// Drained: it left by a drain and may never join again under its ID;
	// otherwise it was removed after it was declared dead and may come
	// back (it then joins as a new member).
	Drained bool
}

// Epoch is one token assignment and the time it took effect.
type Epoch struct {
	Generation uint64 // State.Generation when it took effect
	FromMillis int64  // unix ms; the epoch lasts until the next one's FromMillis
	Ring       *Ring
}

// State is the cluster metadata: membership, placement and the ring with
// its history. It is the state machine of the metadata Raft group: every
// change is a Step applied by Apply, in log order, deterministically.
// A State is not safe for concurrent use; Clone it to hand it out.
//
// INVARIANT (Validate): nodes sorted by ID and unique; groups sorted by
// ID and unique, none is 0; every group has at least one replica, on
// distinct known nodes, and its leader is one of them; epochs are
// ordered by FromMillis and Generation, each ring names only known
// groups, and the last epoch's ring (the current ring) names every group.
type State struct {
	// Generation counts the steps applied; it is the state's version.
	Generation uint64
	// ReplicationFactor: the target number of replicas per group, reached
	// once there are that many active nodes.
	ReplicationFactor int
	// GroupsPerNode: the planner creates groups until there are this many
	// per active node. Groups are never deleted.
	GroupsPerNode int
	Nodes         []Node
	Groups        []Group
	Epochs        []Epoch
	// Removed: the nodes removed from the cluster, sorted by ID, none of
	// them in Nodes.
	Removed []Removed
}

// Options configure a new State.
type Options struct {
	// ReplicationFactor: replicas per group. Zero means 3.
	ReplicationFactor int
	// GroupsPerNode: groups per active node. Zero means 1: three nodes run
	// three groups of three replicas, one leader per node.
	GroupsPerNode int
}

func (o Options) withDefaults() Options {
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = 3
	}
	if o.GroupsPerNode == 0 {
		o.GroupsPerNode = 1
	}
	return o
}

// Validate reports every problem at once.
func (o Options) Validate() error {
	var errs []error
	if o.ReplicationFactor < 0 || o.ReplicationFactor > maxReplicationFactor {
		errs = append(errs, fmt.Errorf("ring options: ReplicationFactor %d: want 0 (default 3) or 1 to %d", o.ReplicationFactor, maxReplicationFactor))
	}
	if o.GroupsPerNode < 0 || o.GroupsPerNode > maxGroupsPerNode {
		errs = append(errs, fmt.Errorf("ring options: GroupsPerNode %d: want 0 (default 1) or 1 to %d", o.GroupsPerNode, maxGroupsPerNode))
	}
	return errors.Join(errs...)
}

const (
	maxReplicationFactor = 9
	maxGroupsPerNode     = 64
)

// NewState returns the state of an empty cluster.
func NewState(opts Options) (*State, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	return &State{ReplicationFactor: opts.ReplicationFactor, GroupsPerNode: opts.GroupsPerNode}, nil
}

// ErrInvalidState: a decoded state or ring breaks an invariant.
var ErrInvalidState = errors.New("ring: invalid state")

// ErrInvalidStep: a step does not apply to the state (Apply leaves the
// state unchanged).
var ErrInvalidStep = errors.New("ring: invalid step")

// Ring returns the current ring, nil before the first group exists.
func (s *State) Ring() *Ring {
	if len(s.Epochs) == 0 {
		return nil
	}
	return s.Epochs[len(s.Epochs)-1].Ring
}

// Node returns the node with id, or nil.
func (s *State) Node(id NodeID) *Node {
	i, ok := slices.BinarySearchFunc(s.Nodes, id, func(n Node, id NodeID) int { return compareID(n.ID, id) })
	if !ok {
		return nil
	}
	return &s.Nodes[i]
}

// Group returns the group with id, or nil.
func (s *State) Group(id GroupID) *Group {
	i, ok := slices.BinarySearchFunc(s.Groups, id, func(g Group, id GroupID) int { return cmpInt(g.ID, id) })
	if !ok {
		return nil
	}
	return &s.Groups[i]
}

// Clone returns a deep copy (rings are immutable and shared).
func (s *State) Clone() *State {
	c := *s
	c.Nodes = slices.Clone(s.Nodes)
	c.Groups = slices.Clone(s.Groups)
	for i := range c.Groups {
		c.Groups[i].Replicas = slices.Clone(c.Groups[i].Replicas)
	}
	c.Epochs = slices.Clone(s.Epochs)
	c.Removed = slices.Clone(s.Removed)
	return &c
}

// removed returns the index of id in Removed, or where it would be.
func (s *State) removed(id NodeID) (int, bool) {
	return slices.BinarySearchFunc(s.Removed, id, func(r Removed, id NodeID) int { return compareID(r.ID, id) })
}

// WasRemoved reports whether node id was removed from the cluster, and
// whether by a drain (it may then never join again under that ID).
func (s *State) WasRemoved(id NodeID) (removed, drained bool) {
	i, ok := s.removed(id)
	if !ok {
		return false, false
	}
	return true, s.Removed[i].Drained
}

// Bootstraps reports whether node must bootstrap group g: it is the
// group's Starter and nobody has started it yet.
func (s *State) Bootstraps(g GroupID, node NodeID) bool {
	grp := s.Group(g)
	return grp != nil && node != "" && grp.Starter == node
}

// ActiveNodes returns the IDs of the active nodes, sorted.
func (s *State) ActiveNodes() []NodeID {
	var out []NodeID
	for _, n := range s.Nodes {
		if n.State == NodeActive {
			out = append(out, n.ID)
		}
	}
	return out
}

// TargetReplicas is the replication factor the state can reach now:
// min(ReplicationFactor, active nodes).
func (s *State) TargetReplicas() int {
	return min(s.ReplicationFactor, len(s.ActiveNodes()))
}

// activeReplicas counts g's replicas on active nodes.
func (s *State) activeReplicas(g *Group) int {
	n := 0
	for _, id := range g.Replicas {
		if nd := s.Node(id); nd != nil && nd.State == NodeActive {
			n++
		}
	}
	return n
}

// HasQuorum reports whether a majority of g's replicas are on nodes not
// declared dead: only then can raft commit, and so change the group's
// membership or leader. A group without quorum needs its dead nodes back,
// or raft's manual recovery; the planner leaves it alone.
func (s *State) HasQuorum(g *Group) bool {
	live := 0
	for _, id := range g.Replicas {
		if nd := s.Node(id); nd != nil && nd.State != NodeDead {
			live++
		}
	}
	return 2*live > len(g.Replicas)
}

// Validate checks the invariants of State (see its doc).
func (s *State) Validate() error {
	if s.ReplicationFactor < 1 || s.ReplicationFactor > maxReplicationFactor {
		return fmt.Errorf("%w: replication factor %d", ErrInvalidState, s.ReplicationFactor)
	}
	if s.GroupsPerNode < 1 || s.GroupsPerNode > maxGroupsPerNode {
		return fmt.Errorf("%w: groups per node %d", ErrInvalidState, s.GroupsPerNode)
	}
	for i, n := range s.Nodes {
		if n.ID == "" || len(n.ID) > MaxNameBytes || len(n.Addr) > MaxNameBytes {
			return fmt.Errorf("%w: node %d: bad ID or address length", ErrInvalidState, i)
		}
		if i > 0 && n.ID <= s.Nodes[i-1].ID {
			return fmt.Errorf("%w: node %q not after %q", ErrInvalidState, n.ID, s.Nodes[i-1].ID)
		}
		if n.State < NodeActive || n.State > NodeDead {
			return fmt.Errorf("%w: node %q has state %d", ErrInvalidState, n.ID, n.State)
		}
	}
	for i, g := range s.Groups {
		if g.ID == 0 {
			return fmt.Errorf("%w: group 0", ErrInvalidState)
		}
		if i > 0 && g.ID <= s.Groups[i-1].ID {
			return fmt.Errorf("%w: group %d not after %d", ErrInvalidState, g.ID, s.Groups[i-1].ID)
		}
		if len(g.Replicas) == 0 {
			return fmt.Errorf("%w: group %d has no replica", ErrInvalidState, g.ID)
		}
		for j, r := range g.Replicas {
			if j > 0 && r <= g.Replicas[j-1] {
				return fmt.Errorf("%w: group %d: replicas not sorted and distinct at %q", ErrInvalidState, g.ID, r)
			}
			if s.Node(r) == nil {
				return fmt.Errorf("%w: group %d: replica on unknown node %q", ErrInvalidState, g.ID, r)
			}
		}
		if !slices.Contains(g.Replicas, g.Leader) {
			return fmt.Errorf("%w: group %d: leader %q is not a replica", ErrInvalidState, g.ID, g.Leader)
		}
		if len(g.Starter) > MaxNameBytes {
			return fmt.Errorf("%w: group %d: starter ID too long", ErrInvalidState, g.ID)
		}
	}
	for i, r := range s.Removed {
		if r.ID == "" || len(r.ID) > MaxNameBytes {
			return fmt.Errorf("%w: removed node %d: bad ID", ErrInvalidState, i)
		}
		if i > 0 && r.ID <= s.Removed[i-1].ID {
			return fmt.Errorf("%w: removed node %q not after %q", ErrInvalidState, r.ID, s.Removed[i-1].ID)
		}
		if s.Node(r.ID) != nil {
			return fmt.Errorf("%w: removed node %q is a member", ErrInvalidState, r.ID)
		}
	}
	for i, e := range s.Epochs {
		if e.Ring == nil {
			return fmt.Errorf("%w: epoch %d has no ring", ErrInvalidState, i)
		}
		if i > 0 && (e.FromMillis < s.Epochs[i-1].FromMillis || e.Generation <= s.Epochs[i-1].Generation) {
			return fmt.Errorf("%w: epoch %d out of order", ErrInvalidState, i)
		}
		if e.Generation > s.Generation {
			return fmt.Errorf("%w: epoch %d from generation %d after the state's %d", ErrInvalidState, i, e.Generation, s.Generation)
		}
		for _, g := range e.Ring.Groups() {
			if s.Group(g) == nil {
				return fmt.Errorf("%w: epoch %d names unknown group %d", ErrInvalidState, i, g)
			}
		}
	}
	if len(s.Groups) > 0 {
		r := s.Ring()
		if r == nil || r.NumGroups() != len(s.Groups) {
			return fmt.Errorf("%w: the current ring does not name every group", ErrInvalidState)
		}
	}
	return nil
}

func cmpInt[T ~uint32 | ~int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
