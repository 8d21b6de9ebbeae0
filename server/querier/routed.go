package querier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server/limits"
)

// Router is what a cluster's Groups need from it: which groups own a time
// range, and reads routed to a group's leader with retries.
// raftgroup/cluster's Router implements it.
type Router interface {
	// Owners returns the groups that may hold series with samples in
	// [mint, maxt], the ring history widened by w.
	Owners(mint, maxt int64, w ring.Window) []ring.GroupID
	// Read calls try with g's leader until it succeeds or the router
	// gives up: local when this node's replica leads and can serve a
	// linearizable read, else addr is the leader's internal address. An
	// error whose Permanent() is true ends the retries.
	Read(ctx context.Context, g ring.GroupID, try func(ctx context.Context, node, addr string, local bool) error) error
	// Client reaches other nodes' internal handlers.
	Client() *http.Client
}

// Local opens a querier on this node's replica of group over tenant's
// data in [mint, maxt], without checking leadership (the engine's
// DB.QuerierWithBudget), its reads counted against b (nil: no bound).
// The Router checks it before a local read, Verified before a remote one.
type Local func(group uint32, tenant string, mint, maxt int64, b *limits.QueryBudget) (storage.Querier, error)

// Routed returns the Groups of a cluster: the owners of a range from r,
// widened by w, each read through its leader: this node's replica (l) or
// a Remote on the leader's node, whose answer must start within
// answerTimeout (else the next replica is tried).
func Routed(r Router, l Local, w ring.Window, answerTimeout time.Duration) Groups {
	return &routed{r: r, local: l, window: w, answerTimeout: answerTimeout}
}

type routed struct {
	r             Router
	local         Local
	window        ring.Window
	answerTimeout time.Duration
}

func (g *routed) Owners(mint, maxt int64) []ring.GroupID {
	return g.r.Owners(mint, maxt, g.window)
}

func (g *routed) Querier(_ context.Context, id ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
	return &leaderQuerier{g: g, id: id, tenant: tenant, mint: mint, maxt: maxt}, nil
}

// Verified returns the LocalGroups of a node's handler: a read of group g
// is served only after verify(ctx, g) confirms this node leads g and may
// serve a linearizable read (raftgroup/cluster's Router.VerifyRead).
func Verified(verify func(ctx context.Context, g ring.GroupID) error, l Local) LocalGroups {
	return verified{verify: verify, local: l}
}

type verified struct {
	verify func(ctx context.Context, g ring.GroupID) error
	local  Local
}

func (v verified) Querier(ctx context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
	if err := v.verify(ctx, g); err != nil {
		return nil, err
	}
	return v.local(uint32(g), tenant, mint, maxt, limits.QueryBudgetFrom(ctx))
}

// leaderQuerier reads one group through its current leader, local or
// remote, found anew for every call by the Router (which retries while
// the group elects or the leader does not answer).
//
// Locking: mu guards open, the queriers opened so far; series sets of
// the calls may still read from them, so Close closes them all.
type leaderQuerier struct {
	g          *routed
	id         ring.GroupID
	tenant     string
	mint, maxt int64
	mu         sync.Mutex
	open       []storage.Querier
}

// do runs fn on a querier of the group's leader under the Router's
// retries.
func (l *leaderQuerier) do(ctx context.Context, fn func(q storage.Querier) error) error {
	return l.g.r.Read(ctx, l.id, func(ctx context.Context, _, addr string, local bool) error {
		var q storage.Querier
		if local {
			lq, err := l.g.local(uint32(l.id), l.tenant, l.mint, l.maxt, limits.QueryBudgetFrom(ctx))
			if err != nil {
				return permanentErr{err}
			}
			q = lq
		} else {
			q = NewRemote(l.g.r.Client(), "http://"+addr, l.id, l.tenant, l.mint, l.maxt).WithAnswerTimeout(l.g.answerTimeout)
		}
		l.mu.Lock()
		l.open = append(l.open, q)
		l.mu.Unlock()
		err := fn(q)
		if errors.Is(err, ErrCorrupt) || errors.Is(err, limits.ErrQueryLimit) {
			return permanentErr{err} // the same again on any replica
		}
		return err
	})
}

// permanentErr: the Router must not retry it.
type permanentErr struct{ error }

func (e permanentErr) Unwrap() error   { return e.error }
func (e permanentErr) Permanent() bool { return true }

func (l *leaderQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var out storage.SeriesSet
	err := l.do(ctx, func(q storage.Querier) error {
		set := q.Select(ctx, sortSeries, hints, ms...)
		// The first Next shows whether the leader answered at all.
		ok := set.Next()
		if !ok && set.Err() != nil {
			return set.Err()
		}
		out = &peekedSet{SeriesSet: set, first: ok}
		return nil
	})
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("select from group %d: %w", l.id, err))
	}
	return out
}

func (l *leaderQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) (vals []string, ws annotations.Annotations, err error) {
	err = l.do(ctx, func(q storage.Querier) (err error) {
		vals, ws, err = q.LabelValues(ctx, name, hints, ms...)
		return err
	})
	return vals, ws, err
}

func (l *leaderQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) (names []string, ws annotations.Annotations, err error) {
	err = l.do(ctx, func(q storage.Querier) (err error) {
		names, ws, err = q.LabelNames(ctx, hints, ms...)
		return err
	})
	return names, ws, err
}

func (l *leaderQuerier) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, q := range l.open {
		errs = append(errs, q.Close())
	}
	l.open = nil
	return errors.Join(errs...)
}

// peekedSet is a series set whose first Next was already called.
type peekedSet struct {
	storage.SeriesSet
	first   bool // the result of that Next, not yet returned
	started bool
}

func (p *peekedSet) Next() bool {
	if !p.started {
		p.started = true
		return p.first
	}
	return p.SeriesSet.Next()
}
