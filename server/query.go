package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/features"
	"github.com/prometheus/prometheus/util/notifications"
	"github.com/prometheus/prometheus/util/stats"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/myelindb/myelin/server/cpuslot"
	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/queryshard"
	"github.com/myelindb/myelin/server/tenant"
)

// Storage is what the query API needs from storage: a querier over one
// tenant's data in [mint, maxt].
type Storage interface {
	Querier(tenant string, mint, maxt int64) (storage.Querier, error)
}

// QueryOptions configure the query API and its PromQL engine.
type QueryOptions struct {
	// Limits are the tenants' read limits, read per request: query
	// timeout, samples, fetched series and chunk bytes, query length and
	// lookback. Nil means limits.Defaults() with Timeout and MaxSamples.
	Limits *limits.Overrides
	// Timeout bounds one query's evaluation when Limits is nil. Zero
	// means 2m (Prometheus's default).
	Timeout time.Duration
	// MaxSamples bounds the samples one query may hold in memory when
	// Limits is nil. Zero means 50,000,000 (Prometheus's default).
	MaxSamples int
	// LookbackDelta is how far back instant selectors look. Zero means 5m.
	LookbackDelta time.Duration
	// EnableExperimental turns on all of Prometheus 3's experimental PromQL
	// features at once: experimental functions, duration expressions,
	// extended range selectors, binop fill modifiers, delayed name
	// removal. Off by default, as in Prometheus.
	EnableExperimental bool
	// UseStartTimestamps: rate, irate, increase and resets use the
	// samples' start timestamps where they have one (remote write 2.0's
	// start_timestamp), as Prometheus 3.14's
	// --enable-feature=use-start-timestamps. Off by default, as there.
	UseStartTimestamps bool
	// MultiTenant: the tenant comes from the X-Scope-OrgID header (401 if
	// missing, as in Mimir); otherwise every request is tenant.Default.
	MultiTenant bool
	// Federation: the header may name several tenants joined by '|'
	// ("a|b"), read together with a __tenant_id__ label on every series
	// (federation.go). Set it only behind a gate that lets a request
	// name only tenants it may read (the auth gate, AuthGate).
	Federation bool

	// MaxExpressionBytes bounds a PromQL expression or series selector
	// (query, match[]) in bytes, checked before it is parsed. Zero means
	// DefaultMaxExpressionBytes. Mimir's name for it is
	// -query-frontend.max-query-expression-size-bytes.
	MaxExpressionBytes int
	// MaxExpressionDepth bounds the nesting depth of an expression
	// (exprDepth), checked before it is parsed. Zero means
	// DefaultMaxExpressionDepth.
	MaxExpressionDepth int
	// MaxFormBytes bounds the body of a POST request (its form). Zero
	// means 8*MaxExpressionBytes, 1 MiB by default: room for a query of
	// the maximum size percent-encoded (at most 3x) and the other
	// parameters.
	MaxFormBytes int64
	// MaxConcurrent bounds the requests that parse or evaluate PromQL at
	// once on this node (queryGate). Zero means DefaultMaxConcurrent.
	MaxConcurrent int
	// MaxQueued bounds the requests waiting for one of the MaxConcurrent
	// slots; more are refused at once. Zero means DefaultMaxQueued.
	MaxQueued int
	// FreeMemorySamples: after a query that held at least this many
	// samples at once, freed memory is returned to the operating system
	// (memoryReleaser). Zero means DefaultFreeMemorySamples.
	FreeMemorySamples int
	// ShardHints: the Storage's selects honour storage.SelectHints'
	// ShardIndex and ShardCount (Myelin's querier and engine do), so a
	// query shard's selector goes down in them and the storage skips the
	// other shards' series before reading them. Off, the API drops those
	// series itself, after the storage read them (Prometheus's TSDB
	// refuses shard hints unless built for them).
	ShardHints bool
	// Version is reported by /api/v1/status/buildinfo.
	Version string
	// Rules: the rules and alerts of a tenant for Prometheus's
	// /api/v1/rules and /api/v1/alerts (the ruler's, server/ruler).
	// Nil: those endpoints answer 404, as before the ruler.
	Rules      func(tenant string) v1.RulesRetriever
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means none
}

func (o QueryOptions) withDefaults() (QueryOptions, error) {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.MaxSamples == 0 {
		o.MaxSamples = 50_000_000
	}
	if o.Limits == nil {
		d := limits.Defaults()
		d.QueryTimeout, d.MaxSamplesPerQuery = limits.Duration(o.Timeout), o.MaxSamples
		var err error
		if o.Limits, err = limits.NewOverrides(d); err != nil {
			return o, err
		}
	}
	if o.LookbackDelta == 0 {
		o.LookbackDelta = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.MaxExpressionBytes == 0 {
		o.MaxExpressionBytes = DefaultMaxExpressionBytes
	}
	if o.MaxExpressionDepth == 0 {
		o.MaxExpressionDepth = DefaultMaxExpressionDepth
	}
	if o.MaxFormBytes == 0 {
		o.MaxFormBytes = 8 * int64(o.MaxExpressionBytes)
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.MaxQueued == 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	if o.FreeMemorySamples == 0 {
		o.FreeMemorySamples = DefaultFreeMemorySamples
	}
	return o, nil
}

// Validate reports every problem with the options at once.
func (o QueryOptions) Validate() error {
	var errs []error
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("query timeout %v is negative", o.Timeout))
	}
	if o.MaxSamples < 0 {
		errs = append(errs, fmt.Errorf("query max samples %d is negative", o.MaxSamples))
	}
	if o.LookbackDelta < 0 {
		errs = append(errs, fmt.Errorf("lookback delta %v is negative", o.LookbackDelta))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max expression bytes", int64(o.MaxExpressionBytes)},
		{"max expression depth", int64(o.MaxExpressionDepth)},
		{"max form bytes", o.MaxFormBytes},
		{"max concurrent queries", int64(o.MaxConcurrent)},
		{"max queued queries", int64(o.MaxQueued)},
		{"free memory samples", int64(o.FreeMemorySamples)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("query %s %d is negative", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// queryPaths are the endpoints of the Prometheus HTTP API we serve, below
// /api/v1. /status/tsdb is ours (serveCardinality), per tenant. The rest
// of Prometheus's API (targets, rules, admin, remote read) belongs to a
// scraping Prometheus, not to us.
var queryPaths = []string{
	"/query", "/query_range", "/query_exemplars", "/format_query", "/parse_query",
	"/labels", "/label/", "/series", "/metadata", "/status/buildinfo", "/status/tsdb",
	"/cardinality/label_names", "/cardinality/label_values", "/cardinality/active_series",
}

// QueryAPI serves the read side of the Prometheus HTTP API for many
// tenants. It is Prometheus's own web/api/v1 implementation, so JSON
// shapes, status codes and error types are exactly Prometheus's (what
// Grafana and promtool expect); storage.Queryable has no tenant, so the
// queryable it runs on takes the tenant from each call's context, which
// the API passes down from the request.
//
// In front of Prometheus's handlers it bounds what they cannot: it reads
// the form once with a size limit, refuses expressions too large or too
// deep to parse quickly (checkExpr), puts every request under the query
// timeout, and lets at most MaxConcurrent requests parse or evaluate PromQL
// at once (queryGate). After a heavy query it returns the freed memory to
// the operating system (memoryReleaser).
type QueryAPI struct {
	opts    QueryOptions
	storage Storage
	parser  parser.Parser    // of the cardinality API's selectors
	now     func() time.Time // of /status/tsdb's and the cardinality API's windows
	engine  *promql.Engine   // of the default max samples
	engines *engines
	router  *route.Router
	gate    *queryGate
	mem     *memoryReleaser
	// freeMemory returns freed memory to the OS (func freeMemory).
	freeMemory func()
}

// NewQueryAPI returns the query API over s.
func NewQueryAPI(s Storage, opts QueryOptions) (*QueryAPI, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p := NewParser(opts.EnableExperimental)
	engineOpts := promql.EngineOpts{
		Logger:     opts.Logger,
		Reg:        opts.Registerer,
		MaxSamples: opts.Limits.Defaults().MaxSamplesPerQuery,
		// The request's context carries the tenant's query timeout
		// (ServeHTTP): the engine's own is only a backstop.
		Timeout:       engineTimeout,
		LookbackDelta: opts.LookbackDelta,
		// Subqueries without a step use Prometheus's default evaluation
		// interval.
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		EnableDelayedNameRemoval: opts.EnableExperimental,
		// stats=all's per-step sample counts (Prometheus's
		// --enable-feature=promql-per-step-stats); kept only for the
		// queries that ask.
		EnablePerStepStats: true,
		UseStartTimestamps: opts.UseStartTimestamps,
		Parser:             p,
	}
	engine := promql.NewEngine(engineOpts)
	engs := newEngines(engine, engineOpts)
	q := tenantQueryable{s: s, shardHints: opts.ShardHints}
	api := v1.NewAPI(
		costEngine{engs}, q, nil, nil, tenantExemplars{s},
		func(context.Context) v1.ScrapePoolsRetriever { return noTargets{} },
		func(context.Context) v1.TargetRetriever { return noTargets{} },
		func(context.Context) v1.AlertmanagerRetriever { return noTargets{} },
		func() config.Config { return config.DefaultConfig },
		map[string]string{},
		v1.GlobalURLOptions{},
		func(h http.HandlerFunc) http.HandlerFunc { return h },
		nil, "", false, false, 0,
		opts.Logger,
		rulesRetriever(opts.Rules),
		0, 0, 0,
		false,
		regexp.MustCompile(`^$`), // no CORS origins
		nil,
		&v1.PrometheusVersion{Version: opts.Version, GoVersion: goVersion()},
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		nil, nil,
		renderStats,
		false, nil,
		false, false, false,
		false,
		opts.LookbackDelta,
		false, false,
		overrideErrorCode,
		features.DefaultRegistry,
		v1.OpenAPIOptions{},
		p,
	)
	router := route.New()
	api.Register(router.WithPrefix("/api/v1"))
	return &QueryAPI{
		opts:       opts,
		storage:    s,
		parser:     p,
		now:        time.Now,
		engine:     engine,
		engines:    engs,
		router:     router,
		gate:       newQueryGate(opts.MaxConcurrent, opts.MaxQueued, opts.Registerer),
		mem:        &memoryReleaser{minCost: opts.FreeMemorySamples, interval: freeMemoryInterval},
		freeMemory: freeMemory,
	}, nil
}

// NewParser returns the PromQL parser of the query API: Prometheus's, with
// all of its experimental features if experimental (QueryOptions.
// EnableExperimental). The query frontend parses with the same one.
func NewParser(experimental bool) parser.Parser {
	if !experimental {
		return parser.NewParser(parser.Options{})
	}
	return parser.NewParser(parser.Options{
		EnableExperimentalFunctions:  true,
		ExperimentalDurationExpr:     true,
		EnableExtendedRangeSelectors: true,
		EnableBinopFillModifiers:     true,
	})
}

// overrideErrorCode gives the endpoints that are not PromQL (series,
// labels, label values) the codes PromQL has for a query that timed out,
// 503, and for a client that went away, 499: Prometheus reports both as
// 422 "execution" errors there, a code that says the query itself is bad.
//
// It is generic because the API's error number type is unexported.
func overrideErrorCode[N any](_ N, err error) (int, bool) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, true
	case errors.Is(err, context.Canceled):
		return statusClientClosed, true
	}
	return 0, false
}

// Engine returns the PromQL engine the API evaluates queries with.
func (a *QueryAPI) Engine() *promql.Engine { return a.engine }

// ServeHTTP serves /api/v1/<path> and /prometheus/api/v1/<path> for the
// query paths; anything else is 404. In order:
//
//  1. the tenant (401 if missing, 400 if invalid); with Federation, the
//     tenants;
//  2. the form, read once from the URL and a body of at most MaxFormBytes
//     (400); the wrapped API reads it from the request;
//  3. every query, match[] and selector parameter against
//     MaxExpressionBytes and MaxExpressionDepth (400), before any of them
//     is parsed;
//  4. the tenant's read limits (limits.Overrides; for several tenants
//     the smallest of each): a query_range longer than max_query_length
//     is a 400, before parsing; the others travel in the context
//     (queryLimits, limits.QueryBudget) to the storage and the engine,
//     except the series and chunk budget for /status/tsdb and the
//     cardinality API, which have their own bound (cardinalityMaxSeries)
//     and read no chunks;
//  5. the tenant's query timeout, from here on: the wait for a slot,
//     parsing, Select, label lookups and evaluation all run under it
//     (503 past it);
//  6. for the endpoints that parse PromQL, /status/tsdb and the
//     cardinality API, a slot of the query gate (503 if none comes free),
//     held until the response is written;
//  7. Prometheus's handler (serveCardinality for /status/tsdb,
//     serveMimirCardinality for /cardinality/...),
//     evaluating with an engine of the tenant's max_samples_per_query;
//     then, after a heavy query, memory goes back to the operating
//     system.
func (a *QueryAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/prometheus")
	rest, ok := strings.CutPrefix(p, "/api/v1")
	if !ok || !a.servedQueryPath(rest) {
		http.NotFound(w, r)
		return
	}
	readTenant := tenant.FromRequest
	if a.opts.Federation {
		readTenant = tenant.SetFromRequest
	}
	org, err := readTenant(r, a.opts.MultiTenant)
	if err != nil {
		code, msg := tenantError(err)
		writeAPIError(w, code, apiErrorType(code), msg)
		return
	}
	if err := readForm(w, r, a.opts.MaxFormBytes); err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	for _, param := range []string{"query", "match[]", "selector"} {
		for _, expr := range r.Form[param] {
			if err := checkExpr(expr, a.opts.MaxExpressionBytes, a.opts.MaxExpressionDepth); err != nil {
				writeAPIError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("invalid parameter %q: %v", param, err))
				return
			}
		}
	}
	rl := a.opts.Limits.Read(tenant.Split(org))
	if rest == "/query_range" && rl.MaxQueryLength > 0 {
		if length, ok := rangeLength(r.Form.Get("start"), r.Form.Get("end")); ok && length > time.Duration(rl.MaxQueryLength) {
			writeAPIError(w, http.StatusBadRequest, "bad_data", limits.QueryLengthError(length, time.Duration(rl.MaxQueryLength)).Error())
			return
		}
	}
	ctx, cancel := context.WithTimeout(tenant.With(r.Context(), org), time.Duration(rl.QueryTimeout))
	defer cancel()
	ctx = withQueryLimits(ctx, &queryLimits{limits: rl, lookbackDelta: a.opts.LookbackDelta, now: a.now()})
	if rest != "/status/tsdb" && !strings.HasPrefix(rest, "/cardinality/") {
		ctx = limits.WithQueryBudget(ctx, limits.NewQueryBudget(rl.MaxFetchedSeriesPerQuery, rl.MaxFetchedChunkBytesPerQuery))
	}
	r2 := r.WithContext(ctx)
	if p != r.URL.Path {
		u := *r.URL
		u.Path = p
		u.RawPath = ""
		r2.URL = &u
	}
	if rest == "/metadata" {
		a.serveMetadata(w, r2)
		return
	}
	if !gated(rest) {
		a.router.ServeHTTP(w, r2)
		return
	}
	leave, err := a.gate.enter(ctx)
	switch {
	case errors.Is(err, ErrTooManyQueries):
		writeAPIError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	case err != nil: // the client went away
		writeAPIError(w, statusClientClosed, "canceled", err.Error())
		return
	}
	cost := new(queryCost)
	func() {
		defer leave() // even if the handler panics
		r3 := r2.WithContext(context.WithValue(ctx, queryCostKey{}, cost))
		if rest == "/status/tsdb" {
			a.serveCardinality(w, r3)
			return
		}
		if endpoint, ok := strings.CutPrefix(rest, "/cardinality/"); ok {
			a.serveMimirCardinality(w, r3, endpoint)
			return
		}
		a.router.ServeHTTP(w, r3)
	}()
	if a.mem.done(time.Now(), int(cost.peakSamples.Load())) {
		a.freeMemory()
	}
}

// statusClientClosed is nginx's code for a client that went away, which
// Prometheus answers for a canceled query.
const statusClientClosed = 499

// gated reports whether the endpoint below /api/v1 takes a slot of the
// query gate: those that parse a PromQL expression (as opposed to series
// selectors only), and /status/tsdb and the cardinality API, which read
// every active series.
func gated(rest string) bool {
	switch rest {
	case "/query", "/query_range", "/query_exemplars", "/format_query", "/parse_query", "/status/tsdb",
		"/cardinality/label_names", "/cardinality/label_values", "/cardinality/active_series":
		return true
	}
	return false
}

func (a *QueryAPI) servedQueryPath(rest string) bool {
	if a.opts.Rules != nil && (rest == "/rules" || rest == "/alerts") {
		return true
	}
	for _, q := range queryPaths {
		if strings.HasSuffix(q, "/") {
			if strings.HasPrefix(rest, q) && strings.HasSuffix(rest, "/values") {
				return true
			}
			continue
		}
		if rest == q {
			return true
		}
	}
	return false
}

// rulesRetriever gives Prometheus's API the rules of the request's
// tenant (in its context); a federated ID reads none.
func rulesRetriever(rules func(string) v1.RulesRetriever) func(context.Context) v1.RulesRetriever {
	return func(ctx context.Context) v1.RulesRetriever {
		org, ok := tenant.From(ctx)
		if rules == nil || !ok || federatedID(org) {
			return noRules{}
		}
		return rules(org)
	}
}

type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

// apiErrorType is the errorType of the API's JSON for an error status
// of ours that Prometheus's API does not answer itself.
func apiErrorType(code int) string {
	switch code {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusTooManyRequests:
		return "too_many_requests"
	}
	return "bad_data"
}

// writeAPIError writes an error in the Prometheus API's JSON shape.
func writeAPIError(w http.ResponseWriter, code int, errorType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"status":"error","errorType":%q,"error":%q}`, errorType, msg)
}

// tenantQueryable adapts Storage to the tenant-less
// storage.SampleAndChunkQueryable the Prometheus API wants: the queriers it
// returns resolve the tenant from the context of each call.
type tenantQueryable struct {
	s          Storage
	shardHints bool // QueryOptions.ShardHints
}

var _ storage.SampleAndChunkQueryable = tenantQueryable{}

func (q tenantQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &tenantQuerier{s: q.s, mint: mint, maxt: maxt, shardHints: q.shardHints}, nil
}

// ChunkQuerier serves remote read, which we do not route.
func (q tenantQueryable) ChunkQuerier(int64, int64) (storage.ChunkQuerier, error) {
	return nil, errors.New("server: chunk queries are not supported")
}

// tenantQuerier opens the tenant's querier on first use: one tenant's,
// or for an ID that names several (QueryOptions.Federation) a
// federatedQuerier over theirs. A request has one tenant ID, but the type
// does not rely on it.
type tenantQuerier struct {
	s          Storage
	mint, maxt int64
	shardHints bool
	mu         struct {
		sync.Mutex
		byTenant map[string]storage.Querier
	}
}

func (q *tenantQuerier) querier(ctx context.Context) (storage.Querier, error) {
	org, ok := tenant.From(ctx)
	if !ok {
		return nil, tenant.ErrMissing
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if sq, ok := q.mu.byTenant[org]; ok {
		return sq, nil
	}
	// max_query_lookback: the data before it is left out, as Mimir does
	// (no error); a range entirely before it reads nothing.
	mint := q.mint
	if ql := queryLimitsFrom(ctx); ql != nil && ql.limits.MaxQueryLookback > 0 {
		oldest := ql.now.Add(-time.Duration(ql.limits.MaxQueryLookback)).UnixMilli()
		if q.maxt < oldest {
			return storage.NoopQuerier(), nil
		}
		mint = max(mint, oldest)
	}
	var sq storage.Querier
	var err error
	if federatedID(org) {
		sq, err = newFederatedQuerier(q.s, tenant.Split(org), mint, q.maxt)
	} else {
		sq, err = q.s.Querier(org, mint, q.maxt)
	}
	if err != nil {
		return nil, fmt.Errorf("open querier of tenant %s: %w", org, err)
	}
	if q.mu.byTenant == nil {
		q.mu.byTenant = map[string]storage.Querier{}
	}
	q.mu.byTenant[org] = sq
	return sq, nil
}

// Select counts the series it returns in the request's queryCost, if the
// context has one (the gated endpoints).
//
// A shard selector (queryshard: __query_shard__="i_of_n", which the query
// frontend writes into the shards of a query) is taken out of the
// matchers; with QueryOptions.ShardHints it goes down in
// storage.SelectHints (ShardIndex, ShardCount), which the querier sends
// to every group and the engine applies before it copies a series' head
// or reads its chunks. Whatever the storage did, the series outside the
// shard are dropped here, so the shards of a query read disjoint sets of
// series.
func (q *tenantQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if err := checkSelectLength(ctx, hints); err != nil {
		return storage.ErrSeriesSet(err)
	}
	sq, err := q.querier(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	ms, shard, sharded, err := queryshard.FromMatchers(ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if sharded && q.shardHints {
		h := storage.SelectHints{}
		if hints != nil {
			h = *hints
		}
		h.ShardIndex, h.ShardCount = shard.Index, shard.Count
		hints = &h
	}
	ss := sq.Select(ctx, sortSeries, hints, ms...)
	if sharded {
		ss = &shardSeriesSet{SeriesSet: ss, shard: shard}
	}
	if sl := cpuslot.FromContext(ctx); sl != nil {
		ss = &slotSeriesSet{SeriesSet: ss, slot: sl}
	}
	if b := limits.QueryBudgetFrom(ctx); b != nil {
		maxSeries, _ := b.Limits()
		ss = &countedSet{SeriesSet: ss, budget: b, count: maxSeries > 0}
	}
	if c, ok := ctx.Value(queryCostKey{}).(*queryCost); ok {
		return &countedSeriesSet{SeriesSet: ss, n: &c.series}
	}
	return ss
}

// slotSeriesSet checkpoints in the query's CPU slot (server/cpuslot:
// the query frontend's request carries it) every cpuslot.TickEvery
// series or samples its iterators read, so that a heavy query
// gives its slot up to a lighter tenant within tens of microseconds.
// The engine evaluates a query in one goroutine, the slot's holder.
type slotSeriesSet struct {
	storage.SeriesSet
	slot *cpuslot.Slot
	err  error
}

func (s *slotSeriesSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	if err := s.slot.Tick(); err != nil {
		s.err = err
		return false
	}
	return true
}

func (s *slotSeriesSet) At() storage.Series { return slotSeries{s.SeriesSet.At(), s.slot} }

func (s *slotSeriesSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}

type slotSeries struct {
	storage.Series
	slot *cpuslot.Slot
}

func (s slotSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	si, ok := it.(*slotIterator)
	if !ok {
		si = &slotIterator{slot: s.slot}
	} else {
		it, si.err = si.Iterator, nil
	}
	si.Iterator = s.Series.Iterator(it)
	si.slot = s.slot
	if err := s.slot.Tick(); err != nil {
		si.err = err
	}
	return si
}

// slotIterator checkpoints every cpuslot.TickEvery samples Next reads;
// if the query's context ends while it waits for its slot again, Next
// stops with the context's error. (Seek passes through: vet wants any
// Seek(int64) to be io.Seeker's, and PromQL reads with Next after it.)
type slotIterator struct {
	chunkenc.Iterator
	slot *cpuslot.Slot
	err  error
}

func (it *slotIterator) Next() chunkenc.ValueType {
	if it.err != nil {
		return chunkenc.ValNone
	}
	if err := it.slot.Tick(); err != nil {
		it.err = err
		return chunkenc.ValNone
	}
	return it.Iterator.Next()
}

func (it *slotIterator) Err() error {
	if it.err != nil {
		return it.err
	}
	return it.Iterator.Err()
}

// shardSeriesSet passes on the series of one shard.
type shardSeriesSet struct {
	storage.SeriesSet
	shard queryshard.Shard
}

func (s *shardSeriesSet) Next() bool {
	for s.SeriesSet.Next() {
		if s.shard.Holds(s.At().Labels()) {
			return true
		}
	}
	return false
}

// countedSeriesSet counts the series Next moves to.
type countedSeriesSet struct {
	storage.SeriesSet
	n *atomic.Int64
}

func (s *countedSeriesSet) Next() bool {
	if !s.SeriesSet.Next() {
		return false
	}
	s.n.Add(1)
	return true
}

// queryStats is the "stats" of a query's answer (with stats=true or
// stats=all): Prometheus's, plus the series the query's selects returned
// from storage, which Prometheus does not count and the UI shows beside
// the samples.
type queryStats struct {
	stats.BuiltinStats
	SeriesFetched int64 `json:"seriesFetched"`
}

func (s *queryStats) Builtin() stats.BuiltinStats { return s.BuiltinStats }

// renderStats is the API's StatsRenderer: Prometheus's default
// (v1.DefaultStatsRenderer: stats for any non-empty parameter) with
// seriesFetched from the request's queryCost.
func renderStats(ctx context.Context, s *stats.Statistics, param string) stats.QueryStats {
	if param == "" {
		return nil
	}
	qs := &queryStats{BuiltinStats: stats.NewQueryStats(s).Builtin()}
	if c, ok := ctx.Value(queryCostKey{}).(*queryCost); ok {
		qs.SeriesFetched = c.series.Load()
	}
	return qs
}

func (q *tenantQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	sq, err := q.querier(ctx)
	if err != nil {
		return nil, nil, err
	}
	return sq.LabelValues(ctx, name, hints, ms...)
}

func (q *tenantQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	sq, err := q.querier(ctx)
	if err != nil {
		return nil, nil, err
	}
	return sq.LabelNames(ctx, hints, ms...)
}

func (q *tenantQuerier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var errs []error
	for _, sq := range q.mu.byTenant {
		errs = append(errs, sq.Close())
	}
	q.mu.byTenant = nil
	return errors.Join(errs...)
}

// noTargets answers the API's questions about scrape targets and
// alertmanagers: Myelin scrapes nothing. /api/v1/metadata, which
// Prometheus answers from its targets, is served from remote write's
// metadata instead (serveMetadata).
type noTargets struct{}

func (noTargets) ScrapePools() []string                       { return nil }
func (noTargets) TargetsActive() map[string][]*scrape.Target  { return nil }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return nil }
func (noTargets) TargetsDroppedCounts() map[string]int        { return nil }
func (noTargets) Alertmanagers() []*url.URL                   { return nil }
func (noTargets) DroppedAlertmanagers() []*url.URL            { return nil }
func (noTargets) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("server: no scrape pools")
}
