package cluster

import (
	"context"
	"errors"
	"fmt"
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

// placement keeps this node's data replicas where the metadata says: it
// opens the replicas placed here, closes and deletes the ones moved away
// once their group no longer has them, and, for each group this node
// leads, makes one Raft configuration change at a time towards the
// placement (the executor of docs/design.md "Scale-out").
//
// Locking: mu guards the replica map and closed. Each replica's
// reconcile runs in one goroutine at a time (replica.busy).
type placement struct {
	opts Options // immutable
	self ring.NodeID
	life *lifecycle
	rpc  *rpcClient
	meta *metadata     // set by Start before the loops run
	kick chan struct{} // the metadata changed: run the loop now

	mu struct {
		sync.Mutex
		closed   bool
		replicas map[ring.GroupID]*replica
	}
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

func newPlacement(opts Options, life *lifecycle, rpc *rpcClient) *placement {
	p := &placement{opts: opts, self: ring.NodeID(opts.NodeID), life: life, rpc: rpc, kick: make(chan struct{}, 1)}
	p.mu.replicas = map[ring.GroupID]*replica{}
	return p
}

// poke wakes the loop (the metadata changed).
func (p *placement) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// replica returns this node's open replica of group g, or nil.
func (p *placement) replica(g ring.GroupID) *raftgroup.Group {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.mu.replicas[g]; r != nil {
		return r.rg
	}
	return nil
}

// open returns the open replicas, sorted by group.
func (p *placement) open() []*replica {
	p.mu.Lock()
	rs := make([]*replica, 0, len(p.mu.replicas))
	for _, r := range p.mu.replicas {
		rs = append(rs, r)
	}
	p.mu.Unlock()
	slices.SortFunc(rs, func(a, b *replica) int { return int(a.id) - int(b.id) })
	return rs
}

// loop keeps this node's replicas where the metadata says and reconciles
// the groups it leads, every half heartbeat and at every metadata change.
func (p *placement) loop() {
	tick := time.NewTicker(p.opts.Heartbeat / 2)
	defer tick.Stop()
	for {
		select {
		case <-p.life.done:
			return
		case <-tick.C:
		case <-p.kick:
		}
		p.sync()
	}
}

// sync opens the replicas the metadata assigns to this node, starts a
// leave check for those it no longer does, and a reconcile for each group
// this node leads.
func (p *placement) sync() {
	v := p.meta.View()
	for _, g := range v.State.Groups {
		if !slices.Contains(g.Replicas, p.self) || p.replica(g.ID) != nil {
			continue
		}
		if err := p.openReplica(v, &g); err != nil {
			p.opts.Logger.Error("open replica", "group", g.ID, "err", err)
		}
	}
	for _, r := range p.open() {
		if !r.busy.CompareAndSwap(false, true) {
			continue
		}
		p.life.goroutine(func() {
			defer r.busy.Store(false)
			grp := v.State.Group(r.id)
			switch {
			case r.rg.IsLeader() && grp != nil:
				p.reconcile(r, v, grp)
			case grp == nil || !slices.Contains(grp.Replicas, p.self):
				p.checkLeave(r, v)
			}
		})
	}
}

func (p *placement) groupDir(g ring.GroupID) string {
	return filepath.Join(p.opts.Dir, "groups", strconv.FormatUint(uint64(g), 10))
}

// openReplica opens this node's replica of g: recovered from its
// directory, bootstrapped as the group's first voter (this node created
// the group and nobody started it), or waiting to be added by the
// group's leader.
func (p *placement) openReplica(v *View, g *ring.Group) (err error) {
	dir := p.groupDir(g.ID)
	_, statErr := os.Stat(dir)
	fresh := errors.Is(statErr, os.ErrNotExist)
	bootstrap := v.Bootstraps(g.ID, p.self)
	a, err := p.opts.Storage.Open(g.ID)
	if err != nil {
		return fmt.Errorf("open state of group %d: %w", g.ID, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.opts.Storage.Close(g.ID))
		}
	}()
	tr, err := p.opts.Mux.Transport(uint32(g.ID), raftgroup.TransportOptions{Logger: p.opts.Logger})
	if err != nil {
		return err
	}
	ro := raftOptions(p.opts, dir, strconv.FormatUint(uint64(g.ID), 10), a)
	ro.Transport = tr
	if fresh {
		if bootstrap {
			ro.Voters = []raftgroup.Voter{{ID: p.opts.NodeID, Address: p.opts.Advertise}}
		} else {
			ro.Join = true
		}
	}
	// On a node nobody can reach (a cluster of one for good) a group
	// elects itself after one short timeout.
	if !p.opts.Mux.Listening() {
		ro.HeartbeatTimeout = singleVoterHeartbeat
	}
	rg, err := raftgroup.Open(ro)
	if err != nil {
		return errors.Join(fmt.Errorf("open raft group %d: %w", g.ID, err), tr.Close())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return errors.Join(raftgroup.ErrClosed, rg.Close())
	}
	p.mu.replicas[g.ID] = &replica{id: g.ID, dir: dir, rg: rg}
	p.opts.Logger.Info("replica open", "group", g.ID, "bootstrap", fresh && bootstrap, "join", fresh && !bootstrap)
	return nil
}

// checkLeave closes and deletes this node's replica of a group the
// metadata no longer places here, once the group's configuration no
// longer has it (the leader removes it only after the replicas that
// replace it are voters).
func (p *placement) checkLeave(r *replica, v *View) {
	lid, _ := r.rg.Leader()
	var addrs []string
	if lid != "" {
		if a := p.meta.resolve(lid); a != "" {
			addrs = append(addrs, a)
		}
	}
	if grp := v.State.Group(r.id); grp != nil {
		for _, id := range grp.Replicas {
			if a := p.meta.resolve(string(id)); a != "" && id != p.self {
				addrs = append(addrs, a)
			}
		}
	}
	for _, addr := range addrs {
		ctx, cancel := p.life.ctx(5 * time.Second)
		rs, err := p.rpc.replicaStatus(ctx, addr, r.id)
		cancel()
		if err != nil || rs.State != "Leader" {
			continue
		}
		if slices.ContainsFunc(rs.Members, func(m raftgroup.Member) bool { return m.ID == p.opts.NodeID }) {
			return // still a member: the leader removes it first
		}
		p.drop(r)
		return
	}
}

// drop closes r and deletes its state and log.
func (p *placement) drop(r *replica) {
	p.mu.Lock()
	if p.mu.replicas[r.id] != r {
		p.mu.Unlock()
		return
	}
	delete(p.mu.replicas, r.id)
	p.mu.Unlock()
	err := errors.Join(r.rg.Close(), p.opts.Storage.Drop(r.id), os.RemoveAll(r.dir))
	if err != nil {
		p.opts.Logger.Error("drop replica", "group", r.id, "err", err)
		return
	}
	p.opts.Logger.Info("replica dropped: moved to other nodes", "group", r.id)
}

// catchUpSlack: a non-voter whose applied index is within this many
// entries of the leader's counts as caught up and is promoted.
const catchUpSlack = 64

// transferEvery bounds how often a group leader hands leadership to the
// preferred leader, so a flapping replica does not bounce it.
const transferEvery = 10 * time.Second

// reconcile moves group g's Raft configuration one change towards the
// metadata's placement; r leads g. Order: add missing replicas as
// non-voters, promote the ones that caught up, and only once every placed
// replica is a voter remove the others (add-then-remove), then hand
// leadership to the preferred leader.
func (p *placement) reconcile(r *replica, v *View, grp *ring.Group) {
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
	ctx, cancel := p.life.ctx(30 * time.Second)
	defer cancel()
	log := p.opts.Logger.With("group", grp.ID)
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
			if !p.caughtUp(ctx, r, p.meta.resolve(string(id))) {
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
		if m.ID == p.opts.NodeID {
			p.transfer(ctx, r, v, grp, true)
			return
		}
		if err := r.rg.RemoveServer(ctx, m.ID); err != nil {
			log.Warn("remove replica", "node", m.ID, "err", err)
			return
		}
		log.Info("removed replica", "node", m.ID)
		return
	}
	if grp.Leader != p.self {
		p.transfer(ctx, r, v, grp, false)
	}
}

// transfer hands r's leadership to the group's preferred leader (or, when
// this replica must leave, any placed voter) once it has caught up.
func (p *placement) transfer(ctx context.Context, r *replica, v *View, grp *ring.Group, leaving bool) {
	now := p.opts.Now()
	if !leaving && now.Sub(r.lastTransfer) < transferEvery {
		return
	}
	candidates := []ring.NodeID{grp.Leader}
	if leaving {
		candidates = append(candidates, grp.Replicas...)
	}
	for _, id := range candidates {
		nd := v.State.Node(id)
		if id == p.self || nd == nil || nd.State != ring.NodeActive || !p.caughtUp(ctx, r, p.meta.resolve(string(id))) {
			continue
		}
		r.lastTransfer = now
		if err := r.rg.TransferLeadership(string(id), nd.Addr); err != nil {
			p.opts.Logger.Warn("transfer leadership", "group", grp.ID, "to", id, "err", err)
			return
		}
		p.opts.Logger.Info("transferred leadership", "group", grp.ID, "to", id)
		return
	}
}

// caughtUp asks the node at addr how far its replica of r's group has
// applied, and compares with this leader's.
func (p *placement) caughtUp(ctx context.Context, r *replica, addr string) bool {
	rs, err := p.rpc.replicaStatus(ctx, addr, r.id)
	if err != nil {
		return false
	}
	return rs.Stats.AppliedIndex+catchUpSlack >= r.rg.Stats().AppliedIndex
}

// closeAll checkpoints and closes every replica, in parallel; no replica
// opens afterwards.
func (p *placement) closeAll() error {
	p.mu.Lock()
	p.mu.closed = true
	rs := p.mu.replicas
	p.mu.replicas = map[ring.GroupID]*replica{}
	p.mu.Unlock()
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			err := errors.Join(r.rg.Checkpoint(), r.rg.Close(), p.opts.Storage.Close(r.id))
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
