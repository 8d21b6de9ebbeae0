package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var logStores = []LogStore{LogStoreWAL, LogStorePebble}

// testOptions are fast options for a one-replica group in dir.
func testOptions(dir string, a Applier, store LogStore) Options {
	return Options{
		Dir:              dir,
		ID:               "r1",
		Applier:          a,
		LogStore:         store,
		HeartbeatTimeout: 20 * time.Millisecond,
		// Snapshots only when a test calls Checkpoint.
		SnapshotThreshold:   1 << 40,
		SnapshotMaxLogBytes: 1 << 62,
		SnapshotMaxLogAge:   24 * time.Hour,
		SnapshotInterval:    time.Hour,
		TrailingLogs:        8,
	}
}

func openLeader(t testing.TB, opts Options) *Group {
	t.Helper()
	g, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.WaitLeader(ctx); err != nil {
		t.Fatal(errors.Join(err, g.Close()))
	}
	return g
}

func propose(t testing.TB, g *Group, batch string) uint64 {
	t.Helper()
	idx, _, err := g.Propose(context.Background(), []byte(batch))
	if err != nil {
		t.Fatalf("propose %q: %v", batch, err)
	}
	return idx
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"empty", Options{}, false},
		{"minimal", Options{Dir: "d", ID: "r1", Applier: &chainApplier{}}, true},
		{"bad store", Options{Dir: "d", ID: "r1", Applier: &chainApplier{}, LogStore: "bolt"}, false},
		{"short heartbeat", Options{Dir: "d", ID: "r1", Applier: &chainApplier{}, HeartbeatTimeout: time.Millisecond}, false},
		{"too many entries", Options{Dir: "d", ID: "r1", Applier: &chainApplier{}, MaxAppendEntries: 2000}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestRestartReplaysTail writes entries, checkpoints, writes more,
// restarts, and checks the state is identical, the log was truncated at
// the checkpoint and only the entries after it were replayed.
func TestRestartReplaysTail(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "applier.json")
			a := openChain(t, path)
			g := openLeader(t, testOptions(filepath.Join(dir, "raft"), a, store))
			const before, after = 100, 37
			var last uint64
			for i := range before {
				last = propose(t, g, fmt.Sprintf("b%d", i))
			}
			if err := g.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			st := g.Stats()
			if st.FirstIndex == 0 || st.FirstIndex+8 < last-8 {
				t.Errorf("after checkpoint at %d the log starts at %d, want about %d (TrailingLogs 8)", last, st.FirstIndex, last-8)
			}
			for i := range after {
				propose(t, g, fmt.Sprintf("c%d", i))
			}
			want := a.state()
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			if err := g.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}

			a2 := openChain(t, path)
			g2 := openLeader(t, testOptions(filepath.Join(dir, "raft"), a2, store))
			defer g2.Close()
			got := a2.state()
			if got.Index != want.Index || got.Hash != want.Hash || len(got.Entries) != len(want.Entries) {
				t.Fatalf("after restart: index %d hash %x entries %d, want %d %x %d",
					got.Index, got.Hash[:4], len(got.Entries), want.Index, want.Hash[:4], len(want.Entries))
			}
			if st := g2.Stats(); st.Replayed != after {
				t.Errorf("replayed %d entries, want %d (stats %+v)", st.Replayed, after, st)
			}
			// The group goes on after the restart.
			if idx := propose(t, g2, "d"); idx <= want.Index {
				t.Errorf("index after restart %d, want > %d", idx, want.Index)
			}
		})
	}
}

// TestLogBoundedUnderLoad lets raft snapshot by itself (threshold 50)
// under a steady stream of proposals and checks the log stays bounded.
func TestLogBoundedUnderLoad(t *testing.T) {
	dir := t.TempDir()
	a := openChain(t, filepath.Join(dir, "applier.json"))
	opts := testOptions(filepath.Join(dir, "raft"), a, "")
	opts.SnapshotThreshold = 50
	opts.SnapshotInterval = 5 * time.Millisecond
	g := openLeader(t, opts)
	defer g.Close()
	// Propose until raft has truncated twice; the bound is generous for
	// a slow machine: threshold + trailing + entries during one interval.
	deadline := time.Now().Add(20 * time.Second)
	var truncations int
	var lastFirst uint64
	for i := 0; truncations < 2; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no truncation after %d entries: %+v", i, g.Stats())
		}
		propose(t, g, fmt.Sprintf("b%d", i))
		st := g.Stats()
		if st.FirstIndex > lastFirst+1 {
			truncations++
			lastFirst = st.FirstIndex
		}
		if n := st.LastIndex - st.FirstIndex; st.FirstIndex > 0 && n > 2000 {
			t.Fatalf("log holds %d entries: %+v", n, st)
		}
	}
}

// TestCaughtUp: after a restart the replica leads before it has applied
// its log; CaughtUp says so until the replay is done.
func TestCaughtUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "applier.json")
	g := openLeader(t, testOptions(filepath.Join(dir, "raft"), openChain(t, path), ""))
	for i := range 50 {
		propose(t, g, fmt.Sprint(i))
	}
	if err := g.CaughtUp(); err != nil {
		t.Fatalf("CaughtUp of a replica that applied everything: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	a := openChain(t, path)
	a.gate = make(chan struct{}) // the replay waits
	g, err := Open(testOptions(filepath.Join(dir, "raft"), a, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.CaughtUp(); err == nil || !strings.Contains(err.Error(), "replaying its log") {
		t.Fatalf("CaughtUp before the replay: %v, want replaying", err)
	}
	close(a.gate)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := g.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.CaughtUp(); err != nil {
		t.Fatalf("CaughtUp after the replay: %v", err)
	}
}

func TestSnapshotDue(t *testing.T) {
	p := snapshotPolicy{maxBytes: 1000, maxAge: time.Minute, idle: 2 * time.Second, idleBytes: 100}
	for _, tc := range []struct {
		name  string
		bytes uint64
		age   time.Duration
		idle  time.Duration
		want  bool
	}{
		{"nothing applied", 0, time.Hour, time.Hour, false},
		{"little, recent", 999, time.Second, 0, false},
		{"bytes reached", 1000, time.Second, 0, true},
		{"age reached", 1, time.Minute, 0, true},
		{"writes stopped after a segment", 100, time.Second, 2 * time.Second, true},
		{"writes stopped before a segment", 99, time.Second, time.Hour, false},
		{"a segment, still writing", 500, time.Second, time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.due(tc.bytes, tc.age, tc.idle); got != tc.want {
				t.Fatalf("due(%d, %v, %v) = %v, want %v", tc.bytes, tc.age, tc.idle, got, tc.want)
			}
		})
	}
}

// TestSnapshotByLogBytes: with entries far below raft's entry threshold
// the group snapshots (and truncates) by the bytes applied, so the log
// after the last snapshot stays near SnapshotMaxLogBytes.
func TestSnapshotByLogBytes(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			dir := t.TempDir()
			a := openChain(t, filepath.Join(dir, "a.json"))
			opts := testOptions(filepath.Join(dir, "raft"), a, store)
			opts.SnapshotMaxLogBytes = 20 << 10
			opts.SnapshotInterval = 5 * time.Millisecond
			g := openLeader(t, opts)
			defer g.Close()
			entry := strings.Repeat("x", 1000)
			var most uint64
			deadline := time.Now().Add(20 * time.Second)
			for i := 0; g.Stats().FirstIndex < 100; i++ {
				if time.Now().After(deadline) {
					t.Fatalf("no truncation past index 100 after %d entries: %+v", i, g.Stats())
				}
				propose(t, g, fmt.Sprint(i, entry))
				most = max(most, g.Stats().SinceSnapshotBytes)
			}
			// The bound plus what is applied while a snapshot runs (the
			// test applier's checkpoint rewrites its whole state).
			if most > 80<<10 {
				t.Errorf("up to %d bytes applied since a snapshot, want about 20 KiB and the entries applied during one", most)
			}
		})
	}
}

// TestSnapshotWhenWritesStop: after a segment's worth of entries and a
// pause of SnapshotInterval the group snapshots, although neither the
// bytes nor the age bound is reached; and a group of one voter keeps no
// trailing entries behind it (Pebble's log deletes exactly).
func TestSnapshotWhenWritesStop(t *testing.T) {
	dir := t.TempDir()
	a := openChain(t, filepath.Join(dir, "a.json"))
	opts := testOptions(filepath.Join(dir, "raft"), a, LogStorePebble)
	opts.SnapshotInterval = 20 * time.Millisecond
	opts.WALSegmentBytes = 64 << 10
	opts.TrailingLogs = 1000
	var quiesced atomic.Int64
	opts.Quiesced = func() { quiesced.Add(1) }
	g := openLeader(t, opts)
	defer g.Close()
	entry := strings.Repeat("x", 1000)
	var last uint64
	for i := range 100 {
		last = propose(t, g, fmt.Sprint(i, entry))
	}
	// Only the idle rule snapshots here (testOptions), and with 1,000
	// trailing entries nothing of these 100 would be deleted: a log that
	// starts past 50 (or is empty) shows both. A pause while writing may
	// snapshot early; the entries after it are fewer than a segment.
	deadline := time.Now().Add(10 * time.Second)
	for st := g.Stats(); st.FirstIndex != 0 && st.FirstIndex <= 50; st = g.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot and truncation after the writes stopped at %d: %+v", last, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The snapshot loop calls Quiesced after the snapshot it took.
	for quiesced.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Quiesced not called after the snapshot when the writes stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Nothing new since: no snapshot, and Quiesced is not called again.
	n := quiesced.Load()
	time.Sleep(10 * opts.SnapshotInterval)
	if got := quiesced.Load(); got != n {
		t.Errorf("Quiesced called %d more times with nothing applied", got-n)
	}
}

// TestQuiescedNotWhileWriting: snapshots by the log's size while entries
// keep coming do not call Quiesced.
func TestQuiescedNotWhileWriting(t *testing.T) {
	dir := t.TempDir()
	a := openChain(t, filepath.Join(dir, "a.json"))
	opts := testOptions(filepath.Join(dir, "raft"), a, LogStorePebble)
	opts.SnapshotMaxLogBytes = 20 << 10
	opts.SnapshotInterval = 5 * time.Second // longer than any pause between proposals
	var quiesced atomic.Int64
	opts.Quiesced = func() { quiesced.Add(1) }
	g := openLeader(t, opts)
	defer g.Close()
	entry := strings.Repeat("x", 1000)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; g.Stats().FirstIndex < 100; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no truncation past index 100 after %d entries: %+v", i, g.Stats())
		}
		propose(t, g, fmt.Sprint(i, entry))
	}
	if n := quiesced.Load(); n != 0 {
		t.Errorf("Quiesced called %d times while writing", n)
	}
}

func TestApplierErrorGoesToProposer(t *testing.T) {
	dir := t.TempDir()
	a := openChain(t, filepath.Join(dir, "applier.json"))
	g := openLeader(t, testOptions(dir, a, ""))
	defer g.Close()
	propose(t, g, "ok")
	idx, outcome, err := g.Propose(context.Background(), []byte("bad"))
	if err != nil || string(outcome) != outcomeBad || idx == 0 {
		t.Fatalf("Propose(bad) = %d, %q, %v; want an index and outcome %q", idx, outcome, err, outcomeBad)
	}
	if next := propose(t, g, "ok2"); next != idx+1 {
		t.Errorf("next index %d, want %d", next, idx+1)
	}
}

func TestApplierFailureStopsGroup(t *testing.T) {
	dir := t.TempDir()
	a := openChain(t, filepath.Join(dir, "applier.json"))
	g := openLeader(t, testOptions(dir, a, ""))
	defer g.Close()
	idx := propose(t, g, "ok")
	a.failAt = idx + 1
	if _, _, err := g.Propose(context.Background(), []byte("x")); !errors.Is(err, ErrApplierFailed) {
		t.Fatalf("Propose at failing index: %v, want ErrApplierFailed", err)
	}
	if _, _, err := g.Propose(context.Background(), []byte("y")); !errors.Is(err, ErrApplierFailed) {
		t.Fatalf("Propose after failure: %v, want ErrApplierFailed", err)
	}
	if err := g.Checkpoint(); err == nil {
		t.Fatal("Checkpoint after failure succeeded; the log must not be truncated")
	}
}

func TestOpenRefusesApplierBehindSnapshot(t *testing.T) {
	dir := t.TempDir()
	a := openChain(t, filepath.Join(dir, "applier.json"))
	g := openLeader(t, testOptions(filepath.Join(dir, "raft"), a, ""))
	for i := range 20 {
		propose(t, g, fmt.Sprint(i))
	}
	if err := errors.Join(g.Checkpoint(), g.Close()); err != nil {
		t.Fatal(err)
	}
	// A fresh applier (its data lost) cannot be rebuilt from a truncated log.
	_, err := Open(testOptions(filepath.Join(dir, "raft"), &chainApplier{}, ""))
	if !errors.Is(err, ErrApplierBehind) {
		t.Fatalf("Open with an empty applier: %v, want ErrApplierBehind", err)
	}
}

func TestProposeNotLeader(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(dir, openChain(t, filepath.Join(dir, "a.json")), LogStorePebble)
	opts.HeartbeatTimeout = time.Minute // no election during the test
	g, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	_, _, err = g.Propose(context.Background(), []byte("x"))
	var nl *NotLeaderError
	if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) {
		t.Fatalf("Propose on a follower: %v, want *NotLeaderError", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.WaitLeader(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitLeader(cancelled) = %v", err)
	}
}

func TestProposeAfterClose(t *testing.T) {
	dir := t.TempDir()
	g := openLeader(t, testOptions(dir, openChain(t, filepath.Join(dir, "a.json")), ""))
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ctx := range []context.Context{context.Background(), t.Context()} {
		if _, _, err := g.Propose(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Propose after Close: %v, want ErrClosed", err)
		}
	}
}

// TestConcurrentProposals: every proposal gets its own index, and the
// applier saw exactly the proposed batches in index order.
func TestConcurrentProposals(t *testing.T) {
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			dir := t.TempDir()
			a := openChain(t, filepath.Join(dir, "a.json"))
			g := openLeader(t, testOptions(dir, a, store))
			defer g.Close()
			const workers, each = 16, 25
			var mu sync.Mutex
			got := map[uint64]string{}
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						b := fmt.Sprintf("w%d-%d", w, i)
						idx, _, err := g.Propose(t.Context(), []byte(b))
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						got[idx] = b
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(got) != workers*each {
				t.Fatalf("%d distinct indexes, want %d", len(got), workers*each)
			}
			for _, e := range a.state().Entries {
				if b, ok := got[e.Index]; ok && b != e.Batch {
					t.Fatalf("index %d applied %q, proposed %q", e.Index, e.Batch, b)
				}
			}
		})
	}
}

// TestThreeReplicas runs a group of three replicas over connected
// in-memory transports: proposals on the leader are applied identically
// everywhere, and a follower refuses proposals naming the leader. (The
// one-replica path is what ships now; this keeps the API honest for
// issue 6.)
func TestThreeReplicas(t *testing.T) {
	dir := t.TempDir()
	ids := []string{"a", "b", "c"}
	trans := make([]*raft.InmemTransport, len(ids))
	var voters []Voter
	for i, id := range ids {
		_, trans[i] = raft.NewInmemTransport(raft.ServerAddress(id))
		voters = append(voters, Voter{ID: id, Address: id})
	}
	for i := range trans {
		for j := range trans {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	groups := make([]*Group, len(ids))
	appliers := make([]*chainApplier, len(ids))
	for i, id := range ids {
		appliers[i] = openChain(t, filepath.Join(dir, id+".json"))
		opts := testOptions(filepath.Join(dir, id), appliers[i], "")
		opts.ID, opts.Transport, opts.Voters = id, trans[i], voters
		// Leader lease 250 ms: a 20 ms heartbeat loses the lease on a
		// busy 2-core machine.
		opts.HeartbeatTimeout = 500 * time.Millisecond
		g, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		groups[i] = g
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var leader, follower *Group
	for _, g := range groups {
		if err := g.WaitLeader(ctx); err != nil {
			t.Fatal(err)
		}
	}
	leaderID, _ := groups[0].Leader()
	for _, g := range groups {
		if g.opts.ID == leaderID {
			leader = g
		} else {
			follower = g
		}
	}
	if leader == nil {
		t.Fatalf("leader %q is none of %v", leaderID, ids)
	}
	var last uint64
	for i := range 50 {
		last = propose(t, leader, fmt.Sprint("b", i))
	}
	_, _, err := follower.Propose(ctx, []byte("x"))
	var nl *NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != leaderID || nl.Leader != leaderID {
		t.Fatalf("Propose on a follower: %v, want NotLeaderError naming %s", err, leaderID)
	}
	for i, a := range appliers {
		if err := a.waitIndex(ctx, last); err != nil {
			t.Fatal(err)
		}
		if got, want := a.state().Hash, appliers[0].state().Hash; got != want {
			t.Fatalf("replica %s hash %x, replica a %x", ids[i], got[:4], want[:4])
		}
	}
}

func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewPedanticRegistry()
	for round := range 2 { // Close unregisters, so a reopen registers again
		a := openChain(t, filepath.Join(dir, "a.json"))
		opts := testOptions(filepath.Join(dir, "raft"), a, "")
		opts.Registerer = reg
		g := openLeader(t, opts)
		propose(t, g, "ok")
		if _, outcome, err := g.Propose(t.Context(), []byte("bad")); err != nil || string(outcome) != outcomeBad {
			t.Fatal(outcome, err)
		}
		if err := g.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		want := `
# HELP myelin_raft_proposals_total Proposals by result: ok, refused (by the applier), not_leader, unknown (may be committed), applier_fail, disk_full, log_failed.
# TYPE myelin_raft_proposals_total counter
myelin_raft_proposals_total{group="r1",result="ok"} 1
myelin_raft_proposals_total{group="r1",result="refused"} 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "myelin_raft_proposals_total"); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if n, err := testutil.GatherAndCount(reg, "myelin_raft_propose_duration_seconds", "myelin_raft_applied_index", "myelin_raft_log_entries"); n != 3 || err != nil {
			t.Fatalf("round %d: %d series, %v", round, n, err)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCaughtUpSurvivesLeaderChange: once a replica has replayed its log,
// CaughtUp (and so /ready) stays yes when it becomes leader later. It
// said no on the new leader until a barrier of its own term was applied,
// so /ready answered 503 after every election (found by
// cmd/myelin TestBadInput once the cluster no longer called WaitLeader
// on data groups).
func TestCaughtUpSurvivesLeaderChange(t *testing.T) {
	dir := t.TempDir()
	ids := []string{"a", "b", "c"}
	open := func() []*Group {
		trans := make([]*raft.InmemTransport, len(ids))
		var voters []Voter
		for i, id := range ids {
			_, trans[i] = raft.NewInmemTransport(raft.ServerAddress(id))
			voters = append(voters, Voter{ID: id, Address: id})
		}
		for i := range trans {
			for j := range trans {
				if i != j {
					trans[i].Connect(trans[j].LocalAddr(), trans[j])
				}
			}
		}
		groups := make([]*Group, len(ids))
		for i, id := range ids {
			opts := testOptions(filepath.Join(dir, id), openChain(t, filepath.Join(dir, id+".json")), "")
			opts.ID, opts.Transport, opts.Voters = id, trans[i], voters
			opts.HeartbeatTimeout = 500 * time.Millisecond
			g, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			groups[i] = g
		}
		return groups
	}
	leaderOf := func(groups []*Group) *Group {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		for _, g := range groups {
			if err := g.WaitLeader(ctx); err != nil {
				t.Fatal(err)
			}
		}
		id, _ := groups[0].Leader()
		for _, g := range groups {
			if g.opts.ID == id {
				return g
			}
		}
		t.Fatalf("leader %q is none of %v", id, ids)
		return nil
	}
	closeAll := func(groups []*Group) {
		for _, g := range groups {
			if err := g.Close(); err != nil {
				t.Error(err)
			}
		}
	}

	groups := open()
	leader := leaderOf(groups)
	for i := range 20 {
		propose(t, leader, fmt.Sprint("b", i))
	}
	closeAll(groups)

	// Restarted, every replica replays, then says it has caught up.
	groups = open()
	defer closeAll(groups)
	leader = leaderOf(groups)
	deadline := time.Now().Add(10 * time.Second)
	for _, g := range groups {
		for g.CaughtUp() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("replica %s not caught up: %v", g.opts.ID, g.CaughtUp())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A follower takes over with no write in between: still caught up.
	var next *Group
	for _, g := range groups {
		if g != leader {
			next = g
			break
		}
	}
	if err := leader.TransferLeadership(next.opts.ID, next.opts.ID); err != nil {
		t.Fatal(err)
	}
	for next.raft.State() != raft.Leader {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not take over", next.opts.ID)
		}
		time.Sleep(time.Millisecond)
	}
	if err := next.CaughtUp(); err != nil {
		t.Fatalf("CaughtUp on the new leader: %v", err)
	}
}
