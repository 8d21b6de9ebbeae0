package raftgroup

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestRefuseWrites(t *testing.T) {
	const minFree = 100 << 20 // resume at 116 MiB (the 16 MiB floor of the margin)
	for _, tc := range []struct {
		name              string
		refusing, sawFull bool
		free              uint64
		want              bool
	}{
		{"plenty", false, false, 1 << 30, false},
		{"just above the minimum", false, false, minFree, false},
		{"under the minimum", false, false, minFree - 1, true},
		{"refusing, above the minimum, inside the margin", true, false, minFree + 1, true},
		{"refusing, past the margin", true, false, minFree + 16<<20, false},
		{"write failed, inside the margin", false, true, minFree + 1, true},
		{"write failed, past the margin", false, true, minFree + 16<<20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := refuseWrites(tc.refusing, tc.sawFull, tc.free, minFree); got != tc.want {
				t.Fatalf("refuseWrites(%v, %v, %d) = %v, want %v", tc.refusing, tc.sawFull, tc.free, got, tc.want)
			}
		})
	}
	// Without a minimum, only a failed write refuses, until 16 MiB are free.
	if refuseWrites(false, false, 0, 0) || !refuseWrites(false, true, 1<<20, 0) || refuseWrites(true, true, 16<<20, 0) {
		t.Fatal("minimum 0: want refusal only after a failed write, below 16 MiB")
	}
}

// TestDiskGuard walks a guard through an outage with a passed clock: one
// line when refusing starts, a reminder every ReminderEvery, one when it
// ends; a failed write refuses at once and for at least an interval.
func TestDiskGuard(t *testing.T) {
	var free atomic.Uint64
	var now atomic.Int64
	free.Store(1 << 30)
	var logs bytes.Buffer
	g, err := NewDiskGuard(DiskGuardOptions{
		Dirs:          []string{"/data"},
		MinFreeBytes:  100 << 20,
		Interval:      time.Hour, // the test refreshes
		ReminderEvery: 5 * time.Minute,
		Setting:       "-storage.min-free-disk-space-bytes",
		FreeBytes:     func(string) (uint64, error) { return free.Load(), nil },
		Now:           func() time.Time { return time.Unix(now.Load(), 0) },
		Logger:        slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: dropTime})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	step := func(seconds int64, freeBytes uint64) error {
		now.Add(seconds)
		free.Store(freeBytes)
		if err := g.Refresh(); err != nil {
			t.Fatal(err)
		}
		return g.Err()
	}
	if err := g.Err(); err != nil {
		t.Fatalf("1 GiB free: %v", err)
	}
	changed := g.Changed()
	err = step(10, 50<<20)
	var dfe *DiskFullError
	if !errors.Is(err, ErrDiskFull) || !errors.As(err, &dfe) || dfe.FreeBytes != 50<<20 || dfe.Cause != nil {
		t.Fatalf("50 MiB free: %v, want a *DiskFullError with 50 MiB free", err)
	}
	want := "raftgroup: disk full: writes refused: /data has 50.0 MiB free, under the minimum of 100.0 MiB (-storage.min-free-disk-space-bytes); writes resume above 116.0 MiB"
	if err.Error() != want {
		t.Errorf("error:\n%s\nwant:\n%s", err, want)
	}
	select {
	case <-changed:
	default:
		t.Error("Changed not closed when writes started being refused")
	}
	if g.FullErr() != nil {
		t.Error("FullErr under the minimum: want nil (no write failed)")
	}
	for range 10 { // 10 x 1 minute: two reminders
		step(60, 40<<20)
	}
	if step(60, 110<<20) == nil {
		t.Fatal("110 MiB free, inside the margin: want writes still refused")
	}
	if err := step(60, 200<<20); err != nil {
		t.Fatalf("200 MiB free: %v", err)
	}
	// A failed write refuses at once, and the next reading within an
	// interval does not lift it.
	enospc := &os.PathError{Op: "write", Path: "/data/x", Err: syscall.ENOSPC}
	g.Report(fmt.Errorf("append: %w", enospc))
	if err := g.FullErr(); !errors.As(err, &dfe) || !errors.Is(dfe.Cause, syscall.ENOSPC) {
		t.Fatalf("after a failed write: FullErr %v, want the ENOSPC", err)
	}
	if step(1, 200<<20) == nil {
		t.Fatal("a second after the failed write: want writes refused")
	}
	if err := step(3600, 200<<20); err != nil {
		t.Fatalf("an interval later with 200 MiB free: %v", err)
	}
	g.Report(errors.New("some other error")) // not a full disk: ignored
	if err := g.Err(); err != nil {
		t.Fatalf("after a non-disk error: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		level, rest, _ := strings.Cut(l, " msg=")
		msg, _, _ := strings.Cut(strings.TrimPrefix(rest, `"`), `"`)
		lines = append(lines, level+" "+msg)
	}
	wantLines := []string{
		"level=ERROR disk full: refusing writes until space is freed (reads go on)",
		"level=ERROR disk still full: refusing writes",
		"level=ERROR disk still full: refusing writes",
		"level=INFO disk space is back: accepting writes again",
		"level=ERROR disk full: refusing writes until space is freed (reads go on)",
		"level=INFO disk space is back: accepting writes again",
	}
	if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("log lines:\n%s\nwant:\n%s\nfull log:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"), logs.String())
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(0, 0)
	for _, tc := range []struct {
		at     time.Duration
		ok     bool
		events int
	}{
		{0, true, 1},
		{time.Second, false, 0},
		{time.Minute, false, 0},
		{logEvery, true, 3},
		{logEvery + time.Second, false, 0},
	} {
		events, ok := l.allow(t0.Add(tc.at))
		if ok != tc.ok || events != tc.events {
			t.Fatalf("at %v: allow = %d, %v; want %d, %v", tc.at, events, ok, tc.events, tc.ok)
		}
	}
}
