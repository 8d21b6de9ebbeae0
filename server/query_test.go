package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/myelindb/myelin/server/tenant"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// tenantStorages is a Storage with one Prometheus test TSDB per tenant.
type tenantStorages map[string]*teststorage.TestStorage

func (ts tenantStorages) Querier(tenant string, mint, maxt int64) (storage.Querier, error) {
	s, ok := ts[tenant]
	if !ok {
		return storage.NoopQuerier(), nil
	}
	return s.Querier(mint, maxt)
}

func newTenantStorages(t *testing.T) tenantStorages {
	ts := tenantStorages{"a": teststorage.New(t), "b": teststorage.New(t)}
	ctx := context.Background()
	for tenant, s := range ts {
		app := s.Appender(ctx)
		for i := range 10 {
			for _, inst := range []string{"x", "y"} {
				_, err := app.Append(0, labels.FromStrings("__name__", "up", "job", "j_"+tenant, "instance", inst), int64(i)*15000, float64(i))
				require.NoError(t, err)
			}
		}
		require.NoError(t, app.Commit())
	}
	return ts
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

func call(t testing.TB, h http.Handler, method, path, org string, form url.Values) (int, apiResponse) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(form.Encode())
	} else if form != nil {
		path += "?" + form.Encode()
	}
	r := httptest.NewRequest(method, path, body)
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if org != "" {
		r.Header.Set(tenant.Header, org)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var resp apiResponse
	if w.Code != http.StatusNotFound {
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &resp), w.Body.String())
	}
	return w.Code, resp
}

func TestQueryAPI(t *testing.T) {
	api, err := NewQueryAPI(newTenantStorages(t), QueryOptions{MultiTenant: true, Version: "1.2.3"})
	require.NoError(t, err)

	for _, tc := range []struct {
		name, method, path, tenant string
		form                       url.Values
		wantCode                   int
		wantData, wantErr          string
	}{
		{"instant", "GET", "/api/v1/query", "a", url.Values{"query": {"sum(up)"}, "time": {"135"}}, 200,
			`{"resultType":"vector","result":[{"metric":{},"value":[135,"18"]}]}`, ""},
		{"instant-prefix-post", "POST", "/prometheus/api/v1/query", "a", url.Values{"query": {"count by (job) (up)"}, "time": {"135"}}, 200,
			`{"resultType":"vector","result":[{"metric":{"job":"j_a"},"value":[135,"2"]}]}`, ""},
		{"other-tenant", "GET", "/api/v1/query", "b", url.Values{"query": {"count by (job) (up)"}, "time": {"135"}}, 200,
			`{"resultType":"vector","result":[{"metric":{"job":"j_b"},"value":[135,"2"]}]}`, ""},
		{"unknown-tenant", "GET", "/api/v1/query", "c", url.Values{"query": {"up"}, "time": {"135"}}, 200,
			`{"resultType":"vector","result":[]}`, ""},
		{"range", "GET", "/api/v1/query_range", "a", url.Values{"query": {`up{instance="x"}`}, "start": {"0"}, "end": {"30"}, "step": {"15"}}, 200,
			`{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"x","job":"j_a"},"values":[[0,"0"],[15,"1"],[30,"2"]]}]}`, ""},
		{"labels", "GET", "/api/v1/labels", "b", nil, 200, `["__name__","instance","job"]`, ""},
		{"label-values", "GET", "/api/v1/label/job/values", "b", nil, 200, `["j_b"]`, ""},
		{"series", "GET", "/api/v1/series", "a", url.Values{"match[]": {`up{instance="y"}`}}, 200,
			`[{"__name__":"up","instance":"y","job":"j_a"}]`, ""},
		{"metadata", "GET", "/api/v1/metadata", "a", nil, 200, `{}`, ""},
		{"exemplars", "GET", "/api/v1/query_exemplars", "a", url.Values{"query": {"up"}, "start": {"0"}, "end": {"30"}}, 200, `[]`, ""},
		{"format", "GET", "/api/v1/format_query", "a", url.Values{"query": {"sum(up)by(job)"}}, 200, `"sum by (job) (up)"`, ""},
		{"buildinfo", "GET", "/api/v1/status/buildinfo", "a", nil, 200, "", ""},
		{"bad-query", "GET", "/api/v1/query", "a", url.Values{"query": {"sum(up"}}, 400, "", "bad_data"},
		{"experimental-off", "GET", "/api/v1/query", "a", url.Values{"query": {"mad_over_time(up[1m])"}}, 400, "", "bad_data"},
		{"no-tenant", "GET", "/api/v1/query", "", url.Values{"query": {"up"}}, 401, "", "unauthorized"},
		{"federation-off", "GET", "/api/v1/query", "a|b", url.Values{"query": {"up"}}, 400, "", "bad_data"},
		{"bad-tenant", "GET", "/api/v1/query", "a/b", url.Values{"query": {"up"}}, 400, "", "bad_data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := call(t, api, tc.method, tc.path, tc.tenant, tc.form)
			require.Equal(t, tc.wantCode, code, resp.Error)
			if tc.wantErr != "" {
				require.Equal(t, "error", resp.Status)
				require.Equal(t, tc.wantErr, resp.ErrorType)
				require.NotEmpty(t, resp.Error)
				return
			}
			require.Equal(t, "success", resp.Status)
			if tc.wantData != "" {
				require.JSONEq(t, tc.wantData, string(resp.Data))
			}
		})
	}

	code, resp := call(t, api, "GET", "/api/v1/status/buildinfo", "a", nil)
	require.Equal(t, 200, code)
	require.Contains(t, string(resp.Data), `"version":"1.2.3"`)

	for _, p := range []string{"/api/v1/targets", "/api/v1/admin/tsdb/snapshot", "/api/v1/read", "/api/v1/label/job", "/metrics"} {
		code, _ := call(t, api, "GET", p, "a", nil)
		require.Equal(t, http.StatusNotFound, code, p)
	}
}

func TestQueryAPIExperimental(t *testing.T) {
	api, err := NewQueryAPI(newTenantStorages(t), QueryOptions{EnableExperimental: true})
	require.NoError(t, err)
	// Without multi-tenancy every request is the default tenant, which has
	// no data here.
	code, resp := call(t, api, "GET", "/api/v1/query", "", url.Values{"query": {"mad_over_time(up[1m])"}, "time": {"100"}})
	require.Equal(t, 200, code, resp.Error)
	require.JSONEq(t, `{"resultType":"vector","result":[]}`, string(resp.Data))
}

// blockingStorage answers every call after unblock is closed or, if
// honorCtx, when the call's context ends (with its error).
type blockingStorage struct {
	unblock  chan struct{}
	honorCtx bool
}

func (s blockingStorage) Querier(string, int64, int64) (storage.Querier, error) {
	return blockingQuerier(s), nil
}

type blockingQuerier blockingStorage

func (q blockingQuerier) wait(ctx context.Context) error {
	done := ctx.Done()
	if !q.honorCtx {
		done = nil
	}
	select {
	case <-q.unblock:
		return nil
	case <-done:
		return ctx.Err()
	}
}

func (q blockingQuerier) Select(ctx context.Context, _ bool, _ *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
	if err := q.wait(ctx); err != nil {
		return storage.ErrSeriesSet(err)
	}
	return storage.EmptySeriesSet()
}

func (q blockingQuerier) LabelValues(ctx context.Context, _ string, _ *storage.LabelHints, _ ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, q.wait(ctx)
}

func (q blockingQuerier) LabelNames(ctx context.Context, _ *storage.LabelHints, _ ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, q.wait(ctx)
}

func (blockingQuerier) Close() error { return nil }

// Every stage runs under the query timeout: the endpoints that are not
// PromQL, which have no timeout of their own in Prometheus, time out as
// PromQL does, with a 503; a client going away cancels them.
func TestQueryAPITimeout(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		form       url.Values
		wantType   string
	}{
		{"query", "/api/v1/query", url.Values{"query": {"up"}, "time": {"100"}}, "timeout"},
		{"query_range", "/api/v1/query_range", url.Values{"query": {"up"}, "start": {"0"}, "end": {"100"}, "step": {"10"}}, "timeout"},
		{"series", "/api/v1/series", url.Values{"match[]": {"up"}}, "execution"},
		{"labels", "/api/v1/labels", nil, "execution"},
		{"label-values", "/api/v1/label/job/values", nil, "execution"},
		{"label-values-match", "/api/v1/label/job/values", url.Values{"match[]": {"up"}}, "execution"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := blockingStorage{unblock: make(chan struct{}), honorCtx: true}
				api, err := NewQueryAPI(s, QueryOptions{Timeout: 2 * time.Minute})
				require.NoError(t, err)
				start := time.Now()
				code, resp := call(t, api, "GET", tc.path, "", tc.form)
				require.Equal(t, 2*time.Minute, time.Since(start))
				require.Equal(t, http.StatusServiceUnavailable, code, resp.Error)
				require.Equal(t, tc.wantType, resp.ErrorType, resp.Error)

				// The client goes away after a minute.
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					time.Sleep(time.Minute)
					cancel()
				}()
				path := tc.path
				if tc.form != nil {
					path += "?" + tc.form.Encode()
				}
				r := httptest.NewRequestWithContext(ctx, "GET", path, nil)
				w := httptest.NewRecorder()
				api.ServeHTTP(w, r)
				require.Equal(t, time.Minute, time.Since(start)-2*time.Minute)
				require.Equal(t, statusClientClosed, w.Code, w.Body.String())
			})
		})
	}
}

// TestShardSelector: a query's shards (__query_shard__="i_of_n") read
// disjoint sets of series that together are all of them; a bad selector
// is refused.
func TestShardSelector(t *testing.T) {
	ts := tenantStorages{"a": teststorage.New(t)}
	app := ts["a"].Appender(context.Background())
	for i := range 40 {
		_, err := app.Append(0, labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), 1000, float64(i))
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	api, err := NewQueryAPI(ts, QueryOptions{MultiTenant: true})
	require.NoError(t, err)
	count := func(q string) (int, string) {
		code, resp := call(t, api, http.MethodGet, "/api/v1/query", "a", url.Values{"query": {q}, "time": {"1"}})
		if code != http.StatusOK {
			return code, resp.Error
		}
		var v []json.RawMessage
		require.NoError(t, json.Unmarshal(resp.Data, &struct {
			Result *[]json.RawMessage `json:"result"`
		}{&v}))
		return len(v), ""
	}
	total := 0
	for i := 1; i <= 3; i++ {
		n, msg := count(fmt.Sprintf(`m{__query_shard__="%d_of_3"}`, i))
		require.Empty(t, msg)
		require.Greater(t, n, 0)
		total += n
	}
	require.Equal(t, 40, total)
	n, _ := count(`m`)
	require.Equal(t, 40, n)
	code, msg := count(`m{__query_shard__="4_of_3"}`)
	require.Equal(t, 422, code)
	require.Contains(t, msg, "bad shard selector")
}
