// Package tsdata reads and writes "tsdata v1", the text format of the real
// time-series data in the shared data directory (../shared/data beside the
// repository; see its README.md). Tests and benchmarks use it to feed real
// series to chunk encodings and to the engine; fuzz seed tools use WriteLine.
//
// It owns only the file format. It must not know about chunks, tenants or
// storage, and it holds no package-level mutable state.
//
// # Format
//
// A file is UTF-8 text, gzip-compressed when its name ends in ".tsv.gz".
// Lines starting with '#' are comments; empty lines are ignored. Every other
// line is one series:
//
//	<labels JSON object> TAB <timestamps> TAB <values> NEWLINE
//
// The three fields:
//
//   - labels: a JSON object of label name to value with the keys in sorted
//     order, __name__ included.
//   - timestamps: comma-separated decimal int64. The first is the first
//     sample's time in ms since the Unix epoch; each later one is the delta in
//     ms (> 0) to the previous sample. INVARIANT: timestamps are strictly
//     increasing within a line.
//   - values: comma-separated, as many as timestamps. A non-NaN value is
//     written by strconv.FormatFloat(v, 'g', -1, 64) (so "+Inf", "-Inf", "-0"
//     occur); every NaN is "0x" and the 16 lower-case hex digits of its
//     IEEE-754 bits, so staleness markers (0x7ff0000000000002) round-trip
//     bit-exact. NaNs are compared by bits, never by value.
//
// Lines can be hundreds of KB long, so the reader uses a bufio.Reader rather
// than a bufio.Scanner with its 64 KB default line limit.
package tsdata
