package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	myelinchunk "github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server/limits"
)

// LocalGroups opens queriers on the groups this node leads. Querier
// returns an error when the node cannot serve a read of g consistent with
// every acknowledged write (it does not lead g, or a quorum did not
// confirm its leadership); the handler answers 503 and the caller tries
// the group's new leader. Verified builds one.
type LocalGroups interface {
	Querier(ctx context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error)
}

// HandlerOptions configure the remote protocol's server side.
type HandlerOptions struct {
	// FlushBytes: the handler buffers this much of the response before it
	// writes and flushes it to the connection. Zero means 32 KiB: about
	// 200 chunks of 120 samples, one write per ~25,000 samples, while the
	// memory per stream stays bounded by it plus one series' labels.
	FlushBytes int
	// MaxRequestBytes bounds a request body. Zero means 1 MiB.
	MaxRequestBytes int64
	Logger          *slog.Logger // nil means discard
}

func (o HandlerOptions) withDefaults() HandlerOptions {
	if o.FlushBytes == 0 {
		o.FlushBytes = 32 << 10
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every problem with the options at once.
func (o HandlerOptions) Validate() error {
	var errs []error
	if o.FlushBytes < 0 {
		errs = append(errs, fmt.Errorf("flush bytes %d is negative", o.FlushBytes))
	}
	if o.MaxRequestBytes < 0 {
		errs = append(errs, fmt.Errorf("max request bytes %d is negative", o.MaxRequestBytes))
	}
	return errors.Join(errs...)
}

// Handler serves the remote protocol (doc.go) over a node's local groups.
// It is safe for concurrent use; it holds no mutable state.
type Handler struct {
	local LocalGroups
	opts  HandlerOptions
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a handler serving PathSelect, PathLabels and
// PathValues from local. Invalid options are a programmer error: validate
// them first (cmd does).
func NewHandler(local LocalGroups, opts HandlerOptions) *Handler {
	if err := opts.Validate(); err != nil {
		panic("BUG: querier handler options: " + err.Error())
	}
	return &Handler{local: local, opts: opts.withDefaults()}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path != PathSelect && path != PathLabels && path != PathValues {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxRequestBytes))
	if err != nil {
		http.Error(w, fmt.Sprintf("read request: %v", err), http.StatusBadRequest)
		return
	}
	req, err := decodeRequest(path, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The select's share of the query's series limit: a select matching
	// more is refused before it loads them. The chunk bytes limit is the
	// client's to count: this end streams, holding one buffer.
	ctx := limits.WithQueryBudget(r.Context(), limits.NewQueryBudget(req.maxSeries, 0))
	q, err := h.local.Querier(ctx, req.group, req.tenant, req.mint, req.maxt)
	if err != nil {
		http.Error(w, fmt.Sprintf("open querier of group %d: %v", req.group, err), http.StatusServiceUnavailable)
		return
	}
	defer func() {
		if err := q.Close(); err != nil {
			h.opts.Logger.Warn("close querier", "group", req.group, "err", err)
		}
	}()
	switch path {
	case PathSelect:
		h.serveSelect(ctx, w, q, req)
	case PathLabels:
		names, ws, err := q.LabelNames(ctx, &storage.LabelHints{Limit: req.limit}, req.matchers...)
		h.serveStrings(w, req, names, ws, err)
	case PathValues:
		values, ws, err := q.LabelValues(ctx, req.name, &storage.LabelHints{Limit: req.limit}, req.matchers...)
		h.serveStrings(w, req, values, ws, err)
	}
}

// fail answers an error that happened before the response started: a
// query limit 422 with its own text (the client makes it a
// limits.QueryLimitError again), anything else 500.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var qle *limits.QueryLimitError
	if errors.As(err, &qle) {
		http.Error(w, qle.Error(), http.StatusUnprocessableEntity)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

func (h *Handler) serveStrings(w http.ResponseWriter, req *request, ss []string, ws annotations.Annotations, err error) {
	if err != nil {
		h.fail(w, fmt.Errorf("label query on group %d: %w", req.group, err))
		return
	}
	sw := h.newStreamWriter(w)
	for _, s := range ss {
		sw.buf = appendStringFrame(sw.buf, s)
		sw.maybeFlush()
	}
	sw.finish(&trailer{count: uint64(len(ss)), warnings: warningsOf(ws)})
}

func (h *Handler) serveSelect(ctx context.Context, w http.ResponseWriter, q storage.Querier, req *request) {
	ss := q.Select(ctx, req.sortSeries, req.hints, req.matchers...)
	// The first Next decides between an error status and a 200 stream:
	// the engine's Select reports its errors there.
	more := ss.Next()
	if !more && ss.Err() != nil {
		h.fail(w, fmt.Errorf("select on group %d: %w", req.group, ss.Err()))
		return
	}
	labelsOnly := req.hints != nil && req.hints.Func == "series"
	sw := h.newStreamWriter(w)
	var (
		n   uint64
		it  chunkenc.Iterator
		enc chunkEncoder
		err error
	)
	for ; more; more = ss.Next() {
		s := ss.At()
		sw.buf = appendSeriesFrame(sw.buf, s.Labels())
		n++
		if !labelsOnly {
			it = s.Iterator(it)
			if err = enc.encode(sw, it); err != nil {
				err = fmt.Errorf("series %s: %w", s.Labels(), err)
				break
			}
		}
		sw.maybeFlush()
		if sw.err != nil {
			break
		}
	}
	if err == nil {
		err = ss.Err()
	}
	t := &trailer{count: n, warnings: warningsOf(ss.Warnings())}
	if err != nil {
		t.err = fmt.Sprintf("select on group %d: %v", req.group, err)
		h.opts.Logger.Warn("remote select failed mid-stream", "group", req.group, "err", err)
	}
	sw.finish(t)
}

// chunkEncoder cuts a sample stream into XOR chunks of up to chunkSamples
// samples. Its chunk buffer is reused across chunks and series.
//
// It appends with Myelin's chunkenc.XOR, whose bytes after its encoding
// byte are exactly a Prometheus XOR chunk (chunkenc's format test checks
// it byte for byte): Prometheus's appender writes bit by bit and took
// ~40% of the CPU of BenchmarkRemoteSelect/remote, ours ~23%.
type chunkEncoder struct {
	c   myelinchunk.XOR
	buf []byte
}

// encode writes the iterator's samples as chunk frames to sw.
func (e *chunkEncoder) encode(sw *streamWriter, it chunkenc.Iterator) error {
	var (
		n          int
		mint, maxt int64
	)
	flush := func() {
		sw.buf = appendChunkFrame(sw.buf, mint, maxt, e.c.Bytes()[1:]) // without the encoding byte
		e.buf = e.c.Bytes()                                            // keep the grown buffer
		n = 0
		sw.maybeFlush()
	}
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValFloat {
			return fmt.Errorf("sample of type %v: only float samples are supported", vt)
		}
		t, v := it.At()
		if n == 0 {
			e.c.Reset(e.buf)
			mint = t
		}
		if err := e.c.Append(t, v); err != nil {
			return fmt.Errorf("sample at %d: %w", t, err)
		}
		maxt = t
		n++
		if n == chunkSamples {
			flush()
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	if n > 0 {
		flush()
	}
	return nil
}

func warningsOf(ws annotations.Annotations) []error {
	if len(ws) == 0 {
		return nil
	}
	return ws.AsErrors()
}

// streamWriter frames a 200 response: it buffers up to FlushBytes, then
// writes and flushes them to the client.
type streamWriter struct {
	w          http.ResponseWriter
	flushBytes int
	buf        []byte
	err        error // first write error: the client went away
}

func (h *Handler) newStreamWriter(w http.ResponseWriter) *streamWriter {
	w.Header().Set("Content-Type", "application/x-myelin-querier")
	w.WriteHeader(http.StatusOK)
	sw := &streamWriter{w: w, flushBytes: h.opts.FlushBytes, buf: make([]byte, 0, h.opts.FlushBytes+1024)}
	sw.buf = append(sw.buf, Version)
	return sw
}

// maybeFlush sends the buffer once it holds flushBytes.
func (sw *streamWriter) maybeFlush() {
	if len(sw.buf) >= sw.flushBytes {
		sw.flush()
	}
}

func (sw *streamWriter) flush() {
	if sw.err == nil && len(sw.buf) > 0 {
		_, sw.err = sw.w.Write(sw.buf)
		if sw.err == nil {
			sw.err = http.NewResponseController(sw.w).Flush()
		}
	}
	sw.buf = sw.buf[:0]
}

func (sw *streamWriter) finish(t *trailer) {
	sw.buf = appendTrailer(sw.buf, t)
	sw.flush()
}
