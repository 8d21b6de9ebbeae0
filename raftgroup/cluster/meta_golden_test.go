package cluster

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/raftgroup/ring"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata/")

// goldenMetaFSM drives a metadata FSM through a fixed history, applying
// the planner's steps as the metadata group's leader proposes them: five
// nodes join (two groups per node, so ten groups and ten ring epochs);
// all groups but two (created by a and b) are started; d is drained and
// removed, e is declared dead and removed; f joins; then a is being
// drained and c was declared dead, both with their replicas not yet moved
// (only the first step of each plan is applied).
func goldenMetaFSM(t *testing.T) *metaFSM {
	f, err := openMetaFSM(t.TempDir(), ring.Options{GroupsPerNode: 2}, func() {})
	require.NoError(t, err)
	index := uint64(0)
	apply := func(entry []byte) {
		t.Helper()
		index++
		outcome, err := f.Apply(index, entry)
		require.NoError(t, err)
		require.Nil(t, outcome, "entry %d refused: %s", index, outcome)
	}
	now := int64(1_795_238_700_000)
	// plan applies the first limit steps of the plan for ev (all if
	// limit < 0).
	plan := func(ev ring.Event, limit int) {
		t.Helper()
		now += 60_000
		ev.AtMillis = now
		steps, err := ring.Plan(f.View().State, ev)
		require.NoError(t, err)
		require.NotEmpty(t, steps, "event %+v", ev)
		if limit >= 0 {
			steps = steps[:limit]
		}
		for _, st := range steps {
			apply(ring.AppendStep(nil, st))
		}
	}
	for _, n := range []ring.NodeID{"a", "b", "c", "d", "e"} {
		plan(ring.Event{Kind: ring.EventJoin, Node: n, Addr: "10.0.0." + string(n) + ":9095"}, -1)
	}
	for _, g := range f.View().State.Groups {
		if g.ID != 2 && g.ID != 4 {
			apply(ring.AppendStep(nil, ring.Step{Kind: ring.StepStartGroup, Group: g.ID}))
		}
	}
	plan(ring.Event{Kind: ring.EventDrain, Node: "d"}, -1)
	plan(ring.Event{Kind: ring.EventDead, Node: "e"}, -1)
	plan(ring.Event{Kind: ring.EventJoin, Node: "f", Addr: "[fd00::f]:9095"}, -1)
	plan(ring.Event{Kind: ring.EventDrain, Node: "a"}, 1)
	plan(ring.Event{Kind: ring.EventDead, Node: "c"}, 1)
	// Rule groups: two tenants, a replaced group, a deleted group and a
	// deleted namespace.
	for _, c := range []RuleChange{
		SetRuleGroup("t1", "ns/a", "g1", []byte("name: g1\nrules:\n- record: r\n  expr: up\n")),
		SetRuleGroup("t1", "ns/a", "g2", []byte("name: g2\nrules: []\n")),
		SetRuleGroup("t1", "ns/a", "g2", []byte("name: g2\ninterval: 30s\nrules:\n- alert: A\n  expr: up == 0\n")),
		SetRuleGroup("t1", "", "empty namespace", []byte("name: empty namespace\nrules: []\n")),
		SetRuleGroup("t2", "x", "g", []byte("name: g\nrules: []\n")),
		SetRuleGroup("t2", "x", "gone", []byte("name: gone\nrules: []\n")),
		DeleteRuleGroup("t2", "x", "gone"),
		SetRuleGroup("t3", "y", "g", []byte("name: g\nrules: []\n")),
		DeleteRuleNamespace("t3", "y"),
	} {
		apply(AppendRuleChange(nil, c))
	}
	for _, tenant := range []string{"t2", "t1", "t2", "deleted tenant"} {
		apply(AppendCacheGenBump(nil, tenant))
	}
	return f
}

// goldenMetaV3 is goldenMetaFSM's view without its cache generations: what
// testdata/meta-v3.golden holds.
func goldenMetaV3(t *testing.T) *View {
	v := *goldenMetaFSM(t).View()
	v.CacheGens = nil
	v.Index -= 4
	return &v
}

// describeView lists what a view holds, for the golden file's header.
func describeView(v *View) string {
	var b strings.Builder
	s := v.State
	fmt.Fprintf(&b, "# index %d, generation %d, replication factor %d, %d groups per node\n",
		v.Index, s.Generation, s.ReplicationFactor, s.GroupsPerNode)
	for _, n := range s.Nodes {
		fmt.Fprintf(&b, "# node %s %s %s\n", n.ID, n.Addr, n.State)
	}
	for _, g := range s.Groups {
		fmt.Fprintf(&b, "# group %d replicas %v leader %s", g.ID, g.Replicas, g.Leader)
		if g.Starter != "" {
			fmt.Fprintf(&b, ", to be bootstrapped by %s", g.Starter)
		}
		b.WriteString("\n")
	}
	for _, e := range s.Epochs {
		fmt.Fprintf(&b, "# epoch generation %d from %d: %d tokens\n", e.Generation, e.FromMillis, len(e.Ring.Tokens()))
	}
	for _, r := range s.Removed {
		how := "dead"
		if r.Drained {
			how = "drained"
		}
		fmt.Fprintf(&b, "# removed node %s, %s\n", r.ID, how)
	}
	for _, t := range v.Rules.Tenants() {
		nss := v.Rules.Tenant(t)
		for _, ns := range slices.Sorted(maps.Keys(nss)) {
			for _, name := range slices.Sorted(maps.Keys(nss[ns])) {
				fmt.Fprintf(&b, "# rule group tenant %q namespace %q name %q: %d bytes\n", t, ns, name, len(nss[ns][name]))
			}
		}
	}
	for _, t := range v.CacheGens.Tenants() {
		fmt.Fprintf(&b, "# cache generation tenant %q: %d\n", t, v.CacheGens.Get(t))
	}
	return b.String()
}

// TestMetaGolden freezes the metadata checkpoint and snapshot format
// ("mymt" version 4, metaFSM): the fixed view of goldenMetaFSM must encode
// byte for byte to testdata/meta.golden (hex.Dump below a description of
// the view), its checkpoint file and snapshot must be those bytes, and the
// stored bytes must decode to the same view and encode again identically.
// A format change updates metaFSM's doc, metaVersion and this file
// together (go test ./raftgroup/cluster -run TestMetaGolden -rewrite).
func TestMetaGolden(t *testing.T) {
	f := goldenMetaFSM(t)
	v := f.View()
	checkGoldenView(t, v)

	enc := AppendMetadata(nil, v)
	text := "# metaFSM checkpoint (\"mymt\" version 4) of goldenMetaFSM in meta_golden_test.go.\n" +
		"# Rewrite: go test ./raftgroup/cluster -run TestMetaGolden -rewrite\n" +
		describeView(v) + hex.Dump(enc)
	path := filepath.Join("testdata", "meta.golden")
	if *rewrite {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -rewrite to create it")
	if text != string(want) {
		t.Errorf("the view or its encoding changed (a format change: bump metaVersion, update metaFSM's doc, -rewrite):\n%s\nwant:\n%s", text, want)
	}

	// The stored bytes decode, even if the encoder or the view changed,
	// encode back to themselves, and hold the view.
	stored, err := parseHexDump(string(want))
	require.NoError(t, err)
	dec, err := DecodeMetadata(stored)
	require.NoError(t, err, "decode %s: stored checkpoints would not open", path)
	require.Equal(t, stored, AppendMetadata(nil, dec), "stored bytes re-encoded")
	requireSameView(t, v, dec)

	// A checkpoint and a snapshot are those bytes.
	_, err = f.Checkpoint()
	require.NoError(t, err)
	file, err := os.ReadFile(f.path)
	require.NoError(t, err)
	require.Equal(t, enc, file, "checkpoint file")
	var snap bytes.Buffer
	_, err = f.Snapshot(&snap)
	require.NoError(t, err)
	require.Equal(t, enc, snap.Bytes(), "snapshot")

	// Decoding is a function of the bytes: twice gives equal views, and an
	// FSM restored from the snapshot reports the same view.
	again, err := DecodeMetadata(enc)
	require.NoError(t, err)
	requireSameView(t, dec, again)
	g, err := openMetaFSM(t.TempDir(), ring.Options{}, func() {})
	require.NoError(t, err)
	_, err = g.Restore(bytes.NewReader(snap.Bytes()))
	require.NoError(t, err)
	requireSameView(t, v, g.View())
	require.Equal(t, enc, AppendMetadata(nil, g.View()))
}

// checkGoldenView checks that the fixed view holds what the golden test
// is meant to cover, so a change of the planner cannot quietly make it
// trivial.
func checkGoldenView(t *testing.T, v *View) {
	t.Helper()
	states := map[ring.NodeState]int{}
	for _, n := range v.State.Nodes {
		states[n.State]++
	}
	require.Positive(t, states[ring.NodeActive], "active nodes")
	require.Positive(t, states[ring.NodeDraining], "draining nodes")
	require.Positive(t, states[ring.NodeDead], "dead nodes")
	require.True(t, v.Removed("d") && v.Gone("d"), "d drained and removed")
	require.True(t, !v.Removed("e") && v.Gone("e"), "e dead and removed")
	pending := 0
	for _, g := range v.State.Groups {
		if g.Starter != "" {
			pending++
		}
	}
	require.Equal(t, 2, pending, "pending bootstraps")
	require.GreaterOrEqual(t, len(v.State.Epochs), 3, "ring epochs")
	multi := 0
	for _, g := range v.State.Groups {
		if len(g.Replicas) > 1 {
			multi++
		}
	}
	require.Positive(t, multi, "groups with several replicas")
	require.Equal(t, []string{"t1", "t2"}, v.Rules.Tenants(), "rule tenants")
	require.Equal(t, 4, v.Rules.Len(), "rule groups")
	require.Equal(t, []string{"deleted tenant", "t1", "t2"}, v.CacheGens.Tenants(), "cache generation tenants")
	require.Equal(t, uint64(2), v.CacheGeneration("t2"))
	require.Equal(t, uint64(0), v.CacheGeneration("t3"))
}

func requireSameView(t *testing.T, want, got *View) {
	t.Helper()
	require.Equal(t, want.Index, got.Index, "index")
	require.True(t, want.State.Equal(got.State), "ring state (with starters and removed nodes)")
	require.Equal(t, want.Rules.Len(), got.Rules.Len(), "rule groups")
	for _, tn := range want.Rules.Tenants() {
		require.Equal(t, want.Rules.Tenant(tn), got.Rules.Tenant(tn), "rule groups of %s", tn)
	}
	require.Equal(t, want.CacheGens.Tenants(), got.CacheGens.Tenants(), "cache generation tenants")
	for _, tn := range want.CacheGens.Tenants() {
		require.Equal(t, want.CacheGeneration(tn), got.CacheGeneration(tn), "cache generation of %s", tn)
	}
}

// TestMetaV3 reads a checkpoint of the version before cache generations:
// a node that has had no deletion still writes it.
func TestMetaV3(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "meta-v3.golden"))
	require.NoError(t, err)
	stored, err := parseHexDump(string(b))
	require.NoError(t, err)
	require.Equal(t, byte(3), stored[len(metaMagic)])
	v, err := DecodeMetadata(stored)
	require.NoError(t, err)
	requireSameView(t, goldenMetaV3(t), v)
	require.Zero(t, v.CacheGens.Len())
	require.Equal(t, stored, AppendMetadata(nil, v))
}

// TestMetaV2 decodes a checkpoint of version 2, written before the rule
// groups were in the metadata: the same ring state, no rule groups.
func TestMetaV2(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "meta-v2.golden"))
	require.NoError(t, err)
	stored, err := parseHexDump(string(b))
	require.NoError(t, err)
	require.Equal(t, byte(2), stored[len(metaMagic)])
	v, err := DecodeMetadata(stored)
	require.NoError(t, err)
	require.True(t, goldenMetaFSM(t).View().State.Equal(v.State), "ring state")
	require.Zero(t, v.Rules.Len())
	require.Empty(t, v.Rules.Tenants())
	// Without rule groups it is written in version 2, byte for byte, so
	// older nodes restore it during a rolling upgrade.
	enc := AppendMetadata(nil, v)
	require.Equal(t, stored, enc)
	again, err := DecodeMetadata(enc)
	require.NoError(t, err)
	requireSameView(t, v, again)
}

// parseHexDump reads the bytes of the hex.Dump lines of text, skipping
// every other line.
func parseHexDump(text string) ([]byte, error) {
	var out []byte
	for _, line := range strings.Split(text, "\n") {
		if len(line) < 10 || line[8:10] != "  " {
			continue
		}
		o, err := hex.DecodeString(line[:8])
		if err != nil {
			continue
		}
		off := int(o[0])<<24 | int(o[1])<<16 | int(o[2])<<8 | int(o[3])
		if off != len(out) {
			return nil, fmt.Errorf("dump line at %08x after %d bytes", off, len(out))
		}
		hexPart, _, _ := strings.Cut(line[10:], "|")
		b, err := hex.DecodeString(strings.Join(strings.Fields(hexPart), ""))
		if err != nil {
			return nil, fmt.Errorf("dump line at %08x: %w", off, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

// TestMetaV1 decodes a checkpoint of version 1, written before the
// pending bootstraps and removed nodes moved into ring.State: its side
// maps become the groups' Starter and the state's Removed.
func TestMetaV1(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "meta-v1.golden"))
	require.NoError(t, err)
	stored, err := parseHexDump(string(b))
	require.NoError(t, err)
	v, err := DecodeMetadata(stored)
	require.NoError(t, err)
	for _, g := range v.State.Groups {
		switch g.ID {
		case 2:
			require.Equal(t, ring.NodeID("a"), g.Starter, "group 2")
		case 4:
			require.Equal(t, ring.NodeID("b"), g.Starter, "group 4")
		default:
			require.Empty(t, g.Starter, "group %d", g.ID)
		}
	}
	require.Equal(t, []ring.Removed{{ID: "d", Drained: true}, {ID: "e"}}, v.State.Removed)
	require.True(t, v.Bootstraps(2, "a") && v.Removed("d") && v.Gone("e") && !v.Removed("e"))
	// It is written back in version 2 (no rule groups).
	enc := AppendMetadata(nil, v)
	require.Equal(t, byte(2), enc[len(metaMagic)])
	again, err := DecodeMetadata(enc)
	require.NoError(t, err)
	requireSameView(t, v, again)
}
