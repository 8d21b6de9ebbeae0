// Package chunkenc holds Myelin's chunk encodings: the unit of compression
// is a chunk, the samples (int64 millisecond timestamp, float64 value, or
// a native histogram) of one series over a time span, in time order.
//
// The package is pure: no I/O, no locks, no knowledge of tenants, Pebble or
// Raft. It must not import anything but the standard library and
// internal/invariants (internal/archtest allows no other module). Under the
// invariants build tag every encoder decodes what it wrote and compares it
// bit for bit, and the appender checks its state (the INVARIANTs of XOR,
// bitWriter, intsPlan and the pack writer) after every sample; in normal
// builds invariants.Enabled is a false constant and the checks compile
// away.
//
// # Use
//
// The engine keeps each active series' open chunk in memory as an XOR
// (appendable, streaming). When the chunk is sealed it re-encodes the
// samples with an Encoder into EncPack, which models the whole chunk at
// once. Merging small sealed chunks into a larger one for cold data is the
// same operation on several chunks.
//
//  1. x := NewXOR(nil); x.Append(t, v) ...; x.Bytes() is always a readable
//     chunk (valid until the next Append).
//  2. On seal: sealed, err := e.Recode(dst, EncPack, x.Bytes()), with one
//     Encoder per goroutine; or e.Encode(dst, EncPack, ts, vs) from samples.
//  3. Merge: e.Recode(dst, EncPack, c1, c2, ...) for consecutive chunks.
//  4. Reading: one Iterator per goroutine, Reset(chunk), Next/Seek/At, Err.
//
// Native histograms have no head format here: the engine keeps a series'
// open histogram samples in its own form and seals them with one of the
// block encodings below.
//
//  5. Histograms: e.EncodeHistograms(dst, ts, hs) (EncHistPack) or
//     e.EncodeFloatHistograms(dst, ts, fhs) (EncFloatHistPack); merge
//     consecutive sealed chunks with e.RecodeHistograms(dst, c1, c2, ...);
//     read with a HistogramIterator: Reset, Next/Seek, At (integer chunks)
//     or AtFloat (either), Err. A float Iterator refuses histogram chunks
//     and the reverse, with a CorruptError. There is no recode from
//     Prometheus's histogram chunk bytes: it would need Prometheus's
//     decoder in this package.
//
// The histogram sample types are chunkenc's own (the package takes no
// module), with the field meanings of Prometheus's model/histogram, so
// the conversion is a field-for-field copy:
//
//	histogram.Histogram        <-> Histogram       (buckets as deltas)
//	histogram.FloatHistogram   <-> FloatHistogram  (absolute buckets)
//	histogram.Span{Offset, Length}  <-> Span{Offset, Length}
//	histogram.CounterResetHint <-> CounterResetHint (same numbers 0..3)
//
// Every field round-trips bit for bit, in both encodings: counts, zero
// count, sum (every NaN payload, the staleness marker, ±Inf, -0), schema
// (any int32), zero threshold and custom values (any bits), spans (any
// offsets, zero-length spans included), the hint of every sample (not
// only of the first, as Prometheus's chunk header keeps it). A nil and an
// empty slice are the same sample (decoded samples have empty slices).
// Refused at encode: spans whose lengths do not add up to the counts,
// spans that name one bucket index twice (Prometheus's validation refuses
// them too), hints above 3, and chunks of more than MaxHistogramBuckets
// buckets plus stored custom values in all.
//
// Sealed chunk size: 1024 samples (or fewer at a time-partition boundary).
// On the shared data EncPack is 0.47x of Prometheus XOR at 120 samples per
// chunk, 0.37x at 1024 and no better at 2048 (per-chunk parameters adapt
// less); 4096 is worse. See docs/design.md.
//
// Samples must have strictly increasing timestamps; any int64 timestamps
// and any float64 bit pattern (every NaN payload, ±Inf, -0, the Prometheus
// staleness marker 0x7ff0000000000002) round-trip bit for bit.
//
// # Format
//
// Every chunk starts with one encoding byte (type Encoding); readers
// dispatch on it, so new encodings can be added without rewriting data.
// Bits are written most significant first. Values are never renumbered.
//
// ## EncXOR (1)
//
//	byte 0      1
//	bytes 1-2   sample count, uint16 big-endian
//	bits        Prometheus's XOR stream, unchanged
//
// The bytes after the encoding byte are exactly a Prometheus tsdb/chunkenc
// XOR chunk (tested byte for byte against Prometheus), so data can move
// between Myelin and Prometheus tooling. The stream: sample 0 as a varint
// timestamp and 64 value bits; sample 1 as a uvarint delta and an XOR
// value; then per sample a delta-of-delta in a prefix code ('0' for 0,
// '10' + 14 bits, '110' + 17 bits, '1110' + 20 bits, '1111' + 64 bits; the
// n-bit buckets hold [-(2^(n-1)-1), 2^(n-1)]) and the value as Gorilla XOR
// against the previous value: '0' same value; '10' + the meaningful bits in
// the previous window; '11' + 5 bits leading zeros (capped at 31) + 6 bits
// window length (0 means 64) + the window.
//
// XOR is the head format because it appends in O(1) with no look-ahead.
// Its weak spots on monitoring data are what EncPack fixes: 1 ms of scrape
// jitter costs 16 bits (twice: late, then on time again), an unchanged
// value still costs 1 bit per sample, and a decimal gauge like 0.1 -> 0.2
// costs ~50 bits because its binary mantissa changes entirely.
//
// ## EncPack (2)
//
//	byte 0      2
//	uvarint     n, the sample count (1..65535)
//	bits        timestamps section, then values section; the last byte
//	            is padded with zero bits
//
// Varints inside the bit stream are the usual byte-wise (u)varints written
// as 8-bit groups; signed ones are zigzag-encoded.
//
// Timestamps section:
//
//	varint      t0
//	(n >= 2)
//	uvarint     d, the chunk's interval: the majority delta
//	1 bit       model: 0 delta, 1 grid
//	ints(n-1)   residuals r_i, wrapping 64-bit arithmetic:
//	            delta: r_i = t_i - (t_{i-1} + d)
//	            grid:  r_i = t_i - (g_{i-1} + d), with grid points g_0 = t_0,
//	                   g_i = t_i if |r_i| > d/2 (a missed scrape re-anchors)
//	                   else g_{i-1} + d
//
// A regular scrape makes every r_i zero (2 bits for the whole chunk). Jitter
// shows as a few nonzero r_i. Under the delta model one late scrape is a
// pair +x, -x, which the pairs stream kind codes in one record plus one
// bit; the grid model makes it a single residual but breaks when the clock
// drifts against d. The encoder computes both and keeps the one with fewer
// nonzero residuals. Measured on the shared recorded data: 0.9-1.3 bits
// per sample, against 3.4 for XOR.
//
// Values section, a 2-bit mode, then:
//
//	0 const     64 bits: every value has these bits
//	1 decimal   see below
//	2 xor       64 bits first value, then XOR values as in EncXOR
//
// Decimal mode models each value as v = m / 10^e with an integer mantissa
// |m| < 2^53 (ALP's idea, with an exact check: the division of an exact
// integer by an exact power of ten is correctly rounded, so the decoder
// reproduces v bit for bit):
//
//	5 bits      e, 0..17
//	uvarint     k, number of exceptions
//	k times     uvarint gap to the previous exception's position (first: the
//	            position itself), 64 bits raw value
//	2 bits      order: 0 r_i = m_i - m_0, 1 delta, 2 delta-of-delta
//	varint      m_0
//	uvarint     g >= 1, gcd of the residuals
//	ints(n-1)   residuals / g
//
// Exceptions are values that are not decimals at e (NaN, ±Inf, -0, binary
// noise like 0.20199999999999999); their mantissa slot repeats the previous
// mantissa so they cost nothing in the residual stream. The encoder picks e
// by cost (digits for everyone against 72 bits per exception), the order by
// the residuals' total bit length, and the mode by exact bit count
// (decimal against xor; xor is only tried when decimals cost more than 16
// bits per value). The gcd removes common factors such as 4096-byte
// pages in memory gauges or the trailing zeros of a rescaled exponent.
//
// Integer streams, ints(m): m is known to the reader. A 2-bit kind, then:
//
//	0 zero      nothing: all m residuals are 0
//	1 rice      6 bits k; m Rice(k) codes of zigzag(r)
//	2 runs      uvarint c, 6 bits kg, 6 bits kv; c records of
//	            Rice(kg) zero-run length, Rice(kv) zigzag(r)-1
//	3 pairs     as runs, plus one bit per record: 1 if the next residual
//	            is -r (and belongs to the record)
//
// Rice(k) of u: q = u>>k one-bits, a zero bit, the low k bits of u; if
// q >= 24 instead 24 one-bits, 6 bits bitlen(u)-1 and bitlen(u) bits of u,
// bounding an outlier's cost. The writer estimates the size of each kind
// from a histogram of bit lengths (for k from three below to one above the
// bit length of the mean) and writes the smallest.
//
// Why block, not stream: EncPack chooses the interval, exponent, order,
// gcd and Rice parameters from the whole chunk; that is where its gain
// over XOR comes from, and a sealed chunk is written once and read many
// times. Decoding reconstructs whole chunks into reusable buffers, which is
// faster per sample than XOR's bit-serial decode. What cannot be skipped
// is the residual streams: a value at delta or delta-of-delta order needs
// every residual before it, and a Rice code's length is known only by
// reading it. The Iterator reads them at Reset (one loop, readRices) but
// leaves a decimal chunk without exceptions as mantissas and divides by
// 10^e only for the samples At returns, the same expression bit for bit:
// a query at a 30-minute step reads 5 samples in 30.
//
// ## EncHistPack (3) and EncFloatHistPack (4)
//
// Integer and float native histograms. Both are blocks like EncPack and
// reuse its parts: the timestamps section, the values section (const,
// decimal, xor) and the integer streams ints(m) are exactly EncPack's.
//
//	byte 0      3 (integer) or 4 (float)
//	uvarint     n, the sample count (1..65535)
//	bits        timestamps section (as EncPack)
//	            hints section
//	            layouts section
//	            count column, zero count column
//	            sum: values section of n values
//	            bucket columns, in column order
//	            padded with zero bits to a byte
//
// Hints section: 2 bits the first sample's hint; for n >= 2, ints(n-1)
// of h_i - h_{i-1} (a chunk of one hint costs 4 bits). Decoders reject a
// hint outside 0..3.
//
// Layouts section. A layout is what a sample's buckets mean: schema, zero
// threshold, custom values and spans. Consecutive samples with equal
// layouts form a run:
//
//	uvarint     R, the number of runs (1..n)
//	R runs:
//	  (r > 0)   uvarint start_r - start_{r-1} - 1 (run 0 starts at 0);
//	            1 bit: the header (schema, zero threshold, custom values)
//	            is the previous run's
//	  (header)  varint schema, 64 bits zero threshold, uvarint c, and for
//	            c > 0 a values section of the c custom values
//	  spans     positive then negative: uvarint count, per span varint
//	            offset and uvarint length
//
// Columns. Bucket k of a span list has the index
// offset_0 + ... + offset_j + (position within the spans up to it), as
// Prometheus counts; a column is one (sign, index) pair. Columns are
// ordered positive before negative, then by index; a column's values are
// the bucket's absolute counts (for Histogram the running sum of the
// deltas, in wrapping int64) at the samples whose layout has that bucket,
// in time order. So an idle bucket is one column of equal values, and a
// bucket that appears mid-chunk is a shorter column. Decoders refuse a
// layout naming an index twice, and more than MaxHistogramBuckets values,
// or a run with more buckets than the input has bytes left, before they
// allocate.
//
// EncHistPack columns (count and zero count, as int64, and every bucket),
// for a column of m values:
//
//	varint      c_0
//	(m >= 2)
//	2 bits      order: 0 r_i = c_i - c_0, 1 delta, 2 delta-of-delta
//	            (r_1 = c_1 - c_0)
//	ints(m-1)   residuals, wrapping arithmetic
//
// The order is chosen by the total bit length of the residuals: delta for
// a counter with bursts, delta-of-delta for a steady rate, 0 for a gauge
// around a level. An idle bucket costs 4 bits per chunk plus the varint
// of its count.
//
// EncFloatHistPack columns (count, zero count, every bucket) are values
// sections of m values: const, decimal (counts that are integers or
// decimals) or xor.
//
// Why columns, not Prometheus's stream: Prometheus's histogram chunk
// writes every bucket of every sample (a delta-of-delta per bucket, at
// least 1 bit, and a recode of the whole chunk when a bucket appears); a
// column pays per chunk for what does not change. Measured on the data set
// (README, "Native histogram data set"; docs/design.md): 0.45x of
// Prometheus's bytes for converted exponential integer histograms, 0.52x
// for those recorded from Prometheus 3.14, 0.60x for NHCB, 0.63x over all
// at 1024 samples per chunk.
//
// # Format freeze
//
// testdata/histpack.golden and testdata/floathistpack.golden do the same
// for the histogram encodings (histgolden_test.go, TestHistogramGolden):
// runs with and without a new header, custom values, empty spans,
// negative buckets, hint changes, every column order, every values mode
// of sums and float columns, and extreme schemas, indices, counts and
// NaN payloads.
//
// testdata/xor.golden and testdata/pack.golden hold the chunks of fixed
// inputs (golden_test.go), each with its layout as read by this doc, that
// together take every branch above: one sample and the most samples (1-,
// 2- and 3-byte counts), negative and int64-extreme timestamps, regular
// and jittered scrapes under both timestamp models (re-anchoring, a
// MinInt64 residual), every integer stream kind and the Rice escape, every
// value mode, the three decimal orders, a gcd above 1, exceptions of every
// kind (NaN payloads, the staleness marker, ±Inf, -0, binary noise), XOR
// fallback for true doubles and when it beats decimals, every XOR value
// code, and every EncXOR delta-of-delta bucket at both edges. TestGolden
// compares the encoders' output byte for byte, decodes the stored chunks
// bit for bit, and fails when no case takes a branch any more.
//
// A format change updates this doc, the encoding byte (a new Encoding:
// stored chunks must still read) and the golden files together; rewrite
// them with go test ./chunkenc -run TestGolden -rewrite and review the
// diff. An encoder that chooses other parameters within the format also
// changes the files; the test then reports that the old chunks still
// decode.
package chunkenc
