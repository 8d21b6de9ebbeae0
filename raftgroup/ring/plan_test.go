package ring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func mustState(t testing.TB, opts Options) *State {
	t.Helper()
	s, err := NewState(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run plans ev on s and applies the steps, checking each.
func run(t testing.TB, s *State, ev Event) []Step {
	t.Helper()
	steps, err := Plan(s, ev)
	if err != nil {
		t.Fatalf("Plan(%+v): %v", ev, err)
	}
	for _, st := range steps {
		if err := s.Apply(st); err != nil {
			t.Fatalf("Plan(%+v) planned a step that does not apply: %v", ev, err)
		}
	}
	return steps
}

func stepStrings(steps []Step) string {
	var b strings.Builder
	for _, st := range steps {
		fmt.Fprintln(&b, st)
	}
	return b.String()
}

func TestPlanErrors(t *testing.T) {
	s := mustState(t, Options{})
	run(t, s, Event{Kind: EventJoin, Node: "a"})
	for _, tc := range []struct {
		name string
		ev   Event
		want error
	}{
		{"join twice", Event{Kind: EventJoin, Node: "a"}, ErrNodeExists},
		{"drain unknown", Event{Kind: EventDrain, Node: "x"}, ErrUnknownNode},
		{"dead unknown", Event{Kind: EventDead, Node: "x"}, ErrUnknownNode},
		{"drain last node", Event{Kind: EventDrain, Node: "a"}, ErrLastNode},
		{"empty ID", Event{Kind: EventJoin}, ErrInvalidStep},
		{"bad kind", Event{Kind: 99, Node: "a"}, ErrInvalidStep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Plan(s, tc.ev); !errors.Is(err, tc.want) {
				t.Errorf("Plan(%+v) = %v, want %v", tc.ev, err, tc.want)
			}
		})
	}
}

// checkPlaced checks the placement rules of Plan on a planned state.
func checkPlaced(t testing.TB, s *State) {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	active := s.ActiveNodes()
	target := s.TargetReplicas()
	if len(s.Groups) < s.GroupsPerNode*len(active) {
		t.Fatalf("%d groups for %d active nodes, want %d per node", len(s.Groups), len(active), s.GroupsPerNode)
	}
	replicas, leaders := map[NodeID]int{}, map[NodeID]int{}
	stuck := false
	for _, g := range s.Groups {
		for _, r := range g.Replicas {
			replicas[r]++
		}
		leaders[g.Leader]++
		if !s.HasQuorum(&g) {
			stuck = true // the planner cannot change it
			continue
		}
		if target > 0 {
			if len(g.Replicas) != target || s.activeReplicas(&g) != target {
				t.Fatalf("group %d has replicas %v, want %d on active nodes", g.ID, g.Replicas, target)
			}
		}
	}
	spread := func(what string, m map[NodeID]int) {
		lo, hi := -1, -1
		for _, n := range active {
			c := m[n]
			if lo < 0 || c < lo {
				lo = c
			}
			hi = max(hi, c)
		}
		if hi-lo > 1 {
			t.Fatalf("%s per active node range from %d to %d: %v", what, lo, hi, m)
		}
	}
	if target > 0 && !stuck {
		spread("replicas", replicas)
		spread("leaders", leaders)
	}
	for _, n := range s.Nodes {
		if n.State != NodeActive && replicas[n.ID] == 0 {
			t.Fatalf("node %s is %s and holds nothing, but was not removed", n.ID, n.State)
		}
	}
	if r := s.Ring(); r != nil {
		n := uint64(r.NumGroups())
		for i, o := range r.Ownership() {
			want := ^uint64(0) / n
			if max(o, want)-min(o, want) > 2*n {
				t.Fatalf("group %d owns %d of the hash space, want %d", r.Groups()[i], o, want)
			}
		}
	}
	if steps, err := Plan(s, Event{}); err != nil || len(steps) > 0 {
		t.Fatalf("reconcile after a plan: %v, %v", steps, err)
	}
}

// TestPlanProperties runs random sequences of joins, drains, deaths and
// returns, applying each plan step by step and checking every invariant
// after every step and the placement rules after every plan.
func TestPlanProperties(t *testing.T) {
	seeds := 60
	if n, err := strconv.Atoi(os.Getenv("RING_SEEDS")); err == nil {
		seeds = n // a longer run: RING_SEEDS=2000 go test -run TestPlanProperties
	}
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			opts := Options{ReplicationFactor: 1 + rng.IntN(3), GroupsPerNode: 1 + rng.IntN(3)}
			s := mustState(t, opts)
			next := 0
			var stats struct{ adds, transfers, events, slack int }
			for i := range 40 {
				ev := randomEvent(rng, s, &next, int64(i)*1000)
				steps, err := Plan(s, ev)
				if err != nil {
					t.Fatalf("step %d: Plan(%+v): %v", i, ev, err)
				}
				again, _ := Plan(s, ev)
				if !slices.Equal(steps, again) {
					t.Fatalf("step %d: Plan is not deterministic", i)
				}
				oldGroups := len(s.Groups)
				deficit := replicaDeficit(s, steps)
				loadBefore := map[NodeID]int{}
				for _, g := range s.Groups {
					for _, r := range g.Replicas {
						loadBefore[r]++
					}
				}
				before := placedOn(s, ev.Node)
				forced := forcedMoves(s, ev)
				dump := dumpState(s)
				for _, st := range steps {
					checkStep(t, s, st)
				}
				checkPlaced(t, s)
				checkEncoding(t, s)
				// Movement: a join adds the new groups' replicas, the
				// replicas the groups lack, and fills the nodes below
				// their fair share; a drain or a death replaces the
				// node's replicas.
				adds := count(steps, StepAddReplica) + count(steps, StepCreateGroup)
				var bound int
				switch ev.Kind {
				case EventJoin:
					// Fill every active node that is below its fair
					// share (the new one; nodes that joined while groups
					// had no quorum and could not move).
					total := len(s.Groups) * s.TargetReplicas()
					share := (total + len(s.ActiveNodes()) - 1) / len(s.ActiveNodes())
					bound = (len(s.Groups)-oldGroups)*s.TargetReplicas() + deficit
					for _, n := range s.ActiveNodes() {
						bound += max(0, share-loadBefore[n])
					}
				case EventDrain, EventDead:
					// Plus the moves the within-1 rule forces: a node that
					// holds the groups to re-place cannot take them and
					// must get other replicas (seed 424: the only node
					// below average holds all three groups of the dead
					// node). forcedMoves bounds each node alone; nodes
					// competing for the same few groups can force one
					// more (seed 454 of RING_SEEDS: two nodes share the
					// only three groups they can take), hence the +1.
					bound = before + forced + 1
				}
				if (ev.Kind == EventDrain || ev.Kind == EventDead) && adds > before+forced {
					stats.slack++
				}
				if adds > bound {
					t.Fatalf("step %d: %+v added %d replicas, want at most %d:\n%s\nbefore:\n%s", i, ev, adds, bound, stepStrings(steps), dump)
				}
				stats.adds += adds
				stats.transfers += count(steps, StepTransferLeader)
				stats.events++
			}
			t.Logf("opts %+v: %d events, %d replicas added, %d leader transfers, %d nodes, %d groups, %d drains or deaths one copy over the bound",
				opts, stats.events, stats.adds, stats.transfers, len(s.Nodes), len(s.Groups), stats.slack)
		})
	}
}

func count(steps []Step, k StepKind) int {
	n := 0
	for _, st := range steps {
		if st.Kind == k {
			n++
		}
	}
	return n
}

func placedOn(s *State, n NodeID) int {
	c := 0
	for _, g := range s.Groups {
		if slices.Contains(g.Replicas, n) {
			c++
		}
	}
	return c
}

// checkStep applies st and checks the invariants that hold after every
// step, not only after a whole plan.
func checkStep(t testing.TB, s *State, st Step) {
	t.Helper()
	if err := s.Apply(st); err != nil {
		t.Fatalf("planned step does not apply: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("after %v: %v", st, err)
	}
	if st.Kind == StepRemoveReplica {
		if g := s.Group(st.Group); s.activeReplicas(g) < s.TargetReplicas() {
			t.Fatalf("after %v: group %d has %d active replicas, below %d", st, g.ID, s.activeReplicas(g), s.TargetReplicas())
		}
	}
}

// randomEvent picks an event that is valid for s: joins of new nodes,
// drains and deaths of active nodes (never the last one), returns of
// nodes that left, and reconciles.
func randomEvent(rng *rand.Rand, s *State, next *int, now int64) Event {
	active := s.ActiveNodes()
	var gone []NodeID
	for _, n := range s.Nodes {
		if n.State != NodeActive {
			gone = append(gone, n.ID)
		}
	}
	for {
		switch k := rng.IntN(10); {
		case k < 4 || len(active) == 0:
			if len(s.Nodes) >= 12 && len(active) > 0 {
				continue
			}
			*next++
			id := NodeID(fmt.Sprintf("n%02d", *next))
			return Event{Kind: EventJoin, Node: id, Addr: string(id) + ":7946", AtMillis: now}
		case k < 6 && len(active) > 1:
			return Event{Kind: EventDrain, Node: active[rng.IntN(len(active))], AtMillis: now}
		case k < 8 && len(active) > 1:
			return Event{Kind: EventDead, Node: active[rng.IntN(len(active))], AtMillis: now}
		case k < 9 && len(gone) > 0:
			return Event{Kind: EventJoin, Node: gone[rng.IntN(len(gone))], AtMillis: now}
		case k == 9:
			return Event{AtMillis: now}
		}
	}
}

func dumpState(s *State) string {
	var b strings.Builder
	for _, g := range s.Groups {
		fmt.Fprintf(&b, "g%d %v leader %s\n", g.ID, g.Replicas, g.Leader)
	}
	for _, n := range s.Nodes {
		fmt.Fprintf(&b, "%s %s\n", n.ID, n.State)
	}
	return b.String()
}

// forcedMoves is a lower bound of the replica moves, beyond re-placing
// the replicas of ev.Node, that a drain or death needs to balance
// replicas within 1: a node needing more replicas than the re-placed
// groups it does not hold can give gets the rest by moves.
func forcedMoves(s *State, ev Event) int {
	if ev.Kind != EventDrain && ev.Kind != EventDead {
		return 0
	}
	var rest []NodeID
	for _, n := range s.ActiveNodes() {
		if n != ev.Node {
			rest = append(rest, n)
		}
	}
	if len(rest) == 0 {
		return 0
	}
	target := min(s.ReplicationFactor, len(rest))
	floor := len(s.Groups) * target / len(rest)
	forced := 0
	for _, n := range rest {
		load, cand := 0, 0
		for _, g := range s.Groups {
			has := slices.Contains(g.Replicas, n)
			if has {
				load++
			}
			if !has && slices.Contains(g.Replicas, ev.Node) {
				cand++
			}
		}
		forced += max(0, floor-load-cand)
	}
	return forced
}

// replicaDeficit is the number of replicas the existing groups lack after
// the event's own step (the first of steps): a higher factor, or groups
// that regained their quorum when a dead node came back.
func replicaDeficit(s *State, steps []Step) int {
	pre := s.Clone()
	if len(steps) > 0 && (steps[0].Kind == StepAddNode || steps[0].Kind == StepSetNodeState) {
		if err := pre.Apply(steps[0]); err != nil {
			panic(err)
		}
	}
	n := 0
	for i := range pre.Groups {
		if g := &pre.Groups[i]; pre.HasQuorum(g) {
			n += max(0, pre.TargetReplicas()-pre.activeReplicas(g))
		}
	}
	return n
}
