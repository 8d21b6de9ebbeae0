// Package limits owns the per-tenant limits: their names, defaults and
// validation (Limits), the lookup read per request (Overrides: defaults
// from flags, overridden per tenant by the runtime config), the runtime
// config's format and its reloading (ParseConfig, Loader), and the
// pieces that enforce them without knowing storage: the ingestion rate
// (IngestionLimiter), a query's series and chunk budget (QueryBudget),
// and the error texts, Mimir's, with their err-mimir-* IDs.
//
// It must not import the server root, engine, raftgroup, cluster,
// querier or distributor (internal/archtest): the rooms that enforce
// limits import this package, not the reverse. Where a limit is enforced
// and how a global series limit is counted over Raft groups is in
// docs/design.md "Limits".
//
// # Runtime config file (YAML)
//
// Mimir's shape, so a Mimir runtime config's overrides read as they are:
//
//	overrides:
//	  team-a:                             # tenant ID
//	    ingestion_rate: 50000             # samples/s, whole cluster
//	    ingestion_burst_size: 500000
//	    max_global_series_per_user: 2000000
//	    max_fetched_series_per_query: 100000
//	    max_query_lookback: 30d
//	    otel_translation_strategy: NoTranslation  # OTLP settings, not amounts
//	    promote_otel_resource_attributes: "k8s.cluster.name,k8s.pod.name"
//	  team-b: {}                          # the defaults
//
// A tenant's limits are the defaults (flags, or -config.file) with the
// values it names replaced. Durations are Prometheus durations ("30d",
// "1h30m"). Limits.Values lists the names of the amounts; the OTLP
// settings (OTel*, PromoteOTelResourceAttributes: a comma-separated
// string, as Mimir writes it) are overridden the same way. Unknown sections and limits,
// invalid tenant IDs, and values Limits.Validate refuses make the whole
// file refused, every problem named with its line.
//
// # Caller protocol
//
//  1. o, err := NewOverrides(defaults) (cmd, from flags).
//  2. With a runtime config file: l, err := NewLoader(...) loads it (a
//     bad file stops the start), then l.Run(ctx) in a goroutine the
//     caller owns reloads it every period. A file that does not load
//     later keeps the last good config in force (Loader has the
//     signals).
//  3. Per request, read the limits in force: o.For(tenant) or a typed
//     getter. Never keep them past the request: a reload replaces them.
package limits
