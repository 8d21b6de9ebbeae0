package limits

import "github.com/prometheus/client_golang/prometheus"

// collector exports the limits at scrape time, as Mimir's overrides
// exporter does: myelin_limits_defaults{limit_name} and
// myelin_limits_overrides{tenant, limit_name} for every tenant the
// runtime config names (their effective limits). Its series are bounded
// by the config file, not by traffic. Durations are in seconds.
type collector struct {
	o                   *Overrides
	defaults, overrides *prometheus.Desc
}

// Collector returns the collector of o's limits.
func (o *Overrides) Collector() prometheus.Collector {
	return &collector{o: o,
		defaults: prometheus.NewDesc("myelin_limits_defaults",
			"The default limits (flags), by limit name (the runtime config's); durations in seconds.", []string{"limit_name"}, nil),
		overrides: prometheus.NewDesc("myelin_limits_overrides",
			"The effective limits of the tenants the runtime config names, by limit name; durations in seconds.", []string{"tenant", "limit_name"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.defaults
	ch <- c.overrides
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := c.o.Defaults()
	for _, v := range d.Values() {
		ch <- prometheus.MustNewConstMetric(c.defaults, prometheus.GaugeValue, v.Value, v.Name)
	}
	for t, l := range c.o.Config().Tenants {
		for _, v := range l.Values() {
			ch <- prometheus.MustNewConstMetric(c.overrides, prometheus.GaugeValue, v.Value, t, v.Name)
		}
	}
}
