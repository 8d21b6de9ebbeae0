package server

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server/auth"
)

// EngineGroups finds this node's open engine replicas (engine.DB).
type EngineGroups interface {
	// Group returns the open engine group id, or nil.
	Group(id uint32) *engine.Group
}

// Tenants counts, per tenant, the samples this node's write path
// accepted since it started, and reports them with the head series of the
// groups it leads for the cluster's tenant page (cluster.Options.Tenants).
// Safe for concurrent use.
type Tenants struct {
	groups  EngineGroups
	samples sync.Map                       // tenant -> *atomic.Int64
	led     atomic.Pointer[[]ring.GroupID] // at the last Report
}

// NewTenants returns a counter over this node's engine groups.
func NewTenants(groups EngineGroups) *Tenants { return &Tenants{groups: groups} }

// Add counts n accepted samples of tenant.
func (t *Tenants) Add(tenant string, n int) {
	if t == nil || n == 0 {
		return
	}
	v, ok := t.samples.Load(tenant)
	if !ok {
		v, _ = t.samples.LoadOrStore(tenant, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(int64(n))
}

// Report is cluster.Options.Tenants: the head series of the groups this
// node leads (led) and the samples it accepted, per tenant, sorted.
func (t *Tenants) Report(led []ring.GroupID) []cluster.TenantStat {
	t.led.Store(&led)
	m := map[string]*cluster.TenantStat{}
	get := func(name string) *cluster.TenantStat {
		if m[name] == nil {
			m[name] = &cluster.TenantStat{Tenant: name}
		}
		return m[name]
	}
	for _, id := range led {
		if eg := t.groups.Group(uint32(id)); eg != nil {
			for _, ts := range eg.Stats() {
				get(ts.Tenant).Series += ts.HeadSeries
			}
		}
	}
	t.samples.Range(func(k, v any) bool {
		get(k.(string)).Samples += v.(*atomic.Int64).Load()
		return true
	})
	out := make([]cluster.TenantStat, 0, len(m))
	for _, ts := range m {
		out = append(out, *ts)
	}
	slices.SortFunc(out, func(a, b cluster.TenantStat) int { return strings.Compare(a.Tenant, b.Tenant) })
	return out
}

// SeriesCollector returns the collector of myelin_tenant_series{tenant}:
// the in-memory series of each tenant (what max_global_series_per_user
// counts) in the groups this node led at its last report to the
// metadata leader (every -cluster.heartbeat-interval), so their sum over
// the nodes is the tenant's count in the cluster, each group counted
// once. At most maxTenants tenants, the largest, have series of their
// own; the others are summed as OverflowTenant.
func (t *Tenants) SeriesCollector(maxTenants int) prometheus.Collector {
	return &tenantSeries{t: t, max: maxTenants, desc: prometheus.NewDesc("myelin_tenant_series",
		"In-memory series per tenant (what max_global_series_per_user counts) in the groups this node leads; summed over the nodes, the tenant's series in the cluster.",
		[]string{"tenant"}, nil)}
}

type tenantSeries struct {
	t    *Tenants
	max  int
	desc *prometheus.Desc
}

func (c *tenantSeries) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *tenantSeries) Collect(ch chan<- prometheus.Metric) {
	led := c.t.led.Load()
	if led == nil {
		return
	}
	series := map[string]int{}
	for _, id := range *led {
		if eg := c.t.groups.Group(uint32(id)); eg != nil {
			for _, ts := range eg.Stats() {
				series[ts.Tenant] += ts.HeadSeries
			}
		}
	}
	names := slices.Collect(maps.Keys(series))
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(series[b], series[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	overflow, others := 0, false
	for i, name := range names {
		if i >= c.max {
			overflow += series[name]
			others = true
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(series[name]), name)
	}
	if others {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(overflow), OverflowTenant)
	}
}

// ClusterAPI serves a node's view of its cluster: the status pages (/ring,
// /status/tenants), readiness, and the admin endpoints
// (/admin/cluster/drain, /admin/raft/status, /admin/raft/data).
type ClusterAPI struct {
	node   *cluster.Node
	groups EngineGroups
	rates  RateTracker
}

// NewClusterAPI returns the API of node, whose engine replicas are groups.
func NewClusterAPI(node *cluster.Node, groups EngineGroups) *ClusterAPI {
	return &ClusterAPI{node: node, groups: groups}
}

// Register routes the API's endpoints through handle (which may wrap
// them, e.g. for metrics and auth), each with what it needs with auth on:
// all are the admin scope's. The ring names nodes and addresses, the
// tenant page every tenant, and the others change or dump the cluster.
func (a *ClusterAPI) Register(handle func(pattern, name string, need auth.Need, h http.Handler)) {
	handle("GET /ring", "ring", auth.Admin, RingHandler(a.ringStatus))
	handle("GET /status/tenants", "tenants", auth.Admin, TenantsHandler(a.tenantsStatus))
	handle("POST /admin/cluster/drain", "admin", auth.Admin, http.HandlerFunc(a.serveDrain))
	handle("GET /admin/raft/status", "admin", auth.Admin, http.HandlerFunc(a.serveReplicas))
	handle("GET /admin/raft/data", "admin", auth.Admin, http.HandlerFunc(a.serveData))
}

// Ready returns nil once the node can serve reads and writes (every group
// has a leader, this node's replicas are open and replayed).
func (a *ClusterAPI) Ready() error { return a.node.Ready() }

func (a *ClusterAPI) ringStatus(ctx context.Context) (*RingStatus, error) {
	st, err := a.node.Status(ctx)
	if err != nil {
		return nil, err
	}
	return RingStatusOf(st), nil
}

// tenantsStatus is the /status/tenants page's data, cluster-wide: the
// metadata leader sums the nodes' reports; rates come from successive
// totals seen by this node.
func (a *ClusterAPI) tenantsStatus(ctx context.Context) ([]TenantStatus, error) {
	st, err := a.node.Status(ctx)
	if err != nil {
		return nil, err
	}
	totals := map[string]int64{}
	for _, t := range st.Tenants {
		totals[t.Tenant] = t.Samples
	}
	rates := a.rates.Observe(time.Now(), totals)
	out := make([]TenantStatus, 0, len(st.Tenants))
	for _, t := range st.Tenants {
		out = append(out, TenantStatus{Tenant: t.Tenant, Series: t.Series, Samples: t.Samples, SamplesPerSecond: rates[t.Tenant]})
	}
	return out, nil
}

// replicaStatus is one entry of GET /admin/raft/status.
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
// replicas, with a checksum of each one's data if asked.
func (a *ClusterAPI) serveReplicas(w http.ResponseWriter, r *http.Request) {
	out := struct {
		NodeID   string          `json:"node_id"`
		Replicas []replicaStatus `json:"replicas"`
	}{NodeID: a.node.ID(), Replicas: []replicaStatus{}}
	for _, g := range a.node.View().State.Groups {
		rg, eg := a.node.Replica(g.ID), a.groups.Group(uint32(g.ID))
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
// node's replica of G (dumpGroup's format).
func (a *ClusterAPI) serveData(w http.ResponseWriter, r *http.Request) {
	g, err := strconv.ParseUint(r.URL.Query().Get("group"), 10, 32)
	if err != nil {
		http.Error(w, "want ?group=N: "+err.Error(), http.StatusBadRequest)
		return
	}
	eg := a.groups.Group(uint32(g))
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
func (a *ClusterAPI) serveDrain(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("node")
	if id == "" {
		http.Error(w, "missing ?node=ID", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	err := a.node.Drain(ctx, id)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ring.ErrUnknownNode), errors.Is(err, ring.ErrLastNode):
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}

// dumpGroup writes every float sample of an engine group replica, one line
// per sample: tenant, series labels, timestamp (ms) and the value's bits
// in hex, tenants and series sorted. Replicas with identical data write
// identical bytes.
func dumpGroup(ctx context.Context, eg *engine.Group, w io.Writer) (series, samples int, err error) {
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	for _, ts := range eg.Stats() {
		q, err := eg.Querier(ts.Tenant, math.MinInt64, math.MaxInt64)
		if err != nil {
			return series, samples, fmt.Errorf("dump tenant %s: %w", ts.Tenant, err)
		}
		set := q.Select(ctx, true, nil, all)
		var it chunkenc.Iterator
		var line []byte
		for set.Next() {
			s := set.At()
			series++
			ls := s.Labels().String()
			it = s.Iterator(it)
			for it.Next() == chunkenc.ValFloat {
				t, v := it.At()
				samples++
				line = fmt.Appendf(line[:0], "%s %s %d %016x\n", ts.Tenant, ls, t, math.Float64bits(v))
				if _, err := w.Write(line); err != nil {
					q.Close()
					return series, samples, err
				}
			}
			if err := it.Err(); err != nil {
				q.Close()
				return series, samples, fmt.Errorf("dump tenant %s series %s: %w", ts.Tenant, ls, err)
			}
		}
		if err := errors.Join(set.Err(), q.Close()); err != nil {
			return series, samples, fmt.Errorf("dump tenant %s: %w", ts.Tenant, err)
		}
	}
	return series, samples, nil
}
