// Package cluster starts and stops Myelin processes on loopback for
// benchmarks: one plain single node, or a cluster of n nodes joined to the
// first, each with its own fresh ports, data directory and log file, and
// waits until the cluster is ready. It is the process side of
// bench/cmd/clusterbench.
//
// It knows Myelin only by its command line, /ready and /ring?format=json;
// it must not import Myelin's packages.
//
// Caller protocol:
//
//  1. Start with Options: for a cluster it writes a cluster secret to
//     Dir/cluster-secret for every node's -raft.secret-file, starts node
//     n1, waits for its /ready, then starts n2..nN one after another with
//     -cluster.join naming n1's Raft address, each waiting for its
//     /ready, and then polls n1's /ring?format=json until Ring.Ready:
//     converged, every node listed and active, every group with a leader
//     (or fails after Options.ReadyTimeout with the last JSON). Plain
//     mode starts one node without cluster flags and waits for /ready
//     only.
//  2. Use Nodes (addresses, PIDs, data directories) to send, measure and
//     query.
//  3. Stop: SIGTERM to every node at once, then wait; a node still running
//     after a minute is killed. Stop is idempotent.
package cluster
