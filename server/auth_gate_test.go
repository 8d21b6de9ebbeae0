package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/auth"
	"github.com/myelindb/myelin/server/tenant"
)

func testGate(t *testing.T, reg prometheus.Registerer, now func() time.Time) *AuthGate {
	t.Helper()
	k, err := auth.NewKeys([]auth.Entry{
		{Name: "a-rw", Hash: auth.Hash("tok-a"), Tenants: []string{"a"}, Scopes: []auth.Scope{auth.ScopeRead, auth.ScopeWrite}},
		{Name: "ab-r", Hash: auth.Hash("tok-ab"), Tenants: []string{"a", "b"}, Scopes: []auth.Scope{auth.ScopeRead}},
		{Name: "ops", Hash: auth.Hash("tok-ops"), Scopes: []auth.Scope{auth.ScopeAdmin}},
	})
	require.NoError(t, err)
	return NewAuthGate(AuthOptions{Keys: k, Limiter: auth.LimiterOptions{Burst: 3, Refill: time.Minute}, Now: now, Registerer: reg})
}

// echo answers with the tenant header and Authorization it got.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "tenant="+strings.Join(r.Header.Values(tenant.Header), ",")+" authorization="+r.Header.Get("Authorization"))
})

func TestAuthGate(t *testing.T) {
	g := testGate(t, nil, nil)
	for _, tc := range []struct {
		name, auth, org string
		need            auth.Need
		wantCode        int
		wantBody        string
	}{
		{"public", "", "", auth.Public, 200, "tenant= "},
		{"public keeps headers", "Bearer x", "a", auth.Public, 200, "tenant=a authorization=Bearer x"},
		{"no token", "", "a", auth.Write, 401, "no credentials"},
		{"bad token", "Bearer nope", "a", auth.Write, 401, "bad credentials"},
		{"write", "Bearer tok-a", "a", auth.Write, 200, "tenant=a authorization="},
		{"write, tenant from token", "Bearer tok-a", "", auth.Write, 200, "tenant=a authorization="},
		{"write, basic", "Basic " + "dTp0b2stYQ==", "", auth.Write, 200, "tenant=a authorization="},
		{"write other tenant", "Bearer tok-a", "b", auth.Write, 403, "does not grant the tenant"},
		{"write without scope", "Bearer tok-ab", "a", auth.Write, 403, "lacks the scope"},
		{"read federated", "Bearer tok-ab", "b|a", auth.Read, 200, "tenant=a|b "},
		{"read federated beyond", "Bearer tok-a", "a|b", auth.Read, 403, `"errorType":"forbidden"`},
		{"read, token of two, no header", "Bearer tok-ab", "", auth.Read, 401, "no org id"},
		{"read bad tenant", "Bearer tok-ab", "a/", auth.Read, 400, `"errorType":"bad_data"`},
		{"admin", "Bearer tok-ops", "", auth.Admin, 200, "tenant= "},
		{"admin ignores tenant", "Bearer tok-ops", "zzz", auth.Admin, 200, "tenant=zzz "},
		{"admin by tenant token", "Bearer tok-a", "", auth.Admin, 403, "lacks the scope"},
		{"metrics by admin", "Bearer tok-ops", "", auth.Metrics, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x", nil)
			r.RemoteAddr = "10.1.0.1:1" // two failed attempts, under the burst of 3
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if tc.org != "" {
				r.Header.Set(tenant.Header, tc.org)
			}
			w := httptest.NewRecorder()
			g.Wrap(tc.need, echo).ServeHTTP(w, r)
			require.Equal(t, tc.wantCode, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), tc.wantBody)
			if tc.wantCode == 401 && !strings.Contains(tc.wantBody, "org id") {
				require.Equal(t, []string{`Bearer realm="myelin"`, `Basic realm="myelin", charset="UTF-8"`}, w.Header().Values("WWW-Authenticate"))
			}
			if tc.wantCode/100 != 2 {
				require.NotContains(t, w.Body.String(), `"b"`)
				require.NotContains(t, w.Body.String(), "a-rw", "no token name in answers")
			}
		})
	}
}

// Failed attempts are limited per address: past the burst every request
// of the address is 429, valid ones too, until it refills; other
// addresses are not affected; all of it is counted.
func TestAuthGateRateLimit(t *testing.T) {
	now := time.Unix(0, 0)
	reg := prometheus.NewRegistry()
	g := testGate(t, reg, func() time.Time { return now })
	h := g.Wrap(auth.Write, echo)
	do := func(addr, token string) int {
		r := httptest.NewRequest("POST", "/api/v1/push", nil)
		r.RemoteAddr = addr
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == 429 {
			require.Equal(t, "60", w.Header().Get("Retry-After"))
		}
		return w.Code
	}
	require.Equal(t, 401, do("10.0.0.1:1", "guess1"))
	require.Equal(t, 401, do("10.0.0.1:2", ""))
	require.Equal(t, 200, do("10.0.0.1:3", "tok-a"), "a success does not count")
	require.Equal(t, 401, do("10.0.0.1:4", "guess2"))
	require.Equal(t, 429, do("10.0.0.1:5", "guess3"))
	require.Equal(t, 429, do("10.0.0.1:6", "tok-a"), "a blocked address is not told whether a token is good")
	require.Equal(t, 200, do("10.0.0.2:1", "tok-a"))
	now = now.Add(time.Minute)
	require.Equal(t, 200, do("10.0.0.1:7", "tok-a"))
	require.Equal(t, 401, do("10.0.0.1:8", "guess4"))
	require.Equal(t, 429, do("10.0.0.1:9", "guess5"))

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP myelin_auth_failures_total Requests refused by auth, per reason: no_credentials, bad_credentials (401), scope, tenant (403), bad_tenant (400), rate_limited (429).
# TYPE myelin_auth_failures_total counter
myelin_auth_failures_total{reason="bad_credentials"} 3
myelin_auth_failures_total{reason="bad_tenant"} 0
myelin_auth_failures_total{reason="no_credentials"} 1
myelin_auth_failures_total{reason="rate_limited"} 3
myelin_auth_failures_total{reason="scope"} 0
myelin_auth_failures_total{reason="tenant"} 0
# HELP myelin_auth_tokens Tokens in the auth config in use.
# TYPE myelin_auth_tokens gauge
myelin_auth_tokens 3
`)))
}

func TestAuthGateOff(t *testing.T) {
	g := NewAuthGate(AuthOptions{})
	require.False(t, g.On())
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "Bearer whatever")
	w := httptest.NewRecorder()
	g.Wrap(auth.Admin, echo).ServeHTTP(w, r)
	require.Equal(t, 200, w.Code)
	require.Contains(t, w.Body.String(), "authorization=Bearer whatever")
	require.Panics(t, func() { g.SetKeys(nil) })
}
