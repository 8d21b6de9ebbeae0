package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/myelindb/myelin/server/tenant"
)

// Scope names what a token may do.
type Scope string

// The scopes (docs/design.md "Auth" has what each allows).
const (
	// ScopeWrite: remote write into the token's tenants.
	ScopeWrite Scope = "write"
	// ScopeRead: the query API over the token's tenants, several at once
	// (tenant federation).
	ScopeRead Scope = "read"
	// ScopeRules: the token's tenants' rule groups (the ruler's
	// configuration API).
	ScopeRules Scope = "rules"
	// ScopeAlertmanager: the token's tenants' Alertmanager (its
	// configuration API and its API v2).
	ScopeAlertmanager Scope = "alertmanager"
	// ScopeMetrics: the node's own /metrics, which name tenants. For a
	// Prometheus that scrapes Myelin, without the rest of admin.
	ScopeMetrics Scope = "metrics"
	// ScopeAdmin: every operator endpoint (status pages, /config,
	// /metrics, pprof, drain, Raft status and data), across tenants;
	// with a tenant of the token, the deletion of its data (TenantAdmin).
	ScopeAdmin Scope = "admin"
)

// Scopes lists every scope, in the order docs and errors give them.
var Scopes = []Scope{ScopeWrite, ScopeRead, ScopeRules, ScopeAlertmanager, ScopeMetrics, ScopeAdmin}

// tenantScope reports whether a scope acts on tenants (a token with it
// names at least one).
func tenantScope(s Scope) bool {
	switch s {
	case ScopeWrite, ScopeRead, ScopeRules, ScopeAlertmanager:
		return true
	}
	return false
}

// Entry is one token of the config file, as cmd reads it from YAML.
type Entry struct {
	// Name identifies the token in logs; unique in a file.
	Name string `yaml:"name"`
	// Hash is Hash(token); the file never holds tokens.
	Hash string `yaml:"hash"`
	// Tenants the token acts on, for its tenant scopes.
	Tenants []string `yaml:"tenants,omitempty,flow"`
	// Scopes: what the token may do.
	Scopes []Scope `yaml:"scopes,flow"`
}

// Principal is who a request authenticated as: a token's entry.
// Immutable.
type Principal struct {
	Name    string
	Tenants []string // sorted, distinct
	scopes  []Scope
}

// Can reports whether the principal holds scope s.
func (p *Principal) Can(s Scope) bool { return slices.Contains(p.scopes, s) }

// Scopes returns the principal's scopes in the order of Scopes; the slice
// is the caller's.
func (p *Principal) Scopes() []Scope {
	var out []Scope
	for _, s := range Scopes {
		if p.Can(s) {
			out = append(out, s)
		}
	}
	return out
}

type principalKey struct{}

// NewContext returns ctx carrying p, the principal a request
// authenticated as (the server root's AuthGate sets it).
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal NewContext put in ctx; false if
// none (auth off, or a public route).
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// Keys maps token hashes to principals. Immutable after NewKeys, so one
// value serves every request until a reload replaces it.
type Keys struct {
	byHash map[[sha256.Size]byte]*Principal
}

// NewKeys checks entries and returns their keys. It reports every
// problem at once: names unique and not empty, hashes well formed and
// unique, scopes known, tenants valid, a tenant scope only with tenants.
func NewKeys(entries []Entry) (*Keys, error) {
	k := &Keys{byHash: make(map[[sha256.Size]byte]*Principal, len(entries))}
	var errs []error
	names := map[string]bool{}
	for i, e := range entries {
		where := fmt.Sprintf("token %d (%q)", i+1, e.Name)
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
		}
		switch {
		case e.Name == "":
			fail("no name")
		case names[e.Name]:
			fail("name used twice")
		}
		names[e.Name] = true
		sum, err := parseHash(e.Hash)
		if err != nil {
			fail("%v", err)
		} else if k.byHash[sum] != nil {
			fail("same hash as token %q", k.byHash[sum].Name)
		}
		p := &Principal{Name: e.Name, Tenants: slices.Sorted(slices.Values(e.Tenants))}
		p.Tenants = slices.Compact(p.Tenants)
		for _, t := range p.Tenants {
			if err := tenant.Validate(t); err != nil {
				fail("%v", err)
			}
		}
		if len(e.Scopes) == 0 {
			fail("no scopes: want some of %s", scopeList())
		}
		for _, s := range e.Scopes {
			switch {
			case !slices.Contains(Scopes, s):
				fail("unknown scope %q: want some of %s", s, scopeList())
			case tenantScope(s) && len(p.Tenants) == 0:
				fail("scope %q acts on tenants, and the token names none", s)
			case !slices.Contains(p.scopes, s):
				p.scopes = append(p.scopes, s)
			}
		}
		if err == nil {
			k.byHash[sum] = p
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return k, nil
}

func scopeList() string {
	var s []string
	for _, sc := range Scopes {
		s = append(s, string(sc))
	}
	return strings.Join(s, ", ")
}

// Len is the number of tokens.
func (k *Keys) Len() int { return len(k.byHash) }

var (
	// ErrNoCredentials: the request carries no Authorization header.
	ErrNoCredentials = errors.New("auth: no credentials: send Authorization: Bearer <token> (or Basic with the token as password)")
	// ErrBadCredentials: the credentials are malformed or no token's.
	ErrBadCredentials = errors.New("auth: bad credentials")
	// ErrScope: the token lacks the scope the route needs.
	ErrScope = errors.New("auth: the token lacks the scope this endpoint needs")
	// ErrTenant: the request names a tenant the token does not grant.
	ErrTenant = errors.New("auth: the token does not grant the tenant named in " + tenant.Header)
)

// Authenticate returns the principal of a request's Authorization
// header: "Bearer <token>", or "Basic" with the token as the password
// (the user name is not read: tools that only do Basic make one up).
// ErrNoCredentials without the header; ErrBadCredentials (wrapped) for
// anything else that is not a token of k, several headers included.
//
// The token is looked up by its SHA-256 in a map. The lookup's timing
// may tell a caller about the hash of what it sent, which does not help
// it find a token's preimage, so no constant-time comparison is needed.
func (k *Keys) Authenticate(h http.Header) (*Principal, error) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return nil, ErrNoCredentials
	case 1:
	default:
		return nil, fmt.Errorf("%w: %d Authorization headers", ErrBadCredentials, len(vals))
	}
	scheme, rest, _ := strings.Cut(vals[0], " ")
	rest = strings.TrimSpace(rest)
	var token string
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		token = rest
	case strings.EqualFold(scheme, "Basic"):
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: Basic credentials are not base64", ErrBadCredentials)
		}
		_, pass, ok := strings.Cut(string(b), ":")
		if !ok {
			return nil, fmt.Errorf("%w: Basic credentials without ':'", ErrBadCredentials)
		}
		token = pass
	default:
		return nil, fmt.Errorf("%w: scheme %q: want Bearer or Basic", ErrBadCredentials, abbrev(scheme))
	}
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrBadCredentials)
	}
	p := k.byHash[sha256.Sum256([]byte(token))]
	if p == nil {
		return nil, fmt.Errorf("%w: unknown token", ErrBadCredentials)
	}
	return p, nil
}

// Need is what a route asks of a request.
type Need uint8

const (
	// Public: anyone, no credentials read (/ready, the landing page).
	Public Need = iota
	// Write: ScopeWrite and one tenant of the token.
	Write
	// Read: ScopeRead and one or several tenants of the token.
	Read
	// Metrics: ScopeMetrics or ScopeAdmin.
	Metrics
	// Admin: ScopeAdmin.
	Admin
	// Token: any valid token, whatever its scopes; no tenant. Only for
	// what a token may learn about itself (GET /api/v1/auth/whoami): every
	// other route names a scope.
	Token
	// Rules: ScopeRules and one tenant of the token (the ruler's rule
	// configuration API).
	Rules
	// Alertmanager: ScopeAlertmanager and one tenant of the token (the
	// Alertmanager's configuration API and API v2).
	Alertmanager
	// TenantAdmin: ScopeAdmin and one tenant of the token, as Write: an
	// administrative change of one tenant's data (deleting series, or the
	// tenant). The admin scope alone, with no tenant granted, does not
	// reach a tenant's data.
	TenantAdmin
)

func (n Need) String() string {
	switch n {
	case Public:
		return "public"
	case Write:
		return "write"
	case Read:
		return "read"
	case Metrics:
		return "metrics"
	case Admin:
		return "admin"
	case Token:
		return "token"
	case Rules:
		return "rules"
	case Alertmanager:
		return "alertmanager"
	case TenantAdmin:
		return "tenant admin"
	}
	return fmt.Sprintf("Need(%d)", uint8(n))
}

// Allow decides a request of p to a route that needs n, whose tenant
// headers are hdr (http.Header.Values(tenant.Header)). It returns the
// tenant ID the request acts as, in normal form ("" for a route without
// tenants):
//
//  1. ErrScope if p lacks the scope (Metrics: metrics or admin; Token:
//     none needed);
//  2. for Write, Rules, Alertmanager, TenantAdmin and Read:
//     tenant.ErrManyHeaders for several headers; without a header, the
//     token's tenant if it has exactly one, else tenant.ErrMissing; with
//     one, the tenant (Write, Rules, Alertmanager, TenantAdmin) or tenants (Read,
//     "a|b") it names, which must be valid (tenant's errors) and each
//     granted to p (ErrTenant).
func (p *Principal) Allow(n Need, hdr []string) (string, error) {
	var ok bool
	switch n {
	case Public, Token:
		return "", nil
	case Write:
		ok = p.Can(ScopeWrite)
	case Read:
		ok = p.Can(ScopeRead)
	case Metrics:
		ok = p.Can(ScopeMetrics) || p.Can(ScopeAdmin)
	case Admin, TenantAdmin:
		ok = p.Can(ScopeAdmin)
	case Rules:
		ok = p.Can(ScopeRules)
	case Alertmanager:
		ok = p.Can(ScopeAlertmanager)
	default:
		panic(fmt.Sprintf("BUG: unknown need %d", n))
	}
	if !ok {
		return "", fmt.Errorf("%w (%s)", ErrScope, n)
	}
	if n != Write && n != Read && n != Rules && n != Alertmanager && n != TenantAdmin {
		return "", nil
	}
	switch {
	case len(hdr) > 1:
		return "", fmt.Errorf("%w: %d of them; send exactly one", tenant.ErrManyHeaders, len(hdr))
	case len(hdr) == 0 || hdr[0] == "":
		if len(p.Tenants) == 1 {
			return p.Tenants[0], nil
		}
		return "", tenant.ErrMissing
	}
	var ids []string
	if n != Read {
		if err := tenant.Validate(hdr[0]); err != nil {
			return "", err
		}
		ids = hdr[:1]
	} else {
		var err error
		if ids, err = tenant.ParseSet(hdr[0]); err != nil {
			return "", err
		}
	}
	for _, id := range ids {
		if _, found := slices.BinarySearch(p.Tenants, id); !found {
			return "", ErrTenant
		}
	}
	return tenant.Join(ids), nil
}
