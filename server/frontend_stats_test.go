package server

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/frontend"
	"github.com/myelindb/myelin/server/tenant"
)

// TestFrontendStats: stats=all through the frontend, which splits the
// query into pieces, counts what the API counts for the whole query:
// samples in total and per step, and the series fetched. /metrics has
// the frontend's queue, cache, split counts.
func TestFrontendStats(t *testing.T) {
	// Yesterday 11:00 UTC: the 36 h before it (from 23:00 three days
	// ago) touch three days, so the frontend splits the query into three
	// pieces at any time of day (an end an hour before now made two
	// pieces in the afternoon).
	end := time.Now().UTC().Truncate(24 * time.Hour).Add(-13 * time.Hour)
	s := loadDashboardData(t, 3, 2, 48*time.Hour, end)
	api, err := NewQueryAPI(s, QueryOptions{MultiTenant: true})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	fe, err := frontend.New(api, frontend.Options{Defaults: frontend.DefaultLimits, MultiTenant: true,
		Cache: frontend.NewLRU(64<<20, nil, reg), Registerer: reg})
	require.NoError(t, err)
	t.Cleanup(fe.Close)
	form := url.Values{"query": {`sum by (job) (rate(http_requests_total[5m]))`},
		"start": {end.Add(-36 * time.Hour).Format(time.RFC3339)}, "end": {end.Format(time.RFC3339)}, "step": {"60"}, "stats": {"all"}}
	type statsResp struct {
		Data struct {
			Result json.RawMessage `json:"result"`
			Stats  struct {
				Samples struct {
					PerStep [][2]json.Number `json:"totalQueryableSamplesPerStep"`
					Total   int64            `json:"totalQueryableSamples"`
				} `json:"samples"`
				SeriesFetched int64 `json:"seriesFetched"`
			} `json:"stats"`
		} `json:"data"`
	}
	read := func(h http.Handler) statsResp {
		code, body := callRaw(h, "/api/v1/query_range", form)
		require.Equal(t, http.StatusOK, code, body)
		var r statsResp
		require.NoError(t, json.Unmarshal([]byte(body), &r))
		return r
	}
	want := read(api)
	for round := range 2 { // the second round's pieces are cached, but stats ask for the work
		got := read(fe)
		require.JSONEq(t, string(want.Data.Result), string(got.Data.Result))
		require.Equal(t, want.Data.Stats.Samples.Total, got.Data.Stats.Samples.Total, "round %d", round)
		require.Equal(t, want.Data.Stats.Samples.PerStep, got.Data.Stats.Samples.PerStep, "round %d", round)
		require.Equal(t, 2161, len(got.Data.Stats.Samples.PerStep))
		// Each piece selects the series again: 6 series in each of 3 pieces.
		require.Equal(t, 3*want.Data.Stats.SeriesFetched, got.Data.Stats.SeriesFetched)
	}
	// Without stats the second query comes from the cache.
	form.Del("stats")
	for range 2 {
		code, body := callRaw(fe, "/api/v1/query_range", form)
		require.Equal(t, http.StatusOK, code, body)
		require.NotContains(t, body, `"stats"`)
	}
	// The stats rounds computed and stored every piece; both later rounds
	// found all three.
	for name, want := range map[string]float64{
		"myelin_query_frontend_queries_total":                4,
		"myelin_query_frontend_split_queries_total":          12,
		"myelin_query_frontend_results_cache_requests_total": 6,
		"myelin_query_frontend_results_cache_misses_total":   0,
		"myelin_query_frontend_results_cache_hits_total":     6,
		"myelin_query_frontend_results_cache_items":          3,
		"myelin_query_frontend_inflight_requests":            0,
	} {
		require.Equal(t, want, sumMetric(t, reg, name), name)
	}
	n, err := testutil.GatherAndCount(reg, "myelin_query_frontend_queue_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n, "one tenant's queue wait")
}

// sumMetric adds up the values of a counter or gauge family's series.
func sumMetric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		found = true
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	require.True(t, found, "no metric %s", name)
	return sum
}

func callRaw(h http.Handler, path string, form url.Values) (int, string) {
	r := httptest.NewRequest(http.MethodGet, path+"?"+form.Encode(), nil)
	r.Header.Set(tenant.Header, "dash")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// TestFrontendGzip: a client that accepts gzip gets the frontend's joined
// answer compressed, as the API would compress its own; the pieces were
// read plain.
func TestFrontendGzip(t *testing.T) {
	// Yesterday 11:00 UTC: the 36 h before it (from 23:00 three days
	// ago) touch three days, so the frontend splits the query into three
	// pieces at any time of day (an end an hour before now made two
	// pieces in the afternoon).
	end := time.Now().UTC().Truncate(24 * time.Hour).Add(-13 * time.Hour)
	s := loadDashboardData(t, 2, 2, 72*time.Hour, end)
	api, err := NewQueryAPI(s, QueryOptions{MultiTenant: true})
	require.NoError(t, err)
	fe, err := frontend.New(api, frontend.Options{Defaults: frontend.DefaultLimits, MultiTenant: true, Cache: frontend.NewLRU(1<<20, nil, nil)})
	require.NoError(t, err)
	t.Cleanup(fe.Close)
	form := url.Values{"query": {`rate(http_requests_total[5m])`},
		"start": {end.Add(-70 * time.Hour).Format(time.RFC3339)}, "end": {end.Format(time.RFC3339)}, "step": {"300"}}
	_, want := callRaw(api, "/api/v1/query_range", form)
	for range 2 { // computed, then from the cache
		r := httptest.NewRequest(http.MethodGet, "/api/v1/query_range?"+form.Encode(), nil)
		r.Header.Set(tenant.Header, "dash")
		r.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		fe.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code)
		require.Equal(t, "gzip", w.Header().Get("Content-Encoding"))
		zr, err := gzip.NewReader(w.Body)
		require.NoError(t, err)
		got, err := io.ReadAll(zr)
		require.NoError(t, err)
		require.Equal(t, want, string(got))
	}
}
