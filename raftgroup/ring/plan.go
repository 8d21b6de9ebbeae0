package ring

import (
	"errors"
	"fmt"
	"slices"

	"github.com/myelindb/myelin/internal/invariants"
)

// EventKind says what happened to the cluster.
type EventKind uint8

// Event kinds.
const (
	// EventReconcile: nothing happened; plan whatever the state still
	// needs (after a plan was cut short, or options changed).
	EventReconcile EventKind = iota
	// EventJoin: Node (at Addr) joins, or a draining or dead node comes
	// back.
	EventJoin
	// EventDrain: Node is to leave; its replicas move away first.
	EventDrain
	// EventDead: Node was declared dead; its replicas are replaced.
	EventDead
)

// Event is the input of Plan.
type Event struct {
	Kind EventKind
	Node NodeID
	Addr string
	// AtMillis: now, in unix ms. Groups created by the plan take effect
	// in the ring from then (Epoch.FromMillis).
	AtMillis int64
}

// ErrUnknownNode: the event names a node that is not a member.
var ErrUnknownNode = errors.New("ring: unknown node")

// ErrNodeExists: an active node joins again.
var ErrNodeExists = errors.New("ring: node already active")

// ErrLastNode: draining the last active node would leave the data nowhere.
var ErrLastNode = errors.New("ring: cannot drain the last active node")

// Plan returns the steps that take s, after ev, to a placement where
//   - there are GroupsPerNode groups per active node (groups are created,
//     never deleted);
//   - every group has TargetReplicas() replicas, all on distinct active
//     nodes (when no node is active, nothing can move; a group without
//     quorum, see State.HasQuorum, cannot change and is left alone);
//   - the numbers of replicas, and of preferred leaders, per active node
//     differ by at most 1;
//   - draining and dead nodes that hold no replica are removed,
//
// with few moves. Plan simulates a greedy placement on a copy (new
// groups first, then re-placing replicas of nodes that are not active on
// the least loaded nodes, then moving replicas from the most to the least
// loaded node, preferring replicas this plan placed, along augmenting
// chains; then leaders along the shortest chain of transfers), and emits
// only the difference between the start and the result, group by group:
// create, add replicas, transfer the preferred leader, remove replicas.
// So a replica is never copied twice, and every removal follows the adds
// of its group: no group drops below the replication factor. Every step
// is valid in order (Apply never fails on them). Plan is pure and
// deterministic (no map order, no randomness: the same s and ev give the
// same steps) and does not modify s. Plan(s', Event{}) on the resulting
// state s' returns no steps.
func Plan(s *State, ev Event) ([]Step, error) {
	p := &planner{s: s.Clone()}
	if err := p.event(ev); err != nil {
		return nil, err
	}
	// Simulate greedily on a copy to find the target placement, then
	// emit only the difference: the simulation may place a replica and
	// move it again (repair picks the least loaded node one group at a
	// time; balancing may move it later), and emitting its own steps
	// would copy that replica twice.
	base := p.s.Clone()
	sim := &planner{s: p.s.Clone(), base: base}
	sim.createGroups(ev.AtMillis)
	sim.repair()
	sim.balanceReplicas()
	sim.balanceLeaders()
	p.s = base
	p.diff(sim.s, ev.AtMillis)
	if invariants.Enabled {
		for i, g := range p.s.Groups {
			f := sim.s.Groups[i]
			if g.ID != f.ID || g.Leader != f.Leader || !slices.Equal(g.Replicas, f.Replicas) {
				panic(fmt.Sprintf("BUG: plan reached group %d on %v (leader %s), simulated %v (leader %s)", g.ID, g.Replicas, g.Leader, f.Replicas, f.Leader))
			}
		}
		if err := p.s.Validate(); err != nil {
			panic(fmt.Sprintf("BUG: plan reached an invalid state: %v", err))
		}
	}
	return p.steps, nil
}

// diff emits the steps that take p.s to the placement of final, group
// by group: create (on its final leader), add the new replicas, transfer
// the preferred leadership, remove the old replicas; then remove the
// nodes that hold nothing.
func (p *planner) diff(final *State, atMillis int64) {
	for _, fg := range final.Groups {
		g := p.s.Group(fg.ID)
		if g == nil {
			p.emit(Step{Kind: StepCreateGroup, Group: fg.ID, Node: fg.Leader, AtMillis: atMillis})
			g = p.s.Group(fg.ID)
		}
		for _, r := range fg.Replicas {
			if !slices.Contains(g.Replicas, r) {
				p.emit(Step{Kind: StepAddReplica, Group: fg.ID, Node: r})
				g = p.s.Group(fg.ID)
			}
		}
		if g.Leader != fg.Leader {
			p.emit(Step{Kind: StepTransferLeader, Group: fg.ID, Node: fg.Leader})
		}
		for _, r := range slices.Clone(g.Replicas) {
			if !slices.Contains(fg.Replicas, r) {
				p.emit(Step{Kind: StepRemoveReplica, Group: fg.ID, Node: r})
			}
		}
	}
	p.removeNodes()
}

// planner applies the steps it plans to its own copy of the state.
type planner struct {
	s     *State
	base  *State // the state the simulation started from; nil when not simulating
	steps []Step
}

func (p *planner) emit(st Step) {
	if err := p.s.Apply(st); err != nil {
		panic(fmt.Sprintf("BUG: planned an invalid step: %v", err))
	}
	p.steps = append(p.steps, st)
}

func (p *planner) event(ev Event) error {
	n := p.s.Node(ev.Node)
	switch ev.Kind {
	case EventReconcile:
	case EventJoin:
		switch {
		case n == nil:
			if ev.Node == "" || len(ev.Node) > MaxNameBytes || len(ev.Addr) > MaxNameBytes {
				return fmt.Errorf("plan join of %q: %w: bad node ID or address", ev.Node, ErrInvalidStep)
			}
			p.emit(Step{Kind: StepAddNode, Node: ev.Node, Addr: ev.Addr})
		case n.State == NodeActive:
			return fmt.Errorf("plan join of %q: %w", ev.Node, ErrNodeExists)
		default:
			p.emit(Step{Kind: StepSetNodeState, Node: ev.Node, State: NodeActive})
		}
	case EventDrain, EventDead:
		if n == nil {
			return fmt.Errorf("plan event %d for %q: %w", ev.Kind, ev.Node, ErrUnknownNode)
		}
		state := NodeDraining
		if ev.Kind == EventDead {
			state = NodeDead
		}
		if n.State == NodeActive && state == NodeDraining && len(p.s.ActiveNodes()) == 1 {
			return fmt.Errorf("plan drain of %q: %w", ev.Node, ErrLastNode)
		}
		if n.State != state && !(n.State == NodeDead && state == NodeDraining) {
			p.emit(Step{Kind: StepSetNodeState, Node: ev.Node, State: state})
		}
	default:
		return fmt.Errorf("plan event of kind %d: %w", ev.Kind, ErrInvalidStep)
	}
	return nil
}

// load counts replicas and preferred leaders per active node.
type load struct {
	nodes    []NodeID // active, sorted
	replicas map[NodeID]int
	leaders  map[NodeID]int
}

func (p *planner) load() load {
	l := load{nodes: p.s.ActiveNodes(), replicas: map[NodeID]int{}, leaders: map[NodeID]int{}}
	for _, n := range l.nodes {
		l.replicas[n], l.leaders[n] = 0, 0
	}
	for _, g := range p.s.Groups {
		for _, r := range g.Replicas {
			if _, ok := l.replicas[r]; ok {
				l.replicas[r]++
			}
		}
		if _, ok := l.leaders[g.Leader]; ok {
			l.leaders[g.Leader]++
		}
	}
	return l
}

// leastLoaded returns the active node, not in exclude, with the fewest
// replicas, then the fewest leaders, then the smallest ID; "" if none.
func (l load) leastLoaded(exclude []NodeID) NodeID {
	best := NodeID("")
	for _, n := range l.nodes { // sorted: ties go to the smallest ID
		if slices.Contains(exclude, n) {
			continue
		}
		if best == "" || l.replicas[n] < l.replicas[best] ||
			(l.replicas[n] == l.replicas[best] && l.leaders[n] < l.leaders[best]) {
			best = n
		}
	}
	return best
}

func (p *planner) createGroups(atMillis int64) {
	active := len(p.s.ActiveNodes())
	next := GroupID(1)
	if len(p.s.Groups) > 0 {
		next = p.s.Groups[len(p.s.Groups)-1].ID + 1
	}
	for len(p.s.Groups) < p.s.GroupsPerNode*active {
		l := p.load()
		// The first replica goes where leaders are fewest: it leads.
		best := l.nodes[0]
		for _, n := range l.nodes {
			if l.leaders[n] < l.leaders[best] || (l.leaders[n] == l.leaders[best] && l.replicas[n] < l.replicas[best]) {
				best = n
			}
		}
		p.emit(Step{Kind: StepCreateGroup, Group: next, Node: best, AtMillis: atMillis})
		next++
	}
}

// repair gives every group TargetReplicas replicas on active nodes and
// none elsewhere.
func (p *planner) repair() {
	target := p.s.TargetReplicas()
	if target == 0 {
		return // no active node: nothing can move
	}
	for gi := range p.s.Groups {
		id := p.s.Groups[gi].ID
		if !p.s.HasQuorum(&p.s.Groups[gi]) {
			continue // it cannot change its membership
		}
		for p.s.activeReplicas(p.s.Group(id)) < target {
			n := p.load().leastLoaded(p.s.Group(id).Replicas)
			p.emit(Step{Kind: StepAddReplica, Group: id, Node: n})
		}
		for _, r := range slices.Clone(p.s.Group(id).Replicas) {
			if n := p.s.Node(r); n.State == NodeActive {
				continue
			}
			p.removeReplica(id, r)
		}
		// More than the target (the factor was lowered): drop the
		// replicas on the most loaded nodes.
		for p.s.activeReplicas(p.s.Group(id)) > target {
			g, l := p.s.Group(id), p.load()
			worst := g.Replicas[0]
			for _, r := range g.Replicas {
				if l.replicas[r] > l.replicas[worst] {
					worst = r
				}
			}
			p.removeReplica(id, worst)
		}
	}
}

// removeReplica removes group id's replica on node, first moving the
// preferred leadership to the active replica with the fewest leaders.
func (p *planner) removeReplica(id GroupID, node NodeID) {
	g := p.s.Group(id)
	if g.Leader == node {
		l := p.load()
		best := NodeID("")
		for _, r := range g.Replicas {
			if _, ok := l.leaders[r]; !ok || r == node {
				continue
			}
			if best == "" || l.leaders[r] < l.leaders[best] {
				best = r
			}
		}
		p.emit(Step{Kind: StepTransferLeader, Group: id, Node: best})
	}
	p.emit(Step{Kind: StepRemoveReplica, Group: id, Node: node})
}

// balanceReplicas moves replicas from more to less loaded active nodes
// until no two differ by more than 1, or only groups without quorum
// could move. Each move goes from a node to one with at least 2 fewer,
// so it lowers the sum of squared loads, and the loop ends.
func (p *planner) balanceReplicas() {
	for {
		l := p.load()
		if len(l.nodes) < 2 {
			return
		}
		if p.freeChain(l) {
			continue
		}
		if !p.moveOne(l) {
			return
		}
	}
}

// moveOne moves one replica from a most loaded node to a least loaded
// one, trying pairs from the largest difference down (a group without
// quorum cannot move, so the first pair may have no candidate), and
// reports whether it found one.
func (p *planner) moveOne(l load) bool {
	his := slices.Clone(l.nodes)
	slices.SortStableFunc(his, func(a, b NodeID) int { return l.replicas[b] - l.replicas[a] })
	los := slices.Clone(l.nodes)
	slices.SortStableFunc(los, func(a, b NodeID) int {
		if d := l.replicas[a] - l.replicas[b]; d != 0 {
			return d
		}
		return l.leaders[a] - l.leaders[b]
	})
	for _, hi := range his {
		for _, lo := range los {
			if l.replicas[hi]-l.replicas[lo] < 2 {
				break
			}
			if g := p.pickMove(hi, lo); g != 0 {
				p.emit(Step{Kind: StepAddReplica, Group: g, Node: lo})
				p.removeReplica(g, hi)
				return true
			}
		}
	}
	return false
}

// pickMove returns a group with quorum on hi and not on lo, or 0. It
// prefers one whose replica on hi this plan placed (the move then costs
// no copy: Plan emits only the final placement), then one hi does not
// lead (no leadership transfer), then the lowest ID.
func (p *planner) pickMove(hi, lo NodeID) GroupID {
	score := func(g *Group) int {
		n := 0
		if p.base != nil {
			if bg := p.base.Group(g.ID); bg == nil || !slices.Contains(bg.Replicas, hi) {
				n += 2
			}
		}
		if g.Leader != hi {
			n++
		}
		return n
	}
	var pick GroupID
	for i := range p.s.Groups {
		g := &p.s.Groups[i]
		if !slices.Contains(g.Replicas, hi) || slices.Contains(g.Replicas, lo) || !p.s.HasQuorum(g) {
			continue
		}
		if pick == 0 || score(g) > score(p.s.Group(pick)) {
			pick = g.ID
		}
	}
	return pick
}

// balanceLeaders moves preferred leaderships until the active nodes'
// counts differ by at most 1. A leader can only move to a replica of its
// group, so it searches (breadth first) for the shortest chain of
// transfers hi → ... → lo, from a node with the most leaders to one with
// at least 2 fewer, and shifts one leadership along it (the augmenting
// path of a bipartite matching). Each chain lowers the sum of squared
// counts, so it ends; if no chain exists the replicas do not allow a
// better balance and it stops.
func (p *planner) balanceLeaders() {
	for {
		l := p.load()
		if len(l.nodes) < 2 {
			return
		}
		most := 0
		for _, n := range l.nodes {
			most = max(most, l.leaders[n])
		}
		moved := false
		for _, hi := range l.nodes {
			if l.leaders[hi] != most {
				continue
			}
			if path := p.leaderChain(l, hi, most-2); path != nil {
				for _, st := range path {
					p.emit(st)
				}
				moved = true
				break
			}
		}
		if !moved {
			return
		}
	}
}

// freeChain moves replicas that this plan placed (moving them costs no
// copy, see Plan) along the shortest chain from a most loaded node to one
// with at least 2 fewer replicas, and reports whether it found one. The
// greedy repair places one group at a time and can paint itself into a
// corner (the least loaded nodes already hold the group); this finds the
// assignment a bipartite matching would (augmenting paths).
func (p *planner) freeChain(l load) bool {
	if p.base == nil {
		return false
	}
	most := 0
	for _, n := range l.nodes {
		most = max(most, l.replicas[n])
	}
	type edge struct {
		from  NodeID
		group GroupID
	}
	for _, hi := range l.nodes {
		if l.replicas[hi] != most {
			continue
		}
		prev := map[NodeID]edge{hi: {}}
		queue := []NodeID{hi}
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			for _, g := range p.s.Groups {
				if !slices.Contains(g.Replicas, u) {
					continue
				}
				if bg := p.base.Group(g.ID); bg != nil && slices.Contains(bg.Replicas, u) {
					continue // placed before this plan: moving it copies data
				}
				for _, v := range l.nodes {
					if _, seen := prev[v]; seen || slices.Contains(g.Replicas, v) {
						continue
					}
					prev[v] = edge{u, g.ID}
					if l.replicas[v] > most-2 {
						queue = append(queue, v)
						continue
					}
					// Shift one replica along the chain, from its end.
					for n := v; n != hi; n = prev[n].from {
						e := prev[n]
						p.emit(Step{Kind: StepAddReplica, Group: e.group, Node: n})
						p.removeReplica(e.group, e.from)
					}
					return true
				}
			}
		}
	}
	return false
}

// leaderChain returns the transfers along the shortest chain from hi to
// an active node with at most want leaders, or nil.
func (p *planner) leaderChain(l load, hi NodeID, want int) []Step {
	type edge struct {
		from  NodeID
		group GroupID
	}
	prev := map[NodeID]edge{hi: {}}
	queue := []NodeID{hi}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, g := range p.s.Groups { // by ID: deterministic
			if g.Leader != u || !p.s.HasQuorum(&g) {
				continue
			}
			for _, v := range g.Replicas { // sorted
				if _, ok := l.leaders[v]; !ok {
					continue // not active
				}
				if _, seen := prev[v]; seen {
					continue
				}
				prev[v] = edge{u, g.ID}
				if l.leaders[v] <= want {
					var path []Step
					for n := v; n != hi; n = prev[n].from {
						path = append(path, Step{Kind: StepTransferLeader, Group: prev[n].group, Node: n})
					}
					slices.Reverse(path)
					return path
				}
				queue = append(queue, v)
			}
		}
	}
	return nil
}

// removeNodes removes the draining and dead nodes that hold no replica.
func (p *planner) removeNodes() {
	held := map[NodeID]bool{}
	for _, g := range p.s.Groups {
		for _, r := range g.Replicas {
			held[r] = true
		}
	}
	for _, n := range slices.Clone(p.s.Nodes) {
		if n.State != NodeActive && !held[n.ID] {
			p.emit(Step{Kind: StepRemoveNode, Node: n.ID})
		}
	}
}
