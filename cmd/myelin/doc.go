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
// steer the cluster. SIGINT or SIGTERM shut it down gracefully, exit
// status 0.
//
// Exit status: 0 after a clean shutdown or -help/-version, 2 for bad flags,
// 1 for any other error. `myelin -help` lists the flags.
package main
