package frontend

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/tenant"
)

// TestQueueRoundRobin: one worker takes the tenants' tasks in turns, so a
// tenant with a backlog delays another's task by at most one of its own.
func TestQueueRoundRobin(t *testing.T) {
	q := newQueue(1, newMetrics(nil))
	defer q.close()
	ctx := context.Background()
	hold := make(chan struct{})
	running := make(chan struct{})
	go q.do(ctx, "x", 0, func(context.Context) { close(running); <-hold })
	<-running
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	n := 0
	enqueue := func(tenant string) {
		n++
		want := n
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, q.do(ctx, tenant, 0, func(context.Context) {
				mu.Lock()
				order = append(order, tenant)
				mu.Unlock()
			}))
		}()
		require.Eventually(t, func() bool { return q.length() == want }, 5*time.Second, time.Millisecond)
	}
	for range 4 {
		enqueue("heavy")
	}
	enqueue("light")
	enqueue("other")
	close(hold)
	wg.Wait()
	require.Equal(t, []string{"heavy", "light", "other", "heavy", "heavy", "heavy"}, order)
}

// TestQueueCancel: a task whose context ends while it waits leaves the
// queue and never runs; the caller gets the context's error.
func TestQueueCancel(t *testing.T) {
	m := newMetrics(nil)
	q := newQueue(1, m)
	defer q.close()
	hold := make(chan struct{})
	running := make(chan struct{})
	go q.do(context.Background(), "a", 0, func(context.Context) { close(running); <-hold })
	<-running
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	ran := false
	go func() { errc <- q.do(ctx, "b", 0, func(context.Context) { ran = true }) }()
	require.Eventually(t, func() bool { return q.length() == 1 }, 5*time.Second, time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(m.queueLength.WithLabelValues("b")))
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	require.Equal(t, 0, q.length())
	close(hold)
	q.close()
	require.False(t, ran)
	require.Equal(t, 0, testutil.CollectAndCount(m.queueLength), "no queue length left for tenants without tasks")
}

// TestMaxOutstanding: past -query-frontend.max-outstanding-requests-per-tenant
// a tenant's query gets 429 with Mimir's words; other tenants go on, and
// so does the tenant once its queries are answered.
func TestMaxOutstanding(t *testing.T) {
	api := newFakeAPI(t)
	api.block = make(chan struct{})
	api.started = make(chan string, 10)
	lim := DefaultLimits
	lim.MaxOutstanding = 2
	reg := prometheus.NewRegistry()
	f := newTestFrontend(t, api, Options{Defaults: lim, MaxInFlight: 4, Registerer: reg})
	form := url.Values{"query": {"1"}, "time": {"100"}}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			code, body := get(t, f, "/api/v1/query", "a", form)
			require.Equal(t, 200, code, body)
		})
		<-api.started
	}
	code, body := get(t, f, "/api/v1/query", "a", form)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.JSONEq(t, `{"status":"error","errorType":"too_many_requests","error":"too many outstanding requests"}`, body)
	require.Equal(t, 1.0, testutil.ToFloat64(f.m.discarded.WithLabelValues("a", "too_many_outstanding")))
	wg.Go(func() {
		code, body := get(t, f, "/api/v1/query", "b", form)
		require.Equal(t, 200, code, body)
	})
	<-api.started
	close(api.block)
	wg.Wait()
	code, body = get(t, f, "/api/v1/query", "a", form)
	require.Equal(t, 200, code, body)
}

// TestClientGoesAway: when the client goes away, the query's pieces stop:
// waiting ones leave the queue, running ones see their context end.
func TestClientGoesAway(t *testing.T) {
	api := newFakeAPI(t)
	api.block = make(chan struct{})
	defer close(api.block)
	api.started = make(chan string, 100)
	f := newTestFrontend(t, api, Options{MaxInFlight: 1})
	ctx, cancel := context.WithCancel(context.Background())
	end := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	form := rangeForm("up", end.Add(-72*time.Hour), end, time.Minute)
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/v1/query_range?"+form.Encode(), nil)
	r.Header.Set(tenant.Header, "a")
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { f.ServeHTTP(w, r); close(done) }()
	<-api.started // one piece runs, the others wait
	require.Eventually(t, func() bool { return f.queue.length() == 3 }, 5*time.Second, time.Millisecond)
	cancel()
	<-done
	require.Equal(t, statusClientClosed, w.Code, w.Body.String())
	require.Equal(t, 0, f.queue.length())
	require.EqualValues(t, 1, api.calls.Load(), "the waiting pieces never ran")
}

// TestSlowQueryLog: a query over -query-frontend.log-queries-longer-than is
// logged with tenant, query, duration, series and samples fetched.
func TestSlowQueryLog(t *testing.T) {
	api := newFakeAPI(t)
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	loadCounter(t, api, "a", "c_total", 3, now.Add(-2*time.Hour), now)
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	f := newTestFrontend(t, api, Options{LogQueriesLongerThan: time.Nanosecond, Logger: logger})
	code, body := get(t, f, "/api/v1/query_range", "a", rangeForm("sum(c_total)", now.Add(-time.Hour), now, time.Minute))
	require.Equal(t, 200, code, body)
	mu.Lock()
	line := buf.String()
	mu.Unlock()
	for _, want := range []string{`msg="slow query detected"`, "tenant=a", `query=sum(c_total)`, "duration=", "series_fetched=", "samples_fetched=", "op=query_range", "step=1m0s"} {
		require.Contains(t, line, want)
	}
	require.NotContains(t, line, "samples_fetched=0 ")
	require.NotContains(t, body, `"stats"`, "the API's stats are not passed on unless asked")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestQueueTenantCap: a tenant's tasks hold at most its cap of workers,
// so another tenant's task runs at once on the worker left, however many
// of the first tenant's wait.
func TestQueueTenantCap(t *testing.T) {
	q := newQueue(2, newMetrics(nil))
	defer q.close()
	ctx := context.Background()
	hold := make(chan struct{})
	started := make(chan string, 10)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			require.NoError(t, q.do(ctx, "heavy", 1, func(context.Context) { started <- "heavy"; <-hold }))
		})
	}
	require.Equal(t, "heavy", <-started)
	require.Eventually(t, func() bool { return q.length() == 2 }, 5*time.Second, time.Millisecond)
	light := make(chan struct{})
	go func() {
		require.NoError(t, q.do(ctx, "light", 1, func(context.Context) {}))
		close(light)
	}()
	select {
	case <-light:
	case <-time.After(10 * time.Second):
		t.Fatal("the light tenant's task waited for the heavy one's")
	}
	select {
	case s := <-started:
		t.Fatalf("a second %s task ran past the cap", s)
	default:
	}
	close(hold)
	wg.Wait()
}
