// Package report turns the measurements of bench/cmd/compare into one
// table of ratios (Myelin / Prometheus, raw figures beside them), a
// Markdown file and SVG plots made with gonum.org/v1/plot. It also parses
// `go test -bench` output, to pair the myelin and prometheus
// sub-benchmarks of bench/engine_bench_test.go.
//
// It does no measuring and starts no processes.
package report
