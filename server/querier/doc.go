// Package querier answers a tenant's queries over the Raft groups that hold
// its series: a storage.Querier that fans each call out to every group
// owning data in the query's range and merges the answers, and the remote
// protocol by which a node reads a group whose leader is another node.
//
// It owns the fan-out and merge rules, the wire format of the remote
// protocol, and both of its ends (Handler, Remote). It does not know where
// groups live, which node leads them, or how leadership is confirmed: a
// Router (raftgroup/cluster's) answers the owners of a range and routes
// each read to a group's leader with retries; Routed turns it into the
// Groups of the fan-out, and Verified into the LocalGroups of the handler
// (the engine's replicas this node leads, with a quorum-confirmed read).
// It must not import raftgroup or raftgroup/cluster (only the value
// package raftgroup/ring) nor the server package above it; it holds no
// package-level mutable state.
//
// # Fan-out
//
// New(groups, opts).Querier(tenant, mint, maxt) returns a querier that
// opens nothing. Each Select, LabelNames and LabelValues:
//
//  1. asks groups.Owners(mint, maxt) for the groups that may hold series
//     with samples in the range (all groups of every ring epoch that
//     overlaps it: a rebalance leaves a series' older samples in its old
//     group);
//  2. opens each owner's querier with groups.Querier (once per fan-out
//     querier: later calls reuse it, Close closes them all), at most
//     Options.MaxConcurrency at a time, in parallel;
//  3. Select: selects sorted from every owner (one owner: passes sortSeries
//     through and returns its set as is) and merges with
//     storage.NewMergeSeriesSet and storage.ChainedSeriesMerge: series
//     with equal label sets become one, their samples the union in time
//     order with a timestamp present in several groups taken once (a
//     rebalance moves a series; a retried write may leave the same sample
//     in the old and the new group). The merged set is sorted whatever
//     sortSeries asked; hints.Limit cuts it after the merge (each owner
//     returns its first Limit sorted series, which hold the first Limit of
//     the union). Series are decoded lazily; PromQL may hold every series
//     of a set before iterating any, and that works (a series stays valid
//     after Next).
//  4. LabelNames/LabelValues: the sorted, deduplicated union of the
//     owners' answers, cut at hints.Limit.
//
// Any owner's error fails the whole call and names the group ("select on
// group 3: ..."): a partial answer would be a wrong answer. Warnings and
// infos of every owner are merged into the call's annotations.
//
// # Remote protocol
//
// HTTP POST to PathSelect, PathLabels or PathValues on the node that leads
// the group (Remote is the client, Handler the server). Integers are
// encoding/binary uvarints and varints (zig-zag) unless given a width;
// string = len:uvarint bytes.
//
// Request body (version 4, RequestVersion; versions 2 and 3 have the
// same layout):
//
//	request  = version:byte(4) group:uvarint tenant:string
//	           mint:varint maxt:varint
//	           nmatchers:uvarint matcher*nmatchers
//	           tail
//	matcher  = type:byte name:string value:string
//	           type: 0 '=', 1 '!=', 2 '=~', 3 '!~' (labels.MatchType)
//	select   tail = flags:byte [hints] maxSeries:uvarint
//	           flags bit 0: sortSeries; bit 1: hints follow; others 0
//	hints    = start:varint end:varint limit:uvarint step:varint
//	           func:string ngrouping:uvarint grouping:string*ngrouping
//	           by:byte(0|1) range:varint shardCount:uvarint
//	           shardIndex:uvarint disableTrimming:byte(0|1)
//	labels   tail = limit:uvarint
//	values   tail = name:string limit:uvarint
//
// The whole body must be consumed; regexps are compiled on decode. A body
// that does not decode is 400. maxSeries is the query's
// max_fetched_series_per_query (0: none). Version 1 is version 2 without
// maxSeries (the handler still reads it, as a select without a limit);
// its golden files are frozen.
//
// Response: a status other than 200 is an error before any data, the body
// its text: 503 when LocalGroups refuses the read (this node does not lead
// the group, or a quorum did not confirm it: the caller tries the group's
// new leader), 422 when the select matches more series than maxSeries
// (the body is the limit's error, which the client returns as a
// limits.QueryLimitError, never retried), 400 for a bad request, 500
// otherwise; the client's other errors wrap ErrRemote. A 200 body is a
// stream of frames:
//
//	response = version:byte(3) frame* trailer
//	select:  frame = series ((chunk | hchunk) [sts])*
//	series   = 'S' nlabels:uvarint (name:string value:string)*nlabels
//	chunk    = 'C' mint:varint maxtDelta:uvarint len:uvarint data:len bytes
//	hchunk   = 'H' enc:byte mint:varint maxtDelta:uvarint len:uvarint data:len bytes
//	sts      = 'P' n:uvarint stdelta:varint*n
//	labels, values: frame = 'N' value:string
//	trailer  = 'T' count:uvarint error:string
//	           nwarnings:uvarint (info:byte(0|1) text:string)*nwarnings
//
// Series come in the order the group's Select returned them (sorted when
// asked). A series' chunks follow it in time order and do not overlap;
// a 'C' chunk's data is a Prometheus tsdb/chunkenc XOR chunk (its 2-byte
// sample count, then the bit stream; the format of Prometheus remote
// read's STREAMED_XOR_CHUNKS) of 1 to 120 float samples, mint and
// mint+maxtDelta its first and last timestamps, so a reader skips chunks
// on Seek without decoding them. Sample values are raw IEEE 754 bits: the
// staleness NaN and every other NaN payload round-trip bit for bit. An
// 'H' chunk holds native histograms: enc 1 is a Prometheus
// HistogramChunk (integer counts), 2 a FloatHistogramChunk, built with
// Prometheus's appenders (as its remote read streams histograms), of up
// to 120 samples or 1 KiB once it holds 10; a series that switches
// between floats and histograms (or between the two histogram types)
// switches chunks, and a counter reset or a bucket layout the appender
// cannot recode starts a new one, so the chunk's counter reset header
// says what Prometheus's head would. With hints.Func == "series"
// (Prometheus's /api/v1/series) no chunk is sent: the series carry labels
// only and iterate no samples, as in Prometheus's TSDB.
//
// Exemplars and metadata: PathExemplars and PathMetadata take the same
// request with the tails
//
//	exemplars tail = nsets:uvarint size:uvarint*nsets
//	metadata  tail = metric:string
//
// where the matchers are the exemplar query's matcher sets one after the
// other (their sizes add up to nmatchers) and metric is "" for every
// family. Their responses are the version byte, frames, and the trailer
// (its count the series, or the metadata, sent):
//
//	exemplars: frame = series exemplar*
//	exemplar = 'E' ts:varint value:8 bytes LE nlabels:uvarint
//	           (name:string value:string)*nlabels
//	metadata:  frame = 'M' family:string type:byte unit:string help:string
//
// A node of an earlier release answers these paths 404, so during an
// upgrade an exemplar or metadata query that needs such a node fails
// (it answers again once every node runs this release).
//
// Start timestamps (response version 3): a 'P' frame after a chunk holds
// the start timestamps of its n samples (remote write 2.0's
// start_timestamp, the engine's AtST), each the difference to the one
// before (to 0 for the first), 0 for a sample without one; a chunk none
// of whose samples has one gets no 'P' frame, so a series without start
// timestamps costs nothing. The client returns them through AtST; a
// chunk with more samples than its 'P' frame's n is corrupt.
//
// Versions: the request's version says what the client reads. A request
// of version 4 (RequestVersion; the layout of version 2) gets response
// version 3 (Version); one of version 3 gets version 2
// (VersionHistograms: version 3 without 'P' frames, so its client reads
// no start timestamps); one of version 1 or 2, from a node of an earlier
// release during an upgrade, gets response version 1 (VersionFloats):
// version 2 without 'H' frames, where a histogram sample fails the select
// as it did before. The client reads responses 1, 2 and 3.
// testdata/select_request_v2.hex and select_response_v1.hex hold them;
// select_response_histograms.hex freezes 'H' frames.
//
// The trailer ends every 200 response and is its last byte. count is the
// number of series (or strings) sent; error is empty on success,
// otherwise the failure that happened after the stream started (the
// stream is then incomplete and the whole call fails); warnings carry the
// annotations, info 1 for PromQL infos. A stream that ends before its
// trailer, whose count disagrees, or with bytes after the trailer is an
// error on the client (wrapping io.ErrUnexpectedEOF or ErrCorrupt), never
// a shorter answer: TestRemoteCutShort cuts a response at every byte.
//
// A format change bumps Version, updates this section and the golden
// files in testdata/ (TestWireGolden -rewrite) together.
//
// # Memory and flow
//
// The handler buffers HandlerOptions.FlushBytes (32 KiB) of frames, then
// writes and flushes them, so a select of any size holds one buffer and
// the current series on the server; the client reads through a 32 KiB
// bufio.Reader and decodes a series (labels, chunk bytes copied into 64
// KiB slabs shared by series) only when Next reaches it, and its samples
// only when its iterator does. The client's footprint is thus the
// compressed size of what the caller keeps (PromQL keeps every selected
// series until the query ends).
//
// Encoding uses Myelin's chunkenc.XOR appender, byte-identical to
// Prometheus's (chunkenc's format test compares them) and cheaper:
// Prometheus's bit-at-a-time appender took ~40% of the remote benchmark's
// CPU, ours ~23%. Decoding uses Myelin's chunkenc.Iterator (as fast as
// Prometheus's here), which reports a truncated chunk as corrupt.
// BenchmarkRemoteSelect reads 96,000 samples of 200 series: ~10M
// samples/s through the protocol over loopback against ~27M for a local
// select of the same group (2-core VM): the remote path re-encodes every
// sample to XOR on the server and decodes it on the client, on top of the
// engine's own read.
//
// # Read limits
//
// A query's limits.QueryBudget travels in the context of its calls. A
// group's select is refused before it loads its series when its index
// matches more than max_fetched_series_per_query: locally through the
// engine (Local's budget), remotely through the request's maxSeries.
// Chunk bytes count against max_fetched_chunk_bytes_per_query where
// they are held: as the engine's iterators read them for a local group,
// as their frames arrive for a remote one (the client stops reading past
// the limit, so a select holds at most that much; the handler streams
// and holds one buffer). The series returned are counted by the caller
// (the server's query API), once per label set.
//
// # Caller protocol
//
// Server (each node):
//
//  1. h := NewHandler(local, HandlerOptions{...}) with validated options.
//  2. Route PathSelect, PathLabels and PathValues (the prefix
//     /internal/querier/) to h on the node's internal listener.
//
// Client (the node answering a query):
//
//  1. f := New(Routed(router, local, window, answerTimeout), Options{...});
//     pass f as server.Storage.
//  2. Routed's group queriers ask the router for the leader on every call:
//     the engine's querier when this node leads the group, otherwise
//     NewRemote(client, leaderURL, g, tenant, mint, maxt) whose answer must
//     start within answerTimeout; the router retries on the new leader or
//     another replica.
//  3. Close every querier f returns (PromQL does); it closes the group
//     queriers and any response body not read to the end.
package querier
