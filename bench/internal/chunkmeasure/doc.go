// Package chunkmeasure measures chunk encodings on sets of series: encoded
// size, encode and decode time, and a bit-exact round trip of every sample.
// It is the engine of bench/cmd/chunkbench and of the chunk benchmarks in
// package bench.
//
// It owns the measurement method, not the encodings: a Codec wraps either a
// chunkenc encoding (Ours) or Prometheus's own XOR chunk (PromXOR, the
// baseline every result is compared with). It must not read files or parse
// flags; callers load series (internal/tsdata) and pass them in.
//
// Method, for one codec and one chunk size (Measure):
//  1. Every series is cut into consecutive chunks of ChunkSamples samples
//     (the last chunk of a series may be shorter) and encoded back to back
//     into one buffer. Bytes is the sum of the chunk lengths, exactly what
//     the codec returned: for PromXOR len(chunk.Bytes()), that is the 2-byte
//     sample count plus the bit stream; for ours the encoding byte included.
//  2. Encoding all chunks is timed Reps times, in batches of whole series
//     of about 64k samples; the fastest pass of each batch counts and the
//     batches add up. (Per batch so that a burst of other load on a shared
//     machine spoils one batch, not a whole pass.)
//  3. Decoding all chunks through the codec's reusable iterator (Reset,
//     Next, At) is timed the same way. The pass folds every sample into a
//     Checksum, compared with the input's.
//  4. Untimed, every series is decoded again and compared sample by sample:
//     timestamps equal and math.Float64bits of values equal (NaNs by bits).
//     Every difference is a Mismatch.
package chunkmeasure
