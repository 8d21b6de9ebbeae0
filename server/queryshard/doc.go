// Package queryshard is the vocabulary of query sharding, shared by the
// query frontend, which writes shard selectors into the queries it sends,
// and the query API's storage side, which honours them: the selector
// label, its format, and which series a shard holds. It imports nothing
// of the module, so that every room may use it.
//
// A shard selector is the matcher __query_shard__="<i>_of_<n>" (Mimir's
// label and format, i from 1 to n) in a vector selector. A series is in
// shard i of n when labels.StableHash(series labels) % n == i - 1: the
// hash Prometheus's storage.SelectHints name for ShardIndex and
// ShardCount. Shards of one n are disjoint and together hold every
// series.
package queryshard
