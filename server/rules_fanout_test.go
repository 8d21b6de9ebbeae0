package server

import (
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRulesFanout: every node's groups once (a group two nodes list comes
// from the one that evaluated it last), alerts concatenated, a node that
// fails named in a warning, the local answer read even when the client
// accepts gzip, the tenant passed on, errors of the local API as they
// are, and paging refused with several nodes.
func TestRulesFanout(t *testing.T) {
	group := func(name, last string) string {
		return `{"name":"` + name + `","file":"ns","rules":[],"lastEvaluation":"` + last + `"}`
	}
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Scope-OrgID") == "" {
			writeAPIError(w, http.StatusUnauthorized, "bad_data", "no org id")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		var out http.ResponseWriter = w
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			defer gz.Close()
			out = gzipWriter{w, gz}
		}
		if strings.HasSuffix(r.URL.Path, "/alerts") {
			out.Write([]byte(`{"status":"success","data":{"alerts":[{"labels":{"alertname":"A"}}]}}`))
			return
		}
		out.Write([]byte(`{"status":"success","data":{"groups":[` + group("b", "2026-12-07T10:00:00Z") + `,` + group("moved", "2026-12-07T10:00:00Z") + `]}}`))
	})
	var tenants []string
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenants = append(tenants, r.Header.Get("X-Scope-OrgID"))
		if strings.HasSuffix(r.URL.Path, "alerts") {
			w.Write([]byte(`{"status":"success","data":{"alerts":[{"labels":{"alertname":"B"}}]}}`))
			return
		}
		w.Write([]byte(`{"status":"success","data":{"groups":[` + group("a", "2026-12-07T10:00:00Z") + `,` + group("moved", "2026-12-07T10:00:09Z") + `]}}`))
	}))
	defer peer.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "stopping", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	f := NewRulesFanout(local, RulesFanoutOptions{Peers: func() []string { return []string{peer.URL, down.URL} }, Client: http.DefaultClient})
	get := func(path, org string) (int, apiAnswer) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		if org != "" {
			req.Header.Set("X-Scope-OrgID", org)
		}
		w := httptest.NewRecorder()
		f.ServeHTTP(w, req)
		var a apiAnswer
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &a), w.Body.String())
		return w.Code, a
	}

	code, a := get("/prometheus/api/v1/rules", "t1")
	require.Equal(t, 200, code)
	var groups struct {
		Groups []ruleGroupJSON `json:"groups"`
	}
	require.NoError(t, json.Unmarshal(a.Data, &groups))
	var names []string
	for _, g := range groups.Groups {
		names = append(names, g.Name)
		if g.Name == "moved" {
			require.Equal(t, 9, g.LastEvaluation.Second(), "the copy evaluated last")
		}
	}
	require.Equal(t, []string{"a", "b", "moved"}, names)
	require.Len(t, a.Warnings, 1)
	require.Contains(t, a.Warnings[0], "the rules of node "+down.URL+" are missing: status 503: stopping")
	require.Equal(t, []string{"t1"}, tenants, "the tenant goes to the peers")

	code, a = get("/prometheus/api/v1/alerts", "t1")
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"alerts":[{"labels":{"alertname":"A"}},{"labels":{"alertname":"B"}}]}`, string(a.Data))

	code, a = get("/prometheus/api/v1/rules", "")
	require.Equal(t, 401, code)
	require.Equal(t, "no org id", a.Error)

	code, a = get("/prometheus/api/v1/rules?group_limit=1", "t1")
	require.Equal(t, 400, code)
	require.Contains(t, a.Error, "group_limit and group_next_token are not supported on a cluster of several nodes")

	alone := NewRulesFanout(local, RulesFanoutOptions{Peers: func() []string { return nil }, Client: http.DefaultClient})
	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/prometheus/api/v1/rules?group_limit=1", nil)
	req.Header.Set("X-Scope-OrgID", "t1")
	alone.ServeHTTP(w, req)
	require.Equal(t, 200, w.Code, "a node alone passes every request to its API")
}

type gzipWriter struct {
	http.ResponseWriter
	gz *gzip.Writer
}

func (g gzipWriter) Write(p []byte) (int, error) { return g.gz.Write(p) }
