package engine

import (
	"context"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// TenantStats describes one tenant of a group.
type TenantStats struct {
	Tenant string
	// HeadSeries: series with samples in their open chunk in memory,
	// what the series limits count.
	HeadSeries int
	MaxTime    int64 // newest accepted sample time (ms)
	// RetentionPeriod is the tenant's retention from its last retention
	// step (write.Retain.Period, ms), 0 for none: the engine's own.
	RetentionPeriod int64
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
		out = append(out, TenantStats{Tenant: t.name, HeadSeries: t.mu.headSeries, MaxTime: t.mu.maxT, RetentionPeriod: t.mu.retainMs})
		t.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b TenantStats) int { return strings.Compare(a.Tenant, b.Tenant) })
	return out
}

// PebbleMetrics returns the metrics of the node's Pebble store (sizes,
// compactions, caches) for self-monitoring.
func (db *DB) PebbleMetrics() *pebble.Metrics { return db.pdb.Metrics() }

// Compact flushes the memtables and compacts every key into Pebble's
// bottom level, so the files on disk are the store's steady-state form
// (a long-running store holds nearly all its data there) rather than a
// WAL and L0 tables of recent writes. For benchmarks and tools.
func (db *DB) Compact() error {
	if db.closed() {
		return ErrClosed
	}
	if err := db.syncPebble(); err != nil {
		return err
	}
	// Every key starts with a 4-byte group id: this bound is above all.
	return db.pdb.Compact(context.Background(), nil, []byte{0xff, 0xff, 0xff, 0xff, 0xff}, false)
}
