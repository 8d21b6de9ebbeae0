package engine

import (
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// fullBackoff is how long a Pebble write that met ENOSPC waits before its
// one retry. Pebble retries a failed flush at once and forever; without
// the wait it spun a core and logged ~400 "background error" lines a
// second on a full disk.
const fullBackoff = time.Second

// fullLogEvery is the least time between two log lines about Pebble's
// writes failing on a full disk.
const fullLogEvery = 5 * time.Minute

// diskFull tracks Pebble's disk-full errors (see "Disk full" in doc.go):
// the OnDiskFull callback of Pebble's file system counts them, waits
// fullBackoff (less if the store closes), and wakes the calls waiting for
// a flush, which then fail instead of waiting for space.
//
// Locking: mu guards every field below it.
type diskFull struct {
	dir     string
	report  func(error) // Options.OnDiskFull, or a no-op
	logger  *slog.Logger
	closing chan struct{} // closed by DB.Close
	mu      sync.Mutex
	gen     uint64        // ENOSPC errors so far
	ch      chan struct{} // closed and replaced at every one
	logged  time.Time     // last log line about them
	unseen  int           // errors since that line
}

func newDiskFull(dir string, report func(error), logger *slog.Logger) *diskFull {
	if report == nil {
		report = func(error) {}
	}
	return &diskFull{dir: dir, report: report, logger: logger, closing: make(chan struct{}), ch: make(chan struct{})}
}

// err is the error of a write that found the disk full.
func (d *diskFull) err() error {
	return fmt.Errorf("engine: write to %s: %w", d.dir, syscall.ENOSPC)
}

// onFull is the callback of vfs.OnDiskFull: Pebble's writes wait while it
// runs, and the ones that failed are retried once after it.
func (d *diskFull) onFull() {
	d.mu.Lock()
	d.gen++
	close(d.ch)
	d.ch = make(chan struct{})
	d.mu.Unlock()
	d.report(d.err())
	t := time.NewTimer(fullBackoff)
	defer t.Stop()
	select {
	case <-t.C:
	case <-d.closing:
	}
}

// generation returns the number of disk-full errors so far.
func (d *diskFull) generation() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gen
}

// wait returns nil once flushed is closed, or a disk-full error as soon
// as a write fails with ENOSPC after the generation gen was read: the
// flush cannot finish before space is back (Pebble keeps retrying it, and
// its data stays in the memtable until then).
func (d *diskFull) wait(gen uint64, flushed <-chan struct{}) error {
	for {
		d.mu.Lock()
		now, ch := d.gen, d.ch
		d.mu.Unlock()
		select {
		case <-flushed:
			return nil
		default:
		}
		if now != gen {
			return fmt.Errorf("flush: %w", d.err())
		}
		select {
		case <-flushed:
			return nil
		case <-ch:
		}
	}
}

// backgroundError is Pebble's EventListener.BackgroundError: a disk-full
// error is logged once, then at most every fullLogEvery with the count.
func (d *diskFull) backgroundError(err error) {
	if !vfs.IsNoSpaceError(err) {
		d.logger.Error(fmt.Sprintf("background error: %s", err), "component", "pebble")
		return
	}
	d.mu.Lock()
	d.unseen++
	now := time.Now()
	if !d.logged.IsZero() && now.Sub(d.logged) < fullLogEvery {
		d.mu.Unlock()
		return
	}
	n := d.unseen
	d.logged, d.unseen = now, 0
	d.mu.Unlock()
	d.logger.Error("disk full: Pebble's flushes and compactions fail until space is freed; retried every second",
		"component", "pebble", "err", err.Error(), "failures_since_last_line", n)
}
