package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/otlptranslator"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/frontend"
	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/remotewrite"
)

// config is every flag's value.
type config struct {
	configFile       string
	dataDir          string
	listenAddr       string
	multitenancy     bool
	authFile         string
	authReload       time.Duration
	version          bool
	logLevel         string
	logFormat        string
	gogc             int
	rulerConcurrency int
	retention        time.Duration
	// retentionInterval: how often the node proposes retention steps.
	retentionInterval time.Duration
	cacheBytes        int64
	memTable          int64
	minFreeBytes      int64

	queryTimeout    time.Duration
	queryMaxSamples int
	lookbackDelta   time.Duration
	// The ruler (server/ruler).
	rulerEvalInterval  time.Duration
	rulerPollInterval  time.Duration
	rulerResendDelay   time.Duration
	queryExperimental  bool
	queryStartTimes    bool
	maxLabelNames      int
	maxLabelNameBytes  int
	maxLabelValueBytes int
	maxFutureSkew      time.Duration
	legacyNames        bool
	maxRecvBytes       int

	maxInflightPushes    int
	maxInflightPushBytes int

	otlp otlpConfig

	queryMaxConcurrency int
	queryMaxQueued      int
	maxExprBytes        int
	maxExprDepth        int
	metricsTenantIdle   time.Duration
	metricsMaxTenants   int
	httpReadTimeout     time.Duration
	httpWriteTimeout    time.Duration
	httpIdleTimeout     time.Duration

	frontend frontendConfig
	// The Alertmanager and the ruler's sending of alerts.
	alerting alertingConfig

	cluster clusterConfig
	limits  limitsConfig

	// set: the flags given on the command line or in the config file.
	set map[string]bool
	// effective is every flag's value after the config file and the
	// command line, served by /config.
	effective map[string]string
}

// frontendConfig are the flags of the query frontend (server/frontend):
// Cortex's and Mimir's names.
type frontendConfig struct {
	limits           frontend.Limits // the per-tenant defaults
	cacheBackend     string
	inmemoryBytes    int64
	memcachedAddrs   string
	memcachedTimeout time.Duration
	logSlowerThan    time.Duration
	parallelize      bool
	shardParallelism int
	cpuSlots         int
}

func (c *frontendConfig) register(fs *flag.FlagSet) {
	d := frontend.DefaultLimits
	fs.DurationVar(&c.limits.SplitInterval, "query-frontend.split-queries-by-interval", d.SplitInterval,
		"Split range queries at multiples of this interval since the epoch (days by default), run the pieces in parallel\n"+
			"and cache them piece by piece. 0 does not split.")
	fs.BoolVar(&c.limits.AlignQueriesWithStep, "query-frontend.align-queries-with-step", d.AlignQueriesWithStep,
		"Move the start and end of range queries down to a multiple of their step, so that refreshes reuse cached\n"+
			"results (not for queries with @ start() or @ end()). The answer then has the aligned steps.")
	fs.BoolVar(&c.limits.CacheResults, "query-frontend.cache-results", d.CacheResults,
		"Cache the results of range queries (by tenant, query, step and split interval).")
	fs.StringVar(&c.cacheBackend, "query-frontend.results-cache.backend", "",
		"Results cache: \"\" or \"inmemory\" for one in the node's memory, \"memcached\" for memcached servers shared by\n"+
			"the cluster's nodes (-query-frontend.results-cache.memcached.addresses).")
	fs.Int64Var(&c.inmemoryBytes, "query-frontend.results-cache.inmemory.max-size-bytes", 128<<20,
		"Size of the in-memory results cache, in `bytes`; the least recently used entries go first.")
	fs.StringVar(&c.memcachedAddrs, "query-frontend.results-cache.memcached.addresses", "",
		"Comma-separated host:port of the memcached servers of the results cache.")
	fs.DurationVar(&c.memcachedTimeout, "query-frontend.results-cache.memcached.timeout", 200*time.Millisecond,
		"Timeout of a call to memcached; a call that fails is a cache miss.")
	fs.DurationVar(&c.limits.MaxCacheFreshness, "query-frontend.max-cache-freshness", d.MaxCacheFreshness,
		"Do not cache results for times newer than now minus this: samples may still arrive for them.")
	fs.DurationVar(&c.limits.ResultsCacheTTL, "query-frontend.results-cache-ttl", d.ResultsCacheTTL,
		"Use a cached result for this long after it was computed. A sample written into a range already cached\n"+
			"(older than -query-frontend.max-cache-freshness: a backfill) appears in answers at most this long after.")
	fs.IntVar(&c.limits.MaxOutstanding, "query-frontend.max-outstanding-requests-per-tenant", d.MaxOutstanding,
		"Maximum number of queries a tenant may have in the frontend at once (waiting or running); more get 429.\n"+
			"0 means no limit.")
	fs.IntVar(&c.limits.MaxQueriersPerTenant, "query-frontend.max-queriers-per-tenant", d.MaxQueriersPerTenant,
		"Maximum number of the frontend's workers (-query.max-concurrency) a tenant's queries hold at once. 0 means all but\n"+
			"one, so that a tenant flooding heavy queries always leaves a worker for the others.")
	fs.BoolVar(&c.parallelize, "query-frontend.parallelize-shardable-queries", true,
		"Run shardable queries (sum, count, min, max, avg, topk, bottomk of per-series expressions) as\n"+
			"-query-frontend.query-sharding-total-shards queries over disjoint sets of series, merged by the frontend,\n"+
			"once they are known to read enough series (-query-frontend.query-sharding-target-series-per-shard).")
	fs.IntVar(&c.limits.TotalShards, "query-frontend.query-sharding-total-shards", 16,
		"Number of shards of a sharded query (Mimir's default). 0 or 1 does not shard. A query is cut into at most as many\n"+
			"as the node runs at once (-query-frontend.cpu-slots, the tenant's workers) divided by its pieces to compute,\n"+
			"and at most -query-frontend.query-sharding-max-sharded-queries / (pieces x shardable aggregations).")
	fs.IntVar(&c.limits.MaxShardedQueries, "query-frontend.query-sharding-max-sharded-queries", d.MaxShardedQueries,
		"Maximum number of sub-queries (pieces x shards x shardable aggregations) one sharded query is cut into. 0 means\n"+
			"no limit.")
	fs.IntVar(&c.limits.TargetSeriesPerShard, "query-frontend.query-sharding-target-series-per-shard", frontend.DefaultTargetSeriesPerShard,
		"A shardable query gets at most one shard per this many series it read the last time it ran on this node (or per\n"+
			"-query-frontend.query-sharding-target-samples-per-shard samples, whichever gives more), and runs unsharded the\n"+
			"first time, so that small queries are never cut. Both 0 cut every shardable query (Mimir's behaviour without\n"+
			"cardinality estimates).")
	fs.IntVar(&c.limits.TargetSamplesPerShard, "query-frontend.query-sharding-target-samples-per-shard", frontend.DefaultTargetSamplesPerShard,
		"A shardable query gets at most one shard per this many samples it read the last time it ran on this node (or\n"+
			"per -query-frontend.query-sharding-target-series-per-shard series, whichever gives more).")
	fs.IntVar(&c.shardParallelism, "query-frontend.query-sharding-parallelism", 0,
		"Sub-queries of one query this node runs at once, which bounds the shards a query is cut into (at most this\n"+
			"divided by its pieces to compute). 0 means -query-frontend.cpu-slots (GOMAXPROCS without them), at most the\n"+
			"tenant's workers; -1 means no bound (-query-frontend.query-sharding-total-shards shards, as in Mimir).")
	fs.IntVar(&c.cpuSlots, "query-frontend.cpu-slots", 0,
		"Number of queries whose CPU work (PromQL evaluation of each piece or shard, the frontend's decoding and joining)\n"+
			"runs at once, handed out fairly across tenants: a query yields its slot to a tenant that used less CPU lately.\n"+
			"0 means GOMAXPROCS (one per core); -1 turns the slots off (the per-tenant queue alone).")
	fs.DurationVar(&c.logSlowerThan, "query-frontend.log-queries-longer-than", 0,
		"Log queries that take longer than this (tenant, query, duration, series and samples fetched). 0 logs none.")
}

func (c *frontendConfig) parse() error {
	var errs []error
	switch c.cacheBackend {
	case "", "inmemory":
		if c.inmemoryBytes <= 0 {
			errs = append(errs, fmt.Errorf("-query-frontend.results-cache.inmemory.max-size-bytes %d: want more than 0", c.inmemoryBytes))
		}
	case "memcached":
		if c.memcachedAddrs == "" {
			errs = append(errs, errors.New("-query-frontend.results-cache.backend=memcached needs -query-frontend.results-cache.memcached.addresses"))
		}
	default:
		errs = append(errs, fmt.Errorf("-query-frontend.results-cache.backend %q: want \"\", inmemory or memcached", c.cacheBackend))
	}
	if c.logSlowerThan < 0 {
		errs = append(errs, fmt.Errorf("-query-frontend.log-queries-longer-than %v is negative", c.logSlowerThan))
	}
	if c.shardParallelism < -1 {
		errs = append(errs, fmt.Errorf("-query-frontend.query-sharding-parallelism %d: want -1 (no bound), 0 (the CPU slots) or more", c.shardParallelism))
	}
	if c.cpuSlots < -1 {
		errs = append(errs, fmt.Errorf("-query-frontend.cpu-slots %d: want -1 (off), 0 (GOMAXPROCS) or more", c.cpuSlots))
	}
	if err := (frontend.Options{Defaults: c.limits}).Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// clusterConfig are the flags of the cluster and its Raft groups.
type clusterConfig struct {
	nodeID            string
	peersFlag         string
	joinAddr          string
	replication       int
	groupsPerNode     int
	deadAfter         time.Duration
	heartbeatInterval time.Duration
	listenAddr        string
	advertise         string
	heartbeat         time.Duration
	tlsCert           string
	tlsKey            string
	tlsCA             string
	secretFile        string
	insecure          bool
	snapshotThr       uint64
	snapshotLogBytes  uint64
	snapshotLogAge    time.Duration
	trailing          uint64
	logStore          string
	entryFormat       string
	walSegmentBytes   int

	peers map[string]string // node ID -> Raft address, from peersFlag
	order []string          // IDs of peers, sorted
	// listen: the node opens its Raft listener (it is, or may become, a
	// member of a cluster of several nodes); without it the node is a
	// cluster of one that nobody can join.
	listen bool
}

// defaultClusterHeartbeat is the Raft heartbeat and election timeout of a
// replicated group. A follower notices a dead leader after 1-2x this and
// elects a new one within a few round trips, so failover (kill to first
// accepted write) stays under 3 s including a sender's retry backoff;
// shorter timeouts were not needed and risk spurious elections when
// fsync stalls on a busy disk.
const defaultClusterHeartbeat = 500 * time.Millisecond

// defaultMinFreeBytes is -storage.min-free-disk-space-bytes' default:
// room for two memtables' flush (2 x 16 MiB by default; it was measured
// at 32), the compactions after it,
// and a checkpoint (docs/design.md "Disk full" has the measurement).
const defaultMinFreeBytes = 256 << 20

// usageHeader opens `myelin -help`.
const usageHeader = `Usage: myelin [flags]
       myelin token create ... | myelin secret create ... (see Commands below)

Myelin is a multi-tenant, Prometheus-compatible time-series database. It
serves remote write 1.0 and 2.0 on /api/v1/push and /api/v1/write, the
Prometheus query API under /api/v1 and /prometheus/api/v1, /ready,
/metrics and status pages from /. Every write goes through a Raft log on disk before
it is acknowledged. Without cluster flags it runs as a cluster of one
that opens no Raft port; -cluster.node-id with -raft.listen-address
starts a cluster others can join (-cluster.join), every node with the
same -raft.secret-file, see README "Cluster". -auth.config-file turns on
tokens for the HTTP API.
SIGINT/SIGTERM shut it down gracefully.

Flags:
`

// parseFlags parses args. It returns help == true after printing the usage
// for -help, and an error wrapping errUsage for a bad command line (after
// printing the problem and a hint, not the whole usage). -config.file
// names a YAML file that maps flag names to values; flags on the command
// line override it.
func parseFlags(args []string, stderr io.Writer) (cfg config, help bool, err error) {
	fs := flag.NewFlagSet("myelin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.configFile, "config.file", "", "YAML `file` of flag values by flag name (e.g. 'query.timeout: 1m'); command-line flags override it.")
	fs.StringVar(&cfg.dataDir, "data.dir", "./data", "`Directory` for the node's data (engine and Raft logs); created if missing. One process per directory.")
	fs.StringVar(&cfg.listenAddr, "http.listen-address", ":9009", "`Address` (host:port) the HTTP server listens on; port 0 picks a free port.")
	fs.BoolVar(&cfg.multitenancy, "auth.multitenancy-enabled", true,
		"Require the X-Scope-OrgID header naming the tenant on ingest and query requests;\n"+
			"if false, every request belongs to the tenant \"anonymous\".")
	fs.StringVar(&cfg.authFile, "auth.config-file", "",
		"YAML `file` of auth tokens (their hashes, tenants and scopes; 'myelin token create' writes entries). Turns auth\n"+
			"on: every endpoint but / and /ready then needs a token (Bearer, or Basic with the token as password), and\n"+
			"the tenant comes from it. Reloaded when it changes and on SIGHUP; a bad file keeps the last good one.")
	fs.DurationVar(&cfg.authReload, "auth.config-reload-interval", 10*time.Second,
		"How often to check -auth.config-file for changes; 0 reloads it on SIGHUP only.")
	fs.StringVar(&cfg.logLevel, "log.level", "info", "Only log messages with the given severity or above: debug, info, warn, error.")
	fs.StringVar(&cfg.logFormat, "log.format", "logfmt", "Output format of log messages: logfmt or json.")
	fs.IntVar(&cfg.gogc, "runtime.gogc", defaultGOGC, "Go garbage collector target percentage (GOGC) unless the GOGC environment variable is set; lower trades CPU for memory.")
	fs.DurationVar(&cfg.retention, "storage.retention", 0, "Refuse samples older than a tenant's newest sample minus this and delete them, a day at a time; 0 keeps everything.\n"+
		"A tenant's retention_period in the runtime config replaces it for that tenant, longer or shorter, and also deletes samples older than now minus it.")
	fs.DurationVar(&cfg.retentionInterval, "compactor.cleanup-interval", 15*time.Minute,
		"How often the node proposes the retention steps of the tenants it holds (deleting data past retention and the series left empty).")
	fs.Int64Var(&cfg.cacheBytes, "storage.cache-size", 0, "Block cache of the embedded Pebble store, shared by index and chunk reads, in `bytes`; it fills only as reads bring blocks in.\n"+
		"0 sizes it to a sixteenth of the machine's memory (or of the cgroup's limit), between 64 MiB and 512 MiB.")
	fs.Int64Var(&cfg.memTable, "storage.memtable-size", 16<<20, "Size of one memtable of the embedded Pebble store, in `bytes`; up to two are in memory.")
	fs.Int64Var(&cfg.minFreeBytes, "storage.min-free-disk-space-bytes", defaultMinFreeBytes,
		"Refuse writes (503) while the data directory's file system has less than this many `bytes` free, so that\n"+
			"checkpoints, compactions and the Raft log's next segment still fit; reads go on, writes resume\n"+
			"by themselves once space is freed. 0 refuses writes only after one failed with \"no space left on device\".")
	fs.DurationVar(&cfg.queryTimeout, "query.timeout", 2*time.Minute, "Maximum time one query may take; the default of query_timeout, which -runtime-config.file may lower per tenant.")
	fs.IntVar(&cfg.queryMaxSamples, "query.max-samples", 50_000_000, "Maximum number of samples one query may load into memory; the default of max_samples_per_query per tenant.")
	fs.DurationVar(&cfg.lookbackDelta, "query.lookback-delta", 5*time.Minute, "How far back an instant selector looks for the latest sample.")
	fs.IntVar(&cfg.rulerConcurrency, "ruler.max-independent-rule-evaluation-concurrency", 0,
		"Rules of every tenant this node evaluates at once beside their group's sequence: rules that depend on no\n"+
			"other rule of their group, or that none depends on. 0 evaluates each group's rules one after the other.")
	fs.DurationVar(&cfg.rulerEvalInterval, "ruler.evaluation-interval", time.Minute, "How often a rule group without its own interval is evaluated.")
	fs.DurationVar(&cfg.rulerPollInterval, "ruler.poll-interval", time.Minute, "How often the ruler re-reads every stored rule group, a backstop: a change applied to this node's copy of the\n"+
		"metadata (through any node) is loaded within moments.")
	fs.DurationVar(&cfg.rulerResendDelay, "ruler.resend-delay", time.Minute, "How long a firing alert waits before the ruler sends it to the Alertmanager again.")
	fs.BoolVar(&cfg.queryExperimental, "query.enable-experimental", false,
		"Enable all of Prometheus 3's experimental PromQL features: experimental functions,\n"+
			"duration expressions, extended range selectors, binop fill modifiers, delayed name removal.")
	fs.BoolVar(&cfg.queryStartTimes, "query.use-start-timestamps", false,
		"rate, irate, increase and resets use the samples' start timestamps (remote write 2.0's start_timestamp)\n"+
			"where they have one, as Prometheus's --enable-feature=use-start-timestamps; queries and rules.")
	fs.IntVar(&cfg.maxLabelNames, "validation.max-label-names-per-series", 30, "Refuse series with more labels than this (default of max_label_names_per_series per tenant).")
	fs.IntVar(&cfg.maxLabelNameBytes, "validation.max-length-label-name", 1024, "Refuse series with a longer label name, in `bytes` (default of max_label_name_length per tenant).")
	fs.IntVar(&cfg.maxLabelValueBytes, "validation.max-length-label-value", 2048, "Refuse series with a longer label value, in `bytes` (default of max_label_value_length per tenant).")
	fs.DurationVar(&cfg.maxFutureSkew, "validation.create-grace-period", 10*time.Minute, "Refuse samples further than this in the future (default of creation_grace_period; an override may only lower it).")
	fs.BoolVar(&cfg.legacyNames, "validation.legacy-names", false, "Accept only Prometheus 2's metric and label name characters (default: any UTF-8, as Prometheus 3).")
	fs.IntVar(&cfg.maxRecvBytes, "distributor.max-recv-msg-size", 100<<20, "Largest remote-write request accepted, decompressed, in `bytes`.")
	// In-flight limits of the node's pushes: Mimir's names (its
	// distributor instance limits); the defaults are for 2-core nodes.
	fs.IntVar(&cfg.maxInflightPushes, "distributor.instance-limits.max-inflight-push-requests", server.DefaultMaxInflightPushRequests,
		"Maximum number of remote-write requests the node serves at once; more get 429 (retry later). 0 means no limit.\n"+
			"Mimir's default; memory is bounded by the bytes limit.")
	fs.IntVar(&cfg.maxInflightPushBytes, "distributor.instance-limits.max-inflight-push-requests-bytes", server.DefaultMaxInflightPushBytes,
		"Maximum `bytes` held by the remote-write requests being served, bodies compressed and decompressed; a request\n"+
			"that would go past it gets 429 (retry later). A request allocates at most ~12 times its bytes, so this bounds the\n"+
			"memory of pushes. 0 means no limit (Mimir's default); otherwise at least -distributor.max-recv-msg-size + 10 MiB,\n"+
			"one request at the size limits.")
	// OTLP translation: Mimir's -distributor.otel-* names, Prometheus 3's
	// otlp: settings and defaults; per tenant in -runtime-config.file.
	d := limits.Defaults()
	fs.StringVar(&cfg.otlp.strategy, "distributor.otel-translation-strategy", string(d.OTelTranslationStrategy),
		"Default of how OTLP metric and label names become Prometheus names (Prometheus's otlp.translation_strategy):\n"+
			"UnderscoreEscapingWithSuffixes, UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes, NoTranslation,\n"+
			"or empty: Mimir's derivation from -distributor.otel-metric-suffixes-enabled and -validation.legacy-names.\n"+
			"Overridden by otel_translation_strategy.")
	fs.BoolVar(&cfg.otlp.suffixes, "distributor.otel-metric-suffixes-enabled", d.OTelMetricSuffixesEnabled,
		"Default of whether OTLP metric names get unit and _total suffixes; set alone, it switches the suffixes of\n"+
			"-distributor.otel-translation-strategy. Overridden by otel_metric_suffixes_enabled.")
	for _, name := range []string{"distributor.otel-promote-resource-attributes", "distributor.promote-otel-resource-attributes"} {
		usage := "Default comma-separated OTel resource attributes copied as labels onto every series of the resource\n" +
			"(otlp.promote_resource_attributes). Overridden by promote_otel_resource_attributes."
		if name == "distributor.promote-otel-resource-attributes" {
			usage = "Deprecated: -distributor.otel-promote-resource-attributes (Mimir's name)."
		}
		fs.StringVar(&cfg.otlp.promote, name, "", usage)
	}
	fs.BoolVar(&cfg.otlp.keepIdentifying, "distributor.otel-keep-identifying-resource-attributes", false,
		"Default of keeping service.name, service.namespace and service.instance.id on target_info\n"+
			"(otlp.keep_identifying_resource_attributes). Overridden by otel_keep_identifying_resource_attributes.")
	fs.BoolVar(&cfg.otlp.promoteScope, "distributor.otel-promote-scope-metadata", false,
		"Default of adding the OTel instrumentation scope's name, version, schema URL and attributes as otel_scope_*\n"+
			"labels (otlp.promote_scope_metadata). Overridden by otel_promote_scope_metadata.")
	fs.BoolVar(&cfg.otlp.nhcb, "distributor.otel-convert-histograms-to-nhcb", false,
		"Default of storing OTLP explicit-bucket histograms as native histograms with custom buckets instead of\n"+
			"_bucket, _sum and _count series (otlp.convert_histograms_to_nhcb). Overridden by otel_convert_histograms_to_nhcb.")
	fs.BoolVar(&cfg.otlp.nativeDelta, "distributor.otel-native-delta-ingestion", false,
		"Default of storing OTLP delta sums and histograms as their raw delta values (Prometheus's native-delta-ingestion);\n"+
			"off, they are refused as a partial success. Overridden by otel_native_delta_ingestion.")
	fs.BoolVar(&cfg.otlp.targetInfo, "distributor.otel-target-info-enabled", true,
		"Write a target_info series per OTel resource with its non-identifying attributes, as Prometheus does.")
	// Query guards (server.QueryOptions): Prometheus's and Mimir's flag
	// names where they have one; the depth limit has no counterpart and
	// sits beside Mimir's size limit.
	fs.IntVar(&cfg.queryMaxConcurrency, "query.max-concurrency", server.DefaultMaxConcurrent,
		"Maximum number of queries (requests that parse or evaluate PromQL) the node runs at once; more wait in a queue,\n"+
			"within -query.timeout, and get 503 after it. Prometheus's default is 20; 4 suits 2 cores, with a query at\n"+
			"-query.max-samples holding ~1.2 GB.")
	fs.IntVar(&cfg.queryMaxQueued, "query.max-queued-queries", server.DefaultMaxQueued,
		"Maximum number of queries waiting for one of -query.max-concurrency slots; more get 503 at once.")
	fs.IntVar(&cfg.maxExprBytes, "query-frontend.max-query-expression-size-bytes", server.DefaultMaxExpressionBytes,
		"Refuse (400) a query expression or match[] selector larger than this, in `bytes`, before parsing it.")
	fs.IntVar(&cfg.maxExprDepth, "query-frontend.max-query-expression-depth", server.DefaultMaxExpressionDepth,
		"Refuse (400) a query expression nested deeper than this before parsing it: each level of brackets and each\n"+
			"operator chained at one level counts. The parser's time grows with the square of the depth.")
	fs.DurationVar(&cfg.metricsTenantIdle, "distributor.metrics-tenant-idle-timeout", server.DefaultTenantMetricsIdle,
		"Delete a tenant's series from the write metrics on /metrics after it has not written for this long.")
	fs.IntVar(&cfg.metricsMaxTenants, "distributor.metrics-max-tenants", server.DefaultMetricsMaxTenants,
		"Maximum number of tenants with series of their own in the write metrics; more are counted as tenant=\"<overflow>\".")
	// HTTP server timeouts: dskit's names (Cortex, Mimir, Loki).
	fs.DurationVar(&cfg.httpReadTimeout, "server.http-read-timeout", 30*time.Second,
		"Maximum time to read a request, headers and body (dskit's default).")
	fs.DurationVar(&cfg.httpWriteTimeout, "server.http-write-timeout", 2*time.Minute+30*time.Second,
		"Maximum time from the end of a request's headers to the end of its response; 0 means none. It must exceed\n"+
			"-query.timeout, or the slowest queries are cut off without an answer (dskit's default is 30s; with a 2m\n"+
			"query timeout this is 2m30s).")
	fs.DurationVar(&cfg.httpIdleTimeout, "server.http-idle-timeout", 2*time.Minute,
		"Close a keep-alive connection idle for this long (dskit's default).")
	cfg.frontend.register(fs)
	cfg.alerting.register(fs)
	cfg.cluster.register(fs)
	cfg.limits.register(fs)
	fs.BoolVar(&cfg.version, "version", false, "Print the version and exit.")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Run 'myelin -help' to list the flags.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// Parse printed the short hint; -help wants the whole usage.
			fmt.Fprint(fs.Output(), usageHeader)
			fs.PrintDefaults()
			fmt.Fprint(fs.Output(), "\n"+commandsUsage)
			return cfg, true, nil
		}
		return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return cfg, false, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	cfg.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { cfg.set[f.Name] = true })
	if cfg.configFile != "" {
		if err := applyConfigFile(fs, cfg.configFile, cfg.set); err != nil {
			fmt.Fprintln(stderr, err)
			return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	var errs []error
	if _, err := parseLevel(cfg.logLevel); err != nil {
		errs = append(errs, err)
	}
	if cfg.rulerConcurrency < 0 {
		errs = append(errs, fmt.Errorf("-ruler.max-independent-rule-evaluation-concurrency %d is negative", cfg.rulerConcurrency))
	}
	if cfg.gogc <= 0 {
		errs = append(errs, fmt.Errorf("-runtime.gogc %d: want more than 0", cfg.gogc))
	}
	if cfg.logFormat != "logfmt" && cfg.logFormat != "json" {
		errs = append(errs, fmt.Errorf("-log.format %q: want logfmt or json", cfg.logFormat))
	}
	if cfg.minFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("-storage.min-free-disk-space-bytes %d is negative", cfg.minFreeBytes))
	}
	if cfg.authFile != "" && !cfg.multitenancy {
		errs = append(errs, errors.New("-auth.config-file needs -auth.multitenancy-enabled=true: tokens name the tenants they act on"))
	}
	if cfg.authReload < 0 {
		errs = append(errs, fmt.Errorf("-auth.config-reload-interval %v is negative", cfg.authReload))
	}
	if cfg.maxInflightPushes < 0 {
		errs = append(errs, fmt.Errorf("-distributor.instance-limits.max-inflight-push-requests %d: want 0 (no limit) or more", cfg.maxInflightPushes))
	}
	if largest := cfg.maxRecvBytes + remotewrite.DefaultMaxCompressedBytes; cfg.maxInflightPushBytes < 0 ||
		cfg.maxInflightPushBytes > 0 && cfg.maxInflightPushBytes < largest {
		errs = append(errs, fmt.Errorf("-distributor.instance-limits.max-inflight-push-requests-bytes %d: want 0 (no limit) or at least %d, "+
			"one request at -distributor.max-recv-msg-size plus the %d compressed bytes a body may have", cfg.maxInflightPushBytes, largest, remotewrite.DefaultMaxCompressedBytes))
	}
	if cfg.httpWriteTimeout > 0 && cfg.httpWriteTimeout <= cfg.queryTimeout {
		errs = append(errs, fmt.Errorf("-server.http-write-timeout %v must exceed -query.timeout %v (or be 0)", cfg.httpWriteTimeout, cfg.queryTimeout))
	}
	errs = append(errs, cfg.frontend.parse(), cfg.cluster.parse(cfg.set), cfg.alerting.parse(cfg.listenAddr))
	errs = append(errs, cfg.limits.validate(cfg.defaultLimits()))
	if d := cfg.defaultLimits(); cfg.legacyNames && !d.OTelStrategy(true).ShouldEscape() {
		// Every OTLP series with a dot in a name would be refused.
		errs = append(errs, fmt.Errorf("-distributor.otel-translation-strategy %s keeps UTF-8 names, which -validation.legacy-names refuses: "+
			"use UnderscoreEscapingWithSuffixes or UnderscoreEscapingWithoutSuffixes", d.OTelStrategy(true)))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(stderr, err)
		return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg.effective = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { cfg.effective[f.Name] = f.Value.String() })
	return cfg, false, nil
}

// applyConfigFile sets the flags named in a YAML file that were not set on
// the command line, and marks them in set.
func applyConfigFile(fs *flag.FlagSet, path string, set map[string]bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	onCommandLine := maps.Clone(set)
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		if fs.Lookup(name) == nil || name == "config.file" {
			errs = append(errs, fmt.Errorf("config file %s: unknown setting %q", path, name))
			continue
		}
		if onCommandLine[name] {
			continue
		}
		if err := fs.Set(name, fmt.Sprint(values[name])); err != nil {
			errs = append(errs, fmt.Errorf("config file %s: %s: %w", path, name, err))
		}
		set[name] = true
	}
	return errors.Join(errs...)
}

// parseLevel parses -log.level.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("-log.level %q: want debug, info, warn or error", s)
}

// newLogger returns the process's logger: one handler, so the engine's,
// raft's and the server's lines share one format and level.
func newLogger(cfg config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.logLevel) // checked by parseFlags
	opts := &slog.HandlerOptions{Level: level}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (c *clusterConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.nodeID, "cluster.node-id", "", "This node's `ID` in the cluster (letters, digits, '-', '_'), unique for all time; also its\n"+
		"Raft server ID. Empty: the ID in the data directory, or on a first start the host name.")
	fs.StringVar(&c.peersFlag, "cluster.peers", "",
		"Optional: the nodes a new cluster starts with (the metadata group's first voters), this node\n"+
			"included, as comma-separated ID=RAFT_ADDRESS `list`, e.g. 1=10.0.0.1:9095,2=10.0.0.2:9095.\n"+
			"Every one of them gets the same list. Alternatively start one node alone and the others with\n"+
			"-cluster.join.")
	fs.StringVar(&c.joinAddr, "cluster.join", "", "Raft `address` (host:port) of any node of a running cluster: this node asks to be added\n"+
		"through it, then the placement gives it groups. Ignored once the node has joined.")
	fs.IntVar(&c.replication, "cluster.replication-factor", 3, "Replicas per Raft group once the cluster has that many nodes (a new cluster only).")
	fs.IntVar(&c.groupsPerNode, "cluster.groups-per-node", 1, "Raft groups created per node (a new cluster only); each node leads about this many.")
	fs.DurationVar(&c.deadAfter, "cluster.dead-after", time.Minute, "A node not heard from for this long is declared dead and its replicas are replaced\n"+
		"on other nodes (a dead node that comes back rejoins by itself).")
	fs.DurationVar(&c.heartbeatInterval, "cluster.heartbeat-interval", time.Second, "How often a node reports to the metadata leader; placement changes run as often.")
	fs.StringVar(&c.listenAddr, "raft.listen-address", ":9095", "`Address` of the node's Raft listener (all its groups and node-to-node requests). A node\n"+
		"without any -cluster.* or -raft.listen-address flag opens none: a cluster of one.")
	fs.StringVar(&c.advertise, "raft.advertise-address", "", "Raft `address` other nodes reach this one at; empty means -raft.listen-address\n"+
		"(which then needs a host).")
	fs.DurationVar(&c.heartbeat, "raft.heartbeat-timeout", defaultClusterHeartbeat, "Raft heartbeat and election timeout of a replicated group.")
	fs.StringVar(&c.tlsCert, "raft.tls-cert-file", "", "PEM certificate `file` for the Raft listener and for dialing peers; enables TLS\n"+
		"(with -raft.tls-key-file and -raft.tls-ca-file, mutual TLS).")
	fs.StringVar(&c.tlsKey, "raft.tls-key-file", "", "PEM private key `file` of -raft.tls-cert-file.")
	fs.StringVar(&c.tlsCA, "raft.tls-ca-file", "", "PEM CA certificates `file` that peer certificates must chain to (both directions).")
	fs.StringVar(&c.secretFile, "raft.secret-file", "", "`File` holding the cluster secret (at least 32 characters; 'myelin secret create -file F'), the same\n"+
		"on every node: both ends of every node-to-node connection prove they hold it before anything else is sent.\n"+
		"A node that listens for Raft needs it or mutual TLS (-raft.tls-*), or -raft.insecure.")
	fs.BoolVar(&c.insecure, "raft.insecure", false, "Let a node listen for Raft with neither -raft.secret-file nor mutual TLS: anyone who reaches the\n"+
		"Raft port can then read and write every tenant and join the cluster. Only for a network no stranger reaches.")
	fs.Uint64Var(&c.snapshotThr, "raft.snapshot-threshold", 8192, "Take a Raft snapshot (an engine checkpoint) after this many log entries.")
	fs.Uint64Var(&c.snapshotLogBytes, "raft.snapshot-max-log-bytes", raftgroup.DefaultSnapshotMaxLogBytes,
		"Also take a Raft snapshot once the log entries since the last one hold this many `bytes`: a restart after\n"+
			"a crash replays at most about this much log (64 MiB: ready ~1 s after kill -9 under the make bench load).")
	fs.DurationVar(&c.snapshotLogAge, "raft.snapshot-max-log-age", raftgroup.DefaultSnapshotMaxLogAge,
		"Also take a Raft snapshot once this long has passed since the last one with entries written since.")
	fs.Uint64Var(&c.trailing, "raft.trailing-logs", 1024, "Log entries kept behind a snapshot, so a lagging replica catches up from the log.")
	fs.StringVar(&c.logStore, "raft.log-store", string(raftgroup.LogStoreWAL), "Raft log implementation: raft-wal or pebble.")
	fs.StringVar(&c.entryFormat, "raft.entry-format", "auto",
		"Encoding of the write batches in the Raft log: prefix (label sets prefix-coded, batch version 9: less CPU\n"+
			"and log), plain (the encoding before it, which earlier releases apply), or auto: prefix on a node without\n"+
			"-cluster.* or -raft.* addresses (a cluster of one), plain otherwise. Set prefix on a cluster once every\n"+
			"node runs this release: an earlier one refuses prefix-coded entries.")
	fs.IntVar(&c.walSegmentBytes, "raft.wal-segment-size", 8<<20, "Size of one raft-wal segment file, allocated when created, in `bytes` (64 KiB to 1 GiB).")
}

var nodeIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// parse checks the flags and fills peers and listen; set holds the flags
// given. It reports every problem.
func (c *clusterConfig) parse(set map[string]bool) error {
	var errs []error
	switch raftgroup.LogStore(c.logStore) {
	case raftgroup.LogStoreWAL, raftgroup.LogStorePebble:
	default:
		errs = append(errs, fmt.Errorf("-raft.log-store %q: want raft-wal or pebble", c.logStore))
	}
	switch c.entryFormat {
	case "auto", "prefix", "plain":
	default:
		errs = append(errs, fmt.Errorf("-raft.entry-format %q: want auto, prefix or plain", c.entryFormat))
	}
	if c.walSegmentBytes < 64<<10 || c.walSegmentBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("-raft.wal-segment-size %d: want 65536 to 1073741824", c.walSegmentBytes))
	}
	c.listen = c.nodeID != "" || c.peersFlag != "" || c.joinAddr != "" || set["raft.listen-address"] || set["raft.advertise-address"]
	if c.nodeID != "" && !nodeIDRe.MatchString(c.nodeID) {
		errs = append(errs, fmt.Errorf("-cluster.node-id %q: want 1-64 letters, digits, '-' or '_'", c.nodeID))
	}
	if (c.peersFlag != "" || c.joinAddr != "") && c.nodeID == "" {
		errs = append(errs, errors.New("-cluster.peers and -cluster.join need -cluster.node-id"))
	}
	c.peers = map[string]string{}
	for p := range strings.SplitSeq(c.peersFlag, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		id, addr, ok := strings.Cut(p, "=")
		if !ok || !nodeIDRe.MatchString(id) {
			errs = append(errs, fmt.Errorf("-cluster.peers: %q: want ID=HOST:PORT", p))
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("-cluster.peers: %q: %w", p, err))
			continue
		}
		if _, dup := c.peers[id]; dup {
			errs = append(errs, fmt.Errorf("-cluster.peers: ID %q twice", id))
		}
		c.peers[id] = addr
		c.order = append(c.order, id)
	}
	slices.Sort(c.order)
	switch {
	case c.joinAddr != "" && len(c.peers) > 0:
		errs = append(errs, errors.New("-cluster.join and -cluster.peers exclude each other: peers start a new cluster, join enters a running one"))
	case len(c.peers) > 0 && c.peers[c.nodeID] == "":
		errs = append(errs, fmt.Errorf("-cluster.peers does not name this node %q", c.nodeID))
	}
	if c.joinAddr != "" {
		if _, _, err := net.SplitHostPort(c.joinAddr); err != nil {
			errs = append(errs, fmt.Errorf("-cluster.join %q: %w", c.joinAddr, err))
		}
	}
	if c.replication < 1 || c.replication > 9 || c.groupsPerNode < 1 || c.groupsPerNode > 64 {
		errs = append(errs, errors.New("-cluster.replication-factor wants 1..9 and -cluster.groups-per-node 1..64"))
	}
	if c.heartbeatInterval < 10*time.Millisecond || c.deadAfter < 3*c.heartbeatInterval {
		errs = append(errs, errors.New("-cluster.heartbeat-interval wants at least 10ms and -cluster.dead-after at least three of them"))
	}
	if c.advertise == "" {
		c.advertise = c.listenAddr
	}
	if host, _, err := net.SplitHostPort(c.advertise); c.listen && (err != nil || host == "") {
		errs = append(errs, fmt.Errorf("-raft.advertise-address %q: want HOST:PORT (set it when -raft.listen-address has no host)", c.advertise))
	}
	if (c.tlsCert == "") != (c.tlsKey == "") || (c.tlsCA != "" && c.tlsCert == "") {
		errs = append(errs, errors.New("-raft.tls-cert-file and -raft.tls-key-file go together; -raft.tls-ca-file needs them"))
	}
	if c.snapshotLogBytes < 1<<20 || c.snapshotLogAge < time.Second {
		errs = append(errs, errors.New("-raft.snapshot-max-log-bytes wants at least 1 MiB and -raft.snapshot-max-log-age at least 1s"))
	}
	// A listening node authenticates its peers, or says it will not.
	credential := c.secretFile != "" || (c.tlsCert != "" && c.tlsCA != "")
	switch {
	case c.listen && !credential && !c.insecure:
		why := "neither -raft.secret-file nor mutual TLS"
		if c.tlsCert != "" {
			why = "TLS without -raft.tls-ca-file, which lets any client in"
		}
		errs = append(errs, fmt.Errorf("this node listens for Raft with %s: anyone who reaches the port could read and write "+
			"every tenant and join the cluster. Give every node the same -raft.secret-file ('myelin secret create -file F'), "+
			"or mutual TLS (-raft.tls-cert-file, -raft.tls-key-file, -raft.tls-ca-file); or accept an open port with -raft.insecure", why))
	case c.insecure && credential:
		errs = append(errs, errors.New("-raft.insecure with -raft.secret-file or mutual TLS: drop one of them"))
	}
	if c.heartbeat < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("-raft.heartbeat-timeout %v: want at least 10ms", c.heartbeat))
	}
	return errors.Join(errs...)
}

// tlsConfig loads the Raft TLS files; nil without -raft.tls-cert-file.
func (c *clusterConfig) tlsConfig() (*tls.Config, error) {
	if c.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("load raft TLS key pair: %w", err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.tlsCA != "" {
		pem, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("read raft TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("raft TLS CA %s: no PEM certificates", c.tlsCA)
		}
		conf.RootCAs, conf.ClientCAs = pool, pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// minSecretChars is the shortest cluster secret accepted: 32 characters
// ('myelin secret create' writes 64 hex digits, 256 bits).
const minSecretChars = 32

// secret reads the cluster secret from -raft.secret-file (surrounding
// white space dropped); nil without the flag.
func (c *clusterConfig) secret() ([]byte, error) {
	if c.secretFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.secretFile)
	if err != nil {
		return nil, fmt.Errorf("read cluster secret: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < minSecretChars {
		return nil, fmt.Errorf("cluster secret in %s has %d characters, want at least %d: make one with 'myelin secret create -file F'",
			c.secretFile, len(b), minSecretChars)
	}
	return b, nil
}

// voters is the metadata group's bootstrap configuration: every peer at
// its address, this node at its advertised one; nil without peers.
// plainEntries reports whether the node writes Raft entries in the
// encoding before batch version 9 (-raft.entry-format): asked for, or
// auto on a node that can have peers. A cluster of one has no older
// replica to apply its entries; a node that joins it later runs this
// release or a newer one.
func (c *clusterConfig) plainEntries() bool {
	return c.entryFormat == "plain" || (c.entryFormat == "auto" && c.listen)
}

func (c *clusterConfig) voters() []raftgroup.Voter {
	var vs []raftgroup.Voter
	for _, id := range c.order {
		addr := c.peers[id]
		if id == c.nodeID {
			addr = c.advertise
		}
		vs = append(vs, raftgroup.Voter{ID: id, Address: addr})
	}
	return vs
}

// otlpConfig is the -distributor.otel-* flags: the node's OTLP options
// and the tenants' default OTel settings (config.defaultLimits).
type otlpConfig struct {
	strategy, promote                                                      string
	suffixes, keepIdentifying, promoteScope, nhcb, nativeDelta, targetInfo bool
}

func (c otlpConfig) options() server.OTLPOptions {
	return server.OTLPOptions{DisableTargetInfo: !c.targetInfo}
}

// limits sets the OTel settings of d from the flags; set: the flags
// named on the command line or in the config file.
func (c otlpConfig) limits(d *limits.Limits, set map[string]bool) {
	d.OTelTranslationStrategy = otlptranslator.TranslationStrategyOption(c.strategy)
	d.OTelMetricSuffixesEnabled = c.suffixes
	d.PromoteOTelResourceAttributes = nil
	for a := range strings.SplitSeq(c.promote, ",") {
		if a = strings.TrimSpace(a); a != "" {
			d.PromoteOTelResourceAttributes = append(d.PromoteOTelResourceAttributes, a)
		}
	}
	d.OTelKeepIdentifyingResourceAttributes = c.keepIdentifying
	d.OTelPromoteScopeMetadata = c.promoteScope
	d.OTelConvertHistogramsToNHCB = c.nhcb
	d.OTelNativeDeltaIngestion = c.nativeDelta
	d.ReconcileOTelNames(set["distributor.otel-translation-strategy"], set["distributor.otel-metric-suffixes-enabled"])
}
