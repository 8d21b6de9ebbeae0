package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/internal/tsdata"
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

// promqlHandlers returns the two ways to ask: the query API alone, and
// the frontend in front of it, splitting by 5 minutes with the results
// cache on, over the same storage.
func promqlHandlers(t *testing.T, s Storage) map[string]http.Handler {
	api, err := NewQueryAPI(s, QueryOptions{MultiTenant: true, EnableExperimental: true, MaxConcurrent: 8})
	require.NoError(t, err)
	lim := frontend.DefaultLimits
	lim.SplitInterval = 5 * time.Minute
	fe, err := frontend.New(api, frontend.Options{
		Defaults:    lim,
		MultiTenant: true,
		Parser:      NewParser(true),
		CheckExpr:   func(e string) error { return CheckExpression(e, 0, 0) },
		Cache:       frontend.NewLRU(64<<20, nil, nil),
	})
	require.NoError(t, err)
	t.Cleanup(fe.Close)
	return map[string]http.Handler{"api": api, "frontend": fe}
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
	handlers := promqlHandlers(t, cur)
	newStorage := func(t testing.TB) storage.Storage {
		s := teststorage.New(t)
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
			for _, way := range []string{"api", "frontend"} {
				t.Run(fmt.Sprintf("%s/part%d/%s", filepath.Base(f), i, way), func(t *testing.T) {
					promqltest.RunTestWithStorage(t, part, &httpEngine{h: handlers[way], version: &version}, newStorage)
				})
			}
		}
	}
	t.Logf("ran %d script parts both ways", ran)
}

// splitScriptParts and unsupportedPart are the engine test's
// (splitScript, unsupported): the same parts run here.
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
	case strings.Contains(part, "}@st") || strings.Contains(part, "@st "):
		return "start timestamps"
	}
	return ""
}
