package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrTooManyQueries: the node is running as many queries as it may and no
// slot came free in time, or the queue of waiting queries is full. The API
// answers 503, not 429: the bound protects the node, whoever sends the
// queries, and another node or the same one a little later can answer, so
// the client should retry; 429 says "you, slow down", which is for
// per-tenant limits (server/limits, not yet built).
var ErrTooManyQueries = errors.New("server: too many concurrent queries")

// Defaults of the query gate.
const (
	// DefaultMaxConcurrent is 2 per core on the 2-core nodes we size for:
	// PromQL evaluation is CPU-bound and single-threaded per query, so two
	// queries per core keep the cores busy while one waits for storage,
	// and more only share the CPUs and multiply the memory. That memory is
	// the reason for a small number: a query at -query.max-samples
	// (50 million) holds ~1.2 GB (BenchmarkQueryMemory: ~24 bytes a
	// sample), so four such queries take ~5 GB, what the issue measured
	// (5.8 GB). Prometheus's default is 20, for larger servers.
	DefaultMaxConcurrent = 4
	// DefaultMaxQueued lets a few Grafana dashboards (~10-30 panels each)
	// load at once behind the running queries; Mimir's query scheduler
	// keeps 100 waiting requests per tenant by default.
	DefaultMaxQueued = 100
)

// queryGate bounds the requests that parse or evaluate PromQL at once:
// each holds one of MaxConcurrent slots from before the expression is
// parsed until the response is written. Waiting requests queue, at most
// MaxQueued of them, each until a slot frees or its context ends (the
// query timeout or the client going away).
//
// The gate is in the HTTP layer rather than the engine's QueryTracker
// (promql.EngineOpts.ActiveQueryTracker, Prometheus's
// -query.max-concurrency): the engine takes a slot only in Exec, after
// parsing, so the parser's time would not be bounded; its tracker has no
// queue bound, wants a file to mmap, and its timeout in the queue reaches
// the client as a 422 "execution" error.
//
// Safe for concurrent use; it holds no goroutine.
type queryGate struct {
	slots  chan struct{} // one token per running request
	queued chan struct{} // one token per waiting request

	running, waiting prometheus.Gauge
	refused          *prometheus.CounterVec // reason: queue_full, timeout
}

func newQueryGate(maxConcurrent, maxQueued int, reg prometheus.Registerer) *queryGate {
	g := &queryGate{
		slots:  make(chan struct{}, maxConcurrent),
		queued: make(chan struct{}, maxQueued),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myelin_queries_running",
			Help: "Query requests (those that parse or evaluate PromQL) holding one of the node's slots.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myelin_queries_waiting",
			Help: "Query requests waiting for a slot.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_queries_refused_total",
			Help: "Query requests answered 503 because no slot came free, by reason: queue_full or timeout.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(g.running, g.waiting, g.refused)
	}
	return g
}

// enter waits for a slot and returns the function that gives it back. It
// fails with an error wrapping ErrTooManyQueries when the queue is full or
// ctx's deadline passes first, and with ctx.Err() when ctx is canceled.
func (g *queryGate) enter(ctx context.Context) (leave func(), err error) {
	select {
	case g.slots <- struct{}{}:
		return g.admitted(), nil
	default:
	}
	select {
	case g.queued <- struct{}{}:
	default:
		g.refused.WithLabelValues("queue_full").Inc()
		return nil, fmt.Errorf("%w: %d running and %d waiting, the most this node queues; retry later",
			ErrTooManyQueries, cap(g.slots), cap(g.queued))
	}
	g.waiting.Inc()
	start := time.Now()
	defer func() {
		<-g.queued
		g.waiting.Dec()
	}()
	select {
	case g.slots <- struct{}{}:
		return g.admitted(), nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			g.refused.WithLabelValues("timeout").Inc()
			return nil, fmt.Errorf("%w: no slot of %d came free within the query timeout (waited %v); retry later",
				ErrTooManyQueries, cap(g.slots), time.Since(start).Round(time.Millisecond))
		}
		return nil, ctx.Err()
	}
}

func (g *queryGate) admitted() func() {
	g.running.Inc()
	return func() {
		g.running.Dec()
		<-g.slots
	}
}
