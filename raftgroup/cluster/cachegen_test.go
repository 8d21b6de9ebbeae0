package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCacheGenerationsBump(t *testing.T) {
	var c0 *CacheGenerations
	require.Zero(t, c0.Get("t"))
	c1 := c0.Bump("t")
	c2 := c1.Bump("t").Bump("u")
	require.Equal(t, uint64(1), c1.Get("t"), "a bump leaves the old value as it was")
	require.Zero(t, c1.Get("u"))
	require.Equal(t, uint64(2), c2.Get("t"))
	require.Equal(t, []string{"t", "u"}, c2.Tenants())
}

// TestCacheGenerationReplicated: a bump through any node, leader or not,
// is applied on that node when the call returns and reaches every node;
// a restarted node and a node that joins later have it.
func TestCacheGenerationReplicated(t *testing.T) {
	c := newTestCluster(t)
	defer c.close()
	first := c.start("a", "", "")
	for _, id := range []string{"b", "c"} {
		c.start(id, "", first.addr)
	}
	c.waitConverged(first, 3, 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, n := range c.nodes {
		require.NoError(t, n.node.BumpCacheGeneration(ctx, "tenant-1"))
		require.Equal(t, uint64(i+1), n.node.View().CacheGeneration("tenant-1"), "node %s sees its own bump", n.id)
	}
	require.NoError(t, c.nodes[1].node.BumpCacheGeneration(ctx, "tenant-2"))
	want := map[string]uint64{"tenant-1": 3, "tenant-2": 1, "tenant-3": 0}
	waitGens := func(n *testNode) {
		t.Helper()
		require.Eventually(t, func() bool {
			v := n.node.View()
			for tn, g := range want {
				if v.CacheGeneration(tn) != g {
					return false
				}
			}
			return true
		}, 60*time.Second, 10*time.Millisecond, "node %s: %v", n.id, n.node.View().CacheGens.Tenants())
	}
	for _, n := range c.nodes {
		waitGens(n)
	}

	b := c.nodes[1]
	c.stop(b)
	b = c.start(b.id, b.addr, first.addr)
	waitGens(b)

	d := c.start("d", "", first.addr)
	waitGens(d) // from the metadata log or a snapshot of it
	require.ErrorContains(t, d.node.BumpCacheGeneration(ctx, ""), "empty tenant")
}
