package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the engine's head and Pebble statistics at scrape
// time (Options.Registerer).
type collector struct {
	db *DB

	headSeries, diskBytes, memtableBytes, readAmp *prometheus.Desc
	compactions, flushes                          *prometheus.Desc
	cacheBytes, cacheHits, cacheMisses            *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(db *DB) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{
		db:            db,
		headSeries:    d("myelin_head_series", "Series with an open chunk in memory in this node's replicas, per tenant.", "tenant"),
		diskBytes:     d("myelin_pebble_disk_bytes", "Bytes the Pebble store uses on disk."),
		memtableBytes: d("myelin_pebble_memtable_bytes", "Bytes allocated by Pebble's memtables."),
		readAmp:       d("myelin_pebble_read_amplification", "Pebble's read amplification (sublevels a read may visit)."),
		compactions:   d("myelin_pebble_compactions_total", "Pebble compactions."),
		flushes:       d("myelin_pebble_flushes_total", "Pebble memtable flushes."),
		cacheBytes:    d("myelin_pebble_block_cache_bytes", "Bytes in Pebble's block cache."),
		cacheHits:     d("myelin_pebble_block_cache_hits_total", "Pebble block cache hits."),
		cacheMisses:   d("myelin_pebble_block_cache_misses_total", "Pebble block cache misses."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.headSeries, c.diskBytes, c.memtableBytes, c.readAmp,
		c.compactions, c.flushes, c.cacheBytes, c.cacheHits, c.cacheMisses} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if c.db.closed() {
		return
	}
	// A node holds several groups: sum per tenant.
	series := map[string]int{}
	for _, g := range c.db.openGroups() {
		for _, t := range g.Stats() {
			series[t.Tenant] += t.HeadSeries
		}
	}
	for tenant, n := range series {
		ch <- prometheus.MustNewConstMetric(c.headSeries, prometheus.GaugeValue, float64(n), tenant)
	}
	m := c.db.PebbleMetrics()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.diskBytes, float64(m.DiskSpaceUsage()))
	gauge(c.memtableBytes, float64(m.MemTable.Size))
	gauge(c.readAmp, float64(m.ReadAmp()))
	counter(c.compactions, float64(m.Compact.Count))
	counter(c.flushes, float64(m.Flush.Count))
	gauge(c.cacheBytes, float64(m.BlockCache.Size))
	counter(c.cacheHits, float64(m.BlockCache.Hits))
	counter(c.cacheMisses, float64(m.BlockCache.Misses))
}
