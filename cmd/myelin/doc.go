// Command myelin runs a Myelin node.
//
// It parses the flags (and -config.file), opens the engine and the node's
// Raft group replica, and serves remote write, the Prometheus query API,
// /ready, /metrics and, in cluster mode, /admin/raft/... . Without
// -cluster.node-id the node is a single node: one group of one replica.
// With it the node holds one replica of a group of (normally) three, all
// Raft traffic of the node goes through one listener (-raft.listen-address,
// raftgroup.Mux), and requests reaching a follower are forwarded to the
// leader over that listener (server.Forwarder). SIGINT or SIGTERM shut it
// down gracefully, exit status 0.
//
// Exit status: 0 after a clean shutdown or -help/-version, 2 for bad flags,
// 1 for any other error. `myelin -help` lists the flags.
package main
