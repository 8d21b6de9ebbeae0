package auth

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// LimiterOptions configure a Limiter.
type LimiterOptions struct {
	// Burst: failed attempts a client may make in a row. Zero means 20.
	Burst int
	// Refill: a client earns one more attempt per Refill, up to Burst.
	// Zero means 1s.
	Refill time.Duration
	// MaxClients bounds the clients tracked at once. Zero means 100,000
	// (about 10 MB).
	MaxClients int
}

func (o LimiterOptions) withDefaults() LimiterOptions {
	if o.Burst == 0 {
		o.Burst = 20
	}
	if o.Refill == 0 {
		o.Refill = time.Second
	}
	if o.MaxClients == 0 {
		o.MaxClients = 100_000
	}
	return o
}

// Limiter counts failed authentication attempts per client in a token
// bucket: each failure takes a token, tokens come back one per Refill up
// to Burst, and a client with no token left is blocked (every request of
// it, before its credentials are read: checking them would answer the
// guess). Decisions take the time as an argument. Safe for concurrent
// use.
//
// Memory: a client costs a map entry (~100 bytes). Past MaxClients the
// clients whose bucket has refilled are dropped, and if that is not
// enough, all: someone who controls that many addresses is not stopped by
// a per-address limit anyway, while a table that refused newcomers would
// block everyone else.
type Limiter struct {
	opts LimiterOptions // immutable
	mu   struct {
		sync.Mutex
		clients map[string]bucket
	}
}

// bucket is a client's tokens at a time.
type bucket struct {
	tokens float64
	at     time.Time
}

// NewLimiter returns a limiter with opts.
func NewLimiter(opts LimiterOptions) *Limiter {
	l := &Limiter{opts: opts.withDefaults()}
	l.mu.clients = map[string]bucket{}
	return l
}

// refilled is b's tokens at now.
func (l *Limiter) refilled(b bucket, now time.Time) float64 {
	t := b.tokens + float64(now.Sub(b.at))/float64(l.opts.Refill)
	return min(t, float64(l.opts.Burst))
}

// Blocked reports whether client has no attempt left at now.
func (l *Limiter) Blocked(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.mu.clients[client]
	return ok && l.refilled(b, now) < 1
}

// Fail takes one attempt from client at now. It reports whether that
// left the client blocked (the moment to log it).
func (l *Limiter) Fail(client string, now time.Time) (blocked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.mu.clients[client]
	t := float64(l.opts.Burst)
	if ok {
		t = l.refilled(b, now)
	} else if len(l.mu.clients) >= l.opts.MaxClients {
		l.shrinkLocked(now)
	}
	t = max(t-1, 0)
	l.mu.clients[client] = bucket{tokens: t, at: now}
	return t < 1
}

// shrinkLocked drops the clients whose bucket is full again, or all if
// none is.
func (l *Limiter) shrinkLocked(now time.Time) {
	for c, b := range l.mu.clients {
		if l.refilled(b, now) >= float64(l.opts.Burst) {
			delete(l.mu.clients, c)
		}
	}
	if len(l.mu.clients) >= l.opts.MaxClients {
		clear(l.mu.clients)
	}
}

// Len is the number of clients tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.mu.clients)
}

// ClientKey is the client a request's remote address counts as: its IP
// address, and for IPv6 its /64 (one host commonly holds all of a /64).
// The address is the connection's: X-Forwarded-For is not read, as
// anyone can send it.
func ClientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.String()
}
