package engine

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

func crashOptions(dir string) Options {
	opts := testOptions(vfs.Default)
	opts.Dir = dir
	opts.Retention = 2 * time.Second
	return opts
}

const crashBatches = 1500

// TestCrashChild is the child process of TestCrashRecovery: it recovers
// the store in $ENGINE_CRASH_DIR, replays and applies batches, checkpoints
// every 40, and prints "applied N" after each, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("ENGINE_CRASH_DIR")
	if dir == "" {
		t.Skip("child of TestCrashRecovery")
	}
	seed, err := strconv.ParseUint(os.Getenv("ENGINE_CRASH_SEED"), 10, 64)
	require.NoError(t, err)
	window, _ := strconv.ParseInt(os.Getenv("ENGINE_CRASH_WINDOW"), 10, 64)
	batches := crashBatchesOf(t, seed, window)
	db, err := Open(crashOptions(dir))
	require.NoError(t, err)
	g, from, err := db.OpenGroup(7)
	require.NoError(t, err)
	fmt.Printf("recovered %d\n", from)
	for i := from; i < uint64(len(batches)); i++ {
		_, err := g.Apply(i+1, write.Append(nil, batches[i]))
		require.NoError(t, err)
		if (i+1)%40 == 0 {
			require.NoError(t, g.Checkpoint())
		}
		fmt.Printf("applied %d\n", i+1)
	}
	require.NoError(t, db.Close())
	fmt.Println("done")
}

// crashBatchesOf returns the batches of the crash test: randomBatches,
// with an out-of-order window of windowMs if not 0 (withWindow), and then
// with start timestamps too (withSTs).
func crashBatchesOf(t testing.TB, seed uint64, windowMs int64) []*write.Batch {
	batches := randomBatches(t, seed, crashBatches)
	if windowMs > 0 {
		withWindow(seed, batches, windowMs)
		withSTs(batches)
	}
	return batches
}

// TestCrashRecovery kills a child process with SIGKILL while it applies
// batches, three times, then recovers the store, replays the rest and
// checks it holds exactly what a store that never crashed holds.
func TestCrashRecovery(t *testing.T) { crashRecovery(t, 0) }

// TestCrashRecoveryOutOfOrder is TestCrashRecovery with batches that
// carry an out-of-order window and samples and histograms in it (some
// 550 and 180 of them accepted): the entries replayed after a crash
// insert into sealed chunks that later entries may have changed already.
// Their samples have start timestamps: a replay finds the keys of later
// entries' starts in Pebble.
func TestCrashRecoveryOutOfOrder(t *testing.T) { crashRecovery(t, 700) }

func crashRecovery(t *testing.T, windowMs int64) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := seedFromEnv(t)
	dir := t.TempDir()
	rng := newRand(seed)
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "ENGINE_CRASH_DIR="+dir, fmt.Sprintf("ENGINE_CRASH_SEED=%d", seed), fmt.Sprintf("ENGINE_CRASH_WINDOW=%d", windowMs))
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		target := uint64(200*(round+1) + rng.IntN(150))
		sc := bufio.NewScanner(out)
		var recovered, applied uint64
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "recovered "); ok {
				recovered, _ = strconv.ParseUint(v, 10, 64)
			}
			if v, ok := strings.CutPrefix(line, "applied "); ok {
				applied, _ = strconv.ParseUint(v, 10, 64)
				if applied >= target {
					require.NoError(t, cmd.Process.Kill())
					break
				}
			}
		}
		_ = cmd.Wait() // killed: an error by design
		t.Logf("round %d: recovered to %d, killed after %d applied", round, recovered, applied)
		require.GreaterOrEqual(t, applied, target, "child stopped early")
	}

	batches := crashBatchesOf(t, seed, windowMs)
	db, err := Open(crashOptions(dir))
	require.NoError(t, err)
	defer db.Close()
	g, from, err := db.OpenGroup(7)
	require.NoError(t, err)
	require.Equal(t, uint64(0), from%40, "recovered to a checkpoint")
	for i := from; i < uint64(len(batches)); i++ {
		apply(t, g, i+1, batches[i])
	}
	require.NoError(t, g.Checkpoint())

	refOpts := crashOptions("ref")
	refOpts.FS = vfs.NewMem()
	refDB, ref := openTest(t, refOpts)
	for i, b := range batches {
		apply(t, ref, uint64(i+1), b)
	}
	require.NoError(t, ref.Checkpoint())
	requireSameDump(t, dump(t, refDB), dump(t, db))
	if windowMs > 0 {
		for _, tenant := range []string{"alpha", "beta"} {
			requireSTs(t, g, tenant)
		}
	}
}
