package cluster

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/raftgroup/ring"
)

func TestRuleGroupsApply(t *testing.T) {
	var r0 *RuleGroups
	r1, err := r0.Apply(SetRuleGroup("t", "ns", "g", []byte("a")))
	require.NoError(t, err)
	r2, err := r1.Apply(SetRuleGroup("t", "ns", "g", []byte("b")))
	require.NoError(t, err)
	require.Equal(t, []byte("a"), r1.Tenant("t")["ns"]["g"], "an applied change leaves the old value as it was")
	require.Equal(t, []byte("b"), r2.Tenant("t")["ns"]["g"])

	_, err = r2.Apply(DeleteRuleGroup("t", "ns", "other"))
	require.ErrorIs(t, err, ErrRuleGroupNotFound)
	_, err = r2.Apply(DeleteRuleGroup("u", "ns", "g"))
	require.ErrorIs(t, err, ErrRuleGroupNotFound)
	_, err = r2.Apply(DeleteRuleNamespace("t", "other"))
	require.ErrorIs(t, err, ErrRuleNamespaceNotFound)

	r3, err := r2.Apply(SetRuleGroup("u", "", "g", nil))
	require.NoError(t, err)
	require.Equal(t, []string{"t", "u"}, r3.Tenants())
	r4, err := r3.Apply(DeleteRuleGroup("t", "ns", "g"))
	require.NoError(t, err)
	require.Equal(t, []string{"u"}, r4.Tenants(), "a tenant without groups is gone")
	r5, err := r4.Apply(DeleteRuleNamespace("u", ""))
	require.NoError(t, err)
	require.Zero(t, r5.Len())
	require.Equal(t, 2, r3.Len())
}

// viewOf returns the view of a cluster of the nodes, the dead ones
// declared dead.
func viewOf(t *testing.T, nodes []ring.NodeID, dead ...ring.NodeID) *View {
	t.Helper()
	s, err := ring.NewState(ring.Options{GroupsPerNode: 1})
	require.NoError(t, err)
	plan := func(ev ring.Event) {
		steps, err := ring.Plan(s, ev)
		require.NoError(t, err)
		for _, st := range steps {
			require.NoError(t, s.Apply(st))
		}
	}
	for i, n := range nodes {
		plan(ring.Event{Kind: ring.EventJoin, Node: n, Addr: fmt.Sprintf("10.0.0.%d:9095", i+1), AtMillis: int64(i + 1)})
	}
	for _, n := range dead {
		plan(ring.Event{Kind: ring.EventDead, Node: n, AtMillis: 100})
	}
	return &View{State: s, ruleRing: &ruleRing{}}
}

// TestRuleOwner: every group has one owner among the active nodes, the
// same on every view of the same state, spread over the nodes; when a
// node dies only its groups move.
func TestRuleOwner(t *testing.T) {
	nodes := []ring.NodeID{"a", "b", "c"}
	v := viewOf(t, nodes)
	again := viewOf(t, nodes)
	count := map[ring.NodeID]int{}
	const groups = 3000
	owner := map[string]ring.NodeID{}
	for i := range groups {
		name := fmt.Sprintf("g%d", i)
		o := v.RuleOwner("tenant", "ns", name)
		require.Contains(t, nodes, o)
		require.Equal(t, o, again.RuleOwner("tenant", "ns", name), "same state, same owner")
		require.Equal(t, o, (&View{State: v.State}).RuleOwner("tenant", "ns", name), "a view without its cached ring")
		owner[name] = o
		count[o]++
	}
	for _, n := range nodes {
		require.Greater(t, count[n], groups/6, "node %s owns %d of %d groups", n, count[n], groups)
	}
	// Names are not confused across the parts of the key.
	require.NotEqual(t, RuleGroupHash("a", "bc", "d"), RuleGroupHash("ab", "c", "d"))

	dead := viewOf(t, nodes, "b")
	for name, o := range owner {
		n := dead.RuleOwner("tenant", "ns", name)
		require.NotEqual(t, ring.NodeID("b"), n)
		if o != "b" {
			require.Equal(t, o, n, "group %s of a live node moved", name)
		}
	}
	require.Equal(t, ring.NodeID(""), (&View{State: mustEmpty(t)}).RuleOwner("t", "n", "g"))
}

func mustEmpty(t *testing.T) *ring.State {
	s, err := ring.NewState(ring.Options{})
	require.NoError(t, err)
	return s
}
