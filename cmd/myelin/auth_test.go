package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/auth"
	"github.com/myelindb/myelin/server/ui"
)

// Tenants of the auth tests: alpha's data must never reach a request
// that may not read it, nor its name or its metric's.
const (
	alpha       = "tenant-alpha"
	alphaMetric = "secret_alpha_metric"
	bravo       = "tenant-bravo"
)

// writeAuthFile writes an auth config of one token per entry (the
// entries' hashes are filled in) and returns its path and the tokens by
// entry name.
func writeAuthFile(t *testing.T, entries []auth.Entry) (string, map[string]string) {
	t.Helper()
	tokens := map[string]string{}
	for i := range entries {
		tok, err := auth.NewToken(nil)
		if err != nil {
			t.Fatal(err)
		}
		tokens[entries[i].Name] = tok
		entries[i].Hash = auth.Hash(tok)
	}
	b, err := yaml.Marshal(authFile{Tokens: entries})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, tokens
}

// matrixEntries: a token per scope (the tenant scopes on alpha), and
// "wrong-tenant", every tenant scope on bravo.
func matrixEntries() []auth.Entry {
	var es []auth.Entry
	for _, s := range auth.Scopes {
		e := auth.Entry{Name: string(s), Scopes: []auth.Scope{s}}
		if s != auth.ScopeMetrics && s != auth.ScopeAdmin {
			e.Tenants = []string{alpha}
		}
		es = append(es, e)
	}
	return append(es, auth.Entry{Name: "wrong-tenant", Tenants: []string{bravo},
		Scopes: []auth.Scope{auth.ScopeWrite, auth.ScopeRead, auth.ScopeRules, auth.ScopeAlertmanager}})
}

// startAuthNode opens a node as run does, with the auth config at path
// and a failed-attempt limit high enough for a test's hundreds of
// refused requests from one address (TestAuthRateLimit tests the limit).
func startAuthNode(t *testing.T, path string, args ...string) (*server.Routes, string) {
	t.Helper()
	cfg, _, err := parseFlags(append([]string{"-data.dir", t.TempDir(), "-auth.config-file", path}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := loadAuthFile(path)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	gate := server.NewAuthGate(server.AuthOptions{Keys: keys, Limiter: auth.LimiterOptions{Burst: 1 << 20}, Registerer: reg})
	nodeID, err := resolveNodeID(cfg.dataDir, "")
	if err != nil {
		t.Fatal(err)
	}
	lims, err := openLimits(cfg, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	n, err := openNode(t.Context(), cfg, nodeID, lims, logger, reg, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.close(); err != nil {
			t.Error(err)
		}
	})
	h := server.NewRoutes(gate, reg)
	if err := install(h, n, cfg, gate, reg, logger); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	deadline := time.Now().Add(20 * time.Second)
	for n.api.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("node not ready: %v", n.api.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h, srv.URL
}

// sampleRequest is a request to a route that its need allows, and the
// status it gets then.
type sampleRequest struct {
	method, path string
	body         []byte
	code         int
}

// sampleRequests has one request per registered pattern. A pattern
// missing here fails TestAuthRoutes: a new route must say what an
// allowed request gets.
func sampleRequests(t *testing.T) map[string]sampleRequest {
	push := pushBody(t, alphaMetric, 5000)
	otlp := otlpGaugeBody(t, alphaMetric, 5000)
	imported := []byte(alphaMetric + `{job="j"} 4 5000` + "\n")
	query := "/api/v1/query?query=" + alphaMetric + "&time=10"
	ruleGroup := []byte("name: g\nrules:\n- record: r\n  expr: vector(1)\n")
	amConfig := []byte("alertmanager_config: |\n  route:\n    receiver: r\n  receivers:\n  - name: r\n")
	page, err := ui.New(func() ui.NodeInfo { return ui.NodeInfo{} })
	if err != nil {
		t.Fatal(err)
	}
	return map[string]sampleRequest{
		"GET /{$}":                  {"GET", "/", nil, 200},
		"GET /ui/":                  {"GET", page.AssetPaths()[0], nil, 200},
		"GET /api/v1/auth/whoami":   {"GET", "/api/v1/auth/whoami", nil, 200},
		"GET /ready":                {"GET", "/ready", nil, 200},
		"GET /config":               {"GET", "/config", nil, 200},
		"GET /runtime_config":       {"GET", "/runtime_config", nil, 200},
		"GET /ring":                 {"GET", "/ring", nil, 200},
		"GET /status/tenants":       {"GET", "/status/tenants", nil, 200},
		"POST /admin/cluster/drain": {"POST", "/admin/cluster/drain", nil, 400}, // no ?node: drains nothing
		"GET /admin/raft/status":    {"GET", "/admin/raft/status", nil, 200},
		"GET /admin/raft/data":      {"GET", "/admin/raft/data?group=1", nil, 200},
		"/debug/pprof/":             {"GET", "/debug/pprof/", nil, 200},
		"/debug/pprof/cmdline":      {"GET", "/debug/pprof/cmdline", nil, 200},
		"/debug/pprof/profile":      {"GET", "/debug/pprof/profile?seconds=1", nil, 200},
		"/debug/pprof/symbol":       {"GET", "/debug/pprof/symbol", nil, 200},
		"/debug/pprof/trace":        {"GET", "/debug/pprof/trace?seconds=0.05", nil, 200},
		"GET /metrics":              {"GET", "/metrics", nil, 200},
		"/api/v1/push":              {"POST", "/api/v1/push", push, 204},
		"/api/v1/write":             {"POST", "/api/v1/write", push, 204},
		"/prometheus/api/v1/push":   {"POST", "/prometheus/api/v1/push", push, 204},
		"/prometheus/api/v1/write":  {"POST", "/prometheus/api/v1/write", push, 204},
		"/otlp/v1/metrics":          {"POST", "/otlp/v1/metrics", otlp, 200},
		"/api/v1/otlp/v1/metrics":   {"POST", "/api/v1/otlp/v1/metrics", otlp, 200},
		// The push's sample again: written once, the same again is no
		// refusal (an answer naming the series would be no leak either:
		// the writer sent it).
		"/api/v1/import/prometheus":            {"POST", "/api/v1/import/prometheus", imported, 200},
		"/prometheus/api/v1/import/prometheus": {"POST", "/prometheus/api/v1/import/prometheus", imported, 200},
		"/api/v1/export":                       {"GET", "/api/v1/export?match[]=" + alphaMetric, nil, 200},
		"/prometheus/api/v1/export":            {"GET", "/prometheus/api/v1/export?match[]=" + alphaMetric, nil, 200},
		"/api/v1/export/native":                {"GET", "/api/v1/export/native?match[]=" + alphaMetric, nil, 200},
		"/prometheus/api/v1/export/native":     {"GET", "/prometheus/api/v1/export/native?match[]=" + alphaMetric, nil, 200},
		"/api/v1/":                             {"GET", query, nil, 200},
		// The rule configuration API, in registration order (TestAuthRoutes
		// walks the routes in order): nothing to list, a group set, its
		// namespace deleted, then a group that is gone.
		"GET /api/v1/rules":                                          {"GET", "/api/v1/rules", nil, 404},
		"GET /api/v1/rules/{namespace}":                              {"GET", "/api/v1/rules/none", nil, 404},
		"POST /api/v1/rules/{namespace}":                             {"POST", "/api/v1/rules/ns1", ruleGroup, 202},
		"DELETE /api/v1/rules/{namespace}":                           {"DELETE", "/api/v1/rules/ns1", nil, 202},
		"GET /api/v1/rules/{namespace}/{groupName}":                  {"GET", "/api/v1/rules/ns1/g", nil, 404},
		"DELETE /api/v1/rules/{namespace}/{groupName}":               {"DELETE", "/api/v1/rules/ns1/g", nil, 404},
		"GET /prometheus/config/v1/rules":                            {"GET", "/prometheus/config/v1/rules", nil, 404},
		"GET /prometheus/config/v1/rules/{namespace}":                {"GET", "/prometheus/config/v1/rules/none", nil, 404},
		"POST /prometheus/config/v1/rules/{namespace}":               {"POST", "/prometheus/config/v1/rules/ns1", ruleGroup, 202},
		"DELETE /prometheus/config/v1/rules/{namespace}":             {"DELETE", "/prometheus/config/v1/rules/ns1", nil, 202},
		"GET /prometheus/config/v1/rules/{namespace}/{groupName}":    {"GET", "/prometheus/config/v1/rules/ns1/g", nil, 404},
		"DELETE /prometheus/config/v1/rules/{namespace}/{groupName}": {"DELETE", "/prometheus/config/v1/rules/ns1/g", nil, 404},
		"/prometheus/api/v1/":                                        {"GET", "/prometheus" + query, nil, 200},
		"GET /prometheus/api/v1/rules":                               {"GET", "/prometheus/api/v1/rules", nil, 200},
		"GET /prometheus/api/v1/alerts":                              {"GET", "/prometheus/api/v1/alerts", nil, 200},
		// The Alertmanager's configuration API, in registration order:
		// none yet, one set, deleted; then a tenant's API v2 (the
		// fallback configuration's status).
		"GET /api/v1/alerts":    {"GET", "/api/v1/alerts", nil, 404},
		"POST /api/v1/alerts":   {"POST", "/api/v1/alerts", amConfig, 201},
		"DELETE /api/v1/alerts": {"DELETE", "/api/v1/alerts", nil, 200},
		"/alertmanager/":        {"GET", "/alertmanager/api/v2/status", nil, 200},
		// Deletion: an admin token with the tenant, which none of the
		// matrix's tokens is (TestDeleteHTTP deletes).
		"POST /api/v1/admin/tsdb/delete_series":               {"POST", "/api/v1/admin/tsdb/delete_series?match[]=" + alphaMetric, nil, 204},
		"PUT /api/v1/admin/tsdb/delete_series":                {"PUT", "/api/v1/admin/tsdb/delete_series?match[]=" + alphaMetric, nil, 204},
		"POST /api/v1/admin/tsdb/clean_tombstones":            {"POST", "/api/v1/admin/tsdb/clean_tombstones", nil, 204},
		"PUT /api/v1/admin/tsdb/clean_tombstones":             {"PUT", "/api/v1/admin/tsdb/clean_tombstones", nil, 204},
		"POST /prometheus/api/v1/admin/tsdb/delete_series":    {"POST", "/prometheus/api/v1/admin/tsdb/delete_series?match[]=" + alphaMetric, nil, 204},
		"PUT /prometheus/api/v1/admin/tsdb/delete_series":     {"PUT", "/prometheus/api/v1/admin/tsdb/delete_series?match[]=" + alphaMetric, nil, 204},
		"POST /prometheus/api/v1/admin/tsdb/clean_tombstones": {"POST", "/prometheus/api/v1/admin/tsdb/clean_tombstones", nil, 204},
		"PUT /prometheus/api/v1/admin/tsdb/clean_tombstones":  {"PUT", "/prometheus/api/v1/admin/tsdb/clean_tombstones", nil, 204},
		"POST /purger/delete_tenant":                          {"POST", "/purger/delete_tenant", nil, 200},
		"GET /purger/delete_tenant_status":                    {"GET", "/purger/delete_tenant_status", nil, 200},
	}
}

// authDo sends a request with the token (none if "") and tenant header
// (none if ""), and returns the status and body.
func authDo(t *testing.T, base, method, path, token, org string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if org != "" {
		req.Header.Set("X-Scope-OrgID", org)
	}
	switch {
	case body != nil && strings.Contains(path, "/import/"):
		req.Header.Set("Content-Type", "text/plain")
	case body != nil:
		req.Header.Set("Content-Type", "application/x-protobuf")
		if !strings.Contains(path, "/otlp/") {
			req.Header.Set("Content-Encoding", "snappy")
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestAuthRoutes walks every route install registered (h.List(), not a
// list of ours) with no token, a token of another tenant, and a token of
// each scope, and requires exactly the status the route's need gives,
// and no body with alpha's name or data for a request that may not read
// alpha.
func TestAuthRoutes(t *testing.T) {
	path, tokens := writeAuthFile(t, matrixEntries())
	h, base := startAuthNode(t, path)
	// alpha's data, for the answers to leak.
	if code, body := authDo(t, base, "POST", "/api/v1/push", tokens["write"], alpha, pushBody(t, alphaMetric, 5000)); code != 204 {
		t.Fatalf("push as alpha: %d %s", code, body)
	}
	if code, body := authDo(t, base, "GET", "/api/v1/query?query="+alphaMetric+"&time=10", tokens["read"], alpha, nil); code != 200 || !strings.Contains(body, alphaMetric) {
		t.Fatalf("alpha cannot read its data: %d %s", code, body)
	}
	samples := sampleRequests(t)
	if len(h.List()) < len(samples) {
		t.Fatalf("%d routes registered, fewer than the %d sample requests", len(h.List()), len(samples))
	}
	type cred struct {
		name, token, org string
		readsAlpha       bool // may see alpha's name and data
		grantsAlpha      bool // alpha is one of the token's tenants, which whoami names
	}
	creds := []cred{{name: "no token"}, {name: "wrong tenant", token: tokens["wrong-tenant"], org: alpha}}
	for _, s := range auth.Scopes {
		creds = append(creds, cred{name: "scope " + string(s), token: tokens[string(s)], org: alpha,
			readsAlpha:  s == auth.ScopeRead || s == auth.ScopeMetrics || s == auth.ScopeAdmin,
			grantsAlpha: s != auth.ScopeMetrics && s != auth.ScopeAdmin})
	}
	for _, rt := range h.List() {
		req, ok := samples[rt.Pattern]
		if !ok {
			t.Errorf("route %q (%s) has no sample request in sampleRequests", rt.Pattern, rt.Need)
			continue
		}
		for _, c := range creds {
			t.Run(rt.Pattern+"/"+c.name, func(t *testing.T) {
				want := wantStatus(rt.Need, c.name, req.code)
				code, body := authDo(t, base, req.method, req.path, c.token, c.org, req.body)
				if code != want {
					t.Fatalf("%s %s as %s = %d, want %d: %s", req.method, req.path, c.name, code, want, truncate([]byte(body)))
				}
				ownName := rt.Need == auth.Token && c.grantsAlpha
				if !c.readsAlpha && ((strings.Contains(body, alpha) && !ownName) || strings.Contains(body, alphaMetric)) {
					t.Fatalf("%s %s as %s: the answer holds alpha's name or data:\n%s", req.method, req.path, c.name, truncate([]byte(body)))
				}
			})
		}
	}
	// Federation reaches only tenants the token grants.
	for _, tc := range []struct {
		token, org string
		want       int
	}{
		{tokens["wrong-tenant"], bravo + "|" + alpha, 403},
		{tokens["read"], alpha + "|" + bravo, 403},
		{tokens["read"], alpha + "|" + alpha, 200},
	} {
		code, body := authDo(t, base, "GET", "/api/v1/query?query=count(up)", tc.token, tc.org, nil)
		if code != tc.want || (code != 200 && strings.Contains(body, alpha)) {
			t.Errorf("query as %s = %d %s, want %d", tc.org, code, body, tc.want)
		}
	}
	// bravo's own reads see nothing of alpha.
	for _, p := range []string{"/api/v1/query?query={__name__=~\".%2B\"}", "/api/v1/labels", "/api/v1/label/__name__/values", "/api/v1/series?match[]={__name__=~\".%2B\"}"} {
		code, body := authDo(t, base, "GET", p, tokens["wrong-tenant"], bravo, nil)
		if code != 200 || strings.Contains(body, alphaMetric) {
			t.Errorf("GET %s as bravo = %d %s", p, code, body)
		}
	}
}

// wantStatus is the status a request to a route that needs n gets with
// credential cred, if code is what an allowed request gets.
func wantStatus(n auth.Need, cred string, code int) int {
	if n == auth.Public {
		return code
	}
	var allowed bool
	switch cred {
	case "no token":
		return http.StatusUnauthorized
	}
	if n == auth.Token {
		return code // any valid token
	}
	switch cred {
	case "wrong tenant":
		allowed = false // a tenant scope on bravo, asking for alpha; no admin
	case "scope write":
		allowed = n == auth.Write
	case "scope read":
		allowed = n == auth.Read
	case "scope metrics":
		allowed = n == auth.Metrics
	case "scope rules":
		allowed = n == auth.Rules
	case "scope alertmanager":
		allowed = n == auth.Alertmanager
	case "scope admin":
		allowed = n == auth.Admin || n == auth.Metrics
	}
	if !allowed {
		return http.StatusForbidden
	}
	return code
}

// TestAuthRunFile starts run with -auth.config-file as a user would:
// a token added to the file with 'myelin token create -file' works once
// the file is polled, a broken file keeps the last good keys and says so
// on /metrics and in the log, and the default failed-attempt limit
// answers 429 after 20 failures.
func TestAuthRunFile(t *testing.T) {
	path, tokens := writeAuthFile(t, []auth.Entry{
		{Name: "ops", Scopes: []auth.Scope{auth.ScopeAdmin}},
		{Name: "a", Tenants: []string{"a"}, Scopes: []auth.Scope{auth.ScopeRead, auth.ScopeWrite}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newLogWatcher()
	done := make(chan error, 1)
	argv := []string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0",
		"-auth.config-file", path, "-auth.config-reload-interval", "50ms"}
	goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
	addr := stderr.addr(t, done)
	waitReady(t, addr)
	base := "http://" + addr
	metric := func(name string) string {
		_, body := authDo(t, base, "GET", "/metrics", tokens["ops"], "", nil)
		for line := range strings.Lines(body) {
			if strings.HasPrefix(line, name+" ") {
				return strings.TrimSpace(strings.TrimPrefix(line, name))
			}
		}
		return ""
	}
	if code, _ := authDo(t, base, "POST", "/api/v1/push", tokens["a"], "", pushBody(t, "up", 1000)); code != 204 {
		t.Fatalf("push with the tenant from the token: %d", code)
	}

	// Add a token with `myelin token create -file`, as the README says.
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"token", "create", "-tenant", "b", "-scopes", "read", "-file", path}, &out, &errOut); err != nil {
		t.Fatalf("token create: %v %s", err, errOut.String())
	}
	tokB := strings.TrimSpace(out.String())
	// Wait on /metrics, not by trying the token: each 401 would count
	// against the failed-attempt limit tested below.
	waitFor(t, 10*time.Second, "a reload", func() bool {
		return metric(`myelin_auth_config_reloads_total{result="success"}`) == "1"
	})
	if code, _ := authDo(t, base, "GET", "/api/v1/labels", tokB, "", nil); code != 200 {
		t.Fatalf("the new token after the reload: %d", code)
	}

	// A broken file: the old keys stay, /metrics and the log say so.
	if err := os.WriteFile(path, []byte("tokens:\n  - name: x\n    hash: sha256:zz\n    scopes: [admin]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the failed reload on /metrics", func() bool {
		return metric("myelin_auth_config_last_reload_successful") == "0"
	})
	if code, _ := authDo(t, base, "GET", "/api/v1/labels", tokB, "", nil); code != 200 {
		t.Fatalf("after a broken file the last good keys are kept: %d", code)
	}
	if !strings.Contains(stderr.String(), "auth config not loaded; the last good one stays in use") {
		t.Fatal("the log does not say why the auth config was not loaded")
	}

	// The default limit: 20 failed attempts, then 429 for everything.
	for i := range 20 {
		if code, _ := authDo(t, base, "GET", "/api/v1/labels", fmt.Sprint("guess", i), "", nil); code != 401 {
			t.Fatalf("attempt %d: %d, want 401", i, code)
		}
	}
	if code, _ := authDo(t, base, "GET", "/api/v1/labels", tokens["a"], "", nil); code != 429 {
		t.Fatalf("after 20 failed attempts: %d, want 429", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	poll(t, timeout, 20*time.Millisecond, what, func() (bool, string) { return cond(), "" })
}

// poll calls cond every interval until it holds, failing the test with
// cond's last message after timeout.
func poll(t *testing.T, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if msg == "" {
				t.Fatalf("no %s within %v", what, timeout)
			}
			t.Fatalf("no %s within %v: %s", what, timeout, msg)
		}
		time.Sleep(interval)
	}
}

// otlpGaugeBody is an OTLP ExportMetricsServiceRequest of one gauge
// sample, in protobuf.
func otlpGaugeBody(t *testing.T, name string, tsMillis int64) []byte {
	t.Helper()
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.Timestamp(tsMillis * 1e6))
	dp.SetDoubleValue(1)
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
