package main

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// memoryReturnInterval: at most one return of memory this often, and
// memoryReturnShare: the wait after a return is at least this many times
// what it took, so that returns cost at most ~1 % of the time (the
// budget of Go's own scavenger). A return is two garbage collections and
// the release of the free heap, in proportion to the live heap (~37 MB
// after make bench's load of 50,000 series, ~670 MB at a million): with
// a large heap, a sender that pauses between bursts would otherwise cost
// a return every 5 s. Groups of one node go quiet within a few seconds
// of each other when a load stops; their requests coalesce into one or
// two returns.
const (
	memoryReturnInterval = 5 * time.Second
	memoryReturnShare    = 100
)

// memoryReturner gives the heap that a burst of writes used back to the
// operating system once the burst is over: when a Raft group has
// checkpointed after its writes stopped (raftgroup.Options.Quiesced).
//
// Why: the Go collector sizes the heap to GOGC percent above the live
// heap of its last cycle, and the burst's last cycles saw its transients
// live (requests being decoded and applied, entries in flight, a
// checkpoint's batch of every open chunk: at 50,000 series ~18 MiB, at
// a million ~370 MB). Once the writes stop, nothing allocates, so no
// cycle runs to lower that goal until the runtime forces one (every 2
// minutes), and the background scavenger returns the free heap above it
// at its own pace (~1 % of a core): make bench's node kept ~50 MiB of
// free heap resident for a minute after its load (docs/design.md "Memory
// per series"). A node that ingests steadily never goes quiet and never
// pays for a return; one that takes bursts (a backfill, a sender catching
// up after an outage, the replay after a restart) gets its memory back
// seconds after each instead of minutes.
//
// Rejected: a soft memory limit (GOMEMLIMIT), see server's
// memoryReleaser; returning after every checkpoint, which during a load
// returns pages that the next seconds fault in again.
type memoryReturner struct {
	interval time.Duration
	free     func()
	due      chan struct{} // one slot: a return is pending
	done     chan struct{} // closed by close
	wg       sync.WaitGroup
	once     sync.Once
}

// newMemoryReturner starts the returner's goroutine; close stops it.
func newMemoryReturner(interval time.Duration, free func()) *memoryReturner {
	m := &memoryReturner{interval: interval, free: free, due: make(chan struct{}, 1), done: make(chan struct{})}
	m.wg.Add(1)
	go m.run()
	return m
}

// quiesced asks for a return: now if none ran in the last interval (or
// memoryReturnShare times the last return's duration, if longer), else
// once it has passed. It never blocks.
func (m *memoryReturner) quiesced() {
	select {
	case m.due <- struct{}{}:
	default: // one is pending already
	}
}

func (m *memoryReturner) run() {
	defer m.wg.Done()
	for {
		select {
		case <-m.done:
			return
		case <-m.due:
		}
		start := time.Now()
		m.free()
		t := time.NewTimer(max(m.interval, memoryReturnShare*time.Since(start)))
		select {
		case <-m.done:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// close stops the returner and waits for a return in progress. It is
// idempotent.
func (m *memoryReturner) close() {
	m.once.Do(func() { close(m.done) })
	m.wg.Wait()
}

// returnMemory collects the garbage and returns the free heap to the
// operating system. Two collections: sync.Pools (the write path's
// decoders and buffers) keep what they hold through one, as their victim
// cache.
func returnMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}
