package server

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server/distributor"
	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/write"
)

// testOverrides returns overrides of the default limits by a runtime
// config's YAML.
func testOverrides(t testing.TB, yaml string) *limits.Overrides {
	t.Helper()
	o, err := limits.NewOverrides(limits.Defaults())
	require.NoError(t, err)
	c, err := limits.ParseConfig([]byte(yaml), o.Defaults())
	require.NoError(t, err)
	o.Set(c)
	return o
}

// engineProposer is a Raft group of one replica for the distributor:
// each entry is applied by an engine group, in order, and its outcome
// returned.
type engineProposer struct {
	mu     sync.Mutex
	groups map[ring.GroupID]*engine.Group
	index  uint64
}

func (p *engineProposer) Propose(_ context.Context, g ring.GroupID, entry []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	refused, err := p.groups[g].Apply(p.index, entry)
	if err != nil {
		return nil, err
	}
	return write.AppendOutcome(nil, write.Outcome{Refused: refused}), nil
}

// limitedNode is the write path of a node whose n groups are engine
// groups: the distributor attaches o's series limits to every entry.
func limitedNode(t *testing.T, n int, o *limits.Overrides) (*distributor.Distributor, map[ring.GroupID]*engine.Group) {
	t.Helper()
	db, err := engine.Open(engine.Options{Dir: "db", FS: vfs.NewMem()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	p := &engineProposer{groups: map[ring.GroupID]*engine.Group{}}
	var tokens []ring.Token
	for g := 1; g <= n; g++ {
		eg, _, err := db.OpenGroup(uint32(g))
		require.NoError(t, err)
		p.groups[ring.GroupID(g)] = eg
		tok := uint64(math.MaxUint64)
		if g < n {
			tok = math.MaxUint64 / uint64(n) * uint64(g)
		}
		tokens = append(tokens, ring.Token{Token: tok, Group: ring.GroupID(g)})
	}
	r, err := ring.NewRing(tokens)
	require.NoError(t, err)
	return distributor.New(p, func() (*ring.Ring, error) { return r, nil }, o), p.groups
}

// TestWriteSeriesLimits: past its series limits a tenant's new series
// get a 400 in Mimir's words naming the series and the limit; the series
// it has keep being written; another tenant is not affected.
func TestWriteSeriesLimits(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	o := testOverrides(t, "overrides:\n  small:\n    max_global_series_per_user: 5\n    max_global_series_per_metric: 3\n")
	d, groups := limitedNode(t, 1, o)
	reg := prometheus.NewRegistry()
	h, err := NewWriteHandler(d, WriteOptions{MultiTenant: true, Limits: o, Now: func() time.Time { return now }, Registerer: reg})
	require.NoError(t, err)
	push := func(tenant string, ts int64, names ...string) (int, string) {
		var ss []prompb.TimeSeries
		for i, n := range names {
			ss = append(ss, series([]string{"__name__", n, "i", fmt.Sprint(i)}, prompb.Sample{Timestamp: ts, Value: 1}))
		}
		w := post(h, "/api/v1/push", tenant, "", encodeWrite(t, ss...))
		return w.Code, w.Body.String()
	}
	code, body := push("small", 1000, "a", "a", "a", "a", "b", "b", "b")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "per-metric series limit of 3 exceeded (err-mimir-max-series-per-metric). To adjust the related per-tenant limit, configure -ingester.max-global-series-per-metric, or contact your service administrator. This is for series {__name__=\"a\", i=\"3\"}")
	require.Contains(t, body, "2 series (2 samples) refused in total; 5 series (5 samples) were written")
	require.Equal(t, 5, groups[1].Stats()[0].HeadSeries)
	// The five it has go on; a sixth is refused by the per-user limit.
	code, body = push("small", 2000, "a", "a", "a", "x", "b", "b", "b")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "per-user series limit of 5 exceeded (err-mimir-max-series-per-user). To adjust the related per-tenant limit, configure -ingester.max-global-series-per-user, or contact your service administrator. This is for series {__name__=\"x\", i=\"3\"}")
	require.Contains(t, body, "the group's share of the limit is 5")
	require.Contains(t, body, "; 5 series (5 samples) were written")
	// Another tenant has no limit.
	code, body = push("big", 1000, "a", "a", "a", "a", "b", "b", "b")
	require.Equal(t, http.StatusNoContent, code, body)
	// a/3 by the per-metric limit; b/6 twice and x/3 by the per-user one.
	require.Equal(t, 1.0, testutil.ToFloat64(h.metrics.discarded.WithLabelValues("small", "per_metric_series_limit")))
	require.Equal(t, 3.0, testutil.ToFloat64(h.metrics.discarded.WithLabelValues("small", "per_user_series_limit")))
	// A raised limit applies to the next write, without a restart.
	c, err := limits.ParseConfig([]byte("overrides:\n  small:\n    max_global_series_per_user: 6\n"), o.Defaults())
	require.NoError(t, err)
	o.Set(c)
	code, body = push("small", 3000, "a", "a", "a", "x")
	require.Equal(t, http.StatusNoContent, code, body)
	// The tenant's write limits are on /metrics.
	require.Equal(t, 6.0, gaugeValue(t, reg, "myelin_tenant_limits", map[string]string{"tenant": "small", "limit_name": "max_global_series_per_user"}))
	require.Equal(t, 0.0, gaugeValue(t, reg, "myelin_tenant_limits", map[string]string{"tenant": "big", "limit_name": "max_global_series_per_user"}))
}

// gaugeValue returns the value of a gauge with these labels in reg, or
// fails.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// TestWriteIngestionRate: a tenant over its ingestion rate gets 429 in
// Mimir's words and nothing of the request is written; another tenant
// on the same node writes on at full speed; the bucket refills with
// time, divided between the active nodes.
func TestWriteIngestionRate(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	o := testOverrides(t, "overrides:\n  slow:\n    ingestion_rate: 3000\n    ingestion_burst_size: 1000\n")
	nodes := 1
	gw := newGroupWriter(t)
	reg := prometheus.NewRegistry()
	h, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Limits: o, ActiveNodes: func() int { return nodes },
		Now: func() time.Time { return now }, Registerer: reg})
	require.NoError(t, err)
	ts := now.UnixMilli()
	push := func(tenant string, n int) (int, string) {
		ts++
		var ss []prompb.TimeSeries
		for i := range n {
			ss = append(ss, series([]string{"__name__", "m", "i", fmt.Sprint(i)}, prompb.Sample{Timestamp: ts, Value: 1}))
		}
		w := post(h, "/api/v1/push", tenant, "", encodeWrite(t, ss...))
		return w.Code, w.Body.String()
	}
	code, body := push("slow", 800)
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = push("slow", 800)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, "the request has been rejected because the tenant exceeded the ingestion rate limit, set to 3000 items/s with a maximum allowed burst of 1000. This limit is applied on the total number of samples received across all nodes (err-mimir-tenant-max-ingestion-rate). To adjust the related per-tenant limits, configure -distributor.ingestion-rate-limit and -distributor.ingestion-burst-size, or contact your service administrator.", strings.TrimSpace(body))
	for range 20 {
		code, body = push("fast", 5000)
		require.Equal(t, http.StatusNoContent, code, body)
	}
	// 0.2 s refills 600 on one node: 200 + 600 = 800 pass.
	now = now.Add(200 * time.Millisecond)
	code, _ = push("slow", 800)
	require.Equal(t, http.StatusNoContent, code)
	// On three nodes a node refills a third: 0.3 s gives 300.
	nodes = 3
	now = now.Add(300 * time.Millisecond)
	code, _ = push("slow", 301)
	require.Equal(t, http.StatusTooManyRequests, code)
	code, _ = push("slow", 300)
	require.Equal(t, http.StatusNoContent, code)
	require.Equal(t, 800.0+301, testutil.ToFloat64(h.metrics.discarded.WithLabelValues("slow", "rate_limited")))
	require.Equal(t, 800.0+800+300, testutil.ToFloat64(h.metrics.samples.WithLabelValues("slow")))
	require.Equal(t, 2.0, testutil.ToFloat64(h.metrics.requests.WithLabelValues("slow", "429")))
	require.Equal(t, 3000.0, gaugeValue(t, reg, "myelin_tenant_limits", map[string]string{"tenant": "slow", "limit_name": "ingestion_rate"}))
}

// engineGroups serves the engine groups of limitedNode by id.
type engineGroups map[ring.GroupID]*engine.Group

func (e engineGroups) Group(id uint32) *engine.Group { return e[ring.GroupID(id)] }

// TestTenantSeriesMetric: myelin_tenant_series is each tenant's
// in-memory series in the groups the node led at its last report, the
// largest tenants under their own name and the rest as <overflow>.
func TestTenantSeriesMetric(t *testing.T) {
	o := testOverrides(t, "")
	d, groups := limitedNode(t, 2, o)
	b := func(tenant string, n int) *write.Batch {
		bb := write.NewBuilder(tenant)
		for i := range n {
			require.NoError(t, bb.Add(labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), []write.Sample{{T: 1000, V: 1}}))
		}
		return bb.Batch()
	}
	for tenant, n := range map[string]int{"a": 50, "b": 20, "c": 5, "d": 1} {
		_, err := d.Write(context.Background(), b(tenant, n))
		require.NoError(t, err)
	}
	tn := NewTenants(engineGroups(groups))
	reg := prometheus.NewRegistry()
	reg.MustRegister(tn.SeriesCollector(2))
	// Before the first report: nothing.
	n, err := testutil.GatherAndCount(reg, "myelin_tenant_series")
	require.NoError(t, err)
	require.Zero(t, n)
	tn.Report([]ring.GroupID{1, 2})
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP myelin_tenant_series In-memory series per tenant (what max_global_series_per_user counts) in the groups this node leads; summed over the nodes, the tenant's series in the cluster.
# TYPE myelin_tenant_series gauge
myelin_tenant_series{tenant="<overflow>"} 6
myelin_tenant_series{tenant="a"} 50
myelin_tenant_series{tenant="b"} 20
`), "myelin_tenant_series"))
	// Only the groups led count.
	tn.Report([]ring.GroupID{1})
	var inGroup1 int
	for _, ts := range groups[1].Stats() {
		if ts.Tenant == "a" {
			inGroup1 = ts.HeadSeries
		}
	}
	require.Greater(t, inGroup1, 0)
	require.Less(t, inGroup1, 50)
	require.Equal(t, float64(inGroup1), gaugeValue(t, reg, "myelin_tenant_series", map[string]string{"tenant": "a"}))
}
