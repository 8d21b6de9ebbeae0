package alertmanager

import (
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// exported are the metrics of the tenants' Alertmanagers (each in its
// own registry, named by the library) that /metrics shows, under the
// myelin_ prefix with a tenant label: Cortex's
// cortex_alertmanager_notifications_total{user, integration} and its
// siblings, with our prefix and our per-tenant label.
var exported = map[string]string{
	"alertmanager_notifications_total":                "The total number of attempted notifications, per tenant and integration.",
	"alertmanager_notifications_failed_total":         "The total number of failed notifications, per tenant, integration and reason.",
	"alertmanager_notification_requests_total":        "The total number of attempted notification requests, per tenant and integration.",
	"alertmanager_notification_requests_failed_total": "The total number of failed notification requests, per tenant and integration.",
	"alertmanager_notifications_suppressed_total":     "The total number of notifications suppressed (silenced, inhibited, outside active or within muted time intervals), per tenant and reason.",
	"alertmanager_alerts":                             "How many alerts the tenant's Alertmanager holds, by state.",
	"alertmanager_alerts_received_total":              "The total number of alerts received through the API, per tenant and status.",
	"alertmanager_alerts_invalid_total":               "The total number of alerts received through the API that did not validate, per tenant.",
	"alertmanager_silences":                           "How many silences the tenant has, by state.",
}

// tenantMetrics is a prometheus.Collector over the tenants' registries:
// it gathers each and re-emits the exported families as
// myelin_<name>{tenant="..."}. It is unchecked (Describe sends nothing):
// the label sets come from the library.
//
// Locking: mu guards regs.
type tenantMetrics struct {
	mu   sync.Mutex
	regs map[string]*prometheus.Registry
}

func newTenantMetrics() *tenantMetrics {
	return &tenantMetrics{regs: map[string]*prometheus.Registry{}}
}

func (c *tenantMetrics) add(tenant string, reg *prometheus.Registry) {
	c.mu.Lock()
	c.regs[tenant] = reg
	c.mu.Unlock()
}

func (c *tenantMetrics) Describe(chan<- *prometheus.Desc) {}

func (c *tenantMetrics) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	regs := maps.Clone(c.regs)
	c.mu.Unlock()
	for _, tenant := range slices.Sorted(maps.Keys(regs)) {
		mfs, err := regs[tenant].Gather()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(prometheus.NewDesc("myelin_alertmanager_error", "A tenant's Alertmanager metrics could not be gathered.", nil, nil), err)
			continue
		}
		for _, mf := range mfs {
			help, ok := exported[mf.GetName()]
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
				desc := prometheus.NewDesc("myelin_"+mf.GetName(), help, names, nil)
				var typ prometheus.ValueType
				var v float64
				switch mf.GetType() {
				case dto.MetricType_COUNTER:
					typ, v = prometheus.CounterValue, m.GetCounter().GetValue()
				case dto.MetricType_GAUGE:
					typ, v = prometheus.GaugeValue, m.GetGauge().GetValue()
				default:
					continue
				}
				ch <- prometheus.MustNewConstMetric(desc, typ, v, values...)
			}
		}
	}
}
