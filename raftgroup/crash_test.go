package raftgroup

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	crashDirEnv   = "RAFTGROUP_CRASH_DIR"
	crashRoundEnv = "RAFTGROUP_CRASH_ROUND"
	crashStoreEnv = "RAFTGROUP_CRASH_STORE"
)

// crashOptions make raft snapshot and truncate often, so a kill can land
// in the middle of a checkpoint or a truncation.
func crashOptions(dir string, a Applier, store LogStore) Options {
	o := testOptions(filepath.Join(dir, "raft"), a, store)
	o.SnapshotThreshold = 64
	o.SnapshotInterval = 10 * time.Millisecond
	return o
}

// TestCrashRecovery re-executes the test binary as a child that proposes
// in a loop and prints every acknowledged entry, kills it with SIGKILL,
// reopens the group and checks every acknowledged entry is in the
// applier's state. Three rounds on the same directory, per log store.
func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(t, dir, os.Getenv(crashRoundEnv), LogStore(os.Getenv(crashStoreEnv)))
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) { testCrashRecovery(t, store) })
	}
}

func testCrashRecovery(t *testing.T, store LogStore) {
	dir := t.TempDir()
	acked := map[uint64]string{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s=%d", crashRoundEnv, round), crashStoreEnv+"="+string(store))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			var idx uint64
			var batch string
			if _, err := fmt.Sscanf(sc.Text(), "ack %d %s", &idx, &batch); err != nil {
				continue // test framework output
			}
			acked[idx] = batch
			if n++; n == 300 {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Lines read after the kill were written, so acknowledged, before it.
		_ = cmd.Wait()
		if n < 300 {
			t.Fatalf("round %d: child acknowledged only %d entries before exiting", round, n)
		}

		a := openChain(t, filepath.Join(dir, "applier.json"))
		g := openLeader(t, crashOptions(dir, a, store))
		st := a.state()
		stats := g.Stats()
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		have := make(map[uint64]string, len(st.Entries))
		var prev uint64
		for _, e := range st.Entries {
			if e.Index <= prev {
				t.Fatalf("round %d: applied index %d after %d", round, e.Index, prev)
			}
			prev = e.Index
			have[e.Index] = e.Batch
		}
		for idx, b := range acked {
			if have[idx] != b {
				t.Fatalf("round %d: acknowledged entry %d %q lost after kill -9 (have %q)", round, idx, b, have[idx])
			}
		}
		t.Logf("round %d: %d acknowledged entries in total all present; replayed %d, log [%d, %d]",
			round, len(acked), stats.Replayed, stats.FirstIndex, stats.LastIndex)
	}
}

// crashChild proposes from 4 goroutines until it is killed (or 60 s pass)
// and prints "ack <index> <batch>" for every acknowledged entry.
func crashChild(t *testing.T, dir, round string, store LogStore) {
	a := openChain(t, filepath.Join(dir, "applier.json"))
	g := openLeader(t, crashOptions(dir, a, store))
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var outMu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				b := fmt.Sprintf("r%s-w%d-%d-%s", round, w, i, strings.Repeat("x", i%50))
				idx, _, err := g.Propose(ctx, []byte(b))
				if err != nil {
					t.Error(err)
					return
				}
				outMu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %s\n", idx, b) // unbuffered: one write(2)
				outMu.Unlock()
			}
		})
	}
	wg.Wait()
}
