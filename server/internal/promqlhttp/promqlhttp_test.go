package promqlhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/internal/tsdata"
	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/frontend"
	"github.com/myelindb/myelin/server/tenant"
)

// Prometheus's PromQL test scripts and the PromQL compliance queries, over
// HTTP, both ways: straight to the query API, and through the query
// frontend (split into small pieces, cached). `make promql-frontend` runs
// them; the frontend must answer exactly as the API does.

// currentStorage is the Storage of the query API under a script: the
// script's current test storage, whatever the tenant (each load of data
// is a new tenant, so the results cache never serves an answer computed
// before it).
type currentStorage struct {
	s atomic.Pointer[teststorage.TestStorage]
}

func (c *currentStorage) Querier(_ string, mint, maxt int64) (storage.Querier, error) {
	s := c.s.Load()
	if s == nil {
		return storage.NoopQuerier(), nil
	}
	return s.Querier(mint, maxt)
}

// versionedStorage counts the commits of appenders: each one names a new
// tenant for the queries after it.
type versionedStorage struct {
	*teststorage.TestStorage
	version *atomic.Int64
}

func (v versionedStorage) Appender(ctx context.Context) storage.Appender {
	return versionedAppender{v.TestStorage.Appender(ctx), v.version}
}

type versionedAppender struct {
	storage.Appender
	version *atomic.Int64
}

func (a versionedAppender) Commit() error {
	a.version.Add(1)
	return a.Appender.Commit()
}

// httpEngine is a promql.QueryEngine that asks an HTTP handler (the
// query API, or the frontend in front of it) and reads its JSON back.
type httpEngine struct {
	h       http.Handler
	version *atomic.Int64
}

func (e *httpEngine) NewInstantQuery(_ context.Context, _ storage.Queryable, _ promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	return &httpQuery{e: e, path: "/api/v1/query", form: url.Values{"query": {qs}, "time": {ts.UTC().Format(time.RFC3339Nano)}}, qs: qs}, nil
}

func (e *httpEngine) NewRangeQuery(_ context.Context, _ storage.Queryable, _ promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	return &httpQuery{e: e, path: "/api/v1/query_range", qs: qs, form: url.Values{"query": {qs},
		"start": {start.UTC().Format(time.RFC3339Nano)}, "end": {end.UTC().Format(time.RFC3339Nano)},
		"step": {step.String()}}}, nil
}

type httpQuery struct {
	e    *httpEngine
	path string
	form url.Values
	qs   string
}

func (q *httpQuery) Close()                      {}
func (q *httpQuery) Statement() parser.Statement { return nil }
func (q *httpQuery) Stats() *stats.Statistics    { return nil }
func (q *httpQuery) Cancel()                     {}
func (q *httpQuery) String() string              { return q.qs }

func (q *httpQuery) Exec(ctx context.Context) *promql.Result {
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, q.path, strings.NewReader(q.form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(tenant.Header, fmt.Sprintf("v%d", q.e.version.Load()))
	w := httptest.NewRecorder()
	q.e.h.ServeHTTP(w, r)
	return decodeHTTPResult(w.Code, w.Body.Bytes())
}

// decodeHTTPResult turns an answer of the API into what the engine would
// have returned: the value, the annotations (by their words), the error
// without the API's "invalid parameter" wrapping.
func decodeHTTPResult(code int, body []byte) *promql.Result {
	var resp struct {
		Status   string `json:"status"`
		Error    string `json:"error"`
		Warnings []string
		Infos    []string
		Data     struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return &promql.Result{Err: fmt.Errorf("HTTP %d: %s", code, body)}
	}
	res := &promql.Result{}
	annos := annotations.New()
	// The API writes an annotation with its position in the query, " (1:25)",
	// which the engine's own annotation does not have.
	for _, w := range resp.Warnings {
		w = annotationPosition.ReplaceAllString(w, "")
		annos.Add(fmt.Errorf("%w%s", annotations.PromQLWarning, strings.TrimPrefix(w, annotations.PromQLWarning.Error())))
	}
	for _, w := range resp.Infos {
		w = annotationPosition.ReplaceAllString(w, "")
		annos.Add(fmt.Errorf("%w%s", annotations.PromQLInfo, strings.TrimPrefix(w, annotations.PromQLInfo.Error())))
	}
	res.Warnings = *annos
	if resp.Status != "success" {
		res.Err = errors.New(strings.TrimPrefix(resp.Error, `invalid parameter "query": `))
		return res
	}
	switch resp.Data.ResultType {
	case "matrix":
		var m model.Matrix
		if err := json.Unmarshal(resp.Data.Result, &m); err != nil {
			res.Err = err
			return res
		}
		out := promql.Matrix{}
		for _, s := range m {
			ps := promql.Series{Metric: metricLabels(s.Metric)}
			for _, p := range s.Values {
				ps.Floats = append(ps.Floats, promql.FPoint{T: int64(p.Timestamp), F: float64(p.Value)})
			}
			out = append(out, ps)
		}
		res.Value = out
	case "vector":
		var v model.Vector
		if err := json.Unmarshal(resp.Data.Result, &v); err != nil {
			res.Err = err
			return res
		}
		out := promql.Vector{}
		for _, s := range v {
			out = append(out, promql.Sample{Metric: metricLabels(s.Metric), T: int64(s.Timestamp), F: float64(s.Value)})
		}
		res.Value = out
	case "scalar":
		var s model.Scalar
		if err := json.Unmarshal(resp.Data.Result, &s); err != nil {
			res.Err = err
			return res
		}
		res.Value = promql.Scalar{T: int64(s.Timestamp), V: float64(s.Value)}
	case "string":
		var s model.String
		if err := json.Unmarshal(resp.Data.Result, &s); err != nil {
			res.Err = err
			return res
		}
		res.Value = promql.String{T: int64(s.Timestamp), V: s.Value}
	}
	return res
}

var annotationPosition = regexp.MustCompile(` \(\d+:\d+\)$`)

func metricLabels(m model.Metric) labels.Labels {
	b := labels.NewScratchBuilder(len(m))
	for k, v := range m {
		b.Add(string(k), string(v))
	}
	b.Sort()
	return b.Labels()
}

// promqlHandlers returns the ways to ask: the query API alone, the
// frontend in front of it (splitting by split, results cache on), and
// the same frontend running shardable queries as 3 shards, over the same
// storage.
func promqlHandlers(t *testing.T, s server.Storage, split time.Duration) map[string]http.Handler {
	api, err := server.NewQueryAPI(s, server.QueryOptions{MultiTenant: true, EnableExperimental: true, UseStartTimestamps: true, MaxConcurrent: 8})
	require.NoError(t, err)
	lim := frontend.DefaultLimits
	lim.SplitInterval = split
	fe, err := frontend.New(api, frontend.Options{
		Defaults:    lim,
		MultiTenant: true,
		Parser:      server.NewParser(true),
		CheckExpr:   func(e string) error { return server.CheckExpression(e, 0, 0) },
		Cache:       frontend.NewLRU(64<<20, nil, nil),
	})
	require.NoError(t, err)
	t.Cleanup(fe.Close)
	lim.TotalShards = 3
	sharded, err := frontend.New(api, frontend.Options{
		Defaults:                    lim,
		MultiTenant:                 true,
		Parser:                      server.NewParser(true),
		CheckExpr:                   func(e string) error { return server.CheckExpression(e, 0, 0) },
		Cache:                       frontend.NewLRU(64<<20, nil, nil),
		ParallelizeShardableQueries: true,
		ShardParallelism:            -1,   // 3 shards on any machine
		DelayedNameRemoval:          true, // the API's, with EnableExperimental
	})
	require.NoError(t, err)
	t.Cleanup(sharded.Close)
	return map[string]http.Handler{"api": api, "frontend": fe, "sharded": sharded}
}

// TestPromQLScriptsHTTP runs every script part the engine's test runs
// (engine/promqltest_script_test.go) over HTTP both ways.
func TestPromQLScriptsHTTP(t *testing.T) {
	data := tsdata.RequireSharedDir(t)
	dir := filepath.Join(filepath.Dir(data), "promqltest-testdata")
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.test"))
	require.NoError(t, err)
	if len(files) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("no PromQL test scripts in %s", dir)
		}
		t.Skipf("no PromQL test scripts in %s", dir)
	}
	cur := &currentStorage{}
	var version atomic.Int64
	handlers := promqlHandlers(t, cur, 5*time.Minute)
	newStorage := func(t testing.TB) storage.Storage {
		// Prometheus's storage with start timestamps, as its own
		// promqltest runner (RunBuiltinTests) makes it.
		s := teststorage.New(t, func(o *tsdb.Options) {
			o.EnableSTStorage = true
			o.XOR2EncodingAllowed = true
			o.FloatChunkEncoding = chunkenc.EncXOR2
			o.EnableHistogramSTEncoding = true
		})
		cur.s.Store(s)
		version.Add(1)
		return versionedStorage{s, &version}
	}
	ran := 0
	for _, f := range files {
		content, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, part := range splitScriptParts(string(content)) {
			if reason := unsupportedPart(part); reason != "" {
				continue
			}
			ran++
			for _, way := range []string{"api", "frontend", "sharded"} {
				name := fmt.Sprintf("%s/part%d", filepath.Base(f), i)
				if way == "sharded" && shardedPrecision[name] {
					continue
				}
				t.Run(name+"/"+way, func(t *testing.T) {
					promqltest.RunTestWithStorage(t, part, &httpEngine{h: handlers[way], version: &version}, newStorage)
				})
			}
		}
	}
	t.Logf("ran %d script parts: the API, the frontend, the sharding frontend", ran)
}

// shardedPrecision are the script parts written to show the limits of
// floating-point addition: sums of ±1e100 with small numbers (exact only
// with Kahan summation over all values at once) and averages near the
// largest float64. Sharded, each shard sums its part and the frontend
// sums the parts: 2 + 1e100 and 8 - 1e100 are 1e100 and -1e100, whose
// sum is 0 where Prometheus's single Kahan sum gives 10; an average's
// sum of shard sums overflows where Prometheus's incremental mean does
// not. docs/design.md states the tolerance of sharded results.
var shardedPrecision = map[string]bool{
	"aggregators.test/part8": true,
	"aggregators.test/part9": true,
}

// splitScriptParts is the engine test's splitScript: the same parts run
// here, but those with native histograms, which the query API's JSON
// cannot render exactly (TestPromQLScriptsRemoteWrite runs them).
func splitScriptParts(s string) []string {
	var parts []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.TrimSpace(line) == "clear" {
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(parts, cur.String())
}

func unsupportedPart(part string) string {
	switch {
	case strings.Contains(part, "{{"), strings.Contains(part, "load_with_nhcb"):
		return "native histograms"
	}
	return ""
}

// complianceVariants are the values the PromQL compliance tester
// substitutes for the {{.name}} arguments of its queries (its
// testcases.go).
var complianceVariants = map[string][]string{
	"range":                {"1s", "15s", "1m", "5m", "15m", "1h"},
	"offset":               {"1m", "5m", "10m"},
	"simpleAggrOp":         {"sum", "avg", "max", "min", "count", "stddev", "stdvar"},
	"topBottomOp":          {"topk", "bottomk"},
	"quantile":             {"-0.5", "0.1", "0.5", "0.75", "0.95", "0.90", "0.99", "1", "1.5"},
	"arithBinOp":           {"+", "-", "*", "/", "%", "^"},
	"compBinOp":            {"==", "!=", "<", ">", "<=", ">="},
	"binOp":                {"+", "-", "*", "/", "%", "^", "==", "!=", "<", ">", "<=", ">="},
	"simpleMathFunc":       {"abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "round"},
	"extrapolatedRateFunc": {"delta", "rate", "increase"},
	"clampFunc":            {"clamp_min", "clamp_max"},
	"instantRateFunc":      {"idelta", "irate"},
	"dateFunc":             {"day_of_month", "day_of_week", "days_in_month", "hour", "minute", "month", "year"},
	"simpleTimeAggrOp":     {"sum", "avg", "max", "min", "count", "stddev", "stdvar", "absent", "last", "present"},
}

// expandCompliance returns the queries of a compliance test case, one per
// combination of its variant arguments.
func expandCompliance(t *testing.T, query string, args []string) []string {
	out := []string{query}
	for _, a := range args {
		vals, ok := complianceVariants[a]
		require.True(t, ok, "unknown variant argument %q", a)
		var next []string
		for _, q := range out {
			for _, v := range vals {
				next = append(next, strings.ReplaceAll(q, "{{."+a+"}}", v))
			}
		}
		out = next
	}
	return out
}

// loadComplianceData writes series shaped like the compliance tester's
// demo service (three instances, 5 s scrapes) for the last hours of end
// into a tenant of ts.
func loadComplianceData(t *testing.T, s *teststorage.TestStorage, end time.Time, hours int) {
	app := s.Appender(context.Background())
	instances := []string{"demo.promlabs.com:10000", "demo.promlabs.com:10001", "demo.promlabs.com:10002"}
	start := end.Add(-time.Duration(hours) * time.Hour)
	add := func(l labels.Labels, f func(k int, ts time.Time) (float64, bool)) {
		k := 0
		for ts := start; !ts.After(end); ts = ts.Add(5 * time.Second) {
			if v, ok := f(k, ts); ok {
				_, err := app.Append(0, l, ts.UnixMilli(), v)
				require.NoError(t, err)
			}
			k++
		}
	}
	for i, inst := range instances {
		base := []string{"instance", inst, "job", "demo"}
		lbl := func(extra ...string) labels.Labels {
			return labels.FromStrings(append(append([]string{}, base...), extra...)...)
		}
		for j, typ := range []string{"free", "buffers", "cached", "used"} {
			add(lbl("__name__", "demo_memory_usage_bytes", "type", typ), func(k int, _ time.Time) (float64, bool) {
				// + i: no two instances tie (topk's pick among equal
				// values depends on the order it meets them).
				return float64((j+1)*1_000_000_000 + (i+1)*37*k%997*1000 + i), true
			})
		}
		add(lbl("__name__", "demo_num_cpus"), func(int, time.Time) (float64, bool) { return float64(4 + i), true })
		for j, mode := range []string{"idle", "user", "system"} {
			add(lbl("__name__", "demo_cpu_usage_seconds_total", "mode", mode), func(k int, _ time.Time) (float64, bool) {
				if k == 1000 && j == 1 {
					return 0, true // a counter reset
				}
				return float64(k*(j+1)) * 0.37 * float64(i+1), true
			})
		}
		add(lbl("__name__", "demo_disk_usage_bytes"), func(k int, _ time.Time) (float64, bool) { return float64(1e10 + float64(k*(i+1))*1e5), true })
		add(lbl("__name__", "demo_batch_last_success_timestamp_seconds"), func(_ int, ts time.Time) (float64, bool) {
			return float64(ts.Truncate(time.Hour).Unix()), true
		})
		add(lbl("__name__", "demo_intermittent_metric"), func(k int, _ time.Time) (float64, bool) { return float64(k), k/60%3 != 0 })
		for _, method := range []string{"GET", "POST"} {
			for _, path := range []string{"/api/foo", "/api/bar"} {
				var cum float64
				for _, le := range []string{"0.0001", "0.00015", "0.001", "0.01", "0.1", "1", "+Inf"} {
					cum++
					c := cum
					add(lbl("__name__", "demo_api_request_duration_seconds_bucket", "method", method, "path", path, "status", "200", "le", le),
						func(k int, _ time.Time) (float64, bool) { return float64(k) * c * float64(i+1), true })
				}
				add(lbl("__name__", "demo_api_request_duration_seconds_count", "method", method, "path", path, "status", "200"),
					func(k int, _ time.Time) (float64, bool) { return float64(k) * cum * float64(i+1), true })
				add(lbl("__name__", "demo_api_request_duration_seconds_sum", "method", method, "path", path, "status", "200"),
					func(k int, _ time.Time) (float64, bool) { return float64(k) * 0.05 * float64(i+1), true })
			}
		}
	}
	require.NoError(t, app.Commit())
}

// TestPromQLComplianceHTTP runs the PromQL compliance queries (Prometheus 3's
// set) as range queries over demo-shaped data straight to the query API and
// through the frontend, whose answers must be the same bytes. It runs each
// query twice through the frontend: the second answer comes mostly from
// its results cache. Through the sharding frontend the answers must hold
// the same series, steps and annotations, values to a relative 1e-12.
func TestPromQLComplianceHTTP(t *testing.T) {
	data := tsdata.RequireSharedDir(t)
	file := filepath.Join(filepath.Dir(data), "promql-compliance", "promql-test-queries.prom3.yml")
	b, err := os.ReadFile(file)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("read compliance queries: %v", err)
		}
		t.Skipf("no compliance queries: %v", err)
	}
	var cases struct {
		TestCases []struct {
			Query       string   `yaml:"query"`
			VariantArgs []string `yaml:"variant_args"`
			ShouldFail  bool     `yaml:"should_fail"`
		} `yaml:"test_cases"`
	}
	require.NoError(t, yaml.Unmarshal(b, &cases))
	end := time.Now().UTC().Truncate(time.Minute)
	s := teststorage.New(t)
	loadComplianceData(t, s, end, 3)
	cur := &currentStorage{}
	cur.s.Store(s)
	handlers := promqlHandlers(t, cur, 20*time.Minute)
	// The tester's range: the last hour at 10 s; here ending 10m before
	// the data (so that most pieces are cached), in pieces of 20m (the
	// scripts test small pieces; these would cost 13 queries each).
	qEnd := end.Add(-10 * time.Minute)
	form := func(q string) url.Values {
		return url.Values{"query": {q}, "start": {qEnd.Add(-time.Hour).Format(time.RFC3339)}, "end": {qEnd.Format(time.RFC3339)}, "step": {"10s"}}
	}
	n, failed := 0, 0
	for _, tc := range cases.TestCases {
		for _, q := range expandCompliance(t, tc.Query, tc.VariantArgs) {
			n++
			code, want := callRaw(handlers["api"], "/api/v1/query_range", form(q))
			if tc.ShouldFail {
				require.NotEqual(t, http.StatusOK, code, "%s should fail", q)
			} else if code != http.StatusOK {
				failed++
			}
			for round := range 2 {
				gotCode, got := callRaw(handlers["frontend"], "/api/v1/query_range", form(q))
				require.Equal(t, code, gotCode, "%s (round %d): %s", q, round, got)
				if code == http.StatusOK {
					requireSameAnswer(t, want, got, fmt.Sprintf("%s (round %d)", q, round))
				}
			}
			gotCode, got := callRaw(handlers["sharded"], "/api/v1/query_range", form(q))
			require.Equal(t, code, gotCode, "%s (sharded): %s", q, got)
			if code == http.StatusOK {
				requireMatrixClose(t, want, got, q)
			}
		}
	}
	t.Logf("%d compliance queries: the API, the frontend (twice), the sharding frontend; %d failed on the API (and identically through the frontends)", n, failed)
}

func callRaw(h http.Handler, path string, form url.Values) (int, string) {
	r := httptest.NewRequest(http.MethodGet, path+"?"+form.Encode(), nil)
	r.Header.Set(tenant.Header, "compliance")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// requireMatrixClose checks that two range query answers hold the same
// series and steps, values equal to a relative 1e-12 (sharded sums add in
// another order), and the same annotations.
func requireMatrixClose(t *testing.T, wantBody, gotBody, q string) {
	t.Helper()
	type answer struct {
		Data struct {
			Result model.Matrix `json:"result"`
		} `json:"data"`
		Warnings []string `json:"warnings"`
		Infos    []string `json:"infos"`
	}
	var want, got answer
	require.NoError(t, json.Unmarshal([]byte(wantBody), &want))
	require.NoError(t, json.Unmarshal([]byte(gotBody), &got))
	require.ElementsMatch(t, want.Warnings, got.Warnings, q)
	require.ElementsMatch(t, want.Infos, got.Infos, q)
	require.Len(t, got.Data.Result, len(want.Data.Result), q)
	for i, w := range want.Data.Result {
		g := got.Data.Result[i]
		require.Equal(t, w.Metric, g.Metric, q)
		require.Len(t, g.Values, len(w.Values), "%s %s", q, w.Metric)
		for j, p := range w.Values {
			gp := g.Values[j]
			require.Equal(t, p.Timestamp, gp.Timestamp, q)
			wv, gv := float64(p.Value), float64(gp.Value)
			if wv == gv || math.IsNaN(wv) && math.IsNaN(gv) {
				continue
			}
			require.InEpsilon(t, wv, gv, 1e-12, "%s %s at %v", q, w.Metric, p.Timestamp)
		}
	}
}

// requireSameAnswer checks that two answers are the same bytes but for
// the order of their annotations, which the API writes from a map.
func requireSameAnswer(t *testing.T, wantBody, gotBody, what string) {
	t.Helper()
	if wantBody == gotBody {
		return
	}
	type answer struct {
		Status   string          `json:"status"`
		Data     json.RawMessage `json:"data"`
		Warnings []string        `json:"warnings"`
		Infos    []string        `json:"infos"`
	}
	var want, got answer
	require.NoError(t, json.Unmarshal([]byte(wantBody), &want))
	require.NoError(t, json.Unmarshal([]byte(gotBody), &got))
	require.Equal(t, want.Status, got.Status, what)
	require.True(t, string(want.Data) == string(got.Data), "%s: data differs", what)
	require.ElementsMatch(t, want.Warnings, got.Warnings, what)
	require.ElementsMatch(t, want.Infos, got.Infos, what)
}
