package frontend

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/myelindb/myelin/server/queryshard"
)

// Limits are the settings a tenant may have its own value of. Their
// flags are Cortex's and Mimir's (cmd/myelin sets the defaults); the
// runtime config (server/limits) gives per-tenant overrides of those
// Mimir has per tenant (align_queries_with_step, max_cache_freshness,
// results_cache_ttl, max_queriers_per_tenant, query_sharding_total_shards)
// through Options.TenantLimits.
type Limits struct {
	// SplitInterval: range queries are cut into pieces at multiples of
	// this interval since the epoch (days, by default), run in parallel
	// and cached piece by piece. Zero does not split.
	// -query-frontend.split-queries-by-interval.
	SplitInterval time.Duration
	// AlignQueriesWithStep moves a range query's start and end down to a
	// multiple of its step (see alignable for when it is safe).
	// -query-frontend.align-queries-with-step.
	AlignQueriesWithStep bool
	// CacheResults keeps the pieces of range queries in the results
	// cache. -query-frontend.cache-results.
	CacheResults bool
	// MaxCacheFreshness: results for times newer than now minus this are
	// never cached, as samples may still arrive for them.
	// -query-frontend.max-cache-freshness.
	MaxCacheFreshness time.Duration
	// ResultsCacheTTL: a cached piece is used for this long after it was
	// computed, then computed again. It bounds how long a sample written
	// into a range already cached (backfill) stays invisible; doc.go
	// has the bound. -query-frontend.results-cache-ttl.
	ResultsCacheTTL time.Duration
	// MaxOutstanding bounds the queries a tenant has in the frontend at
	// once, waiting or running; more are refused with 429. Zero means no
	// bound. -query-frontend.max-outstanding-requests-per-tenant.
	MaxOutstanding int
	// MaxQueriersPerTenant bounds the frontend's workers a tenant's
	// requests hold at once. Zero means all workers but one, so that a
	// tenant flooding heavy queries always leaves one for the others.
	// -query-frontend.max-queriers-per-tenant (Mimir's name; there it
	// bounds the queriers of a tenant's shuffle shard, default all).
	MaxQueriersPerTenant int
	// TotalShards: shardable queries run as up to this many shards over
	// disjoint sets of series (shard.go). 0 or 1 does not shard. Used when
	// -query-frontend.parallelize-shardable-queries is on. A query is cut
	// into fewer when the node cannot run that many at once, or past
	// MaxShardedQueries (shardCount in frontend.go).
	// -query-frontend.query-sharding-total-shards.
	TotalShards int
	// MaxShardedQueries bounds the sub-queries of one query: a query of
	// p pieces to compute and l shardable aggregations runs at most
	// MaxShardedQueries / (p x l) shards per piece (at least 1). Zero
	// means no bound. -query-frontend.query-sharding-max-sharded-queries
	// (Mimir's).
	MaxShardedQueries int
	// TargetSeriesPerShard: a shardable query is cut into at most one
	// shard per this many series it read the last time it ran, and runs
	// unsharded until it has run once (estimate.go), so that a small
	// query is never cut. Zero cuts every shardable query into
	// TotalShards (as bounded by shardCount), Mimir's behaviour without
	// its cardinality estimates.
	// -query-frontend.query-sharding-target-series-per-shard (Mimir's).
	TargetSeriesPerShard int
	// TargetSamplesPerShard is TargetSeriesPerShard for the samples a
	// query read (its stats' totalQueryableSamples): a range query over
	// few series may still be heavy. With both set, the query gets the
	// larger of the two counts; with both zero, every shardable query is
	// cut. -query-frontend.query-sharding-target-samples-per-shard.
	TargetSamplesPerShard int
}

// DefaultTargetSeriesPerShard is
// -query-frontend.query-sharding-target-series-per-shard's default
// (docs/design.md "Sharding on by default, by estimates").
const DefaultTargetSeriesPerShard = 1000

// DefaultTargetSamplesPerShard is
// -query-frontend.query-sharding-target-samples-per-shard's default.
const DefaultTargetSamplesPerShard = 250_000

// DefaultLimits are the flags' defaults.
var DefaultLimits = Limits{
	SplitInterval:     24 * time.Hour,
	CacheResults:      true,
	MaxCacheFreshness: 10 * time.Minute,
	ResultsCacheTTL:   time.Hour,
	MaxOutstanding:    100,
	TotalShards:       0,
	MaxShardedQueries: 128,
}

func (l Limits) validate(what string) []error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"split interval", l.SplitInterval},
		{"max cache freshness", l.MaxCacheFreshness},
		{"results cache TTL", l.ResultsCacheTTL},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %s %v is negative", what, d.name, d.v))
		}
	}
	if l.SplitInterval > 0 && l.SplitInterval%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("%s: split interval %v is not a whole number of milliseconds", what, l.SplitInterval))
	}
	if l.MaxQueriersPerTenant < 0 {
		errs = append(errs, fmt.Errorf("%s: max queriers per tenant %d is negative", what, l.MaxQueriersPerTenant))
	}
	if l.MaxOutstanding < 0 {
		errs = append(errs, fmt.Errorf("%s: max outstanding requests per tenant %d is negative", what, l.MaxOutstanding))
	}
	if l.MaxShardedQueries < 0 {
		errs = append(errs, fmt.Errorf("%s: max sharded queries %d is negative", what, l.MaxShardedQueries))
	}
	if l.TargetSeriesPerShard < 0 {
		errs = append(errs, fmt.Errorf("%s: target series per shard %d is negative", what, l.TargetSeriesPerShard))
	}
	if l.TargetSamplesPerShard < 0 {
		errs = append(errs, fmt.Errorf("%s: target samples per shard %d is negative", what, l.TargetSamplesPerShard))
	}
	if l.TotalShards < 0 || l.TotalShards > queryshard.MaxShards {
		errs = append(errs, fmt.Errorf("%s: total shards %d: want 0 to %d", what, l.TotalShards, queryshard.MaxShards))
	}
	return errs
}

// Options configure a Frontend.
type Options struct {
	// Defaults are every tenant's limits unless TenantLimits says
	// otherwise.
	Defaults Limits
	// TenantLimits returns a tenant's limits. Nil means Defaults for
	// every tenant. A read of several tenants (federation, "a|b") takes
	// the most careful value of theirs (combineLimits).
	TenantLimits func(tenant string) Limits

	// MaxInFlight bounds the queries (pieces, shards) the frontend sends
	// to the query API at once: its workers. Zero means 4, the query
	// API's -query.max-concurrency default.
	MaxInFlight int
	// CPUSlots is how many queries' CPU work runs at once on this node:
	// the query API's evaluation of each piece or shard (storage reads
	// included) and the frontend's decoding, joining and encoding of
	// answers run only while they hold one of these slots, handed out
	// by fair order across tenants and given up at checkpoints to a
	// tenant that used less CPU lately (server/cpuslot). Zero means
	// GOMAXPROCS; negative turns the slots off (the queue's fairness
	// only). -query-frontend.cpu-slots.
	CPUSlots int
	// MultiTenant: the tenant comes from the X-Scope-OrgID header, as in
	// the query API (server.QueryOptions.MultiTenant).
	MultiTenant bool
	// Federation: the header may name several tenants, "a|b", as in the
	// query API (server.QueryOptions.Federation).
	Federation bool
	// Timeout bounds a query in the frontend, its wait in the queue
	// included. Zero means 2m (-query.timeout's default).
	Timeout time.Duration
	// LogQueriesLongerThan: queries that take longer are logged with
	// tenant, query, duration, series and samples fetched. Zero logs
	// none. -query-frontend.log-queries-longer-than.
	LogQueriesLongerThan time.Duration
	// MaxFormBytes bounds a request's form that the frontend reads; a
	// larger one goes to the query API as it is (which refuses it). Zero
	// means 1 MiB, the query API's default.
	MaxFormBytes int64
	// CheckExpr refuses an expression before the frontend parses it
	// (the query API's size and depth guard); a refused request goes to
	// the query API as it is, which answers 400. Nil checks nothing.
	CheckExpr func(expr string) error
	// Parser parses PromQL as the query API does (its experimental
	// features). Nil means Prometheus's default parser.
	Parser parser.Parser
	// LookbackDelta is the query API's, for the engine that merges shards.
	// Zero means 5m.
	LookbackDelta time.Duration
	// DelayedNameRemoval is the API engine's (Prometheus 3's experimental
	// delayed __name__ removal): a shard's answer then lacks the names
	// the rest of the query would still see, so no function may sit
	// above a sharded aggregation.
	DelayedNameRemoval bool
	// ParallelizeShardableQueries turns query sharding on, with
	// Limits.TotalShards shards. -query-frontend.parallelize-shardable-queries.
	ParallelizeShardableQueries bool
	// ShardParallelism is how many sub-queries of one query this node
	// runs at once, which bounds the shards a query is cut into: a query
	// computing p pieces gets at most ShardParallelism / p shards per
	// piece (shardCount). Zero means the CPU slots (GOMAXPROCS without
	// them), at most the workers a tenant may hold; negative means no
	// bound (Limits.TotalShards shards, as tests of the sharding itself
	// want).
	ShardParallelism int
	// Cache holds the results; nil caches nothing.
	Cache Cache
	// Generation returns a tenant's results-cache generation: a counter
	// bumped after each deletion of its data, on whichever node took it
	// (the cluster metadata's, docs/design.md "Deletion and retention").
	// It is part of every cache key, so the results cached before a
	// deletion are not used once this node has seen the bump. Nil means
	// zero for every tenant.
	Generation func(tenant string) uint64
	// Now is the clock of cache freshness and TTL. Nil means time.Now.
	Now        func() time.Time
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means none
}

func (o Options) withDefaults() Options {
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 4
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.MaxFormBytes == 0 {
		o.MaxFormBytes = 1 << 20
	}
	if o.Parser == nil {
		o.Parser = parser.NewParser(parser.Options{})
	}
	if o.LookbackDelta == 0 {
		o.LookbackDelta = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	errs := o.Defaults.validate("query frontend")
	for _, v := range []struct {
		name string
		v    int64
	}{
		{"max in flight", int64(o.MaxInFlight)},
		{"timeout", int64(o.Timeout)},
		{"log queries longer than", int64(o.LogQueriesLongerThan)},
		{"max form bytes", o.MaxFormBytes},
		{"lookback delta", int64(o.LookbackDelta)},
	} {
		if v.v < 0 {
			errs = append(errs, fmt.Errorf("query frontend: %s %d is negative", v.name, v.v))
		}
	}
	return errors.Join(errs...)
}

// combineLimits is the limits of a read of several tenants: the most
// careful of each (Mimir's rules for federated queries): the smallest
// positive split interval, shard count and sharded queries, the largest
// freshness window and the smallest TTL of the results cache (the least
// staleness any tenant asked for), caching only if every tenant caches,
// the smallest positive outstanding bound, and the largest target series
// and samples per shard (the fewest shards).
func combineLimits(ls []Limits) Limits {
	c := ls[0]
	for _, l := range ls[1:] {
		c.SplitInterval = smallestPositive(c.SplitInterval, l.SplitInterval)
		c.AlignQueriesWithStep = c.AlignQueriesWithStep && l.AlignQueriesWithStep
		c.CacheResults = c.CacheResults && l.CacheResults
		c.MaxCacheFreshness = max(c.MaxCacheFreshness, l.MaxCacheFreshness)
		c.ResultsCacheTTL = min(c.ResultsCacheTTL, l.ResultsCacheTTL)
		c.MaxOutstanding = int(smallestPositive(int64(c.MaxOutstanding), int64(l.MaxOutstanding)))
		c.MaxQueriersPerTenant = int(smallestPositive(int64(c.MaxQueriersPerTenant), int64(l.MaxQueriersPerTenant)))
		c.TotalShards = int(smallestPositive(int64(c.TotalShards), int64(l.TotalShards)))
		c.MaxShardedQueries = int(smallestPositive(int64(c.MaxShardedQueries), int64(l.MaxShardedQueries)))
		c.TargetSeriesPerShard = max(c.TargetSeriesPerShard, l.TargetSeriesPerShard)
		c.TargetSamplesPerShard = max(c.TargetSamplesPerShard, l.TargetSamplesPerShard)
	}
	return c
}

func smallestPositive[T ~int64](a, b T) T {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}
