package ring

import (
	"fmt"
	"slices"
)

// StepKind says what a Step does. The numbers are part of the encoding.
type StepKind uint8

// Step kinds.
const (
	// StepAddNode adds Node at Addr, active.
	StepAddNode StepKind = 1
	// StepSetNodeState sets Node's state to State.
	StepSetNodeState StepKind = 2
	// StepRemoveNode removes Node, which must hold no replica and not be
	// active.
	StepRemoveNode StepKind = 3
	// StepCreateGroup creates Group with one replica, on Node, its
	// preferred leader, and starts a new epoch at AtMillis whose ring
	// gives Group its share of the hash space (Ring.withGroup).
	StepCreateGroup StepKind = 4
	// StepAddReplica adds a replica of Group on active Node (raft
	// AddVoter; the replica catches up from a snapshot).
	StepAddReplica StepKind = 5
	// StepRemoveReplica removes Group's replica on Node. Node must not be
	// the preferred leader, and Group keeps at least TargetReplicas
	// replicas on active nodes: removal always follows an add.
	StepRemoveReplica StepKind = 6
	// StepTransferLeader makes Node, an active replica, Group's preferred
	// leader.
	StepTransferLeader StepKind = 7
	// StepSetNodeAddr sets Node's address to Addr: a node that restarts
	// at another address keeps its ID, its replicas and its data.
	StepSetNodeAddr StepKind = 8
	// StepStartGroup records that Group's first replica has started (its
	// Starter bootstrapped it): no replica may bootstrap it again. A group
	// started already stays started.
	StepStartGroup StepKind = 9
)

// Step is one change of the cluster metadata; only the fields its kind
// names are set.
type Step struct {
	Kind     StepKind
	Node     NodeID
	Addr     string
	State    NodeState
	Group    GroupID
	AtMillis int64
}

func (st Step) String() string {
	switch st.Kind {
	case StepAddNode:
		return fmt.Sprintf("add-node %s %s", st.Node, st.Addr)
	case StepSetNodeState:
		return fmt.Sprintf("set-node %s %s", st.Node, st.State)
	case StepRemoveNode:
		return fmt.Sprintf("remove-node %s", st.Node)
	case StepCreateGroup:
		return fmt.Sprintf("create-group %d on %s at %d", st.Group, st.Node, st.AtMillis)
	case StepAddReplica:
		return fmt.Sprintf("add-replica %d on %s", st.Group, st.Node)
	case StepRemoveReplica:
		return fmt.Sprintf("remove-replica %d on %s", st.Group, st.Node)
	case StepTransferLeader:
		return fmt.Sprintf("transfer-leader %d to %s", st.Group, st.Node)
	case StepSetNodeAddr:
		return fmt.Sprintf("set-node-addr %s %s", st.Node, st.Addr)
	case StepStartGroup:
		return fmt.Sprintf("start-group %d", st.Group)
	}
	return fmt.Sprintf("Step(%d)", st.Kind)
}

// Apply applies st, or returns an error wrapping ErrInvalidStep and leaves
// s unchanged. It is deterministic: the metadata group's FSM calls it in
// log order on every replica. Each applied step increments Generation.
func (s *State) Apply(st Step) error {
	if err := s.apply(st); err != nil {
		return fmt.Errorf("apply %v at generation %d: %w", st, s.Generation, err)
	}
	s.Generation++
	return nil
}

func (s *State) apply(st Step) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidStep}, args...)...)
	}
	node := s.Node(st.Node)
	group := s.Group(st.Group)
	switch st.Kind {
	case StepAddNode:
		if st.Node == "" || len(st.Node) > MaxNameBytes || len(st.Addr) > MaxNameBytes {
			return invalid("bad node ID or address")
		}
		if node != nil {
			return invalid("node exists")
		}
		// INVARIANT: a drained node's ID never comes back (IDs are
		// unique for all time); a node removed after it was declared
		// dead may.
		ri, removed := s.removed(st.Node)
		if removed && s.Removed[ri].Drained {
			return invalid("node was drained and removed")
		}
		i, _ := slices.BinarySearchFunc(s.Nodes, st.Node, func(n Node, id NodeID) int { return compareID(n.ID, id) })
		s.Nodes = slices.Insert(s.Nodes, i, Node{ID: st.Node, Addr: st.Addr, State: NodeActive})
		if removed {
			s.Removed = slices.Delete(s.Removed, ri, ri+1)
		}
	case StepSetNodeState:
		if node == nil {
			return invalid("unknown node")
		}
		if st.State < NodeActive || st.State > NodeDead {
			return invalid("bad state")
		}
		node.State = st.State
	case StepRemoveNode:
		if node == nil {
			return invalid("unknown node")
		}
		if node.State == NodeActive {
			return invalid("node is active")
		}
		for _, g := range s.Groups {
			if slices.Contains(g.Replicas, st.Node) {
				return invalid("node holds a replica of group %d", g.ID)
			}
		}
		drained := node.State == NodeDraining
		i, _ := slices.BinarySearchFunc(s.Nodes, st.Node, func(n Node, id NodeID) int { return compareID(n.ID, id) })
		s.Nodes = slices.Delete(s.Nodes, i, i+1)
		ri, _ := s.removed(st.Node)
		s.Removed = slices.Insert(s.Removed, ri, Removed{ID: st.Node, Drained: drained})
	case StepCreateGroup:
		if st.Group == 0 || group != nil {
			return invalid("group exists or is 0")
		}
		if node == nil || node.State != NodeActive {
			return invalid("node not active")
		}
		from := st.AtMillis
		if len(s.Epochs) > 0 {
			// A clock that went back must not reorder epochs.
			from = max(from, s.Epochs[len(s.Epochs)-1].FromMillis)
		}
		i, _ := slices.BinarySearchFunc(s.Groups, st.Group, func(g Group, id GroupID) int { return cmpInt(g.ID, id) })
		s.Groups = slices.Insert(s.Groups, i, Group{ID: st.Group, Replicas: []NodeID{st.Node}, Leader: st.Node, Starter: st.Node})
		s.Epochs = append(s.Epochs, Epoch{Generation: s.Generation + 1, FromMillis: from, Ring: s.Ring().withGroup(st.Group)})
	case StepAddReplica:
		if group == nil {
			return invalid("unknown group")
		}
		if node == nil || node.State != NodeActive {
			return invalid("node not active")
		}
		i, found := slices.BinarySearchFunc(group.Replicas, st.Node, compareID)
		if found {
			return invalid("node holds a replica already")
		}
		group.Replicas = slices.Insert(group.Replicas, i, st.Node)
	case StepRemoveReplica:
		if group == nil {
			return invalid("unknown group")
		}
		i, found := slices.BinarySearchFunc(group.Replicas, st.Node, compareID)
		if !found {
			return invalid("no replica on node")
		}
		if group.Leader == st.Node {
			return invalid("node is the preferred leader")
		}
		wasActive := node != nil && node.State == NodeActive
		active := s.activeReplicas(group)
		if wasActive {
			active--
		}
		// INVARIANT: a removal never takes a group below the replication
		// factor the cluster can hold: moves are add-then-remove.
		if active < s.TargetReplicas() {
			return invalid("would leave %d active replicas, want %d", active, s.TargetReplicas())
		}
		group.Replicas = slices.Delete(group.Replicas, i, i+1)
	case StepTransferLeader:
		if group == nil {
			return invalid("unknown group")
		}
		if node == nil || node.State != NodeActive || !slices.Contains(group.Replicas, st.Node) {
			return invalid("node is not an active replica")
		}
		group.Leader = st.Node
	case StepSetNodeAddr:
		if node == nil {
			return invalid("unknown node")
		}
		if len(st.Addr) > MaxNameBytes {
			return invalid("bad address")
		}
		node.Addr = st.Addr
	case StepStartGroup:
		if group == nil {
			return invalid("unknown group")
		}
		group.Starter = ""
	default:
		return invalid("unknown kind %d", st.Kind)
	}
	return nil
}

func compareID(a, b NodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
