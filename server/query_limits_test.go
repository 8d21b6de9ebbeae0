package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/querier"
	"github.com/myelindb/myelin/write"
)

// engineReadGroups are querier.Groups over the groups of limitedNode,
// read as cmd reads local groups: the engine counts against the query's
// budget.
type engineReadGroups map[ring.GroupID]*engine.Group

func (e engineReadGroups) Owners(int64, int64) []ring.GroupID {
	out := make([]ring.GroupID, 0, len(e))
	for g := range ring.GroupID(len(e)) {
		out = append(out, g+1)
	}
	return out
}

func (e engineReadGroups) Querier(ctx context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
	var rb engine.ReadBudget
	if b := limits.QueryBudgetFrom(ctx); b != nil {
		rb = b
	}
	return e[g].QuerierWithBudget(tenant, mint, maxt, rb)
}

// TestQueryLimits: each read limit of a tenant stops its queries with
// Mimir's error, the status Mimir answers (400 for a range that is too
// long, 422 "execution" for the others), while another tenant's queries
// on the same data answer.
func TestQueryLimits(t *testing.T) {
	// PromQL prefixes the errors of a select, as it does in Mimir.
	const expanding = "expanding series: "
	now := time.Now()
	end := now.Truncate(time.Minute)
	start := end.Add(-3 * time.Hour)
	o := testOverrides(t, `
overrides:
  series:
    max_fetched_series_per_query: 30
  series-total:
    max_fetched_series_per_query: 70
  chunks:
    max_fetched_chunk_bytes_per_query: 2000
  length:
    max_query_length: 1h
  lookback:
    max_query_lookback: 1h
  samples:
    max_samples_per_query: 100
`)
	d, groups := limitedNode(t, 2, o)
	// 100 series of 3 h at 1 min, the same for every tenant; each of the
	// two groups holds about half of them.
	tenants := []string{"series", "series-total", "chunks", "length", "lookback", "samples", "free"}
	for ts := start; !ts.After(end); ts = ts.Add(time.Minute) {
		for _, tn := range tenants {
			bb := write.NewBuilder(tn)
			for i := range 100 {
				require.NoError(t, bb.Add(labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)), []write.Sample{{T: ts.UnixMilli(), V: 1}}))
			}
			refused, err := d.Write(context.Background(), bb.Batch())
			require.NoError(t, err)
			require.Empty(t, refused)
		}
	}
	for g, eg := range groups {
		for _, ts := range eg.Stats() {
			require.Less(t, ts.HeadSeries, 70, "group %d", g)
			require.Greater(t, ts.HeadSeries, 30, "group %d", g)
		}
	}
	api, err := NewQueryAPI(querier.New(engineReadGroups(groups), querier.Options{}), QueryOptions{MultiTenant: true, Limits: o})
	require.NoError(t, err)
	// max_query_lookback counts from the request's time: the API's clock
	// stands still at now, which writing the data above may have left
	// behind by more than a minute (under -race it did).
	api.now = func() time.Time { return now }
	sec := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	instant := func(q string) url.Values { return url.Values{"query": {q}, "time": {sec(end)}} }
	rangeQ := func(q string, from time.Time) url.Values {
		return url.Values{"query": {q}, "start": {sec(from)}, "end": {sec(end)}, "step": {"60"}}
	}
	for _, tc := range []struct {
		name, tenant, path string
		form               url.Values
		wantCode           int
		wantType, wantErr  string
		wantData           string
	}{
		{"series: refused by a group before it loads them", "series", "/api/v1/query", instant("count(m)"), 422, "execution", expanding + limits.SeriesPerQueryError(30).Error(), ""},
		{"series: counted over the groups", "series-total", "/api/v1/query", instant("count(m)"), 422, "execution", expanding + limits.SeriesPerQueryError(70).Error(), ""},
		{"series: within the limit", "series-total", "/api/v1/query", instant(`count({__name__="m", i=~"1.*"})`), 200, "", "", `[{"metric":{},"value":[` + sec(end) + `,"11"]}]`},
		{"series: the series endpoint too", "series", "/api/v1/series", url.Values{"match[]": {"m"}}, 422, "execution", limits.SeriesPerQueryError(30).Error(), ""},
		{"chunk bytes", "chunks", "/api/v1/query", rangeQ("sum(rate(m[5m]))", start), 422, "execution", limits.ChunkBytesPerQueryError(2000).Error(), ""},
		{"chunk bytes: a small read passes", "chunks", "/api/v1/query", instant(`m{i="7"}`), 200, "", "", ""},
		{"length: a range too long", "length", "/api/v1/query_range", rangeQ("count(m)", end.Add(-2*time.Hour)), 400, "bad_data", limits.QueryLengthError(2*time.Hour, time.Hour).Error(), ""},
		{"length: a range selector too long", "length", "/api/v1/query", instant("count(count_over_time(m[2h]))"), 422, "execution", expanding + limits.QueryLengthError(2*time.Hour, time.Hour).Error(), ""},
		{"length: within", "length", "/api/v1/query_range", rangeQ("count(m)", end.Add(-time.Hour)), 200, "", "", ""},
		// Data before the lookback is left out: 60 samples (the last hour
		// at 1 min; range selectors are left-open) of the 180 of 3 h.
		{"lookback: older data left out", "lookback", "/api/v1/query", instant(`count_over_time(m{i="3"}[3h])`), 200, "", "", `[{"metric":{"i":"3"},"value":[` + sec(end) + `,"60"]}]`},
		{"lookback: another tenant reads 3 h", "free", "/api/v1/query", instant(`count_over_time(m{i="3"}[3h])`), 200, "", "", `[{"metric":{"i":"3"},"value":[` + sec(end) + `,"180"]}]`},
		{"lookback: a range before it reads nothing", "lookback", "/api/v1/query_range", url.Values{"query": {"m"}, "start": {sec(start)}, "end": {sec(start.Add(30 * time.Minute))}, "step": {"60"}}, 200, "", "", `[]`},
		{"samples", "samples", "/api/v1/query", instant("sum(count_over_time(m[10m]))"), 422, "execution", "query processing would load too many samples into memory in query execution (limit: 100 samples). To adjust the related per-tenant limit, configure -query.max-samples (max_samples_per_query), or contact your service administrator", ""},
		{"samples: within", "samples", "/api/v1/query", instant(`sum(m{i=~"1."})`), 200, "", "", `[{"metric":{},"value":[` + sec(end) + `,"10"]}]`},
		{"a tenant without limits reads everything", "free", "/api/v1/query_range", rangeQ("count(m)", start), 200, "", "", ""},
		// /status/tsdb reads every active series, bounded by its own
		// cardinalityMaxSeries, not by the query limits.
		{"status/tsdb is not a query", "series", "/api/v1/status/tsdb", nil, 200, "", "", ""},
		// Several tenants: the smallest limit of each.
		{"federated: the smallest series limit", "free|series-total", "/api/v1/query", instant(`count({__name__="m", i=~"[1-4].*"})`), 422, "execution", expanding + limits.SeriesPerQueryError(70).Error(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Handler(api)
			if strings.Contains(tc.tenant, "|") {
				fed, err := NewQueryAPI(querier.New(engineReadGroups(groups), querier.Options{}), QueryOptions{MultiTenant: true, Federation: true, Limits: o})
				require.NoError(t, err)
				fed.now = api.now
				h = fed
			}
			code, resp := call(t, h, "GET", tc.path, tc.tenant, tc.form)
			require.Equal(t, tc.wantCode, code, resp.Error)
			if tc.wantErr != "" {
				require.Equal(t, tc.wantType, resp.ErrorType)
				require.Equal(t, tc.wantErr, resp.Error)
				return
			}
			if tc.path == "/api/v1/status/tsdb" {
				require.Contains(t, string(resp.Data), `"numSeries":100`)
			}
			if tc.wantData != "" {
				var data struct {
					Result any `json:"result"`
				}
				require.NoError(t, json.Unmarshal(resp.Data, &data))
				got, err := json.Marshal(data.Result)
				require.NoError(t, err)
				require.JSONEq(t, tc.wantData, string(got))
			}
		})
	}
}

// TestQueryTimeoutPerTenant: a tenant's query_timeout bounds its
// requests; another tenant has the default.
func TestQueryTimeoutPerTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := testOverrides(t, "overrides:\n  quick:\n    query_timeout: 30s\n")
		api, err := NewQueryAPI(blockingStorage{unblock: make(chan struct{}), honorCtx: true}, QueryOptions{MultiTenant: true, Limits: o})
		require.NoError(t, err)
		for _, tc := range []struct {
			tenant string
			want   time.Duration
		}{{"quick", 30 * time.Second}, {"other", 2 * time.Minute}} {
			start := time.Now()
			code, resp := call(t, api, "GET", "/api/v1/query", tc.tenant, url.Values{"query": {"up"}, "time": {"100"}})
			require.Equal(t, http.StatusServiceUnavailable, code, resp.Error)
			require.Equal(t, "timeout", resp.ErrorType, fmt.Sprint(resp))
			require.Equal(t, tc.want, time.Since(start), tc.tenant)
		}
	})
}
