package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// metadataVoters is the size of the metadata group's quorum set: the
// first (up to) three active nodes vote, every other node follows as a
// non-voter so it receives the metadata.
const metadataVoters = 3

// metaLeader does what the metadata leader does, on whichever node holds
// that role now: it takes the nodes' heartbeats (joins, liveness, replica
// reports), declares silent nodes dead, plans and commits placement
// steps, keeps the metadata group's voters on active nodes, and answers
// the status of the cluster. Its state is what only the leader tracks and
// starts empty in every term.
//
// Locking: mu guards the term and the reports; planMu serializes planning
// and proposing.
type metaLeader struct {
	opts   Options // immutable
	self   ring.NodeID
	life   *lifecycle
	meta   *metadata
	planMu sync.Mutex
	mu     struct {
		sync.Mutex
		term     uint64
		lastSeen map[ring.NodeID]time.Time
		reports  map[ring.NodeID]Report
	}
}

func newMetaLeader(opts Options, life *lifecycle, meta *metadata) *metaLeader {
	l := &metaLeader{opts: opts, self: ring.NodeID(opts.NodeID), life: life, meta: meta}
	l.mu.lastSeen = map[ring.NodeID]time.Time{}
	l.mu.reports = map[ring.NodeID]Report{}
	return l
}

// heartbeat handles a node's report on the metadata leader: it notes the
// node alive, plans its (re)join if the metadata does not have it active,
// and notes groups whose first replica has started.
func (l *metaLeader) heartbeat(ctx context.Context, rep Report) (HeartbeatReply, error) {
	id := ring.NodeID(rep.Node)
	v := l.meta.View()
	if v.Removed(id) {
		return HeartbeatReply{}, fmt.Errorf("node %s: %w", id, ErrRemoved)
	}
	reply := HeartbeatReply{Leaders: map[uint32]string{}}
	l.mu.Lock()
	now := l.opts.Now()
	l.mu.lastSeen[id] = now
	l.mu.reports[id] = rep
	for g, l := range l.freshLeadersLocked(now) {
		reply.Leaders[uint32(g)] = string(l.node)
	}
	l.mu.Unlock()
	nd := v.State.Node(id)
	if nd != nil && nd.State != ring.NodeDead && nd.Addr != rep.Addr && rep.Addr != "" {
		// The node restarted at another address: everybody dials it there
		// from now on (raft transports resolve addresses through the
		// metadata, so no group configuration needs rewriting).
		if err := l.step(ctx, ring.Step{Kind: ring.StepSetNodeAddr, Node: id, Addr: rep.Addr}); err != nil {
			return HeartbeatReply{}, fmt.Errorf("new address of %s: %w", id, err)
		}
	}
	if nd == nil || nd.State == ring.NodeDead {
		if err := l.plan(ctx, ring.Event{Kind: ring.EventJoin, Node: id, Addr: rep.Addr}); err != nil {
			return HeartbeatReply{}, fmt.Errorf("join %s: %w", id, err)
		}
		l.opts.Logger.Info("node joined", "node", id, "addr", rep.Addr)
	}
	for _, r := range rep.Replicas {
		if v.Bootstraps(ring.GroupID(r.Group), id) && r.State == "Leader" {
			if err := l.meta.propose(ctx, ring.AppendStep(nil, ring.Step{Kind: ring.StepStartGroup, Group: ring.GroupID(r.Group)})); err != nil {
				return HeartbeatReply{}, fmt.Errorf("record start of group %d: %w", r.Group, err)
			}
		}
	}
	reply.Generation = l.meta.View().State.Generation
	return reply, nil
}

// reportedLeader is a group's leader by the reports.
type reportedLeader struct {
	node   ring.NodeID
	report ReplicaReport
}

// freshLeadersLocked returns each group's leader by the reports of nodes
// heard from within three heartbeats (a dead node's last report would
// name it leader forever), the highest term winning; the caller holds
// l.mu.
func (l *metaLeader) freshLeadersLocked(now time.Time) map[ring.GroupID]reportedLeader {
	out := map[ring.GroupID]reportedLeader{}
	for node, r := range l.mu.reports {
		if now.Sub(l.mu.lastSeen[node]) > 3*l.opts.Heartbeat {
			continue
		}
		for _, rr := range r.Replicas {
			g := ring.GroupID(rr.Group)
			if rr.State == "Leader" && (out[g].node == "" || rr.Term > out[g].report.Term) {
				out[g] = reportedLeader{node, rr}
			}
		}
	}
	return out
}

// drain plans moving every replica off node id; the node is removed from
// the metadata once it holds none.
func (l *metaLeader) drain(ctx context.Context, id ring.NodeID) error {
	if l.meta.View().State.Node(id) == nil {
		return fmt.Errorf("drain %q: %w", id, ring.ErrUnknownNode)
	}
	return l.plan(ctx, ring.Event{Kind: ring.EventDrain, Node: id})
}

// plan computes the steps ev needs on the current metadata and commits
// them one by one. A step the state no longer takes (it moved on) ends
// the plan; the next reconcile plans again.
func (l *metaLeader) plan(ctx context.Context, ev ring.Event) error {
	l.planMu.Lock()
	defer l.planMu.Unlock()
	// Every entry committed by earlier leaders must be applied before
	// this one plans from the state.
	if err := l.meta.g.VerifyRead(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if ev.AtMillis == 0 {
		ev.AtMillis = l.opts.Now().UnixMilli()
	}
	steps, err := ring.Plan(l.meta.View().State, ev)
	if err != nil {
		return err
	}
	for _, st := range steps {
		if err := l.meta.propose(ctx, ring.AppendStep(nil, st)); err != nil {
			if errors.Is(err, errRefused) {
				l.opts.Logger.Warn("planned step refused; replanning later", "step", st.String(), "err", err)
				return nil
			}
			return fmt.Errorf("propose %v: %w", st, err)
		}
		l.opts.Logger.Info("metadata step", "step", st.String())
	}
	return nil
}

// step commits one metadata step outside a plan.
func (l *metaLeader) step(ctx context.Context, st ring.Step) error {
	l.planMu.Lock()
	defer l.planMu.Unlock()
	if err := l.meta.propose(ctx, ring.AppendStep(nil, st)); err != nil {
		return fmt.Errorf("propose %v: %w", st, err)
	}
	l.opts.Logger.Info("metadata step", "step", st.String())
	return nil
}

// metaLoop runs the metadata leader's duties every Heartbeat: declare
// dead the nodes not heard from for DeadAfter, reconcile the placement,
// and keep the metadata group's voters on active nodes.
func (l *metaLeader) loop() {
	for l.life.sleep(l.opts.Heartbeat) {
		if !l.meta.g.IsLeader() {
			continue
		}
		ctx, cancel := l.life.ctx(time.Minute)
		l.tick(ctx)
		cancel()
	}
}

func (l *metaLeader) tick(ctx context.Context) {
	now := l.opts.Now()
	st, err := l.meta.g.Status()
	if err != nil {
		return
	}
	v := l.meta.View()
	l.mu.Lock()
	if l.mu.term != st.Term {
		// A new leader has no history: every node gets DeadAfter from now.
		l.mu.term = st.Term
		clear(l.mu.lastSeen)
		clear(l.mu.reports)
		for _, nd := range v.State.Nodes {
			l.mu.lastSeen[nd.ID] = now
		}
	}
	var dead []ring.NodeID
	for _, nd := range v.State.Nodes {
		seen, ok := l.mu.lastSeen[nd.ID]
		if !ok {
			l.mu.lastSeen[nd.ID] = now
			continue
		}
		if nd.State != ring.NodeDead && nd.ID != l.self && now.Sub(seen) > l.opts.DeadAfter {
			dead = append(dead, nd.ID)
		}
	}
	l.mu.Unlock()
	for _, id := range dead {
		l.opts.Logger.Warn("node declared dead", "node", id, "silent_for", l.opts.DeadAfter)
		if err := l.plan(ctx, ring.Event{Kind: ring.EventDead, Node: id}); err != nil {
			l.opts.Logger.Warn("plan dead node", "node", id, "err", err)
		}
	}
	if err := l.plan(ctx, ring.Event{Kind: ring.EventReconcile}); err != nil {
		l.opts.Logger.Warn("reconcile placement", "err", err)
	}
	l.reconcileMeta(ctx, l.meta.View(), st.Members)
}

// reconcileMeta makes one change to the metadata group's configuration:
// every node in the metadata is a member (non-voters receive the
// metadata), up to three active nodes vote, nodes that are dead or gone
// leave. The leader itself, if it must stop voting, hands leadership on
// first.
func (l *metaLeader) reconcileMeta(ctx context.Context, v *View, members []raftgroup.Member) {
	isMember := func(id ring.NodeID) (raftgroup.Member, bool) {
		i := slices.IndexFunc(members, func(m raftgroup.Member) bool { return m.ID == string(id) })
		if i < 0 {
			return raftgroup.Member{}, false
		}
		return members[i], true
	}
	active := v.State.ActiveNodes()
	// Voters that count: on active nodes, or peers that have not joined
	// yet (not drained and removed).
	voters := 0
	for _, m := range members {
		nd := v.State.Node(ring.NodeID(m.ID))
		if m.Voter && (nd == nil && !v.Gone(ring.NodeID(m.ID)) || nd != nil && nd.State == ring.NodeActive) {
			voters++
		}
	}
	log := l.opts.Logger.With("group", "meta")
	// Non-voters for every known, live node; promote while short of voters.
	for _, nd := range v.State.Nodes {
		if nd.State == ring.NodeDead {
			continue
		}
		m, ok := isMember(nd.ID)
		switch {
		case !ok:
			if err := l.meta.g.AddNonvoter(ctx, string(nd.ID), nd.Addr); err != nil {
				log.Warn("add metadata non-voter", "node", nd.ID, "err", err)
			}
			return
		case !m.Voter && nd.State == ring.NodeActive && voters < min(metadataVoters, len(active)):
			if err := l.meta.g.AddVoter(ctx, string(nd.ID), nd.Addr); err != nil {
				log.Warn("promote metadata voter", "node", nd.ID, "err", err)
			}
			log.Info("metadata voter added", "node", nd.ID)
			return
		}
	}
	// Members that are dead, draining voters once enough active voters
	// remain, and members the metadata no longer names (removed after a
	// drain; not peers that have not joined yet) leave.
	for _, m := range members {
		id := ring.NodeID(m.ID)
		nd := v.State.Node(id)
		leave := false
		switch {
		case nd == nil:
			// Removed after a drain or death; a peer that has not joined
			// yet stays.
			leave = v.Gone(id) || !slices.ContainsFunc(l.opts.Peers, func(p raftgroup.Voter) bool { return p.ID == m.ID })
		case nd.State == ring.NodeDead:
			leave = true
		case nd.State == ring.NodeDraining && m.Voter:
			leave = voters >= min(metadataVoters, len(active))
		}
		if !leave {
			continue
		}
		if id == l.self {
			for _, o := range members {
				if o.Voter && o.ID != m.ID {
					if ond := v.State.Node(ring.NodeID(o.ID)); ond != nil && ond.State == ring.NodeActive {
						if err := l.meta.g.TransferLeadership(o.ID, o.Address); err != nil {
							log.Warn("transfer metadata leadership", "to", o.ID, "err", err)
						}
						return
					}
				}
			}
			continue
		}
		if err := l.meta.g.RemoveServer(ctx, m.ID); err != nil {
			log.Warn("remove metadata member", "node", m.ID, "err", err)
			return
		}
		log.Info("metadata member removed", "node", m.ID)
		return
	}
}
