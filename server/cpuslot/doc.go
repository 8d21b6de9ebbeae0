// Package cpuslot shares a node's cores fairly between tenants' queries:
// a query's CPU work (its PromQL evaluation and storage reads in the
// query API, the query frontend's decoding, joining and encoding of
// answers) runs only while it holds one of a Scheduler's slots, as many
// as the cores by default, and a holder gives its slot up at cheap
// checkpoints when a query of a tenant that used less CPU lately waits
// for one. Go's scheduler has no priorities and preempts a goroutine
// only every 10 ms, so without slots a light query shares the cores
// with every runnable heavy one; with them, the runnable queries are at
// most as many as the slots, and a light query waits for one holder's
// next checkpoint (tens of microseconds of work), not for a heavy
// query to end. docs/design.md ("CPU slots", issue 17) has the numbers.
//
// It imports nothing of the module: the query frontend owns a Scheduler,
// the query API's storage side only calls Checkpoint with the slot its
// request's context carries.
//
// # Protocol
//
//  1. Acquire(ctx, tenant) waits for a slot (ctx ending: it leaves the
//     queue and returns ctx's error) and returns the Slot and a context
//     that carries it (FromContext). Under a context whose slot is held
//     (not paused), Acquire returns a nested Slot whose methods do
//     nothing: the work runs under the parent's slot, so a holder that
//     starts sub-work in its own goroutine cannot deadlock on it.
//  2. The holder calls Checkpoint every few thousand samples (or per
//     series, per answer): when another tenant with less recent CPU use
//     waits, Checkpoint gives the slot up and waits for it again in fair
//     order; it returns ctx's error if the context ends meanwhile (the
//     slot is then not held, and the holder should stop).
//  3. A holder that waits for sub-queries which need slots of their own
//     (a sharded query's shards) calls Pause first and Resume after, so
//     it holds no slot while it waits.
//  4. Release gives the slot back (idempotent, also after a failed
//     Checkpoint or Resume).
//
// # Fair order
//
// Each tenant's use is the time its holders held slots, decayed with a
// half-life (Options.HalfLife, 1s): recent use counts, old use fades.
// A free slot goes to the waiting tenant with the least use, FIFO
// within a tenant (a holder that gave its slot up waits first in its
// tenant's line, so work in progress ends before new work starts). A
// holder yields at a checkpoint when a waiting tenant's use is lower
// than its own tenant's by more than Options.Quantum (5ms), so two heavy
// tenants hand slots over every few milliseconds, not at every
// checkpoint. A holder that keeps its slot lets the goroutines readied
// on its core run first (runtime.Gosched) if its tenant is busy: it used
// at least the quantum lately and is not the lightest tenant known. The
// lightest keeps its core: Gosched would queue it behind heavier work
// and the garbage collector's.
//
// Slot time stands for CPU time: with no more slots than cores, a
// holder runs unless it blocks (a disk read), which is short beside the
// half-life.
//
// # Concurrency
//
// A Scheduler is safe for concurrent use. A Slot belongs to the
// goroutine that acquired it: only that goroutine calls its methods.
package cpuslot
