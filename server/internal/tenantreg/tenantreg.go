// Package tenantreg exports metrics that a library registers per
// instance (the Alertmanager's, the rules manager's) with one instance
// per tenant: each tenant's instance registers into its own registry,
// and a Collector gathers them all and re-emits chosen families under
// the node's prefix with a tenant label (what Cortex's and Mimir's
// per-user registries do with their user label).
package tenantreg

import (
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Collector is a prometheus.Collector over the tenants' registries. It
// is unchecked (Describe sends nothing): the label sets come from the
// library. A tenant removed with Remove takes its series with it (a
// counter of a tenant that comes back restarts at zero, which rate()
// reads as a reset).
//
// Locking: mu guards regs.
type Collector struct {
	prefix string
	help   map[string]string
	mu     sync.Mutex
	regs   map[string]*prometheus.Registry
}

// New returns a Collector exporting the families named in help (the
// library's names) as prefix+name with help's text.
func New(prefix string, help map[string]string) *Collector {
	return &Collector{prefix: prefix, help: help, regs: map[string]*prometheus.Registry{}}
}

// Add starts exporting reg's families as tenant's.
func (c *Collector) Add(tenant string, reg *prometheus.Registry) {
	c.mu.Lock()
	c.regs[tenant] = reg
	c.mu.Unlock()
}

// Remove stops exporting tenant's families.
func (c *Collector) Remove(tenant string) {
	c.mu.Lock()
	delete(c.regs, tenant)
	c.mu.Unlock()
}

func (c *Collector) Describe(chan<- *prometheus.Desc) {}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	regs := maps.Clone(c.regs)
	c.mu.Unlock()
	for _, tenant := range slices.Sorted(maps.Keys(regs)) {
		mfs, err := regs[tenant].Gather()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(prometheus.NewDesc(c.prefix+"tenant_metrics_error", "A tenant's metrics could not be gathered.", nil, nil), err)
			continue
		}
		for _, mf := range mfs {
			help, ok := c.help[mf.GetName()]
			if !ok {
				continue
			}
			for _, m := range mf.GetMetric() {
				names := []string{"tenant"}
				values := []string{tenant}
				for _, lp := range m.GetLabel() {
					names = append(names, lp.GetName())
					values = append(values, lp.GetValue())
				}
				desc := prometheus.NewDesc(c.prefix+mf.GetName(), help, names, nil)
				if pm := constMetric(desc, mf.GetType(), m, values); pm != nil {
					ch <- pm
				}
			}
		}
	}
}

// constMetric copies m as a constant metric of desc; nil for a type it
// does not copy (untyped, gauge histograms).
func constMetric(desc *prometheus.Desc, typ dto.MetricType, m *dto.Metric, values []string) prometheus.Metric {
	switch typ {
	case dto.MetricType_COUNTER:
		return prometheus.MustNewConstMetric(desc, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
	case dto.MetricType_GAUGE:
		return prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, m.GetGauge().GetValue(), values...)
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		q := make(map[float64]float64, len(s.GetQuantile()))
		for _, qv := range s.GetQuantile() {
			q[qv.GetQuantile()] = qv.GetValue()
		}
		return prometheus.MustNewConstSummary(desc, s.GetSampleCount(), s.GetSampleSum(), q, values...)
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		b := make(map[float64]uint64, len(h.GetBucket()))
		for _, bk := range h.GetBucket() {
			b[bk.GetUpperBound()] = bk.GetCumulativeCount()
		}
		return prometheus.MustNewConstHistogram(desc, h.GetSampleCount(), h.GetSampleSum(), b, values...)
	}
	return nil
}
