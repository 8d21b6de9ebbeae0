package ring

import (
	"errors"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"factor 5", Options{ReplicationFactor: 5}, true},
		{"negative factor", Options{ReplicationFactor: -1}, false},
		{"huge factor", Options{ReplicationFactor: 100}, false},
		{"too many groups", Options{GroupsPerNode: 1000}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	err := Options{ReplicationFactor: -1, GroupsPerNode: -1}.Validate()
	if err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != 2 {
		t.Errorf("Validate reports %v, want both problems", err)
	}
}

func TestApplyRejects(t *testing.T) {
	base := mustState(t, Options{})
	for _, n := range []string{"a", "b", "c"} {
		run(t, base, Event{Kind: EventJoin, Node: NodeID(n)})
	}
	// Groups 1..3 on a, b, c; leaders a, b, c.
	for _, tc := range []struct {
		name string
		st   Step
	}{
		{"add existing node", Step{Kind: StepAddNode, Node: "a"}},
		{"add empty node", Step{Kind: StepAddNode}},
		{"state of unknown node", Step{Kind: StepSetNodeState, Node: "x", State: NodeDead}},
		{"bad state", Step{Kind: StepSetNodeState, Node: "a", State: 9}},
		{"remove active node", Step{Kind: StepRemoveNode, Node: "a"}},
		{"create existing group", Step{Kind: StepCreateGroup, Group: 1, Node: "a"}},
		{"create group 0", Step{Kind: StepCreateGroup, Group: 0, Node: "a"}},
		{"create on unknown node", Step{Kind: StepCreateGroup, Group: 9, Node: "x"}},
		{"add replica twice", Step{Kind: StepAddReplica, Group: 1, Node: "a"}},
		{"add to unknown group", Step{Kind: StepAddReplica, Group: 9, Node: "a"}},
		{"remove the leader", Step{Kind: StepRemoveReplica, Group: 1, Node: "a"}},
		{"remove below the factor", Step{Kind: StepRemoveReplica, Group: 1, Node: "b"}},
		{"remove missing replica", Step{Kind: StepRemoveReplica, Group: 1, Node: "x"}},
		{"transfer to a non-replica", Step{Kind: StepTransferLeader, Group: 1, Node: "x"}},
		{"address of unknown node", Step{Kind: StepSetNodeAddr, Node: "x", Addr: "h:1"}},
		{"unknown kind", Step{Kind: 99}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base.Clone()
			if err := s.Apply(tc.st); !errors.Is(err, ErrInvalidStep) {
				t.Fatalf("Apply(%v) = %v, want ErrInvalidStep", tc.st, err)
			}
			if !s.Equal(base) {
				t.Errorf("a refused step changed the state")
			}
		})
	}
}

func TestRemoveNodeHoldingReplica(t *testing.T) {
	s := mustState(t, Options{})
	run(t, s, Event{Kind: EventJoin, Node: "a"})
	if err := s.Apply(Step{Kind: StepSetNodeState, Node: "a", State: NodeDead}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(Step{Kind: StepRemoveNode, Node: "a"}); !errors.Is(err, ErrInvalidStep) {
		t.Fatalf("removed a node holding a replica: %v", err)
	}
}

func TestSetNodeAddr(t *testing.T) {
	s := mustState(t, Options{})
	run(t, s, Event{Kind: EventJoin, Node: "a", Addr: "h:1"})
	gen := s.Generation
	if err := s.Apply(Step{Kind: StepSetNodeAddr, Node: "a", Addr: "h:2"}); err != nil {
		t.Fatal(err)
	}
	if got := s.Node("a").Addr; got != "h:2" || s.Generation != gen+1 {
		t.Fatalf("address %q at generation %d, want h:2 at %d", got, s.Generation, gen+1)
	}
	if steps, err := Plan(s, Event{}); err != nil || len(steps) > 0 {
		t.Fatalf("Plan after an address change = %v, %v; want nothing to do", steps, err)
	}
}

// TestRemovedAndStarter: removed nodes and group starters are state: a
// drained node never comes back, a dead one may, and a group created on a
// node is started once.
func TestRemovedAndStarter(t *testing.T) {
	s := mustState(t, Options{ReplicationFactor: 1})
	apply := func(st Step) error { return s.Apply(st) }
	for _, st := range []Step{
		{Kind: StepAddNode, Node: "a", Addr: "a:1"},
		{Kind: StepAddNode, Node: "b", Addr: "b:1"},
		{Kind: StepAddNode, Node: "c", Addr: "c:1"},
		{Kind: StepCreateGroup, Node: "a", Group: 1, AtMillis: 1},
	} {
		if err := apply(st); err != nil {
			t.Fatal(err)
		}
	}
	if !s.Bootstraps(1, "a") || s.Bootstraps(1, "b") {
		t.Fatal("group 1 should await node a's bootstrap")
	}
	for range 2 { // starting twice is harmless
		if err := apply(Step{Kind: StepStartGroup, Group: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if s.Bootstraps(1, "a") {
		t.Fatal("group 1 started, yet a should bootstrap it")
	}
	if err := apply(Step{Kind: StepStartGroup, Group: 7}); !errors.Is(err, ErrInvalidStep) {
		t.Fatalf("starting an unknown group: %v", err)
	}
	for _, st := range []Step{
		{Kind: StepSetNodeState, Node: "b", State: NodeDraining},
		{Kind: StepRemoveNode, Node: "b"},
		{Kind: StepSetNodeState, Node: "c", State: NodeDead},
		{Kind: StepRemoveNode, Node: "c"},
	} {
		if err := apply(st); err != nil {
			t.Fatal(err)
		}
	}
	if removed, drained := s.WasRemoved("b"); !removed || !drained {
		t.Fatalf("b: removed %v drained %v, want a drained removal", removed, drained)
	}
	if removed, drained := s.WasRemoved("c"); !removed || drained {
		t.Fatalf("c: removed %v drained %v, want a dead one's", removed, drained)
	}
	if err := apply(Step{Kind: StepAddNode, Node: "b", Addr: "b:2"}); !errors.Is(err, ErrInvalidStep) {
		t.Fatalf("a drained node rejoined: %v", err)
	}
	if err := apply(Step{Kind: StepAddNode, Node: "c", Addr: "c:2"}); err != nil {
		t.Fatalf("a dead node could not come back: %v", err)
	}
	if removed, _ := s.WasRemoved("c"); removed {
		t.Fatal("c came back but is still listed as removed")
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	checkEncoding(t, s)
}
