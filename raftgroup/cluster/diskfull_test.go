package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// TestProposeDiskFull: a group whose leader's disk is full refuses
// writes at once, through any node, with raftgroup.ErrDiskFull (not after
// the route's 5 s of retries, as for an unreachable leader); the node is
// not ready and says why; writes resume once the disk has room.
func TestProposeDiskFull(t *testing.T) {
	c := newTestCluster(t)
	defer c.close()
	free := map[string]*atomic.Uint64{}
	c.disks = map[string]*raftgroup.DiskGuard{}
	for _, id := range []string{"a", "b"} {
		free[id] = &atomic.Uint64{}
		free[id].Store(1 << 30)
		g, err := raftgroup.NewDiskGuard(raftgroup.DiskGuardOptions{
			Dirs:         []string{t.TempDir()},
			MinFreeBytes: 64 << 20,
			Interval:     time.Hour, // the test refreshes
			FreeBytes:    func(string) (uint64, error) { return free[id].Load(), nil },
		})
		require.NoError(t, err)
		defer g.Close()
		c.disks[id] = g
	}
	a := c.start("a", "", "")
	c.waitConverged(a, 1, 20*time.Second)
	b := c.start("b", "", a.addr)
	st := c.waitConverged(a, 2, 60*time.Second)
	nodes := map[string]*testNode{"a": a, "b": b}
	propose := func(via *testNode, g uint32) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := via.node.Router().Propose(ctx, ring.GroupID(g), binary.BigEndian.AppendUint64(nil, 7))
		return time.Since(start), err
	}
	grp := st.Groups[0]
	leader, other := nodes[grp.Leader], a
	if leader == a {
		other = b
	}
	free[leader.id].Store(10 << 20)
	require.NoError(t, c.disks[leader.id].Refresh())
	for _, via := range []*testNode{leader, other} {
		took, err := propose(via, grp.ID)
		require.ErrorIs(t, err, raftgroup.ErrDiskFull, "propose to group %d through %s", grp.ID, via.id)
		require.Contains(t, err.Error(), "10.0 MiB free")
		require.Less(t, took, 2*time.Second, "refused at once through %s", via.id)
	}
	require.ErrorIs(t, leader.node.Ready(), raftgroup.ErrDiskFull)

	free[leader.id].Store(1 << 30)
	require.NoError(t, c.disks[leader.id].Refresh())
	for _, via := range []*testNode{leader, other} {
		_, err := propose(via, grp.ID)
		require.NoError(t, err, "after space is back, through %s", via.id)
	}
	require.Eventually(t, func() bool { return !errors.Is(leader.node.Ready(), raftgroup.ErrDiskFull) }, 10*time.Second, 10*time.Millisecond)
}
