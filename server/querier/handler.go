package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/prometheus/model/histogram"
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
	if path != PathSelect && path != PathLabels && path != PathValues && path != PathExemplars && path != PathMetadata {
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
	case PathExemplars:
		h.serveExemplars(ctx, w, q, req)
	case PathMetadata:
		h.serveMetadata(ctx, w, q, req)
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
	sw := h.newStreamWriterVersion(w, responseVersion(req))
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
	version := responseVersion(req)
	sw := h.newStreamWriterVersion(w, version)
	var (
		n   uint64
		it  chunkenc.Iterator
		enc = chunkEncoder{histograms: version >= VersionHistograms, sts: version >= Version}
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
//
// Native histograms (response Version 2) go in 'H' frames, appended with
// Prometheus's own histogram chunk appenders: a series that switches
// between floats and histograms, or between integer and float
// histograms, starts a new chunk, and so does a counter reset or a
// bucket layout the appender cannot recode (as in Prometheus's head).
type chunkEncoder struct {
	histograms bool // the client reads 'H' frames
	sts        bool // the client reads 'P' frames
	// st holds the open chunk's start timestamps when sts; anyST: one
	// is not 0 (a chunk without any gets no 'P' frame).
	st    []int64
	anyST bool
	c     myelinchunk.XOR
	buf   []byte
	// The open chunk: a float one (kind ValFloat) in c, or a histogram
	// one in hc, appended through happ.
	kind       chunkenc.ValueType
	hc         chunkenc.Chunk
	happ       chunkenc.Appender
	n          int
	mint, maxt int64
}

// flush writes the open chunk as a frame.
func (e *chunkEncoder) flush(sw *streamWriter) {
	if e.n == 0 {
		return
	}
	if e.kind == chunkenc.ValFloat {
		sw.buf = appendChunkFrame(sw.buf, e.mint, e.maxt, e.c.Bytes()[1:]) // without the encoding byte
		e.buf = e.c.Bytes()                                                // keep the grown buffer
	} else {
		enc := histInteger
		if e.kind == chunkenc.ValFloatHistogram {
			enc = histFloat
		}
		sw.buf = appendHistFrame(sw.buf, enc, e.mint, e.maxt, e.hc.Bytes())
	}
	if e.anyST {
		sw.buf = appendSTFrame(sw.buf, e.st)
	}
	e.st, e.anyST = e.st[:0], false
	e.n = 0
	sw.maybeFlush()
}

// encode writes the iterator's samples as chunk frames to sw.
func (e *chunkEncoder) encode(sw *streamWriter, it chunkenc.Iterator) error {
	e.n = 0
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValFloat && !e.histograms {
			return fmt.Errorf("sample of type %v: the client (an earlier release) reads float samples only", vt)
		}
		if e.n > 0 && (vt != e.kind || e.n >= chunkSamples ||
			vt != chunkenc.ValFloat && e.n >= chunkenc.MinSamplesPerHistogramChunk && len(e.hc.Bytes()) >= chunkenc.TargetBytesPerHistogramChunk) {
			e.flush(sw)
		}
		var err error
		switch vt {
		case chunkenc.ValFloat:
			t, v := it.At()
			if e.n == 0 {
				e.c.Reset(e.buf)
				e.kind, e.mint = vt, t
			}
			if err := e.c.Append(t, v); err != nil {
				return fmt.Errorf("sample at %d: %w", t, err)
			}
			e.maxt = t
		case chunkenc.ValHistogram:
			// A new histogram each time, copied out of the iterator:
			// the appender keeps its spans and may change its buckets,
			// and AtHistogram(nil) would share the iterator's.
			t, h := it.AtHistogram(&histogram.Histogram{})
			err = e.appendHist(sw, vt, t, h, nil)
		case chunkenc.ValFloatHistogram:
			t, fh := it.AtFloatHistogram(&histogram.FloatHistogram{})
			err = e.appendHist(sw, vt, t, nil, fh)
		default:
			err = fmt.Errorf("sample of type %v", vt)
		}
		if err != nil {
			return err
		}
		if e.sts {
			st := it.AtST()
			e.st = append(e.st, st)
			e.anyST = e.anyST || st != 0
		}
		e.n++
	}
	if err := it.Err(); err != nil {
		return err
	}
	e.flush(sw)
	return nil
}

// appendHist appends a histogram sample to the open histogram chunk,
// starting one if there is none. When Prometheus's appender starts a new
// chunk (a counter reset, a layout it cannot recode), the open one is
// written first.
func (e *chunkEncoder) appendHist(sw *streamWriter, vt chunkenc.ValueType, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) error {
	if e.n == 0 {
		if vt == chunkenc.ValHistogram {
			e.hc = chunkenc.NewHistogramChunk()
		} else {
			e.hc = chunkenc.NewFloatHistogramChunk()
		}
		app, err := e.hc.Appender()
		if err != nil {
			return err
		}
		e.happ, e.kind, e.mint = app, vt, t
	}
	var (
		nc      chunkenc.Chunk
		recoded bool
		app     chunkenc.Appender
		err     error
	)
	if h != nil {
		nc, recoded, app, err = e.happ.AppendHistogram(nil, 0, t, h, false)
	} else {
		nc, recoded, app, err = e.happ.AppendFloatHistogram(nil, 0, t, fh, false)
	}
	if err != nil {
		return fmt.Errorf("histogram at %d: %w", t, err)
	}
	e.happ = app
	if nc != nil && !recoded {
		e.flush(sw) // the open chunk, without this sample
		e.mint = t
	}
	if nc != nil {
		e.hc = nc
	}
	e.maxt = t
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

// responseVersion is the version of the response to req: Version, or
// VersionFloats for a client of an earlier release (a request before
// RequestVersion).
func responseVersion(req *request) byte {
	switch {
	case req.version < 3:
		return VersionFloats
	case req.version < RequestVersion:
		return VersionHistograms
	}
	return Version
}

// newStreamWriterVersion starts a response of the given version.
func (h *Handler) newStreamWriterVersion(w http.ResponseWriter, version byte) *streamWriter {
	w.Header().Set("Content-Type", "application/x-myelin-querier")
	w.WriteHeader(http.StatusOK)
	sw := &streamWriter{w: w, flushBytes: h.opts.FlushBytes, buf: make([]byte, 0, h.opts.FlushBytes+1024)}
	sw.buf = append(sw.buf, version)
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
