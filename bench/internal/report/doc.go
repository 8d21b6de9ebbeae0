// Package report turns the measurements of bench/cmd/compare into one
// table of ratios (Myelin / Prometheus, raw figures beside them), a
// Markdown file and SVG plots made with gonum.org/v1/plot. It also parses
// `go test -bench` output, to pair the myelin and prometheus
// sub-benchmarks of bench/engine_bench_test.go. For bench/cmd/clusterbench
// it makes the tables of configurations side by side (cluster.go: ratios
// to the first, query checksums compared across nodes and configurations)
// and their Markdown report.
//
// It does no measuring and starts no processes.
package report
