package limits

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/otlptranslator"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/write"
)

// Limits are one tenant's limits. The YAML names are Mimir's (and
// Loki's for query_timeout), so the overrides of a Mimir runtime config
// read as they are; the flags cmd registers for the defaults are Mimir's
// too (Flag). Zero means "no limit" where the field says so; the other
// fields must be positive (Validate).
type Limits struct {
	// IngestionRate: samples per second the tenant may write across the
	// cluster; each node allows IngestionRate / active nodes (Mimir's
	// "global" strategy). Zero means no limit (Mimir has no "off").
	IngestionRate float64 `yaml:"ingestion_rate"`
	// IngestionBurstSize: samples a node allows at once above the rate,
	// not divided between nodes (as in Mimir). A request with more
	// samples than this is always refused. Must be positive with a rate.
	IngestionBurstSize int `yaml:"ingestion_burst_size"`
	// MaxGlobalSeriesPerUser: in-memory series of the tenant across the
	// cluster (docs/design.md "Limits" says how groups count them). Zero
	// means no limit.
	MaxGlobalSeriesPerUser int `yaml:"max_global_series_per_user"`
	// MaxGlobalSeriesPerMetric: in-memory series of one metric name of
	// the tenant across the cluster. Zero means no limit.
	MaxGlobalSeriesPerMetric int `yaml:"max_global_series_per_metric"`
	// OutOfOrderTimeWindow: a sample older than its series' newest one
	// is accepted when it is within this of the tenant's newest sample
	// (in its Raft group), as Mimir's out_of_order_time_window; zero
	// refuses every such sample. Whole milliseconds. The distributor
	// stamps it in each write batch, so every replica applies the same.
	OutOfOrderTimeWindow Duration `yaml:"out_of_order_time_window"`
	// MaxGlobalExemplarsPerUser: exemplars the tenant keeps across the
	// cluster, in a circular buffer per group of its share (the oldest
	// go first). Zero means exemplars are not kept, as in Mimir: a 2.0
	// request with exemplars is answered 400, a 1.0 one drops them.
	MaxGlobalExemplarsPerUser int `yaml:"max_global_exemplars_per_user"`
	// MaxGlobalMetadataPerUser: metric families with metadata the tenant
	// keeps across the cluster. Zero means no limit.
	MaxGlobalMetadataPerUser int `yaml:"max_global_metadata_per_user"`
	// MaxGlobalMetadataPerMetric: distinct metadata of one metric family.
	// Zero means no limit.
	MaxGlobalMetadataPerMetric int `yaml:"max_global_metadata_per_metric"`
	// StartTimestampZeroIngestion: for a remote write 2.0 float sample
	// with a start timestamp before it, store a zero sample at the start
	// timestamp first, as Prometheus does behind its feature flag
	// (created-timestamp-zero-ingestion), so that rate() and increase()
	// count a counter's first increase. Off by default, as in Prometheus.
	StartTimestampZeroIngestion bool `yaml:"start_timestamp_zero_ingestion_enabled"`

	// MaxLabelNamesPerSeries: labels per series, __name__ included.
	MaxLabelNamesPerSeries int `yaml:"max_label_names_per_series"`
	// MaxLabelNameLength: bytes of a label name.
	MaxLabelNameLength int `yaml:"max_label_name_length"`
	// MaxLabelValueLength: bytes of a label value.
	MaxLabelValueLength int `yaml:"max_label_value_length"`
	// CreationGracePeriod: samples further than this ahead of the node's
	// clock are refused. An override may not exceed the default: the
	// querier's ring window is sized by the default (-validation.create-
	// grace-period).
	CreationGracePeriod Duration `yaml:"creation_grace_period"`

	// MaxFetchedSeriesPerQuery: series one query (one request of the
	// query API) may select. Zero means no limit.
	MaxFetchedSeriesPerQuery int `yaml:"max_fetched_series_per_query"`
	// MaxFetchedChunkBytesPerQuery: bytes of chunks one query may read
	// (from local groups) or receive (from other nodes). Zero means no
	// limit.
	MaxFetchedChunkBytesPerQuery int `yaml:"max_fetched_chunk_bytes_per_query"`
	// MaxQueryLength: the longest time range of a query, range selectors
	// included. Zero means no limit.
	MaxQueryLength Duration `yaml:"max_query_length"`
	// MaxQueryLookback: how far back from now a query may read; earlier
	// data is left out of the answer, not refused (Mimir's semantics).
	// Zero means no limit.
	MaxQueryLookback Duration `yaml:"max_query_lookback"`
	// MaxSamplesPerQuery: samples PromQL may hold at once for one query
	// (Prometheus's -query.max-samples, per tenant).
	MaxSamplesPerQuery int `yaml:"max_samples_per_query"`
	// QueryTimeout: the longest a request of the query API may take
	// (-query.timeout, per tenant; Loki's name). An override may not
	// exceed the default (the HTTP write timeout is sized by it).
	QueryTimeout Duration `yaml:"query_timeout"`

	// The query frontend's per-tenant settings (server/frontend.Limits
	// has their meaning), with Mimir's names; their defaults are the
	// -query-frontend.* flags.

	// AlignQueriesWithStep: move a range query's start and end down to a
	// multiple of its step where that is safe.
	AlignQueriesWithStep bool `yaml:"align_queries_with_step"`
	// MaxCacheFreshness: results newer than now minus this are not cached.
	MaxCacheFreshness Duration `yaml:"max_cache_freshness"`
	// ResultsCacheTTL: how long a cached piece is used; it bounds how
	// long a backfilled sample stays hidden by the cache.
	ResultsCacheTTL Duration `yaml:"results_cache_ttl"`
	// MaxQueriersPerTenant: the frontend's workers the tenant's queries
	// may hold at once. Zero means all but one.
	MaxQueriersPerTenant int `yaml:"max_queriers_per_tenant"`
	// QueryShardingTotalShards: shards of a shardable query when
	// -query-frontend.parallelize-shardable-queries is on; 0 or 1 does
	// not shard.
	QueryShardingTotalShards int `yaml:"query_sharding_total_shards"`
	// QueryShardingMaxShardedQueries: the sub-queries one query may be
	// cut into (pieces x shards x shardable aggregations); 0 means no
	// bound.
	QueryShardingMaxShardedQueries int `yaml:"query_sharding_max_sharded_queries"`
	// QueryShardingTargetSeriesPerShard: a shardable query gets at most
	// one shard per this many series it read when it last ran, none
	// before it ran once; 0 cuts every shardable query.
	QueryShardingTargetSeriesPerShard int `yaml:"query_sharding_target_series_per_shard"`
	// QueryShardingTargetSamplesPerShard: the same per samples read.
	QueryShardingTargetSamplesPerShard int `yaml:"query_sharding_target_samples_per_shard"`

	// RetentionPeriod: the tenant's samples older than now minus this are
	// deleted, a time partition (a day) at a time, with the series left
	// without samples (cmd's retention loop proposes the steps; engine's
	// ApplyRetain applies them), and the engine keeps the tenant's
	// samples this long behind its newest one in place of the global
	// retention (-storage.retention), longer or shorter. Zero means the
	// global retention.
	RetentionPeriod Duration `yaml:"retention_period"`

	// The ruler's (server/ruler.Limits), checked when a group is set.

	// RulerMaxRuleGroupsPerTenant: rule groups of the tenant over all
	// namespaces. Zero means no limit.
	RulerMaxRuleGroupsPerTenant int `yaml:"ruler_max_rule_groups_per_tenant"`
	// RulerMaxRulesPerRuleGroup: rules in one group. Zero means no limit.
	RulerMaxRulesPerRuleGroup int `yaml:"ruler_max_rules_per_rule_group"`
	// RulerMaxIndependentRuleEvaluationConcurrencyPerTenant: rules of the
	// tenant evaluated at once beside their group's sequence (rules that
	// no other rule of the group depends on, or that depend on none),
	// within the node's -ruler.max-independent-rule-evaluation-concurrency.
	// Zero evaluates the tenant's rules one after the other.
	RulerMaxIndependentRuleEvaluationConcurrencyPerTenant int `yaml:"ruler_max_independent_rule_evaluation_concurrency_per_tenant"`

	// How the OTLP handler translates a tenant's OTel metrics (Prometheus
	// 3's otlp: settings, the names Mimir gives them per tenant); their
	// defaults are the -distributor.otel-* flags. Not in Values: they
	// are settings, not amounts.

	// OTelTranslationStrategy: how OTel metric and attribute names become
	// Prometheus names (Prometheus's otlp.translation_strategy). Empty
	// means Mimir's derivation: underscore escaping if the node refuses
	// UTF-8 names (-validation.legacy-names), none otherwise, with
	// suffixes if OTelMetricSuffixesEnabled (OTelStrategy).
	OTelTranslationStrategy otlptranslator.TranslationStrategyOption `yaml:"otel_translation_strategy"`
	// OTelMetricSuffixesEnabled: add the unit and _total suffixes. With
	// a strategy it must agree with it (Validate); an override that
	// names only one of the two changes the other to agree
	// (ReconcileOTelNames).
	OTelMetricSuffixesEnabled bool `yaml:"otel_metric_suffixes_enabled"`
	// PromoteOTelResourceAttributes: resource attributes copied as labels
	// onto every series of the resource (otlp.promote_resource_attributes).
	PromoteOTelResourceAttributes CSV `yaml:"promote_otel_resource_attributes"`
	// OTelKeepIdentifyingResourceAttributes: keep service.name,
	// service.namespace and service.instance.id on target_info too.
	OTelKeepIdentifyingResourceAttributes bool `yaml:"otel_keep_identifying_resource_attributes"`
	// OTelPromoteScopeMetadata: add otel_scope_name, _version,
	// _schema_url and the scope's attributes as labels.
	OTelPromoteScopeMetadata bool `yaml:"otel_promote_scope_metadata"`
	// OTelConvertHistogramsToNHCB: explicit-bucket histograms become
	// native histograms with custom buckets instead of _bucket, _sum and
	// _count series (otlp.convert_histograms_to_nhcb).
	OTelConvertHistogramsToNHCB bool `yaml:"otel_convert_histograms_to_nhcb"`
	// OTelNativeDeltaIngestion: store delta sums and histograms as their
	// raw delta values, as Prometheus's native-delta-ingestion feature
	// does; off, they are refused (docs/design.md "OTLP metrics ingest").
	OTelNativeDeltaIngestion bool `yaml:"otel_native_delta_ingestion"`
}

// otelNames are the YAML names of the OTLP settings of Limits, which
// Values leaves out.
var otelNames = []string{"otel_translation_strategy", "otel_metric_suffixes_enabled", "promote_otel_resource_attributes",
	"otel_keep_identifying_resource_attributes", "otel_promote_scope_metadata", "otel_convert_histograms_to_nhcb", "otel_native_delta_ingestion"}

// OTelStrategy returns the translation strategy in force: the one set,
// or Mimir's derivation from the suffixes setting and the node's name
// validation (legacyNames: Prometheus 2's character set only).
func (l *Limits) OTelStrategy(legacyNames bool) otlptranslator.TranslationStrategyOption {
	if l.OTelTranslationStrategy != "" {
		return l.OTelTranslationStrategy
	}
	switch {
	case legacyNames && l.OTelMetricSuffixesEnabled:
		return otlptranslator.UnderscoreEscapingWithSuffixes
	case legacyNames:
		return otlptranslator.UnderscoreEscapingWithoutSuffixes
	case l.OTelMetricSuffixesEnabled:
		return otlptranslator.NoUTF8EscapingWithSuffixes
	}
	return otlptranslator.NoTranslation
}

// ReconcileOTelNames makes the strategy and the suffixes setting agree
// when only one of them was named (by a tenant's override, or a flag):
// the named one wins. Naming only otel_metric_suffixes_enabled keeps the
// strategy's escaping and switches its suffixes, so a Mimir override of
// the suffixes alone does what it says over our default strategy
// (Mimir's default is empty, derived). Naming both leaves them to
// Validate.
func (l *Limits) ReconcileOTelNames(namedStrategy, namedSuffixes bool) {
	switch {
	case namedStrategy && !namedSuffixes && l.OTelTranslationStrategy != "":
		l.OTelMetricSuffixesEnabled = l.OTelTranslationStrategy.ShouldAddSuffixes()
	case namedSuffixes && !namedStrategy && l.OTelTranslationStrategy != "":
		escape := l.OTelTranslationStrategy.ShouldEscape()
		switch {
		case escape && l.OTelMetricSuffixesEnabled:
			l.OTelTranslationStrategy = otlptranslator.UnderscoreEscapingWithSuffixes
		case escape:
			l.OTelTranslationStrategy = otlptranslator.UnderscoreEscapingWithoutSuffixes
		case l.OTelMetricSuffixesEnabled:
			l.OTelTranslationStrategy = otlptranslator.NoUTF8EscapingWithSuffixes
		default:
			l.OTelTranslationStrategy = otlptranslator.NoTranslation
		}
	}
}

// CSV is a list written in YAML as one comma-separated string, as
// Mimir's flagext.StringSliceCSV ("service.name,k8s.pod.name"); a YAML
// sequence is read too.
type CSV []string

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *CSV) UnmarshalYAML(n *yaml.Node) error {
	var list []string
	if n.Kind == yaml.SequenceNode {
		if err := n.Decode(&list); err != nil {
			return err
		}
	} else {
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		list = strings.Split(s, ",")
	}
	out := CSV{}
	for _, v := range list {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	*c = out
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (c CSV) MarshalYAML() (any, error) { return strings.Join(c, ","), nil }

// Defaults returns the default limits: Myelin's flag defaults. They are
// Mimir's except the ingestion rate and burst, which Mimir sets to 10,000
// samples/s and 200,000: here no rate limit by default (a node of one
// tenant, the quick start and the benchmarks, would be refused at its
// first backfill), the burst Mimir's. Query timeout and samples are
// Prometheus's, and so is the OTLP translation (UnderscoreEscapingWithSuffixes).
func Defaults() Limits {
	return Limits{
		IngestionBurstSize:     200_000,
		MaxLabelNamesPerSeries: remotewrite.DefaultMaxLabelNames,
		MaxLabelNameLength:     remotewrite.DefaultMaxLabelNameBytes,
		MaxLabelValueLength:    remotewrite.DefaultMaxLabelValueBytes,
		CreationGracePeriod:    Duration(remotewrite.DefaultMaxFutureSkew),
		MaxSamplesPerQuery:     50_000_000,
		QueryTimeout:           Duration(2 * time.Minute),
		MaxCacheFreshness:      Duration(10 * time.Minute),
		ResultsCacheTTL:        Duration(time.Hour),
		// Mimir's: used once -ruler.max-independent-rule-evaluation-concurrency
		// turns concurrent evaluation on.
		RulerMaxIndependentRuleEvaluationConcurrencyPerTenant: 4,
		// Prometheus 3's OTLP default, not Mimir's (empty, derived).
		OTelTranslationStrategy:   otlptranslator.UnderscoreEscapingWithSuffixes,
		OTelMetricSuffixesEnabled: true,
	}
}

// Validation returns the per-series validation limits of l for the
// remote-write decoder, with Prometheus 3's names unless legacyNames.
func (l *Limits) Validation(legacyNames bool) remotewrite.Limits {
	return remotewrite.Limits{
		MaxLabelNames:      l.MaxLabelNamesPerSeries,
		MaxLabelNameBytes:  l.MaxLabelNameLength,
		MaxLabelValueBytes: l.MaxLabelValueLength,
		MaxFutureSkew:      time.Duration(l.CreationGracePeriod),
		LegacyNames:        legacyNames,
	}
}

// Duration is a time.Duration written in YAML as Prometheus writes
// durations ("30d", "1h30m", "90s"), as Mimir's limits are.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := model.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String is the Prometheus form ("30d", "0s").
func (d Duration) String() string { return model.Duration(d).String() }

// Flag names of the limits, by YAML name: Mimir's where Mimir has one
// (the validation limits keep the names Myelin had before, which are
// Mimir's too); error texts name them, as Mimir's do.
var Flag = map[string]string{
	"ingestion_rate":                                               "distributor.ingestion-rate-limit",
	"ingestion_burst_size":                                         "distributor.ingestion-burst-size",
	"max_global_series_per_user":                                   "ingester.max-global-series-per-user",
	"max_global_series_per_metric":                                 "ingester.max-global-series-per-metric",
	"out_of_order_time_window":                                     "ingester.out-of-order-time-window",
	"max_global_exemplars_per_user":                                "ingester.max-global-exemplars-per-user",
	"max_global_metadata_per_user":                                 "ingester.max-global-metadata-per-user",
	"max_global_metadata_per_metric":                               "ingester.max-global-metadata-per-metric",
	"start_timestamp_zero_ingestion_enabled":                       "distributor.start-timestamp-zero-ingestion-enabled",
	"max_label_names_per_series":                                   "validation.max-label-names-per-series",
	"max_label_name_length":                                        "validation.max-length-label-name",
	"max_label_value_length":                                       "validation.max-length-label-value",
	"creation_grace_period":                                        "validation.create-grace-period",
	"max_fetched_series_per_query":                                 "querier.max-fetched-series-per-query",
	"max_fetched_chunk_bytes_per_query":                            "querier.max-fetched-chunk-bytes-per-query",
	"max_query_length":                                             "store.max-query-length",
	"max_query_lookback":                                           "querier.max-query-lookback",
	"max_samples_per_query":                                        "query.max-samples",
	"query_timeout":                                                "query.timeout",
	"align_queries_with_step":                                      "query-frontend.align-queries-with-step",
	"max_cache_freshness":                                          "query-frontend.max-cache-freshness",
	"results_cache_ttl":                                            "query-frontend.results-cache-ttl",
	"max_queriers_per_tenant":                                      "query-frontend.max-queriers-per-tenant",
	"query_sharding_total_shards":                                  "query-frontend.query-sharding-total-shards",
	"query_sharding_max_sharded_queries":                           "query-frontend.query-sharding-max-sharded-queries",
	"query_sharding_target_series_per_shard":                       "query-frontend.query-sharding-target-series-per-shard",
	"query_sharding_target_samples_per_shard":                      "query-frontend.query-sharding-target-samples-per-shard",
	"retention_period":                                             "storage.retention",
	"ruler_max_rule_groups_per_tenant":                             "ruler.max-rule-groups-per-tenant",
	"ruler_max_rules_per_rule_group":                               "ruler.max-rules-per-rule-group",
	"ruler_max_independent_rule_evaluation_concurrency_per_tenant": "ruler.max-independent-rule-evaluation-concurrency-per-tenant",
	"otel_translation_strategy":                                    "distributor.otel-translation-strategy",
	"otel_metric_suffixes_enabled":                                 "distributor.otel-metric-suffixes-enabled",
	"promote_otel_resource_attributes":                             "distributor.otel-promote-resource-attributes",
	"otel_keep_identifying_resource_attributes":                    "distributor.otel-keep-identifying-resource-attributes",
	"otel_promote_scope_metadata":                                  "distributor.otel-promote-scope-metadata",
	"otel_convert_histograms_to_nhcb":                              "distributor.otel-convert-histograms-to-nhcb",
	"otel_native_delta_ingestion":                                  "distributor.otel-native-delta-ingestion",
}

// Value is one limit of a Limits as a number, for metrics and listings.
type Value struct {
	Name  string  // YAML name
	Value float64 // seconds for durations
}

// Values returns every limit of l by YAML name, in the order of the
// struct.
func (l *Limits) Values() []Value {
	sec := func(d Duration) float64 { return time.Duration(d).Seconds() }
	return []Value{
		{"ingestion_rate", l.IngestionRate},
		{"ingestion_burst_size", float64(l.IngestionBurstSize)},
		{"max_global_series_per_user", float64(l.MaxGlobalSeriesPerUser)},
		{"max_global_series_per_metric", float64(l.MaxGlobalSeriesPerMetric)},
		{"out_of_order_time_window", sec(l.OutOfOrderTimeWindow)},
		{"max_global_exemplars_per_user", float64(l.MaxGlobalExemplarsPerUser)},
		{"max_global_metadata_per_user", float64(l.MaxGlobalMetadataPerUser)},
		{"max_global_metadata_per_metric", float64(l.MaxGlobalMetadataPerMetric)},
		{"start_timestamp_zero_ingestion_enabled", b2f(l.StartTimestampZeroIngestion)},
		{"max_label_names_per_series", float64(l.MaxLabelNamesPerSeries)},
		{"max_label_name_length", float64(l.MaxLabelNameLength)},
		{"max_label_value_length", float64(l.MaxLabelValueLength)},
		{"creation_grace_period", sec(l.CreationGracePeriod)},
		{"max_fetched_series_per_query", float64(l.MaxFetchedSeriesPerQuery)},
		{"max_fetched_chunk_bytes_per_query", float64(l.MaxFetchedChunkBytesPerQuery)},
		{"max_query_length", sec(l.MaxQueryLength)},
		{"max_query_lookback", sec(l.MaxQueryLookback)},
		{"max_samples_per_query", float64(l.MaxSamplesPerQuery)},
		{"query_timeout", sec(l.QueryTimeout)},
		{"align_queries_with_step", b2f(l.AlignQueriesWithStep)},
		{"max_cache_freshness", sec(l.MaxCacheFreshness)},
		{"results_cache_ttl", sec(l.ResultsCacheTTL)},
		{"max_queriers_per_tenant", float64(l.MaxQueriersPerTenant)},
		{"query_sharding_total_shards", float64(l.QueryShardingTotalShards)},
		{"query_sharding_max_sharded_queries", float64(l.QueryShardingMaxShardedQueries)},
		{"query_sharding_target_series_per_shard", float64(l.QueryShardingTargetSeriesPerShard)},
		{"query_sharding_target_samples_per_shard", float64(l.QueryShardingTargetSamplesPerShard)},
		{"retention_period", sec(l.RetentionPeriod)},
		{"ruler_max_rule_groups_per_tenant", float64(l.RulerMaxRuleGroupsPerTenant)},
		{"ruler_max_rules_per_rule_group", float64(l.RulerMaxRulesPerRuleGroup)},
		{"ruler_max_independent_rule_evaluation_concurrency_per_tenant", float64(l.RulerMaxIndependentRuleEvaluationConcurrencyPerTenant)},
	}
}

// b2f is 1 for true, 0 for false.
func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Validate reports every problem of l at once, each naming the limit by
// its YAML name and flag.
func (l *Limits) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s (-%s): %s", name, Flag[name], fmt.Sprintf(format, args...)))
	}
	if l.IngestionRate < 0 || math.IsNaN(l.IngestionRate) || math.IsInf(l.IngestionRate, 0) {
		bad("ingestion_rate", "%v: want a finite number of samples/s, 0 for no limit", l.IngestionRate)
	}
	if l.IngestionBurstSize < 0 || l.IngestionRate > 0 && l.IngestionBurstSize == 0 {
		bad("ingestion_burst_size", "%d: want at least 1 with an ingestion rate (a request with more samples is always refused)", l.IngestionBurstSize)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_global_series_per_user", l.MaxGlobalSeriesPerUser},
		{"max_global_series_per_metric", l.MaxGlobalSeriesPerMetric},
		{"max_global_exemplars_per_user", l.MaxGlobalExemplarsPerUser},
		{"max_global_metadata_per_user", l.MaxGlobalMetadataPerUser},
		{"max_global_metadata_per_metric", l.MaxGlobalMetadataPerMetric},
		{"max_fetched_series_per_query", l.MaxFetchedSeriesPerQuery},
		{"max_fetched_chunk_bytes_per_query", l.MaxFetchedChunkBytesPerQuery},
		{"ruler_max_rule_groups_per_tenant", l.RulerMaxRuleGroupsPerTenant},
		{"ruler_max_rules_per_rule_group", l.RulerMaxRulesPerRuleGroup},
		{"ruler_max_independent_rule_evaluation_concurrency_per_tenant", l.RulerMaxIndependentRuleEvaluationConcurrencyPerTenant},
	} {
		if f.v < 0 {
			bad(f.name, "%d is negative: want 0 for no limit, or more", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_label_names_per_series", l.MaxLabelNamesPerSeries},
		{"max_label_name_length", l.MaxLabelNameLength},
		{"max_label_value_length", l.MaxLabelValueLength},
		{"max_samples_per_query", l.MaxSamplesPerQuery},
	} {
		if f.v < 1 {
			bad(f.name, "%d: want at least 1", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    Duration
	}{
		{"max_query_length", l.MaxQueryLength},
		{"max_query_lookback", l.MaxQueryLookback},
		{"retention_period", l.RetentionPeriod},
	} {
		if f.v < 0 {
			bad(f.name, "%v is negative: want 0 for no limit, or more", f.v)
		}
	}
	if w := time.Duration(l.OutOfOrderTimeWindow); w < 0 || w%time.Millisecond != 0 || w.Milliseconds() > write.MaxOutOfOrderWindow {
		bad("out_of_order_time_window", "%v: want 0 (off) or a positive whole number of milliseconds, at most 2^40 (34 years)", l.OutOfOrderTimeWindow)
	}
	// The frontend's: 0 has a meaning of its own for each (doc of the
	// fields), below 0 none.
	if l.MaxQueriersPerTenant < 0 {
		bad("max_queriers_per_tenant", "%d is negative: want 0 (all workers but one) or more", l.MaxQueriersPerTenant)
	}
	if l.QueryShardingTotalShards < 0 {
		bad("query_sharding_total_shards", "%d is negative: want 0 (no sharding) or more", l.QueryShardingTotalShards)
	}
	if l.QueryShardingMaxShardedQueries < 0 {
		bad("query_sharding_max_sharded_queries", "%d is negative: want 0 (no bound) or more", l.QueryShardingMaxShardedQueries)
	}
	if l.QueryShardingTargetSeriesPerShard < 0 {
		bad("query_sharding_target_series_per_shard", "%d is negative: want 0 (shard every shardable query) or more", l.QueryShardingTargetSeriesPerShard)
	}
	if l.QueryShardingTargetSamplesPerShard < 0 {
		bad("query_sharding_target_samples_per_shard", "%d is negative: want 0 (shard every shardable query) or more", l.QueryShardingTargetSamplesPerShard)
	}
	if l.MaxCacheFreshness < 0 {
		bad("max_cache_freshness", "%v is negative", l.MaxCacheFreshness)
	}
	if l.ResultsCacheTTL < 0 {
		bad("results_cache_ttl", "%v is negative", l.ResultsCacheTTL)
	}
	switch st := l.OTelTranslationStrategy; st {
	case "":
	case otlptranslator.UnderscoreEscapingWithSuffixes, otlptranslator.UnderscoreEscapingWithoutSuffixes,
		otlptranslator.NoUTF8EscapingWithSuffixes, otlptranslator.NoTranslation:
		if st.ShouldAddSuffixes() != l.OTelMetricSuffixesEnabled {
			bad("otel_translation_strategy", "%s disagrees with otel_metric_suffixes_enabled: %v (-%s): set both to agree, or only one",
				st, l.OTelMetricSuffixesEnabled, Flag["otel_metric_suffixes_enabled"])
		}
	default:
		bad("otel_translation_strategy", "unknown strategy %q: want %s, %s, %s, %s, or empty (derived from otel_metric_suffixes_enabled and the name validation)", st,
			otlptranslator.UnderscoreEscapingWithSuffixes, otlptranslator.UnderscoreEscapingWithoutSuffixes,
			otlptranslator.NoUTF8EscapingWithSuffixes, otlptranslator.NoTranslation)
	}
	for _, f := range []struct {
		name string
		v    Duration
	}{
		{"creation_grace_period", l.CreationGracePeriod},
		{"query_timeout", l.QueryTimeout},
	} {
		if f.v <= 0 || time.Duration(f.v)%time.Millisecond != 0 {
			bad(f.name, "%v: want a positive whole number of milliseconds", f.v)
		}
	}
	return errors.Join(errs...)
}

// validateOverride reports the problems of a tenant's limits beyond
// Validate: what an override may not change against the defaults.
func (l *Limits) validateOverride(defaults *Limits) error {
	var errs []error
	if l.CreationGracePeriod > defaults.CreationGracePeriod {
		errs = append(errs, fmt.Errorf("creation_grace_period (-%s): %v is above the default %v: queries look for samples up to the default ahead of a ring change, so an override may only lower it",
			Flag["creation_grace_period"], l.CreationGracePeriod, defaults.CreationGracePeriod))
	}
	if l.QueryTimeout > defaults.QueryTimeout {
		errs = append(errs, fmt.Errorf("query_timeout (-%s): %v is above the default %v: the HTTP server's write timeout is sized by the default, so an override may only lower it (raise -query.timeout and lower the others instead)",
			Flag["query_timeout"], l.QueryTimeout, defaults.QueryTimeout))
	}
	return errors.Join(errs...)
}
