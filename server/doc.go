// Package server holds Myelin's HTTP APIs: remote-write ingest, the
// Prometheus query API, tenancy and limits. It is the only package that
// maps errors to HTTP status codes (400 bad input, 429 limits, 5xx
// retryable) and never touches Pebble directly.
//
// # Tenancy
//
// A tenant is named by the X-Scope-OrgID header (server/tenant: Cortex's
// rules). With multi-tenancy off every request belongs to tenant.Default.
// A request without one is answered 401 "no org id", as Mimir does.
// Handlers put the tenant into the request context (tenant.With); storage
// reached through Prometheus interfaces that carry no tenant reads it from
// there (tenant.From).
//
// # Auth
//
// AuthGate applies server/auth to every route cmd registers on Routes
// (which also times each route and answers 503 until the node is open), each with
// what it needs (auth.Need: public, write, read, metrics, admin, or any
// token for whoami, which gets the principal in its context): 429
// past the failed-attempt limit, 401 without a known token, 403 for a
// scope or tenant the token lacks; otherwise the request goes on with
// X-Scope-OrgID set to the tenant(s) it acts as and no Authorization
// header, so the handlers read the tenant as without auth. With auth
// off (no keys) Wrap returns each handler as it is. A read whose header
// names several tenants ("a|b", QueryOptions.Federation, on with auth
// only) reads each and labels every series with __tenant_id__
// (federation.go, Cortex's rules). docs/design.md "Auth" has the table of
// routes and the reasons.
//
// # Remote write: memory and in-flight limits
//
// WriteHandler serves a push in this order (ServeHTTP has the answers):
//
//  1. Method, content type and tenant: refused without reading the body.
//  2. A slot of the node's in-flight requests
//     (-distributor.instance-limits.max-inflight-push-requests), else 429.
//  3. The body's bytes, reserved against the node's in-flight bytes
//     (-distributor.instance-limits.max-inflight-push-requests-bytes)
//     before they are read: the Content-Length, or 64 KiB chunks of a body
//     without one; then the decompressed length the snappy header
//     announces, before decompressing. Past the limit, 429.
//  4. Decode (remotewrite: the Request's slices sized once for the body),
//     validate each series without allocating (Limits.CheckSeries; the
//     first refused series alone gets its error text), build the batch
//     in place (it aliases the Request's keys and samples) and Write it.
//  5. Give the slot and bytes back; pool the state (body, Request, batch)
//     unless it holds more than maxPooledStateBytes; after a push of 32
//     MiB or more decompressed, return the freed memory to the OS.
//
// So a push allocates at most pushMemPerByte (12) bytes per byte it
// reserved (TestWriteMemory, for the worst bodies within the limits), and
// all pushes together at most 12 times the in-flight bytes limit
// (TestWriteInflightLimits, over HTTP). A refused series costs no
// allocation, and nothing of a request outlives it but a bounded pooled
// state, which two GCs free. A slow client holds its slot and bytes until
// the server's read timeout cuts its body off.
//
// The limits answer 429, as the issue asked and as Mimir answers its
// per-tenant rate limits; Prometheus retries a 429 only with
// queue_config.retry_on_http_429 (off by default: it drops the batch),
// while it always retries a 5xx. docs/design.md has the trade-off.
//
// # OTLP
//
// OTLPHandler serves OTLP/HTTP metrics through WriteHandler's write: it
//  1. reads the body (gunzipped) with every byte reserved, then reserves
//     otlpMemPerByte per decompressed byte for the translation;
//  2. translates it into the same remotewrite.Request remote write
//     decodes into: a protobuf body with otlpFast (otlp_fast.go: the
//     bytes straight into the request, no allocation per point), and
//     anything otlpFast gives up on with pdata and Prometheus's
//     translator (translatePdata), which also gives every error;
//  3. writes it with WriteHandler.write and answers per the OTLP spec.
//
// The two translations give the same request and refusals (otlpFast's
// INVARIANT; TestOTLPFastEquivalence and FuzzOTLPFast check it).
//
// # Query API
//
// QueryAPI is Prometheus's own web/api/v1 implementation restricted to the
// read endpoints (query, query_range, query_exemplars, format_query,
// parse_query, labels, label/<name>/values, series, metadata,
// status/buildinfo), under /api/v1 and /prometheus/api/v1, GET and POST.
// Reusing it makes the JSON, status codes and error types exactly
// Prometheus's, which Grafana and promtool rely on; writing our own would
// only add ways to differ. Its storage.Queryable is tenant-less, so ours
// opens the tenant's querier on the first call that carries a context.
// Additions of ours: /api/v1/status/tsdb, the cardinality of the
// request's tenant(s) in Prometheus's shape, counted by one select over
// the last hour (query_cardinality.go); Mimir's cardinality API,
// /api/v1/cardinality/label_names, label_values and active_series, with
// Mimir's parameters and JSON, counted the same way; and seriesFetched
// in the stats a query returns with stats=true, the series its selects
// returned.
//
// # Query guards
//
// Prometheus's handlers parse what they are sent and evaluate it with no
// bound but the samples limit, and the parser takes no context. In front
// of them QueryAPI.ServeHTTP (the steps are in its comment):
//
//   - reads the form once, the body bounded (MaxFormBytes);
//   - refuses, 400 bad_data, a query or match[] larger than
//     MaxExpressionBytes or nested deeper than MaxExpressionDepth, found
//     by a linear scan (exprDepth) before anything is parsed: the
//     parser's time grows with the square of the depth (query_guard.go
//     has the numbers);
//   - runs everything after it under the query timeout: the wait for a
//     slot, parsing, Select, series and label lookups (which have no
//     timeout in Prometheus), evaluation (which has its own too);
//   - lets at most MaxConcurrent requests parse or evaluate PromQL at once
//     on the node, MaxQueued more wait, and answers 503 (retry) past
//     either (queryGate; 429 is kept for per-tenant limits);
//   - after a query that held many samples, returns the freed memory to
//     the OS (memoryReleaser), which Go would keep for minutes.
//
// # Per-tenant limits
//
// The write and query APIs read their tenant's limits per request from
// limits.Overrides (server/limits; docs/design.md "Limits"):
//
//   - WriteHandler validates with the tenant's validation limits, then
//     takes the request's valid samples from the tenant's ingestion rate
//     (limits.IngestionLimiter): short of them the whole request is 429
//     in Mimir's words, nothing written. Series refused by the series
//     limits the groups apply (the distributor puts them in each entry)
//     are 400, the first one named with its limit; the others are
//     written.
//   - QueryAPI refuses a query_range longer than max_query_length (400)
//     before parsing; the other read limits travel in the request's
//     context (queryLimits, limits.QueryBudget) to the storage, which
//     stops a select past the series or chunk bytes limit before it
//     loads what it would refuse (422 "execution", the limit's text), to
//     the querier, which leaves out data before max_query_lookback, and
//     to the PromQL engine of the tenant's max_samples_per_query
//     (engines). The request runs under the tenant's query_timeout.
//   - RuntimeConfigHandler serves /runtime_config; /metrics has the
//     limits (limits' collector, myelin_tenant_limits), the usage
//     (myelin_tenant_series, myelin_ingested_samples_total) and the
//     discards by reason.
//
// # Cluster
//
// Every node is a cluster member (a single node is a cluster of one):
// the distributor (server/distributor) and the fan-out querier
// (server/querier) are the Writer and Storage of the APIs. ClusterAPI
// serves the node's view of its cluster: /ring and /status/tenants (HTML
// or JSON, RingHandler and TenantsHandler over server's own RingStatus
// types, converted from the cluster's status) and the admin endpoints
// (drain, replica status, replica dump). Tenants counts the samples each
// tenant wrote through this node for the tenants page. ReadyHandler and
// ConfigHandler serve /ready and /config; the UI at / is server/ui's.
// WhoAmIHandler tells a token its tenants and scopes, for the UI.
//
// # Query frontend and shards
//
// cmd/myelin puts server/frontend in front of QueryAPI: it splits,
// caches, queues and shards /query and /query_range and calls the API for
// each piece or shard, so the API's guards apply to each. CheckExpression
// and NewParser give it the API's expression guard and parser. A shard
// of a query carries the selector __query_shard__="i_of_n"
// (server/queryshard); tenantQuerier.Select takes it out of the matchers
// and drops the series of other shards before their chunks are read.
// The API's engine keeps per-step statistics for stats=all. A request
// from the frontend carries the query's CPU slot in its context
// (server/cpuslot); tenantQuerier.Select's series then checkpoint in it
// every 1,024 series or samples read (slotSeriesSet), in the engine's
// goroutine, the slot's holder.
//
// # Rooms
//
// The services around storage are packages of their own under server/
// (docs/design.md "Rooms"): tenant and queryshard (below all of them),
// limits, auth, frontend, ruler, alertmanager, distributor, querier, and
// ui (the embedded front end, which only serves files). None imports this
// package; this package wires them into HTTP.
package server
