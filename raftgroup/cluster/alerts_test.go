package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/raftgroup/ring"
)

func TestAlertStateApply(t *testing.T) {
	rec := func(key string, updated, expires int64, p string) AlertRecord {
		return AlertRecord{Kind: 1, Key: key, UpdatedNanos: updated, ExpiresNanos: expires, Payload: []byte(p)}
	}
	var s0 *AlertState
	s1 := s0.Apply(SetAlertConfig("t", []byte("a")))
	s2 := s1.Apply(PutAlertRecord("t", rec("s", 10, 100, "v10")))
	s3 := s2.Apply(PutAlertRecord("t", rec("s", 20, 200, "v20")))
	cfg, ok := s1.Config("t")
	require.True(t, ok)
	require.Equal(t, "a", string(cfg))
	require.Empty(t, s1.Records("t"), "an applied change leaves the old value as it was")
	require.Equal(t, "v10", string(s2.Records("t")[0].Payload))
	require.Equal(t, "v20", string(s3.Records("t")[0].Payload), "a newer record replaces")

	for _, tc := range []struct {
		name    string
		updated int64
	}{{"older", 15}, {"same time", 20}} {
		t.Run(tc.name, func(t *testing.T) {
			s := s3.Apply(PutAlertRecord("t", rec("s", tc.updated, 300, "x")))
			require.Equal(t, "v20", string(s.Records("t")[0].Payload), "as the library's Merge: only a later update wins")
		})
	}

	s4 := s3.Apply(PutAlertRecord("t", rec("r", 5, 150, "r"))).Apply(GCAlertRecords("t", time.Unix(0, 150)))
	require.Len(t, s4.Records("t"), 1, "a record expiring at the collection time is dropped")
	require.Equal(t, "s", s4.Records("t")[0].Key)

	s5 := s4.Apply(DeleteAlertConfig("t"))
	require.Empty(t, s5.ConfigTenants())
	require.Len(t, s5.Records("t"), 1, "deleting the configuration keeps the silences")
	s6 := s5.Apply(GCAlertRecords("t", time.Unix(0, 1000)))
	require.Zero(t, s6.Len())
	require.Nil(t, s6.tenants["t"], "a tenant with nothing left is gone")
	require.Equal(t, []string{"t"}, s3.ConfigTenants())
}

// TestAlertmanagerOwner: every tenant's Alertmanager has one owner
// among the active nodes, the same on every view of the state; when a
// node dies only its tenants move.
func TestAlertmanagerOwner(t *testing.T) {
	nodes := []ring.NodeID{"a", "b", "c"}
	v := viewOf(t, nodes)
	dead := viewOf(t, nodes, "b")
	count := map[ring.NodeID]int{}
	for i := range 3000 {
		tn := fmt.Sprintf("tenant-%d", i)
		o := v.AlertmanagerOwner(tn)
		require.Contains(t, nodes, o)
		require.Equal(t, o, (&View{State: v.State}).AlertmanagerOwner(tn), "a view without its cached ring")
		count[o]++
		if o != "b" {
			require.Equal(t, o, dead.AlertmanagerOwner(tn), "tenant %s of a live node moved", tn)
		} else {
			require.NotEqual(t, ring.NodeID("b"), dead.AlertmanagerOwner(tn))
		}
	}
	for _, n := range nodes {
		require.Greater(t, count[n], 600, "node %s owns too few tenants: %v", n, count)
	}

	// A draining node owns nothing from the start of its drain; a node
	// that joins takes a share from the others.
	draining := viewOf(t, nodes)
	steps, err := ring.Plan(draining.State, ring.Event{Kind: ring.EventDrain, Node: "c", AtMillis: 100})
	require.NoError(t, err)
	require.NoError(t, draining.State.Apply(steps[0]))
	require.Equal(t, ring.NodeDraining, draining.State.Node("c").State)
	joined := viewOf(t, append(slices.Clone(nodes), "d"))
	took := 0
	for i := range 3000 {
		tn := fmt.Sprintf("tenant-%d", i)
		require.NotEqual(t, ring.NodeID("c"), (&View{State: draining.State}).AlertmanagerOwner(tn), "tenant %s on the draining node", tn)
		if o := joined.AlertmanagerOwner(tn); o == "d" {
			took++
		} else {
			require.Equal(t, v.AlertmanagerOwner(tn), o, "tenant %s moved between old nodes on a join", tn)
		}
	}
	require.Greater(t, took, 400, "the new node's share")
}

// TestChangeAlertsThroughFollower: an Alertmanager configuration
// committed through a node that does not lead the metadata is applied
// there when ChangeAlerts returns; a record is committed, and on every
// node moments later.
func TestChangeAlertsThroughFollower(t *testing.T) {
	c := newTestCluster(t)
	defer c.close()
	first := c.start("a", "", "")
	for _, id := range []string{"b", "c"} {
		c.start(id, "", first.addr)
	}
	st := c.waitConverged(first, 3, 60*time.Second)
	var follower *testNode
	for _, n := range c.nodes {
		if n.id != st.MetadataLeader {
			follower = n
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec := AlertRecord{Kind: 1, Key: "s", UpdatedNanos: 1, ExpiresNanos: time.Now().Add(time.Hour).UnixNano(), Payload: []byte("p")}
	require.NoError(t, follower.node.ChangeAlerts(ctx, SetAlertConfig("t", []byte("cfg"))))
	require.NoError(t, follower.node.ChangeAlerts(ctx, PutAlertRecord("t", rec)))
	cfg, ok := follower.node.View().Alerts.Config("t")
	require.True(t, ok)
	require.Equal(t, "cfg", string(cfg))
	for _, n := range c.nodes {
		require.Eventually(t, func() bool {
			rs := n.node.View().Alerts.Records("t")
			return len(rs) == 1 && string(rs[0].Payload) == "p"
		}, 5*time.Second, 10*time.Millisecond, "node %s", n.id)
	}
}

// BenchmarkPutAlertRecord: the cost of one silence or notification log
// change on a cluster, committed through the metadata leader from a node
// that leads it and from one that does not (one more HTTP hop), on
// three in-process nodes of this machine's disk; and of a change that
// waits for the follower's own apply.
func BenchmarkPutAlertRecord(b *testing.B) {
	c := newTestCluster(b)
	defer c.close()
	first := c.start("a", "", "")
	for _, id := range []string{"b", "c"} {
		c.start(id, "", first.addr)
	}
	c.waitConverged(first, 3, 60*time.Second)
	// The metadata voters settle after the convergence (a leadership
	// transfer may follow): one change through every node, retried,
	// before the clock runs.
	for _, n := range c.nodes {
		require.Eventually(b, func() bool {
			return n.node.ChangeAlerts(context.Background(), SetAlertConfig("warm-up", nil)) == nil
		}, 30*time.Second, 50*time.Millisecond, "node %s", n.id)
	}
	// "follower-applied": a configuration of the same size through the
	// follower, which waits for the follower's apply (the baseline of the
	// choice not to wait for a record's).
	for _, via := range []string{"leader", "follower", "follower-applied"} {
		b.Run(via, func(b *testing.B) {
			var n *testNode // chosen now: the leader may have moved
			for _, x := range c.nodes {
				if x.node.meta.isLeader() == (via == "leader") {
					n = x
				}
			}
			payload := make([]byte, 300)
			i := 0
			for b.Loop() {
				i++
				c := PutAlertRecord("t", AlertRecord{Kind: 2, Key: fmt.Sprintf("k%d", i%100), UpdatedNanos: int64(i), ExpiresNanos: 1 << 62, Payload: payload})
				if via == "follower-applied" {
					c = SetAlertConfig("t", payload)
				}
				// Retried while the metadata elects a leader, as the
				// Alertmanager's store does (this machine's load can
				// outlast the test cluster's 200 ms heartbeat timeout).
				err := n.node.ChangeAlerts(context.Background(), c)
				for try := 0; errors.Is(err, ErrUnavailable) && try < 100; try++ {
					time.Sleep(10 * time.Millisecond)
					err = n.node.ChangeAlerts(context.Background(), c)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSyncIndexes: a silence or notification record moves the metadata
// index but neither RulesIndex nor AlertConfigsIndex, so the rulers and
// the Alertmanagers of every node do not sync at each one; a rule
// change moves RulesIndex, a configuration AlertConfigsIndex, a ring
// step both; a restart sets both to the checkpoint's index.
func TestSyncIndexes(t *testing.T) {
	dir := t.TempDir()
	f, err := openMetaFSM(dir, ring.Options{}, func() {})
	require.NoError(t, err)
	index := uint64(0)
	apply := func(entry []byte) *View {
		t.Helper()
		index++
		_, err := f.Apply(index, entry)
		require.NoError(t, err)
		return f.View()
	}
	rec := AlertRecord{Kind: 1, Key: "s", UpdatedNanos: 1, ExpiresNanos: 2, Payload: []byte("p")}
	for _, tc := range []struct {
		name          string
		entry         []byte
		rules, alerts bool // moved
	}{
		{"ring step", ring.AppendStep(nil, ring.Step{Kind: ring.StepStartGroup, Group: 1}), true, true},
		{"rule change", AppendRuleChange(nil, SetRuleGroup("t", "ns", "g", []byte("name: g\n"))), true, false},
		{"configuration", AppendAlertChange(nil, SetAlertConfig("t", []byte("c"))), false, true},
		{"record", AppendAlertChange(nil, PutAlertRecord("t", rec)), false, false},
		{"collection", AppendAlertChange(nil, GCAlertRecords("t", time.Unix(0, 5))), false, false},
		{"cache generation", AppendCacheGenBump(nil, "t"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.View()
			v := apply(tc.entry)
			require.Equal(t, tc.rules, v.RulesIndex != before.RulesIndex, "RulesIndex moved")
			require.Equal(t, tc.alerts, v.AlertConfigsIndex != before.AlertConfigsIndex, "AlertConfigsIndex moved")
			if tc.rules {
				require.Equal(t, v.Index, v.RulesIndex)
			}
			if tc.alerts {
				require.Equal(t, v.Index, v.AlertConfigsIndex)
			}
		})
	}
	_, err = f.Checkpoint()
	require.NoError(t, err)
	g, err := openMetaFSM(dir, ring.Options{}, func() {})
	require.NoError(t, err)
	v := g.View()
	require.Equal(t, []uint64{index, index}, []uint64{v.RulesIndex, v.AlertConfigsIndex})
}
