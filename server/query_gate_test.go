package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestQueryGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		g := newQueryGate(1, 1, reg)
		ctx := context.Background()
		leaveA, err := g.enter(ctx)
		require.NoError(t, err)

		// B waits for A's slot.
		admittedB := make(chan func())
		go func() {
			leave, err := g.enter(ctx)
			if err != nil {
				panic(err)
			}
			admittedB <- leave
		}()
		synctest.Wait()
		require.Equal(t, 1.0, testutil.ToFloat64(g.waiting))

		// The queue holds one: C is refused at once.
		_, err = g.enter(ctx)
		require.ErrorIs(t, err, ErrTooManyQueries)
		require.EqualError(t, err, "server: too many concurrent queries: 1 running and 1 waiting, the most this node queues; retry later")

		leaveA()
		leaveB := <-admittedB
		require.Equal(t, 0.0, testutil.ToFloat64(g.waiting))
		require.Equal(t, 1.0, testutil.ToFloat64(g.running))

		// D waits until its deadline.
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, err = g.enter(dctx)
		require.ErrorIs(t, err, ErrTooManyQueries)
		require.EqualError(t, err, "server: too many concurrent queries: no slot of 1 came free within the query timeout (waited 1m0s); retry later")

		// E's client goes away.
		ectx, cancel := context.WithCancel(ctx)
		go func() {
			synctest.Wait()
			cancel()
		}()
		_, err = g.enter(ectx)
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, ErrTooManyQueries)

		leaveB()
		require.Equal(t, 0.0, testutil.ToFloat64(g.running))
		require.Equal(t, 1.0, testutil.ToFloat64(g.refused.WithLabelValues("queue_full")))
		require.Equal(t, 1.0, testutil.ToFloat64(g.refused.WithLabelValues("timeout")))
	})
}

// Queries beyond the node's slots wait within their timeout; beyond the
// queue, or past the timeout, they are answered 503.
func TestQueryAPIConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := blockingStorage{unblock: make(chan struct{})}
		api, err := NewQueryAPI(s, QueryOptions{MaxConcurrent: 1, MaxQueued: 1, Timeout: time.Minute})
		require.NoError(t, err)
		query := func(ctx context.Context, codes chan<- int, errs chan<- string) {
			r := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/query?query=up&time=100", nil)
			w := httptest.NewRecorder()
			api.ServeHTTP(w, r)
			var resp apiResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				panic(err)
			}
			codes <- w.Code
			errs <- resp.Error
		}
		codesA, errsA := make(chan int, 1), make(chan string, 1)
		go query(context.Background(), codesA, errsA) // A runs, blocked in Select
		synctest.Wait()
		// B waits for A's slot, with a deadline of its own before A's.
		ctxB, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		codesB, errsB := make(chan int, 1), make(chan string, 1)
		go query(ctxB, codesB, errsB)
		synctest.Wait()

		// C finds the queue full.
		code, resp := call(t, api, "GET", "/api/v1/query", "", url.Values{"query": {"up"}})
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "unavailable", resp.ErrorType)
		require.Contains(t, resp.Error, "1 running and 1 waiting")

		// format_query parses PromQL: it takes a slot too.
		code, _ = call(t, api, "GET", "/api/v1/format_query", "", url.Values{"query": {"up"}})
		require.Equal(t, http.StatusServiceUnavailable, code)

		// B's deadline passes while A holds the slot.
		require.Equal(t, http.StatusServiceUnavailable, <-codesB)
		require.Contains(t, <-errsB, "no slot of 1 came free within the query timeout (waited 30s)")

		close(s.unblock)
		require.Equal(t, http.StatusOK, <-codesA)
		require.Empty(t, <-errsA)

		// Series and labels do not parse PromQL: no slot needed.
		code, resp = call(t, api, "GET", "/api/v1/labels", "", nil)
		require.Equal(t, http.StatusOK, code, resp.Error)
	})
}
