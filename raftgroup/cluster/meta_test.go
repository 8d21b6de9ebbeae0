package cluster

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/raftgroup/ring"
)

// TestMetaFSMCheckpointRestore applies steps, checkpoints, reopens and
// restores from a snapshot: the state, the groups awaiting bootstrap and
// the removed nodes survive each, and a drained node stays refused.
func TestMetaFSMCheckpointRestore(t *testing.T) {
	dir := t.TempDir()
	f, err := openMetaFSM(dir, ring.Options{}, func() {})
	require.NoError(t, err)
	steps := []ring.Step{
		{Kind: ring.StepAddNode, Node: "a", Addr: "h:1"},
		{Kind: ring.StepAddNode, Node: "b", Addr: "h:2"},
		{Kind: ring.StepCreateGroup, Node: "a", Group: 1, AtMillis: 1000},
		{Kind: ring.StepCreateGroup, Node: "b", Group: 2, AtMillis: 2000},
		{Kind: ring.StepSetNodeState, Node: "b", State: ring.NodeDraining},
		{Kind: ring.StepAddReplica, Node: "a", Group: 2},
		{Kind: ring.StepTransferLeader, Node: "a", Group: 2},
		{Kind: ring.StepRemoveReplica, Node: "b", Group: 2},
		{Kind: ring.StepRemoveNode, Node: "b"},
	}
	apply := func(index uint64, entry []byte) []byte {
		t.Helper()
		outcome, err := f.Apply(index, entry)
		require.NoError(t, err)
		return outcome
	}
	for i, st := range steps {
		require.Nil(t, apply(uint64(i+1), ring.AppendStep(nil, st)), "step %v", st)
	}
	require.Nil(t, apply(10, []byte{entryStarted, 1})) // a log of before StepStartGroup
	// A step that does not fit is the entry's outcome, not a failure.
	outcome := apply(11, ring.AppendStep(nil, ring.Step{Kind: ring.StepRemoveNode, Node: "zz"}))
	require.Contains(t, string(outcome), ring.ErrInvalidStep.Error())
	check := func(v *View) {
		t.Helper()
		require.Equal(t, uint64(11), v.Index)
		require.False(t, v.Bootstraps(1, "a"), "group 1 started")
		require.True(t, v.Bootstraps(2, "b"), "group 2 awaits its creator")
		require.True(t, v.Removed("b") && v.Gone("b"), "b was drained")
		require.Nil(t, v.State.Node("b"))
	}
	check(f.View())
	idx, err := f.Checkpoint()
	require.NoError(t, err)
	require.Equal(t, uint64(11), idx)

	g, err := openMetaFSM(dir, ring.Options{}, func() {})
	require.NoError(t, err)
	require.Equal(t, uint64(11), g.CheckpointIndex())
	check(g.View())
	require.True(t, g.View().State.Equal(f.View().State))

	var snap bytes.Buffer
	_, err = f.Snapshot(&snap)
	require.NoError(t, err)
	h, err := openMetaFSM(t.TempDir(), ring.Options{}, func() {})
	require.NoError(t, err)
	_, err = h.Restore(bytes.NewReader(snap.Bytes()))
	require.NoError(t, err)
	check(h.View())

	_, err = h.Restore(bytes.NewReader(snap.Bytes()[:snap.Len()-1]))
	require.ErrorIs(t, err, ErrCorruptMeta)
	check(h.View()) // a failed restore changes nothing
}
