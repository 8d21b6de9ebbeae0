// Package write is the write vocabulary shared by the server, the
// distributor, the Raft groups' wiring and the engine: samples, write
// batches and their codec, the label set encoding that identifies a
// series, the refusals of samples and the apply outcome that carries them
// back to the proposer, with their codec.
//
// It owns the formats below, each with a version byte; they are frozen by
// golden tests (testdata/, rewritten with -rewrite), and a change updates
// this doc, the version and the golden file together. It is pure: it does
// no I/O and imports only the standard library,
// github.com/klauspost/compress, Prometheus's model/labels and
// model/histogram (the histogram sample types) and the
// module's internal/invariants (an arch test enforces it). It knows
// nothing of Pebble, Raft or HTTP.
//
// # Caller protocol
//
//  1. The server builds a batch per remote-write request: bb :=
//     NewBuilder(tenant) (or Reset a pooled one), bb.AddEncoded(key,
//     samples) per validated series (or bb.Add(labels, samples)), then
//     bb.Batch().
//  2. The node turns it into a Raft log entry with an Encoder:
//     entry := enc.Entry(b) (VersionS2Prefix: prefix-coded label sets,
//     S2-compressed).
//  3. Every replica's engine decodes the entry (a Decoder per group,
//     Decoder.Decode; it reuses its buffers) and applies it. It reports
//     what it refused as an Outcome, encoded with AppendOutcome: the bytes
//     raft hands back to the proposer, identical on every replica. An
//     empty outcome means every sample was applied.
//  4. The proposer decodes it with DecodeOutcome and reports the
//     per-series refusals (Outcome.Refused, each matching its sentinel)
//     to the sender; a whole-entry error (Outcome.Err, matching
//     ErrCorrupt for a batch that did not decode) fails the write.
//
// # Batch encoding (version 4)
//
// A batch is one tenant, the series limits the group applies to it, and
// its series, each as its encoded label set plus samples. uvarint and
// varint are encoding/binary's.
//
//	batch   = version:byte(4) tenant:string limits
//	          nseries:uvarint series*nseries
//	limits  = maxSeries:uvarint maxSeriesPerMetric:uvarint
//	string  = len:uvarint bytes
//	series  = labels:string nsamples:uvarint sample*nsamples
//	sample  = tdelta:varint value:8 bytes little-endian IEEE 754 bits
//
// labels is the label set encoding below. tdelta is the difference to the
// previous sample of the series (to 0 for the first); samples need not be
// sorted (the engine refuses the out-of-order ones beyond the window of
// version 6). Values are stored as
// raw bits so the StaleNaN marker round-trips. The tenant is not empty; a
// series has a non-empty label set. limits are SeriesLimits, each at most
// 2^31-1, 0 for none: the proposer scales the tenant's global limits to
// the group (server/distributor), and every replica applies the entry
// with them. Decode checks every count and length
// against the remaining input before allocating (nothing it allocates is
// more than a small multiple of the input) and reports the byte offset of
// the first problem in a *CorruptError; it does not check the label sets
// (CheckLabels): the engine checks one only when it names a series the
// tenant does not have yet, and refuses that series' samples if it is
// invalid.
//
// Version 2 (VersionNoLimits) is version 4 without limits: the layout
// of every entry written before the series limits. Decode reads it as a
// batch without limits, so the entries in Raft logs stay readable;
// nothing writes it any more (testdata/batch_v2.golden is frozen).
//
// Version 3 (VersionS2, Compress) is the byte 3 followed by an S2 block
// (github.com/klauspost/compress/s2, the block format, not the stream)
// whose content is a version-4 (before it, version-2) batch; it was the
// form a node proposes (Encoder) until version 9. The decompressed length is read from the block header and
// refused above 1 GiB before allocating. A 2,000-series remote-write batch
// shrinks ~10x (label sets repeat names and values), for ~30 ns per series
// to compress and ~20 to decompress.
//
// Version 1 interned the label strings of a batch in a symbol table and
// named them by index: 2.3x smaller entries, but interning cost ~90 ns per
// series on the server and rebuilding the label set another ~40 on apply;
// version 2 copies the remote-write series key as is (docs/design.md has
// the numbers). Version 1 was never released and is not decoded.
// Version 4 costs 2-8 bytes per entry over version 2.
//
// # Batch encoding (version 5): native histograms
//
// VersionHistograms is version 4 where every series continues after its
// float samples with its native histogram samples and a flags byte:
//
//	series  = labels:string nsamples:uvarint sample*nsamples
//	          nhist:uvarint hsample*nhist flags:byte(0)
//	hsample = tdelta:varint kind:byte hint:byte schema:varint
//	          zthreshold:f64 counts sum:f64
//	          pspans nspans pbuckets nbuckets custom:floats
//	counts  = zerocount:uvarint count:uvarint       (kind 1, integer)
//	        | zerocount:f64 count:f64               (kind 2, float)
//	spans   = n:uvarint (offset:varint length:uvarint)*n
//	buckets = n:uvarint varint*n                    (kind 1: deltas, as
//	                                                 histogram.Histogram)
//	        | floats                                (kind 2: absolute)
//	floats  = n:uvarint f64*n
//
// f64 is the 8 bytes of IEEE 754 bits, little-endian (so a StaleNaN sum,
// Prometheus's stale marker for histograms, round-trips). tdelta is to
// the previous histogram sample of the series (0 for the first), a chain
// of its own beside the float samples'. kind says per sample whether it
// is an integer (histogram.Histogram) or float (histogram.FloatHistogram)
// histogram: Prometheus lets a series switch between them, so the kind is
// per sample rather than per series (the sketch this doc once had); a
// remote-write series may carry floats and histograms together, so both
// are in one series rather than two series with the same labels. hint is
// the CounterResetHint (0-3); schema an int32 (-4..8 exponential, -53
// custom buckets, whose upper bounds are custom; other schemas decode and
// the engine refuses them). Decode checks the encoding (kinds, hints,
// int32 and uint32 ranges, counts against the remaining input), not the
// histogram: the engine validates each one (histogram.Validate) and
// refuses it, like an invalid label set, without stopping the batch.
//
// flags is reserved for exemplars and metadata: a later version gives
// each a bit, followed by its section; version 5 writes 0 and Decode
// refuses any other value. Append writes version 5 only for a batch with
// histogram samples: a float-only batch stays version 4, which a replica
// of the previous release decodes, so a rolling upgrade diverges only if
// histograms arrive before every replica runs this one.
// testdata/batch_v5.golden freezes it.
//
// # Batch encoding (version 6)
//
// A batch with an out-of-order time window (Batch.OutOfOrderWindowMs,
// the tenant's out_of_order_time_window, stamped by the proposer like
// the limits) is an envelope around the batch Append would write
// without it:
//
//	batch6 = version:byte(6) windowMs:uvarint batch
//
// batch is a version 4, 5 or 7 batch (never 2, 3 or 6). windowMs
// is 1 to 2^40 (MaxOutOfOrderWindow); a batch without a window is never
// wrapped, so a tenant without one writes what the previous release
// decodes, and VersionS2 compresses the whole envelope. An envelope, not
// a new layout: the window is one number per batch, and the batch inside
// keeps its own version as it evolves (a version 7 batch, with
// exemplars or metadata, wraps as it is). testdata/batch_v6.golden
// freezes it.
//
// # Batch encoding (version 7): exemplars and metric metadata
//
// VersionExemplars is version 5 with the tenant's exemplar and metadata
// limits after the series limits, and series flags that announce
// sections after the flags byte:
//
//	batch      = version:byte(7) tenant:string limits metalimits
//	             nseries:uvarint series*nseries
//	metalimits = maxExemplars:uvarint maxMetadata:uvarint
//	             maxMetadataPerMetric:uvarint
//	series     = labels:string nsamples:uvarint sample*nsamples
//	             nhist:uvarint hsample*nhist flags:byte
//	             [exemplars] [metadata]
//	flags      = bit 0: exemplars follow; bit 1: metadata follows;
//	             the other bits 0
//	exemplars  = n:uvarint (n > 0) (tdelta:varint value:f64 labels:string)*n
//	metadata   = type:byte(0-7) family:string unit:string help:string
//
// metalimits are MetaLimits, each at most 2^31-1: the tenant's global
// limits scaled to the group by the proposer. An exemplar's tdelta is to
// the previous exemplar of the series (0 for the first), its labels the
// label set encoding below, possibly empty (not checked on decode: the
// server validated them). type is remote write's MetricType; family is
// not empty. A series may have no samples and no histograms: one with
// exemplars only carries the exemplars of a series whose samples are in
// another batch series of the same batch (the server gives them their
// own batch series, so a refusal of exemplars is told from a refusal of
// samples), one with metadata only carries a metric family's metadata
// and its labels ({__name__=family}) only place it on a group. Append
// writes version 7 only for a batch with exemplars or metadata: others
// keep versions 4 and 5, which earlier releases decode. Version 6 is
// the out-of-order window's envelope, which may hold a version 7 batch.
// testdata/batch_v7.golden freezes it.
//
// # Batch encoding (version 8): start timestamps
//
// A batch in which some series has start timestamps
// (Series.StartTimestamps: remote write 2.0's per-sample
// start_timestamp) is an envelope around the batch Append would write
// without them:
//
//	batch8 = version:byte(8) nseries:uvarint sts*nseries batch
//	sts    = n:uvarint stdelta:varint*n
//
// batch is a version 4, 5 or 7 batch (never 2, 3, 6 or 8); a version 6
// envelope may wrap a version 8 one (window first). nseries is the batch's
// series count; n is 0 for a series without start timestamps, otherwise
// its number of float samples plus histogram samples, the float
// samples' first. stdelta is the start timestamp minus the previous one
// of the series (0 before the first); a start timestamp of 0 means the
// sender gave none for that sample. Decode checks the counts against the
// batch (a *CorruptError at the envelope's offset otherwise). A batch
// without any start timestamp is never wrapped: it is byte for byte what
// earlier releases write and decode. testdata/batch_v8.golden freezes it.
//
// # Batch encoding (version 9): prefix-coded label sets
//
// VersionS2Prefix is the form a node proposes (Encoder): the byte 9
// followed by an S2 block, as version 3, whose content is a batch as
// version 3 holds (any of 4, 5, 7, in envelopes 6 and 8) except that
// every series' label set is written against the previous series' label
// set in the batch:
//
//	series  = shared:uvarint suffix:string ...   (the rest as in the batch's version)
//
// The label set is the first shared bytes of the previous series' label
// set followed by suffix; shared is 0 for the first series, and at most
// the previous label set's length; the label set is not empty. Exemplar
// label sets are written as they are. Consecutive series of a
// remote-write batch share most of their label set (a metric name, then
// a target's labels), so the content is half as long and S2 compresses
// it in ~35% less time, to ~30% fewer bytes (docs/design.md "Ingest CPU").
// Decode rebuilds the label sets in a buffer of its own, and refuses a
// batch whose label sets would take more than 64 times the decompressed
// content (maxLabelExpansion; a crafted batch would otherwise decode to a
// quadratic amount of memory); Encoder writes such a batch as version 3
// (a remote-write batch decodes to ~2x). testdata/batch_v9.golden freezes
// the entry and batch_v9_content.golden its content;
// batch_v3_of_v4.golden, version 3 as nodes wrote it before, is frozen.
// A replica of an earlier release refuses a version 9 entry as corrupt:
// no release has been made with version 3 as the proposed form, so the
// switch needs no upgrade step.
//
// # Deletion entries (versions 0x40, 0x41 and 0x42)
//
// A Raft log entry is a write batch or a deletion, told apart by its first
// byte (IsDelete), so decoders dispatch on it before decoding a batch. The
// deletion bytes are far above the batch versions (2 to 9), which new
// batch kinds take next.
//
//	delete_series = version:byte(0x40) tenant:string start:varint end:varint
//	                nmatchers:uvarint matcher*nmatchers
//	matcher       = type:byte name:string value:string
//	delete_tenant = version:byte(0x41) tenant:string
//	retain        = version:byte(0x42) tenant:string before:varint [period:varint]
//
// A delete_series entry (DeleteSeries) deletes the samples in [start, end]
// (milliseconds, both included; math.MinInt64 and math.MaxInt64 for every
// time) of the tenant's series matching every matcher; type is
// Prometheus's labels.MatchType (0 =, 1 !=, 2 =~, 3 !~). There are 1 to
// 1024 matchers, end is not before start, and a regular expression that
// does not compile makes the entry corrupt (the proposer compiled it). A
// delete_tenant entry deletes every series and sample of the tenant. A
// retain entry (Retain) drops the tenant's time partitions that end at or
// before before (milliseconds) and the series left without samples;
// before is math.MinInt64 to only collect the series. period, present
// when above 0 (absent in entries written before it existed), is the
// tenant's retention_period in milliseconds: the engine applies it in
// place of its own retention from then on; a retain entry without it
// puts the tenant back on the engine's. Golden files:
// testdata/delete_series_v64.golden, testdata/delete_tenant_v65.golden,
// testdata/retain_v66.golden, testdata/retain_period_v66.golden. Their apply outcome is the empty
// outcome, or the error of an entry that does not decode.
//
// # Label set encoding
//
// A label set is encoded as name 0xff value 0xff per label, in name order
// (AppendLabel; LabelSep is 0xff). 0xff never occurs in UTF-8, and names
// and values are non-empty, so the bytes are unambiguous and equal label
// sets have equal bytes: it is the identity of a series. It is the input
// of Prometheus's labels.StableHash (xxhash64 of these bytes), and the
// series key the remote-write decoder computes anyway
// (server/remotewrite.Series.Key), so the server hands it to the batch
// without re-encoding, the ring hashes it (raftgroup/ring.Hash), and the
// engine stores it as the series' labels (engine/doc.go, key schema).
// CheckLabels tells a valid encoding: at least one label, names strictly
// increasing, names and values non-empty.
//
// # Outcome encoding (version 2)
//
// The outcome of applying an entry, as AppendOutcome writes it. An Outcome
// with nothing to report encodes to zero bytes; otherwise:
//
//	outcome = version:byte(2) entry:cause nrefused:uvarint refusal*nrefused
//	refusal = series:uvarint rejected:uvarint cause
//	cause   = code:byte text:string
//
// entry is Outcome.Err (code 0 and an empty text when nil); series is the
// index in the batch, rejected the number of samples refused, at most
// 2^31-1 each. code says which sentinel the error matches: 0 none (no
// error), 1 ErrOutOfOrder, 2 ErrDuplicateSample, 3 ErrTooOld,
// 4 ErrInvalidLabels, 5 ErrCorrupt, 6 another error, 7 ErrSeriesLimit,
// 8 ErrMetricSeriesLimit; text is its Error() text. A decoded error has
// that text and matches its code's sentinel with errors.Is; a code above
// 8 is corrupt (a new code is a new version). Version 1 is version 2
// with codes up to 6 only; DecodeOutcome still reads it (a proposer may
// get one from a leader running the older binary during an upgrade), and
// testdata/outcome_v1.golden is frozen. DecodeOutcome bounds the refusal count by the input (4 bytes
// each at least) before allocating, and wraps ErrCorruptOutcome with the
// byte offset of a problem. An outcome lives only between a replica's
// apply and its proposer (raft hands it back, a forwarded proposal carries
// it between nodes); it is never stored.
//
// Rejected: a separate 'E' (error text) and 'R' (refusals) outcome in the
// node's wiring next to the engine's refusal codec, two layers that had
// to agree; and error values as the outcome, which needed a codec for
// errors between nodes anyway (raftgroup/doc.go).
package write
