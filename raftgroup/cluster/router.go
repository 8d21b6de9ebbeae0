package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// Router sends proposals and reads to the leader of a group, on this node
// or another, with one leader lookup, one retry policy and one HTTP
// client (over the node's Mux) for both. Safe for concurrent use.
//
// Retry policy: an attempt goes to the leader as this node knows it
// (Leader). A "not the leader" answer naming the leader sends the next
// attempt there at once; a node that does not answer (dial error, or no
// answer within ForwardTimeout) is skipped for the rest of the call and
// the group's other replicas are tried in turn (one of them is elected);
// "no leader" answers wait (50 ms, doubling to 400 ms) for an election.
// The call gives up after RouteBudget, or when ctx ends, or on an error
// that says it is permanent (it has a method Permanent() bool returning
// true, or the remote answered 4xx other than 421), and then returns an
// error wrapping ErrUnavailable unless the error was permanent.
type Router struct {
	self      ring.NodeID
	advertise string
	meta      *metadata
	reps      *placement
	hints     *reporter
	rpc       *rpcClient
	life      *lifecycle
}

// ForwardTimeout bounds one attempt on another node until it answers (a
// forwarded proposal's commit, a read's first bytes): four election
// timeouts, so a write that met a frozen or partitioned leader is retried
// on the new one (elected within ~1.5 s) and acknowledged within ~2.5 s,
// well inside a sender's 30 s timeout; a healthy leader commits a batch
// in milliseconds.
const ForwardTimeout = 2 * time.Second

// RouteBudget bounds one routed call over all its attempts: several
// elections, so a write or query during a failover or a leadership
// transfer waits instead of failing.
const RouteBudget = 5 * time.Second

// Leader returns the node that leads group g as far as this node knows:
// its own replica's view of the leader, else the leader the metadata
// leader last heard of, else the preferred leader in the metadata. local
// is true if this node's replica leads.
func (r *Router) Leader(g ring.GroupID) (id ring.NodeID, addr string, local bool) {
	if rg := r.reps.replica(g); rg != nil {
		if rg.IsLeader() {
			return r.self, r.advertise, true
		}
		if lid, _ := rg.Leader(); lid != "" {
			return ring.NodeID(lid), r.meta.resolve(lid), false
		}
	}
	if id := r.hints.leaderHint(g); id != "" && id != string(r.self) {
		if addr := r.meta.resolve(id); addr != "" {
			return ring.NodeID(id), addr, false
		}
	}
	if grp := r.meta.View().State.Group(g); grp != nil {
		if addr := r.meta.resolve(string(grp.Leader)); addr != "" {
			return grp.Leader, addr, grp.Leader == r.self
		}
	}
	return "", "", false
}

// Client is the HTTP client to other nodes' internal handlers over the
// Mux (URLs "http://" + a node's Mux address + path).
func (r *Router) Client() *http.Client { return r.rpc.client }

// Owners returns the groups that may hold series with samples in [mint,
// maxt], widened by w (ring.State.Owners).
func (r *Router) Owners(mint, maxt int64, w ring.Window) []ring.GroupID {
	return r.meta.View().State.Owners(mint, maxt, w)
}

// maxRingAge: a node routes writes only while it heard from the metadata
// leader this recently, so no write is routed with a ring older than the
// querier's window (ringStaleness) allows for.
const maxRingAge = 15 * time.Second

// ringStaleness is how long after a ring change the querier still asks
// the groups of the ring before it: maxRingAge plus the time a heartbeat
// takes to carry the change.
const ringStaleness = 30 * time.Second

// ReadWindow is how the querier widens the ring's history (ring.Window):
// samples up to future (the create grace period) ahead of now, and a
// node routing writes with a ring up to ringStaleness old.
func ReadWindow(future time.Duration) ring.Window {
	return ring.Window{FutureMillis: future.Milliseconds(), StaleMillis: ringStaleness.Milliseconds()}
}

// Ring returns the ring to route writes with, or an error wrapping
// ErrUnavailable when there is none yet or this node has not heard from
// the metadata leader for maxRingAge: routing with a ring older than the
// querier's window could put samples where no query looks. The price:
// when the metadata group has lost its quorum, writes stop after
// maxRingAge even where data groups are healthy.
func (r *Router) Ring() (*ring.Ring, error) {
	if age := r.hints.metadataAge(); age > maxRingAge {
		return nil, fmt.Errorf("%w: no word from the metadata leader for %v: this node's ring may be stale", ErrUnavailable, age.Round(time.Second))
	}
	rg := r.meta.View().State.Ring()
	if rg == nil {
		return nil, fmt.Errorf("%w: the cluster has no groups yet", ErrUnavailable)
	}
	return rg, nil
}

// target is one attempt's node.
type target struct {
	node  ring.NodeID
	addr  string
	local bool
}

// attempt outcomes for route's retry policy.
type (
	// redirect: the node is not the leader; leader is the one it named.
	redirect struct {
		leader string
		err    error
	}
	// unreachable: the node did not answer.
	unreachable struct{ err error }
)

func (e *redirect) Error() string    { return e.err.Error() }
func (e *redirect) Unwrap() error    { return e.err }
func (e *unreachable) Error() string { return e.err.Error() }
func (e *unreachable) Unwrap() error { return e.err }

func permanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// route runs try against group g's leader under the retry policy of the
// Router doc.
func (r *Router) route(ctx context.Context, g ring.GroupID, try func(ctx context.Context, t target) error) error {
	deadline := time.Now().Add(RouteBudget)
	var errs []error
	failed := map[ring.NodeID]bool{} // nodes that did not answer this call
	hint := ""
	wait := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		t := r.pick(g, attempt, hint, failed)
		hint = ""
		var err error
		switch {
		case t.node == "":
			err = fmt.Errorf("group %d: no leader known", g)
		case !t.local && t.addr == "":
			err = fmt.Errorf("group %d: no address for node %s", g, t.node)
		default:
			err = try(ctx, t)
		}
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if permanent(err) {
			return err
		}
		if ctx.Err() != nil || r.life.base.Err() != nil || time.Now().After(deadline) {
			break
		}
		var rd *redirect
		var un *unreachable
		switch {
		case errors.As(err, &rd) && rd.leader != "" && !failed[ring.NodeID(rd.leader)]:
			hint = rd.leader
			continue // no wait: the leader is known
		case errors.As(err, &rd) && rd.leader != "":
			// The named leader did not answer earlier in this call;
			// the replicas agree it leads, so the failure may have been
			// a dropped connection: try it again after a wait.
			delete(failed, ring.NodeID(rd.leader))
			hint = rd.leader
		case errors.As(err, &un):
			failed[t.node] = true
			continue // another replica at once
		}
		// No leader now: an election may be under way.
		if !r.life.sleepCtx(ctx, wait) {
			break
		}
		wait = min(2*wait, 400*time.Millisecond)
	}
	if len(errs) > 4 {
		errs = append(errs[:2], fmt.Errorf("... %d more attempts", len(errs)-3), errs[len(errs)-1])
	}
	return fmt.Errorf("%w: group %d: %w", ErrUnavailable, g, errors.Join(errs...))
}

// pick chooses the node of an attempt: the hinted leader, else the leader
// as this node knows it; if that node already failed this call, the
// group's other replicas in turn.
func (r *Router) pick(g ring.GroupID, attempt int, hint string, failed map[ring.NodeID]bool) target {
	if hint != "" {
		return target{node: ring.NodeID(hint), addr: r.meta.resolve(hint), local: hint == string(r.self)}
	}
	id, addr, local := r.Leader(g)
	if id != "" && !failed[id] {
		return target{node: id, addr: addr, local: local}
	}
	var others []ring.NodeID
	if grp := r.meta.View().State.Group(g); grp != nil {
		for _, n := range grp.Replicas {
			if !failed[n] {
				others = append(others, n)
			}
		}
	}
	if len(others) == 0 {
		clear(failed) // all tried: start over
		return target{node: id, addr: addr, local: local}
	}
	n := others[attempt%len(others)]
	return target{node: n, addr: r.meta.resolve(string(n)), local: n == r.self}
}

// Propose commits entry in group g through its leader and returns the
// applier's outcome for it (nil: nothing to report). An error wrapping
// ErrUnavailable means the entry may or may not have been committed:
// retry (applying identical samples again is harmless).
func (r *Router) Propose(ctx context.Context, g ring.GroupID, entry []byte) ([]byte, error) {
	var outcome []byte
	err := r.route(ctx, g, func(ctx context.Context, t target) error {
		if t.local {
			rg := r.reps.replica(g)
			if rg == nil {
				return fmt.Errorf("group %d: replica not open here yet", g)
			}
			_, out, err := rg.Propose(ctx, entry)
			var nl *raftgroup.NotLeaderError
			switch {
			case err == nil:
				outcome = out
				return nil
			case errors.As(err, &nl):
				return &redirect{leader: nl.LeaderID, err: err}
			case errors.Is(err, raftgroup.ErrDiskFull):
				// Not proposed; the disk will not be freed within the
				// route's budget: answer now.
				return permanentError{err}
			}
			// Leadership lost, closed, the applier failed, ctx ended: the
			// entry may or may not commit; a retry is harmless.
			return err
		}
		actx, cancel := context.WithTimeout(ctx, ForwardTimeout)
		defer cancel()
		_, body, err := r.rpc.call(actx, http.MethodPost, t.addr, "propose", url.Values{"group": {strconv.FormatUint(uint64(g), 10)}}, entry, nil)
		if err == nil {
			if len(body) > 0 {
				outcome = body
			}
			return nil
		}
		return classify(err, ctx)
	})
	return outcome, err
}

// classify turns a control RPC's error into route's kinds: a 421 is a
// redirect, a 503 a wait, a 507 (the leader's disk is full) permanent
// and raftgroup.ErrDiskFull, another status permanent, no answer
// unreachable.
func classify(err error, ctx context.Context) error {
	var re *rpcError
	switch {
	case ctx.Err() != nil:
		return err
	case errors.As(err, &re) && re.Code == http.StatusMisdirectedRequest:
		return &redirect{leader: re.Leader, err: err}
	case errors.As(err, &re) && re.Code == http.StatusServiceUnavailable:
		return err
	case errors.As(err, &re) && re.Code == http.StatusInsufficientStorage:
		return permanentError{&remoteDiskFull{re}}
	case errors.As(err, &re):
		return permanentError{err}
	}
	return &unreachable{err}
}

// remoteDiskFull is a forwarded proposal the leader refused because its
// disk is full (507): raftgroup.ErrDiskFull with the leader's text.
type remoteDiskFull struct{ err *rpcError }

func (e *remoteDiskFull) Error() string        { return e.err.Msg }
func (e *remoteDiskFull) Is(target error) bool { return target == raftgroup.ErrDiskFull }

type permanentError struct{ error }

func (e permanentError) Unwrap() error   { return e.error }
func (e permanentError) Permanent() bool { return true }

// Read calls try with group g's leader until it succeeds, under the retry
// policy of the Router doc: local is true when this node's replica leads
// and has confirmed it can serve a linearizable read (VerifyRead);
// otherwise addr is the leader's Mux address. try must give up by itself
// within ForwardTimeout when the node does not answer, with an error that
// is neither permanent nor ctx's; an error whose Permanent() is true ends
// the call.
func (r *Router) Read(ctx context.Context, g ring.GroupID, try func(ctx context.Context, node, addr string, local bool) error) error {
	return r.route(ctx, g, func(ctx context.Context, t target) error {
		if t.local {
			if err := r.VerifyRead(ctx, g); err != nil {
				var nl *raftgroup.NotLeaderError
				if errors.As(err, &nl) {
					return &redirect{leader: nl.LeaderID, err: err}
				}
				return err
			}
		}
		err := try(ctx, string(t.node), t.addr, t.local)
		if err != nil && !t.local && !permanent(err) && ctx.Err() == nil {
			return &unreachable{err}
		}
		return err
	})
}

// VerifyRead returns nil if this node's replica of g leads and a read
// served by it now sees every acknowledged write (raftgroup's
// VerifyRead); otherwise an error wrapping raftgroup.ErrNotLeader.
func (r *Router) VerifyRead(ctx context.Context, g ring.GroupID) error {
	rg := r.reps.replica(g)
	if rg == nil {
		return fmt.Errorf("group %d: no replica here: %w", g, &raftgroup.NotLeaderError{})
	}
	if err := rg.VerifyRead(ctx); err != nil {
		return fmt.Errorf("group %d: %w", g, err)
	}
	return nil
}
