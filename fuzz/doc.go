// Package fuzz holds the fuzz targets of every Myelin decoder that reads
// bytes from outside: the chunk encodings (package chunkenc), the write
// batches of the Raft log and the apply outcomes (package write) and the
// remote-write decoder
// (package server/remotewrite), and their seed corpora. Nothing imports it; its only
// non-test code is deriveSamples, the map from fuzz input to a valid sample
// sequence, and its inverse appendSamples. It does not import chunkenc
// outside tests and must not test anything but decoders and encoders.
//
// # Targets
//
// All targets are generic over chunkenc.Encodings, so a new encoding is
// fuzzed without changes here.
//
//   - FuzzChunkDecode: arbitrary bytes as a chunk, fed to NumSamples, Decode,
//     Iterator.Next and Iterator.Seek. Nothing panics; Next returns true at
//     most MaxSamples times; errors are *chunkenc.CorruptError with an offset
//     inside the chunk; NumSamples agrees with a successful Decode; Seek never
//     moves backwards; Decode allocates at most 256 bytes per input byte plus
//     48 per returned sample plus 64 KiB (see allocPerByte for why: a decoder
//     may size its buffers by the chunk's sample count, at most MaxSamples); and a chunk
//     that decodes has strictly increasing timestamps and re-encodes, in every
//     encoding, to the same samples.
//   - FuzzChunkRoundTrip: the input becomes samples (deriveSamples: per
//     sample a mode byte picks a timestamp mode such as regular, jittered,
//     raw, huge gaps up to math.MaxInt64 or XOR bucket edges, and a value
//     mode such as raw bits, small integers, decimals, NaN payloads, ±Inf,
//     -0 or the staleness marker). Every encoding must round-trip them bit
//     for bit through Decode and the Iterator, Seek must agree with a linear
//     scan, and appending them one by one to a chunkenc.XOR must give the
//     bytes of Encode(EncXOR).
//   - FuzzHistogramDecode: arbitrary bytes to chunkenc.HistogramIterator
//     (Reset, Next, Seek, At, AtFloat). Nothing panics; errors are
//     *chunkenc.CorruptError inside the chunk; a decode allocates at most
//     256 bytes per input byte plus the block bound (histAllocBound: 40
//     bytes per MaxHistogramBuckets and 200 per MaxSamples, since a few
//     bytes may describe that many constant buckets); what decodes
//     re-encodes to the same samples.
//   - FuzzHistogramRoundTrip: the input becomes integer histograms
//     (deriveHistograms: layouts, custom buckets, negative buckets, hints,
//     raw sum bits, extreme counts) and float ones from them; both
//     encodings give them back bit for bit, and Seek lands on every
//     timestamp.
//   - FuzzXORvsPrometheus: EncXOR against Prometheus's tsdb/chunkenc XOR
//     chunk: equal bytes after our encoding byte for derived samples, and
//     Prometheus reads every body our decoder accepts to the same samples.
//   - FuzzBatchDecode: write.Decode, the decoder of Raft log entries,
//     never panics, fails only with write.ErrCorrupt, and what it accepts
//     re-encodes stably. FuzzOutcomeDecode: write.DecodeOutcome, the
//     decoder of the apply outcomes a group returns to the proposer, the
//     same (write.ErrCorruptOutcome), and refusals keep their texts and
//     sentinels.
//   - FuzzRemoteWriteDecode and FuzzRemoteWriteSnappy: the remote-write
//     decoder against prompb.WriteRequest.Unmarshal, uncompressed and as
//     snappy-compressed HTTP bodies (details in remotewrite_test.go).
//     FuzzRemoteWrite2Decode: the 2.0 decoder against the reference
//     writev2.Request.Unmarshal and Prometheus's per-series refusals
//     (details in remotewrite2_test.go).
//   - OTLP's decoders are fuzzed in package server, whose unexported
//     translation they drive: FuzzOTLPHandler (any body through the
//     handler) and FuzzOTLPFast (the protobuf fast path against pdata and
//     Prometheus's translator: same series and refusals, or no answer).
//   - FuzzRingDecode and FuzzRingPlan: the cluster state of raftgroup/ring
//     (the future metadata group's state machine) never panics on
//     arbitrary bytes, re-encodes stably, and the placement planner keeps
//     its invariants on any state that decodes (details in ring_test.go).
//   - FuzzMetadataDecode: cluster.DecodeMetadata, the decoder of the
//     metadata group's checkpoints and snapshots ("mymt", with a ring
//     state inside), never panics, fails only with ErrCorruptMeta, and
//     what it accepts re-encodes stably (details in cluster_test.go).
//     FuzzRuleChangeDecode, FuzzCacheGenBumpDecode and
//     FuzzAlertChangeDecode: the metadata log's rule changes,
//     results-cache generation bumps and Alertmanager changes, the same
//     way.
//
// FuzzChunkDecode also loads EncXOR inputs with chunkenc.XOR.Load, which
// must fail exactly where the iterator does.
//
// # Running
//
// Seeds only (part of `go test ./...`, a second or two):
//
//	go test ./fuzz
//
// Fuzzing one target (the go tool fuzzes one target at a time):
//
//	go test -run '^$' -fuzz '^FuzzChunkDecode$' -fuzztime 60s -fuzzminimizetime 5s ./fuzz
//
// -fuzzminimizetime bounds the minimization of each new interesting input;
// with the default (60 s) large real-data seeds stall the run for minutes.
// A failing input is written to testdata/fuzz/<Target>/<hash>; rename it to
// say what it shows and commit it: every crasher stays a seed. Re-run one
// with go test -run 'FuzzChunkDecode/<name>' ./fuzz.
//
// # Seed corpora
//
// testdata/fuzz/<Target>/seed-* are windows of the real series in the
// shared data directory (tsdata.SharedDir): for FuzzChunkDecode, chunks of
// 120 and up to 1024 samples in every encoding plus a truncated and a
// bit-flipped one per data file; for the other two targets, the same
// windows as deriveSamples inputs (appendSamples). Rewrite them, e.g. after
// an encoding's format changes, with
//
//	go test ./fuzz -run TestWriteSeeds -write-seeds
//
// It deletes only seed-* files; crashers and hand-named seeds stay. The
// targets also add a few seeds in code (empty input, one byte, each
// encoding byte alone, all 0xff, every mode byte of deriveSamples).
//
// testdata/fuzz/<Target>/golden-* come from the format-freeze golden files
// (chunkenc/testdata/*.golden, raftgroup/cluster/testdata/meta.golden),
// whose inputs take every branch of those formats: for FuzzChunkDecode
// each golden chunk and each pack chunk less its last byte, for
// FuzzChunkRoundTrip the golden samples, for FuzzMetadataDecode the golden
// checkpoint whole and truncated, for FuzzRingDecode its ring state.
// After the golden files change, rewrite them (deleting only golden-*) with
//
//	go test ./fuzz -run TestWriteGoldenSeeds -write-golden-seeds
package fuzz
