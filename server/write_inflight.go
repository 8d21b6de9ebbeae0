package server

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Node-wide limits of the push requests in flight; the server answers 429
// past either. The flag names are Mimir's.
var (
	// ErrTooManyPushes: the node serves as many push requests as
	// -distributor.instance-limits.max-inflight-push-requests allows.
	ErrTooManyPushes = errors.New("server: too many push requests in flight")
	// ErrTooManyPushBytes: the push requests in flight hold as many bytes
	// as -distributor.instance-limits.max-inflight-push-requests-bytes
	// allows.
	ErrTooManyPushBytes = errors.New("server: push requests in flight hold too many bytes")
)

// pushLimitCode answers a push past an in-flight limit: 429, as the
// issue "Faults and abuse" asked. Prometheus retries it only with
// retry_on_http_429 (off by default), while it always retries a 5xx
// (docs/design.md, "Memory of a push").
const pushLimitCode = http.StatusTooManyRequests

// Defaults of the in-flight limits, for 2-core nodes (docs/design.md,
// "Memory of a push").
const (
	// DefaultMaxInflightPushRequests is Mimir's default, sized for its
	// 2-CPU distributors. The count does not bound memory (the bytes
	// limit does); it bounds the waiting: a node ingests ~0.6 M samples/s
	// (make bench), ~300 requests of 2,000 samples, so 2,000 in flight
	// are ~7 s of work, within a sender's 30 s remote_timeout. Fewer
	// would refuse requests that would have been served in time.
	DefaultMaxInflightPushRequests = 2000
	// DefaultMaxInflightPushBytes bounds the memory of pushes: a request
	// allocates at most pushMemPerByte (12) bytes per byte it holds, so
	// 160 MiB in flight allocate at most ~1.9 GiB, less than two queries
	// at -query.max-samples. It admits one request at the size limits
	// (10 MiB compressed + 100 MiB decompressed) with room beside it for
	// ~170 typical ones (2,000 node_exporter series: 34 KB compressed,
	// 252 KB decompressed). Mimir's default is 0 (no limit).
	DefaultMaxInflightPushBytes = 160 << 20
)

// pushLimiter bounds, per node, the remote-write requests being served
// and the bytes they hold: a request takes a slot (admit) before it reads
// its body, then reserves its body's bytes before reading them (the
// Content-Length, or the chunks of a body without one as they come) and
// the decompressed length its snappy header announces before
// decompressing; it gives both back when it is answered. Mimir counts the
// same: the request's size, then the WriteRequest's.
//
// A slow client holds its slot and bytes until http.Server.ReadTimeout
// (-server.http-read-timeout) cuts its body off.
//
// Safe for concurrent use; the counters are atomics, so a request past a
// limit is refused at once and never waits.
type pushLimiter struct {
	maxRequests int64 // 0: no limit
	maxBytes    int64 // 0: no limit

	requests, bytes atomic.Int64
	refused         *prometheus.CounterVec // reason
}

// Reasons of myelin_push_requests_refused_total, Mimir's
// reason label values.
const (
	refusedRequests = "max_inflight_push_requests"
	refusedBytes    = "max_inflight_push_requests_bytes"
)

func newPushLimiter(maxRequests, maxBytes int, reg prometheus.Registerer) *pushLimiter {
	l := &pushLimiter{
		maxRequests: int64(maxRequests),
		maxBytes:    int64(maxBytes),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_push_requests_refused_total",
			Help: "Remote-write requests answered 429 because the node's in-flight limit was reached, by reason: " +
				refusedRequests + " or " + refusedBytes + ".",
		}, []string{"reason"}),
	}
	l.refused.WithLabelValues(refusedRequests)
	l.refused.WithLabelValues(refusedBytes)
	if reg != nil {
		reg.MustRegister(l.refused,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "myelin_inflight_push_requests",
				Help: "Remote-write requests being served by the node.",
			}, func() float64 { return float64(l.requests.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "myelin_inflight_push_requests_bytes",
				Help: "Bytes held by the remote-write requests being served: bodies compressed and decompressed.",
			}, func() float64 { return float64(l.bytes.Load()) }))
	}
	return l
}

// pushTicket is one request's share of the limits: its slot and the bytes
// it reserved. The zero value holds nothing.
type pushTicket struct {
	l     *pushLimiter
	bytes int64
}

// admit gives t a slot, or fails with an error wrapping ErrTooManyPushes.
// Once admitted, t.release must be called.
func (l *pushLimiter) admit(t *pushTicket) error {
	if n := l.requests.Add(1); l.maxRequests > 0 && n > l.maxRequests {
		l.requests.Add(-1)
		l.refused.WithLabelValues(refusedRequests).Inc()
		return fmt.Errorf("%w: the node serves %d, its limit (-distributor.instance-limits.max-inflight-push-requests); retry later",
			ErrTooManyPushes, l.maxRequests)
	}
	*t = pushTicket{l: l}
	return nil
}

// reserve adds n bytes to t's share, or fails with an error wrapping
// ErrTooManyPushBytes and keeps what t held.
func (t *pushTicket) reserve(n int) error {
	l := t.l
	if n <= 0 {
		return nil
	}
	if total := l.bytes.Add(int64(n)); l.maxBytes > 0 && total > l.maxBytes {
		l.bytes.Add(-int64(n))
		l.refused.WithLabelValues(refusedBytes).Inc()
		return fmt.Errorf("%w: this request needs %d more bytes, over the node's limit of %d (-distributor.instance-limits.max-inflight-push-requests-bytes); retry later",
			ErrTooManyPushBytes, n, l.maxBytes)
	}
	t.bytes += int64(n)
	return nil
}

// release gives back t's slot and bytes.
func (t *pushTicket) release() {
	if t.l == nil {
		return
	}
	t.l.bytes.Add(-t.bytes)
	t.l.requests.Add(-1)
	*t = pushTicket{}
}
