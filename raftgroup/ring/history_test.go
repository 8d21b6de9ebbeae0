package ring

import (
	"slices"
	"testing"
)

// TestOwners: groups 1 (from t=1000), 2 (from 5000), 3 (from 9000).
func TestOwners(t *testing.T) {
	s := mustState(t, Options{ReplicationFactor: 1})
	for i, n := range []string{"a", "b", "c"} {
		run(t, s, Event{Kind: EventJoin, Node: NodeID(n), AtMillis: 1000 + int64(i)*4000})
	}
	if len(s.Epochs) != 3 {
		t.Fatalf("%d epochs, want 3", len(s.Epochs))
	}
	bounded := Window{FutureMillis: 100, LateMillis: 500, StaleMillis: 50}
	for _, tc := range []struct {
		name       string
		mint, maxt int64
		w          Window
		want       []GroupID
	}{
		{"before the first epoch, late unbounded", 0, 10, Window{}, []GroupID{1, 2, 3}},
		{"now, unbounded", 20000, 30000, Window{}, []GroupID{1, 2, 3}},
		{"before the first epoch, late bounded", 0, 10, bounded, nil},
		{"first epoch only", 1000, 4000, bounded, []GroupID{1}},
		{"the second epoch's late samples", 4500, 4600, bounded, []GroupID{1, 2}},
		{"first epoch's stale and future tail", 5100, 5140, bounded, []GroupID{1, 2}},
		{"past the first epoch's tail", 5150, 8000, bounded, []GroupID{1, 2}},
		{"third epoch", 9000, 9100, bounded, []GroupID{1, 2, 3}},
		{"only late samples of the third", 8600, 8900, bounded, []GroupID{1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Owners(tc.mint, tc.maxt, tc.w); !slices.Equal(got, tc.want) {
				t.Errorf("Owners(%d, %d) = %v, want %v", tc.mint, tc.maxt, got, tc.want)
			}
		})
	}
}

// TestOwnersOfHash: a series' samples written under every epoch are
// found by asking for the owners of its hash over their time range.
func TestOwnersOfHash(t *testing.T) {
	s := mustState(t, Options{ReplicationFactor: 1})
	w := Window{FutureMillis: 10, LateMillis: 10, StaleMillis: 10}
	type write struct {
		h     uint64
		t     int64
		group GroupID
	}
	var writes []write
	for i := range 6 {
		now := int64(i) * 1000
		run(t, s, Event{Kind: EventJoin, Node: NodeID(rune('a' + i)), AtMillis: now})
		for j := range 50 {
			h := Hash("t", []byte{byte('a' + j), 0xff, 'v', 0xff})
			writes = append(writes, write{h, now + 5, s.Ring().Lookup(h)})
		}
	}
	for _, wr := range writes {
		if got := s.OwnersOfHash(wr.h, wr.t, wr.t, w); !slices.Contains(got, wr.group) {
			t.Fatalf("sample at %d of hash %#x written to group %d, owners %v", wr.t, wr.h, wr.group, got)
		}
		if got := s.Owners(wr.t, wr.t, w); !slices.Contains(got, wr.group) {
			t.Fatalf("sample at %d written to group %d, owners %v", wr.t, wr.group, got)
		}
	}
}
