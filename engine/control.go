package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/myelindb/myelin/internal/invariants"
)

// A control entry (a series or tenant deletion, a retention step) is
// applied as one Pebble batch that also records the applied index, after
// the same checks as a write batch: beginControl and commitControl are
// that frame, the entry's own work goes between them.

// controlEntry is a control entry's place in the group's log.
type controlEntry struct {
	index uint64
	// stored is the stored applied index once the entry is applied: the
	// entry's, or a later one when it is replayed.
	stored uint64
	// replay: the store already holds the entry (index at or below the
	// stored applied index); only the head is to change.
	replay bool
	// t is the entry's tenant, nil if the group has none.
	t *tenant
}

// beginControl starts applying control entry index of tenant, with
// applyMu held. ok is false for an index already applied (nothing to
// do); err is ErrClosed or the group's failure.
func (g *Group) beginControl(index uint64, tenant string) (e controlEntry, ok bool, err error) {
	if g.db.closed() {
		return e, false, ErrClosed
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.mu.failed; err != nil {
		return e, false, err
	}
	if index <= g.mu.applied {
		return e, false, nil
	}
	e = controlEntry{index: index, stored: max(g.mu.stored, index), replay: index <= g.mu.stored, t: g.mu.tenants[tenant]}
	return e, true, nil
}

// commitControl records e as applied in pb, commits pb and then the
// group's applied and stored indexes; applied, if not nil, runs under
// g.mu just before (what the entry changes in the group's own state).
// what names the entry in errors. A failure fails the group.
func (g *Group) commitControl(pb *pebble.Batch, e controlEntry, what string, applied func()) error {
	if err := pb.Set(groupKey(nil, g.id, kindApplied), binary.BigEndian.AppendUint64(nil, e.stored), nil); err != nil {
		return g.fail(err)
	}
	if err := pb.Commit(pebble.NoSync); err != nil {
		return g.fail(fmt.Errorf("commit %s %d: %w", what, e.index, err))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if invariants.Enabled && (e.index <= g.mu.applied || e.stored < g.mu.stored) {
		panic(fmt.Sprintf("BUG: group %d: %s %d applied after %d, stored index %d after %d", g.id, what, e.index, g.mu.applied, e.stored, g.mu.stored))
	}
	if applied != nil {
		applied()
	}
	g.mu.applied, g.mu.stored = e.index, e.stored
	return nil
}
