package engine

import (
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// TenantStats describes one tenant of a group.
type TenantStats struct {
	Tenant     string
	HeadSeries int   // series with an open chunk in memory
	MaxTime    int64 // newest accepted sample time (ms)
}

// Stats returns per-tenant statistics of the group, sorted by tenant. It
// takes each tenant's read lock briefly.
func (g *Group) Stats() []TenantStats {
	g.mu.Lock()
	ts := make([]*tenant, 0, len(g.mu.tenants))
	for _, t := range g.mu.tenants {
		ts = append(ts, t)
	}
	g.mu.Unlock()
	out := make([]TenantStats, 0, len(ts))
	for _, t := range ts {
		t.mu.RLock()
		out = append(out, TenantStats{Tenant: t.name, HeadSeries: t.mu.numSeries, MaxTime: t.mu.maxT})
		t.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b TenantStats) int { return strings.Compare(a.Tenant, b.Tenant) })
	return out
}

// PebbleMetrics returns the metrics of the node's Pebble store (sizes,
// compactions, caches) for self-monitoring.
func (db *DB) PebbleMetrics() *pebble.Metrics { return db.pdb.Metrics() }
