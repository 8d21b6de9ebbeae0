package frontend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/prometheus/client_golang/prometheus"
)

// MemcachedOptions configure the memcached backend of the results cache.
type MemcachedOptions struct {
	// Addresses are the servers, host:port; keys are spread over them by
	// hash. -query-frontend.results-cache.memcached.addresses.
	Addresses []string
	// Timeout bounds each call (connect, read, write). Zero means 200ms,
	// Mimir's default. -query-frontend.results-cache.memcached.timeout.
	Timeout time.Duration
	// MaxIdleConnections per server. Zero means 16.
	MaxIdleConnections int
	Logger             *slog.Logger          // nil means discard
	Registerer         prometheus.Registerer // nil means none
}

// Memcached is the shared results cache of a cluster: every node's
// frontend reads and writes the same servers, so a piece computed on one
// node serves the others. Client: github.com/bradfitz/gomemcache
// (docs/design.md says why).
type Memcached struct {
	client *memcache.Client
	logger *slog.Logger
	errs   *prometheus.CounterVec // op: fetch, store
}

var _ Cache = (*Memcached)(nil)

// NewMemcached returns the backend over opts.Addresses; it connects on
// first use.
func NewMemcached(opts MemcachedOptions) (*Memcached, error) {
	if len(opts.Addresses) == 0 {
		return nil, errors.New("frontend: memcached results cache without addresses")
	}
	if opts.Timeout == 0 {
		opts.Timeout = 200 * time.Millisecond
	}
	if opts.MaxIdleConnections == 0 {
		opts.MaxIdleConnections = 16
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var servers memcache.ServerList
	if err := servers.SetServers(opts.Addresses...); err != nil {
		return nil, fmt.Errorf("frontend: memcached addresses %q: %w", opts.Addresses, err)
	}
	c := memcache.NewFromSelector(&servers)
	c.Timeout = opts.Timeout
	c.MaxIdleConns = opts.MaxIdleConnections
	m := &Memcached{client: c, logger: opts.Logger, errs: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "myelin_query_frontend_results_cache_memcached_errors_total",
		Help: "Calls to memcached that failed (answered as misses, or not stored), by operation: fetch, store.",
	}, []string{"op"})}
	m.errs.WithLabelValues("fetch")
	m.errs.WithLabelValues("store")
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.errs)
	}
	return m, nil
}

// Fetch implements Cache: one GetMulti per server.
func (m *Memcached) Fetch(_ context.Context, keys []string) map[string][]byte {
	items, err := m.client.GetMulti(keys)
	if err != nil {
		m.errs.WithLabelValues("fetch").Inc()
		m.logger.Debug("results cache: memcached fetch", "err", err)
	}
	out := make(map[string][]byte, len(items))
	for k, it := range items {
		out[k] = it.Value
	}
	return out
}

// Store implements Cache.
func (m *Memcached) Store(_ context.Context, key string, value []byte, ttl time.Duration) {
	exp := int32(ttl / time.Second)
	if exp <= 0 {
		exp = 1
	}
	if err := m.client.Set(&memcache.Item{Key: key, Value: value, Expiration: exp}); err != nil {
		m.errs.WithLabelValues("store").Inc()
		m.logger.Debug("results cache: memcached store", "err", err)
	}
}

// Close closes the idle connections.
func (m *Memcached) Close() error { return m.client.Close() }
