package server

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/tenant"
)

func TestCardinality(t *testing.T) {
	api, err := NewQueryAPI(newTenantStorages(t), QueryOptions{MultiTenant: true})
	require.NoError(t, err)
	// newTenantStorages' samples are at 0-135 s.
	now := time.UnixMilli(200_000)
	api.now = func() time.Time { return now }
	type stat struct {
		Name  string `json:"name"`
		Value uint64 `json:"value"`
	}
	type status struct {
		HeadStats struct {
			NumSeries     uint64 `json:"numSeries"`
			NumLabelPairs int    `json:"numLabelPairs"`
			MinTime       int64  `json:"minTime"`
			MaxTime       int64  `json:"maxTime"`
		} `json:"headStats"`
		SeriesCountByMetricName     []stat `json:"seriesCountByMetricName"`
		LabelValueCountByLabelName  []stat `json:"labelValueCountByLabelName"`
		MemoryInBytesByLabelName    []stat `json:"memoryInBytesByLabelName"`
		SeriesCountByLabelValuePair []stat `json:"seriesCountByLabelValuePair"`
	}
	get := func(t *testing.T, org string, form url.Values) (int, apiResponse, status) {
		code, resp := call(t, api, "GET", "/api/v1/status/tsdb", org, form)
		var st status
		if code == 200 {
			require.NoError(t, json.Unmarshal(resp.Data, &st))
		}
		return code, resp, st
	}

	code, resp, st := get(t, "a", nil)
	require.Equal(t, 200, code, resp.Error)
	require.Equal(t, uint64(2), st.HeadStats.NumSeries)
	require.Equal(t, 4, st.HeadStats.NumLabelPairs)
	require.Equal(t, now.Add(-time.Hour).UnixMilli(), st.HeadStats.MinTime)
	require.Equal(t, now.UnixMilli(), st.HeadStats.MaxTime)
	require.Equal(t, []stat{{"up", 2}}, st.SeriesCountByMetricName)
	require.Equal(t, []stat{{"instance", 2}, {"__name__", 1}, {"job", 1}}, st.LabelValueCountByLabelName)
	require.Equal(t, []stat{{"job", 3}, {"__name__", 2}, {"instance", 2}}, st.MemoryInBytesByLabelName)
	require.Equal(t, []stat{{"__name__=up", 2}, {"job=j_a", 2}, {"instance=x", 1}, {"instance=y", 1}}, st.SeriesCountByLabelValuePair)

	_, _, st = get(t, "a", url.Values{"limit": {"1"}})
	require.Equal(t, []stat{{"instance", 2}}, st.LabelValueCountByLabelName)
	require.Equal(t, []stat{{"__name__=up", 2}}, st.SeriesCountByLabelValuePair)

	_, _, st = get(t, "b", nil)
	require.Equal(t, []stat{{"job=j_b", 2}}, st.SeriesCountByLabelValuePair[1:2], "each tenant its own")

	code, resp, _ = get(t, "nobody", nil)
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"headStats":{"numSeries":0,"numLabelPairs":0,"chunkCount":0,"minTime":-3400000,"maxTime":200000},
		"seriesCountByMetricName":[],"labelValueCountByLabelName":[],"memoryInBytesByLabelName":[],"seriesCountByLabelValuePair":[]}`, string(resp.Data))

	now = now.Add(2 * time.Hour) // the samples are older than the window
	_, _, st = get(t, "a", nil)
	require.Zero(t, st.HeadStats.NumSeries)
	now = time.UnixMilli(200_000)

	for _, limit := range []string{"0", "x", "10001"} {
		code, resp, _ := get(t, "a", url.Values{"limit": {limit}})
		require.Equal(t, 400, code, limit)
		require.Equal(t, "bad_data", resp.ErrorType)
	}
	code, resp, _ = get(t, "", nil)
	require.Equal(t, 401, code, "a tenant is needed")
	require.Equal(t, "unauthorized", resp.ErrorType)
}

func TestCardinalityTruncated(t *testing.T) {
	q := tenantQueryable{s: newTenantStorages(t)}
	ctx := tenant.With(t.Context(), "a")
	st, truncated, err := countCardinality(ctx, q, 0, 200_000, 10, 1)
	require.NoError(t, err)
	require.True(t, truncated)
	require.Equal(t, uint64(1), st.HeadStats.NumSeries)
	st, truncated, err = countCardinality(ctx, q, 0, 200_000, 10, 2)
	require.NoError(t, err)
	require.False(t, truncated)
	require.Equal(t, uint64(2), st.HeadStats.NumSeries)
}

// TestQueryStats: stats=true answers Prometheus's stats and the series
// the query fetched.
func TestQueryStats(t *testing.T) {
	api, err := NewQueryAPI(newTenantStorages(t), QueryOptions{MultiTenant: true})
	require.NoError(t, err)
	type statsJSON struct {
		Stats *struct {
			Timings struct {
				EvalTotalTime *float64 `json:"evalTotalTime"`
			} `json:"timings"`
			Samples struct {
				TotalQueryableSamples int64 `json:"totalQueryableSamples"`
				PeakSamples           int   `json:"peakSamples"`
			} `json:"samples"`
			SeriesFetched *int64 `json:"seriesFetched"`
		} `json:"stats"`
	}
	for _, tc := range []struct {
		name, path string
		form       url.Values
		series     int64
	}{
		{"range", "/api/v1/query_range", url.Values{"query": {"sum(up)"}, "start": {"0"}, "end": {"135"}, "step": {"15"}, "stats": {"true"}}, 2},
		{"instant, one series", "/api/v1/query", url.Values{"query": {`up{instance="x"}`}, "time": {"135"}, "stats": {"all"}}, 1},
		{"nothing selected", "/api/v1/query", url.Values{"query": {`absent(nope)`}, "time": {"135"}, "stats": {"true"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := call(t, api, "POST", tc.path, "a", tc.form)
			require.Equal(t, 200, code, resp.Error)
			var got statsJSON
			require.NoError(t, json.Unmarshal(resp.Data, &got))
			require.NotNil(t, got.Stats, string(resp.Data))
			require.NotNil(t, got.Stats.SeriesFetched, string(resp.Data))
			require.Equal(t, tc.series, *got.Stats.SeriesFetched)
			require.NotNil(t, got.Stats.Timings.EvalTotalTime, "Prometheus's own stats stay")
			if tc.series > 0 {
				require.Positive(t, got.Stats.Samples.TotalQueryableSamples)
			}
		})
	}
	code, resp := call(t, api, "GET", "/api/v1/query", "a", url.Values{"query": {"up"}, "time": {"135"}})
	require.Equal(t, 200, code)
	require.NotContains(t, string(resp.Data), `"stats"`, "no stats unless asked")
}

// TestMimirCardinality: Mimir's cardinality API answers Mimir's JSON
// with Mimir's parameters, counts per tenant, and is not stopped by the
// tenant's query limits (it has its own bound).
func TestMimirCardinality(t *testing.T) {
	o := testOverrides(t, "overrides:\n  a:\n    max_fetched_series_per_query: 1\n")
	api, err := NewQueryAPI(newTenantStorages(t), QueryOptions{MultiTenant: true, Limits: o})
	require.NoError(t, err)
	// newTenantStorages' samples are at 0-135 s: up{job, instance=x|y}.
	now := time.UnixMilli(200_000)
	api.now = func() time.Time { return now }
	get := func(t *testing.T, path, org string, form url.Values) (int, string) {
		t.Helper()
		r := httptest.NewRequest("GET", path+"?"+form.Encode(), nil)
		r.Header.Set(tenant.Header, org)
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	for _, tc := range []struct {
		name, path, org string
		form            url.Values
		wantCode        int
		want            string // JSON, or a substring of the error
	}{
		{"label names", "/api/v1/cardinality/label_names", "a", nil, 200,
			`{"label_values_count_total":4,"label_names_count":3,"cardinality":[{"label_name":"instance","label_values_count":2},{"label_name":"__name__","label_values_count":1},{"label_name":"job","label_values_count":1}]}`},
		{"label names, limit", "/prometheus/api/v1/cardinality/label_names", "a", url.Values{"limit": {"1"}}, 200,
			`{"label_values_count_total":4,"label_names_count":3,"cardinality":[{"label_name":"instance","label_values_count":2}]}`},
		{"label names, selector", "/api/v1/cardinality/label_names", "b", url.Values{"selector": {`{instance="x"}`}}, 200,
			`{"label_values_count_total":3,"label_names_count":3,"cardinality":[{"label_name":"__name__","label_values_count":1},{"label_name":"instance","label_values_count":1},{"label_name":"job","label_values_count":1}]}`},
		{"label names, nobody", "/api/v1/cardinality/label_names", "nobody", nil, 200,
			`{"label_values_count_total":0,"label_names_count":0,"cardinality":[]}`},
		{"label values", "/api/v1/cardinality/label_values", "a", url.Values{"label_names[]": {"job", "instance", "nope"}}, 200,
			`{"series_count_total":2,"labels":[
				{"label_name":"instance","label_values_count":2,"series_count":2,"cardinality":[{"label_value":"x","series_count":1},{"label_value":"y","series_count":1}]},
				{"label_name":"job","label_values_count":1,"series_count":2,"cardinality":[{"label_value":"j_a","series_count":2}]},
				{"label_name":"nope","label_values_count":0,"series_count":0,"cardinality":[]}]}`},
		{"label values, selector and limit", "/api/v1/cardinality/label_values", "a",
			url.Values{"label_names[]": {"instance"}, "selector": {`up{instance=~"x|z"}`}, "limit": {"0"}}, 200,
			`{"series_count_total":1,"labels":[{"label_name":"instance","label_values_count":1,"series_count":1,"cardinality":[]}]}`},
		{"active series", "/api/v1/cardinality/active_series", "a", url.Values{"selector": {"up"}}, 200,
			`{"data":[{"__name__":"up","instance":"x","job":"j_a"},{"__name__":"up","instance":"y","job":"j_a"}]}`},
		{"active series need a selector", "/api/v1/cardinality/active_series", "a", nil, 400, "missing 'selector' parameter"},
		{"limit too large", "/api/v1/cardinality/label_names", "a", url.Values{"limit": {"501"}}, 400, "'limit' param cannot be greater than '500'"},
		{"bad count method", "/api/v1/cardinality/label_names", "a", url.Values{"count_method": {"all"}}, 400, "invalid 'count_method' param 'all'. valid options are: [active,inmemory]"},
		{"two selectors", "/api/v1/cardinality/label_names", "a", url.Values{"selector": {"up", "down"}}, 400, "multiple 'selector' params are not allowed"},
		{"bad selector", "/api/v1/cardinality/label_names", "a", url.Values{"selector": {"up{"}}, 400, "failed to parse selector"},
		{"label values need names", "/api/v1/cardinality/label_values", "a", nil, 400, "'label_names[]' param is required"},
		{"no tenant", "/api/v1/cardinality/label_names", "", nil, 401, "no org id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, tc.path, tc.org, tc.form)
			require.Equal(t, tc.wantCode, code, body)
			if code == 200 {
				require.JSONEq(t, tc.want, body)
			} else {
				require.Contains(t, body, tc.want)
			}
		})
	}
	// count_method=active counts the last 20 minutes, inmemory the last
	// hour.
	now = now.Add(30 * time.Minute)
	_, body := get(t, "/api/v1/cardinality/label_names", "a", url.Values{"count_method": {"active"}})
	require.JSONEq(t, `{"label_values_count_total":0,"label_names_count":0,"cardinality":[]}`, body)
	_, body = get(t, "/api/v1/cardinality/label_names", "a", url.Values{"count_method": {"inmemory"}, "limit": {"1"}})
	require.JSONEq(t, `{"label_values_count_total":4,"label_names_count":3,"cardinality":[{"label_name":"instance","label_values_count":2}]}`, body)
	_, body = get(t, "/api/v1/cardinality/active_series", "a", url.Values{"selector": {"up"}})
	require.JSONEq(t, `{"data":[]}`, body)
}

func TestMimirCardinalityTooManySeries(t *testing.T) {
	q := tenantQueryable{s: newTenantStorages(t)}
	ctx := tenant.With(t.Context(), "a")
	n := 0
	require.NoError(t, forEachSeries(ctx, q, 0, 200_000, nil, 2, func(labels.Labels) { n++ }))
	require.Equal(t, 2, n)
	err := forEachSeries(ctx, q, 0, 200_000, nil, 1, func(labels.Labels) {})
	require.EqualError(t, err, "the selector matches more than 1 series: add matchers to it")
}
