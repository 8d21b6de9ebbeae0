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
// It owns the tenants' configurations (Store, FileStore), their
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
//  1. store := NewFileStore(dir) (single node);
//  2. m, err := New(Options{Store: store, DataDir: ..., ...}) starts the
//     tenants that have a configuration and the poll loop;
//  3. route PathPrefix+"/" to m (ServeHTTP) and m.RegisterConfigAPI;
//     the ruler calls m.Send(ctx, tenant, alerts);
//  4. m.Close() stops every tenant's Alertmanager, snapshotting its
//     state.
//
// INVARIANT: a tenant's Alertmanager holds only that tenant's alerts,
// silences and notification log, in DataDir/<tenant>; requests reach
// the Alertmanager of the tenant the auth gate resolved, never another.
package alertmanager
