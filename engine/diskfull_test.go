package engine

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
)

// fullFS is an in-memory file system whose writes fail with ENOSPC while
// full is set: creates, writes, syncs, renames, links and preallocations;
// not removes and closes, which work on a full disk.
func fullFS(full *atomic.Bool) vfs.FS {
	return errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !full.Load() || op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
			return nil
		}
		switch op.Kind {
		case errorfs.OpRemove, errorfs.OpRemoveAll, errorfs.OpFileClose, errorfs.OpLock, errorfs.OpMkdirAll:
			return nil
		}
		return &os.PathError{Op: "write", Path: op.Path, Err: syscall.ENOSPC}
	}))
}

// within runs f and fails the test if it does not return within d (a
// watchdog for calls that used to hang, not a wait).
func within(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %v on a full disk", what, d)
		return nil
	}
}

// TestDiskFull: while the disk is full a checkpoint fails with the
// ENOSPC instead of waiting for the flush, reads go on, the engine reports
// the full disk, and Close returns; once space is back checkpoints work
// and a restart recovers to the last checkpoint.
func TestDiskFull(t *testing.T) {
	batches := randomBatches(t, 1, 40)
	refOpts := testOptions(vfs.NewMem())
	refDB, ref := openTest(t, refOpts)
	for i, b := range batches {
		apply(t, ref, uint64(i+1), b)
	}

	var full atomic.Bool
	var reports atomic.Int64
	opts := testOptions(fullFS(&full))
	opts.OnDiskFull = func(error) { reports.Add(1) }
	db, err := Open(opts)
	require.NoError(t, err)
	g, _, err := db.OpenGroup(7)
	require.NoError(t, err)
	for i := range 20 {
		apply(t, g, uint64(i+1), batches[i])
	}
	require.NoError(t, g.Checkpoint())

	full.Store(true)
	for i := 20; i < 30; i++ {
		apply(t, g, uint64(i+1), batches[i])
	}
	err = within(t, 10*time.Second, "Checkpoint", g.Checkpoint)
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.NotZero(t, reports.Load(), "OnDiskFull not called")
	require.Equal(t, selectAll(t, ref, "alpha", math.MinInt64, 30_000), selectAll(t, g, "alpha", math.MinInt64, 30_000),
		"reads while the disk is full")

	full.Store(false)
	require.NoError(t, g.Checkpoint(), "checkpoint once space is back")

	for i := 30; i < 40; i++ {
		apply(t, g, uint64(i+1), batches[i])
	}
	full.Store(true)
	err = within(t, 10*time.Second, "Close", db.Close)
	require.ErrorIs(t, err, syscall.ENOSPC)

	full.Store(false)
	db, err = Open(opts)
	require.NoError(t, err)
	defer db.Close()
	g, idx, err := db.OpenGroup(7)
	require.NoError(t, err)
	require.Equal(t, uint64(30), idx, "recovered to the last checkpoint")
	for i := idx; i < uint64(len(batches)); i++ {
		apply(t, g, i+1, batches[i])
	}
	require.NoError(t, g.Checkpoint())
	require.NoError(t, ref.Checkpoint())
	requireSameDump(t, dump(t, refDB), dump(t, db))
}

// verboseErr prints a stack trace under %+v, as Pebble's errors
// (cockroachdb/errors) do.
type verboseErr struct{ msg string }

func (e verboseErr) Error() string { return e.msg }
func (e verboseErr) Unwrap() error { return syscall.ENOSPC }
func (e verboseErr) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('+') {
		fmt.Fprintf(f, "%s\n(1) attached stack trace\n  -- stack trace:", e.msg)
		return
	}
	fmt.Fprint(f, e.msg)
}

// TestDiskFullLogLine: Pebble's disk-full errors are logged once per
// fullLogEvery, on one line without the stack trace slog's %+v would
// print (it made each line ~40 lines long).
func TestDiskFullLogLine(t *testing.T) {
	var buf bytes.Buffer
	d := newDiskFull("dir", nil, slog.New(slog.NewTextHandler(&buf, nil)))
	err := verboseErr{"write dir/000005.sst: no space left on device"}
	for range 100 {
		d.backgroundError(err)
	}
	out := buf.String()
	if n := strings.Count(out, "\n"); n != 1 {
		t.Fatalf("%d lines for 100 disk-full errors, want 1:\n%s", n, out)
	}
	if strings.Contains(out, "stack trace") || !strings.Contains(out, "no space left on device") {
		t.Fatalf("log line: %s", out)
	}
}
