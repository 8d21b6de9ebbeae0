package limits

import (
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"
)

// Config is a loaded runtime config: each tenant it names with its
// effective limits (the defaults, then the tenant's overrides). It is
// immutable once built.
type Config struct {
	// Tenants: the effective limits of each tenant of the file's
	// overrides section. Do not modify.
	Tenants map[string]*Limits
	// SHA256 of the file's content, in hex; empty for no file.
	SHA256 string
}

// Names returns the tenants of c, sorted.
func (c *Config) Names() []string {
	return slices.Sorted(maps.Keys(c.Tenants))
}

// Overrides is the lookup of per-tenant limits: defaults from flags
// (immutable), overridden per tenant by the runtime config (replaced
// whole by Set). Getters read the current config per call, so a
// request uses the limits in force when it reads them: read them per
// request, never cache them. Safe for concurrent use; a lookup is an
// atomic load and a map access.
type Overrides struct {
	defaults Limits
	cur      atomic.Pointer[Config]
}

// NewOverrides returns the lookup over defaults, without overrides.
func NewOverrides(defaults Limits) (*Overrides, error) {
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("default limits: %w", err)
	}
	o := &Overrides{defaults: defaults}
	o.cur.Store(&Config{})
	return o, nil
}

// Defaults returns the default limits.
func (o *Overrides) Defaults() Limits { return o.defaults }

// Set replaces the runtime config (built by ParseConfig with the same
// defaults).
func (o *Overrides) Set(c *Config) { o.cur.Store(c) }

// Config returns the runtime config in force.
func (o *Overrides) Config() *Config { return o.cur.Load() }

// For returns tenant's limits: its overrides, or the defaults. The
// result is shared: do not modify it.
func (o *Overrides) For(tenant string) *Limits {
	if l, ok := o.cur.Load().Tenants[tenant]; ok {
		return l
	}
	return &o.defaults
}

// Typed getters, one limit each (see the fields of Limits).

func (o *Overrides) IngestionRate(tenant string) float64 { return o.For(tenant).IngestionRate }
func (o *Overrides) RetentionPeriod(tenant string) time.Duration {
	return time.Duration(o.For(tenant).RetentionPeriod)
}
func (o *Overrides) IngestionBurstSize(tenant string) int {
	return o.For(tenant).IngestionBurstSize
}
func (o *Overrides) MaxGlobalSeriesPerUser(tenant string) int {
	return o.For(tenant).MaxGlobalSeriesPerUser
}
func (o *Overrides) MaxGlobalSeriesPerMetric(tenant string) int {
	return o.For(tenant).MaxGlobalSeriesPerMetric
}
func (o *Overrides) OutOfOrderTimeWindow(tenant string) time.Duration {
	return time.Duration(o.For(tenant).OutOfOrderTimeWindow)
}

// MetaLimits returns the tenant's exemplar and metadata limits
// (max_global_exemplars_per_user, max_global_metadata_per_user,
// max_global_metadata_per_metric), for the distributor.
func (o *Overrides) MetaLimits(tenant string) (exemplars, metadata, metadataPerMetric int) {
	l := o.For(tenant)
	return l.MaxGlobalExemplarsPerUser, l.MaxGlobalMetadataPerUser, l.MaxGlobalMetadataPerMetric
}
func (o *Overrides) MaxFetchedSeriesPerQuery(tenant string) int {
	return o.For(tenant).MaxFetchedSeriesPerQuery
}
func (o *Overrides) MaxFetchedChunkBytesPerQuery(tenant string) int {
	return o.For(tenant).MaxFetchedChunkBytesPerQuery
}
func (o *Overrides) MaxQueryLength(tenant string) time.Duration {
	return time.Duration(o.For(tenant).MaxQueryLength)
}
func (o *Overrides) MaxQueryLookback(tenant string) time.Duration {
	return time.Duration(o.For(tenant).MaxQueryLookback)
}
func (o *Overrides) MaxSamplesPerQuery(tenant string) int {
	return o.For(tenant).MaxSamplesPerQuery
}
func (o *Overrides) RulerMaxRuleGroupsPerTenant(tenant string) int {
	return o.For(tenant).RulerMaxRuleGroupsPerTenant
}
func (o *Overrides) RulerMaxRulesPerRuleGroup(tenant string) int {
	return o.For(tenant).RulerMaxRulesPerRuleGroup
}

func (o *Overrides) RulerMaxIndependentRuleEvaluationConcurrencyPerTenant(tenant string) int {
	return o.For(tenant).RulerMaxIndependentRuleEvaluationConcurrencyPerTenant
}
func (o *Overrides) QueryTimeout(tenant string) time.Duration {
	return time.Duration(o.For(tenant).QueryTimeout)
}

// Read is what the read limits of several tenants read together (a
// federated query) amount to: for each limit, the smallest positive
// value of the tenants, as Mimir combines them; zero only if every
// tenant has no limit.
func (o *Overrides) Read(tenants []string) Limits {
	if len(tenants) == 1 {
		return *o.For(tenants[0])
	}
	out := *o.For(tenants[0])
	smallest := func(a, b int) int {
		switch {
		case a == 0:
			return b
		case b == 0:
			return a
		}
		return min(a, b)
	}
	smallestD := func(a, b Duration) Duration { return Duration(smallest(int(a), int(b))) }
	for _, t := range tenants[1:] {
		l := o.For(t)
		out.MaxFetchedSeriesPerQuery = smallest(out.MaxFetchedSeriesPerQuery, l.MaxFetchedSeriesPerQuery)
		out.MaxFetchedChunkBytesPerQuery = smallest(out.MaxFetchedChunkBytesPerQuery, l.MaxFetchedChunkBytesPerQuery)
		out.MaxQueryLength = smallestD(out.MaxQueryLength, l.MaxQueryLength)
		out.MaxQueryLookback = smallestD(out.MaxQueryLookback, l.MaxQueryLookback)
		out.MaxSamplesPerQuery = smallest(out.MaxSamplesPerQuery, l.MaxSamplesPerQuery)
		out.QueryTimeout = smallestD(out.QueryTimeout, l.QueryTimeout)
	}
	return out
}
