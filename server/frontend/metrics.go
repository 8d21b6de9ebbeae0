package frontend

import "github.com/prometheus/client_golang/prometheus"

// metrics are the frontend's collectors on /metrics. Names follow
// Cortex's and Mimir's (cortex_query_frontend_queue_length,
// cortex_frontend_split_queries_total, ...) with our myelin_ prefix.
type metrics struct {
	queueLength *prometheus.GaugeVec     // tenant
	queueWait   *prometheus.HistogramVec // tenant
	inflight    prometheus.Gauge
	discarded   *prometheus.CounterVec // tenant, reason
	queries     *prometheus.CounterVec // op
	split       prometheus.Counter
	cacheReqs   prometheus.Counter
	cacheHits   *prometheus.CounterVec // kind: full, partial
	cacheMisses prometheus.Counter
	cacheStores *prometheus.CounterVec // outcome: stored, too_large, not_cacheable
	sharded     prometheus.Counter
	shards      prometheus.Counter
	unsharded   prometheus.Counter
	slow        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		queueLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "myelin_query_frontend_queue_length",
			Help: "Requests (pieces, shards, instant queries) waiting in the query frontend's queue, per tenant.",
		}, []string{"tenant"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "myelin_query_frontend_queue_duration_seconds",
			Help:    "Time requests spent in the query frontend's queue before a worker took them, per tenant.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60},
		}, []string{"tenant"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myelin_query_frontend_inflight_requests",
			Help: "Requests the query frontend's workers are running on the query API.",
		}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_query_frontend_discarded_requests_total",
			Help: "Queries refused by the query frontend, per tenant and reason (too_many_outstanding: 429).",
		}, []string{"tenant", "reason"}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_query_frontend_queries_total",
			Help: "Queries the query frontend handled, by operation (query, query_range).",
		}, []string{"op"}),
		split: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "myelin_query_frontend_split_queries_total",
			Help: "Pieces range queries were split into by -query-frontend.split-queries-by-interval.",
		}),
		cacheReqs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "myelin_query_frontend_results_cache_requests_total",
			Help: "Pieces of range queries looked up in the results cache.",
		}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_query_frontend_results_cache_hits_total",
			Help: "Pieces found in the results cache, wholly (full) or in part (partial: the rest was computed).",
		}, []string{"kind"}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "myelin_query_frontend_results_cache_misses_total",
			Help: "Pieces not found in the results cache (or found expired).",
		}),
		cacheStores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_query_frontend_results_cache_stores_total",
			Help: "Pieces written to the results cache (stored) or not (too_large, not_cacheable: annotations or histograms).",
		}, []string{"outcome"}),
		sharded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "myelin_query_frontend_sharded_queries_total",
			Help: "Queries (or pieces) run as shards.",
		}),
		shards: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "myelin_query_frontend_shards_total",
			Help: "Shard queries sent to the query API.",
		}),
		unsharded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "myelin_query_frontend_sharded_queries_rerun_total",
			Help: "Sharded queries (or pieces) run again unsharded: their shards gave annotations or histograms, or their merge failed.",
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "myelin_query_frontend_slow_queries_total",
			Help: "Queries longer than -query-frontend.log-queries-longer-than (each logged).",
		}),
	}
	m.cacheHits.WithLabelValues("full")
	m.cacheHits.WithLabelValues("partial")
	for _, o := range []string{"stored", "too_large", "not_cacheable"} {
		m.cacheStores.WithLabelValues(o)
	}
	for _, op := range []string{"query", "query_range"} {
		m.queries.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.queueLength, m.queueWait, m.inflight, m.discarded, m.queries, m.split,
			m.cacheReqs, m.cacheHits, m.cacheMisses, m.cacheStores, m.sharded, m.shards, m.unsharded, m.slow)
	}
	return m
}
