package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// memApplier is a data group's state machine for the tests: the list of
// applied entries, each an 8-byte number.
type memApplier struct {
	mu      sync.Mutex
	entries []uint64
	index   uint64
}

func (a *memApplier) Apply(index uint64, b []byte) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.index = index
	if len(b) != 8 {
		return []byte("refused: not 8 bytes"), nil
	}
	a.entries = append(a.entries, binary.BigEndian.Uint64(b))
	return nil, nil
}
func (a *memApplier) CheckpointIndex() uint64 { return 0 }
func (a *memApplier) Checkpoint() (uint64, error) {
	// Durable for as long as the process lives, which is what the tests
	// restart.
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.index, nil
}
func (a *memApplier) Snapshot(w io.Writer) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := binary.BigEndian.AppendUint64(nil, uint64(len(a.entries)))
	for _, e := range a.entries {
		b = binary.BigEndian.AppendUint64(b, e)
	}
	_, err := w.Write(b)
	return a.index, err
}
func (a *memApplier) Restore(r io.Reader) (uint64, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := binary.BigEndian.Uint64(b)
	a.entries = a.entries[:0]
	for i := range n {
		a.entries = append(a.entries, binary.BigEndian.Uint64(b[8+8*i:]))
	}
	return a.index, nil
}

func (a *memApplier) values() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.entries)
}

type memStorage struct {
	mu     sync.Mutex
	groups map[ring.GroupID]*memApplier
}

func (s *memStorage) Open(g ring.GroupID) (raftgroup.Applier, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &memApplier{}
	s.groups[g] = a
	return a, nil
}
func (s *memStorage) Close(g ring.GroupID) error { return nil }
func (s *memStorage) Drop(g ring.GroupID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, g)
	return nil
}
func (s *memStorage) get(g ring.GroupID) *memApplier {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[g]
}

// testNode is one in-process cluster member with its own Mux.
type testNode struct {
	id      string
	addr    string
	dir     string
	storage *memStorage
	mux     *raftgroup.Mux
	node    *Node
	srv     *serveHTTP
}

type serveHTTP struct{ wg sync.WaitGroup }

type testCluster struct {
	t     testing.TB
	dir   string
	ring  ring.Options
	nodes []*testNode
	disks map[string]*raftgroup.DiskGuard // by node ID, for the nodes started after it is set
}

func newTestCluster(t testing.TB) *testCluster {
	return &testCluster{t: t, dir: t.TempDir()}
}

// start starts node id (new or restarted), joining through join.
func (c *testCluster) start(id, addr, join string) *testNode {
	t := c.t
	t.Helper()
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr = ln.Addr().String()
		ln.Close()
	}
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	tn := &testNode{id: id, addr: addr, dir: filepath.Join(c.dir, id), storage: &memStorage{groups: map[ring.GroupID]*memApplier{}}}
	var np *Node
	var npMu sync.Mutex
	tn.mux, err = raftgroup.NewMux(raftgroup.MuxOptions{Listener: ln, Advertise: addr, Resolve: func(id string) string {
		npMu.Lock()
		defer npMu.Unlock()
		if np == nil {
			return ""
		}
		return np.Resolve(id)
	}})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4})).With("node", id)
	n, err := Start(Options{
		NodeID: id, Advertise: addr, Dir: tn.dir, Mux: tn.mux, Storage: tn.storage, Join: join,
		Heartbeat: 100 * time.Millisecond, DeadAfter: 2 * time.Second, Ring: c.ring,
		Raft:   raftgroup.Options{HeartbeatTimeout: 200 * time.Millisecond, Disk: c.disks[id]},
		Logger: logger,
	})
	require.NoError(t, err)
	npMu.Lock()
	np = n
	npMu.Unlock()
	tn.node = n
	srv := &serveHTTP{}
	hl := tn.mux.HTTPListener()
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		hs := &httpServer{h: n.Handler()}
		hs.serve(hl)
	}()
	tn.srv = srv
	c.nodes = append(c.nodes, tn)
	return tn
}

// stop closes n (gracefully, or as a crash: the mux first).
func (c *testCluster) stop(n *testNode) {
	require.NoError(c.t, errors.Join(n.mux.Close(), n.node.Close()))
	n.srv.wg.Wait()
	c.nodes = slices.DeleteFunc(c.nodes, func(x *testNode) bool { return x == n })
}

func (c *testCluster) close() {
	for _, n := range slices.Clone(c.nodes) {
		c.stop(n)
	}
}

// waitConverged waits until the status says the cluster converged with
// the given active nodes, and returns it.
func (c *testCluster) waitConverged(via *testNode, active int, timeout time.Duration) *Status {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *Status
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := via.node.Status(ctx)
		cancel()
		if err == nil {
			last = st
			n := 0
			for _, nd := range st.Nodes {
				if nd.State == "active" {
					n++
				}
			}
			if st.Converged && n == active && len(st.Nodes) == active {
				return st
			}
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("not converged after %v: last status %+v, err %v", timeout, last, lastErr)
	return nil
}

func TestJoinDrainDead(t *testing.T) {
	c := newTestCluster(t)
	defer c.close()
	first := c.start("a", "", "")
	st := c.waitConverged(first, 1, 20*time.Second)
	require.Len(t, st.Groups, 1)
	c.start("b", "", first.addr)
	c.start("c", "", first.addr)
	st = c.waitConverged(first, 3, 60*time.Second)
	require.Len(t, st.Groups, 3)
	for _, g := range st.Groups {
		require.Len(t, g.Replicas, 3, "group %d", g.ID)
	}
	for _, nd := range st.Nodes {
		require.Equal(t, 3, nd.Replicas, nd.ID)
		require.Equal(t, 1, nd.Leaders, nd.ID)
		require.True(t, nd.MetadataVoter, nd.ID)
	}
	// Writes through any node reach every replica.
	for i, n := range c.nodes {
		for _, g := range st.Groups {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			outcome, err := n.node.Router().Propose(ctx, ring.GroupID(g.ID), binary.BigEndian.AppendUint64(nil, uint64(i*100)+uint64(g.ID)))
			cancel()
			require.NoError(t, err)
			require.Nil(t, outcome)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	outcome, err := c.nodes[1].node.Router().Propose(ctx, ring.GroupID(st.Groups[0].ID), []byte("bad"))
	cancel()
	require.NoError(t, err)
	require.Equal(t, "refused: not 8 bytes", string(outcome))

	// A fourth node joins: groups are created and replicas move to it.
	d := c.start("d", "", c.nodes[1].addr)
	st = c.waitConverged(first, 4, 60*time.Second)
	require.Len(t, st.Groups, 4)
	for _, nd := range st.Nodes {
		require.Equal(t, 3, nd.Replicas, nd.ID)
		require.Equal(t, 1, nd.Leaders, nd.ID)
	}
	checkReplicasEqual(t, c, st)

	// Drain b: its replicas move, then it leaves.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	require.NoError(t, d.node.Drain(ctx, "b"))
	cancel()
	st = c.waitConverged(first, 3, 60*time.Second)
	for _, nd := range st.Nodes {
		require.NotEqual(t, "b", nd.ID)
	}
	c.stop(c.nodes[1])
	checkReplicasEqual(t, c, st)

	// Kill c: after DeadAfter its replicas are replaced... with 2 active
	// nodes left, groups keep 2 replicas.
	var victim *testNode
	for _, n := range c.nodes {
		if n.id == "c" {
			victim = n
		}
	}
	c.stop(victim)
	st = c.waitConverged(first, 2, 60*time.Second)
	for _, g := range st.Groups {
		require.Len(t, g.Replicas, 2, "group %d", g.ID)
	}
	checkReplicasEqual(t, c, st)
}

// checkReplicasEqual: every replica of every group holds the same entries.
func checkReplicasEqual(t *testing.T, c *testCluster, st *Status) {
	t.Helper()
	for _, g := range st.Groups {
		var want []uint64
		var wantFrom string
		require.Eventually(t, func() bool {
			want, wantFrom = nil, ""
			for _, n := range c.nodes {
				a := n.storage.get(ring.GroupID(g.ID))
				if a == nil {
					continue
				}
				vals := a.values()
				if wantFrom == "" {
					want, wantFrom = vals, n.id
					continue
				}
				if !slices.Equal(vals, want) {
					return false
				}
			}
			return true
		}, 10*time.Second, 50*time.Millisecond, fmt.Sprintf("group %d replicas differ (first %s: %v)", g.ID, wantFrom, want))
	}
}

// TestGroupsPerNode: with two groups per node, three nodes run six groups
// of three replicas, and each node leads two.
func TestGroupsPerNode(t *testing.T) {
	c := newTestCluster(t)
	c.ring = ring.Options{GroupsPerNode: 2}
	defer c.close()
	first := c.start("a", "", "")
	c.start("b", "", first.addr)
	c.start("c", "", first.addr)
	st := c.waitConverged(first, 3, 60*time.Second)
	require.Len(t, st.Groups, 6)
	for _, nd := range st.Nodes {
		require.Equal(t, 6, nd.Replicas, nd.ID)
		require.Equal(t, 2, nd.Leaders, nd.ID)
	}
	for _, g := range st.Groups {
		require.InDelta(t, 1.0/6, g.Ownership, 1e-9, "group %d", g.ID)
	}
}

// TestMetadataLeaderDies: the metadata leader's node dies; the other
// metadata voters elect a new leader, which declares the node dead after
// DeadAfter and replaces its replicas and its metadata vote.
func TestMetadataLeaderDies(t *testing.T) {
	c := newTestCluster(t)
	defer c.close()
	first := c.start("a", "", "")
	for _, id := range []string{"b", "c", "d"} {
		c.start(id, "", first.addr)
	}
	st := c.waitConverged(first, 4, 60*time.Second)
	var leader *testNode
	for _, n := range c.nodes {
		if n.id == st.MetadataLeader {
			leader = n
		}
	}
	require.NotNil(t, leader)
	c.stop(leader)
	via := c.nodes[0]
	st = c.waitConverged(via, 3, 60*time.Second)
	require.NotEqual(t, leader.id, st.MetadataLeader)
	voters := 0
	for _, nd := range st.Nodes {
		require.NotEqual(t, leader.id, nd.ID)
		if nd.MetadataVoter {
			voters++
		}
	}
	require.Equal(t, 3, voters)
	for _, g := range st.Groups {
		require.Len(t, g.Replicas, 3, "group %d", g.ID)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := via.node.Router().Propose(ctx, ring.GroupID(g.ID), binary.BigEndian.AppendUint64(nil, uint64(g.ID)))
		require.NoError(t, err)
		cancel()
	}
	checkReplicasEqual(t, c, st)
}

// TestNodeMoves: a node restarts at another address with its data; the
// metadata takes the new address and its groups go on with it.
func TestNodeMoves(t *testing.T) {
	c := newTestCluster(t)
	defer c.close()
	first := c.start("a", "", "")
	c.start("b", "", first.addr)
	c.start("c", "", first.addr)
	c.waitConverged(first, 3, 60*time.Second)
	var moved *testNode
	for _, n := range c.nodes {
		if n.id == "c" {
			moved = n
		}
	}
	c.stop(moved)
	// Same ID and directory, new port. The in-memory appliers start
	// empty; the groups' leaders send them the state again.
	n := c.start("c", "", first.addr)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := first.node.Status(ctx)
		return err == nil && slices.ContainsFunc(st.Nodes, func(nd NodeStatus) bool { return nd.ID == "c" && nd.Address == n.addr })
	}, 20*time.Second, 50*time.Millisecond, "the metadata never took c's new address")
	st := c.waitConverged(first, 3, 60*time.Second)
	for _, g := range st.Groups {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := n.node.Router().Propose(ctx, ring.GroupID(g.ID), binary.BigEndian.AppendUint64(nil, uint64(g.ID)))
		require.NoError(t, err)
		cancel()
	}
}
