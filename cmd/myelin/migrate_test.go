package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/write"
)

// writeFormerSingleNode writes a data directory as the former single-node
// mode left it: the engine in DATA/engine and one Raft group of one
// replica, server ID "node-1-group-1", in DATA/raft/1. It writes n
// samples of up{job="old"} at 1..n s, checkpointed up to the half, the
// rest only in the log (as after kill -9).
func writeFormerSingleNode(t *testing.T, dir string, n int) {
	t.Helper()
	db, err := engine.Open(engine.Options{Dir: filepath.Join(dir, "engine")})
	if err != nil {
		t.Fatal(err)
	}
	eg, recovered, err := db.OpenGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	g, err := raftgroup.Open(raftgroup.Options{
		Dir: filepath.Join(dir, "raft", "1"), ID: "node-1-group-1",
		Applier: engine.NewApplier(eg, recovered), HeartbeatTimeout: 50 * time.Millisecond,
		LogCacheEntries: -1, SnapshotThreshold: 1 << 40, SnapshotInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	var enc write.Encoder
	for i := 1; i <= n; i++ {
		bb := write.NewBuilder("t1")
		if err := bb.Add(labels.FromStrings("__name__", "up", "job", "old"), []write.Sample{{T: int64(i) * 1000, V: float64(i)}}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := g.Propose(ctx, enc.Entry(bb.Batch())); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			if err := g.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateFormerSingleNode: a data directory of the former single-node
// mode starts as group 1 of a cluster of one, with every acknowledged
// sample, checkpointed or only in the log; new writes follow, and a
// restart keeps both.
func TestMigrateFormerSingleNode(t *testing.T) {
	dir := t.TempDir()
	writeFormerSingleNode(t, dir, 40)
	start := func() (string, context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		stderr := newLogWatcher()
		done := make(chan error, 1)
		argv := []string{"-data.dir", dir, "-http.listen-address", "127.0.0.1:0"}
		goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
		addr := stderr.addr(t, done)
		waitReady(t, addr)
		return "http://" + addr, cancel, done
	}
	stop := func(cancel context.CancelFunc, done chan error) {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	count := func(base, query string) string {
		code, body := do(t, "GET", base+"/api/v1/query?query="+query+"&time=100", "t1", nil)
		if code != 200 {
			t.Fatalf("%s: %d %s", query, code, body)
		}
		return body
	}
	base, cancel, done := start()
	if body := count(base, "count_over_time(up[2m])"); !strings.Contains(body, `"value":[100,"40"]`) {
		t.Fatalf("after the migration: %s, want all 40 samples", body)
	}
	if _, err := os.Stat(filepath.Join(dir, "raft", "1")); !os.IsNotExist(err) {
		t.Fatalf("the former group's directory is still there: %v", err)
	}
	for i := 41; i <= 50; i++ {
		if code, body := do(t, "POST", base+"/api/v1/push", "t1", pushBody(t, "new", int64(i)*1000)); code != 204 {
			t.Fatalf("push: %d %s", code, body)
		}
	}
	stop(cancel, done)

	base, cancel, done = start()
	defer stop(cancel, done)
	if body := count(base, "count_over_time(up[2m])"); !strings.Contains(body, `"value":[100,"40"]`) {
		t.Fatalf("after a restart: %s, want 40", body)
	}
	if body := count(base, "count_over_time(new[2m])"); !strings.Contains(body, `"value":[100,"10"]`) {
		t.Fatalf("after a restart: %s, want 10", body)
	}
}

// TestDataDirInUse: a second process on the same data directory stops at
// once and says why.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newLogWatcher()
	done := make(chan error, 1)
	argv := []string{"-data.dir", dir, "-http.listen-address", "127.0.0.1:0"}
	goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
	waitReady(t, stderr.addr(t, done))
	err := run(context.Background(), []string{"-data.dir", dir, "-http.listen-address", "127.0.0.1:0"}, io.Discard, io.Discard)
	want := fmt.Sprintf("data directory %s is in use by another myelin process (pid %d)", dir, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second run = %v, want %q", err, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
