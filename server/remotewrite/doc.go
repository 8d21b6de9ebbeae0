// Package remotewrite decodes Prometheus remote-write 1.0 and 2.0
// requests on the hot path of ingestion, and holds the pure per-series
// validation rules the server applies to them.
//
// It owns: snappy decompression with size limits, zero-allocation
// protobuf decoders for prometheus.WriteRequest (1.0) and
// io.prometheus.write.v2.Request (2.0) into one reusable Request, each
// series' key (write's label set encoding), and validation of label sets
// and timestamps. It must not do I/O, hold package-level mutable state,
// know about tenants, HTTP status codes, content negotiation, Raft or
// storage: the server maps its errors (all of them are 400s:
// ErrTooLarge, ErrSnappy, ErrMalformed, and per series *SeriesError and
// Series.Err's sentinels) and decides what to store.
//
// # Caller protocol
//
//  1. Once: d, err := NewDecoder(Options{...}).
//  2. Per request, with a Request from a pool (one goroutine at a time):
//     n, err := d.DecodedLen(body) checks the limits and says how many
//     bytes decompressing will take (reserve them, if memory is
//     accounted); then err := d.Decode(req, body) for 1.0, or
//     d.DecodeV2(req, body) for 2.0 (the Content-Type says which). body
//     is the HTTP body, already limited to Options.MaxCompressedBytes+1
//     bytes by the reader. On error, answer 400 with err's text; the
//     Request may be reused.
//  3. For each s := &req.Series[i]: s.Err() (2.0 only: a reference
//     outside the symbols table, no samples; req.SeriesError(i) says
//     which), then lim.CheckSeries(s, req.LabelsOf(s, scratch)) and
//     lim.CheckSamples(s.Samples, now), which return a bare sentinel and
//     never allocate (LabelsOf resolves a 2.0 series' labels into the
//     caller's scratch slice; a 1.0 series has them in s.Labels); store
//     the valid ones (without empty-valued labels) under s.Key, which
//     for a valid series is write's encoding of that label set; count
//     the rest by sentinel, and report the first with SeriesError,
//     ValidateSeries and ValidateSamples, whose *SeriesError names it.
//  4. Native histograms: req.Histogram(j) for each of req.Histograms
//     (a series' are s.Histograms consecutive ones, in series order)
//     builds one, and lim.ValidateHistogram checks it as Prometheus's
//     receiver does (histogram.go). Exemplars and metadata likewise:
//     req.Exemplar(j) and req.MetadataOf(j) build and check them
//     (exemplar.go); 2.0 start timestamps are in req.StartTimestamps.
//  5. Copy whatever outlives the request (label bytes and samples alias
//     the Request's buffers), then return the Request to the pool
//     (dropping it instead if RetainedBytes is more than the pool should
//     keep: a Request keeps the capacity of the largest body it decoded).
//
// # Memory
//
// A decode allocates what the body needs, once: the decompressed body
// (its length is in the snappy header, checked against the limits before
// allocating), and the Request's slices, sized by a count of the body's
// elements (presize) the first time one of them would grow, so a warm
// Request allocates nothing and a cold one never grows by copying
// (append's 1.25x growth allocated 4-5x the final size on the way). The
// elements take at most 10 bytes per body byte plus 1 MiB (the budget,
// checked on the count before allocating) and the keys at most a byte
// per body byte: a decoded body takes at most ~12x its decompressed size
// (11.0x measured at the budget, 7.4x for a body of one-label series).
// No declared length or count is trusted: every length is checked
// against the bytes left in its enclosing message before it is used, and
// the only counts are those presize walks, at most one element per two
// bytes of input.
//
// A 2.0 body is denser: a label is two references of a byte or two into
// the symbols table, so its elements (Series 96 bytes, a reference 4, a
// symbol 24) and keys are not bounded by the body. The budget counts the
// keys too (a symbol of 2,000 bytes that every series names would make
// keys of 100 times the body), and a 2.0 series has no Labels: LabelsOf
// resolves them when they are needed, into the caller's slice, which
// saves 48 bytes per label (a realistic 2.0 body decodes to 6.3 bytes
// per byte with them left out, 10.5 with them in, over the budget).
//
// # Wire format
//
// The HTTP body is one snappy block (https://github.com/google/snappy/
// blob/main/format_description.txt; not the framed stream format): a
// varint with the uncompressed length (at most 2^32-1), then literals and
// copies. We read the length first and reject it against
// MaxDecompressedBytes, and against 22 times the body length (a copy of
// 64 bytes in 3 is the densest snappy element), before allocating; then
// decompress into the Request's reused buffer.
//
// The uncompressed body is a protobuf (proto3) prometheus.WriteRequest,
// prompb/remote.proto and types.proto of Prometheus:
//
//	WriteRequest   { repeated TimeSeries timeseries = 1; reserved 2;
//	                 repeated MetricMetadata metadata = 3; }
//	TimeSeries     { repeated Label labels = 1; repeated Sample samples = 2;
//	                 repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
//	Label          { string name = 1; string value = 2; }
//	Sample         { double value = 1; int64 timestamp = 2; }
//
// Every field is a tag varint (field number << 3 | wire type) and a value:
// wire type 0 a varint (7 bits per byte, least significant first, high bit
// = more; at most 10 bytes), 1 eight bytes little-endian (double), 2 a
// varint length and that many bytes (strings, embedded messages, packed
// repeated scalars), 5 four bytes; 3 and 4 open and close a deprecated
// group. A typical sample is 0x12 len 0x09 <8-byte double> 0x10 <varint ms>.
//
// What the decoder checks, as prompb's Unmarshal does: every length and
// fixed-size value lies inside its enclosing message; known fields have
// their declared wire type; unknown fields of every wire type are skipped
// (groups by nesting depth); exemplars, histograms and metadata are
// checked against their schema (wire types, nested BucketSpans and
// Labels, packed and unpacked repeated scalars) though not decoded: a
// histogram is decoded apart, when the server stores it
// (Request.Histogram), so the float path stays allocation-free. A
// repeated scalar field (Label.name, Sample.timestamp, ...) that occurs
// twice keeps the last value; missing fields are zero or empty.
//
// # Wire format of 2.0
//
// The body is a snappy block as in 1.0, holding an
// io.prometheus.write.v2.Request (prompb/io/prometheus/write/v2/
// types.proto of Prometheus v0.314, the spec's 2.0-rc.4 schema):
//
//	Request    { reserved 1 to 3; repeated string symbols = 4;
//	             repeated TimeSeries timeseries = 5; }
//	TimeSeries { repeated uint32 labels_refs = 1; repeated Sample samples = 2;
//	             repeated Histogram histograms = 3; repeated Exemplar exemplars = 4;
//	             Metadata metadata = 5; reserved 6; }
//	Sample     { double value = 1; int64 timestamp = 2; int64 start_timestamp = 3; }
//	Metadata   { MetricType type = 1; uint32 help_ref = 3; uint32 unit_ref = 4; }
//	Exemplar   { repeated uint32 labels_refs = 1; double value = 2; int64 timestamp = 3; }
//	Histogram  { 1.0's fields 1-16; int64 start_timestamp = 17; }
//
// A label is a name and a value reference, indexes into symbols:
// labels_refs is packed (a varint length, then the references as
// varints, those below 128 in one byte) or, as proto3 parsers must also
// read, one varint per field. The decoder reads the fields in one pass
// (encoders write symbols, field 4, before the series, field 5); a
// reference past the symbols read so far makes it read every symbol of
// the body first (loadSymbols), so symbols after or between the series
// work too. What it checks is what the reference Unmarshal checks, as for
// 1.0; references themselves are checked per series (Series.Err): an odd
// number of label references, or a label or metadata reference outside
// the symbols table, refuses the series, as Prometheus's receiver
// refuses it (ToLabels, ToMetadata), and so does a series without
// samples or histograms (the spec's MUST; Prometheus refuses it too).
// Start timestamps of float samples are kept (Request.StartTimestamps),
// those of histograms checked and skipped; metadata, exemplars and
// histograms are checked and counted (spans), as in 1.0, and decoded by
// MetadataOf, Exemplar and Histogram. A reference of
// more than 32 bits keeps its low 32 bits, as every protobuf decoder
// reads a uint32 field.
//
// # Deviations from prompb
//
// Deliberately stricter than gogo-generated prompb.WriteRequest.Unmarshal
// and writev2.Request.Unmarshal (v0.314), each with its ProtoError.Reason
// (or ErrTooLarge), so that fuzz/ can tell them apart:
//
//   - ReasonOverflow: a 10-byte varint whose last byte is above 1 (a value
//     of more than 64 bits). gogo silently drops the high bits.
//   - ReasonFieldNumber: field numbers above 2^29-1, which gogo truncates
//     to int32 (so a huge number may alias field 1), and field number 0
//     inside a skipped group, which gogo does not look at.
//   - ReasonPacked: a packed repeated field of a histogram (or 2.0's
//     labels_refs) whose bytes are not whole elements; gogo reads the
//     last element on past the field.
//   - ErrTooLarge from Unmarshal: the decoded elements (Series 96 bytes,
//     Label 48, Sample 16, Span 24; in 2.0 also a reference 4, a symbol
//     24, and the keys) may take at most 10 bytes of memory per body byte
//     plus 1 MiB, else the whole request is rejected before they are
//     allocated. Real requests take 2-3 per byte in 1.0, 6-7 in 2.0; only
//     floods of empty labels or series (2 bytes on the wire each), or
//     2.0 series naming long symbols over and over, exceed it, which
//     would otherwise turn a 100 MiB body into 2.4-5.2 GiB (or, in 2.0,
//     any amount). prompb has no such bound.
//   - 2.0 bodies of 2 GiB or more (over MaxInt32 bytes) are refused
//     (ErrTooLarge): series keep int32 offsets of their references. The
//     default limit is 100 MiB.
//
// Also different: a series' labels are sorted by name if they arrive
// unsorted (Prometheus 3 does the same, in prompb's ToLabels, after
// Unmarshal), strings are not copied (Label bytes alias the body),
// label bytes are not checked for UTF-8 here (ValidateLabels does, as
// prompb does not), and the snappy decoder (klauspost's s2) also accepts
// S2's repeat-offset extension, a superset of snappy, where Prometheus
// uses golang/snappy.
//
// # Series key
//
// Series.Key is the labels with a non-empty value in name order in
// write's label set encoding (name, 0xff, value, 0xff per label;
// write/doc.go), which is also the input of Prometheus's
// labels.StableHash: xxhash64 of Key is StableHash of the stored set
// (and Labels.Hash of Prometheus's slicelabels build; its default
// stringlabels Hash hashes a different encoding). The decoder does not
// hash it: the ring places a series by a hash of tenant and labels
// (raftgroup/ring.Hash, in the distributor), so a hash of the labels
// alone, which the decoder computed until remote write 2.0, was never
// read; it cost 15% of a decode.
package remotewrite
