package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/server/limits"
)

// limitsConfig are the flags of the per-tenant limits that are not
// older flags of their own (the validation limits, -query.timeout and
// -query.max-samples are the defaults of theirs): Mimir's names.
type limitsConfig struct {
	ingestionRate      float64
	ingestionBurst     int
	maxSeriesPerUser   int
	maxSeriesPerMetric int
}

func (c *limitsConfig) register(fs *flag.FlagSet) {
	d := limits.Defaults()
	fs.Float64Var(&c.ingestionRate, "distributor.ingestion-rate-limit", d.IngestionRate,
		"Default per-tenant ingestion rate in samples/s for the whole cluster; each node allows its share (the rate\n"+
			"divided by the active nodes) and answers 429 past it. 0 means no limit. Overridden per tenant by\n"+
			"ingestion_rate.")
	fs.IntVar(&c.ingestionBurst, "distributor.ingestion-burst-size", d.IngestionBurstSize,
		"Default per-tenant burst of samples a node allows above the rate (not divided between nodes); a request with\n"+
			"more valid samples is always refused. Overridden by ingestion_burst_size.")
	fs.IntVar(&c.maxSeriesPerUser, "ingester.max-global-series-per-user", d.MaxGlobalSeriesPerUser,
		"Default per-tenant limit of in-memory series in the cluster: new series past it are refused (400), the\n"+
			"others keep being written. 0 means no limit. Overridden by max_global_series_per_user.")
	fs.IntVar(&c.maxSeriesPerMetric, "ingester.max-global-series-per-metric", d.MaxGlobalSeriesPerMetric,
		"Default per-tenant limit of in-memory series of one metric name in the cluster. 0 means no limit.\n"+
			"Overridden by max_global_series_per_metric.")
}

// validate reports the problems of the limit flags: the defaults d they
// make, each named by its flag.
func (c *limitsConfig) validate(d limits.Limits) error {
	var errs []error
	if err := d.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("default limits: %w", err))
	}
	return errors.Join(errs...)
}

// defaultLimits are the tenants' limits of the flags.
func (cfg *config) defaultLimits() limits.Limits {
	return limits.Limits{
		IngestionRate:            cfg.limits.ingestionRate,
		IngestionBurstSize:       cfg.limits.ingestionBurst,
		MaxGlobalSeriesPerUser:   cfg.limits.maxSeriesPerUser,
		MaxGlobalSeriesPerMetric: cfg.limits.maxSeriesPerMetric,
		MaxLabelNamesPerSeries:   cfg.maxLabelNames,
		MaxLabelNameLength:       cfg.maxLabelNameBytes,
		MaxLabelValueLength:      cfg.maxLabelValueBytes,
		CreationGracePeriod:      limits.Duration(cfg.maxFutureSkew),
		MaxSamplesPerQuery:       cfg.queryMaxSamples,
		QueryTimeout:             limits.Duration(cfg.queryTimeout),
	}
}

// tenantLimits are the node's per-tenant limits: the lookup read per
// request.
type tenantLimits struct {
	o *limits.Overrides
}

// openLimits returns the tenants' limits of the flags.
func openLimits(cfg config, logger *slog.Logger, reg prometheus.Registerer) (tenantLimits, error) {
	o, err := limits.NewOverrides(cfg.defaultLimits())
	if err != nil {
		return tenantLimits{}, err
	}
	reg.MustRegister(o.Collector())
	return tenantLimits{o: o}, nil
}
