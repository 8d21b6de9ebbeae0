package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/myelindb/myelin/internal/invariants"
)

// ApplyDeleteTenant applies log entry index as the deletion of tenant
// from the group: every key of its id (one DeleteRange over
// [g][t], [g][t+1)) and its name key, and its head. Its id is not
// reused: a tenant of the same name written afterwards is a new tenant
// with a new id. Like ApplyDelete it is a checkpoint barrier, ignores an
// index at or below the applied index and returns only I/O failures; an
// unknown tenant deletes nothing.
//
// A replay (index at or below the stored applied index) changes nothing:
// OpenGroup loaded the tenants from their name keys as of the stored
// index, after this entry, so the deleted tenant is not in memory, and a
// tenant of the same name there is one created after the deletion, which
// must stay.
func (g *Group) ApplyDeleteTenant(index uint64, tenant string) error {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	if g.db.closed() {
		return ErrClosed
	}
	g.mu.Lock()
	if err := g.mu.failed; err != nil {
		g.mu.Unlock()
		return err
	}
	if index <= g.mu.applied {
		g.mu.Unlock()
		return nil
	}
	replay := index <= g.mu.stored
	stored := max(g.mu.stored, index)
	t := g.mu.tenants[tenant]
	g.mu.Unlock()
	if !replay && t != nil { // an unknown tenant: nothing to delete, no barrier
		if err := g.checkpointLocked(); err != nil {
			return g.fail(fmt.Errorf("apply tenant deletion %d: checkpoint before it: %w", index, err))
		}
	}

	pb := g.db.pdb.NewBatch()
	defer pb.Close()
	if t != nil && !replay {
		lo := appendPrefix(nil, g.id, t.ks.tenant, 0)[:8]
		hi := appendPrefix(nil, g.id, t.ks.tenant+1, 0)[:8]
		if err := pb.DeleteRange(lo, hi, nil); err != nil {
			return g.fail(err)
		}
		if err := pb.Delete(tenantNameKey(nil, g.id, tenant), nil); err != nil {
			return g.fail(err)
		}
	}
	if err := pb.Set(groupKey(nil, g.id, kindApplied), binary.BigEndian.AppendUint64(nil, stored), nil); err != nil {
		return g.fail(err)
	}
	if err := pb.Commit(pebble.NoSync); err != nil {
		return g.fail(fmt.Errorf("commit tenant deletion %d: %w", index, err))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if invariants.Enabled && (index <= g.mu.applied || stored < g.mu.stored) {
		panic(fmt.Sprintf("BUG: group %d: tenant deletion %d applied after %d, stored index %d after %d", g.id, index, g.mu.applied, stored, g.mu.stored))
	}
	if t != nil && !replay {
		delete(g.mu.tenants, tenant)
	}
	g.mu.applied, g.mu.stored = index, stored
	return nil
}
