// Package engine is the storage engine of one node: it applies write
// batches to an in-memory head of open chunks, keeps sealed chunks, series
// and postings in one Pebble database, and answers selects for PromQL as a
// storage.Querier.
//
// It owns the Pebble key schema, chunk cutting, and the checkpoint and
// recovery protocol. The write batches it applies, the label set encoding
// it stores and the refusals it reports are package write's (formats in
// write/doc.go). It must not import server or raftgroup (an arch test
// enforces it), must not read the clock or use randomness on the apply
// path, and must not depend on map iteration order for anything it writes.
//
// # Caller protocol (one Raft group replica)
//
//  1. Open the store once per node: db, err := Open(opts).
//  2. g, from, err := db.OpenGroup(id) loads the group's last checkpoint and
//     returns its index. Replay every committed log entry after from, in
//     order, with g.Apply; then apply new entries as they commit.
//  3. g.Apply(index, entry) from one goroutine, indexes increasing; entry
//     is an encoded write.Batch or a deletion (write.AppendDeleteSeries,
//     AppendDeleteTenant, AppendRetain). An index at or below the applied index is
//     ignored. Per-sample refusals come back as []write.Refusal; an entry
//     that does not decode is refused whole (an error wrapping
//     write.ErrCorrupt; the index counts as applied); any other error is
//     an I/O failure that leaves the group unusable until the store is
//     reopened.
//  4. g.Checkpoint() now and then (it syncs); afterwards the Raft log up to
//     g.AppliedIndex() may be truncated. On a full disk it fails with the
//     ENOSPC (see "Disk full"); try again later.
//  5. g.Querier(tenant, mint, maxt) or g.Queryable(tenant) from any
//     goroutine; Close queriers. g.QuerierWithBudget counts the reads
//     against a query's ReadBudget: a Select asks it before holding the
//     series the index matched, a series iterator before holding each
//     chunk, and their refusal fails the call with the budget's error as
//     it is.
//  6. Raft snapshots: g.Snapshot(w) checkpoints and streams the group's keys
//     (layout in Snapshot's doc); g.Restore(r) on another replica replaces
//     its group with them and resumes at the snapshot's index.
//  7. db.Close().
//
// Under Raft, NewApplier(g, from) is the group's raftgroup.Applier (cmd
// wires it; engine does not import raftgroup): Apply returns step 3's
// refusals, or the error that refused an undecodable entry, as an encoded
// write.Outcome for the proposer, and only I/O failures as errors;
// Checkpoint, Snapshot and Restore are steps 4 and 6 with the index each
// covers.
//
// # Determinism
//
// Replicas that apply the same entries hold the same bytes after a
// checkpoint (TestReplicasHoldIdenticalData compares whole stores): tenant
// and series ids are allocated in apply order; a head chunk is cut when it
// holds Options.ChunkSamples samples or a sample falls in a later time
// partition; retention ("too old") is relative to the newest sample time of
// the tenant seen by apply, never the wall clock. Checkpoints do not cut
// chunks, so when a replica checkpoints does not change what it stores.
//
// # Samples
//
// Prometheus semantics, per series: a sample older than the series' newest
// is write.ErrOutOfOrder; one at the same timestamp with different value
// bits is write.ErrDuplicateSample, with the same bits it is accepted and
// ignored (retries are idempotent); one older than the tenant's newest
// sample minus its retention (Options.Retention, or the tenant's
// retention_period from a retention entry) is write.ErrTooOld; the samples of a new
// series whose label set is not valid (write.CheckLabels, checked only
// when the tenant does not have the series yet) are
// write.ErrInvalidLabels. A refused sample never stops the rest of the
// batch.
//
// Out-of-order window (ooo.go, ooo_hist.go): a sample or histogram
// older than its series' newest is accepted when the batch carries a
// window (write.Batch.OutOfOrderWindowMs) and it is within it of the
// tenant's newest sample (maxT); it goes into the open chunk or into the
// sealed chunk of its partition whose mint is the newest at or before it
// (a new chunk at its time if there is none), re-encoded at the same
// key. Chunks never overlap, their keys never move and sealed chunks are
// never split (a histogram into the open chunk may cut it where
// Prometheus's appender cuts, as in order), so a replay makes the same
// choices. A sample is refused in a chunk of another kind (float,
// integer or float histogram). Beyond the window the refusal names it.
//
// # Series limits
//
// A batch carries the series limits of its tenant in this group
// (write.SeriesLimits, scaled by the proposer). The head counts, per
// tenant, the series whose open chunk holds samples, in all and per
// metric name (Stats' HeadSeries); a series that is not counted yet (new,
// looked up again after eviction, or replayed after a restart) is refused
// whole, write.ErrSeriesLimit or write.ErrMetricSeriesLimit, when
// counting it would go past a limit of the entry that brings it; counted
// series are never refused by a limit. A series leaves the count when it
// is evicted. A revived series counts from its first accepted sample, not
// from its lookup: a replica that restarted forgets revived series that
// accepted nothing, one that did not keeps them in memory, and both must
// count alike. The counts are rebuilt from the checkpoint's open chunks
// on load, so a restarted replica decides as one that did not restart
// (TestSeriesLimitsDeterministic).
//
// # Pebble key schema
//
// Every key starts with the group (uint32 big-endian) and the tenant id
// (uint32 BE, allocated per group in apply order, 0 reserved for group
// meta), then a kind byte. Dropping a group replica is one DeleteRange over
// [group, group+1) (DB.DropGroup); dropping a tenant is one DeleteRange
// over its prefix plus the point delete of its name, as a replicated log
// entry (Group.ApplyDeleteTenant).
//
//	[g][0]'a'                              -> applied index, uint64 BE
//	[g][0]'k'                              -> checkpoint index, uint64 BE
//	[g][0]'f'                              -> format version, 1 byte (4)
//	[g][0]'n'                              -> next tenant id, uint32 BE
//	[g][0]'t' name                         -> tenant id, uint32 BE
//	[g][t]'m' 'i'                          -> next series id, uint64 BE
//	[g][t]'m' 'x'                          -> newest sample time at the checkpoint
//	[g][t]'m' 'r'                          -> oldest partition kept by retention entries, uint32 BE
//	                                          [+ the tenant's retention period in ms, uint64 BE]
//	[g][t]'m' 'g'                          -> newest sample time left to a series a range deletion evicted
//	[g][t]'m' 'E' page:4                   -> a page of the tenant's exemplars, at the checkpoint
//	[g][t]'m' 'M' page:4                   -> a page of the tenant's metric metadata, at the checkpoint
//	[g][t]'s' id:8                         -> labels
//	[g][t]'h' hash:8 id:8                  -> (empty)
//	[g][t]'p' part:4 esc(name) esc(value) id:8 -> (empty)
//	[g][t]'c' part:4 id:8 mint:8           -> uvarint(maxt-mint) chunk
//	[g][t]'o' id:8                         -> 0x02 flags:1 run:1 [runMint:8] open chunk (EncXOR), at the checkpoint
//	                                          or 0x02 flags:1 0xff histogram chunk (see Native histograms)
//	[g][t]'e' id:8 index:8                 -> t:8 vbits:8, newest sample at eviction
//	                                          or t:8 histogram chunk of that one sample
//	[g][t]'S' part:4 id:8 0x00 t:8         -> mode:1 param:varint, a start timestamp rule
//	[g][t]'S' part:4 id:8 0x01 t:8         -> st:varint, an out-of-order sample's start timestamp
//	[g][t]'m' 's'                          -> (empty) the tenant has start timestamps
//
// Integers are big-endian so keys sort numerically; times (mint, the 'x'
// value) have the sign bit flipped so negative times sort first. labels is
// the series identity: its label set in write's encoding (name 0xff value
// 0xff per label in name order; write/doc.go), the bytes the batch
// carried, stored without re-encoding. hash is xxhash64 of labels, equal
// to labels.StableHash; the 'h' keys find a series by label set (a prefix
// scan of 8+8-byte keys, then the labels compared, so a hash collision
// only costs a read). TestKeySchemaGolden freezes the schema: it applies
// fixed entries and compares every key and value of the store with
// testdata/keyschema.golden (rewritten with -rewrite, with a
// formatVersion bump and this doc).
//
// Format version: [g][0]'f' holds the group's format byte (4), written
// when the group is created. OpenGroup refuses a group with another
// version, or with data and no format key (written before it existed),
// with ErrFormat. Version 1 encoded labels with uvarint lengths. Version
// 2 sealed histogram chunks in Prometheus's encodings (0x40, 0x41); 3
// seals them in chunkenc's (see Native histograms) and reads both; 4
// starts every 'o' value with its version byte (2) and a flags byte
// (bit 0: the series accepted a sample since the last eviction scan;
// see Eviction), where 3 started with the merge run. OpenGroup opens a
// group of version 2 or 3 and, before writing anything else, rewrites
// its 'o' values to version 2 with bit 0 set and its format byte to 4
// in one synced batch.
//
// Time partitions: part = floor(t / Options.Partition) + 2^31 (so negative
// times sort first), 1 day by default. A series is in the postings of every
// partition in which it has a sample, written when its first sample in that
// partition is applied; a chunk never spans partitions (the head cuts at the
// boundary). A query over [mint, maxt] reads only the partitions that
// overlap it, and retention deletes whole partitions of 'p' and 'c' keys
// with two DeleteRanges per tenant instead of a scan. The empty name and
// value (esc("") esc("")) list all series of a partition, for matchers
// that match the empty value and need "all minus".
//
// esc(s) is s with 0x00 written as 0x00 0xff, followed by 0x00 0x01: it
// sorts like s, and no escaped string is a prefix of another, so a
// name/value pair is unambiguous and all values of a name, or all values
// with a given prefix, are one contiguous range. That range is what makes
// the regex fast paths cheap: =~"api|db" reads two postings lists,
// =~"api.*" scans only values starting with "api", and a value that does not
// match is skipped with one seek past its postings.
//
// Chunk key order, partition before series: a query of N series over P
// partitions does N*P forward seeks with one iterator, in key order, and
// reads each series' chunks of a partition contiguously. The alternative,
// series before partition, would save seeks on 30-day queries of one series
// but makes retention a per-series scan; and with 1-day partitions a 30-day
// query of 10k series is 300k seeks over sorted keys, which is cheap next
// to decoding the 1.7 billion samples (at a 15s interval) they return. The chunk value starts with its
// maxt so a reader skips chunks outside the range without decoding.
//
// Retention: after each batch, when maxT - the tenant's retention
// (Options.Retention, or the period of its last retention entry that had
// one) enters a new
// partition, the 'c' and 'p' keys of the partitions it passed are deleted
// with two DeleteRanges (disjoint from earlier ones: Pebble fragments
// overlapping tombstones on every iterator), and readers clamp to the kept
// partitions. Series keys ('s', 'h', 'e', 'o') of series that only had
// data in dropped partitions stay until a retention entry
// (Group.ApplyRetain, write.Retain) collects them: it drops the
// partitions before its time, stores the partition and its period under
// 'm' 'r' (reads clamp to it and older samples are write.ErrTooOld,
// across restarts),
// and deletes the series keys of every series in no kept partition's
// all-series postings.
//
// Open chunks: the head keeps each active series' open chunk in memory as
// an appendable XOR chunk and seals it (re-encoded in Options.SealEncoding)
// into a 'c' key when it is cut. Checkpoint writes the open chunk of every
// series changed since the last checkpoint to its 'o' key, deletes the 'o'
// keys of series evicted since, and writes the tenants' newest sample times
// to 'm' 'x' and the checkpoint index, in one synced batch. The 'o' value
// starts with its version byte (2) and flags (the eviction flag), then
// the series' merge run: the number of sealed chunks in it
// (one byte) and, if not zero, the mint of its first chunk (8 bytes, sign
// bit flipped, as in keys).
//
// Merge runs: sealed chunks of a series within a partition are merged in
// runs of Options.MergeChunks (8): the seal that completes a run, or the
// last seal of a partition (a sample in a later partition, or eviction),
// reads the run's earlier chunks through the apply batch (an indexed
// batch: they may have been sealed by the same entry), deletes their keys
// and writes all the samples as one chunk at the first one's key. So the
// head keeps ChunkSamples (120) per series in memory while stored chunks
// hold up to 960 samples: BenchmarkEngineDisk's raw key and value bytes
// drop from 0.77 to 0.43 per sample. The run state is part of the head
// and its checkpoint, so merges happen at the same seals on every replica,
// restarted or not; a replay that finds a run already merged by entries
// lost in a crash deduplicates the samples (identical) and writes the
// same chunk.
//
// Eviction: every Options.EvictIdle/4 of a tenant's sample time, apply scans
// the head once; a series that is idle, its newest sample older than
// maxT - EvictIdle and no sample accepted into its open chunk since the
// previous scan, has its open chunk sealed, its newest sample written to
// an 'e' record keyed by the entry index, and leaves memory. The scan
// clears the flag that records those samples (memSeries.appended) and
// marks the series dirty, so the checkpoint holds the flag as the scan
// left it and a restarted or restored replica decides the next scan as
// the others do. (Age alone evicted series written all the time but
// behind the tenant's newest sample at every scan: 97 chunks a day
// instead of 2 at 90 minutes behind.) A later sample for an evicted
// series finds it by label hash in Pebble and takes the newest sample
// from 'e' for the out-of-order and duplicate checks.
//
// # Native histograms
//
// A series is float or histogram-typed per chunk, as in Prometheus: its
// open chunk is a float chunk (memSeries.head) or a histogram chunk
// (memSeries.hist), never both with samples; a sample of the other kind
// (or an integer histogram after float histograms, and the reverse) seals
// the open chunk first. A float series' merge run ends there: histogram
// chunks are sealed alone, never merged. The open histogram chunk is
// Prometheus's tsdb/chunkenc HistogramChunk or FloatHistogramChunk
// (appendable) behind an encoding byte of its own, 0x40 or 0x41 (far
// above chunkenc's encodings, so chunkenc.EncodingOf never takes one for
// its own): an 'o' value after the byte 0xff (never a merge run length,
// at most 254), an 'e' value after the time (longer than a float
// record's 16 bytes), a query's head copy. A sealed histogram chunk (a
// 'c' value after its maxt) is re-encoded on seal into chunkenc's
// EncHistPack (3) or EncFloatHistPack (4), every sample as Prometheus's
// iterator of the open chunk returns it, counter reset hints included,
// so readers see the same histograms (0.6x the bytes). Stores written
// before that hold sealed 'c' chunks in 0x40/0x41 too; they are read as
// they are, never rewritten (a range deletion rewrites a chunk in the
// encoding it found). histchunk.go is the one place that chooses and
// reads the formats.
//
// Cutting depends only on the samples, so replicas cut alike: a chunk is
// cut at ChunkSamples samples, at 1 KiB once it holds 10 (Prometheus's
// TargetBytesPerHistogramChunk and MinSamplesPerHistogramChunk), at a
// partition boundary, and where Prometheus's appender itself starts a
// new chunk (a counter reset, a schema or zero threshold change, a
// layout it cannot recode). Appending never passes the previous chunk's
// appender (Prometheus's head does, to set the new chunk's counter reset
// header): a replica that restarted has no such appender, and the bytes
// must not depend on it; PromQL detects resets itself where the header
// says unknown. An open histogram chunk restored from a checkpoint is
// re-encoded sample by sample (Prometheus's chunk cannot resume
// appending from its bytes), and the result is checked to be the same
// bytes.
//
// The sample rules are Prometheus's for histograms: older than the
// series' newest sample (of either kind) is write.ErrOutOfOrder; at the
// same time, an equal histogram (histogram.Equals after compaction: a
// chunk stores empty buckets of its layout) is an idempotent retry, any
// other sample write.ErrDuplicateSample; a histogram Prometheus's
// histogram.Validate refuses is refused (every replica checks it: the
// chunk appender assumes a valid histogram). A float stale marker
// (StaleNaN) for a series whose newest sample is a histogram is stored
// as a histogram stale marker of that kind, as Prometheus's head does.
//
// # Start timestamps
//
// A sample may carry a start timestamp (ST: remote write 2.0's
// start_timestamp; write.SeriesMeta.StartTimestamps), which readers
// return through AtST (st.go). They are kept beside the chunks, under
// 'S' keys per partition and series, never in them: the ST of a sample
// at t is its point's (0x01 key at t) if it has one, else that of the
// newest rule (0x00 key) at or before t in t's partition, else 0. A rule
// is stNone (0), stAbsolute (param) or stOffset (t - param). An in-order
// sample writes a rule at its time when the rule in force does not give
// its ST (offset when its ST is the previous sample's time, else
// absolute); an out-of-order one writes a point when the rule in force at
// its time does not give its ST. Every path that moves samples between
// chunks (seal, merge runs, out-of-order re-encodes, range rewrites,
// histogram recodes) keeps their times, so it keeps their STs untouched.
//
// Determinism: rules are written by in-order samples only, at a time
// after every sample of the series then, and the rule in force is read
// from the head's cache (memSeries.st) or, when the head does not know
// it (after a restart, a revival, a range deletion), from the apply
// batch and Pebble at or before t: a replay that finds later entries'
// keys in Pebble finds none at or before t but points, which rule reads
// skip. A rule never spans partitions, so retention drops a partition's
// STs with its chunks ('S' keys in the same DeleteRange steps); a series
// deletion deletes its 'S' keys per partition; a range deletion deletes
// the 'S' keys in the range and writes the rule in force after it again
// at end+1 when that rule started inside the range. A tenant without any
// ST ('m' 's' absent) skips all of it: its store is byte for byte what
// it was (TestKeySchemaGolden), and readers do not look. The format
// version stays 3: the keys are new, old stores have none (every ST is
// 0), and a binary without them ignores them.
//
// # Exemplars and metric metadata
//
// A batch series may carry exemplars and a metric family's metadata
// (write batch version 7). Exemplars go to a circular buffer per tenant
// of the entry's write.MetaLimits.MaxExemplars (exemplars.go; the design
// of Prometheus's CircularExemplarStorage): a full buffer drops its
// oldest, an entry with another size resizes it keeping the newest. An
// exemplar is refused (ErrOutOfOrderExemplar) when older than its
// series' newest, accepted and not stored again when equal to it, and
// refused (ErrExemplarNoSeries) when its series has no samples in the
// head: that, unlike a series merely looked up, is the same on every
// replica. Metadata is kept per family, each distinct (type, unit, help)
// with the tenant's newest sample time when it last arrived; entries not
// seen for 10 minutes of sample time (Mimir's metadata retain period)
// are not served and are dropped when a limit needs room; a new family
// or entry past MaxMetadata or MaxMetadataPerMetric is refused. Both are
// in memory and written whole by Checkpoint when changed, in pages of at
// most 4,096 exemplars or families under 'm' 'E' and 'm' 'M' (layouts in
// exemplars.go, each page starting with its version byte 1), so a
// restart recovers them from the checkpoint and the replay of the
// entries after it, and a snapshot carries them like any key. Deleting
// the tenant deletes them; deleting series does not delete their
// exemplars (Prometheus's head does not either).
//
// # Recovery
//
// Apply commits without sync (the Raft log is the write-ahead log) one
// Pebble batch per entry holding the sealed chunks, new series and postings
// and the applied index. So after a crash Pebble holds everything up to some
// applied index A (a prefix: Pebble's WAL is ordered) and the head
// checkpoint at index C <= A. OpenGroup restores the head from C and
// reports C; the entries in (C, A] are replayed and rewrite the same keys
// with the same values: series created in (C, A] are found by label hash in
// Pebble and keep their ids, chunks cut in (C, A] are cut again at the same
// samples and encode to the same bytes. The stored applied index never goes
// down. Eviction keeps this: it does not touch 'o' keys (the checkpoint
// does), and eviction records are keyed by entry index: a replayed entry
// reads the newest record written before it, which is the one the original
// run read even if the series was evicted again later. Checkpoint deletes
// the records older than each series' newest.
//
// # Reads of recent data
//
// Each tenant's head has an index in memory (headIndex): label postings
// of the series in the head and of the ghosts, series evicted less than
// Options.IndexGhosts ago in sample time. A select or label query whose
// range starts within max(EvictIdle, IndexGhosts) of the tenant's newest
// sample (3h by default) is answered from it, under the tenant's read
// lock, once the log is replayed; older ranges read the postings in
// Pebble. A series whose open chunk starts at or before the range's start
// reads no sealed chunks (they all end before it, once replayed). After a
// restart the index holds the head only, so it covers from the newest
// sample then minus EvictIdle (tenant.mu.indexFrom) until the ghosts'
// horizon passes it. The index is memory only: nothing of it is stored or
// compared between replicas.
//
// # Disk full
//
// Pebble retries a failed flush at once and forever, and Flush waits for
// it: on a full disk that was a spinning core, ~400 log lines a second, a
// checkpoint that never returned (holding every tenant's lock, so
// queries hung too) and a Close that hung the node's shutdown. Pebble's
// file system is wrapped with vfs.OnDiskFull: a write that meets ENOSPC
// calls Options.OnDiskFull (the node's disk guard, which then refuses
// writes), waits a second and is retried once, so a failing flush is
// retried about once a second. A checkpoint, Close, DropGroup or Restore
// waiting for a flush fails with the ENOSPC as soon as a write fails
// after it started (about a second); the flush goes on in the background
// and succeeds once space is back. A checkpoint that failed this way
// leaves its dirty lists, so the next one rewrites the same keys; its
// batch is a valid checkpoint whenever Pebble manages to flush it. The
// flush does not hold the tenants' locks, so queries go on during every
// checkpoint. Pebble's disk-full errors are logged once, then at most
// every 5 minutes with a count.
//
// An apply whose memtables are full waits for the flush (Pebble's write
// stall), so on a full disk it waits for space; the node refuses writes
// before that (the guard's minimum), and its shutdown is bounded by cmd.
//
// Deletions (Group.ApplyDelete, ApplyDeleteSeries, ApplyDeleteTenant,
// ApplyRetain; entries told from batches by their first byte,
// write.IsDelete) are not monotonic: a replay of entry X
// that found a series already deleted by a later entry would create it
// again under a new id, and read chunks and eviction records the later
// entry removed. So a deletion is a checkpoint barrier: it checkpoints at
// the entry before it (synced) and only then commits, so no replay starts
// before a deletion the store holds; a replayed deletion (index at or
// below the stored applied index) changes only the head, which is then
// the checkpoint at the entry before it. The deleting batch also deletes
// the series' 'o' keys. A deletion of a time range rewrites the chunks
// that straddle it (re-encoded at the key of their first sample left) and
// trims the open chunk; an open chunk left empty is evicted with an 'e'
// record of the entry (a ghost of the head index with the newest sample
// left, and 'm' 'g' so that a restarted replica's index does not claim
// to cover that sample), and a series left with no sample is deleted
// whole.
// Its replay tells the series the entry deleted whole by their missing 's'
// key and trims the others' open chunks as the first run did. A tenant
// deletion's and a retention step's replays change nothing: the recovered
// head, loaded from the store as of the deletion, already lacks what they
// removed. docs/design.md ("Deletion and retention: deterministic series
// identity") has the rejected alternatives and the costs.
//
// Reads between OpenGroup and the end of the replay see the recovered head
// and whatever Pebble holds; a chunk sealed in (C, A] may overlap the
// recovered open chunk, and the series iterator emits each timestamp once.
// Raft should not serve reads from a replica that has not caught up.
package engine
