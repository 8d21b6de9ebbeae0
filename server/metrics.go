package server

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/write"
)

// writeMetrics count what the write path took and refused, per tenant.
// Reasons follow Cortex/Mimir's discarded-samples reasons where one exists.
//
// A tenant's series live while the tenant writes (tenantLabels): they are
// deleted once it has been idle for TenantMetricsIdle, and past
// MetricsMaxTenants tenants the newcomers share the label value
// OverflowTenant. Without that every tenant ID ever sent, valid or made
// up, stayed in /metrics: 50,000 made-up IDs grew it from 19 KB to 9.8 MB.
//
// The tenants tracked also get their write limits in force,
// myelin_tenant_limits{tenant, limit_name} (ingestion rate and burst,
// global series limits), read at scrape time, so an alert can divide a
// tenant's usage by its limit.
type writeMetrics struct {
	samples    *prometheus.CounterVec // tenant
	discarded  *prometheus.CounterVec // tenant, reason
	requests   *prometheus.CounterVec // tenant, code
	unexpected *prometheus.CounterVec // tenant, kind: exemplars of a tenant that keeps none
	exemplars  *prometheus.CounterVec // tenant
	// discardedExemplars and discardedMetadata: tenant, reason.
	discardedExemplars, discardedMetadata *prometheus.CounterVec
	metadata                              *prometheus.CounterVec // tenant
	tenants                               *tenantLabels
	limits                                *limits.Overrides
	limitsDesc                            *prometheus.Desc
	now                                   func() time.Time
}

// tenantLimitNames are the limits myelin_tenant_limits exports per
// tenant: those with a usage to compare (samples written, series).
var tenantLimitNames = []string{"ingestion_rate", "ingestion_burst_size", "max_global_series_per_user", "max_global_series_per_metric"}

var _ prometheus.Collector = (*writeMetrics)(nil)

func newWriteMetrics(reg prometheus.Registerer, idle time.Duration, maxTenants int, now func() time.Time, o *limits.Overrides) *writeMetrics {
	m := &writeMetrics{
		limits: o,
		limitsDesc: prometheus.NewDesc("myelin_tenant_limits",
			"Write limits in force for each tenant that wrote through this node lately (as the write metrics' tenants), by limit name.",
			[]string{"tenant", "limit_name"}, nil),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_ingested_samples_total",
			Help: "Samples written (committed and applied) per tenant.",
		}, []string{"tenant"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_discarded_samples_total",
			Help: "Samples refused per tenant and reason.",
		}, []string{"tenant", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_write_requests_total",
			Help: "Remote-write requests per tenant and HTTP status code.",
		}, []string{"tenant", "code"}),
		unexpected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_ignored_total",
			Help: "Remote-write items dropped without an error per tenant and kind: exemplars sent by remote write 1.0 or OTLP for a tenant that keeps none (max_global_exemplars_per_user 0).",
		}, []string{"tenant", "kind"}),
		exemplars: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_ingested_exemplars_total",
			Help: "Exemplars written (committed and applied) per tenant.",
		}, []string{"tenant"}),
		discardedExemplars: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_discarded_exemplars_total",
			Help: "Exemplars refused per tenant and reason.",
		}, []string{"tenant", "reason"}),
		metadata: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_ingested_metadata_total",
			Help: "Distinct metric metadata written per request, per tenant.",
		}, []string{"tenant"}),
		discardedMetadata: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_discarded_metadata_total",
			Help: "Metric metadata refused per tenant and reason.",
		}, []string{"tenant", "reason"}),
		now: now,
	}
	m.tenants = newTenantLabels(idle, maxTenants, m.samples, m.discarded, m.requests, m.unexpected,
		m.exemplars, m.discardedExemplars, m.metadata, m.discardedMetadata)
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

// record counts one request: its tenant ("" when unknown), status code and
// result (nil when nothing was written).
func (m *writeMetrics) record(tenant string, code int, res *writeResult) {
	m.tenants.use(tenant, m.now(), func(t string) {
		m.requests.WithLabelValues(t, strconv.Itoa(code)).Inc()
		if res == nil {
			return
		}
		m.samples.WithLabelValues(t).Add(float64(res.samples + res.histograms))
		for r, n := range res.discarded {
			if n > 0 {
				m.discarded.WithLabelValues(t, discardReasons[r].name).Add(float64(n))
			}
		}
		if res.ignoredExemplars > 0 {
			m.unexpected.WithLabelValues(t, "exemplars").Add(float64(res.ignoredExemplars))
		}
		if res.exemplars > 0 {
			m.exemplars.WithLabelValues(t).Add(float64(res.exemplars))
		}
		if res.metadata > 0 {
			m.metadata.WithLabelValues(t).Add(float64(res.metadata))
		}
		for r, n := range res.discardedExemplars {
			if n > 0 {
				m.discardedExemplars.WithLabelValues(t, exemplarReasons[r]).Add(float64(n))
			}
		}
		for r, n := range res.discardedMetadata {
			if n > 0 {
				m.discardedMetadata.WithLabelValues(t, metadataReasons[r]).Add(float64(n))
			}
		}
	})
}

// Describe implements prometheus.Collector.
func (m *writeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range m.tenants.vecs {
		v.Describe(ch)
	}
	ch <- m.limitsDesc
}

// Collect implements prometheus.Collector: idle tenants' series are
// deleted first, so a scrape never sees them.
func (m *writeMetrics) Collect(ch chan<- prometheus.Metric) {
	m.tenants.sweep(m.now())
	for _, v := range m.tenants.vecs {
		v.Collect(ch)
	}
	for _, t := range m.tenants.names() {
		lim := m.limits.For(t)
		for _, v := range lim.Values() {
			if slices.Contains(tenantLimitNames, v.Name) {
				ch <- prometheus.MustNewConstMetric(m.limitsDesc, prometheus.GaugeValue, v.Value, t, v.Name)
			}
		}
	}
}

// names returns the tenants tracked under their own name.
func (t *tenantLabels) names() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.mu.lastSeen))
	for tenant := range t.mu.lastSeen {
		if tenant != OverflowTenant && tenant != "" {
			out = append(out, tenant)
		}
	}
	return out
}

// OverflowTenant is the tenant label value of the tenants past
// MetricsMaxTenants. No tenant ID can be it ('<' and '>' are not allowed
// in tenant IDs).
const OverflowTenant = "<overflow>"

// Defaults of the per-tenant write metrics.
const (
	// DefaultTenantMetricsIdle is Cortex's and Mimir's inactive-tenant
	// timeout for their per-tenant distributor metrics.
	DefaultTenantMetricsIdle = 15 * time.Minute
	// DefaultMetricsMaxTenants: a tenant has ~5 series here (~1 KB of
	// /metrics), so 1,000 tenants are ~1 MB, more than the tenants a node
	// of a small cluster serves and a bound on what made-up IDs can add.
	DefaultMetricsMaxTenants = 1000
)

// tenantLabels hands out the tenant label values of per-tenant metrics:
// the tenant's own while fewer than max tenants are tracked, OverflowTenant
// after. A tenant (OverflowTenant included) not seen for idle is
// forgotten and its series are deleted from vecs, by sweep (every scrape)
// and, when the table is full, by use (at most once per idle/10).
//
// It refuses nothing: it only decides how requests are counted.
type tenantLabels struct {
	idle time.Duration
	max  int
	vecs []*prometheus.CounterVec // each with a "tenant" label
	mu   struct {
		sync.Mutex
		// INVARIANT: lastSeen holds at most max tenants besides
		// OverflowTenant, and every tenant label value with series in
		// vecs. Counting happens under mu, so a sweep cannot delete a
		// series between a tenant's use and its increments.
		lastSeen  map[string]time.Time
		lastSweep time.Time
	}
}

func newTenantLabels(idle time.Duration, max int, vecs ...*prometheus.CounterVec) *tenantLabels {
	t := &tenantLabels{idle: idle, max: max, vecs: vecs}
	t.mu.lastSeen = map[string]time.Time{}
	return t
}

// use calls count with the label value of tenant, seen at now.
func (t *tenantLabels) use(tenant string, now time.Time, count func(label string)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	label := tenant
	if _, ok := t.mu.lastSeen[tenant]; !ok && tenant != OverflowTenant {
		if t.trackedLocked() >= t.max && now.Sub(t.mu.lastSweep) >= t.idle/10 {
			t.sweepLocked(now)
		}
		if t.trackedLocked() >= t.max {
			label = OverflowTenant
		}
	}
	t.mu.lastSeen[label] = now
	count(label)
}

// trackedLocked is the number of tenants tracked under their own name.
func (t *tenantLabels) trackedLocked() int {
	n := len(t.mu.lastSeen)
	if _, ok := t.mu.lastSeen[OverflowTenant]; ok {
		n--
	}
	return n
}

// sweep forgets the tenants idle at now and deletes their series.
func (t *tenantLabels) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
}

func (t *tenantLabels) sweepLocked(now time.Time) {
	t.mu.lastSweep = now
	for tenant, seen := range t.mu.lastSeen {
		if now.Sub(seen) < t.idle {
			continue
		}
		delete(t.mu.lastSeen, tenant)
		for _, v := range t.vecs {
			v.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
		}
	}
}

// discardReasons name the refusals in the discarded-samples metric
// (Cortex/Mimir's reasons where one exists); writeResult.discarded counts
// samples by index in it. The last is "other".
var discardReasons = [...]struct {
	err  error
	name string
}{
	{remotewrite.ErrMissingName, "missing_metric_name"},
	{remotewrite.ErrInvalidMetricName, "metric_name_invalid"},
	{remotewrite.ErrInvalidLabelName, "label_invalid"},
	{remotewrite.ErrInvalidLabelValue, "label_value_invalid"},
	{remotewrite.ErrDuplicateLabel, "duplicate_label_names"},
	{remotewrite.ErrUnsortedLabels, "labels_not_sorted"},
	{remotewrite.ErrTooManyLabels, "max_label_names_per_series"},
	{remotewrite.ErrLabelNameTooLong, "label_name_too_long"},
	{remotewrite.ErrLabelValueTooLong, "label_value_too_long"},
	{remotewrite.ErrTooFarInFuture, "too_far_in_future"},
	{remotewrite.ErrTimestampUnreadable, "timestamp_out_of_range"},
	{remotewrite.ErrSymbolRef, "symbol_ref_invalid"},
	{remotewrite.ErrOddLabelRefs, "symbol_ref_invalid"},
	{remotewrite.ErrNoSamples, "series_without_samples"},
	{remotewrite.ErrInvalidHistogram, "invalid_native_histogram"},
	{write.ErrOutOfOrder, "sample_out_of_order"},
	{write.ErrDuplicateSample, "new_value_for_timestamp"},
	{write.ErrTooOld, "sample_too_old"},
	{write.ErrInvalidLabels, "label_invalid"},
	{write.ErrSeriesLimit, "per_user_series_limit"},
	{write.ErrMetricSeriesLimit, "per_metric_series_limit"},
	{limits.ErrIngestionRate, "rate_limited"},
	{nil, "other"},
}

// numReasons is the number of discardReasons.
const numReasons = len(discardReasons)

// reasonOf is the index in discardReasons of err's reason: a sentinel
// (Limits.CheckSeries) is found by comparison, a wrapped error (an
// engine refusal) by errors.Is.
func reasonOf(err error) int {
	for i, r := range discardReasons {
		if err == r.err {
			return i
		}
	}
	for i, r := range discardReasons[:numReasons-1] {
		if errors.Is(err, r.err) {
			return i
		}
	}
	return numReasons - 1
}
