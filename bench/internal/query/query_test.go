package query

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  string
		exact bool
		want  string
		n     int
		err   string
	}{
		{"matrix sorted by labels, names sorted", `{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"b":"2","a":"1"},"values":[[1700000000.5,"1.25"],[1700000060.5,"NaN"]]},
			{"metric":{"a":"0"},"values":[[1700000000.5,"3"]]}]}}`, true,
			"matrix\n{a=\"0\"} 1700000000500=3\n{a=\"1\",b=\"2\"} 1700000000500=1.25 1700000060500=NaN", 2, ""},
		{"vector, computed values rounded", `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"job":"x"},"value":[1700000000,"0.30000000000000004"]}]}}`, false,
			"vector\n{job=\"x\"} 1700000000000=0.3", 1, ""},
		{"raw values exact", `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{},"value":[1,"0.30000000000000004"]}]}}`, true,
			"vector\n{} 1000=0.30000000000000004", 1, ""},
		{"label names", `{"status":"success","data":["job","__name__","instance"]}`, true,
			"strings\n__name__\ninstance\njob", 3, ""},
		{"series", `{"status":"success","data":[{"__name__":"up","job":"b"},{"job":"a","__name__":"up"}]}`, true,
			"series\n{__name__=\"up\",job=\"a\"}\n{__name__=\"up\",job=\"b\"}", 2, ""},
		{"empty", `{"status":"success","data":[]}`, true, "strings\n", 0, ""},
		{"error status", `{"status":"error","error":"boom"}`, true, "", 0, "boom"},
		{"scalar unsupported", `{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}`, true, "", 0, "scalar"},
		{"not json", `<html>`, true, "", 0, "decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n, err := Canonical([]byte(tc.body), tc.exact)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.n, n)
		})
	}
}

func TestChecksumIgnoresOrderAndLastBits(t *testing.T) {
	a := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"i":"1"},"value":[1,"2.0000000000000004"]},{"metric":{"i":"2"},"value":[1,"3"]}]}}`
	b := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"i":"2"},"value":[1,"3"]},{"metric":{"i":"1"},"value":[1,"2"]}]}}`
	sa, _, err := Checksum([]byte(a), false)
	require.NoError(t, err)
	sb, _, err := Checksum([]byte(b), false)
	require.NoError(t, err)
	require.Equal(t, sa, sb)
	sa, _, _ = Checksum([]byte(a), true)
	sb, _, _ = Checksum([]byte(b), true)
	require.NotEqual(t, sa, sb, "exact: the last bit counts")
}

func TestSetOffGrid(t *testing.T) {
	const start, end = int64(1_795_238_700_000), int64(1_795_245_885_000) // 2h - 15s
	qs := Set("host-0:9100", start, end)
	require.Len(t, qs, 13)
	names := map[string]bool{}
	for _, q := range qs {
		require.False(t, names[q.Name], "unique name %s", q.Name)
		names[q.Name] = true
		for _, k := range []string{"time", "start", "end"} {
			v := q.Params.Get(k)
			if v == "" || (k == "start" && q.Path != "/api/v1/query_range") {
				continue
			}
			sec, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			ms := int64(sec*1000 + 0.5)
			require.Equal(t, int64(evalOffsetMs), ms%15000, "%s %s=%s is off the 15 s grid", q.Name, k, v)
		}
	}
	require.Contains(t, qs[0].Params.Get("query"), `instance="host-0:9100"`)
	require.True(t, qs[0].Exact)
}

func TestRun(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prometheus/api/v1/labels" || r.Header.Get("X-Scope-OrgID") != "t1" {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) == 4 && r.URL.Query().Get("flaky") != "" {
			w.Write([]byte(`{"status":"success","data":["b"]}`))
			return
		}
		w.Write([]byte(`{"status":"success","data":["a","b"]}`))
	}))
	defer srv.Close()
	c := Client{HTTP: srv.Client(), Base: srv.URL + "/prometheus", Tenant: "t1"}
	r := c.Run(t.Context(), Query{Name: "labels", Path: "/api/v1/labels"}, 5)
	require.Empty(t, r.Err)
	require.Equal(t, 2, r.Series)
	require.Len(t, r.Checksum, 12)
	require.Positive(t, r.MedianS)
	require.GreaterOrEqual(t, r.MaxS, r.MedianS)
	require.Equal(t, int32(5), calls.Load())

	calls.Store(0)
	r = c.Run(t.Context(), Query{Name: "labels", Path: "/api/v1/labels", Params: map[string][]string{"flaky": {"1"}}}, 5)
	require.Contains(t, r.Err, "result changed between runs")

	c.Base = srv.URL + "/nope"
	r = c.Run(t.Context(), Query{Name: "labels", Path: "/api/v1/labels"}, 1)
	require.Contains(t, r.Err, "404")
	require.Empty(t, r.Checksum)
}

func TestMedian(t *testing.T) {
	require.Equal(t, 2.0, median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, median([]float64{4, 1, 2, 3}))
}

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100 down to 1
	}
	for _, tc := range []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"one value", []float64{7}, 0.99, 7},
		{"p99 of 20 is the max", []float64{5, 1, 9, 3, 2, 4, 6, 8, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 0.99, 20},
		{"p99 of 100 is the 99th", hundred, 0.99, 99},
		{"p50 of 4 is the 2nd", []float64{4, 3, 2, 1}, 0.5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Percentile(tc.xs, tc.p))
		})
	}
	require.True(t, math.IsNaN(Percentile(nil, 0.99)))
}

func TestRunInterleaved(t *testing.T) {
	var mu sync.Mutex
	var order []string
	server := func(name, data string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			w.Write([]byte(`{"status":"success","data":` + data + `}`))
		}))
	}
	a, b := server("a", `["x","y"]`), server("b", `["y","x"]`)
	defer a.Close()
	defer b.Close()
	clients := []Client{{HTTP: a.Client(), Base: a.URL}, {HTTP: b.Client(), Base: b.URL}}
	qs := []Query{{Name: "labels", Path: "/api/v1/labels"}, {Name: "series", Path: "/api/v1/series"}}
	res := RunInterleaved(t.Context(), clients, qs, 3)
	require.Equal(t, []string{"a", "b", "b", "a", "a", "b", "a", "b", "b", "a", "a", "b"}, order,
		"each query: runs take turns, the first client rotates")
	require.Len(t, res, 2)
	for k := range res {
		require.Len(t, res[k], 2)
		require.Equal(t, "labels", res[k][0].Name)
		require.Empty(t, res[k][0].Err)
	}
	require.Equal(t, res[0][0].Checksum, res[1][0].Checksum, "same strings in another order")
}
