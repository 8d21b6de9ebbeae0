package server

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/myelindb/myelin/server/auth"
)

// Routes is a node's public HTTP front. Every route registered with
// Handle is behind the auth gate with what it needs, timed in
// myelin_http_request_duration_seconds, and listed (List) so that tests
// can walk every route rather than a hand-written list. Until Open it
// answers every request 503: the listener is up before storage is open,
// so that a load balancer sees a node that is starting, not one that is
// gone.
type Routes struct {
	mux      *http.ServeMux
	gate     *AuthGate
	duration *prometheus.HistogramVec
	open     atomic.Bool

	mu     sync.Mutex
	routes []Route
}

// Route is one registered pattern and what it needs with auth on.
type Route struct {
	Pattern, Name string
	Need          auth.Need
}

// NewRoutes returns an empty front behind gate, registering its request
// duration histogram with reg.
func NewRoutes(gate *AuthGate, reg prometheus.Registerer) *Routes {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                           "myelin_http_request_duration_seconds",
		Help:                           "Time to answer HTTP requests, per handler, method and status code.",
		Buckets:                        prometheus.DefBuckets,
		NativeHistogramBucketFactor:    1.1,
		NativeHistogramMaxBucketNumber: 100,
	}, []string{"handler", "method", "code"})
	reg.MustRegister(duration)
	return &Routes{mux: http.NewServeMux(), gate: gate, duration: duration}
}

// Handle routes pattern (http.ServeMux syntax) to h behind the gate with
// need; name is the handler label of its duration.
func (r *Routes) Handle(pattern, name string, need auth.Need, h http.Handler) {
	r.mu.Lock()
	r.routes = append(r.routes, Route{Pattern: pattern, Name: name, Need: need})
	r.mu.Unlock()
	r.mux.Handle(pattern, promhttp.InstrumentHandlerDuration(r.duration.MustCurryWith(prometheus.Labels{"handler": name}), r.gate.Wrap(need, h)))
}

// Open starts serving the registered routes.
func (r *Routes) Open() { r.open.Store(true) }

// List returns every registered route, in registration order.
func (r *Routes) List() []Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Route(nil), r.routes...)
}

func (r *Routes) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !r.open.Load() {
		http.Error(w, "not ready: opening storage", http.StatusServiceUnavailable)
		return
	}
	r.mux.ServeHTTP(w, req)
}
