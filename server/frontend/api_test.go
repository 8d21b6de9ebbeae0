package frontend

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
	"github.com/prometheus/prometheus/util/teststorage"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/queryshard"
	"github.com/myelindb/myelin/server/tenant"
)

// fakeAPI is a small stand-in for the query API (the frontend may not
// import the server): /query and /query_range evaluated by Prometheus's
// engine over one test TSDB per tenant, answered by Prometheus's own
// JSON codec. The tests in the server package run the frontend over the
// real API.
type fakeAPI struct {
	engine *promql.Engine
	mu     sync.Mutex
	stores map[string]*teststorage.TestStorage
	calls  atomic.Int64
	// ranges records the [start, end] of every range query answered.
	ranges []span
	// block, if set, is waited for by every call (to hold workers).
	block chan struct{}
	// started is signalled (non-blocking) as each call starts.
	started chan string
}

func newFakeAPI(t testing.TB) *fakeAPI {
	return &fakeAPI{
		engine: promql.NewEngine(promql.EngineOpts{
			MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
			EnableAtModifier: true, EnableNegativeOffset: true,
			NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		}),
		stores: map[string]*teststorage.TestStorage{},
	}
}

func (a *fakeAPI) store(t testing.TB, org string) *teststorage.TestStorage {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.stores[org]
	if !ok {
		// Long blocks and an out-of-order window: tests load days of
		// samples series by series, and backfill.
		s = teststorage.New(t, func(o *tsdb.Options) {
			o.MinBlockDuration = (10 * 24 * time.Hour).Milliseconds()
			o.MaxBlockDuration = o.MinBlockDuration
			o.OutOfOrderTimeWindow = o.MinBlockDuration
		})
		a.stores[org] = s
	}
	return s
}

// deleteAll deletes every series of a tenant.
func (a *fakeAPI) deleteAll(t testing.TB, org string) {
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	require.NoError(t, a.store(t, org).Delete(context.Background(), math.MinInt64, math.MaxInt64, all))
}

// add appends samples of one series to a tenant.
func (a *fakeAPI) add(t testing.TB, org string, l labels.Labels, ts []int64, vs []float64) {
	app := a.store(t, org).Appender(context.Background())
	for i := range ts {
		_, err := app.Append(0, l, ts[i], vs[i])
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

type tenantQueryable struct{ a *fakeAPI }

func (q tenantQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &lazyQuerier{a: q.a, mint: mint, maxt: maxt}, nil
}

// lazyQuerier opens the tenant's querier of the context on first use.
type lazyQuerier struct {
	a          *fakeAPI
	mint, maxt int64
}

func (q *lazyQuerier) open(ctx context.Context) (storage.Querier, error) {
	org, ok := tenant.From(ctx)
	if !ok {
		return nil, errors.New("no tenant")
	}
	q.a.mu.Lock()
	s, ok := q.a.stores[org]
	q.a.mu.Unlock()
	if !ok {
		return storage.NoopQuerier(), nil
	}
	return s.Querier(q.mint, q.maxt)
}

// Select honours shard selectors as the API does.
func (q *lazyQuerier) Select(ctx context.Context, sorted bool, h *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	sq, err := q.open(ctx)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	ms, shard, ok, err := queryshard.FromMatchers(ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	ss := sq.Select(ctx, sorted, h, ms...)
	if ok {
		ss = &shardFilter{SeriesSet: ss, shard: shard}
	}
	if n, ok := ctx.Value(seriesFetchedKey{}).(*atomic.Int64); ok {
		ss = &countingSet{SeriesSet: ss, n: n}
	}
	return ss
}

// seriesFetchedKey: the request's count of series its selects returned,
// which the fake API reports in its stats as the query API does.
type seriesFetchedKey struct{}

type countingSet struct {
	storage.SeriesSet
	n *atomic.Int64
}

func (s *countingSet) Next() bool {
	if !s.SeriesSet.Next() {
		return false
	}
	s.n.Add(1)
	return true
}

// statsWithSeries are Prometheus's stats with the API's seriesFetched.
type statsWithSeries struct {
	stats.BuiltinStats
	SeriesFetched int64 `json:"seriesFetched"`
}

func (s statsWithSeries) Builtin() stats.BuiltinStats { return s.BuiltinStats }

type shardFilter struct {
	storage.SeriesSet
	shard queryshard.Shard
}

func (s *shardFilter) Next() bool {
	for s.SeriesSet.Next() {
		if s.shard.Holds(s.At().Labels()) {
			return true
		}
	}
	return false
}

func (q *lazyQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *lazyQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *lazyQuerier) Close() error { return nil }

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.calls.Add(1)
	org := r.Header.Get(tenant.Header)
	if a.started != nil {
		select {
		case a.started <- org:
		default:
		}
	}
	if a.block != nil {
		select {
		case <-a.block:
		case <-r.Context().Done():
			writeAPIError(w, statusClientClosed, "canceled", r.Context().Err().Error())
			return
		}
	}
	if err := r.ParseForm(); err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	var fetched atomic.Int64
	ctx := context.WithValue(tenant.With(r.Context(), org), seriesFetchedKey{}, &fetched)
	opts := promql.NewPrometheusQueryOpts(r.FormValue("stats") == "all", 0)
	var (
		qry promql.Query
		err error
	)
	switch strings.TrimPrefix(r.URL.Path, "/prometheus") {
	case "/api/v1/query":
		ts := time.Now()
		if v := r.FormValue("time"); v != "" {
			ts, err = parseTime(v)
			if err != nil {
				writeAPIError(w, http.StatusBadRequest, "bad_data", err.Error())
				return
			}
		}
		qry, err = a.engine.NewInstantQuery(ctx, tenantQueryable{a}, opts, r.FormValue("query"), ts)
	case "/api/v1/query_range":
		var start, end time.Time
		var step time.Duration
		start, err = parseTime(r.FormValue("start"))
		if err == nil {
			end, err = parseTime(r.FormValue("end"))
		}
		if err == nil {
			step, err = parseDuration(r.FormValue("step"))
		}
		if err == nil && step <= 0 {
			err = errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer")
		}
		if err == nil && end.Before(start) {
			err = errors.New("end timestamp must not be before start time")
		}
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "bad_data", err.Error())
			return
		}
		a.mu.Lock()
		a.ranges = append(a.ranges, span{timestamp.FromTime(start), timestamp.FromTime(end)})
		a.mu.Unlock()
		qry, err = a.engine.NewRangeQuery(ctx, tenantQueryable{a}, opts, r.FormValue("query"), start, end, step)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		writeAPIError(w, 422, "execution", res.Err.Error())
		return
	}
	warnings, infos := res.Warnings.AsStrings(r.FormValue("query"), 10, 10)
	data := &v1.QueryData{ResultType: res.Value.Type(), Result: res.Value}
	if r.FormValue("stats") != "" {
		data.Stats = statsWithSeries{stats.NewQueryStats(qry.Stats()).Builtin(), fetched.Load()}
	}
	resp := &v1.Response{Status: "success", Data: data}
	if len(warnings) > 0 {
		resp.Warnings = warnings
	}
	if len(infos) > 0 {
		resp.Infos = infos
	}
	b, err := v1.JSONCodec{}.Encode(resp)
	if err != nil {
		writeAPIError(w, 500, "internal", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// get sends a GET of path with form to h as tenant org and returns code
// and body.
func get(t testing.TB, h http.Handler, path, org string, form url.Values) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path+"?"+form.Encode(), nil)
	if org != "" {
		r.Header.Set(tenant.Header, org)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func rangeForm(q string, start, end time.Time, step time.Duration) url.Values {
	return url.Values{"query": {q}, "start": {formatTime(start.UnixMilli())}, "end": {formatTime(end.UnixMilli())},
		"step": {step.String()}}
}

// newTestFrontend returns a frontend over api with opts (Defaults from
// DefaultLimits unless set), closed with the test.
func newTestFrontend(t testing.TB, api http.Handler, opts Options) *Frontend {
	t.Helper()
	if opts.Defaults == (Limits{}) {
		opts.Defaults = DefaultLimits
	}
	opts.MultiTenant = true
	if opts.Parser == nil {
		opts.Parser = parser.NewParser(parser.Options{})
	}
	f, err := New(api, opts)
	require.NoError(t, err)
	t.Cleanup(f.Close)
	return f
}
