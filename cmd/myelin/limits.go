package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/frontend"
	"github.com/myelindb/myelin/server/limits"
)

// limitsConfig are the flags of the per-tenant limits that are not
// older flags of their own (the validation limits, -query.timeout and
// -query.max-samples are the defaults of theirs): Mimir's names.
type limitsConfig struct {
	ingestionRate          float64
	ingestionBurst         int
	maxSeriesPerUser       int
	maxSeriesPerMetric     int
	oooWindow              promDuration
	maxFetchedSeries       int
	maxFetchedChunkBytes   int
	maxQueryLength         promDuration
	maxQueryLookback       promDuration
	rulerMaxGroups         int
	maxExemplars           int
	maxMetadata            int
	maxMetadataPerMetric   int
	stZeroIngestion        bool
	rulerMaxRulesPerGroup  int
	rulerEvalConcurrency   int
	runtimeConfigFile      string
	runtimeConfigReloadDur time.Duration
}

func (c *limitsConfig) register(fs *flag.FlagSet) {
	d := limits.Defaults()
	fs.Float64Var(&c.ingestionRate, "distributor.ingestion-rate-limit", d.IngestionRate,
		"Default per-tenant ingestion rate in samples/s for the whole cluster; each node allows its share (the rate\n"+
			"divided by the active nodes) and answers 429 past it. 0 means no limit. Overridden per tenant by\n"+
			"ingestion_rate in -runtime-config.file.")
	fs.IntVar(&c.ingestionBurst, "distributor.ingestion-burst-size", d.IngestionBurstSize,
		"Default per-tenant burst of samples a node allows above the rate (not divided between nodes); a request with\n"+
			"more valid samples is always refused. Overridden by ingestion_burst_size.")
	fs.IntVar(&c.maxSeriesPerUser, "ingester.max-global-series-per-user", d.MaxGlobalSeriesPerUser,
		"Default per-tenant limit of in-memory series in the cluster: new series past it are refused (400), the\n"+
			"others keep being written. 0 means no limit. Overridden by max_global_series_per_user.")
	fs.IntVar(&c.maxSeriesPerMetric, "ingester.max-global-series-per-metric", d.MaxGlobalSeriesPerMetric,
		"Default per-tenant limit of in-memory series of one metric name in the cluster. 0 means no limit.\n"+
			"Overridden by max_global_series_per_metric.")
	c.oooWindow = promDuration(d.OutOfOrderTimeWindow)
	fs.Var(&c.oooWindow, "ingester.out-of-order-time-window",
		"Default per-tenant window for out-of-order samples (floats and native histograms): a sample older than its\n"+
			"series' newest one is accepted within this of the tenant's newest sample (\"10m\"); 0 refuses them (400).\n"+
			"Overridden by out_of_order_time_window.")
	fs.IntVar(&c.maxExemplars, "ingester.max-global-exemplars-per-user", d.MaxGlobalExemplarsPerUser,
		"Default per-tenant number of exemplars kept in the cluster, newest first (a circular buffer per Raft group of\n"+
			"its share). 0 means exemplars are not kept, as in Mimir: remote write 2.0 requests with exemplars get a 400,\n"+
			"1.0 ones have them dropped. Overridden by max_global_exemplars_per_user.")
	fs.IntVar(&c.maxMetadata, "ingester.max-global-metadata-per-user", d.MaxGlobalMetadataPerUser,
		"Default per-tenant limit of metric families with metadata in the cluster (400 for new ones past it). 0 means\n"+
			"no limit. Overridden by max_global_metadata_per_user.")
	fs.IntVar(&c.maxMetadataPerMetric, "ingester.max-global-metadata-per-metric", d.MaxGlobalMetadataPerMetric,
		"Default per-tenant limit of distinct metadata of one metric family. 0 means no limit. Overridden by\n"+
			"max_global_metadata_per_metric.")
	fs.BoolVar(&c.stZeroIngestion, "distributor.start-timestamp-zero-ingestion-enabled", d.StartTimestampZeroIngestion,
		"Default per-tenant: for a remote write 2.0 sample with a start timestamp before it, store a zero sample at\n"+
			"the start timestamp first (Prometheus's created-timestamp-zero-ingestion). Overridden by\n"+
			"start_timestamp_zero_ingestion_enabled.")
	fs.IntVar(&c.maxFetchedSeries, "querier.max-fetched-series-per-query", d.MaxFetchedSeriesPerQuery,
		"Default per-tenant limit of series one query may select; a query past it stops with 422 before it loads\n"+
			"them. 0 means no limit. Overridden by max_fetched_series_per_query.")
	fs.IntVar(&c.maxFetchedChunkBytes, "querier.max-fetched-chunk-bytes-per-query", d.MaxFetchedChunkBytesPerQuery,
		"Default per-tenant limit of chunk `bytes` one query may read or receive from other nodes (422 past it).\n"+
			"0 means no limit. Overridden by max_fetched_chunk_bytes_per_query.")
	c.maxQueryLength = promDuration(d.MaxQueryLength)
	fs.Var(&c.maxQueryLength, "store.max-query-length",
		"Default per-tenant limit of a query's time range, range selectors included (\"30d\", \"720h\"). 0 means no\n"+
			"limit. Overridden by max_query_length.")
	c.maxQueryLookback = promDuration(d.MaxQueryLookback)
	fs.Var(&c.maxQueryLookback, "querier.max-query-lookback",
		"Default per-tenant limit of how far back queries read; older data is left out of answers. 0 means no\n"+
			"limit. Overridden by max_query_lookback.")
	fs.IntVar(&c.rulerMaxGroups, "ruler.max-rule-groups-per-tenant", d.RulerMaxRuleGroupsPerTenant,
		"Default per-tenant limit of rule groups over all namespaces; a POST past it is refused (400). 0 means no\n"+
			"limit (Mimir's default is 70). Overridden by ruler_max_rule_groups_per_tenant.")
	fs.IntVar(&c.rulerMaxRulesPerGroup, "ruler.max-rules-per-rule-group", d.RulerMaxRulesPerRuleGroup,
		"Default per-tenant limit of rules in one rule group (400 past it). 0 means no limit (Mimir's default is 20).\n"+
			"Overridden by ruler_max_rules_per_rule_group.")
	fs.IntVar(&c.rulerEvalConcurrency, "ruler.max-independent-rule-evaluation-concurrency-per-tenant", d.RulerMaxIndependentRuleEvaluationConcurrencyPerTenant,
		"Default per-tenant limit of rules evaluated at once beside their group's sequence, within\n"+
			"-ruler.max-independent-rule-evaluation-concurrency. Overridden by ruler_max_independent_rule_evaluation_concurrency_per_tenant.")
	fs.StringVar(&c.runtimeConfigFile, "runtime-config.file", "",
		"YAML `file` of per-tenant limit overrides (Mimir's format: 'overrides:' tenant -> limits), reloaded every\n"+
			"-runtime-config.reload-period; a bad file keeps the last good one (log, /metrics and /runtime_config say why).")
	fs.DurationVar(&c.runtimeConfigReloadDur, "runtime-config.reload-period", 10*time.Second,
		"How often to check -runtime-config.file for changes.")
}

// validate reports the problems of the limit flags: the defaults d they
// make (each named by its flag) and the reload period.
func (c *limitsConfig) validate(d limits.Limits) error {
	var errs []error
	if err := d.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("default limits: %w", err))
	}
	if c.runtimeConfigReloadDur <= 0 {
		errs = append(errs, fmt.Errorf("-runtime-config.reload-period %v: want a positive duration", c.runtimeConfigReloadDur))
	}
	return errors.Join(errs...)
}

// defaultLimits are the tenants' limits of the flags.
func (cfg *config) defaultLimits() limits.Limits {
	l := limits.Limits{
		IngestionRate:                      cfg.limits.ingestionRate,
		IngestionBurstSize:                 cfg.limits.ingestionBurst,
		MaxGlobalSeriesPerUser:             cfg.limits.maxSeriesPerUser,
		MaxGlobalSeriesPerMetric:           cfg.limits.maxSeriesPerMetric,
		OutOfOrderTimeWindow:               limits.Duration(cfg.limits.oooWindow),
		MaxGlobalExemplarsPerUser:          cfg.limits.maxExemplars,
		MaxGlobalMetadataPerUser:           cfg.limits.maxMetadata,
		MaxGlobalMetadataPerMetric:         cfg.limits.maxMetadataPerMetric,
		StartTimestampZeroIngestion:        cfg.limits.stZeroIngestion,
		MaxLabelNamesPerSeries:             cfg.maxLabelNames,
		MaxLabelNameLength:                 cfg.maxLabelNameBytes,
		MaxLabelValueLength:                cfg.maxLabelValueBytes,
		CreationGracePeriod:                limits.Duration(cfg.maxFutureSkew),
		MaxFetchedSeriesPerQuery:           cfg.limits.maxFetchedSeries,
		MaxFetchedChunkBytesPerQuery:       cfg.limits.maxFetchedChunkBytes,
		MaxQueryLength:                     limits.Duration(cfg.limits.maxQueryLength),
		MaxQueryLookback:                   limits.Duration(cfg.limits.maxQueryLookback),
		MaxSamplesPerQuery:                 cfg.queryMaxSamples,
		QueryTimeout:                       limits.Duration(cfg.queryTimeout),
		AlignQueriesWithStep:               cfg.frontend.limits.AlignQueriesWithStep,
		MaxCacheFreshness:                  limits.Duration(cfg.frontend.limits.MaxCacheFreshness),
		ResultsCacheTTL:                    limits.Duration(cfg.frontend.limits.ResultsCacheTTL),
		MaxQueriersPerTenant:               cfg.frontend.limits.MaxQueriersPerTenant,
		QueryShardingTotalShards:           cfg.frontend.limits.TotalShards,
		QueryShardingMaxShardedQueries:     cfg.frontend.limits.MaxShardedQueries,
		QueryShardingTargetSeriesPerShard:  cfg.frontend.limits.TargetSeriesPerShard,
		QueryShardingTargetSamplesPerShard: cfg.frontend.limits.TargetSamplesPerShard,
		RulerMaxRuleGroupsPerTenant:        cfg.limits.rulerMaxGroups,
		RulerMaxRulesPerRuleGroup:          cfg.limits.rulerMaxRulesPerGroup,
		RulerMaxIndependentRuleEvaluationConcurrencyPerTenant: cfg.limits.rulerEvalConcurrency,
	}
	cfg.otlp.limits(&l, cfg.set)
	return l
}

// frontendLimits returns the query frontend's limits of a tenant: the
// flags' for what has no per-tenant value, the tenant's limits (the
// runtime config's overrides) for the rest.
func frontendLimits(defaults frontend.Limits, o *limits.Overrides) func(tenant string) frontend.Limits {
	return func(tenant string) frontend.Limits {
		l := o.For(tenant)
		fl := defaults
		fl.AlignQueriesWithStep = l.AlignQueriesWithStep
		// Results newer than the out-of-order window may still change:
		// they are not cached, as in Mimir's frontend.
		fl.MaxCacheFreshness = max(time.Duration(l.MaxCacheFreshness), time.Duration(l.OutOfOrderTimeWindow))
		fl.ResultsCacheTTL = time.Duration(l.ResultsCacheTTL)
		fl.MaxQueriersPerTenant = l.MaxQueriersPerTenant
		fl.TotalShards = l.QueryShardingTotalShards
		fl.MaxShardedQueries = l.QueryShardingMaxShardedQueries
		fl.TargetSeriesPerShard = l.QueryShardingTargetSeriesPerShard
		fl.TargetSamplesPerShard = l.QueryShardingTargetSamplesPerShard
		return fl
	}
}

// promDuration is a duration flag that also takes Prometheus's units
// ("30d", "2w"), as Mimir's duration limits do.
type promDuration time.Duration

func (d *promDuration) String() string { return model.Duration(*d).String() }

func (d *promDuration) Set(s string) error {
	if v, err := time.ParseDuration(s); err == nil {
		*d = promDuration(v)
		return nil
	}
	v, err := model.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration: %q", s)
	}
	*d = promDuration(v)
	return nil
}

// tenantLimits are the node's per-tenant limits: the lookup read per
// request, and the loader of -runtime-config.file that keeps it current
// (nil without the flag; its Run goroutine is run's).
type tenantLimits struct {
	o      *limits.Overrides
	loader *limits.Loader
}

// openLimits returns the tenants' limits of the flags, with the runtime
// config's overrides and its loader. A runtime config that does not load
// stops the start: a node does not serve with limits it cannot read.
func openLimits(cfg config, logger *slog.Logger, reg prometheus.Registerer) (tenantLimits, error) {
	o, err := limits.NewOverrides(cfg.defaultLimits())
	if err != nil {
		return tenantLimits{}, err
	}
	reg.MustRegister(o.Collector())
	if cfg.limits.runtimeConfigFile == "" {
		return tenantLimits{o: o}, nil
	}
	l, err := limits.NewLoader(limits.LoaderOptions{
		Path:       cfg.limits.runtimeConfigFile,
		Period:     cfg.limits.runtimeConfigReloadDur,
		Overrides:  o,
		Logger:     logger,
		Registerer: reg,
	})
	if err != nil {
		return tenantLimits{}, err
	}
	logger.Info("runtime config loaded", "file", cfg.limits.runtimeConfigFile, "tenants", len(o.Config().Tenants), "sha256", o.Config().SHA256)
	return tenantLimits{o: o, loader: l}, nil
}

// status is the status of the runtime config for /runtime_config; nil
// without a file.
func (l tenantLimits) status() server.RuntimeConfigStatus {
	if l.loader == nil {
		return nil
	}
	return l.loader.Status
}
