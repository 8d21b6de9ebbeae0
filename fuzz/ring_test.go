package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/myelindb/myelin/raftgroup/ring"
)

// FuzzRingDecode feeds arbitrary bytes to ring.DecodeState and
// ring.DecodeStep, the decoders of the metadata group's snapshots and log
// entries. They must not panic and fail only with ring.ErrInvalidState;
// a state that decodes is valid and re-encodes stably; a step that
// decodes re-encodes to a step equal to it.
func FuzzRingDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("myrg\x01"))
	s := ringEvents(f, []byte{0, 0, 0, 1, 2, 0, 1, 1})
	f.Add(ring.AppendState(nil, s))
	f.Add(ring.AppendStep(nil, ring.Step{Kind: ring.StepCreateGroup, Group: 7, Node: "n1", AtMillis: 1_700_000_000_000}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if s, err := ring.DecodeState(data); err != nil {
			if !errors.Is(err, ring.ErrInvalidState) {
				t.Fatalf("DecodeState error %v does not match ErrInvalidState", err)
			}
		} else {
			if err := s.Validate(); err != nil {
				t.Fatalf("decoded an invalid state: %v", err)
			}
			again := ring.AppendState(nil, s)
			s2, err := ring.DecodeState(again)
			if err != nil {
				t.Fatalf("re-encoded state does not decode: %v", err)
			}
			if !s2.Equal(s) || !bytes.Equal(ring.AppendState(nil, s2), again) {
				t.Fatalf("state changed in a round trip")
			}
		}
		if st, err := ring.DecodeStep(data); err != nil {
			if !errors.Is(err, ring.ErrInvalidState) {
				t.Fatalf("DecodeStep error %v does not match ErrInvalidState", err)
			}
		} else if st2, err := ring.DecodeStep(ring.AppendStep(nil, st)); err != nil || st2 != st {
			t.Fatalf("step %+v round trip: %+v, %v", st, st2, err)
		}
	})
}

// FuzzRingPlan turns the input into a sequence of cluster events (two
// bytes each: kind and node) and plans and applies each. Every planned
// step must apply, the state must stay valid and round-trip through its
// encoding, planning must be deterministic, and a reconcile after each
// plan must find nothing to do.
func FuzzRingPlan(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 2, 0, 3, 1, 3, 2, 1, 3, 1})
	f.Add([]byte{0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 2, 0, 2, 1, 1, 2, 3, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 80 {
			data = data[:80]
		}
		ringEvents(t, data)
	})
}

// ringEvents plays the events data encodes on a new cluster and returns
// its state. Events that do not apply (Plan refuses them) are skipped.
func ringEvents(t testing.TB, data []byte) *ring.State {
	t.Helper()
	opts := ring.Options{}
	if len(data)%2 == 1 {
		opts.ReplicationFactor = 1 + int(data[len(data)-1]%3)
		opts.GroupsPerNode = 1 + int(data[len(data)-1]/3%3)
	}
	s, err := ring.NewState(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(data); i += 2 {
		node := ring.NodeID(fmt.Sprintf("n%d", data[i+1]%8))
		ev := ring.Event{Kind: ring.EventKind(data[i] % 4), Node: node, Addr: string(node) + ":7946", AtMillis: int64(i)}
		steps, err := ring.Plan(s, ev)
		if err != nil {
			continue
		}
		if again, _ := ring.Plan(s, ev); !slices.Equal(steps, again) {
			t.Fatalf("event %+v: Plan is not deterministic", ev)
		}
		for _, st := range steps {
			if err := s.Apply(st); err != nil {
				t.Fatalf("event %+v: planned step does not apply: %v", ev, err)
			}
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("event %+v: %v", ev, err)
		}
		if more, err := ring.Plan(s, ring.Event{AtMillis: int64(i)}); err != nil || len(more) > 0 {
			t.Fatalf("event %+v: reconcile plans %v, %v", ev, more, err)
		}
		dec, err := ring.DecodeState(ring.AppendState(nil, s))
		if err != nil || !dec.Equal(s) {
			t.Fatalf("event %+v: state round trip: %v", ev, err)
		}
	}
	return s
}
