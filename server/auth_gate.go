package server

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/server/auth"
	"github.com/myelindb/myelin/server/tenant"
)

// AuthOptions configure an AuthGate.
type AuthOptions struct {
	// Keys are the tokens. Nil turns auth off: Wrap returns every handler
	// as it is, and the handlers read the tenant header themselves.
	Keys    *auth.Keys
	Limiter auth.LimiterOptions
	// Now is the clock of the failed-attempt limiter; nil means time.Now.
	Now        func() time.Time
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// AuthGate stands in front of every route with auth on (server/auth's
// caller protocol): it answers 429 to a client over its failed
// attempts, 401 without a known token, 403 for a scope or tenant the
// token lacks, and otherwise hands the request on with the tenant header
// set to the tenant(s) it acts as and the Authorization header removed,
// so that the handlers behind, which read the tenant header, need not
// know about tokens.
//
// The keys are swapped whole on reload (SetKeys); a request uses the
// keys it found when it arrived.
type AuthGate struct {
	on      bool // immutable
	keys    atomic.Pointer[auth.Keys]
	limiter *auth.Limiter
	refill  time.Duration
	now     func() time.Time
	logger  *slog.Logger
	// failures: reason is no_credentials, bad_credentials, scope,
	// tenant, bad_tenant or rate_limited.
	failures *prometheus.CounterVec
	tokens   prometheus.Gauge
}

// NewAuthGate returns a gate with opts.
func NewAuthGate(opts AuthOptions) *AuthGate {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	g := &AuthGate{
		on:      opts.Keys != nil,
		limiter: auth.NewLimiter(opts.Limiter),
		refill:  opts.Limiter.Refill,
		now:     opts.Now,
		logger:  opts.Logger,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_auth_failures_total",
			Help: "Requests refused by auth, per reason: no_credentials, bad_credentials (401), scope, tenant (403), bad_tenant (400), rate_limited (429).",
		}, []string{"reason"}),
		tokens: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myelin_auth_tokens",
			Help: "Tokens in the auth config in use.",
		}),
	}
	if g.refill == 0 {
		g.refill = time.Second
	}
	if g.on {
		for _, r := range []string{"no_credentials", "bad_credentials", "scope", "tenant", "bad_tenant", "rate_limited"} {
			g.failures.WithLabelValues(r)
		}
		g.SetKeys(opts.Keys)
		if opts.Registerer != nil {
			opts.Registerer.MustRegister(g.failures, g.tokens)
		}
	}
	return g
}

// On reports whether auth is on.
func (g *AuthGate) On() bool { return g.on }

// SetKeys replaces the keys (a reload of the config file). It panics if
// auth is off or k is nil: auth is turned on or off by a restart only.
func (g *AuthGate) SetKeys(k *auth.Keys) {
	if !g.on || k == nil {
		panic("BUG: SetKeys on a gate with auth off, or nil keys")
	}
	g.keys.Store(k)
	g.tokens.Set(float64(k.Len()))
}

// Wrap returns h behind the gate for a route that needs n; h itself with
// auth off or for a Public route.
func (g *AuthGate) Wrap(n auth.Need, h http.Handler) http.Handler {
	if !g.on || n == auth.Public {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, org, ok := g.check(w, r, n)
		if !ok {
			return
		}
		r2 := r.Clone(auth.NewContext(r.Context(), p))
		r2.Header.Del("Authorization")
		if org != "" {
			r2.Header.Set(tenant.Header, org)
		}
		h.ServeHTTP(w, r2)
	})
}

// check runs server/auth's caller protocol on r and returns who sent it;
// it answers and returns false for a request refused.
func (g *AuthGate) check(w http.ResponseWriter, r *http.Request, n auth.Need) (p *auth.Principal, org string, ok bool) {
	client, now := auth.ClientKey(r.RemoteAddr), g.now()
	if g.limiter.Blocked(client, now) {
		g.failures.WithLabelValues("rate_limited").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(g.refill.Seconds()))))
		g.refuse(w, n, http.StatusTooManyRequests, "auth: too many failed attempts from this address; try again later")
		return nil, "", false
	}
	p, err := g.keys.Load().Authenticate(r.Header)
	if err != nil {
		reason := "bad_credentials"
		if errors.Is(err, auth.ErrNoCredentials) {
			reason = "no_credentials"
		}
		g.failures.WithLabelValues(reason).Inc()
		if g.limiter.Fail(client, now) {
			g.logger.Warn("auth: client blocked after repeated failed attempts", "client", client, "path", r.URL.Path, "err", err)
		} else {
			g.logger.Debug("auth: refused", "client", client, "path", r.URL.Path, "err", err)
		}
		w.Header().Add("WWW-Authenticate", `Bearer realm="myelin"`)
		w.Header().Add("WWW-Authenticate", `Basic realm="myelin", charset="UTF-8"`)
		g.refuse(w, n, http.StatusUnauthorized, err.Error())
		return nil, "", false
	}
	org, err = p.Allow(n, r.Header.Values(tenant.Header))
	if err != nil {
		code, reason, msg := http.StatusBadRequest, "bad_tenant", err.Error()
		switch {
		case errors.Is(err, auth.ErrScope):
			code, reason = http.StatusForbidden, "scope"
		case errors.Is(err, auth.ErrTenant):
			code, reason = http.StatusForbidden, "tenant"
		case errors.Is(err, tenant.ErrMissing):
			code, msg = http.StatusUnauthorized, fmt.Sprintf("%s; the token grants %d tenants: name one", noOrgID, len(p.Tenants))
		}
		g.failures.WithLabelValues(reason).Inc()
		g.logger.Debug("auth: refused", "token", p.Name, "client", client, "path", r.URL.Path, "err", err)
		g.refuse(w, n, code, msg)
		return nil, "", false
	}
	return p, org, true
}

// refuse answers a refused request: in the Prometheus API's JSON shape
// on the query API and whoami, as text elsewhere.
func (g *AuthGate) refuse(w http.ResponseWriter, n auth.Need, code int, msg string) {
	if n == auth.Read || n == auth.Token {
		writeAPIError(w, code, apiErrorType(code), msg)
		return
	}
	http.Error(w, msg, code)
}
