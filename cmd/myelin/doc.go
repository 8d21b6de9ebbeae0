// Command myelin runs a Myelin node.
//
// For now it is the skeleton of the single-node server: it parses the flags,
// creates the data directory, and serves /ready and /metrics (Go runtime and
// process metrics). The ingest and query paths (/api/v1/push, /api/v1/write,
// /api/v1/query, /prometheus/api/v1/...) answer 501 Not Implemented until the
// single-node server lands. SIGINT or SIGTERM shut it down gracefully, exit
// status 0.
//
// Exit status: 0 after a clean shutdown or -help/-version, 2 for bad flags,
// 1 for any other error. `myelin -help` lists the flags.
package main
