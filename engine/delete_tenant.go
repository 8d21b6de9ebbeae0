package engine

import (
	"fmt"
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
	e, ok, err := g.beginControl(index, tenant)
	if !ok {
		return err
	}
	replay, t := e.replay, e.t
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
	return g.commitControl(pb, e, "tenant deletion", func() {
		if t != nil && !replay {
			delete(g.mu.tenants, tenant)
		}
	})
}
