// Package query runs a fixed set of Prometheus HTTP API queries against
// any Prometheus-compatible API, times them, and checksums their results
// in a canonical form, so that two servers fed the same samples can be
// compared for speed and correctness.
//
// It owns only the query set and the canonical form; it knows nothing of
// how the servers store data.
//
// # Canonical form
//
// A result is reduced to text before hashing: series sorted by their label
// set (names sorted), each with its samples in time order, label name and
// value lists sorted. Timestamps are written in ms. Values are written as
// the API wrote them when a query is Exact (raw samples, which must be
// bit-identical), and rounded to 9 significant digits otherwise: sums and
// rates computed by two engine versions may add in another order (Prometheus
// 3's sum uses Kahan compensation, 2.42's does not), which moves the last
// bits and nothing else.
//
// # Choice of queries
//
// Evaluation times are offset by 7.001 s from the 15 s scrape grid, so no
// sample lies on a range boundary: Prometheus 3 made range selectors
// left-open, 2.x includes a sample exactly at t-range, and at these times
// both select the same samples. Every query here has the same semantics in
// Prometheus 2.42 and 3.x at such times.
package query
