// Package distributor splits a write batch by owning Raft group and
// proposes the parts in parallel. It is the thin layer between the
// remote-write handler (server.WriteHandler, through server.Writer) and
// the groups: it owns no state but the ring it is given, does no I/O of
// its own, and never interprets a group's answer beyond mapping refused
// series back. It must not import raftgroup or raftgroup/cluster (its
// Proposer, the cluster's Router, reaches the group leaders) nor the
// server package above it.
//
// # Placement
//
// Series i of a batch of tenant t belongs to group
// ring.Lookup(ring.Hash(t, Series[i].Labels)): the label bytes are in
// write's label set encoding, so no label is decoded on the way.
//
// # Series limits
//
// A tenant's global series limits (max_global_series_per_user and
// _per_metric, read per write from the Limits it is given) cannot be
// checked here: only a group knows whether a series is new to it. So each
// part's log entry carries them scaled to the part's group, GroupLimit(L,
// share of the ring's hash space), and the group's engine refuses the
// series that would pass them, the same way on every replica. The slack
// above the share, and how the count behaves over restarts and ring
// changes, are in docs/design.md "Limits".
//
// # Caller protocol
//
//  1. d := New(p, current, limits), where p proposes a log entry to one
//     group and returns its apply outcome, current returns the ring to
//     route with (the metadata's latest, or an error when it may be stale;
//     it may change between calls, never during one), and limits the
//     tenants' series limits (nil: none).
//  2. refused, err := d.Write(ctx, batch) from any number of goroutines.
//     Write splits the batch (one part per group, series in their original
//     order; a batch of one group goes as it is), encodes each part as a
//     log entry (write.Encoder), proposes them concurrently, waits for all
//     of them, and decodes each outcome (write.DecodeOutcome).
//  3. err == nil: every part was committed; refused holds the per-series
//     refusals of all parts, with Series the index in the original batch,
//     sorted. err != nil: at least one part was not (or not known to be)
//     committed; err wraps ErrIncomplete and every part's error (so
//     errors.Is finds, e.g., the cause the server maps to 503). The server
//     answers 5xx: the sender retries the whole request, and parts that
//     were committed accept their identical samples again (the engine's
//     apply is idempotent for identical samples).
//
// Siblings of a failed part are not cancelled: a proposal that was sent
// may commit anyway, so cancelling would not undo it, and the caller has
// to wait for every goroutine it started either way.
package distributor
