package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// MetaGroup is the Mux group number of the metadata group. Data groups
// are numbered from 1 by the planner and never reach it.
const MetaGroup = 1<<32 - 1

// ErrUnavailable: the group (or the metadata group) has no reachable
// leader now; retry.
var ErrUnavailable = errors.New("cluster: unavailable")

// ErrRemoved: the node was drained and removed from the cluster; it may
// not join again under its ID (start it with a new ID and an empty data
// directory).
var ErrRemoved = errors.New("cluster: node was removed from the cluster")

// ErrClosed: the node is closed.
var ErrClosed = errors.New("cluster: node closed")

// Node is one member of a cluster: its replica of the metadata group, its
// replicas of data groups, and the loops that keep them where the
// metadata says (see the package doc). Its methods are safe for
// concurrent use.
type Node struct {
	opts   Options // immutable after Start
	self   ring.NodeID
	meta   *raftgroup.Group
	fsm    *metaFSM
	client *http.Client

	kick chan struct{} // the metadata changed: run the control loop now
	done chan struct{} // closed by Close
	// base ends at Close; every RPC and proposal of the loops derives
	// from it.
	base       context.Context
	cancelBase context.CancelFunc
	wg         sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	mu struct {
		sync.Mutex
		closed   bool
		replicas map[ring.GroupID]*replica
	}

	// leader holds what only the metadata leader tracks.
	leader struct {
		sync.Mutex
		term     uint64
		lastSeen map[ring.NodeID]time.Time
		reports  map[ring.NodeID]Report
	}
	planMu sync.Mutex // serializes planning and proposing on the metadata leader
	// leaders: each group's leader per the last heartbeat reply.
	leaders atomic.Pointer[map[uint32]string]
	// lastReply: when the last heartbeat reply came (unix ns).
	lastReply atomic.Int64
}

// replica is this node's replica of a data group.
type replica struct {
	id  ring.GroupID
	dir string
	rg  *raftgroup.Group
	// busy is set while a reconcile or leave check of the group runs.
	busy atomic.Bool
	// lastTransfer: the last leadership transfer this replica asked for
	// (reconcile goroutine only).
	lastTransfer time.Time
}

// Start opens the node: its metadata replica (bootstrapping a new
// cluster, joining one, or recovering), then starts its loops. It does
// not wait for the cluster: data groups open as the metadata assigns
// them, and the handler (Handler) must be served for others to reach it.
func Start(opts Options) (*Node, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	n := &Node{
		opts: opts,
		self: ring.NodeID(opts.NodeID),
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	n.base, n.cancelBase = context.WithCancel(context.Background())
	n.mu.replicas = map[ring.GroupID]*replica{}
	n.leader.lastSeen = map[ring.NodeID]time.Time{}
	n.leader.reports = map[ring.NodeID]Report{}
	n.client = &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return opts.Mux.Dial(ctx, addr, raftgroup.KindHTTP, 0)
			},
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     time.Minute,
		},
		Timeout: 30 * time.Second,
	}
	metaDir := filepath.Join(opts.Dir, "meta")
	if err := os.MkdirAll(metaDir, 0o755); err != nil {
		return nil, fmt.Errorf("start node %s: %w", opts.NodeID, err)
	}
	fsm, err := openMetaFSM(metaDir, opts.Ring, n.poke)
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", opts.NodeID, err)
	}
	n.fsm = fsm
	tr, err := opts.Mux.Transport(MetaGroup, raftgroup.TransportOptions{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", opts.NodeID, err)
	}
	ro := n.raftOptions(metaDir, "meta", fsm)
	ro.Transport = tr
	// The metadata log is small and rarely written: snapshot it often so
	// a restart replays little and a new member gets one small snapshot.
	ro.SnapshotThreshold, ro.TrailingLogs = 256, 256
	switch {
	case len(opts.Peers) > 0:
		ro.Voters = opts.Peers
	case opts.Join != "" && opts.Join != opts.Advertise:
		ro.Join = true
	}
	if n.meta, err = raftgroup.Open(ro); err != nil {
		return nil, errors.Join(fmt.Errorf("start node %s: open metadata group: %w", opts.NodeID, err), tr.Close())
	}
	n.wg.Add(3)
	go n.heartbeatLoop()
	go n.controlLoop()
	go n.metaLoop()
	return n, nil
}

func (n *Node) raftOptions(dir, name string, a raftgroup.Applier) raftgroup.Options {
	ro := n.opts.Raft
	ro.Dir, ro.ID, ro.Name, ro.Applier, ro.Registerer = dir, n.opts.NodeID, name, a, n.opts.Registerer
	ro.Voters, ro.Join, ro.Transport = nil, false, nil
	if ro.Logger == nil {
		ro.Logger = n.opts.Logger
	}
	ro.Logger = ro.Logger.With("group", name)
	return ro
}

// poke wakes the control loop (the metadata changed).
func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// View returns the latest metadata this node has applied.
func (n *Node) View() *View { return n.fsm.View() }

// Resolve returns the Mux address of node id: from the metadata, the
// peers or the metadata group's configuration. "" if unknown. The Mux's
// MuxOptions.Resolve calls it.
func (n *Node) Resolve(id string) string {
	if id == n.opts.NodeID {
		return n.opts.Advertise
	}
	// The operator's peer list first: it may route through addresses the
	// nodes do not advertise (a proxy, another interface).
	for _, p := range n.opts.Peers {
		if p.ID == id {
			return p.Address
		}
	}
	if nd := n.fsm.View().State.Node(ring.NodeID(id)); nd != nil {
		return nd.Addr
	}
	if n.meta != nil {
		return n.meta.MemberAddress(id)
	}
	return ""
}

// Replica returns this node's open replica of group g, or nil.
func (n *Node) Replica(g ring.GroupID) *raftgroup.Group {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.mu.replicas[g]; r != nil {
		return r.rg
	}
	return nil
}

// Leader returns the node that leads group g as far as this node knows:
// its own replica's view of the leader, else the leader the metadata
// leader last heard of, else the preferred leader in the metadata. local
// is true if this node's replica leads.
func (n *Node) Leader(g ring.GroupID) (id ring.NodeID, addr string, local bool) {
	if rg := n.Replica(g); rg != nil {
		if rg.IsLeader() {
			return n.self, n.opts.Advertise, true
		}
		if lid, _ := rg.Leader(); lid != "" {
			return ring.NodeID(lid), n.Resolve(lid), false
		}
	}
	if m := n.leaders.Load(); m != nil {
		if id := (*m)[uint32(g)]; id != "" && id != n.opts.NodeID {
			if addr := n.Resolve(id); addr != "" {
				return ring.NodeID(id), addr, false
			}
		}
	}
	v := n.fsm.View()
	if grp := v.State.Group(g); grp != nil {
		if addr := n.Resolve(string(grp.Leader)); addr != "" {
			return grp.Leader, addr, grp.Leader == n.self
		}
	}
	return "", "", false
}

// Close stops the loops, checkpoints and closes every replica (data
// groups first, then the metadata group). Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		n.cancelBase()
		n.wg.Wait()
		n.mu.Lock()
		n.mu.closed = true
		rs := n.mu.replicas
		n.mu.replicas = map[ring.GroupID]*replica{}
		n.mu.Unlock()
		var errs []error
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, r := range rs {
			wg.Go(func() {
				err := errors.Join(r.rg.Checkpoint(), r.rg.Close(), n.opts.Storage.Close(r.id))
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			})
		}
		wg.Wait()
		errs = append(errs, n.meta.Checkpoint(), n.meta.Close())
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// sleep waits d or until Close; false if closed.
func (n *Node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.done:
		return false
	}
}

// ctx returns a context that ends at Close or after d.
func (n *Node) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(n.base, d)
}

// controlLoop keeps this node's replicas where the metadata says and
// reconciles the groups it leads.
func (n *Node) controlLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.opts.Heartbeat / 2)
	defer tick.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-tick.C:
		case <-n.kick:
		}
		n.syncReplicas()
	}
}

// syncReplicas opens the replicas the metadata assigns to this node,
// starts a leave check for those it no longer does, and a reconcile for
// each group this node leads.
func (n *Node) syncReplicas() {
	v := n.fsm.View()
	for _, g := range v.State.Groups {
		if !slices.Contains(g.Replicas, n.self) {
			continue
		}
		if rg := n.Replica(g.ID); rg != nil {
			continue
		}
		if err := n.openReplica(g.ID, v.Bootstraps(g.ID, n.self)); err != nil {
			n.opts.Logger.Error("open replica", "group", g.ID, "err", err)
		}
	}
	n.mu.Lock()
	rs := make([]*replica, 0, len(n.mu.replicas))
	for _, r := range n.mu.replicas {
		rs = append(rs, r)
	}
	n.mu.Unlock()
	for _, r := range rs {
		if !r.busy.CompareAndSwap(false, true) {
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer r.busy.Store(false)
			grp := v.State.Group(r.id)
			switch {
			case r.rg.IsLeader() && grp != nil:
				n.reconcileGroup(r, v, grp)
			case grp == nil || !slices.Contains(grp.Replicas, n.self):
				n.checkLeave(r, v)
			}
		}()
	}
}

func (n *Node) groupDir(g ring.GroupID) string {
	return filepath.Join(n.opts.Dir, "groups", strconv.FormatUint(uint64(g), 10))
}

// openReplica opens this node's replica of g: recovered from its
// directory, bootstrapped as the group's first voter (bootstrap: this
// node created the group and nobody started it), or waiting to be added
// by the group's leader.
func (n *Node) openReplica(g ring.GroupID, bootstrap bool) (err error) {
	dir := n.groupDir(g)
	_, statErr := os.Stat(dir)
	fresh := errors.Is(statErr, os.ErrNotExist)
	a, err := n.opts.Storage.Open(g)
	if err != nil {
		return fmt.Errorf("open state of group %d: %w", g, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.opts.Storage.Close(g))
		}
	}()
	tr, err := n.opts.Mux.Transport(uint32(g), raftgroup.TransportOptions{Logger: n.opts.Logger})
	if err != nil {
		return err
	}
	ro := n.raftOptions(dir, strconv.FormatUint(uint64(g), 10), a)
	ro.Transport = tr
	if fresh {
		if bootstrap {
			ro.Voters = []raftgroup.Voter{{ID: n.opts.NodeID, Address: n.opts.Advertise}}
		} else {
			ro.Join = true
		}
	}
	rg, err := raftgroup.Open(ro)
	if err != nil {
		return errors.Join(fmt.Errorf("open raft group %d: %w", g, err), tr.Close())
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return errors.Join(ErrClosed, rg.Close())
	}
	n.mu.replicas[g] = &replica{id: g, dir: dir, rg: rg}
	n.opts.Logger.Info("replica open", "group", g, "bootstrap", fresh && bootstrap, "join", fresh && !bootstrap)
	return nil
}

// checkLeave closes and deletes this node's replica of a group the
// metadata no longer places here, once the group's configuration no
// longer has it (the leader removes it only after the replicas that
// replace it are voters).
func (n *Node) checkLeave(r *replica, v *View) {
	lid, _ := r.rg.Leader()
	var addrs []string
	if lid != "" {
		if a := n.Resolve(lid); a != "" {
			addrs = append(addrs, a)
		}
	}
	if grp := v.State.Group(r.id); grp != nil {
		for _, id := range grp.Replicas {
			if a := n.Resolve(string(id)); a != "" && id != n.self {
				addrs = append(addrs, a)
			}
		}
	}
	for _, addr := range addrs {
		ctx, cancel := n.ctx(5 * time.Second)
		rs, err := n.replicaStatus(ctx, addr, r.id)
		cancel()
		if err != nil || rs.State != "Leader" {
			continue
		}
		if slices.ContainsFunc(rs.Members, func(m raftgroup.Member) bool { return m.ID == n.opts.NodeID }) {
			return // still a member: the leader removes it first
		}
		n.dropReplica(r)
		return
	}
}

// dropReplica closes r and deletes its state and log.
func (n *Node) dropReplica(r *replica) {
	n.mu.Lock()
	if n.mu.replicas[r.id] != r {
		n.mu.Unlock()
		return
	}
	delete(n.mu.replicas, r.id)
	n.mu.Unlock()
	err := errors.Join(r.rg.Close(), n.opts.Storage.Drop(r.id), os.RemoveAll(r.dir))
	if err != nil {
		n.opts.Logger.Error("drop replica", "group", r.id, "err", err)
		return
	}
	n.opts.Logger.Info("replica dropped: moved to other nodes", "group", r.id)
}

// catchUpSlack: a non-voter whose applied index is within this many
// entries of the leader's counts as caught up and is promoted.
const catchUpSlack = 64

// transferEvery bounds how often a group leader hands leadership to the
// preferred leader, so a flapping replica does not bounce it.
const transferEvery = 10 * time.Second

// reconcileGroup moves group g's Raft configuration one change towards
// the metadata's placement; r leads g. Order: add missing replicas as
// non-voters, promote the ones that caught up, and only once every placed
// replica is a voter remove the others (add-then-remove), then hand
// leadership to the preferred leader.
func (n *Node) reconcileGroup(r *replica, v *View, grp *ring.Group) {
	members, err := r.rg.Members()
	if err != nil {
		return
	}
	member := func(id ring.NodeID) (raftgroup.Member, bool) {
		i := slices.IndexFunc(members, func(m raftgroup.Member) bool { return m.ID == string(id) })
		if i < 0 {
			return raftgroup.Member{}, false
		}
		return members[i], true
	}
	ctx, cancel := n.ctx(30 * time.Second)
	defer cancel()
	log := n.opts.Logger.With("group", grp.ID)
	allVoters := true
	for _, id := range grp.Replicas {
		nd := v.State.Node(id)
		if nd == nil || nd.State == ring.NodeDead {
			continue
		}
		m, ok := member(id)
		switch {
		case !ok:
			allVoters = false
			if err := r.rg.AddNonvoter(ctx, string(id), nd.Addr); err != nil {
				log.Warn("add non-voter", "node", id, "err", err)
				return
			}
			log.Info("added non-voter", "node", id)
			return
		case !m.Voter:
			allVoters = false
			if !n.caughtUp(ctx, r, n.Resolve(string(id))) {
				continue
			}
			if err := r.rg.AddVoter(ctx, string(id), nd.Addr); err != nil {
				log.Warn("promote to voter", "node", id, "err", err)
				return
			}
			log.Info("promoted to voter", "node", id)
			return
		}
	}
	if !allVoters {
		return
	}
	for _, m := range members {
		if slices.Contains(grp.Replicas, ring.NodeID(m.ID)) {
			continue
		}
		if m.ID == n.opts.NodeID {
			n.transfer(ctx, r, v, grp, true)
			return
		}
		if err := r.rg.RemoveServer(ctx, m.ID); err != nil {
			log.Warn("remove replica", "node", m.ID, "err", err)
			return
		}
		log.Info("removed replica", "node", m.ID)
		return
	}
	if grp.Leader != n.self {
		n.transfer(ctx, r, v, grp, false)
	}
}

// transfer hands r's leadership to the group's preferred leader (or, when
// this replica must leave, any placed voter) once it has caught up.
func (n *Node) transfer(ctx context.Context, r *replica, v *View, grp *ring.Group, leaving bool) {
	now := n.opts.Now()
	if !leaving && now.Sub(r.lastTransfer) < transferEvery {
		return
	}
	candidates := []ring.NodeID{grp.Leader}
	if leaving {
		candidates = append(candidates, grp.Replicas...)
	}
	for _, id := range candidates {
		nd := v.State.Node(id)
		if id == n.self || nd == nil || nd.State != ring.NodeActive || !n.caughtUp(ctx, r, n.Resolve(string(id))) {
			continue
		}
		r.lastTransfer = now
		if err := r.rg.TransferLeadership(string(id), nd.Addr); err != nil {
			n.opts.Logger.Warn("transfer leadership", "group", grp.ID, "to", id, "err", err)
			return
		}
		n.opts.Logger.Info("transferred leadership", "group", grp.ID, "to", id)
		return
	}
}

// caughtUp asks the node at addr how far its replica of r's group has
// applied, and compares with this leader's.
func (n *Node) caughtUp(ctx context.Context, r *replica, addr string) bool {
	rs, err := n.replicaStatus(ctx, addr, r.id)
	if err != nil {
		return false
	}
	return rs.Stats.AppliedIndex+catchUpSlack >= r.rg.Stats().AppliedIndex
}
