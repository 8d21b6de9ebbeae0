package server

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/trace"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/server/frontend"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// dashboardQueries are a Grafana dashboard's panels over the load of
// loadDashboardData: aggregations, a top-k, a quantile and per-series
// panels of one job.
var dashboardQueries = []string{
	`sum(rate(http_requests_total[5m]))`,
	`sum by (job) (rate(http_requests_total[5m]))`,
	`topk(5, rate(http_requests_total[5m]))`,
	`sum(increase(http_requests_total[1h]))`,
	`avg by (instance) (memory_usage_bytes)`,
	`max by (job) (memory_usage_bytes)`,
	`quantile(0.9, memory_usage_bytes)`,
	`count by (job) (memory_usage_bytes)`,
	`avg_over_time(memory_usage_bytes{job="job-0"}[10m])`,
	`deriv(memory_usage_bytes{instance="host-1"}[15m])`,
}

// loadDashboardData writes hosts x jobs x (a counter and a gauge) every
// 15 s over span ending at end into a new in-memory engine, and
// returns it as the query API's Storage.
func loadDashboardData(tb testing.TB, hosts, jobs int, span time.Duration, end time.Time) Storage {
	db, err := engine.Open(engine.Options{Dir: "db", FS: vfs.NewMem()})
	require.NoError(tb, err)
	tb.Cleanup(func() { db.Close() })
	g, _, err := db.OpenGroup(1)
	require.NoError(tb, err)
	const tenantID = "dash"
	start := end.Add(-span)
	bb := write.NewBuilder(tenantID)
	index := uint64(0)
	const chunk = 2 * time.Hour
	for from := start; from.Before(end); from = from.Add(chunk) {
		bb.Reset(tenantID)
		for h := range hosts {
			for j := range jobs {
				inst, job := fmt.Sprintf("host-%d", h), fmt.Sprintf("job-%d", j)
				var cs, gs []write.Sample
				for ts := from; ts.Before(from.Add(chunk)) && ts.Before(end); ts = ts.Add(15 * time.Second) {
					k := ts.Sub(start) / (15 * time.Second)
					cs = append(cs, write.Sample{T: ts.UnixMilli(), V: float64(int64(k) * int64(h+j+1))})
					gs = append(gs, write.Sample{T: ts.UnixMilli(), V: float64((int64(k)*7919+int64(h*31+j))%100_000) * 1e3})
				}
				require.NoError(tb, bb.Add(labels.FromStrings("__name__", "http_requests_total", "instance", inst, "job", job), cs))
				require.NoError(tb, bb.Add(labels.FromStrings("__name__", "memory_usage_bytes", "instance", inst, "job", job), gs))
			}
		}
		index++
		refusals, err := g.ApplyBatch(index, bb.Batch())
		require.NoError(tb, err)
		require.Empty(tb, refusals)
	}
	return groupStorage{g}
}

type groupStorage struct{ g *engine.Group }

func (s groupStorage) Querier(org string, mint, maxt int64) (storage.Querier, error) {
	return s.g.Querier(org, mint, maxt)
}

// BenchmarkFrontendDashboard: a Grafana dashboard of 10 range queries
// over 7 days at a 1m step, refreshed 5 times with now moving 30 s (start
// and end aligned to the step, as Grafana sends them), through the
// frontend with its in-memory results cache. It reports the first
// (cold) refresh, the mean of the later ones, and their ratio.
//
//	make bench-frontend
func BenchmarkFrontendDashboard(b *testing.B) {
	now := time.Now().UTC().Truncate(24 * time.Hour).Add(-6 * time.Hour)
	s := loadDashboardData(b, 25, 4, 7*24*time.Hour, now.Add(3*time.Minute))
	var first, later time.Duration
	var rounds int
	for b.Loop() {
		clk := &benchClock{t: now}
		api, err := NewQueryAPI(s, QueryOptions{MultiTenant: true})
		require.NoError(b, err)
		fe, err := frontend.New(api, frontend.Options{
			Defaults:    frontend.DefaultLimits,
			MultiTenant: true,
			Cache:       frontend.NewLRU(256<<20, clk.now, nil),
			Now:         clk.now,
		})
		require.NoError(b, err)
		for refresh := range 5 {
			d := refreshDashboard(b, fe, clk.now())
			if refresh == 0 {
				first += d
			} else {
				later += d
			}
			clk.advance(30 * time.Second)
		}
		fe.Close()
		rounds++
	}
	meanLater := later / time.Duration(4*rounds)
	b.ReportMetric(float64(first.Milliseconds())/float64(rounds), "first-ms")
	b.ReportMetric(float64(meanLater.Microseconds())/1000, "later-ms")
	b.ReportMetric(float64(first)/float64(rounds)/float64(meanLater), "first/later")
}

// refreshDashboard runs the dashboard's queries at once, as Grafana does,
// and returns the time until the last answer.
func refreshDashboard(tb testing.TB, h http.Handler, now time.Time) time.Duration {
	step := time.Minute
	end := now.Truncate(step)
	start := end.Add(-7 * 24 * time.Hour)
	begin := time.Now()
	var wg sync.WaitGroup
	for _, q := range dashboardQueries {
		wg.Go(func() {
			form := url.Values{"query": {q}, "start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"60"}}
			r := httptest.NewRequest(http.MethodGet, "/api/v1/query_range?"+form.Encode(), nil)
			r.Header.Set(tenant.Header, "dash")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				tb.Errorf("%s: %d %s", q, w.Code, w.Body.String())
			}
		})
	}
	wg.Wait()
	return time.Since(begin)
}

type benchClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *benchClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *benchClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// BenchmarkFrontendSharding: heavy instant queries through the frontend
// on this machine's cores, over 100,000 series (12,500 hosts x 4 jobs x 2
// metrics, 30 minutes at 15 s): a count of all of them, and sums over
// the 50,000 of one metric. Unsharded, in 2, 4 and 16 shards exactly
// (ShardParallelism -1), and as the defaults cut them (16 shards,
// bounded by the node's CPU slots, by the series or samples the query
// read when it last ran: "default", after one run that learns them).
//
//	make bench-frontend
func BenchmarkFrontendSharding(b *testing.B) {
	end := time.Now().UTC().Truncate(time.Minute)
	s := loadDashboardData(b, 12500, 4, 30*time.Minute, end)
	for _, q := range []string{`count by (job) ({__name__=~".+"})`, `sum(rate(http_requests_total[5m]))`, `sum by (job) (memory_usage_bytes)`} {
		for _, v := range []struct {
			name        string
			shards      int
			parallelism int
		}{{"unsharded", 0, -1}, {"shards=2", 2, -1}, {"shards=4", 4, -1}, {"shards=16", 16, -1}, {"default", 16, 0}} {
			b.Run(q+"/"+v.name, func(b *testing.B) {
				api, err := NewQueryAPI(s, QueryOptions{MultiTenant: true, ShardHints: true})
				require.NoError(b, err)
				lim := frontend.DefaultLimits
				lim.TotalShards = v.shards
				lim.CacheResults = false
				if v.name == "default" {
					lim.TargetSeriesPerShard = frontend.DefaultTargetSeriesPerShard
					lim.TargetSamplesPerShard = frontend.DefaultTargetSamplesPerShard
				}
				reg := prometheus.NewRegistry()
				fe, err := frontend.New(api, frontend.Options{Defaults: lim, MultiTenant: true, Registerer: reg,
					ParallelizeShardableQueries: v.shards > 1, ShardParallelism: v.parallelism})
				require.NoError(b, err)
				defer fe.Close()
				form := url.Values{"query": {q}, "time": {fmt.Sprint(end.Unix())}}
				run := func() {
					r := httptest.NewRequest(http.MethodGet, "/api/v1/query?"+form.Encode(), nil)
					r.Header.Set(tenant.Header, "dash")
					w := httptest.NewRecorder()
					fe.ServeHTTP(w, r)
					if w.Code != http.StatusOK {
						b.Fatalf("%d %s", w.Code, w.Body.String())
					}
				}
				run() // the estimates' run (a dashboard's first refresh)
				cpu0 := processCPU()
				for b.Loop() {
					run()
				}
				// The process's CPU per query: the work, which sharding
				// spreads over cores, against ns/op, the wall time, which
				// shows a gain only when cores are free.
				b.ReportMetric(float64((processCPU()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
				// The shards each query was cut into.
				b.ReportMetric(counterValue(b, reg, "myelin_query_frontend_shards_total")/float64(b.N), "shards/op")
			})
		}
	}
}

// counterValue is the value of a counter without labels in reg.
func counterValue(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	require.NoError(tb, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// anyTenant serves every tenant the data of one.
type anyTenant struct {
	s   Storage
	org string
}

func (a anyTenant) Querier(_ string, mint, maxt int64) (storage.Querier, error) {
	return a.s.Querier(a.org, mint, maxt)
}

// The fairness benchmark's light queries: how many in each phase (idle,
// flood) and how often. The shape, one a second, with enough of
// them for a p99 (the 297th of 300), takes 10 minutes a way: make
// bench-fairness. The quick default (50 every 100 ms: the p99 is the
// slowest) keeps make bench-frontend short.
var (
	fairnessLight = flag.Int("fairness.light", 50, "BenchmarkFrontendFairness: light queries in each phase")
	fairnessEvery = flag.Duration("fairness.every", 100*time.Millisecond, "BenchmarkFrontendFairness: a light query every")
)

// BenchmarkFrontendFairness: one tenant floods the frontend with heavy
// range queries (8 clients, 7 days at 1m, no results cache) while another
// runs a light instant query every -fairness.every (100 ms); the light
// tenant's p99 under the flood against its p99 alone, without CPU slots
// (the fair queue alone) and with them (-query-frontend.cpu-slots,
// GOMAXPROCS).
//
//	make bench-frontend
//	make bench-fairness   # one a second, 300 a phase, slots on
func BenchmarkFrontendFairness(b *testing.B) {
	end := time.Now().UTC().Truncate(time.Minute)
	s := anyTenant{loadDashboardData(b, 25, 4, 7*24*time.Hour, end), "dash"}
	for _, slots := range []int{-1, 0} {
		name := "slots=off"
		if slots >= 0 {
			name = "slots=on"
		}
		b.Run(name, func(b *testing.B) { benchFairness(b, s, end, slots) })
	}
}

func benchFairness(b *testing.B, s Storage, end time.Time, slots int) {
	api, err := NewQueryAPI(s, QueryOptions{MultiTenant: true, ShardHints: true})
	require.NoError(b, err)
	lim := frontend.DefaultLimits
	lim.CacheResults = false
	reg := prometheus.NewRegistry()
	fe, err := frontend.New(api, frontend.Options{Defaults: lim, MultiTenant: true, Registerer: reg, CPUSlots: slots})
	require.NoError(b, err)
	defer fe.Close()
	ask := func(org, path string, form url.Values) {
		r := httptest.NewRequest(http.MethodGet, path+"?"+form.Encode(), nil)
		r.Header.Set(tenant.Header, org)
		w := httptest.NewRecorder()
		fe.ServeHTTP(w, r)
		if w.Code != http.StatusOK && w.Code != http.StatusTooManyRequests {
			b.Errorf("%s: %d %s", org, w.Code, w.Body.String())
		}
	}
	light := func(n int) (p50, p99 time.Duration) {
		var ds []time.Duration
		for range n {
			t0 := time.Now()
			// A region of its own in an execution trace (-test.trace),
			// to find what the slow ones waited for.
			trace.WithRegion(context.Background(), "light-query", func() {
				ask("light", "/api/v1/query", url.Values{"query": {`sum by (job) (rate(http_requests_total[5m]))`}, "time": {fmt.Sprint(end.Unix())}})
			})
			ds = append(ds, time.Since(t0))
			time.Sleep(*fairnessEvery - time.Since(t0))
		}
		slices.Sort(ds)
		// Nearest rank.
		return ds[(len(ds)+1)/2-1], ds[(len(ds)*99+99)/100-1]
	}
	// hist returns the sum and count of a histogram of the light
	// tenant's.
	hist := func(name string) (sum, count float64) {
		mfs, err := reg.Gather()
		require.NoError(b, err)
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "tenant" && l.GetValue() == "light" {
						h := m.GetHistogram()
						return h.GetSampleSum(), float64(h.GetSampleCount())
					}
				}
			}
		}
		return 0, 0
	}
	const queueWait, slotWait = "myelin_query_frontend_queue_duration_seconds", "myelin_query_frontend_cpu_slot_wait_seconds"
	for b.Loop() {
		light(5) // warm up
		idle50, idle := light(*fairnessLight)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var heavy atomic.Int64
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					ask("heavy", "/api/v1/query_range", url.Values{"query": {`sum by (instance) (rate(http_requests_total[5m]))`},
						"start": {fmt.Sprint(end.Add(-7 * 24 * time.Hour).Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"60"}})
					heavy.Add(1)
				}
			})
		}
		time.Sleep(time.Second)
		trace.Log(context.Background(), "phase", "flood")
		qs0, _ := hist(queueWait)
		ss0, sn0 := hist(slotWait)
		t0 := time.Now()
		h0 := heavy.Load()
		flood50, flood := light(*fairnessLight)
		heavyPerSec := float64(heavy.Load()-h0) / time.Since(t0).Seconds()
		qs1, _ := hist(queueWait)
		ss1, sn1 := hist(slotWait)
		if testing.Verbose() {
			mfs, err := reg.Gather()
			require.NoError(b, err)
			for _, mf := range mfs {
				if mf.GetName() == slotWait || mf.GetName() == queueWait || mf.GetName() == "myelin_query_frontend_cpu_slots_lent_total" {
					b.Logf("%s", mf)
				}
			}
		}
		close(stop)
		wg.Wait()
		b.ReportMetric(float64(idle.Microseconds())/1000, "idle-p99-ms")
		b.ReportMetric(float64(flood.Microseconds())/1000, "flood-p99-ms")
		b.ReportMetric(float64(idle50.Microseconds())/1000, "idle-p50-ms")
		b.ReportMetric(float64(flood50.Microseconds())/1000, "flood-p50-ms")
		b.ReportMetric(float64(flood)/float64(idle), "flood/idle")
		// The flood's throughput while the light tenant ran: what the
		// slots cost the heavy tenant.
		b.ReportMetric(heavyPerSec, "heavy-queries/s")
		// The light tenant's mean waits per query under the flood: in the
		// fair queue, and for CPU slots (per wait: one per query, more if
		// it yielded or the frontend's work on it took one).
		b.ReportMetric((qs1-qs0)/float64(*fairnessLight)*1000, "light-queue-wait-ms")
		if sn1 > sn0 {
			b.ReportMetric((ss1-ss0)/(sn1-sn0)*1000, "light-slot-wait-ms")
		}
	}
}

// BenchmarkFrontendSlotsAlone: one query alone through the frontend,
// without and with CPU slots: what the slots' checkpoints cost a query
// that never waits (a heavy 7-day range query, split by day, and the
// fairness benchmark's light instant query).
//
//	go test -count=6 -run '^$' -bench '^BenchmarkFrontendSlotsAlone$' ./server
func BenchmarkFrontendSlotsAlone(b *testing.B) {
	end := time.Now().UTC().Truncate(time.Minute)
	s := loadDashboardData(b, 25, 4, 7*24*time.Hour, end)
	for _, q := range []struct {
		name string
		path string
		form url.Values
	}{
		{"heavy", "/api/v1/query_range", url.Values{"query": {`sum by (instance) (rate(http_requests_total[5m]))`},
			"start": {fmt.Sprint(end.Add(-7 * 24 * time.Hour).Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"60"}}},
		{"light", "/api/v1/query", url.Values{"query": {`sum by (job) (rate(http_requests_total[5m]))`}, "time": {fmt.Sprint(end.Unix())}}},
	} {
		for _, slots := range []int{-1, 0} {
			name := "slots=off"
			if slots >= 0 {
				name = "slots=on"
			}
			b.Run(q.name+"/"+name, func(b *testing.B) {
				api, err := NewQueryAPI(s, QueryOptions{MultiTenant: true})
				require.NoError(b, err)
				lim := frontend.DefaultLimits
				lim.CacheResults = false
				fe, err := frontend.New(api, frontend.Options{Defaults: lim, MultiTenant: true, CPUSlots: slots})
				require.NoError(b, err)
				defer fe.Close()
				b.ReportAllocs()
				cpu0 := processCPU()
				for b.Loop() {
					r := httptest.NewRequest(http.MethodGet, q.path+"?"+q.form.Encode(), nil)
					r.Header.Set(tenant.Header, "dash")
					w := httptest.NewRecorder()
					fe.ServeHTTP(w, r)
					if w.Code != http.StatusOK {
						b.Fatalf("%d %s", w.Code, w.Body.String())
					}
				}
				// CPU per query: the checkpoints' cost, less sensitive
				// than wall time to other work on the machine.
				b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			})
		}
	}
}
