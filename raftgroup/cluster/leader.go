package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// metadataVoters is the size of the metadata group's quorum set: the
// first (up to) three active nodes vote, every other node follows as a
// non-voter so it receives the metadata.
const metadataVoters = 3

// heartbeatLoop reports this node to the metadata leader every
// Heartbeat: that is how a node joins (the leader plans its join when it
// does not know it or thinks it dead), how the leader knows it is alive,
// and how the leader learns the replicas' state for the status page.
func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	failing := false // the last heartbeat failed (log one line per outage)
	for {
		ctx, cancel := n.ctx(max(n.opts.Heartbeat*2, 2*time.Second))
		rep := n.report()
		var reply HeartbeatReply
		var err error
		if n.meta.IsLeader() {
			reply, err = n.heartbeat(ctx, rep)
		} else {
			var b []byte
			if b, err = json.Marshal(rep); err == nil {
				err = n.metaCall(ctx, http.MethodPost, "heartbeat", nil, b, &reply)
			}
		}
		cancel()
		if err == nil {
			n.leaders.Store(&reply.Leaders)
			// Fresh only if this node's own metadata has caught up with
			// the leader's as of the reply.
			if n.fsm.View().State.Generation >= reply.Generation {
				n.lastReply.Store(n.opts.Now().UnixNano())
			}
		}
		var re *rpcError
		switch {
		case err == nil || n.base.Err() != nil:
			failing = false
		case errors.As(err, &re) && re.Code == http.StatusGone:
			if !failing {
				n.opts.Logger.Warn("this node was drained and removed from the cluster: stop it (its ID cannot rejoin)")
			}
			failing = true
		case !failing:
			// One line per outage; the state of every try is in Debug.
			n.opts.Logger.Warn("cannot reach the metadata leader; retrying", "err", err)
			failing = true
		default:
			n.opts.Logger.Debug("heartbeat", "err", err)
		}
		if !n.sleep(n.opts.Heartbeat) {
			return
		}
	}
}

// MetadataAge is how long ago this node last heard from the metadata
// leader with its own metadata caught up to the leader's (zero on the
// leader itself): a bound on how stale its ring may be. A node whose metadata is older than the querier's staleness window
// must not route writes (ring.Window.StaleMillis).
func (n *Node) MetadataAge() time.Duration {
	if n.meta.IsLeader() {
		return 0
	}
	last := n.lastReply.Load()
	if last == 0 {
		return time.Duration(math.MaxInt64)
	}
	return n.opts.Now().Sub(time.Unix(0, last))
}

// report describes this node's replicas.
func (n *Node) report() Report {
	rep := Report{Node: n.opts.NodeID, Addr: n.opts.Advertise}
	n.mu.Lock()
	rs := make([]*replica, 0, len(n.mu.replicas))
	for _, r := range n.mu.replicas {
		rs = append(rs, r)
	}
	n.mu.Unlock()
	slices.SortFunc(rs, func(a, b *replica) int { return int(a.id) - int(b.id) })
	var led []ring.GroupID
	for _, r := range rs {
		st, err := r.rg.Status()
		if err != nil {
			continue
		}
		rep.Replicas = append(rep.Replicas, ReplicaReport{
			Group: uint32(r.id), State: st.State, Term: st.Term, Leader: st.LeaderID, Applied: st.Stats.AppliedIndex, Members: st.Members,
		})
		if st.State == "Leader" {
			led = append(led, r.id)
		}
	}
	if n.opts.Tenants != nil {
		rep.Tenants = n.opts.Tenants(led)
	}
	return rep
}

// heartbeat handles a node's report on the metadata leader: it notes the
// node alive, plans its (re)join if the metadata does not have it active,
// and notes groups whose first replica has started.
func (n *Node) heartbeat(ctx context.Context, rep Report) (HeartbeatReply, error) {
	id := ring.NodeID(rep.Node)
	v := n.fsm.View()
	if v.Removed(id) {
		return HeartbeatReply{}, fmt.Errorf("node %s: %w", id, ErrRemoved)
	}
	reply := HeartbeatReply{Leaders: map[uint32]string{}}
	n.leader.Lock()
	now := n.opts.Now()
	n.leader.lastSeen[id] = now
	n.leader.reports[id] = rep
	for g, l := range n.freshLeadersLocked(now) {
		reply.Leaders[uint32(g)] = string(l.node)
	}
	n.leader.Unlock()
	nd := v.State.Node(id)
	if nd != nil && nd.State != ring.NodeDead && nd.Addr != rep.Addr && rep.Addr != "" {
		// The node restarted at another address: everybody dials it there
		// from now on (raft transports resolve addresses through the
		// metadata, so no group configuration needs rewriting).
		if err := n.step(ctx, ring.Step{Kind: ring.StepSetNodeAddr, Node: id, Addr: rep.Addr}); err != nil {
			return HeartbeatReply{}, fmt.Errorf("new address of %s: %w", id, err)
		}
	}
	if nd == nil || nd.State == ring.NodeDead {
		if err := n.plan(ctx, ring.Event{Kind: ring.EventJoin, Node: id, Addr: rep.Addr}); err != nil {
			return HeartbeatReply{}, fmt.Errorf("join %s: %w", id, err)
		}
		n.opts.Logger.Info("node joined", "node", id, "addr", rep.Addr)
	}
	for _, r := range rep.Replicas {
		if v.Bootstraps(ring.GroupID(r.Group), id) && r.State == "Leader" {
			if err := n.proposeMeta(ctx, appendStarted(nil, ring.GroupID(r.Group))); err != nil {
				return HeartbeatReply{}, fmt.Errorf("record start of group %d: %w", r.Group, err)
			}
		}
	}
	reply.Generation = n.fsm.View().State.Generation
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
// n.leader.
func (n *Node) freshLeadersLocked(now time.Time) map[ring.GroupID]reportedLeader {
	out := map[ring.GroupID]reportedLeader{}
	for node, r := range n.leader.reports {
		if now.Sub(n.leader.lastSeen[node]) > 3*n.opts.Heartbeat {
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
func (n *Node) drain(ctx context.Context, id ring.NodeID) error {
	if n.fsm.View().State.Node(id) == nil {
		return fmt.Errorf("drain %q: %w", id, ring.ErrUnknownNode)
	}
	return n.plan(ctx, ring.Event{Kind: ring.EventDrain, Node: id})
}

// Drain asks the metadata leader to drain node id: its replicas move to
// other nodes (add, catch up, then remove), then it leaves the cluster.
func (n *Node) Drain(ctx context.Context, id string) error {
	if n.meta.IsLeader() {
		return n.drain(ctx, ring.NodeID(id))
	}
	return n.metaCall(ctx, http.MethodPost, "drain", url.Values{"node": {id}}, nil, nil)
}

// plan computes the steps ev needs on the current metadata and commits
// them one by one. A step the state no longer takes (it moved on) ends
// the plan; the next reconcile plans again.
func (n *Node) plan(ctx context.Context, ev ring.Event) error {
	n.planMu.Lock()
	defer n.planMu.Unlock()
	// Every entry committed by earlier leaders must be applied before
	// this one plans from the state.
	if err := n.meta.VerifyRead(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if ev.AtMillis == 0 {
		ev.AtMillis = n.opts.Now().UnixMilli()
	}
	steps, err := ring.Plan(n.fsm.View().State, ev)
	if err != nil {
		return err
	}
	for _, st := range steps {
		if err := n.proposeMeta(ctx, ring.AppendStep(nil, st)); err != nil {
			if errors.Is(err, errRefused) {
				n.opts.Logger.Warn("planned step refused; replanning later", "step", st.String(), "err", err)
				return nil
			}
			return fmt.Errorf("propose %v: %w", st, err)
		}
		n.opts.Logger.Info("metadata step", "step", st.String())
	}
	return nil
}

// step commits one metadata step outside a plan.
func (n *Node) step(ctx context.Context, st ring.Step) error {
	n.planMu.Lock()
	defer n.planMu.Unlock()
	if err := n.proposeMeta(ctx, ring.AppendStep(nil, st)); err != nil {
		return fmt.Errorf("propose %v: %w", st, err)
	}
	n.opts.Logger.Info("metadata step", "step", st.String())
	return nil
}

// metaLoop runs the metadata leader's duties every Heartbeat: declare
// dead the nodes not heard from for DeadAfter, reconcile the placement,
// and keep the metadata group's voters on active nodes.
func (n *Node) metaLoop() {
	defer n.wg.Done()
	for n.sleep(n.opts.Heartbeat) {
		if !n.meta.IsLeader() {
			continue
		}
		ctx, cancel := n.ctx(time.Minute)
		n.leaderTick(ctx)
		cancel()
	}
}

func (n *Node) leaderTick(ctx context.Context) {
	now := n.opts.Now()
	st, err := n.meta.Status()
	if err != nil {
		return
	}
	v := n.fsm.View()
	n.leader.Lock()
	if n.leader.term != st.Term {
		// A new leader has no history: every node gets DeadAfter from now.
		n.leader.term = st.Term
		clear(n.leader.lastSeen)
		clear(n.leader.reports)
		for _, nd := range v.State.Nodes {
			n.leader.lastSeen[nd.ID] = now
		}
	}
	var dead []ring.NodeID
	for _, nd := range v.State.Nodes {
		seen, ok := n.leader.lastSeen[nd.ID]
		if !ok {
			n.leader.lastSeen[nd.ID] = now
			continue
		}
		if nd.State != ring.NodeDead && nd.ID != n.self && now.Sub(seen) > n.opts.DeadAfter {
			dead = append(dead, nd.ID)
		}
	}
	n.leader.Unlock()
	for _, id := range dead {
		n.opts.Logger.Warn("node declared dead", "node", id, "silent_for", n.opts.DeadAfter)
		if err := n.plan(ctx, ring.Event{Kind: ring.EventDead, Node: id}); err != nil {
			n.opts.Logger.Warn("plan dead node", "node", id, "err", err)
		}
	}
	if err := n.plan(ctx, ring.Event{Kind: ring.EventReconcile}); err != nil {
		n.opts.Logger.Warn("reconcile placement", "err", err)
	}
	n.reconcileMeta(ctx, n.fsm.View(), st.Members)
}

// reconcileMeta makes one change to the metadata group's configuration:
// every node in the metadata is a member (non-voters receive the
// metadata), up to three active nodes vote, nodes that are dead or gone
// leave. The leader itself, if it must stop voting, hands leadership on
// first.
func (n *Node) reconcileMeta(ctx context.Context, v *View, members []raftgroup.Member) {
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
	log := n.opts.Logger.With("group", "meta")
	// Non-voters for every known, live node; promote while short of voters.
	for _, nd := range v.State.Nodes {
		if nd.State == ring.NodeDead {
			continue
		}
		m, ok := isMember(nd.ID)
		switch {
		case !ok:
			if err := n.meta.AddNonvoter(ctx, string(nd.ID), nd.Addr); err != nil {
				log.Warn("add metadata non-voter", "node", nd.ID, "err", err)
			}
			return
		case !m.Voter && nd.State == ring.NodeActive && voters < min(metadataVoters, len(active)):
			if err := n.meta.AddVoter(ctx, string(nd.ID), nd.Addr); err != nil {
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
			leave = v.Gone(id) || !slices.ContainsFunc(n.opts.Peers, func(p raftgroup.Voter) bool { return p.ID == m.ID })
		case nd.State == ring.NodeDead:
			leave = true
		case nd.State == ring.NodeDraining && m.Voter:
			leave = voters >= min(metadataVoters, len(active))
		}
		if !leave {
			continue
		}
		if id == n.self {
			for _, o := range members {
				if o.Voter && o.ID != m.ID {
					if ond := v.State.Node(ring.NodeID(o.ID)); ond != nil && ond.State == ring.NodeActive {
						if err := n.meta.TransferLeadership(o.ID, o.Address); err != nil {
							log.Warn("transfer metadata leadership", "to", o.ID, "err", err)
						}
						return
					}
				}
			}
			continue
		}
		if err := n.meta.RemoveServer(ctx, m.ID); err != nil {
			log.Warn("remove metadata member", "node", m.ID, "err", err)
			return
		}
		log.Info("metadata member removed", "node", m.ID)
		return
	}
}

// proposeMeta commits a metadata entry (on the metadata leader). An entry
// the state machine refused (a step that no longer fits) is an error
// wrapping errRefused.
func (n *Node) proposeMeta(ctx context.Context, entry []byte) error {
	_, outcome, err := n.meta.Propose(ctx, entry)
	if err == nil && outcome != nil {
		err = fmt.Errorf("%w: %s", errRefused, outcome)
	}
	return err
}

// errRefused: the metadata state machine refused a committed entry.
var errRefused = errors.New("cluster: metadata entry refused")

// Propose commits entry in group g through its leader, on this node or
// another, and returns the applier's outcome for it (nil: nothing to
// report). An error wrapping ErrUnavailable means the entry may or may
// not have been committed: retry (applying identical samples again is
// harmless).
func (n *Node) Propose(ctx context.Context, g ring.GroupID, entry []byte) ([]byte, error) {
	var errs []error
	var hint string                       // the leader a 421 named
	unreachable := map[ring.NodeID]bool{} // nodes a call to failed
	// Three attempts, 150 ms of waiting: enough to follow a leader that
	// moved; an election takes longer (~1 s), and the sender's retry then
	// finds the new leader.
	for attempt := range 3 {
		id, addr, local := n.Leader(g)
		if hint != "" && hint != string(id) {
			id, addr, local = ring.NodeID(hint), n.Resolve(hint), hint == n.opts.NodeID
		}
		hint = ""
		if unreachable[id] {
			// Retrying a node we cannot reach only delays the 503 the
			// sender retries on; a new leader shows up by itself.
			break
		}
		switch {
		case local:
			rg := n.Replica(g)
			if rg == nil {
				errs = append(errs, fmt.Errorf("group %d: replica not open here yet", g))
				break
			}
			_, outcome, err := rg.Propose(ctx, entry)
			switch {
			case err == nil:
				return outcome, nil
			case errors.Is(err, raftgroup.ErrNotLeader):
				errs = append(errs, err)
			default:
				// Leadership lost, closed, the applier failed, ctx ended:
				// the entry may or may not commit.
				return nil, fmt.Errorf("%w: group %d: %w", ErrUnavailable, g, err)
			}
		case addr != "":
			_, body, err := n.call(ctx, http.MethodPost, addr, "propose", url.Values{"group": {strconv.FormatUint(uint64(g), 10)}}, entry, nil)
			if err == nil {
				if len(body) == 0 {
					return nil, nil
				}
				return body, nil
			}
			errs = append(errs, err)
			var re *rpcError
			switch {
			case errors.As(err, &re) && re.Code == http.StatusMisdirectedRequest:
				hint = re.Leader
				continue // no wait: the leader is known
			case !errors.As(err, &re):
				unreachable[id] = true
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: propose to group %d: %w", ErrUnavailable, g, errors.Join(errs...))
			}
		default:
			errs = append(errs, fmt.Errorf("group %d: no leader known (node %q)", g, id))
		}
		// An election may be under way: wait a little for it.
		if attempt < 2 && !n.sleepCtx(ctx, time.Duration(50<<attempt)*time.Millisecond) {
			break
		}
	}
	return nil, fmt.Errorf("%w: propose to group %d: %w", ErrUnavailable, g, errors.Join(errs...))
}

// sleepCtx waits d unless ctx ends or the node closes first.
func (n *Node) sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-n.done:
	}
	return false
}
