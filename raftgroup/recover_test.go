package raftgroup

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestRecoverNewID: Recover moves a replica's log and data under another
// server ID. The entries logged but not checkpointed are applied before
// the log is dropped, the group restarts as a single voter of the new ID,
// and new entries follow the old ones. Recovering twice is harmless.
func TestRecoverNewID(t *testing.T) {
	for _, store := range []LogStore{LogStoreWAL, LogStorePebble} {
		t.Run(string(store), func(t *testing.T) {
			dir := t.TempDir()
			apath := filepath.Join(dir, "applier.json")
			opts := testOptions(filepath.Join(dir, "raft"), openChain(t, apath), store)
			g := openLeader(t, opts)
			propose(t, g, "a")
			if err := g.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			last := propose(t, g, "b") // logged, not checkpointed
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}

			for range 2 {
				a := openChain(t, apath)
				ropts := opts
				ropts.Applier = a
				if err := Recover(ropts, []Voter{{ID: "node-x", Address: "node-x"}}); err != nil {
					t.Fatal(err)
				}
				if got := a.state().Index; got != last {
					t.Fatalf("applier at %d after Recover, want %d", got, last)
				}
			}

			a := openChain(t, apath)
			nopts := opts
			nopts.ID, nopts.Applier = "node-x", a
			g = openLeader(t, nopts)
			defer g.Close()
			if idx := propose(t, g, "c"); idx <= last {
				t.Fatalf("new entry at %d, want after %d", idx, last)
			}
			members, err := g.Members()
			if err != nil {
				t.Fatal(err)
			}
			if len(members) != 1 || members[0].ID != "node-x" || !members[0].Voter {
				t.Fatalf("members %+v, want node-x alone", members)
			}
			var got []string
			for _, e := range a.state().Entries {
				got = append(got, e.Batch)
			}
			if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
				t.Fatalf("applied %q, want %q", got, want)
			}
		})
	}
}
