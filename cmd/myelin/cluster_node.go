package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/distributor"
	"github.com/myelindb/myelin/server/querier"
	"github.com/myelindb/myelin/write"
)

// clusterNode is a node of a cluster: its engine holds its replicas of
// many Raft groups, placed by the metadata (raftgroup/cluster); writes
// are split by group and proposed to each group's leader, on this node
// or another (server/distributor); queries fan out to the leaders of the
// groups that may hold the data (server/querier).
type clusterNode struct {
	db     *engine.DB
	mux    *raftgroup.Mux
	cn     *cluster.Node
	store  *engineStorage
	dist   *distributor.Distributor
	query  *querier.Querier
	client *http.Client // to other nodes' HTTP over the Mux
	cfg    config
	logger *slog.Logger

	entries write.Encoder // log entries of write batches
	// samples counts the samples this node accepted per tenant
	// (*atomic.Int64), for the tenant status page.
	samples sync.Map
	rates   server.RateTracker
}

// maxRingAge: a node routes writes only while it heard from the metadata
// leader this recently, so no write is routed with a ring older than the
// querier's window (ringStaleness) allows for.
const maxRingAge = 15 * time.Second

// ringStaleness is how long after a ring change the querier still asks
// the groups of the ring before it: maxRingAge plus the time a heartbeat
// takes to carry the change.
const ringStaleness = 30 * time.Second

// ringWindow is how the querier widens the ring's history (ring.Window):
// samples up to -validation.create-grace-period in the future, and a
// node routing with a ring up to ringStaleness old.
func (c *clusterNode) ringWindow() ring.Window {
	return ring.Window{FutureMillis: c.cfg.maxFutureSkew.Milliseconds(), StaleMillis: ringStaleness.Milliseconds()}
}

func openCluster(ctx context.Context, cfg config, logger *slog.Logger, reg prometheus.Registerer, db *engine.DB) (c *clusterNode, err error) {
	cc := cfg.cluster
	tlsConf, err := cc.tlsConfig()
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cc.listenAddr)
	if err != nil {
		return nil, fmt.Errorf("raft listen on %s: %w", cc.listenAddr, err)
	}
	c = &clusterNode{db: db, store: &engineStorage{db: db, groups: map[ring.GroupID]*engine.Group{}}, cfg: cfg, logger: logger}
	var cnp atomic.Pointer[cluster.Node]
	mux, err := raftgroup.NewMux(raftgroup.MuxOptions{
		Listener:  ln,
		Advertise: cc.advertise,
		TLS:       tlsConf,
		Resolve: func(id string) string {
			if cn := cnp.Load(); cn != nil {
				return cn.Resolve(id)
			}
			return cc.peers[id]
		},
		Logger: logger,
	})
	if err != nil {
		return nil, errors.Join(err, ln.Close())
	}
	c.mux = mux
	defer func() {
		if err != nil {
			err = errors.Join(err, mux.Close())
		}
	}()
	logger.Info("raft listening", "addr", ln.Addr().String(), "advertise", cc.advertise, "tls", tlsConf != nil)
	cn, err := cluster.Start(cluster.Options{
		NodeID:    cc.nodeID,
		Advertise: cc.advertise,
		Dir:       filepath.Join(cfg.dataDir, "raft"),
		Mux:       mux,
		Storage:   c.store,
		Peers:     cc.voters(),
		Join:      cc.joinAddr,
		Ring:      ring.Options{ReplicationFactor: cc.replication, GroupsPerNode: cc.groupsPerNode},
		DeadAfter: cc.deadAfter,
		Heartbeat: cc.heartbeatInterval,
		Raft: raftgroup.Options{
			LogStore:          raftgroup.LogStore(cc.logStore),
			HeartbeatTimeout:  cc.heartbeat,
			SnapshotThreshold: cc.snapshotThr,
			TrailingLogs:      cc.trailing,
		},
		Tenants:    c.clusterTenants,
		Registerer: reg,
		Logger:     logger,
	})
	if err != nil {
		return nil, err
	}
	cnp.Store(cn)
	c.cn = cn
	c.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return mux.Dial(ctx, addr, raftgroup.KindHTTP, 0)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     time.Minute,
	}}
	c.dist = distributor.New(groupWriter{c}, func() *ring.Ring { return cn.View().State.Ring() })
	c.query = querier.New(groupsOf{c}, querier.Options{Logger: logger})
	logger.Info("cluster node started", "node_id", cc.nodeID, "join", cc.joinAddr, "peers", len(cc.peers))
	return c, nil
}

// internalHandler serves what other nodes call over the Mux: the cluster
// control RPCs and the querier's remote protocol.
func (c *clusterNode) internalHandler() http.Handler {
	m := http.NewServeMux()
	m.Handle(cluster.PathPrefix, c.cn.Handler())
	qh := querier.NewHandler(localGroups{c}, querier.HandlerOptions{Logger: c.logger})
	for _, p := range []string{querier.PathSelect, querier.PathLabels, querier.PathValues} {
		m.Handle(p, qh)
	}
	return m
}

// Write implements server.Writer: the distributor splits the batch by
// owning group and writes the parts in parallel (Write below).
func (c *clusterNode) Write(ctx context.Context, b *write.Batch) ([]write.Refusal, error) {
	// Routing with a ring older than the querier's window could put
	// samples where no query looks (see ringWindow).
	if age := c.cn.MetadataAge(); age > maxRingAge {
		return nil, fmt.Errorf("%w: no word from the metadata leader for %v: this node's ring may be stale", server.ErrUnavailable, age.Round(time.Second))
	}
	refused, err := c.dist.Write(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", server.ErrUnavailable, err)
	}
	n := 0
	for _, s := range b.Series {
		n += len(s.Samples)
	}
	for _, r := range refused {
		n -= r.Rejected
	}
	v, _ := c.samples.LoadOrStore(b.Tenant, new(atomic.Int64))
	v.(*atomic.Int64).Add(int64(n))
	return refused, nil
}

// groupWriter is the distributor's GroupWriter.
type groupWriter struct{ c *clusterNode }

var _ distributor.GroupWriter = groupWriter{}

// Write proposes b to group g through its leader: the log entry is the
// compressed batch (write.Encoder).
func (w groupWriter) Write(ctx context.Context, g ring.GroupID, b *write.Batch) ([]write.Refusal, error) {
	outcome, err := w.c.cn.Propose(ctx, g, w.c.entries.Entry(b))
	if err != nil {
		return nil, err
	}
	o, err := write.DecodeOutcome(outcome)
	if err == nil {
		err = o.Err
	}
	if err != nil {
		return nil, err
	}
	return o.Refused, nil
}

func (c *clusterNode) engineDB() *engine.DB { return c.db }

func (c *clusterNode) tenantStats() []engine.TenantStats {
	var out []engine.TenantStats
	for _, g := range c.cn.View().State.Groups {
		if eg := c.store.group(g.ID); eg != nil {
			out = append(out, eg.Stats()...)
		}
	}
	return out
}

// Querier implements server.Storage: the fan-out over the groups.
func (c *clusterNode) Querier(tenant string, mint, maxt int64) (storage.Querier, error) {
	return c.query.Querier(tenant, mint, maxt)
}

// groupsOf is querier.Groups over the cluster.
type groupsOf struct{ c *clusterNode }

func (g groupsOf) Owners(mint, maxt int64) []ring.GroupID {
	return g.c.cn.View().State.Owners(mint, maxt, g.c.ringWindow())
}

func (g groupsOf) Querier(_ context.Context, id ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
	return &leaderQuerier{c: g.c, g: id, tenant: tenant, mint: mint, maxt: maxt}, nil
}

// leaderRetry bounds how long a read waits for a group to have a leader
// it can reach: several elections (about 1 s each here), so a query
// during a failover or a leadership transfer waits instead of failing.
const leaderRetry = 5 * time.Second

// leaderQuerier reads one group through its current leader, local or
// remote, found anew for every call; a call that meets no leader, or a
// node that is no longer the leader, retries within leaderRetry.
//
// Locking: mu guards open, the queriers opened so far; series sets of
// the calls may still read from them, so Close closes them all.
type leaderQuerier struct {
	c          *clusterNode
	g          ring.GroupID
	tenant     string
	mint, maxt int64
	mu         sync.Mutex
	open       []storage.Querier
}

// do runs fn on a querier of the group's leader until it succeeds, fails
// for another reason than the leader, or leaderRetry passes.
func (l *leaderQuerier) do(ctx context.Context, fn func(q storage.Querier) error) error {
	deadline := time.Now().Add(leaderRetry)
	failed := map[ring.NodeID]bool{} // nodes this call got no answer from
	for attempt := 0; ; attempt++ {
		id, q, err := l.leader(ctx, attempt, failed)
		if err == nil {
			l.mu.Lock()
			l.open = append(l.open, q)
			l.mu.Unlock()
			err = fn(q)
		}
		// Retry what a new leader can answer: not-leader answers, no
		// leader, a node that went away; not corrupt data.
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) || errors.Is(err, querier.ErrCorrupt) {
			return err
		}
		if id != "" {
			failed[id] = true
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leader opens a querier on the group's leader as this node knows it; if
// that node already failed this call (it died, or the knowledge is stale)
// it tries the group's other replicas in turn, one of which is elected.
func (l *leaderQuerier) leader(ctx context.Context, attempt int, failed map[ring.NodeID]bool) (ring.NodeID, storage.Querier, error) {
	id, addr, local := l.c.cn.Leader(l.g)
	if failed[id] || id == "" {
		var others []ring.NodeID
		if grp := l.c.cn.View().State.Group(l.g); grp != nil {
			for _, r := range grp.Replicas {
				if !failed[r] {
					others = append(others, r)
				}
			}
		}
		if len(others) == 0 {
			clear(failed) // all tried: start over
		} else {
			id = others[attempt%len(others)]
			addr, local = l.c.cn.Resolve(string(id)), string(id) == l.c.cfg.cluster.nodeID
		}
	}
	if local {
		q, err := localGroups{l.c}.Querier(ctx, l.g, l.tenant, l.mint, l.maxt)
		return id, q, err
	}
	if addr == "" {
		return id, nil, fmt.Errorf("%w: group %d has no known leader", server.ErrUnavailable, l.g)
	}
	return id, querier.NewRemote(l.c.client, "http://"+addr, l.g, l.tenant, l.mint, l.maxt), nil
}

func (l *leaderQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var out storage.SeriesSet
	err := l.do(ctx, func(q storage.Querier) error {
		set := q.Select(ctx, sortSeries, hints, ms...)
		// The first Next shows whether the leader answered at all.
		if ok := set.Next(); !ok && set.Err() != nil {
			return set.Err()
		} else {
			out = &peekedSet{SeriesSet: set, first: ok}
		}
		return nil
	})
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("select from group %d: %w", l.g, err))
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

// localGroups is querier.LocalGroups: reads of groups this node leads.
type localGroups struct{ c *clusterNode }

func (l localGroups) Querier(ctx context.Context, id ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
	rg := l.c.cn.Replica(id)
	eg := l.c.store.group(id)
	if rg == nil || eg == nil {
		return nil, fmt.Errorf("group %d: no replica here: %w", id, querier.ErrNotLeader)
	}
	if err := rg.VerifyRead(ctx); err != nil {
		return nil, fmt.Errorf("group %d: %w: %w", id, querier.ErrNotLeader, err)
	}
	return eg.Querier(tenant, mint, maxt)
}

// clusterTenants is cluster.Options.Tenants: the series of the groups
// this node leads and the samples it accepted.
func (c *clusterNode) clusterTenants(led []ring.GroupID) []cluster.TenantStat {
	m := map[string]*cluster.TenantStat{}
	get := func(t string) *cluster.TenantStat {
		if m[t] == nil {
			m[t] = &cluster.TenantStat{Tenant: t}
		}
		return m[t]
	}
	for _, id := range led {
		if eg := c.store.group(id); eg != nil {
			for _, ts := range eg.Stats() {
				get(ts.Tenant).Series += ts.HeadSeries
			}
		}
	}
	c.samples.Range(func(k, v any) bool {
		get(k.(string)).Samples += v.(*atomic.Int64).Load()
		return true
	})
	out := make([]cluster.TenantStat, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b cluster.TenantStat) int { return strings.Compare(a.Tenant, b.Tenant) })
	return out
}

// ringStatus is the /ring page's data.
func (c *clusterNode) ringStatus(ctx context.Context) (*server.RingStatus, error) {
	st, err := c.cn.Status(ctx)
	if err != nil {
		return nil, err
	}
	st.NodeID = c.cfg.cluster.nodeID
	return st, nil
}

// tenantsStatus is the /status/tenants page's data, cluster-wide.
func (c *clusterNode) tenantsStatus(ctx context.Context) ([]server.TenantStatus, error) {
	st, err := c.cn.Status(ctx)
	if err != nil {
		return nil, err
	}
	totals := map[string]int64{}
	for _, t := range st.Tenants {
		totals[t.Tenant] = t.Samples
	}
	rates := c.rates.Observe(time.Now(), totals)
	out := make([]server.TenantStatus, 0, len(st.Tenants))
	for _, t := range st.Tenants {
		out = append(out, server.TenantStatus{Tenant: t.Tenant, Series: t.Series, Samples: t.Samples, SamplesPerSecond: rates[t.Tenant]})
	}
	return out, nil
}

// ready reports whether this node can serve: it is an active member and
// every group has a leader it knows of.
func (c *clusterNode) ready() error {
	v := c.cn.View()
	nd := v.State.Node(ring.NodeID(c.cfg.cluster.nodeID))
	if nd == nil || nd.State != ring.NodeActive {
		return errors.New("this node is not an active cluster member yet")
	}
	for _, g := range v.State.Groups {
		if id, _, _ := c.cn.Leader(g.ID); id == "" {
			return fmt.Errorf("group %d has no known leader", g.ID)
		}
	}
	return nil
}

// replicaStatus is one entry of GET /admin/raft/status in cluster mode.
type replicaStatus struct {
	Group uint32 `json:"group"`
	raftgroup.Status
	EngineApplied uint64 `json:"engine_applied_index"`
	Error         string `json:"error,omitempty"`
	Checksum      string `json:"checksum,omitempty"` // sha256 of /admin/raft/data?group=G
	Series        int    `json:"series,omitempty"`
	Samples       int    `json:"samples,omitempty"`
}

// serveReplicas serves GET /admin/raft/status[?checksum=1]: this node's
// replicas.
func (c *clusterNode) serveReplicas(w http.ResponseWriter, r *http.Request) {
	out := struct {
		NodeID   string          `json:"node_id"`
		Replicas []replicaStatus `json:"replicas"`
	}{NodeID: c.cfg.cluster.nodeID}
	for _, g := range c.cn.View().State.Groups {
		rg, eg := c.cn.Replica(g.ID), c.store.group(g.ID)
		if rg == nil || eg == nil {
			continue
		}
		st, err := rg.Status()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		rs := replicaStatus{Group: uint32(g.ID), Status: st, EngineApplied: eg.AppliedIndex()}
		if err := rg.Err(); err != nil {
			rs.Error = err.Error()
		}
		if r.URL.Query().Get("checksum") == "1" {
			h := sha256.New()
			series, samples, err := dumpGroup(r.Context(), eg, h)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			rs.Checksum, rs.Series, rs.Samples = hex.EncodeToString(h.Sum(nil)), series, samples
		}
		out.Replicas = append(out.Replicas, rs)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

// serveData serves GET /admin/raft/data?group=G: every sample of this
// node's replica of G.
func (c *clusterNode) serveData(w http.ResponseWriter, r *http.Request) {
	g, err := strconv.ParseUint(r.URL.Query().Get("group"), 10, 32)
	if err != nil {
		http.Error(w, "want ?group=N: "+err.Error(), http.StatusBadRequest)
		return
	}
	eg := c.store.group(ring.GroupID(g))
	if eg == nil {
		http.Error(w, "no replica of that group here", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if _, _, err := dumpGroup(r.Context(), eg, w); err != nil {
		fmt.Fprintf(w, "\nerror: %v\n", err)
	}
}

// serveDrain serves POST /admin/cluster/drain?node=ID.
func (c *clusterNode) serveDrain(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("node")
	if id == "" {
		http.Error(w, "missing ?node=ID", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	err := c.cn.Drain(ctx, id)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ring.ErrUnknownNode), errors.Is(err, ring.ErrLastNode):
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}

// Close stops the cluster node (checkpointing every replica) and the
// engine.
func (c *clusterNode) Close() error {
	err := c.cn.Close()
	c.client.CloseIdleConnections()
	return errors.Join(err, c.mux.Close(), c.db.Close())
}

// engineStorage is cluster.Storage over the node's engine.
type engineStorage struct {
	db *engine.DB
	mu sync.Mutex
	// groups: the open replicas' engine groups.
	groups map[ring.GroupID]*engine.Group
}

func (s *engineStorage) Open(g ring.GroupID) (raftgroup.Applier, error) {
	eg, recovered, err := s.db.OpenGroup(uint32(g))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.groups[g] = eg
	s.mu.Unlock()
	return engine.NewApplier(eg, recovered), nil
}

func (s *engineStorage) Close(g ring.GroupID) error {
	s.mu.Lock()
	delete(s.groups, g)
	s.mu.Unlock()
	return nil
}

func (s *engineStorage) Drop(g ring.GroupID) error {
	s.Close(g)
	return s.db.DropGroup(uint32(g))
}

func (s *engineStorage) group(g ring.GroupID) *engine.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[g]
}
