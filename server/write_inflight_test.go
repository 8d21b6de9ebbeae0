package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// No sequence of requests takes a node down: however many worst-case
// pushes arrive at once, over real HTTP, those past the node's in-flight
// limits get 429 at once, the heap holds at most pushMemPerByte times the
// bytes in flight (plus a constant), the admitted ones succeed, and
// nothing stays behind.
func TestWriteInflightLimits(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var valid worstCase
	for _, wc := range worstCases(now) {
		if wc.name == "valid-tiny" {
			valid = wc
		}
	}
	// Requests of ~8 MiB decompressed (~1 MiB compressed): two fit in the
	// bytes limit, not three.
	const decompressed = 8 << 20
	const parallel = 8
	var bodies [][]byte
	var reserved int
	for i := range parallel {
		body, raw, _ := worstBody(valid, decompressed, now.UnixMilli()+int64(i))
		bodies = append(bodies, body)
		reserved = max(reserved, len(body)+raw)
	}
	tiny := encodeWrite(t, series([]string{"__name__", "tiny"}, prompb.Sample{Timestamp: now.UnixMilli(), Value: 1}))
	maxBytes := 2*reserved + reserved/2

	entered := make(chan struct{}, 3*parallel+8) // one per proposed part
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	propose := func(ctx context.Context, _ []byte) error {
		entered <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	reg := prometheus.NewRegistry()
	h, err := NewWriteHandler(nodeWriter(t, propose), WriteOptions{
		Decoder:             remotewrite.Options{MaxCompressedBytes: 2 << 20, MaxDecompressedBytes: decompressed},
		MultiTenant:         true,
		MaxInflightRequests: 3,
		MaxInflightBytes:    maxBytes,
		Now:                 func() time.Time { return now },
		Registerer:          reg,
	})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer unblock() // first, also when the test fails half way
	// push may run in other goroutines: it reports errors as status 0.
	push := func(body []byte) (int, string) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/push", bytes.NewReader(body))
		if err != nil {
			return 0, err.Error()
		}
		req.Header.Set(tenant.Header, "t")
		resp, err := srv.Client().Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		msg, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err.Error()
		}
		return resp.StatusCode, string(msg)
	}
	base := liveHeap()

	// All at once: each is either admitted, and then waits in the
	// proposer with its three parts, or refused with 429 at once.
	type answer struct {
		code int
		msg  string
	}
	answers := make(chan answer, parallel)
	var wg sync.WaitGroup
	for _, body := range bodies {
		wg.Go(func() {
			code, msg := push(body)
			answers <- answer{code, msg}
		})
	}
	admitted, refused := 0, 0
	for parts := 0; refused+parts/3 < parallel; {
		select {
		case a := <-answers:
			// Refused by the bytes, or by the count while three still
			// read their bodies.
			require.Equal(t, http.StatusTooManyRequests, a.code, a.msg)
			require.Contains(t, a.msg, "(-distributor.instance-limits.max-inflight-push-requests")
			refused++
		case <-entered:
			parts++
			admitted = parts / 3
		}
	}
	require.GreaterOrEqual(t, admitted, 1)
	require.LessOrEqual(t, admitted, 2)
	held := h.limit.bytes.Load()
	require.Equal(t, int64(admitted), h.limit.requests.Load())
	require.LessOrEqual(t, held, int64(maxBytes))
	heap := int64(liveHeap()) - int64(base)
	t.Logf("%d admitted holding %d bytes, %d refused; heap %d MiB above the baseline (%.1f per byte held)",
		admitted, held, refused, heap>>20, float64(heap)/float64(held))
	require.LessOrEqual(t, heap, pushMemPerByte*held+4<<20, "heap above the bound of the bytes in flight")

	// The count limit: tiny requests fill the slots left, the next is
	// refused.
	for range 3 - admitted {
		wg.Go(func() {
			code, msg := push(tiny)
			answers <- answer{code, msg}
		})
		<-entered
	}
	code, msg := push(tiny)
	require.Equal(t, http.StatusTooManyRequests, code, msg)
	require.Contains(t, msg, "(-distributor.instance-limits.max-inflight-push-requests)")
	require.Equal(t, 3.0, gauge(t, reg, "myelin_inflight_push_requests"))

	unblock()
	wg.Wait()
	close(answers)
	for a := range answers {
		require.Equal(t, http.StatusNoContent, a.code, a.msg)
	}
	require.Equal(t, 0.0, gauge(t, reg, "myelin_inflight_push_requests"))
	require.Equal(t, 0.0, gauge(t, reg, "myelin_inflight_push_requests_bytes"))
	require.Equal(t, float64(refused+1), testutil.ToFloat64(h.limit.refused.WithLabelValues(refusedBytes))+
		testutil.ToFloat64(h.limit.refused.WithLabelValues(refusedRequests)))
	require.Equal(t, float64(refused+1), testutil.ToFloat64(h.metrics.requests.WithLabelValues("t", "429")))
	if kept := int64(liveHeap()) - int64(base); kept > 1<<20 {
		t.Errorf("%d bytes kept after the requests", kept)
	}
}

// gauge reads an unlabelled gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A body without a Content-Length is read and reserved a chunk at a
// time: within the bytes limit it is served, past it refused with 429,
// and past the size limit refused with 400.
func TestWriteChunkedBody(t *testing.T) {
	h, err := NewWriteHandler(newGroupWriter(t), WriteOptions{
		Decoder:          remotewrite.Options{MaxCompressedBytes: 1 << 20, MaxDecompressedBytes: 1 << 20},
		MultiTenant:      true,
		MaxInflightBytes: 2 << 20,
	})
	require.NoError(t, err)
	push := func(body io.Reader) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/push", body)
		r.ContentLength = -1 // chunked
		r.Header.Set(tenant.Header, "t")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	body := encodeWrite(t, series([]string{"__name__", "up"}, prompb.Sample{Timestamp: time.Now().UnixMilli(), Value: 1}))
	w := push(bytes.NewReader(body))
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	w = push(bytes.NewReader(make([]byte, 2<<20)))
	require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), "larger than 1048576 bytes")
	require.Zero(t, h.limit.bytes.Load())

	// Another request holds most of the bytes: a chunked body is refused
	// once its chunks no longer fit.
	var other pushTicket
	require.NoError(t, h.limit.admit(&other))
	require.NoError(t, other.reserve(2<<20-100<<10))
	w = push(bytes.NewReader(make([]byte, 512<<10)))
	require.Equal(t, http.StatusTooManyRequests, w.Code, w.Body.String())
	other.release()
	require.Zero(t, h.limit.bytes.Load())
	require.Zero(t, h.limit.requests.Load())
}

// acceptWriter accepts every batch and stores nothing.
type acceptWriter struct{}

func (acceptWriter) Write(context.Context, *write.Batch) ([]write.Refusal, error) { return nil, nil }

// pipeListener serves connections made by dial over net.Pipe, so that an
// http.Server runs inside a synctest bubble.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) dial() net.Conn {
	c, s := net.Pipe()
	l.conns <- s
	return c
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// A client that sends its headers and then stalls holds its slot and the
// bytes it announced only until the server's read timeout
// (-server.http-read-timeout) cuts the body off; meanwhile the others get
// 429, and afterwards the node serves again.
func TestWriteSlowClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := NewWriteHandler(acceptWriter{}, WriteOptions{MultiTenant: true, MaxInflightRequests: 1})
		require.NoError(t, err)
		const readTimeout = 30 * time.Second
		srv := &http.Server{Handler: h, ReadTimeout: readTimeout}
		ln := newPipeListener()
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()

		conn := ln.dial()
		go func() {
			// Headers and 10 of the 1000 bytes announced, then nothing.
			fmt.Fprintf(conn, "POST /api/v1/push HTTP/1.1\r\nHost: myelin\r\n%s: t\r\nContent-Length: 1000\r\n\r\n%s",
				tenant.Header, strings.Repeat("x", 10))
		}()
		synctest.Wait()
		require.Equal(t, int64(1), h.limit.requests.Load())
		require.Equal(t, int64(1000), h.limit.bytes.Load())
		w := post(h, "/api/v1/push", "t", "", encodeWrite(t, series([]string{"__name__", "up"})))
		require.Equal(t, http.StatusTooManyRequests, w.Code, w.Body.String())

		time.Sleep(readTimeout) // in the bubble: no wall time passes
		synctest.Wait()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		msg, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(msg))
		require.Contains(t, string(msg), "timeout")
		require.Zero(t, h.limit.requests.Load())
		require.Zero(t, h.limit.bytes.Load())

		conn.Close()
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-served, http.ErrServerClosed)
	})
}
