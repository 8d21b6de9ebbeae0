package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
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

// A closed node's calls fail with raftgroup.ErrClosed, and a read asked
// of a replica that does not lead with raftgroup.ErrNotLeader: one
// sentinel per error, in the layer that detects it.

// singleVoterHeartbeat is the heartbeat (and election) timeout of the
// groups of a node that listens nowhere (a cluster of one for good): each
// group has this node as its only voter and waits one timeout before it
// elects itself; nobody else can be slow. (Raft's leader lease, half the
// timeout, cannot change at run time, so a node that may get peers keeps
// Options.Raft's timeouts from the start.)
const singleVoterHeartbeat = 100 * time.Millisecond

// Node is one member of a cluster: the roles below, each a type of its
// own, share its lifecycle (see the package doc). Its methods are safe
// for concurrent use.
type Node struct {
	opts   Options // immutable after Start
	life   *lifecycle
	rpc    *rpcClient
	meta   *metadata   // the metadata replica: view, proposals, calls to its leader
	reps   *placement  // this node's data replicas, kept where the metadata says
	rep    *reporter   // heartbeats to the metadata leader
	leader *metaLeader // duties of the metadata leader, when this node is it
	router *Router     // proposals and reads to group leaders

	closeOnce sync.Once
	closeErr  error
}

// lifecycle is what every role's goroutines share: a context that ends at
// Close, the channel Close closes, and the wait group Close waits on.
type lifecycle struct {
	base   context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup
}

func newLifecycle() *lifecycle {
	l := &lifecycle{done: make(chan struct{})}
	l.base, l.cancel = context.WithCancel(context.Background())
	return l
}

// goroutine runs f in a goroutine that Close waits for.
func (l *lifecycle) goroutine(f func()) {
	l.wg.Go(f)
}

// sleep waits d or until Close; false if closed.
func (l *lifecycle) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// sleepCtx waits d unless ctx ends or the node closes first.
func (l *lifecycle) sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-l.done:
	}
	return false
}

// ctx returns a context that ends at Close or after d.
func (l *lifecycle) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(l.base, d)
}

// stop ends the base context and waits for every goroutine.
func (l *lifecycle) stop() {
	close(l.done)
	l.cancel()
	l.wg.Wait()
}

// Start opens the node: its metadata replica (bootstrapping a new
// cluster, joining one, or recovering), then starts its loops. It does
// not wait for the cluster: data groups open as the metadata assigns
// them (Ready says when every group has a leader), and the handler
// (Handler) must be served for others to reach it.
func Start(opts Options) (*Node, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	n := &Node{opts: opts, life: newLifecycle(), rpc: newRPCClient(opts.Mux)}
	metaDir := filepath.Join(opts.Dir, "meta")
	if err := migrateSingleNode(opts, metaDir); err != nil {
		return nil, fmt.Errorf("start node %s: %w", opts.NodeID, err)
	}
	if err := os.MkdirAll(metaDir, 0o755); err != nil {
		return nil, fmt.Errorf("start node %s: %w", opts.NodeID, err)
	}
	var err error
	n.reps = newPlacement(opts, n.life, n.rpc)
	n.meta, err = openMetadata(opts, metaDir, n.rpc, n.reps.poke)
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", opts.NodeID, err)
	}
	n.reps.meta = n.meta
	n.leader = newMetaLeader(opts, n.life, n.meta)
	n.rep = newReporter(opts, n.life, n.meta, n.reps, n.leader)
	n.router = &Router{self: ring.NodeID(opts.NodeID), advertise: opts.Advertise, meta: n.meta,
		reps: n.reps, hints: n.rep, rpc: n.rpc, life: n.life}
	n.life.goroutine(n.rep.loop)
	n.life.goroutine(n.reps.loop)
	n.life.goroutine(n.leader.loop)
	return n, nil
}

// raftOptions is the template of every group's raftgroup.Options.
func raftOptions(opts Options, dir, name string, a raftgroup.Applier) raftgroup.Options {
	ro := opts.Raft
	ro.Dir, ro.ID, ro.Name, ro.Applier, ro.Registerer = dir, opts.NodeID, name, a, opts.Registerer
	ro.Voters, ro.Join, ro.Transport = nil, false, nil
	if ro.Logger == nil {
		ro.Logger = opts.Logger
	}
	ro.Logger = ro.Logger.With("group", name)
	if ro.Stopping == nil {
		ro.Stopping = opts.Mux.Stopping
	}
	if !opts.Mux.Listening() {
		// No follower will ever read entries back: the log cache would
		// only hold the last 512 batches (~20 MB at 2,000 samples per
		// request, measured: heap profile after make bench's load).
		ro.LogCacheEntries = -1
	}
	return ro
}

// View returns the latest metadata this node has applied.
func (n *Node) View() *View { return n.meta.View() }

// Resolve returns the Mux address of node id: from the metadata, the
// peers or the metadata group's configuration. "" if unknown. The Mux's
// MuxOptions.Resolve calls it.
func (n *Node) Resolve(id string) string { return n.meta.resolve(id) }

// Replica returns this node's open replica of group g, or nil.
func (n *Node) Replica(g ring.GroupID) *raftgroup.Group { return n.reps.replica(g) }

// Router routes proposals and reads to group leaders.
func (n *Node) Router() *Router { return n.router }

// MetadataAge is how long ago this node last heard from the metadata
// leader with its own metadata caught up to the leader's (zero on the
// leader itself): a bound on how stale its ring may be.
func (n *Node) MetadataAge() time.Duration { return n.rep.metadataAge() }

// Drain asks the metadata leader to drain node id: its replicas move to
// other nodes (add, catch up, then remove), then it leaves the cluster.
func (n *Node) Drain(ctx context.Context, id string) error {
	if n.meta.isLeader() {
		return n.leader.drain(ctx, ring.NodeID(id))
	}
	return n.meta.callLeader(ctx, "POST", "drain", map[string][]string{"node": {id}}, nil, nil)
}

// Ready returns nil once the node can serve: it is an active member,
// every group has a leader it knows of, this node's replicas have
// replayed their logs (a replica leads before it has applied them, and
// writes wait behind the replay), and they can write (not while the disk
// is full: the error wraps raftgroup.ErrDiskFull and says why).
func (n *Node) Ready() error {
	v := n.meta.View()
	nd := v.State.Node(ring.NodeID(n.opts.NodeID))
	if nd == nil || nd.State != ring.NodeActive {
		return errors.New("this node is not an active cluster member yet")
	}
	if len(v.State.Groups) == 0 {
		return errors.New("the cluster has no groups yet")
	}
	for _, g := range v.State.Groups {
		if id, _, _ := n.router.Leader(g.ID); id == "" {
			return fmt.Errorf("group %d has no known leader", g.ID)
		}
		if !slices.Contains(g.Replicas, ring.NodeID(n.opts.NodeID)) {
			continue
		}
		rg := n.reps.replica(g.ID)
		if rg == nil {
			return fmt.Errorf("this node's replica of group %d is not open yet", g.ID)
		}
		if err := rg.Writable(); err != nil {
			return fmt.Errorf("this node's replica of group %d cannot write: %w", g.ID, err)
		}
		if err := rg.CaughtUp(); err != nil {
			return fmt.Errorf("this node's replica of group %d is %w", g.ID, err)
		}
	}
	return nil
}

// Stop marks the node as shutting down, before Close: raft's errors about
// peers that stop at the same time are then expected (logged at INFO).
func (n *Node) Stop() { n.opts.Mux.Stop() }

// Close stops the loops, checkpoints and closes every replica (data
// groups first, then the metadata group). Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.opts.Mux.Stop()
		n.life.stop()
		err := n.reps.closeAll()
		n.closeErr = errors.Join(err, n.meta.close())
		n.rpc.close()
	})
	return n.closeErr
}

// ID is this node's ID.
func (n *Node) ID() string { return n.opts.NodeID }

// singleNodeGroup is the directory, under Options.Dir, of the one Raft
// group of Myelin's former single-node mode (before a single node was a
// cluster of one).
const singleNodeGroup = "1"

// migrateSingleNode turns a data directory of the former single-node mode
// (Dir/1: one group, Raft server ID "node-1-group-1", no metadata) into
// this node's replica of group 1 of a new cluster of one: raftgroup's
// Recover replays its log into the engine, checkpoints, and records this
// node as the group's only voter, then the directory moves to
// Dir/groups/1. The metadata, created next, places group 1 on this node
// (the first group of a new cluster is group 1), and the replica opens
// from the moved directory instead of bootstrapping. Crash-safe: Recover
// is idempotent, the move is one rename, and until it happens Dir/meta
// does not exist. A directory with such data cannot join or found a
// cluster of several nodes.
func migrateSingleNode(opts Options, metaDir string) error {
	old := filepath.Join(opts.Dir, singleNodeGroup)
	if _, err := os.Stat(metaDir); err == nil {
		return nil
	}
	if _, err := os.Stat(old); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if len(opts.Peers) > 0 || opts.Join != "" && opts.Join != opts.Advertise {
		return fmt.Errorf("%s holds a single node's data: it cannot join or found a cluster of several nodes (start it alone, or with an empty data directory)", old)
	}
	opts.Logger.Info("migrating the data of the former single-node mode into a cluster of one", "dir", old)
	a, err := opts.Storage.Open(1)
	if err != nil {
		return fmt.Errorf("migrate %s: open group 1: %w", old, err)
	}
	ro := raftOptions(opts, old, "1", a)
	ro.ID = "node-1-group-1" // the former single node's server ID
	err = raftgroup.Recover(ro, []raftgroup.Voter{{ID: opts.NodeID, Address: opts.Advertise}})
	if errors.Is(err, raftgroup.ErrNoState) {
		// The former node never wrote to its log: nothing to keep.
		opts.Logger.Info("the former single node's group holds no state; removed", "dir", old)
		return errors.Join(opts.Storage.Close(1), os.RemoveAll(old))
	}
	if err = errors.Join(err, opts.Storage.Close(1)); err != nil {
		return fmt.Errorf("migrate %s: %w", old, err)
	}
	groups := filepath.Join(opts.Dir, "groups")
	if err := os.MkdirAll(groups, 0o755); err != nil {
		return fmt.Errorf("migrate %s: %w", old, err)
	}
	if err := os.Rename(old, filepath.Join(groups, "1")); err != nil {
		return fmt.Errorf("migrate %s: %w", old, err)
	}
	opts.Logger.Info("migrated: the former single node's data is group 1 of this node")
	return nil
}
