// Package bench holds benchmarks that cross packages or need the shared
// real data (internal/tsdata.SharedDir), and the tools under bench/cmd.
// It has no production code and nothing imports it.
//
// Myelin against Prometheus, side by side (bench/cmd/compare, the engine
// of `make bench`): one remote-write load into each server in turn, then
// ingest CPU, memory, disk and query latency as ratios, with plots, in
// bench/results/<date>-<commit>.md. bench/cmd/loadgen is the same load and
// measurement against any one receiver. Their parts: bench/internal/load
// (workloads, sending, /proc measurements), bench/internal/query (the
// query set and result checksums), bench/internal/report (table, plots).
//
//	make bench                           # about 10 minutes on 2 cores
//	make bench-scale SERIES=1000000      # one large run
//
// The cost of clustering (bench/cmd/clusterbench, the engine of `make
// bench-cluster`): the same load and query set against a plain single node
// and clusters of 1, 3 and 5 nodes on loopback, started and stopped by
// bench/internal/cluster; write throughput, CPU and memory summed over the
// nodes, query p50/p99, and the query results of every node checked
// against the single node's.
//
//	make bench-cluster                   # about 10 minutes on 2 cores
//
// Chunk encodings (chunkenc_bench_test.go):
//
//	go test -run '^$' -bench Chunk -benchtime 1x ./bench/    # smoke run, well under a minute
//	go test -run '^$' -bench 'ChunkDecode/recorded' -count 10 ./bench/ | tee new.txt   # for benchstat
//
// For the size and speed of every encoding on all the data, with a
// bit-exact round-trip check, run bench/cmd/chunkbench instead.
//
// Histogram chunk encodings (histchunk_bench_test.go, bench/cmd/histbench,
// method in bench/internal/histmeasure): chunkenc's EncHistPack and
// EncFloatHistPack against Prometheus's histogram chunks on the
// native-histogram data set (chunkenc/testdata/histograms*.hd.gz, built by
// bench/cmd/histdata and scripts/record-native-histograms.sh):
//
//	make bench-hist                                            # table of ratios, ~1 minute
//	go test -run '^$' -bench HistogramChunk -count 5 ./bench/  # the same as Go benchmarks
package bench
