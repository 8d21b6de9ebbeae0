// Command myelin runs a Myelin node.
//
// It parses the flags (and -config.file), opens the engine and serves
// remote write, the Prometheus query API, /ready and /metrics. Without
// -cluster.node-id the node is a single node: one Raft group of one
// replica. With it the node is a member of a cluster (raftgroup/cluster):
// it holds a replica of the metadata group and the replicas of data groups
// the placement gives it, all Raft traffic and node-to-node requests go
// through one listener (-raft.listen-address, raftgroup.Mux), writes are
// split by group and proposed to each group's leader
// (server/distributor), queries fan out to the groups' leaders
// (server/querier), and /ring, /status/tenants and /admin/... show and
// steer the cluster. A node that listens for Raft needs
// -raft.secret-file or mutual TLS (or -raft.insecure). -auth.config-file
// turns on tokens for the HTTP API: every route goes through one
// registration (install, in wire.go, on a server.Routes) with what it
// needs, behind the server's AuthGate; the file is reloaded when it
// changes and on SIGHUP (authfile.go). Per-tenant limits are defaults
// from flags overridden by -runtime-config.file, reloaded every
// -runtime-config.reload-period (limits.go; server/limits). SIGINT or
// SIGTERM shut it down gracefully, exit status 0.
//
// `myelin token create` and `myelin secret create` make an auth token
// (and its entry in the auth file) and a cluster secret (token.go).
// `myelin import` streams a Prometheus text / OpenMetrics file to a
// node's /api/v1/import/prometheus, or a native export or a Prometheus
// TSDB directory opened read-only as remote write 2.0 frames to its
// /api/v1/push, with progress; `myelin export` writes a tenant's series
// from /api/v1/export or /api/v1/export/native (import.go).
//
// Exit status: 0 after a clean shutdown or -help/-version, 2 for bad flags,
// 1 for any other error. `myelin -help` lists the flags.
package main
