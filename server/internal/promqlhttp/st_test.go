package promqlhttp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/tenant"
)

// groupStorage is the query API's Storage over one engine group.
type groupStorage struct{ s *rwStorage }

func (g groupStorage) Querier(tenant string, mint, maxt int64) (storage.Querier, error) {
	return g.s.g.Querier(tenant, mint, maxt)
}

// TestStartTimestampsHTTP: counters and deltas pushed by remote write 2.0
// with start timestamps, queried over the HTTP API with
// -query.use-start-timestamps (QueryOptions.UseStartTimestamps): rate,
// increase, irate and resets answer what Prometheus's engine answers on
// its own storage with start timestamps, and differ from the answers
// without them (a counter reset only its start timestamp shows, a delta
// series, whose samples only their start timestamps make a counter).
func TestStartTimestampsHTTP(t *testing.T) {
	s := newRWStorage(t, true)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	// The samples: a counter whose value never drops but that restarted
	// at 6m30s, and a delta series (each sample the increase since the
	// previous one: OTel's delta temporality).
	counter := labels.FromStrings("__name__", "c_total", "job", "a")
	delta := labels.FromStrings("__name__", "d_total", "job", "a")
	ref := teststorage.New(t, func(o *tsdb.Options) {
		o.EnableSTStorage = true
		o.XOR2EncodingAllowed = true
		o.FloatChunkEncoding = chunkenc.EncXOR2
	})
	rw := s.AppenderV2(context.Background())
	pa := ref.AppenderV2(context.Background())
	for i := int64(1); i <= 15; i++ {
		ts := i * 60_000
		cst := int64(1)
		if i >= 7 {
			cst = 390_000
		}
		for _, a := range []storage.AppenderV2{rw, pa} {
			_, err := a.Append(0, counter, cst, ts, float64(60*i), nil, nil, storage.AppendV2Options{})
			require.NoError(t, err)
			_, err = a.Append(0, delta, ts-60_000, ts, 60, nil, nil, storage.AppendV2Options{})
			require.NoError(t, err)
		}
	}
	require.NoError(t, rw.Commit())
	require.NoError(t, pa.Commit())

	eng := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery) // UseStartTimestamps
	apis := map[bool]http.Handler{}
	for _, use := range []bool{true, false} {
		api, err := server.NewQueryAPI(groupStorage{s}, server.QueryOptions{MultiTenant: true, UseStartTimestamps: use, MaxConcurrent: 2})
		require.NoError(t, err)
		apis[use] = api
	}
	at := time.Unix(420, 0) // just after the restart
	for _, q := range []string{
		`increase(c_total[5m])`, `rate(c_total[5m])`, `irate(c_total[5m])`, `resets(c_total[5m])`,
		`increase(d_total[5m])`, `rate(d_total[5m])`,
	} {
		qry, err := eng.NewInstantQuery(context.Background(), ref, nil, q, at)
		require.NoError(t, err)
		res := qry.Exec(context.Background())
		require.NoError(t, res.Err)
		vec, err := res.Vector()
		require.NoError(t, err)
		require.Len(t, vec, 1, q)
		want := vec[0].F
		qry.Close()

		with := queryHTTP(t, apis[true], q, at)
		without := queryHTTP(t, apis[false], q, at)
		require.InDelta(t, want, with, 1e-9, "%s: with start timestamps", q)
		require.NotEqual(t, want, without, "%s: the start timestamps change the answer", q)
	}
}

// queryHTTP asks h for the instant query q at at and returns the value of
// its one series.
func queryHTTP(t *testing.T, h http.Handler, q string, at time.Time) float64 {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/v1/query?"+url.Values{"query": {q}, "time": {strconv.FormatInt(at.Unix(), 10)}}.Encode(), nil)
	r.Header.Set(tenant.Header, rwTenant)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var resp struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &resp))
	require.Len(t, resp.Data.Result, 1, "%s: %s", q, w.Body.String())
	v, err := strconv.ParseFloat(resp.Data.Result[0].Value[1].(string), 64)
	require.NoError(t, err)
	return v
}
