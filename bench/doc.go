// Package bench holds benchmarks that cross packages or need the shared
// real data (internal/tsdata.SharedDir), and the tools under bench/cmd.
// It has no production code and nothing imports it.
//
// Chunk encodings (chunkenc_bench_test.go):
//
//	go test -run '^$' -bench Chunk -benchtime 1x ./bench/    # smoke run, well under a minute
//	go test -run '^$' -bench 'ChunkDecode/recorded' -count 10 ./bench/ | tee new.txt   # for benchstat
//
// For the size and speed of every encoding on all the data, with a
// bit-exact round-trip check, run bench/cmd/chunkbench instead.
package bench
