package frontend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/httputil"

	"github.com/myelindb/myelin/server/cpuslot"
	"github.com/myelindb/myelin/server/tenant"
)

// Frontend is the query frontend: an http.Handler in front of the query
// API (next) that splits, caches, shards and queues /query and
// /query_range (doc.go has the protocol). Every other request goes to
// next unchanged, and so does any query request the frontend cannot
// read, so that the API answers it with its own error.
//
// Safe for concurrent use. Close stops its workers.
type Frontend struct {
	opts  Options // immutable after New
	next  http.Handler
	queue *queue
	m     *metrics
	// slots shares the CPU between tenants' queries; nil with
	// Options.CPUSlots negative.
	slots *cpuslot.Scheduler
	// engine evaluates sharded queries over their shards' answers; nil
	// without Options.ParallelizeShardableQueries.
	engine *promql.Engine
	// est holds the series each shardable query read when it last ran
	// (estimate.go), for Limits.TargetSeriesPerShard.
	est estimates
	mu  struct {
		sync.Mutex
		outstanding map[string]int // tenant ID -> queries in the frontend
		// forgotten: tenant ID -> the time (ms) before which its cached
		// results are not used (Forget).
		forgotten map[string]int64
	}
}

// Forget makes the frontend ignore every result of tenant cached until
// now, in its cache and in a shared one: the tenant's data was deleted
// (server.DeleteOptions.Deleted). Only this frontend forgets, at once;
// every node's frontend stops using them when it sees the tenant's new
// Options.Generation.
func (f *Frontend) Forget(tenant string) {
	now := f.opts.Now().UnixMilli()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.forgotten == nil {
		f.mu.forgotten = map[string]int64{}
	}
	f.mu.forgotten[tenant] = now
}

// forgottenBefore returns the time before which the cached results of a
// tenant ID ("a|b" for a federated read: the latest of theirs) are not
// used, 0 if none.
func (f *Frontend) forgottenBefore(id string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := int64(0)
	for _, tn := range tenant.Split(id) {
		t = max(t, f.mu.forgotten[tn])
	}
	return t
}

// generation returns the results-cache generation of a tenant ID: for a
// federated read ("a|b"), the sum of theirs, which grows whenever one of
// them does.
func (f *Frontend) generation(id string) uint64 {
	if f.opts.Generation == nil {
		return 0
	}
	g := uint64(0)
	for _, tn := range tenant.Split(id) {
		g += f.opts.Generation(tn)
	}
	return g
}

// New returns a frontend in front of next and starts its workers.
func New(next http.Handler, opts Options) (*Frontend, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	m := newMetrics(opts.Registerer)
	f := &Frontend{opts: opts, next: next, m: m}
	if opts.CPUSlots >= 0 {
		slots, err := cpuslot.New(cpuslot.Options{Slots: opts.CPUSlots, Registerer: opts.Registerer})
		if err != nil {
			return nil, err
		}
		f.slots = slots
	}
	f.queue = newQueue(opts.MaxInFlight, m)
	if opts.ParallelizeShardableQueries {
		f.engine = promql.NewEngine(promql.EngineOpts{
			// The shards hold the samples; this engine holds their
			// answers only, at most what the API let them hold.
			MaxSamples:               math.MaxInt,
			Timeout:                  opts.Timeout,
			LookbackDelta:            opts.LookbackDelta,
			NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
			EnableAtModifier:         true,
			EnableNegativeOffset:     true,
			EnableDelayedNameRemoval: opts.DelayedNameRemoval,
			Parser:                   opts.Parser,
		})
	}
	f.mu.outstanding = map[string]int{}
	return f, nil
}

// Close stops the workers; queries waiting in the queue fail with 503.
// Idempotent.
func (f *Frontend) Close() { f.queue.close() }

// request is a /query or /query_range request the frontend took.
type request struct {
	path    string      // the request's path, passed on
	header  http.Header // the request's headers, passed on (the tenant)
	form    url.Values
	tenant  string // the ID, normal form ("a|b" sorted)
	limits  Limits
	instant bool
	query   string // as sent on: @ start() and @ end() resolved when split
	expr    parser.Expr
	info    exprInfo
	// start, end, step in milliseconds; an instant query has start ==
	// end == its time, or hasTime false for "now".
	start, end, step int64
	hasTime          bool
	stats            string // the client's stats parameter
	// shards is the query's sharding plan, nil if it is not sharded.
	shards *shardPlan
	// raw: the answer of the whole query, unsharded, goes to the client
	// as the API wrote it (passthrough.go).
	raw bool
	// learn: the query is shardable and the tenant's shards follow
	// estimates; its computations record the series they read.
	learn bool
}

func (r *request) estimateKey() estimateKey {
	return estimateKey{tenant: r.tenant, instant: r.instant, query: r.query}
}

func (r *request) op() string {
	if r.instant {
		return "query"
	}
	return "query_range"
}

// ServeHTTP implements http.Handler.
func (f *Frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, ok := f.read(r)
	if !ok {
		f.next.ServeHTTP(w, r)
		return
	}
	// The API compresses its answers for clients that accept it; the
	// frontend asks it for plain ones (call) and compresses its own the
	// same way.
	httputil.CompressionHandler{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.serve(w, r, req)
	})}.ServeHTTP(w, r)
}

func (f *Frontend) serve(w http.ResponseWriter, r *http.Request, req *request) {
	if !f.enter(req.tenant, req.limits.MaxOutstanding) {
		f.m.discarded.WithLabelValues(req.tenant, "too_many_outstanding").Inc()
		writeAPIError(w, http.StatusTooManyRequests, "too_many_requests", errTooManyOutstanding.Error())
		return
	}
	defer f.leave(req.tenant)
	f.m.queries.WithLabelValues(req.op()).Inc()
	ctx, cancel := context.WithTimeout(r.Context(), f.opts.Timeout)
	defer cancel()
	begin := time.Now()
	var st serveStats
	if req.instant {
		st = f.serveInstant(ctx, w, req)
	} else {
		st = f.serveRange(ctx, w, req)
	}
	if d := time.Since(begin); f.opts.LogQueriesLongerThan > 0 && d > f.opts.LogQueriesLongerThan {
		f.m.slow.Inc()
		args := []any{"tenant", req.tenant, "op", req.op(), "query", req.query, "duration", d.Round(time.Microsecond),
			"status", st.status, "series_fetched", st.seriesFetched, "samples_fetched", st.samplesFetched,
			"pieces", st.pieces, "cached_pieces", st.cachedPieces, "shards", st.shards}
		if req.instant {
			if req.hasTime {
				args = append(args, "time", formatTime(req.start))
			}
		} else {
			args = append(args, "start", formatTime(req.start), "end", formatTime(req.end), "step", time.Duration(req.step)*time.Millisecond)
		}
		f.opts.Logger.Info("slow query detected", args...)
	}
}

// errTooManyOutstanding is Mimir's error for a tenant over
// -query-frontend.max-outstanding-requests-per-tenant, answered 429.
var errTooManyOutstanding = errors.New("too many outstanding requests")

func (f *Frontend) enter(id string, limit int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if limit > 0 && f.mu.outstanding[id] >= limit {
		return false
	}
	f.mu.outstanding[id]++
	return true
}

func (f *Frontend) leave(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.outstanding[id]--; f.mu.outstanding[id] <= 0 {
		delete(f.mu.outstanding, id)
	}
}

// serveStats is what a query cost, for the slow-query log.
type serveStats struct {
	status                        int
	seriesFetched, samplesFetched int64
	pieces, cachedPieces, shards  int
}

// maxPoints is the query API's bound on the steps of a range query.
const maxPoints = 11000

// read takes a request apart; ok is false for anything the frontend
// leaves to the API as it is: other paths, a tenant or parameter the API
// would refuse, an expression that does not parse, a limit parameter (a
// cut that depends on the whole answer), a multipart form.
func (f *Frontend) read(r *http.Request) (*request, bool) {
	rest, ok := strings.CutPrefix(strings.TrimPrefix(r.URL.Path, "/prometheus"), "/api/v1")
	if !ok || rest != "/query" && rest != "/query_range" {
		return nil, false
	}
	readTenant := tenant.FromRequest
	if f.opts.Federation {
		readTenant = tenant.SetFromRequest
	}
	id, err := readTenant(r, f.opts.MultiTenant)
	if err != nil {
		return nil, false
	}
	form, err := readForm(r, f.opts.MaxFormBytes)
	if err != nil {
		return nil, false
	}
	req := &request{path: r.URL.Path, header: r.Header, form: form, tenant: id, instant: rest == "/query",
		query: form.Get("query"), stats: form.Get("stats")}
	if form.Get("limit") != "" || len(form["query"]) != 1 {
		return nil, false
	}
	if f.opts.CheckExpr != nil && f.opts.CheckExpr(req.query) != nil {
		return nil, false
	}
	for _, p := range []string{"timeout", "lookback_delta"} {
		if v := form.Get(p); v != "" {
			if _, err := parseDuration(v); err != nil {
				return nil, false
			}
		}
	}
	if req.instant {
		if v := form.Get("time"); v != "" {
			t, err := parseTime(v)
			if err != nil {
				return nil, false
			}
			req.start, req.end, req.hasTime = timestamp.FromTime(t), timestamp.FromTime(t), true
		}
	} else {
		start, err := parseTime(form.Get("start"))
		if err != nil {
			return nil, false
		}
		end, err := parseTime(form.Get("end"))
		if err != nil || end.Before(start) {
			return nil, false
		}
		step, err := parseDuration(form.Get("step"))
		if err != nil || step <= 0 || end.Sub(start)/step > maxPoints || step%time.Millisecond != 0 {
			return nil, false
		}
		req.start, req.end, req.step = timestamp.FromTime(start), timestamp.FromTime(end), step.Milliseconds()
	}
	expr, err := f.opts.Parser.ParseExpr(req.query)
	if err != nil {
		return nil, false
	}
	req.expr = expr
	req.info = inspect(expr)
	req.limits = f.limits(id)
	return req, true
}

// limits returns the limits of a tenant ID, of several tenants combined.
func (f *Frontend) limits(id string) Limits {
	if f.opts.TenantLimits == nil {
		return f.opts.Defaults
	}
	ids := tenant.Split(id)
	ls := make([]Limits, len(ids))
	for i, t := range ids {
		ls[i] = f.opts.TenantLimits(t)
	}
	return combineLimits(ls)
}

// response is a downstream answer as it was written.
type response struct {
	code   int
	header http.Header
	body   bytes.Buffer
	// res is the answer decoded (call decodes a 200 under the query's
	// CPU slot), nil if it is not one or cannot be read, or if it is
	// passed through (passthrough.go).
	res *result
	// stats are those of an answer passed through; body then holds them
	// only if the client asked for them.
	stats *queryStats
}

func (r *response) Header() http.Header { return r.header }
func (r *response) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *response) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

// writeTo copies the response to w.
func (r *response) writeTo(w http.ResponseWriter) {
	for k, v := range r.header {
		if !skipHeader(k) {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(r.code)
	w.Write(r.body.Bytes())
}

// acquire waits for a CPU slot for tenant (nil without slots) and
// returns it with a context that carries it.
func (f *Frontend) acquire(ctx context.Context, tenant string) (*cpuslot.Slot, context.Context, error) {
	if f.slots == nil {
		return nil, ctx, nil
	}
	return f.slots.Acquire(ctx, tenant)
}

// call runs one request of the query on the API, in the tenant's turn
// of the queue and under a CPU slot of its own (the API's storage reads
// checkpoint in it): query for an instant query at start (or now), a
// range query over [start, end] otherwise. A 200 is decoded under the
// same slot (response.res). The API is always asked for stats (for the
// slow-query log and stats=all); the frontend drops them from its
// answer unless the client asked.
//
// With raw, a 200 is not decoded: its stats are read (response.stats) and
// cut out of the body unless the client asked for them.
func (f *Frontend) call(ctx context.Context, req *request, query string, start, end int64, raw bool) (*response, error) {
	form := make(url.Values, len(req.form)+1)
	for k, v := range req.form {
		form[k] = v
	}
	form.Set("query", query)
	if req.instant {
		if req.hasTime {
			form.Set("time", formatTime(start))
		}
	} else {
		form.Set("start", formatTime(start))
		form.Set("end", formatTime(end))
	}
	if req.stats == "all" {
		form.Set("stats", "all")
	} else {
		form.Set("stats", "true")
	}
	var (
		resp    *response
		slotErr error
	)
	err := f.queue.do(ctx, req.tenant, f.maxWorkers(req.limits), func(ctx context.Context) {
		sl, ctx, err := f.acquire(ctx, req.tenant)
		if err != nil {
			slotErr = err
			return
		}
		defer sl.Release()
		r, err := http.NewRequestWithContext(ctx, http.MethodGet, req.path+"?"+form.Encode(), nil)
		if err != nil {
			panic("BUG: request of a parsed URL: " + err.Error())
		}
		r.Header = req.header.Clone()
		r.Header.Del("Content-Type")
		r.Header.Del("Content-Length")
		r.Header.Del("Accept-Encoding") // the frontend reads the answer
		resp = &response{header: http.Header{}}
		f.next.ServeHTTP(resp, r)
		if resp.code == 0 {
			resp.code = http.StatusOK
		}
		if resp.code == http.StatusOK && raw {
			rest, stats, ok := splitStats(resp.body.Bytes())
			if ok {
				resp.stats = readStats(stats)
				if req.stats == "" {
					resp.body.Reset()
					resp.body.Write(rest)
				}
			}
			return
		}
		if resp.code == http.StatusOK {
			res, err := decodeResult(resp.body.Bytes(), sl)
			if err != nil && ctx.Err() != nil {
				// The query ended while the decoder waited for its slot
				// again: the query's error, not an answer passed on.
				slotErr = ctx.Err()
				return
			}
			resp.res = res
		}
	})
	if err == nil {
		err = slotErr
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// maxWorkers is the most workers a tenant's tasks may hold at once:
// Limits.MaxQueriersPerTenant, or all workers but one by default, so
// that another tenant's task never waits behind a flood (with a single
// worker, that one).
func (f *Frontend) maxWorkers(l Limits) int {
	switch {
	case l.MaxQueriersPerTenant > 0:
		return min(l.MaxQueriersPerTenant, f.opts.MaxInFlight)
	case f.opts.MaxInFlight > 1:
		return f.opts.MaxInFlight - 1
	}
	return 1
}

// writeError answers an error of the frontend itself (the query's
// context ended, the queue closed) in the API's JSON shape and codes:
// 503 for a timeout or shutdown (retry), 499 for a client that went
// away.
func writeError(w http.ResponseWriter, err error) int {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		writeAPIError(w, http.StatusServiceUnavailable, "timeout", "query timed out in the query frontend")
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled):
		writeAPIError(w, statusClientClosed, "canceled", "query canceled: the client went away")
		return statusClientClosed
	}
	writeAPIError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	return http.StatusServiceUnavailable
}

// statusClientClosed is nginx's code for a client that went away, which
// the query API answers for a canceled query.
const statusClientClosed = 499

// writeAPIError writes an error in the Prometheus API's JSON shape.
func writeAPIError(w http.ResponseWriter, code int, errorType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"status":"error","errorType":%q,"error":%q}`, errorType, msg)
}

// serveInstant runs an instant query on the API in the tenant's turn,
// or its shards.
func (f *Frontend) serveInstant(ctx context.Context, w http.ResponseWriter, req *request) serveStats {
	st := serveStats{pieces: 1}
	f.planShards(req, 1)
	req.raw = true // only the unsharded run's answer (fetch)
	if req.shards != nil && !req.hasTime {
		// Every shard must evaluate at the same time.
		req.start, req.end, req.hasTime = f.opts.Now().UnixMilli(), f.opts.Now().UnixMilli(), true
	}
	res, resp, err := f.fetch(ctx, req, req.start, req.end, &st)
	switch {
	case err != nil:
		st.status = writeError(w, err)
		return st
	case res == nil:
		// The API's error, an answer we cannot read (with stats the
		// client may not have asked for), or one passed through: passed
		// on as it is.
		st.addStats(resp.stats)
		st.status = resp.code
		resp.writeTo(w)
		return st
	}
	st.addStats(res.stats)
	sl, err := f.workSlot(ctx, req.tenant, countPoints(res.series))
	if err != nil {
		st.status = writeError(w, err)
		return st
	}
	body, err := res.encodeSlot(nil, req.stats != "", sl)
	sl.Release()
	if err != nil {
		st.status = writeError(w, err)
		return st
	}
	st.status = http.StatusOK
	f.writeBody(w, resp.header, body)
	return st
}

// planShards sets req.shards if the tenant's queries are sharded and
// this one can be, for a query that computes computations pieces (1 for
// an instant query): in shardCount's number of shards, and with
// Limits.TargetSeriesPerShard or TargetSamplesPerShard at most as many
// as the query's estimate calls for (none without one, estimate.go).
func (f *Frontend) planShards(req *request, computations int) {
	l := req.limits
	if f.engine == nil || l.TotalShards < 2 || req.info.rangeFunc {
		return
	}
	// The legs, the shardable aggregations, count against
	// MaxShardedQueries (Mimir's trick: plan for one shard and count).
	one, ok := planShards(f.opts.Parser, req.query, 1, f.opts.DelayedNameRemoval)
	if !ok {
		return
	}
	n := shardCount(l.TotalShards, l.MaxShardedQueries, f.shardParallelism(l), max(computations, 1), len(one.embedded))
	if l.TargetSeriesPerShard > 0 || l.TargetSamplesPerShard > 0 {
		req.learn = true
		est, ok := f.est.get(req.estimateKey(), f.opts.Now())
		if !ok || est.unshardable {
			return
		}
		n = min(n, est.shards(l))
	}
	if n < 2 {
		return
	}
	if plan, ok := planShards(f.opts.Parser, req.query, n, f.opts.DelayedNameRemoval); ok {
		req.shards = plan
	}
}

// learn records the series and samples a computation of req read (its
// stats), and whether its shards sent it back unsharded.
func (f *Frontend) learn(req *request, stats *queryStats, unshardable bool) {
	if !req.learn || stats == nil {
		return
	}
	samples := int64(0)
	if stats.Samples != nil {
		samples = stats.Samples.TotalQueryableSamples
	}
	f.est.record(req.estimateKey(), stats.SeriesFetched, samples, unshardable, f.opts.Now())
}

// shardCount is the number of shards each of a query's computations
// (its pieces to compute, or the instant query) is cut into: total (the
// tenant's -query-frontend.query-sharding-total-shards), but at most
//
//   - parallelism / (computations x legs) (at least 1), when parallelism
//     > 0: the node runs at most parallelism sub-queries at once (its CPU
//     slots, the tenant's workers), and shards past it only queue, each
//     paying its select's postings and label work again and a trip
//     through JSON and the frontend's engine (docs/design.md: 16 shards
//     on two cores took 1.3x the CPU of 2 and answered 22-36 % slower); a
//     query split into as many pieces as cores is already parallel, and
//     the legs (shardable aggregations; avg is two, sum and count, which
//     both read every series) run their shards at once;
//   - maxSharded / (computations x legs) (at least 1), when maxSharded
//     > 0: Mimir's -query-frontend.query-sharding-max-sharded-queries,
//     the sub-queries one query may make, where legs are its shardable
//     aggregations.
//
// Below 2 the query is not sharded.
func shardCount(total, maxSharded, parallelism, computations, legs int) int {
	n := total
	if parallelism > 0 {
		n = min(n, max(1, parallelism/(computations*max(legs, 1))))
	}
	if maxSharded > 0 {
		n = min(n, max(1, maxSharded/(computations*max(legs, 1))))
	}
	return n
}

// shardParallelism is how many sub-queries of a tenant's query this node
// runs at once (shardCount): Options.ShardParallelism if set (negative:
// no bound), else the CPU slots (GOMAXPROCS without them), at most the
// workers the tenant's tasks may hold.
func (f *Frontend) shardParallelism(l Limits) int {
	switch p := f.opts.ShardParallelism; {
	case p < 0:
		return 0
	case p > 0:
		return p
	}
	cores := runtime.GOMAXPROCS(0)
	if f.slots != nil {
		cores = f.slots.Slots()
	}
	return min(cores, f.maxWorkers(l))
}

// fetch computes the query over [start, end] (an instant query at start):
// sharded if it has a plan (unsharded if the shards say so), else on the
// API in the tenant's turn. It returns the decoded answer and the API's
// response it came from, or no answer and the API's response to pass on
// (an error, or one the frontend cannot read), or an error of the
// frontend's own (the context ended).
func (f *Frontend) fetch(ctx context.Context, req *request, start, end int64, st *serveStats) (*result, *response, error) {
	fellBack := false
	if req.shards != nil {
		res, resp, err := f.callSharded(ctx, req, req.shards, start, end)
		switch {
		case err == nil && resp == nil:
			st.shards += len(req.shards.embedded) * req.shards.n
			f.learn(req, res.stats, false)
			return res, &response{code: http.StatusOK, header: http.Header{"Content-Type": {"application/json"}}}, nil
		case resp != nil:
			return nil, resp, nil
		case !errors.Is(err, errShardFallback):
			return nil, nil, err
		}
		f.m.unsharded.Inc()
		fellBack = true
	}
	resp, err := f.call(ctx, req, req.query, start, end, req.raw)
	if err != nil {
		return nil, nil, err
	}
	if resp.res == nil {
		// The API's error, an answer the frontend cannot read, or one
		// passed through.
		f.learn(req, resp.stats, fellBack)
		return nil, resp, nil
	}
	f.learn(req, resp.res.stats, fellBack)
	return resp.res, resp, nil
}

func (st *serveStats) addStats(s *queryStats) {
	if s == nil {
		return
	}
	st.seriesFetched += s.SeriesFetched
	if s.Samples != nil {
		st.samplesFetched += s.Samples.TotalQueryableSamples
	}
}

// skipHeader: headers of the API's answer that describe its body's
// encoding, which the frontend's answer sets for itself.
func skipHeader(k string) bool {
	switch k {
	case "Content-Length", "Content-Encoding", "Vary":
		return true
	}
	return false
}

// writeBody answers an encoded result with the headers of the API's
// answer.
func (f *Frontend) writeBody(w http.ResponseWriter, header http.Header, body []byte) {
	for k, v := range header {
		if !skipHeader(k) {
			w.Header()[k] = v
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// minSlotPoints: the frontend's own work on an answer of fewer points
// (joining, encoding: some microseconds) takes no CPU slot, so that a
// light query waits for one slot only, the API's.
const minSlotPoints = 4 * cpuslot.TickEvery

// workSlot takes a CPU slot for the frontend's own work on answers of
// points points, which the holder checkpoints in: nil (and no slot)
// without slots or for fewer than minSlotPoints. It returns ctx's error
// if ctx ends first.
func (f *Frontend) workSlot(ctx context.Context, tenant string, points int) (*cpuslot.Slot, error) {
	if f.slots == nil || points < minSlotPoints {
		return nil, nil
	}
	sl, _, err := f.slots.Acquire(ctx, tenant)
	return sl, err
}
