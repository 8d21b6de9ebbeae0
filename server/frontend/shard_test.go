package frontend

import (
	"fmt"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

func TestPlanShards(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, tc := range []struct {
		query  string
		outer  string // "" if not shardable
		shard0 []string
	}{
		{`sum(rate(x[5m]))`, `sum(__embedded_queries__{__embedded_id__="0"})`,
			[]string{`sum(rate(x{__query_shard__="1_of_2"}[5m]))`}},
		{`count by (job) (x)`, `sum by (job) (__embedded_queries__{__embedded_id__="0"})`,
			[]string{`count by (job) (x{__query_shard__="1_of_2"})`}},
		{`avg without (i) (x)`, `sum without (i) (__embedded_queries__{__embedded_id__="0"}) / sum without (i) (__embedded_queries__{__embedded_id__="1"})`,
			[]string{`sum without (i) (x{__query_shard__="1_of_2"})`, `count without (i) (x{__query_shard__="1_of_2"})`}},
		{`topk(3, x * 2)`, `topk(3, __embedded_queries__{__embedded_id__="0"})`,
			[]string{`topk(3, x{__query_shard__="1_of_2"} * 2)`}},
		{`histogram_quantile(0.9, sum by (le) (rate(h[5m])))`,
			`histogram_quantile(0.9, sum by (le) (__embedded_queries__{__embedded_id__="0"}))`,
			[]string{`sum by (le) (rate(h{__query_shard__="1_of_2"}[5m]))`}},
		{`sum(a) / sum(b{x="y"})`, `sum(__embedded_queries__{__embedded_id__="0"}) / sum(__embedded_queries__{__embedded_id__="1"})`,
			[]string{`sum(a{__query_shard__="1_of_2"})`, `sum(b{__query_shard__="1_of_2",x="y"})`}},
		{`max(sum by (a) (x))`, `max(sum by (a) (__embedded_queries__{__embedded_id__="0"}))`,
			[]string{`sum by (a) (x{__query_shard__="1_of_2"})`}},
		{`x`, "", nil},
		{`sum(x) + y`, "", nil},
		{`sum(x / y)`, "", nil},                 // vector-vector inside
		{`sum(vector(1))`, "", nil},             // reads no series
		{`quantile(0.9, x)`, "", nil},           // not shardable
		{`topk(scalar(k), x)`, "", nil},         // k reads data
		{`sum(absent(x))`, "", nil},             // absent spans series
		{`max_over_time(sum(x)[1h:])`, "", nil}, // evaluated at the subquery's steps
		{`sum(x) * on() group_left y`, "", nil}, // y read outside
		{`sum(rate(x[5m])) > 0`, `sum(__embedded_queries__{__embedded_id__="0"}) > 0`, []string{`sum(rate(x{__query_shard__="1_of_2"}[5m]))`}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			plan, ok := planShards(p, tc.query, 2, false)
			if tc.outer == "" {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, tc.outer, plan.outer)
			require.Len(t, plan.embedded, len(tc.shard0))
			for i, q := range tc.shard0 {
				require.Equal(t, q, plan.embedded[i][0])
				require.Len(t, plan.embedded[i], 2)
			}
		})
	}
}

// shardingData loads 60 series of two metrics over 6 hours, with gaps.
func shardingData(t *testing.T, api *fakeAPI, base time.Time) {
	for i := range 30 {
		job := fmt.Sprintf("j%d", i%3)
		for _, name := range []string{"req_total", "mem_bytes"} {
			l := labels.FromStrings("__name__", name, "job", job, "instance", fmt.Sprint(i))
			var ts []int64
			var vs []float64
			for k := range 6 * 60 * 4 {
				if i%7 == 0 && k%100 < 30 {
					continue // gaps
				}
				ts = append(ts, base.Add(time.Duration(k)*15*time.Second).UnixMilli())
				v := float64(k*(i+1)) + 0.1*float64(i)
				if name == "mem_bytes" {
					v = math.Sin(float64(k+i))*1e6 + float64(i) // no ties for topk
				}
				vs = append(vs, v)
			}
			api.add(t, "t1", l, ts, vs)
		}
	}
}

// TestShardedEqualsUnsharded: queries run as 3 shards answer what the API
// answers for the whole query: the same series and steps, values equal
// to a relative 1e-12 (sums add in another order).
func TestShardedEqualsUnsharded(t *testing.T) {
	api := newFakeAPI(t)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	shardingData(t, api, base)
	lim := DefaultLimits
	lim.TotalShards = 3
	lim.SplitInterval = 2 * time.Hour
	// Three shards whatever the machine's cores: what is tested is the
	// sharding, not the bound on it.
	f := newTestFrontend(t, api, Options{Defaults: lim, ParallelizeShardableQueries: true, ShardParallelism: -1})
	queries := []string{
		`sum(rate(req_total[5m]))`,
		`sum by (job) (rate(req_total[5m]))`,
		`count by (job) (mem_bytes)`,
		`count(mem_bytes > 0)`,
		`avg by (job) (mem_bytes)`,
		`avg(mem_bytes)`,
		`min by (job) (mem_bytes)`,
		`max without (instance) (mem_bytes)`,
		`topk(3, rate(req_total[5m]))`,
		`bottomk(2, mem_bytes)`,
		`sum(rate(req_total[5m])) / sum(mem_bytes)`,
		`max(sum by (job) (req_total))`,
		`sum(mem_bytes) > 0`,
		`sum by (job) (label_replace(mem_bytes, "x", "$1", "instance", "(.*)"))`,
		`sum(nonexistent)`,
	}
	start, end := base.Add(-10*time.Minute), base.Add(6*time.Hour)
	for _, q := range queries {
		t.Run(q, func(t *testing.T) {
			for _, step := range []time.Duration{15 * time.Second, 5 * time.Minute} {
				form := rangeForm(q, start, end, step)
				_, want := get(t, api, "/api/v1/query_range", "t1", form)
				shards := testutil.ToFloat64(f.m.shards)
				code, got := get(t, f, "/api/v1/query_range", "t1", form)
				require.Greater(t, testutil.ToFloat64(f.m.shards), shards, "sharded")
				require.Zero(t, testutil.ToFloat64(f.m.unsharded), "not run again unsharded")
				require.Equal(t, 200, code, got)
				requireClose(t, want, got)
			}
			form := url.Values{"query": {q}, "time": {formatTime(base.Add(3 * time.Hour).UnixMilli())}}
			_, want := get(t, api, "/api/v1/query", "t1", form)
			code, got := get(t, f, "/api/v1/query", "t1", form)
			require.Equal(t, 200, code, got)
			requireClose(t, want, got)
		})
	}
}

// requireClose checks that two answers hold the same series with the same
// steps and values equal to a relative 1e-12 (series of an instant vector
// in any order).
func requireClose(t *testing.T, wantBody, gotBody string) {
	t.Helper()
	want, err := decodeResult([]byte(wantBody), nil)
	require.NoError(t, err, wantBody)
	got, err := decodeResult([]byte(gotBody), nil)
	require.NoError(t, err, gotBody)
	require.Equal(t, want.resultType, got.resultType)
	byMetric := map[string]series{}
	for _, s := range got.series {
		byMetric[string(s.metric)] = s
	}
	require.Len(t, got.series, len(want.series), "%s\n%s", wantBody, gotBody)
	for i, w := range want.series {
		g, ok := byMetric[string(w.metric)]
		require.True(t, ok, "series %s missing", w.metric)
		if want.resultType == "matrix" {
			require.Equal(t, string(w.metric), string(got.series[i].metric), "matrix order")
		}
		require.Len(t, g.floats, len(w.floats), "%s", w.metric)
		for j, p := range w.floats {
			gp := g.floats[j]
			require.Equal(t, p.t, gp.t)
			if p.v == gp.v || math.IsNaN(p.v) && math.IsNaN(gp.v) {
				continue
			}
			require.InEpsilon(t, p.v, gp.v, 1e-12, "%s at %d", w.metric, p.t)
		}
	}
}

// TestShardedAnnotations: a sharded query whose shards give annotations
// runs again unsharded, so that its annotations are the API's words for
// the query as sent.
func TestShardedAnnotations(t *testing.T) {
	api := newFakeAPI(t)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	shardingData(t, api, base)
	lim := DefaultLimits
	lim.TotalShards = 2
	f := newTestFrontend(t, api, Options{Defaults: lim, ParallelizeShardableQueries: true, ShardParallelism: -1})
	form := rangeForm(`sum(rate(mem_bytes[5m]))`, base, base.Add(time.Hour), time.Minute)
	_, want := get(t, api, "/api/v1/query_range", "t1", form)
	require.Contains(t, want, `"infos"`)
	code, got := get(t, f, "/api/v1/query_range", "t1", form)
	require.Equal(t, 200, code)
	require.Equal(t, want, got)
	require.Equal(t, 1.0, testutil.ToFloat64(f.m.unsharded))
}

// TestShardsRunInParallel: the shards of a query run at once, up to the
// workers: all four calls start before any may finish.
func TestShardsRunInParallel(t *testing.T) {
	api := newFakeAPI(t)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	shardingData(t, api, base)
	api.block = make(chan struct{})
	api.started = make(chan string, 10)
	lim := DefaultLimits
	lim.TotalShards = 4
	lim.MaxQueriersPerTenant = 4 // all workers (the default leaves one for others)
	f := newTestFrontend(t, api, Options{Defaults: lim, ParallelizeShardableQueries: true, MaxInFlight: 4, ShardParallelism: 4})
	done := make(chan int)
	go func() {
		code, _ := get(t, f, "/api/v1/query", "t1", url.Values{"query": {"sum(mem_bytes)"}, "time": {formatTime(base.Add(time.Hour).UnixMilli())}})
		done <- code
	}()
	for range 4 {
		select {
		case <-api.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the shards did not all start")
		}
	}
	close(api.block)
	require.Equal(t, 200, <-done)
}

func TestShardCount(t *testing.T) {
	for _, tc := range []struct {
		name                                               string
		total, maxSharded, parallelism, computations, legs int
		want                                               int
	}{
		{"no bounds", 16, 0, 0, 1, 1, 16},
		{"two cores, one piece", 16, 128, 2, 1, 1, 2},
		{"fewer shards than cores", 3, 128, 8, 1, 1, 3},
		{"eight cores, two pieces", 16, 128, 8, 2, 1, 4},
		{"pieces use the cores", 16, 128, 2, 2, 1, 1},
		{"more pieces than cores", 16, 128, 2, 30, 1, 1},
		{"legs divide the cores", 16, 128, 4, 1, 2, 2},
		{"avg on two cores", 16, 128, 2, 1, 2, 1},
		{"max sharded queries", 16, 128, 0, 8, 2, 8},
		{"max sharded queries below one per piece", 16, 128, 0, 200, 1, 1},
		{"both", 16, 20, 64, 2, 2, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, shardCount(tc.total, tc.maxSharded, tc.parallelism, tc.computations, tc.legs))
		})
	}
}

// TestShardsBoundedByParallelism: with 16 shards configured, a query is
// cut into as many as the node's CPU slots run at once (two here), a
// range query whose pieces already fill them is not sharded, and
// Options.ShardParallelism overrides the bound.
func TestShardsBoundedByParallelism(t *testing.T) {
	api := newFakeAPI(t)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	shardingData(t, api, base)
	lim := DefaultLimits
	lim.TotalShards = 16
	lim.SplitInterval = 2 * time.Hour
	lim.CacheResults = false
	for _, tc := range []struct {
		name        string
		parallelism int
		// shards of an instant query, of a range query in one piece,
		// and of one in two pieces (0: not sharded)
		instant, onePiece, twoPieces int
	}{
		{"slots", 0, 2, 2, 0},
		{"set", 6, 6, 6, 2 * 3},
		{"unbounded", -1, 16, 16, 2 * 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFrontend(t, api, Options{Defaults: lim, ParallelizeShardableQueries: true, CPUSlots: 2, MaxInFlight: 4,
				ShardParallelism: tc.parallelism})
			for _, q := range []struct {
				path string
				form url.Values
				want int
			}{
				{"/api/v1/query", url.Values{"query": {"sum(mem_bytes)"}, "time": {formatTime(base.Add(time.Hour).UnixMilli())}}, tc.instant},
				{"/api/v1/query_range", rangeForm("sum(mem_bytes)", base.Add(10*time.Minute), base.Add(time.Hour), time.Minute), tc.onePiece},
				{"/api/v1/query_range", rangeForm("sum(mem_bytes)", base.Add(time.Hour), base.Add(3*time.Hour), time.Minute), tc.twoPieces},
			} {
				shards := testutil.ToFloat64(f.m.shards)
				_, want := get(t, api, q.path, "t1", q.form)
				code, got := get(t, f, q.path, "t1", q.form)
				require.Equal(t, 200, code, got)
				requireClose(t, want, got)
				require.Equal(t, float64(q.want), testutil.ToFloat64(f.m.shards)-shards, "%s %v", q.path, q.form)
			}
		})
	}
}

// TestShardingByEstimate: with a target of series (or samples) per shard,
// a shardable query runs unsharded until it has run once, then in as
// many shards as its series call for (30 series: 2 shards at 20 a shard,
// none at 40; 30 samples, one a series, the same), and a query whose
// shards gave annotations is not cut again.
func TestShardingByEstimate(t *testing.T) {
	api := newFakeAPI(t)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	shardingData(t, api, base)
	instant := func(q string) url.Values {
		return url.Values{"query": {q}, "time": {formatTime(base.Add(time.Hour).UnixMilli())}}
	}
	for _, tc := range []struct {
		series, samples int
		want            []float64 // shards of each run
	}{
		{20, 0, []float64{0, 2, 2}},
		{40, 0, []float64{0, 0, 0}},
		{0, 20, []float64{0, 2, 2}},
		{40, 20, []float64{0, 2, 2}}, // the larger count
		{0, 0, []float64{4, 4, 4}},   // no estimates: every run cut
	} {
		t.Run(fmt.Sprint(tc.series, "/", tc.samples), func(t *testing.T) {
			lim := DefaultLimits
			lim.TotalShards = 4
			lim.TargetSeriesPerShard, lim.TargetSamplesPerShard = tc.series, tc.samples
			f := newTestFrontend(t, api, Options{Defaults: lim, ParallelizeShardableQueries: true, ShardParallelism: -1})
			form := instant(`sum by (job) (mem_bytes)`)
			_, want := get(t, api, "/api/v1/query", "t1", form)
			for run, shards := range tc.want {
				before := testutil.ToFloat64(f.m.shards)
				code, got := get(t, f, "/api/v1/query", "t1", form)
				require.Equal(t, 200, code, got)
				requireClose(t, want, got)
				require.Equal(t, shards, testutil.ToFloat64(f.m.shards)-before, "run %d", run)
			}
			// Another tenant's run of the same query learns for itself.
			if tc.series > 0 || tc.samples > 0 {
				before := testutil.ToFloat64(f.m.shards)
				get(t, f, "/api/v1/query", "t2", form)
				require.Equal(t, before, testutil.ToFloat64(f.m.shards), "t2's first run")
			}
		})
	}

	t.Run("annotations", func(t *testing.T) {
		lim := DefaultLimits
		lim.TotalShards = 2
		lim.TargetSeriesPerShard = 10
		f := newTestFrontend(t, api, Options{Defaults: lim, ParallelizeShardableQueries: true, ShardParallelism: -1})
		form := instant(`sum(rate(mem_bytes[5m]))`)
		_, want := get(t, api, "/api/v1/query", "t1", form)
		for run, unsharded := range []float64{0, 1, 1} {
			code, got := get(t, f, "/api/v1/query", "t1", form)
			require.Equal(t, 200, code)
			require.Equal(t, want, got)
			require.Equal(t, unsharded, testutil.ToFloat64(f.m.unsharded), "run %d", run)
		}
	})
}

// TestEstimatesBounded: past maxEstimates the least recently used go.
func TestEstimatesBounded(t *testing.T) {
	var e estimates
	now := time.Unix(0, 0)
	key := func(i int) estimateKey { return estimateKey{tenant: "t", query: fmt.Sprint(i)} }
	for i := range maxEstimates {
		e.record(key(i), int64(i), 0, false, now.Add(time.Duration(i)*time.Second))
	}
	_, ok := e.get(key(0), now.Add(time.Duration(maxEstimates)*time.Second)) // used again: the newest
	require.True(t, ok)
	e.record(key(maxEstimates), 1, 0, false, now.Add(time.Duration(maxEstimates+1)*time.Second))
	require.LessOrEqual(t, e.len(), maxEstimates)
	for _, tc := range []struct {
		i    int
		kept bool
	}{{0, true}, {1, false}, {maxEstimates / 10, false}, {maxEstimates/10 + 1, true}, {maxEstimates, true}} {
		_, ok := e.get(key(tc.i), now)
		require.Equal(t, tc.kept, ok, "estimate %d", tc.i)
	}
}
