// Package ruler is the ruler room: per-tenant recording and alerting rule
// groups, their Cortex/Mimir configuration API, and their evaluation with
// Prometheus's own rules package.
//
// It owns the rule groups (Store), their validation as promtool does it
// (ParseGroups), the configuration API (ConfigAPI) and the evaluation
// (Ruler: a rules.Manager per tenant). It must not import the server
// root, the engine, the raftgroup root, the querier or the distributor
// (docs/design.md "Rooms"): it reads through a storage.Queryable per
// tenant and writes through a Writer that cmd wires to the distributor,
// so a rule's results take the replicated write path as the tenant's own
// series.
//
// Caller protocol:
//
//  1. store := NewMetaStore(md, fence) (the groups in the metadata Raft
//     group through md, a Metadata that cmd adapts from
//     raftgroup/cluster's Node, which this room must not import;
//     docs/design.md "Ruler"; FileStore is the former single-node store,
//     read once by ImportFileStore);
//  2. r, err := New(Options{Store: store, Owns: store.Owns, Version:
//     store.Version, Queryable: ..., Writer: ..., Engine: ...}) starts
//     the sync loop, which loads the groups this node owns;
//  3. NewConfigAPI(store, ConfigOptions{Changed: r.Changed}).Register
//     routes the API; Prometheus's /api/v1/rules and /alerts read
//     r.Tenant(org) (server.QueryOptions.Rules);
//  4. r.Close() stops every manager.
//
// INVARIANT: a tenant's manager loads only that tenant's groups and
// writes only as that tenant (appendable.tenant is fixed at creation).
package ruler
