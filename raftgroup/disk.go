package raftgroup

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrDiskFull: the disk that holds the node's data is full, or below its
// free-space minimum, so writes are refused until space comes back. The
// error is a *DiskFullError saying how much is free. Nothing was
// proposed: retry later.
var ErrDiskFull = errors.New("raftgroup: disk full")

// DiskFullError is ErrDiskFull with its reason: the free space under the
// minimum, or a write that found the disk full (Cause, e.g. ENOSPC).
type DiskFullError struct {
	Dir          string
	FreeBytes    uint64 // at the last check
	MinFreeBytes uint64
	ResumeBytes  uint64 // writes resume once this much is free
	Setting      string // what sets MinFreeBytes, e.g. a flag name; may be empty
	Cause        error  // the write error, nil when the minimum refused
}

func (e *DiskFullError) Error() string {
	setting := ""
	if e.Setting != "" {
		setting = " (" + e.Setting + ")"
	}
	if e.Cause != nil {
		return fmt.Sprintf("raftgroup: disk full: writes refused: a write in %s failed: %v; %s free, writes resume above %s",
			e.Dir, e.Cause, formatBytes(e.FreeBytes), formatBytes(e.ResumeBytes))
	}
	return fmt.Sprintf("raftgroup: disk full: writes refused: %s has %s free, under the minimum of %s%s; writes resume above %s",
		e.Dir, formatBytes(e.FreeBytes), formatBytes(e.MinFreeBytes), setting, formatBytes(e.ResumeBytes))
}

func (e *DiskFullError) Is(target error) bool { return target == ErrDiskFull }
func (e *DiskFullError) Unwrap() error        { return e.Cause }

// IsDiskFull reports whether err is a file system's "no space" error
// (ENOSPC, or EDQUOT: the user's quota is used up).
func IsDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func formatBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// DiskGuardOptions configure a DiskGuard.
type DiskGuardOptions struct {
	// Dirs are the directories of the node's data; the one whose file
	// system has the least free space counts. Required.
	Dirs []string
	// MinFreeBytes: refuse writes while less than this is free. Zero
	// refuses only after a write found the disk full.
	MinFreeBytes uint64
	// Interval: how often free space is read (statfs, a few
	// microseconds). Zero means 1s. MinFreeBytes must cover what the
	// node writes in an interval besides a flush of its memtables.
	Interval time.Duration
	// ReminderEvery: while writes are refused, log a reminder this often
	// (the first line is logged when refusing starts). Zero means 5m.
	ReminderEvery time.Duration
	// Setting names what sets MinFreeBytes (a flag) in messages.
	Setting string
	// FreeBytes returns the bytes available in dir's file system; nil
	// means statfs. Tests pass their own.
	FreeBytes func(dir string) (uint64, error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives one line when writes start being refused, a
	// reminder every ReminderEvery, and one when they resume. Nil means
	// discard.
	Logger *slog.Logger
	// Registerer receives myelin_disk_free_bytes and
	// myelin_disk_writes_refused; nil means none.
	Registerer prometheus.Registerer
}

// resumeMargin is how far above the minimum free space must be before
// writes resume, so that a disk at the limit does not flap between
// refusing and accepting every check (and log each flap): a tenth of the
// minimum, and at least 16 MiB, two data-group log segments.
func resumeMargin(minFree uint64) uint64 { return max(minFree/10, 16<<20) }

// refuseWrites is the guard's decision: whether writes are refused with
// free bytes free, given whether they were refused before and whether a
// write met a full disk since. Below the minimum they are; once refused
// (or after a failed write) they stay refused until free reaches the
// minimum plus resumeMargin.
func refuseWrites(refusing, sawFull bool, free, minFree uint64) bool {
	if free < minFree {
		return true
	}
	if refusing || sawFull {
		return free < minFree+resumeMargin(minFree)
	}
	return false
}

// DiskGuard watches the free space of the node's data directories and
// says when writes must be refused: while less than MinFreeBytes is
// free (the watermark, so that checkpoints, compactions and the log's
// next segment still fit), and after a write failed with ENOSPC until
// enough space is back. Propose checks it (Options.Disk) before an entry
// reaches the log; the log stores and the engine report their ENOSPC
// errors to it (Report). Its goroutine reads the free space every
// Interval; Err is an atomic load.
//
// Locking: mu guards the state the check loop and Report share; err is
// the published decision.
type DiskGuard struct {
	opts DiskGuardOptions // immutable
	err  atomic.Pointer[DiskFullError]
	mu   struct {
		sync.Mutex
		free      uint64
		dir       string
		sawFull   error // a write met a full disk since writes were last allowed
		sawFullAt time.Time
		since     time.Time // refusing since
		reminded  time.Time
		changed   chan struct{} // closed and replaced when Err changes
	}
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	metrics   []prometheus.Collector
}

// NewDiskGuard reads the free space once and starts the guard's
// goroutine; Close stops it.
func NewDiskGuard(opts DiskGuardOptions) (*DiskGuard, error) {
	if len(opts.Dirs) == 0 {
		return nil, errors.New("disk guard: no directories")
	}
	if opts.Interval < 0 || opts.ReminderEvery < 0 {
		return nil, errors.New("disk guard: Interval and ReminderEvery must not be negative")
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	if opts.ReminderEvery == 0 {
		opts.ReminderEvery = 5 * time.Minute
	}
	if opts.FreeBytes == nil {
		opts.FreeBytes = statfsFree
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &DiskGuard{opts: opts, done: make(chan struct{})}
	d.mu.changed = make(chan struct{})
	if err := d.Refresh(); err != nil {
		return nil, err
	}
	if opts.Registerer != nil {
		d.metrics = []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "myelin_disk_free_bytes",
				Help: "Bytes available to the node in the file system of its data directory (the least of its directories), at the last check.",
			}, func() float64 {
				d.mu.Lock()
				defer d.mu.Unlock()
				return float64(d.mu.free)
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "myelin_disk_writes_refused",
				Help: "1 while writes are refused because the disk is full or under its free-space minimum.",
			}, func() float64 {
				if d.err.Load() != nil {
					return 1
				}
				return 0
			}),
		}
		for _, c := range d.metrics {
			if err := opts.Registerer.Register(c); err != nil {
				d.unregister()
				return nil, fmt.Errorf("disk guard: register metrics: %w", err)
			}
		}
	}
	d.wg.Go(d.loop)
	return d, nil
}

func (d *DiskGuard) unregister() {
	for _, c := range d.metrics {
		d.opts.Registerer.Unregister(c)
	}
}

// Err returns nil while writes are allowed, else a *DiskFullError
// (ErrDiskFull). Safe for concurrent use; an atomic load. A nil guard
// allows everything.
func (d *DiskGuard) Err() error {
	if d == nil {
		return nil
	}
	if e := d.err.Load(); e != nil {
		return e
	}
	return nil
}

// FullErr is Err, but only when a write found the disk full (not merely
// under the minimum): what the metadata group, whose few small entries
// the cluster needs, refuses on.
func (d *DiskGuard) FullErr() error {
	if d == nil {
		return nil
	}
	if e := d.err.Load(); e != nil && e.Cause != nil {
		return e
	}
	return nil
}

// Free returns the free bytes at the last reading (the least of Dirs).
func (d *DiskGuard) Free() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mu.free
}

// Changed returns a channel closed at the next change of Err.
func (d *DiskGuard) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mu.changed
}

// Report tells the guard a write failed with err; if it is a disk-full
// error (IsDiskFull), writes are refused at once and until free space
// is back above the minimum plus a margin. Safe on a nil guard.
func (d *DiskGuard) Report(err error) {
	if d == nil || !IsDiskFull(err) {
		return
	}
	d.mu.Lock()
	first := d.mu.sawFull == nil
	d.mu.sawFull, d.mu.sawFullAt = err, d.opts.Now()
	d.mu.Unlock()
	if first {
		d.decide(nil) // publish at once
	}
}

// Refresh reads the free space now and updates Err. The loop calls it
// every Interval; tests call it to skip the wait.
func (d *DiskGuard) Refresh() error {
	var (
		least   uint64
		leastAt string
		errs    []error
	)
	for _, dir := range d.opts.Dirs {
		free, err := d.opts.FreeBytes(dir)
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			free = math.MaxUint64 // unknown: only failed writes refuse
		case err != nil:
			errs = append(errs, fmt.Errorf("free space of %s: %w", dir, err))
			continue
		}
		if leastAt == "" || free < least {
			least, leastAt = free, dir
		}
	}
	if leastAt == "" {
		return errors.Join(errs...)
	}
	d.decide(&reading{free: least, dir: leastAt})
	return errors.Join(errs...)
}

type reading struct {
	free uint64
	dir  string
}

// decide updates the state with a new reading (nil: none, a Report) and
// publishes the decision, logging the transitions.
func (d *DiskGuard) decide(r *reading) {
	now := d.opts.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if r != nil {
		d.mu.free, d.mu.dir = r.free, r.dir
	}
	prev := d.err.Load()
	minFree := d.opts.MinFreeBytes
	refuse := refuseWrites(prev != nil, d.mu.sawFull != nil, d.mu.free, minFree)
	if d.mu.sawFull != nil && now.Sub(d.mu.sawFullAt) < d.opts.Interval {
		// A write just failed: refuse at least until a reading taken an
		// interval later, so that a disk that frees a little and fills
		// again at once (a quota, another writer) does not flap.
		refuse = true
	}
	if !refuse {
		d.mu.sawFull = nil
		if prev != nil {
			d.err.Store(nil)
			d.opts.Logger.Info("disk space is back: accepting writes again",
				"dir", d.mu.dir, "free", formatBytes(d.mu.free), "refused_for", now.Sub(d.mu.since).Round(time.Second))
			d.changedLocked()
		}
		return
	}
	e := &DiskFullError{Dir: d.mu.dir, FreeBytes: d.mu.free, MinFreeBytes: minFree,
		ResumeBytes: minFree + resumeMargin(minFree), Setting: d.opts.Setting, Cause: d.mu.sawFull}
	d.err.Store(e)
	switch {
	case prev == nil:
		d.mu.since, d.mu.reminded = now, now
		d.opts.Logger.Error("disk full: refusing writes until space is freed (reads go on)", "reason", e.Error())
		d.changedLocked()
	case (prev.Cause == nil) != (e.Cause == nil):
		d.changedLocked()
	case now.Sub(d.mu.reminded) >= d.opts.ReminderEvery:
		d.mu.reminded = now
		d.opts.Logger.Error("disk still full: refusing writes", "for", now.Sub(d.mu.since).Round(time.Second), "reason", e.Error())
	}
}

func (d *DiskGuard) changedLocked() {
	close(d.mu.changed)
	d.mu.changed = make(chan struct{})
}

func (d *DiskGuard) loop() {
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-t.C:
		}
		if err := d.Refresh(); err != nil {
			d.opts.Logger.Warn("read free disk space", "err", err)
		}
	}
}

// Close stops the guard's goroutine and unregisters its metrics.
// Idempotent; Err keeps its last value.
func (d *DiskGuard) Close() {
	d.closeOnce.Do(func() {
		close(d.done)
		d.wg.Wait()
		if d.opts.Registerer != nil {
			d.unregister()
		}
	})
}
