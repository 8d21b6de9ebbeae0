package raftgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// ErrLogFailed: a write to the replica's Raft log failed for another
// reason than a full disk (an I/O error). The replica refuses writes
// until the log is reopened, which it retries by itself.
var ErrLogFailed = errors.New("raftgroup: log write failed")

// walStore is the replica's Raft log and stable store on
// hashicorp/raft-wal (LogStoreWAL), hardened against a full disk (see
// "Disk full" in doc.go):
//
//   - Its file system (walFS) keeps one preallocated spare segment, so
//     raft-wal's segment rotation, which cannot be retried once it
//     failed, takes the spare instead of allocating on a full disk; when
//     the spare cannot be made again, writes() refuses new proposals
//     while the current segment still has room for the ones in flight.
//   - A write that fails anyway leaves raft-wal's writer unusable (its
//     tail stays sealed, or its in-memory index runs ahead of the file).
//     The store then fails every append and truncation at once (so raft
//     does not spin on a dead writer, and a truncation does not commit
//     raft-wal's stale in-memory state over its metadata), and its
//     goroutine reopens the log once the disk has room: a new raft-wal
//     on the same files and metadata, opened while the old one still
//     serves reads, then swapped in. Entries the failed append may have
//     left in the file are removed (raft was told they were not stored),
//     so nothing acknowledged is lost and nothing unacknowledged appears.
//
// Locking: wmu serializes the writes (StoreLogs, DeleteRange) and the
// reopen; mu is read-locked by every call and write-locked to swap w.
// broken is set under wmu and read without it.
type walStore struct {
	dir    string
	segB   int
	disk   *DiskGuard
	logger hclog.Logger
	fs     *walFS
	meta   *metadb.BoltMetaDB // shared by every raft-wal opened on dir; closed by Close
	retry  time.Duration

	wmu      sync.Mutex
	lastGood uint64 // guarded by wmu: the last index a write left in the log
	mu       sync.RWMutex
	w        *raftwal.WAL // guarded by mu (and wmu to write)
	broken   atomic.Pointer[error]
	// failures counts failed writes; lastFailure is the last one's
	// error, kept after a reopen (Propose names it).
	failures    atomic.Uint64
	lastFailure atomic.Pointer[error]
	logged      logLimiter // guarded by wmu

	kick      chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var (
	_ raft.LogStore          = (*walStore)(nil)
	_ raft.StableStore       = (*walStore)(nil)
	_ raft.MonotonicLogStore = (*walStore)(nil)
)

// walRetry is how often a broken log tries to reopen and a missing
// spare segment is made again, besides every change of the disk guard.
const walRetry = time.Second

func openWALStore(opts Options, logger hclog.Logger) (*walStore, error) {
	dir := filepath.Join(opts.Dir, "wal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	base := opts.walVFS
	if base == nil {
		base = walfs.New()
	}
	s := &walStore{
		dir: dir, segB: opts.WALSegmentBytes, disk: opts.Disk, logger: logger.Named("wal"),
		meta: &metadb.BoltMetaDB{}, retry: walRetry,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if opts.walRetry > 0 {
		s.retry = opts.walRetry
	}
	s.fs = newWALFS(base, dir, uint64(opts.WALSegmentBytes), opts.Disk.Report, s.poke)
	// The spare first: raft-wal's Open may need a segment (a new log, or
	// a tail whose file a failed rotation never made).
	s.fs.ensureSpare()
	w, err := s.open()
	if err != nil {
		// raftwal.WAL.Close leaves its meta store open (and its flock
		// held): the store owns and closes it.
		return nil, errors.Join(fmt.Errorf("wal: %w", err), s.meta.Close())
	}
	s.w = w
	s.lastGood, _ = w.LastIndex()
	s.wg.Go(s.loop)
	return s, nil
}

func (s *walStore) open() (*raftwal.WAL, error) {
	return raftwal.Open(s.dir,
		raftwal.WithMetaStore(s.meta),
		raftwal.WithSegmentSize(s.segB),
		raftwal.WithSegmentFiler(segment.NewFiler(s.dir, s.fs)),
		raftwal.WithLogger(s.logger))
}

// writes returns nil if a proposal may be appended now: the log is not
// broken and its next segment is ready (or the disk has room for it).
func (s *walStore) writes() error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	if err := s.fs.spareErr(); err != nil {
		return fmt.Errorf("raft log %s: no room for its next segment: %w: %w", s.dir, ErrDiskFull, err)
	}
	return nil
}

// isBroken reports whether a write failed and the log awaits a reopen.
func (s *walStore) isBroken() bool { return s.broken.Load() != nil }

func (s *walStore) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// breakLocked records a failed write; the caller holds wmu.
func (s *walStore) breakLocked(op string, err error) error {
	cause := err
	if full := s.fs.lastFull(); errors.Is(err, raftwal.ErrSealed) && full != nil {
		// The rotation that sealed the tail failed in raft-wal's
		// goroutine; walFS saw why.
		cause = fmt.Errorf("%w (segment rotation: %w)", err, full)
	}
	var e error
	if IsDiskFull(cause) {
		s.disk.Report(cause)
		e = fmt.Errorf("raft log %s: %s: %w: %w", s.dir, op, ErrDiskFull, cause)
	} else {
		e = fmt.Errorf("raft log %s: %s: %w: %w", s.dir, op, ErrLogFailed, cause)
	}
	s.lastFailure.Store(&e)
	s.failures.Add(1)
	if s.broken.CompareAndSwap(nil, &e) {
		if n, ok := s.logged.allow(time.Now()); ok {
			s.logger.Error("raft log write failed: refusing writes until the log reopens (retried every second once the disk has room)",
				"error", e, "failures_since_last_line", n)
		}
	}
	s.poke()
	return e
}

// failed returns the number of failed writes so far and the last one's
// error.
func (s *walStore) failed() (uint64, error) {
	n := s.failures.Load()
	if p := s.lastFailure.Load(); p != nil {
		return n, *p
	}
	return n, nil
}

// logLimiter allows a log line at the first event and then at most once
// per logEvery, counting the events in between.
type logLimiter struct {
	last   time.Time
	events int
}

// logEvery is the least time between two lines about the same
// recurring failure.
const logEvery = 5 * time.Minute

func (l *logLimiter) allow(now time.Time) (events int, ok bool) {
	l.events++
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		return 0, false
	}
	events, l.events, l.last = l.events, 0, now
	return events, true
}

// StoreLogs implements raft.LogStore.
func (s *walStore) StoreLogs(logs []*raft.Log) error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if p := s.broken.Load(); p != nil {
		return *p
	}
	if err := s.w.StoreLogs(logs); err != nil {
		return s.breakLocked("append", err)
	}
	if len(logs) > 0 {
		s.lastGood = logs[len(logs)-1].Index
	}
	return nil
}

// StoreLog implements raft.LogStore.
func (s *walStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// DeleteRange implements raft.LogStore. On a broken log it fails: the
// old raft-wal's in-memory state may disagree with its metadata after a
// failed rotation, and a truncation would commit that state. Raft
// truncates again after its next snapshot.
func (s *walStore) DeleteRange(lo, hi uint64) error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if p := s.broken.Load(); p != nil {
		return *p
	}
	if err := s.w.DeleteRange(lo, hi); err != nil {
		return s.breakLocked(fmt.Sprintf("delete %d..%d", lo, hi), err)
	}
	s.lastGood, _ = s.w.LastIndex()
	return nil
}

// FirstIndex implements raft.LogStore.
func (s *walStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.FirstIndex()
}

// LastIndex implements raft.LogStore.
func (s *walStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.LastIndex()
}

// GetLog implements raft.LogStore.
func (s *walStore) GetLog(index uint64, l *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.GetLog(index, l)
}

// IsMonotonic implements raft.MonotonicLogStore.
func (s *walStore) IsMonotonic() bool { return true }

// Set, Get, SetUint64 and GetUint64 implement raft.StableStore on the
// meta store, which every raft-wal of the store shares.
func (s *walStore) Set(key, val []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	err := s.w.Set(key, val)
	s.disk.Report(err)
	return err
}

func (s *walStore) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.Get(key)
}

func (s *walStore) SetUint64(key []byte, val uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	err := s.w.SetUint64(key, val)
	s.disk.Report(err)
	return err
}

func (s *walStore) GetUint64(key []byte) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.GetUint64(key)
}

// loop makes the spare segment again when it was used or could not be
// made, and reopens a broken log, at every kick, every change of the
// disk guard and every retry interval.
func (s *walStore) loop() {
	t := time.NewTicker(s.retry)
	defer t.Stop()
	for {
		var changed <-chan struct{}
		if s.disk != nil {
			changed = s.disk.Changed()
		}
		select {
		case <-s.done:
			return
		case <-s.kick:
		case <-t.C:
		case <-changed:
		}
		s.fs.ensureSpare()
		s.reopen()
	}
}

// reopen replaces a broken raft-wal with a new one on the same files,
// once the disk guard allows writes. The old one serves reads until the
// swap.
func (s *walStore) reopen() {
	if !s.isBroken() || s.disk.Err() != nil {
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	w, err := s.open()
	if err != nil {
		s.disk.Report(err)
		s.logger.Debug("reopen raft log", "error", err)
		return
	}
	// Entries after the last successful write were refused to raft; a
	// failed append may still have left them in the file.
	if last, err := w.LastIndex(); err == nil && s.lastGood > 0 && last > s.lastGood {
		if err := w.DeleteRange(s.lastGood+1, last); err != nil {
			s.logger.Debug("reopen raft log: remove entries of the failed append", "error", err)
			w.Close()
			return
		}
	}
	s.mu.Lock()
	old := s.w
	s.w = w
	s.mu.Unlock()
	if err := old.Close(); err != nil {
		s.logger.Warn("close the failed raft log", "error", err)
	}
	s.broken.Store(nil)
	s.logger.Info("raft log reopened: accepting writes again")
}

// Close stops the goroutine and closes the log and its meta store.
// Idempotent.
func (s *walStore) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.wg.Wait()
		s.wmu.Lock()
		defer s.wmu.Unlock()
		s.closeErr = errors.Join(s.w.Close(), s.meta.Close())
	})
	return s.closeErr
}

// spareName is the spare segment's file in the log directory; raft-wal
// lists only its own "*.wal" files.
const spareName = "spare-segment"

// walFS is raft-wal's file system (types.VFS over base) with a spare
// segment: a file preallocated ahead of time that Create renames into
// place, so a segment rotation does not allocate. Segments are
// preallocated a quarter larger than raft-wal asks: the append that
// seals a segment writes past its size (by one group commit, up to 2 MiB
// of entries at 8 MiB segments), and on a full disk that write must not
// be the one that allocates. If there is no spare
// and preallocation fails for lack of space, Create makes the segment
// without preallocation (raft-wal supports that; its writes then grow
// the file), so the rotation, which raft-wal never retries, succeeds.
// Disk-full errors go to report.
//
// Locking: mu guards the spare's state.
type walFS struct {
	base   types.VFS
	dir    string
	size   uint64 // of a segment
	report func(error)
	used   func() // the spare was used: make another
	full   atomic.Pointer[error]
	mu     struct {
		sync.Mutex
		spare    bool  // dir/spareName is a whole segment
		spareErr error // why the last attempt to make it failed
	}
}

var _ types.VFS = (*walFS)(nil)

func newWALFS(base types.VFS, dir string, size uint64, report func(error), used func()) *walFS {
	f := &walFS{base: base, dir: dir, size: size, report: report, used: used}
	// A spare of the right size left by the last run is kept; another
	// (a crash while making it, a new segment size) is remade.
	if st, err := os.Stat(filepath.Join(dir, spareName)); err == nil && uint64(st.Size()) == allocBytes(size) {
		f.mu.spare = true
	} else if err == nil {
		os.Remove(filepath.Join(dir, spareName))
	}
	return f
}

// ensureSpare makes the spare segment if there is none.
func (f *walFS) ensureSpare() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.spare {
		return
	}
	wf, err := f.base.Create(f.dir, spareName, allocBytes(f.size))
	if err == nil {
		err = wf.Close()
	}
	if err != nil {
		if !errors.Is(err, os.ErrExist) {
			os.Remove(filepath.Join(f.dir, spareName))
		}
		err = fmt.Errorf("raft log: preallocate the spare segment in %s: %w", f.dir, err)
		f.mu.spareErr = err
		f.report(err)
		return
	}
	f.mu.spare, f.mu.spareErr = true, nil
}

// spareErr returns why the spare segment is missing, if a disk-full
// error is the reason.
func (f *walFS) spareErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.spare || !IsDiskFull(f.mu.spareErr) {
		return nil
	}
	return f.mu.spareErr
}

// lastFull returns the last disk-full error a segment creation met.
func (f *walFS) lastFull() error {
	if p := f.full.Load(); p != nil {
		return *p
	}
	return nil
}

// takeSpare renames the spare segment to name; false if there is none.
func (f *walFS) takeSpare(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.mu.spare {
		return false
	}
	target := filepath.Join(f.dir, name)
	if _, err := os.Lstat(target); err == nil {
		return false // Create must fail as with O_EXCL: let base say so
	}
	f.mu.spare = false
	if err := os.Rename(filepath.Join(f.dir, spareName), target); err != nil {
		os.Remove(filepath.Join(f.dir, spareName))
		return false
	}
	return true
}

// Create implements types.VFS.
func (f *walFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	if dir == f.dir && size == f.size && f.takeSpare(name) {
		f.used()
		wf, err := f.base.OpenWriter(dir, name)
		if err != nil {
			return nil, err
		}
		// The rename must be durable before the first entry in the file
		// is: sync the directory with the file's first Sync, as
		// raft-wal's own files do.
		return &renamedFile{WritableFile: wf, dir: dir}, nil
	}
	wf, err := f.base.Create(dir, name, allocBytes(size))
	if err == nil || errors.Is(err, os.ErrExist) {
		return wf, err
	}
	// A failed preallocation leaves the file behind.
	if rerr := os.Remove(filepath.Join(dir, name)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return nil, errors.Join(err, rerr)
	}
	if !IsDiskFull(err) || size == 0 {
		return nil, err
	}
	err = fmt.Errorf("raft log: preallocate segment %s: %w", filepath.Join(dir, name), err)
	f.full.Store(&err)
	f.report(err)
	// No room for a preallocated segment: make it without, so the
	// rotation succeeds; proposals are refused now, and the entries in
	// flight grow the file as far as the disk allows.
	wf, err2 := f.base.Create(dir, name, 0)
	if err2 != nil {
		os.Remove(filepath.Join(dir, name))
		return nil, errors.Join(err, err2)
	}
	return wf, nil
}

// allocBytes is the preallocation of a segment of size bytes.
func allocBytes(size uint64) uint64 { return size + size/4 }

func (f *walFS) ListDir(dir string) ([]string, error) { return f.base.ListDir(dir) }
func (f *walFS) Delete(dir, name string) error        { return f.base.Delete(dir, name) }
func (f *walFS) OpenReader(dir, name string) (types.ReadableFile, error) {
	return f.base.OpenReader(dir, name)
}
func (f *walFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	return f.base.OpenWriter(dir, name)
}

// renamedFile syncs its directory at its first Sync.
type renamedFile struct {
	types.WritableFile
	dir    string
	synced atomic.Bool
}

func (f *renamedFile) Sync() error {
	if err := f.WritableFile.Sync(); err != nil {
		return err
	}
	if f.synced.Swap(true) {
		return nil
	}
	d, err := os.Open(f.dir)
	if err != nil {
		f.synced.Store(false)
		return err
	}
	err = errors.Join(d.Sync(), d.Close())
	if err != nil {
		f.synced.Store(false)
	}
	return err
}
