// Package load builds and sends a remote-write 1.0 load to any receiver
// (Myelin, Prometheus, anything that speaks the protocol) and measures the
// receiver from outside: its CPU time and memory from /proc/PID, its data
// directory on disk, and the accepted samples per second over time. It is
// the engine of bench/cmd/loadgen and bench/cmd/compare.
//
// It knows no receiver's internals and must not import Myelin's packages
// other than internal/tsdata (the reader of the shared data).
//
// Caller protocol:
//
//  1. Pick a Workload: Synthetic (node_exporter-shaped) or Replay (the
//     label sets and values of the shared recording, copied per instance).
//  2. Build encodes every request before the clock starts, so the client's
//     work is not mixed into the receiver's; series are sharded by label
//     hash like Prometheus's queue shards, so each shard's requests are in
//     time order and a series never spans shards.
//  3. Send posts each shard's requests in order, shards concurrently,
//     retrying 5xx and 429 with backoff as Prometheus does, and samples the
//     accepted count every RateEvery. Given several URLs (a cluster's
//     nodes) it sends the requests round-robin over them.
//  4. Measure before and after with Proc and DirBytes, waiting with Settle
//     for the receiver to go quiet; ReadProcs and SettleAll do the same for
//     a group of processes.
package load
