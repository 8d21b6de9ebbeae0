package cluster

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// reporter sends this node's heartbeat to the metadata leader every
// Options.Heartbeat: that is how a node joins (the leader plans its join
// when it does not know it or thinks it dead), how the leader knows it is
// alive, and how the leader learns the replicas' state. The replies tell
// it each group's leader (hints for routing) and how fresh its metadata
// is.
type reporter struct {
	opts   Options // immutable
	life   *lifecycle
	meta   *metadata
	reps   *placement
	leader *metaLeader // handles the heartbeat when this node leads the metadata
	// leaders: each group's leader per the last heartbeat reply.
	leaders atomic.Pointer[map[uint32]string]
	// lastReply: when the last heartbeat reply came (unix ns) with this
	// node's metadata caught up to the leader's.
	lastReply atomic.Int64
}

func newReporter(opts Options, life *lifecycle, meta *metadata, reps *placement, leader *metaLeader) *reporter {
	return &reporter{opts: opts, life: life, meta: meta, reps: reps, leader: leader}
}

// quietStart: heartbeats that fail this soon after the node started are
// a cluster still electing its metadata leader, not an outage worth a
// warning.
const quietStart = 10 * time.Second

func (r *reporter) loop() {
	started := r.opts.Now()
	failing := false // the outage was logged (one line per outage)
	// Until the first success, retry fast: a node's first heartbeat is
	// its join, and a node that starts alone waits only for its own
	// election.
	retry := 10 * time.Millisecond
	joined := false
	for {
		ctx, cancel := r.life.ctx(max(r.opts.Heartbeat*2, 2*time.Second))
		rep := r.report()
		var reply HeartbeatReply
		var err error
		if r.meta.isLeader() {
			reply, err = r.leader.heartbeat(ctx, rep)
		} else {
			var b []byte
			if b, err = json.Marshal(rep); err == nil {
				err = r.meta.callLeader(ctx, http.MethodPost, "heartbeat", nil, b, &reply)
			}
		}
		cancel()
		if err == nil {
			joined = true
			r.leaders.Store(&reply.Leaders)
			// Fresh only if this node's own metadata has caught up with
			// the leader's as of the reply.
			if r.meta.View().State.Generation >= reply.Generation {
				r.lastReply.Store(r.opts.Now().UnixNano())
			}
		}
		var re *rpcError
		switch {
		case err == nil || r.life.base.Err() != nil:
			failing = false
		case errors.As(err, &re) && re.Code == http.StatusGone:
			if !failing {
				r.opts.Logger.Warn("this node was drained and removed from the cluster: stop it (its ID cannot rejoin)")
			}
			failing = true
		case errors.Is(err, raftgroup.ErrUnauthenticated):
			// Not an outage that passes: say so at once.
			if !failing {
				r.opts.Logger.Error("the metadata leader and this node do not share the cluster secret (or its absence): "+
					"this node cannot join or report; give it the cluster's -raft.secret-file", "err", err)
			}
			failing = true
		case !failing && r.opts.Now().Sub(started) > quietStart:
			// One line per outage; the state of every try is in Debug.
			r.opts.Logger.Warn("cannot reach the metadata leader; retrying", "err", err)
			failing = true
		default:
			r.opts.Logger.Debug("heartbeat", "err", err)
		}
		wait := r.opts.Heartbeat
		if !joined {
			wait, retry = min(retry, wait), retry*2
		}
		if !r.life.sleep(wait) {
			return
		}
	}
}

// metadataAge is how long ago this node last heard from the metadata
// leader with its own metadata caught up to the leader's (zero on the
// leader itself). A node whose metadata is older than the querier's
// staleness window must not route writes (ring.Window.StaleMillis).
func (r *reporter) metadataAge() time.Duration {
	if r.meta.isLeader() {
		return 0
	}
	last := r.lastReply.Load()
	if last == 0 {
		return time.Duration(math.MaxInt64)
	}
	return r.opts.Now().Sub(time.Unix(0, last))
}

// leaderHint returns group g's leader as the metadata leader last heard
// it reported, "" if none.
func (r *reporter) leaderHint(g ring.GroupID) string {
	if m := r.leaders.Load(); m != nil {
		return (*m)[uint32(g)]
	}
	return ""
}

// report describes this node's replicas.
func (r *reporter) report() Report {
	rep := Report{Node: r.opts.NodeID, Addr: r.opts.Advertise}
	var led []ring.GroupID
	for _, rp := range r.reps.open() {
		st, err := rp.rg.Status()
		if err != nil {
			continue
		}
		rep.Replicas = append(rep.Replicas, ReplicaReport{
			Group: uint32(rp.id), State: st.State, Term: st.Term, Leader: st.LeaderID, Applied: st.Stats.AppliedIndex, Members: st.Members,
		})
		if st.State == "Leader" {
			led = append(led, rp.id)
		}
	}
	if r.opts.Tenants != nil {
		rep.Tenants = r.opts.Tenants(led)
	}
	return rep
}
