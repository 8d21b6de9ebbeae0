// Package frontend is the query frontend: an http.Handler in front of the
// query API that splits range queries by time, caches their results piece
// by piece, queues every query per tenant so that one tenant cannot
// starve the others, and can run aggregations as shards (Cortex's and
// Mimir's query frontend, in process). It
// sits above PromQL: it reads and writes the Prometheus API's JSON and
// never reads storage (internal/archtest keeps it from importing the
// server root, the engine, Raft, the querier or the distributor).
//
// # A query through the frontend
//
// ServeHTTP takes /api/v1/query and /api/v1/query_range (also under
// /prometheus); anything else, and any query request it cannot read as the
// API would (tenant, parameters, an expression over the size or depth
// guard or that does not parse, a limit parameter, a multipart form), goes
// to the API unchanged, which answers it. For the others, in order:
//
//  1. The tenant's outstanding queries: past
//     Limits.MaxOutstanding, 429 "too many outstanding requests" (Mimir's
//     words). The query then runs under Options.Timeout.
//  2. A range query: with AlignQueriesWithStep, start and end move down to
//     a multiple of step (not for @ start()/@ end(), whose times would
//     move with them); @ start() and @ end() become the query's times, so
//     that every piece sees the whole query's; the steps are cut at the
//     multiples of SplitInterval since the epoch (splitByInterval).
//  3. Each piece is looked up in the results cache (unless the client asked
//     for stats): a cached extent covers some of its steps, and only the
//     steps before or after it are computed.
//  4. Every piece to compute (or the instant query) waits in its tenant's
//     FIFO of the fair queue; MaxInFlight workers take them round-robin
//     across tenants, take a CPU slot of the tenant's (server/cpuslot,
//     Options.CPUSlots) and call the API under it, always with
//     stats=true (or all), and decode its answer under the same slot
//     (result.go: one pass that checkpoints in the slot). A
//     client that goes away or a timeout drops its waiting pieces and
//     cancels the running ones; the first failed piece fails the query
//     with the API's own answer.
//  5. The answers are joined (mergeMatrices: series by labels, points in
//     time order, sorted as the engine sorts a matrix; annotations
//     merged; stats added up) and written in the API's JSON, byte for
//     byte what the API writes for the same result, under a CPU slot of
//     the tenant's if they hold more than minSlotPoints points; then
//     the pieces' new extents are stored (without a slot: a shared
//     cache is a network call).
//  6. A query longer than LogQueriesLongerThan is logged ("slow query
//     detected") with tenant, query, times, duration, series and samples
//     fetched.
//
// # Results cache and staleness
//
// A piece's key names the tenant(s), the query as sent, the step and the
// start's offset within it, the split interval and the piece's index, and
// lookback_delta. The value is an extent: the answer for a contiguous run
// of the piece's steps, the time it was computed, and the key again (the
// backend stores under a hash; a different key read back is a miss).
// Format in cache.go (encodeExtent), version byte first.
//
// Nothing newer than now - MaxCacheFreshness (10m) is cached, nor a query
// with a negative offset or an @ time after that. An extent is used for
// ResultsCacheTTL (1h) after it was computed. So a sample written with a
// timestamp older than now - MaxCacheFreshness into a range already
// cached (a backfill, a new series' history, a sender catching up) is
// missing from answers for at most ResultsCacheTTL after it was written;
// one within MaxCacheFreshness of now is always seen.
//
// # Sharding
//
// With Options.ParallelizeShardableQueries and Limits.TotalShards > 1, a
// query (or a piece of one) whose data is all read inside shardable
// aggregations runs as shards (shard.go has the rewriting): each such
// aggregation becomes n queries with the selector __query_shard__="i_of_n"
// (server/queryshard), queued like pieces, and the frontend's own PromQL
// engine evaluates the rest of the query over their answers. Values equal
// the unsharded ones to a relative 1e-12, but for sums that mix
// magnitudes 2^53 apart and averages whose sum overflows; a query whose
// shards give annotations runs again unsharded. With
// Limits.TargetSeriesPerShard (the default), a query is cut only once it
// has run and read enough series for two shards, into one shard per that
// many series it read (estimate.go), and not again after its shards gave
// annotations.
//
// # Concurrency
//
// The queue owns MaxInFlight worker goroutines (New starts them, Close
// stops and waits for them). A query's goroutine starts one goroutine per
// piece it computes (and a sharded piece one per shard of every leg, all
// started before its engine selects any, and one per leg that closes the
// leg's done channel) and waits for all of them before it answers. CPU slots: a worker holds one while it
// calls the API and decodes; a sharded piece's engine holds one of its
// own and pauses it while it waits for its shards (which take theirs
// from the workers), so no goroutine waits for a slot while holding one. The Frontend's fields are immutable after
// New but the outstanding counts, which mu guards.
package frontend
