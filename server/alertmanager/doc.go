// Package alertmanager is the Alertmanager room: a multi-tenant
// Alertmanager built of github.com/prometheus/alertmanager's parts, as
// Cortex and Mimir build theirs: one Alertmanager per tenant (alert
// store, silences, notification log, inhibitor, dispatcher, notification
// pipeline with the library's receivers, API v2), its configuration set,
// read and deleted through Cortex's /api/v1/alerts, its API v2 served
// under /alertmanager for the request's tenant (amtool, Grafana's
// Alertmanager data source), its alerts taken from the ruler in process
// (Send).
//
// On a cluster (Options.Metadata) each tenant's Alertmanager runs on
// one node, its owner by the node ring: the others forward its API
// requests and the ruler's alerts there (forward.go), its configuration
// is in the metadata group (MetaStore) and every change of its silences
// and notification log is committed there as a Record before the
// library returns, which the next owner merges (replicated.go).
//
// It owns the tenants' configurations (Store, FileStore, MetaStore), their
// validation (ParseConfig: Alertmanager's config.Load plus Cortex's
// refusal of settings that read the node's files), each tenant's state
// (silences and notification log: snapshots plus the state log, whose
// format is in statelog.go), and the per-tenant notification metrics
// (myelin_alertmanager_notifications_total{tenant, integration} and its
// siblings). It must not import the server root, the engine, the
// raftgroup root, the querier or the distributor (docs/design.md
// "Rooms"); its configurations are replicated through the Store
// interface, its state through the state log's records
// (docs/design.md "Alertmanager").
//
// Caller protocol:
//
//  1. without a cluster, store := NewFileStore(dir); on one, an
//     implementation of Metadata over the node's metadata replica;
//  2. m, err := New(Options{Store: store, DataDir: ..., ...}) or
//     New(Options{Metadata: md, Fence: ..., ...}) starts the tenants
//     that have a configuration (on a cluster: that this node owns) and
//     the poll loop;
//  3. route PathPrefix+"/" to m (ServeHTTP) and m.RegisterConfigAPI;
//     on a cluster, m.InternalHandler() at InternalPrefix+PathPrefix+"/"
//     and PushPath on the nodes' internal server (never the public
//     port: it trusts X-Scope-OrgID); the ruler calls m.Send(ctx,
//     tenant, alerts); Import(ctx, dir, md, retention) moves a node's
//     files of before the replication into the metadata;
//  4. m.Close() stops every tenant's Alertmanager, snapshotting its
//     state.
//
// INVARIANT: a tenant's Alertmanager holds only that tenant's alerts,
// silences and notification log (in DataDir/<tenant>, or its records in
// the metadata); requests reach the Alertmanager of the tenant the auth
// gate resolved, never another (a forwarded request carries that tenant,
// set by the forwarding node). On a cluster a tenant's Alertmanager runs
// on at most one node at a time, except between two nodes applying the
// same view change.
package alertmanager
