package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/tenant"
)

// TestTokenFormat pins the token and hash formats: a change breaks every
// config file and every token handed out.
func TestTokenFormat(t *testing.T) {
	tok, err := NewToken(bytes.NewReader(bytes.Repeat([]byte{0xab}, 32)))
	require.NoError(t, err)
	require.Equal(t, "myelin_"+strings.Repeat("ab", 32), tok)
	require.Equal(t, "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb", Hash("a"))
	_, err = NewToken(bytes.NewReader(nil))
	require.Error(t, err)
	a, err := NewToken(nil)
	require.NoError(t, err)
	b, err := NewToken(nil)
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	require.Len(t, a, 71)
}

func TestNewKeys(t *testing.T) {
	h := Hash("t1")
	for _, tc := range []struct {
		name    string
		entries []Entry
		wantErr []string
	}{
		{"ok", []Entry{
			{Name: "w", Hash: h, Tenants: []string{"a"}, Scopes: []Scope{ScopeWrite}},
			{Name: "ops", Hash: Hash("t2"), Scopes: []Scope{ScopeAdmin, ScopeMetrics}},
		}, nil},
		{"empty file", nil, nil},
		{"every problem at once", []Entry{
			{Name: "", Hash: h, Tenants: []string{"a"}, Scopes: []Scope{ScopeRead}},
			{Name: "x", Hash: h, Tenants: []string{"a"}, Scopes: []Scope{ScopeRead}},
			{Name: "x", Hash: "md5:00", Scopes: []Scope{ScopeAdmin}},
			{Name: "y", Hash: "myelin_abc", Scopes: []Scope{"root"}},
			{Name: "z", Hash: Hash("t3"), Scopes: []Scope{ScopeWrite}},
			{Name: "v", Hash: Hash("t4"), Tenants: []string{"a|b"}, Scopes: []Scope{ScopeRead}},
			{Name: "u", Hash: Hash("t5"), Tenants: []string{"a"}},
			{Name: "s", Hash: "sha256:abc", Scopes: []Scope{ScopeAdmin}},
		}, []string{
			`token 1 (""): no name`,
			`token 2 ("x"): same hash as token ""`,
			`token 3 ("x"): name used twice`,
			`token 3 ("x"): hash "md5:00": want "sha256:"`,
			`token 4 ("y"): hash "myelin_... (a token, not its hash`,
			`token 4 ("y"): unknown scope "root"`,
			`token 5 ("z"): scope "write" acts on tenants, and the token names none`,
			`token 6 ("v"): tenant: ID "a|b" names several tenants`,
			`token 7 ("u"): no scopes`,
			`token 8 ("s"): hash "sha256:abc": want 64 hex digits`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKeys(tc.entries)
			if tc.wantErr == nil {
				require.NoError(t, err)
				require.Equal(t, len(tc.entries), k.Len())
				return
			}
			require.Error(t, err)
			for _, w := range tc.wantErr {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "myelin_abc", "a token in the file is not repeated in the log")
		})
	}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestAuthenticate(t *testing.T) {
	k, err := NewKeys([]Entry{{Name: "w", Hash: Hash("good"), Tenants: []string{"a"}, Scopes: []Scope{ScopeWrite}}})
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		auth    []string
		wantErr error
	}{
		{"bearer", []string{"Bearer good"}, nil},
		{"bearer any case", []string{"bearer  good "}, nil},
		{"basic", []string{basic("team-a", "good")}, nil},
		{"basic no user", []string{basic("", "good")}, nil},
		{"none", nil, ErrNoCredentials},
		{"unknown", []string{"Bearer bad"}, ErrBadCredentials},
		{"empty bearer", []string{"Bearer "}, ErrBadCredentials},
		{"token as basic user", []string{basic("good", "")}, ErrBadCredentials},
		{"basic not base64", []string{"Basic !!"}, ErrBadCredentials},
		{"basic without colon", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("good"))}, ErrBadCredentials},
		{"other scheme", []string{"Token good"}, ErrBadCredentials},
		{"two headers", []string{"Bearer good", "Bearer good"}, ErrBadCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, a := range tc.auth {
				h.Add("Authorization", a)
			}
			p, err := k.Authenticate(h)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.NotContains(t, err.Error(), "good")
				return
			}
			require.NoError(t, err)
			require.Equal(t, "w", p.Name)
		})
	}
}

func TestAllow(t *testing.T) {
	k, err := NewKeys([]Entry{
		{Name: "one", Hash: Hash("one"), Tenants: []string{"a"}, Scopes: []Scope{ScopeWrite, ScopeRead}},
		{Name: "two", Hash: Hash("two"), Tenants: []string{"b", "a"}, Scopes: []Scope{ScopeWrite, ScopeRead}},
		{Name: "ops", Hash: Hash("ops"), Scopes: []Scope{ScopeAdmin}},
		{Name: "scrape", Hash: Hash("scrape"), Scopes: []Scope{ScopeMetrics}},
		{Name: "ops-a", Hash: Hash("ops-a"), Tenants: []string{"a"}, Scopes: []Scope{ScopeAdmin}},
	})
	require.NoError(t, err)
	principal := func(tok string) *Principal {
		p, err := k.Authenticate(http.Header{"Authorization": {"Bearer " + tok}})
		require.NoError(t, err)
		return p
	}
	for _, tc := range []struct {
		name    string
		token   string
		need    Need
		hdr     []string
		want    string
		wantErr error
	}{
		{"public", "scrape", Public, nil, "", nil},
		{"token: any scope, no tenant", "scrape", Token, []string{"a"}, "", nil},
		{"write own tenant", "one", Write, []string{"a"}, "a", nil},
		{"write implied tenant", "one", Write, nil, "a", nil},
		{"write empty header", "one", Write, []string{""}, "a", nil},
		{"write other tenant", "one", Write, []string{"b"}, "", ErrTenant},
		{"write several", "two", Write, []string{"a|b"}, "", errors.New("names several tenants")},
		{"write missing, two tenants", "two", Write, nil, "", tenant.ErrMissing},
		{"write two headers", "one", Write, []string{"a", "a"}, "", tenant.ErrManyHeaders},
		{"write bad tenant", "one", Write, []string{"a/b"}, "", errors.New("unsupported character")},
		{"read federated", "two", Read, []string{"b|a"}, "a|b", nil},
		{"read one of two", "two", Read, []string{"b"}, "b", nil},
		{"read federated beyond token", "one", Read, []string{"a|b"}, "", ErrTenant},
		{"read missing, two tenants", "two", Read, nil, "", tenant.ErrMissing},
		{"admin route", "ops", Admin, []string{"a"}, "", nil},
		{"admin route without admin", "two", Admin, nil, "", ErrScope},
		{"admin cannot write", "ops", Write, []string{"a"}, "", ErrScope},
		{"metrics by admin", "ops", Metrics, nil, "", nil},
		{"metrics by scraper", "scrape", Metrics, nil, "", nil},
		{"scraper not admin", "scrape", Admin, nil, "", ErrScope},
		{"scraper cannot read", "scrape", Read, []string{"a"}, "", ErrScope},
		{"tenant admin own tenant", "ops-a", TenantAdmin, []string{"a"}, "a", nil},
		{"tenant admin implied tenant", "ops-a", TenantAdmin, nil, "a", nil},
		{"tenant admin other tenant", "ops-a", TenantAdmin, []string{"b"}, "", ErrTenant},
		{"tenant admin needs a granted tenant", "ops", TenantAdmin, []string{"a"}, "", ErrTenant},
		{"tenant admin needs admin", "one", TenantAdmin, []string{"a"}, "", ErrScope},
		{"tenant admin cannot write", "ops-a", Write, []string{"a"}, "", ErrScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := principal(tc.token).Allow(tc.need, tc.hdr)
			switch {
			case tc.wantErr == nil:
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
			case errors.Is(tc.wantErr, ErrTenant), errors.Is(tc.wantErr, ErrScope),
				errors.Is(tc.wantErr, tenant.ErrMissing), errors.Is(tc.wantErr, tenant.ErrManyHeaders):
				require.ErrorIs(t, err, tc.wantErr)
			default:
				require.ErrorContains(t, err, tc.wantErr.Error())
			}
			if err != nil {
				require.NotContains(t, err.Error(), `"b"`, "an error does not name a tenant the token lacks")
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := NewLimiter(LimiterOptions{Burst: 3, Refill: 10 * time.Second, MaxClients: 4})
	require.False(t, l.Blocked("x", t0))
	require.False(t, l.Fail("x", t0))
	require.False(t, l.Fail("x", t0))
	require.True(t, l.Fail("x", t0), "the third failure uses the burst")
	require.True(t, l.Blocked("x", t0))
	require.False(t, l.Blocked("y", t0), "other clients are not affected")
	require.True(t, l.Blocked("x", t0.Add(9*time.Second)))
	require.False(t, l.Blocked("x", t0.Add(10*time.Second)), "one attempt back after Refill")
	require.True(t, l.Fail("x", t0.Add(10*time.Second)))
	require.False(t, l.Blocked("x", t0.Add(10*time.Hour)))

	// Full table: refilled clients go first, then everyone.
	for _, c := range []string{"a", "b", "c"} {
		l.Fail(c, t0)
	}
	require.Equal(t, 4, l.Len())
	l.Fail("d", t0.Add(time.Minute)) // x and a..c are refilled by then
	require.Equal(t, 1, l.Len())
	for _, c := range []string{"e", "f", "g"} {
		l.Fail(c, t0.Add(time.Minute))
	}
	l.Fail("h", t0.Add(time.Minute))
	require.Equal(t, 1, l.Len(), "nobody refilled: the table starts again")
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1:5000":                 "10.0.0.1",
		"[::ffff:10.0.0.1]:5000":        "10.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:80":     "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1%eth0]:8": "2001:db8:1:2::/64",
		"[::1]:9":                       "::/64",
		"pipe":                          "pipe",
	} {
		require.Equal(t, want, ClientKey(in), in)
	}
}

func TestPrincipalContext(t *testing.T) {
	k, err := NewKeys([]Entry{{Name: "rw", Hash: Hash("rw"), Tenants: []string{"b", "a"}, Scopes: []Scope{ScopeAdmin, ScopeRead, ScopeWrite}}})
	require.NoError(t, err)
	p, err := k.Authenticate(http.Header{"Authorization": {"Bearer rw"}})
	require.NoError(t, err)
	require.Equal(t, []Scope{ScopeWrite, ScopeRead, ScopeAdmin}, p.Scopes(), "in the order of Scopes")
	require.Equal(t, []string{"a", "b"}, p.Tenants)
	_, ok := FromContext(context.Background())
	require.False(t, ok)
	got, ok := FromContext(NewContext(context.Background(), p))
	require.True(t, ok)
	require.Same(t, p, got)
}
