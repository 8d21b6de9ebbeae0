package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"time"
)

// ForwardedHeader marks a request forwarded by another node: it is served
// where it arrives (or answered 503), never forwarded again, so a
// disagreement about who leads cannot make a loop.
const ForwardedHeader = "X-Myelin-Forwarded-By"

// Leadership is what the Forwarder needs from the node's Raft group.
type Leadership interface {
	// Leader returns the group's leader as this node knows it: local is
	// true if this node leads; id is "" if no leader is known.
	Leader() (id string, local bool)
	// VerifyRead returns nil if a read served here now sees every
	// acknowledged write (this node leads and a quorum confirms it).
	VerifyRead(ctx context.Context) error
}

// ForwardOptions configure a Forwarder.
type ForwardOptions struct {
	// NodeID names this node in ForwardedHeader. Required.
	NodeID string
	// Dial connects to the HTTP server of the node with the given ID
	// (the group's leader). Required.
	Dial func(ctx context.Context, id string) (net.Conn, error)
	// ReadTimeout bounds VerifyRead. Zero means 5s.
	ReadTimeout time.Duration
	Logger      *slog.Logger // nil means discard
}

// Forwarder routes requests of a replicated group to its leader: the
// leader serves them (reads only after VerifyRead), a follower proxies
// them to the leader, and without a leader the answer is 503, which
// remote-write senders and query clients retry. A follower never answers
// a read from its own, possibly stale, state.
type Forwarder struct {
	l     Leadership
	opts  ForwardOptions
	proxy *httputil.ReverseProxy
}

func (o ForwardOptions) withDefaults() ForwardOptions {
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every problem of o at once.
func (o ForwardOptions) Validate() error {
	var errs []error
	if o.NodeID == "" {
		errs = append(errs, errors.New("missing NodeID"))
	}
	if o.Dial == nil {
		errs = append(errs, errors.New("missing Dial"))
	}
	if o.ReadTimeout < 0 {
		errs = append(errs, errors.New("negative ReadTimeout"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("server forward options: %w", err)
	}
	return nil
}

// NewForwarder returns a Forwarder for l.
func NewForwarder(l Leadership, opts ForwardOptions) (*Forwarder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	f := &Forwarder{l: l, opts: opts}
	transport := &http.Transport{
		// The URL's host is the leader's node ID (see Rewrite).
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			id, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return opts.Dial(ctx, id)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = leaderFromContext(r.In.Context()) + ":80"
			r.Out.Host = r.In.Host
			r.Out.Header.Set(ForwardedHeader, opts.NodeID)
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			opts.Logger.Warn("forward to leader failed", "path", r.URL.Path, "err", err)
			http.Error(w, "forward to the group leader: "+err.Error(), http.StatusServiceUnavailable)
		},
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return f, nil
}

type leaderKey struct{}

func leaderFromContext(ctx context.Context) string {
	id, _ := ctx.Value(leaderKey{}).(string)
	return id
}

// Writes routes write requests: the leader serves them (the write itself
// fails with ErrUnavailable, 503, if leadership is lost meanwhile).
func (f *Forwarder) Writes(next http.Handler) http.Handler {
	return f.wrap(next, false)
}

// Reads routes read requests: the leader serves them after VerifyRead.
func (f *Forwarder) Reads(next http.Handler) http.Handler {
	return f.wrap(next, true)
}

func (f *Forwarder) wrap(next http.Handler, read bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, local := f.l.Leader()
		if !local && id != "" && r.Header.Get(ForwardedHeader) == "" {
			f.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), leaderKey{}, id)))
			return
		}
		if !local {
			msg := "no leader: the group is electing one; retry"
			if id != "" {
				msg = "not the leader (forwarded request); retry"
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		if read {
			ctx, cancel := context.WithTimeout(r.Context(), f.opts.ReadTimeout)
			err := f.l.VerifyRead(ctx)
			cancel()
			if err != nil {
				http.Error(w, "cannot confirm leadership for a current read; retry: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
