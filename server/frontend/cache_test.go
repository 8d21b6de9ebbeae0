package frontend

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/tenant"
)

// startMemcached starts Debian's memcached (make e2e-deps and .ci/run
// install it) on a free loopback port for the test and returns its
// address. Without the binary the test is skipped, or fails in CI.
func startMemcached(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("memcached not found: .ci/run installs it (apt-get install memcached)")
		}
		t.Skip("memcached not found: run make e2e-deps")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses to run as root otherwise
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clock is a settable clock for the cache's freshness and TTL.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// backends runs fn once per results cache backend: the embedded LRU and
// a real memcached.
func backends(t *testing.T, fn func(t *testing.T, newCache func(now func() time.Time) Cache)) {
	t.Run("inmemory", func(t *testing.T) {
		fn(t, func(now func() time.Time) Cache { return NewLRU(64<<20, now, nil) })
	})
	t.Run("memcached", func(t *testing.T) {
		addr := startMemcached(t)
		fn(t, func(func() time.Time) Cache {
			m, err := NewMemcached(MemcachedOptions{Addresses: []string{addr}, Timeout: time.Second})
			require.NoError(t, err)
			t.Cleanup(func() { m.Close() })
			return m
		})
	})
}

// loadCounter writes one counter series per instance, every 15 s over
// [from, to), into the tenant.
func loadCounter(t *testing.T, api *fakeAPI, org, name string, instances int, from, to time.Time) {
	for i := range instances {
		var ts []int64
		var vs []float64
		for k, tt := 0, from; tt.Before(to); k, tt = k+1, tt.Add(15*time.Second) {
			ts = append(ts, tt.UnixMilli())
			vs = append(vs, float64(k*(i+1)))
		}
		api.add(t, org, labels.FromStrings("__name__", name, "instance", strconv.Itoa(i)), ts, vs)
	}
}

// TestResultsCache: a dashboard's refresh computes only the steps the
// cache lacks, and answers what an uncached query answers.
func TestResultsCache(t *testing.T) {
	backends(t, func(t *testing.T, newCache func(func() time.Time) Cache) {
		api := newFakeAPI(t)
		now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		clk := &clock{t: now}
		loadCounter(t, api, "t1", "c_total", 3, now.Add(-73*time.Hour), now.Add(time.Hour))
		f := newTestFrontend(t, api, Options{Cache: newCache(clk.now), Now: clk.now})
		const q = `sum by (instance) (rate(c_total[5m]))`
		step := time.Minute
		for refresh := range 4 {
			end := clk.now().Truncate(step)
			start := end.Add(-72 * time.Hour)
			api.ranges = nil
			form := rangeForm(q, start, end, step)
			code, got := get(t, f, "/api/v1/query_range", "t1", form)
			require.Equal(t, 200, code, got)
			saved := api.ranges
			_, want := get(t, api, "/api/v1/query_range", "t1", form)
			require.Equal(t, want, got, "refresh %d", refresh)
			if refresh == 0 {
				require.Len(t, saved, 4, "a cold query computes every piece (3 days and a bit)")
				continue
			}
			// Later refreshes compute only what is newer than the
			// freshness window, plus what the clock moved.
			require.Len(t, saved, 1, "refresh %d computed %v", refresh, saved)
			fresh := clk.now().Add(-DefaultLimits.MaxCacheFreshness - 2*time.Minute).UnixMilli()
			require.GreaterOrEqual(t, saved[0].start, fresh, "refresh %d computed %v", refresh, saved)
			clk.add(30 * time.Second)
		}
	})
}

// TestBackfillWithinTTL: a sample written into a range that is cached
// appears in answers within the documented bound (ResultsCacheTTL after
// the write), and at once within MaxCacheFreshness of now.
func TestBackfillWithinTTL(t *testing.T) {
	backends(t, func(t *testing.T, newCache func(func() time.Time) Cache) {
		api := newFakeAPI(t)
		now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		clk := &clock{t: now}
		loadCounter(t, api, "t1", "up", 1, now.Add(-48*time.Hour), now)
		ttl := 20 * time.Minute
		lim := DefaultLimits
		lim.ResultsCacheTTL = ttl
		f := newTestFrontend(t, api, Options{Cache: newCache(clk.now), Now: clk.now, Defaults: lim})
		form := func() map[string][]string {
			end := clk.now().Truncate(time.Minute)
			return rangeForm(`count(up)`, end.Add(-24*time.Hour), end, time.Minute)
		}
		countAt := func(ts int64) string {
			code, body := get(t, f, "/api/v1/query_range", "t1", form())
			require.Equal(t, 200, code, body)
			res, err := decodeResult([]byte(body), nil)
			require.NoError(t, err)
			require.Len(t, res.series, 1)
			for _, p := range res.series[0].floats {
				if p.t == ts {
					return strconv.FormatFloat(p.v, 'f', -1, 64)
				}
			}
			return "absent"
		}
		old := clk.now().Add(-6 * time.Hour).Truncate(time.Minute).UnixMilli()
		recent := clk.now().Add(-2 * time.Minute).Truncate(time.Minute).UnixMilli()
		require.Equal(t, "1", countAt(old)) // caches everything older than 10m
		// Backfill: a new series with samples 6 hours and 2 minutes old.
		api.add(t, "t1", labels.FromStrings("__name__", "up", "instance", "late"), []int64{old, recent}, []float64{1, 1})
		require.Equal(t, "1", countAt(old), "within the TTL the cached answer is served (the documented staleness)")
		require.Equal(t, "2", countAt(recent), "samples within max cache freshness are never hidden")
		clk.add(ttl - time.Minute)
		require.Equal(t, "1", countAt(old), "still within the TTL")
		clk.add(time.Minute)
		require.Equal(t, "2", countAt(old), "once the TTL has passed the backfilled sample appears")
	})
}

// TestForget: after a deletion (Forget) the tenant's cached results are
// not used, in a shared cache too, while another tenant's still are.
func TestForget(t *testing.T) {
	backends(t, func(t *testing.T, newCache func(func() time.Time) Cache) {
		api := newFakeAPI(t)
		now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		clk := &clock{t: now}
		for _, org := range []string{"t1", "t2"} {
			loadCounter(t, api, org, "up", 1, now.Add(-48*time.Hour), now)
		}
		f := newTestFrontend(t, api, Options{Cache: newCache(clk.now), Now: clk.now})
		end := clk.now().Truncate(time.Minute)
		form := rangeForm(`count(up)`, end.Add(-24*time.Hour), end, time.Minute)
		for _, org := range []string{"t1", "t2"} {
			code, body := get(t, f, "/api/v1/query_range", org, form)
			require.Equal(t, 200, code, body)
		}
		// The deletion of t1's data, then its frontend forgets.
		api.deleteAll(t, "t1")
		f.Forget("t1")
		clk.add(time.Second)
		for org, want := range map[string]int{"t1": 0, "t2": 1} {
			api.ranges = nil
			code, body := get(t, f, "/api/v1/query_range", org, form)
			require.Equal(t, 200, code, body)
			res, err := decodeResult([]byte(body), nil)
			require.NoError(t, err)
			require.Len(t, res.series, want, "%s: %s", org, body)
			if org == "t2" {
				require.Len(t, api.ranges, 1, "t2's refresh computes only the fresh piece")
			}
		}
	})
}

// TestGeneration: a deletion on another node bumps the tenant's cache
// generation; every frontend then stops using the results cached before
// it, from its own cache and from a shared one, and keeps the other
// tenants' results.
func TestGeneration(t *testing.T) {
	backends(t, func(t *testing.T, newCache func(func() time.Time) Cache) {
		api := newFakeAPI(t)
		now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
		clk := &clock{t: now}
		for _, org := range []string{"t1", "t2"} {
			loadCounter(t, api, org, "up", 1, now.Add(-48*time.Hour), now)
		}
		var mu sync.Mutex
		gens := map[string]uint64{}
		gen := func(tenant string) uint64 { mu.Lock(); defer mu.Unlock(); return gens[tenant] }
		shared := newCache(clk.now)
		nodes := []*Frontend{
			newTestFrontend(t, api, Options{Cache: shared, Now: clk.now, Generation: gen}),
			newTestFrontend(t, api, Options{Cache: shared, Now: clk.now, Generation: gen}),
			newTestFrontend(t, api, Options{Cache: NewLRU(64<<20, clk.now, nil), Now: clk.now, Generation: gen}),
		}
		end := clk.now().Truncate(time.Minute)
		form := rangeForm(`count(up)`, end.Add(-24*time.Hour), end, time.Minute)
		for _, f := range nodes {
			for _, org := range []string{"t1", "t2"} {
				code, body := get(t, f, "/api/v1/query_range", org, form)
				require.Equal(t, 200, code, body)
			}
		}
		// t1's data is deleted through another node, which bumps its
		// generation; no frontend here forgets anything itself.
		api.deleteAll(t, "t1")
		mu.Lock()
		gens["t1"]++
		mu.Unlock()
		clk.add(time.Second)
		for i, f := range nodes {
			for org, want := range map[string]int{"t1": 0, "t2": 1} {
				api.ranges = nil
				code, body := get(t, f, "/api/v1/query_range", org, form)
				require.Equal(t, 200, code, body)
				res, err := decodeResult([]byte(body), nil)
				require.NoError(t, err)
				require.Len(t, res.series, want, "node %d, %s: %s", i, org, body)
				if org == "t2" {
					require.Len(t, api.ranges, 1, "node %d: t2's refresh computes only the fresh piece", i)
				}
			}
		}
	})
}

// TestGenerationFederated: a federated read's cache generation grows with
// any of its tenants', and a Forget of one of them forgets it.
func TestGenerationFederated(t *testing.T) {
	gens := map[string]uint64{"a": 3, "b": 0}
	clk := &clock{t: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	f := newTestFrontend(t, newFakeAPI(t), Options{Now: clk.now, Generation: func(tn string) uint64 { return gens[tn] }})
	before := f.generation("a|b")
	require.Equal(t, uint64(3), before)
	gens["b"]++
	require.Greater(t, f.generation("a|b"), before)
	require.Equal(t, uint64(1), f.generation("b"))

	require.Zero(t, f.forgottenBefore("a|b"))
	f.Forget("b")
	require.Equal(t, clk.now().UnixMilli(), f.forgottenBefore("a|b"))
	require.Zero(t, f.forgottenBefore("a"))
}

// TestCacheNotUsed: queries that must not be answered from the cache.
func TestCacheNotUsed(t *testing.T) {
	api := newFakeAPI(t)
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: now}
	loadCounter(t, api, "t1", "c_total", 1, now.Add(-49*time.Hour), now)
	loadCounter(t, api, "t2", "c_total", 2, now.Add(-49*time.Hour), now)
	cache := NewLRU(64<<20, clk.now, nil)
	f := newTestFrontend(t, api, Options{Cache: cache, Now: clk.now})
	end := now.Truncate(time.Minute)
	start := end.Add(-48 * time.Hour)
	for _, tc := range []struct {
		name, org, q string
		extra        map[string]string
		cached       bool
	}{
		{"plain", "t1", `c_total`, nil, true},
		{"negative offset", "t1", `c_total offset -1h`, nil, false},
		{"@ end() is now", "t1", `c_total @ end()`, nil, false},
		{"@ an old time", "t1", `c_total @ 1700000000`, nil, true},
		{"stats asked", "t1", `c_total`, map[string]string{"stats": "all"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := rangeForm(tc.q, start, end, time.Minute)
			for k, v := range tc.extra {
				form.Set(k, v)
			}
			_, want := get(t, f, "/api/v1/query_range", tc.org, form)
			api.ranges = nil
			_, got := get(t, f, "/api/v1/query_range", tc.org, form)
			if _, ok := tc.extra["stats"]; !ok {
				require.Equal(t, want, got)
			}
			if tc.cached {
				require.Len(t, api.ranges, 1, "only the fresh piece computed again")
			} else {
				require.Len(t, api.ranges, 3, "every piece computed again")
			}
		})
	}
	// Tenants do not share entries: t2's query computes everything.
	api.ranges = nil
	_, body := get(t, f, "/api/v1/query_range", "t2", rangeForm(`c_total`, start, end, time.Minute))
	require.Len(t, api.ranges, 3)
	res, err := decodeResult([]byte(body), nil)
	require.NoError(t, err)
	require.Len(t, res.series, 2)
}

func TestExtentCodec(t *testing.T) {
	e := &extent{key: "k", cachedAt: 1700000000000, start: -60_000, end: 120_000, series: []series{
		{metric: []byte(`{"__name__":"a","x":"<y>"}`), floats: []fpoint{{-60_000, 1}, {0, math.NaN()}, {120_000, math.Inf(-1)}}},
		{metric: []byte(`{}`), floats: []fpoint{{60_000, math.Copysign(0, -1)}}},
	}}
	v := encodeExtent(e)
	got, err := decodeExtent(v)
	require.NoError(t, err)
	require.Equal(t, e.key, got.key)
	require.Equal(t, []int64{e.cachedAt, e.start, e.end}, []int64{got.cachedAt, got.start, got.end})
	require.Len(t, got.series, 2)
	for i := range e.series {
		require.Equal(t, string(e.series[i].metric), string(got.series[i].metric))
		require.Equal(t, len(e.series[i].floats), len(got.series[i].floats))
		for j, p := range e.series[i].floats {
			require.Equal(t, p.t, got.series[i].floats[j].t)
			require.Equal(t, math.Float64bits(p.v), math.Float64bits(got.series[i].floats[j].v))
		}
	}
	require.Equal(t, `{"__name__":"a","x":"<y>"}`, fmt.Sprint(string(got.series[0].metric)))
	// Every truncation and a bad version are errors, never a panic.
	for i := range len(v) {
		_, err := decodeExtent(v[:i])
		require.Error(t, err, "truncated to %d bytes", i)
	}
	bad := append([]byte{9}, v[1:]...)
	_, err = decodeExtent(bad)
	require.ErrorIs(t, err, errCorrupt)
}

func TestLRU(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	c := NewLRU(4*(100+lruEntryOverhead+1), clk.now, nil)
	ctx := context.Background()
	val := make([]byte, 100)
	for i := range 5 {
		c.Store(ctx, strconv.Itoa(i), val, time.Minute)
	}
	require.Equal(t, 4, c.Len(), "the oldest entry was evicted to stay within the size")
	got := c.Fetch(ctx, []string{"0", "1", "4"})
	require.NotContains(t, got, "0")
	require.Contains(t, got, "1")
	c.Store(ctx, "5", val, time.Minute) // evicts 2, the least recently used
	got = c.Fetch(ctx, []string{"1", "2"})
	require.Contains(t, got, "1")
	require.NotContains(t, got, "2")
	clk.add(time.Minute)
	require.Empty(t, c.Fetch(ctx, []string{"1", "3", "4", "5"}), "expired")
	require.Equal(t, 0, c.Len())
	c.Store(ctx, "big", make([]byte, 1000), time.Minute)
	require.Equal(t, 0, c.Len(), "a value over a quarter of the cache is not kept")
}

// TestCacheControlNoStore: a range query with Cache-Control: no-store is
// computed whole and leaves nothing in the cache; without it, the same
// query is cached as usual.
func TestCacheControlNoStore(t *testing.T) {
	api := newFakeAPI(t)
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: now}
	loadCounter(t, api, "t1", "c_total", 1, now.Add(-49*time.Hour), now)
	f := newTestFrontend(t, api, Options{Cache: NewLRU(64<<20, clk.now, nil), Now: clk.now})
	end := now.Truncate(time.Minute)
	form := rangeForm(`c_total`, end.Add(-48*time.Hour), end, time.Minute)
	noStoreGet := func(value string) string {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/query_range?"+form.Encode(), nil)
		r.Header.Set(tenant.Header, "t1")
		r.Header.Set("Cache-Control", value)
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		return w.Body.String()
	}
	want := noStoreGet("no-store")
	api.ranges = nil
	require.Equal(t, want, noStoreGet("max-age=0, No-Store"))
	require.Len(t, api.ranges, 3, "no-store: every piece computed again")
	api.ranges = nil
	_, got := get(t, f, "/api/v1/query_range", "t1", form)
	require.Equal(t, want, got)
	require.Len(t, api.ranges, 3, "no-store stored nothing")
	api.ranges = nil
	_, got = get(t, f, "/api/v1/query_range", "t1", form)
	require.Equal(t, want, got)
	require.Len(t, api.ranges, 1, "without it, only the fresh piece computed again")
	api.ranges = nil
	require.Equal(t, want, noStoreGet("no-cache"))
	require.Len(t, api.ranges, 1, "no-cache is not no-store")
}
