package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/server/distributor"
	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// Writer makes a write batch durable: when Write returns without error the
// batch is committed to its Raft group's log on a quorum and applied, and
// the per-series refusals of the apply are returned.
type Writer interface {
	Write(ctx context.Context, b *write.Batch) ([]write.Refusal, error)
}

// retryable reports whether a Writer error means the sender should retry
// the whole request (503): the distributor could not commit every part
// (distributor.ErrIncomplete: no leader, a stale ring, shutting down), a
// group was unavailable, or the request's context ended.
func retryable(err error) bool {
	return errors.Is(err, distributor.ErrIncomplete) || errors.Is(err, cluster.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// WriteOptions configure the remote-write handler.
type WriteOptions struct {
	Decoder     remotewrite.Options
	Limits      remotewrite.Limits
	MultiTenant bool
	// TenantMetricsIdle: a tenant's series in the write metrics are
	// deleted after it has not written for this long. Zero means
	// DefaultTenantMetricsIdle.
	TenantMetricsIdle time.Duration
	// MetricsMaxTenants: the write metrics have series of at most this
	// many tenants; more are counted as OverflowTenant. Zero means
	// DefaultMetricsMaxTenants.
	MetricsMaxTenants int
	// Tenants, if set, counts the samples written per tenant for the
	// cluster's tenant page.
	Tenants *Tenants
	// Now is the clock for "too far in the future" and for idle tenants;
	// nil means time.Now.
	Now        func() time.Time
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// WriteHandler serves Prometheus remote write 1.0 (POST /api/v1/push and
// /api/v1/write). See ServeHTTP for the answers it gives.
type WriteHandler struct {
	w    Writer
	dec  *remotewrite.Decoder
	opts WriteOptions
	reqs sync.Pool // *remotewrite.Request
	// builders: *write.Builder. A builder holds at most the label
	// sets and series of one request, like a pooled Request.
	builders sync.Pool
	metrics  *writeMetrics
}

// maxPooledRequestBytes: requests whose buffers grew past this are not
// pooled, so one huge request does not pin its memory.
const maxPooledRequestBytes = 16 << 20

// NewWriteHandler returns a remote-write handler that writes through w.
func NewWriteHandler(w Writer, opts WriteOptions) (*WriteHandler, error) {
	if err := errors.Join(opts.Limits.Validate(), opts.validate()); err != nil {
		return nil, err
	}
	if opts.TenantMetricsIdle == 0 {
		opts.TenantMetricsIdle = DefaultTenantMetricsIdle
	}
	if opts.MetricsMaxTenants == 0 {
		opts.MetricsMaxTenants = DefaultMetricsMaxTenants
	}
	dec, err := remotewrite.NewDecoder(opts.Decoder)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &WriteHandler{w: w, dec: dec, opts: opts,
		metrics: newWriteMetrics(opts.Registerer, opts.TenantMetricsIdle, opts.MetricsMaxTenants, opts.Now)}
	h.reqs.New = func() any { return new(remotewrite.Request) }
	h.builders.New = func() any { return write.NewBuilder("") }
	return h, nil
}

// ServeHTTP answers as the remote-write spec asks:
//   - 204 when every sample was written;
//   - 400 for bad input, with a body that says what and where: an
//     undecodable body, or series that were refused (invalid labels,
//     samples too far in the future, out of order, duplicates, too old).
//     The valid series of a partly bad request are written all the same,
//     and the body says how many; the sender must not retry a 400;
//   - 401 "no org id" for a request without a tenant, as Mimir answers;
//   - 405 for a method other than POST, 415 for remote write 2.0 (not yet
//     supported), 503 when the write could not be made durable and a retry
//     may succeed, 500 for other failures.
func (h *WriteHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
	tenant, res := h.serve(cw, r)
	h.metrics.record(tenant, cw.code, res)
	if res != nil {
		h.opts.Tenants.Add(tenant, res.samples)
	}
}

// validate reports the problems of the options other than Limits.
func (o WriteOptions) validate() error {
	var errs []error
	if o.TenantMetricsIdle < 0 {
		errs = append(errs, fmt.Errorf("tenant metrics idle time %v is negative", o.TenantMetricsIdle))
	}
	if o.MetricsMaxTenants < 0 {
		errs = append(errs, fmt.Errorf("metrics max tenants %d is negative", o.MetricsMaxTenants))
	}
	return errors.Join(errs...)
}

// serve is ServeHTTP; it returns the tenant for the metrics ("" when
// unknown) and what was written (nil if the request got that far).
func (h *WriteHandler) serve(w http.ResponseWriter, r *http.Request) (string, *writeResult) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "remote write requires POST", http.StatusMethodNotAllowed)
		return "", nil
	}
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return "", nil
	}
	tenant, err := tenant.FromRequest(r, h.opts.MultiTenant)
	if err != nil {
		code, msg := tenantError(err)
		http.Error(w, msg, code)
		return "", nil
	}
	body, err := readLimited(r.Body, h.dec.MaxCompressedBytes())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return tenant, nil
	}
	req := h.reqs.Get().(*remotewrite.Request)
	defer func() {
		if req.BufferBytes() <= maxPooledRequestBytes {
			h.reqs.Put(req)
		}
	}()
	if err := h.dec.Decode(req, body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return tenant, nil
	}
	res, err := h.write(r.Context(), tenant, req)
	if err != nil {
		code := http.StatusInternalServerError
		if retryable(err) {
			code = http.StatusServiceUnavailable
		}
		h.opts.Logger.Warn("remote write failed", "tenant", tenant, "err", err)
		http.Error(w, err.Error(), code)
		return tenant, nil
	}
	if msg := res.message(); msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return tenant, res
	}
	w.WriteHeader(http.StatusNoContent)
	return tenant, res
}

// codeWriter remembers the status code written.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// writeResult counts what happened to one request.
type writeResult struct {
	series, samples             int // written
	badSeries, badSamples       int // refused
	firstErr                    error
	discarded                   map[string]int // refused samples by reason
	histograms, exemplars, meta int            // not stored yet
}

func (res *writeResult) refuse(samples int, err error) {
	res.badSeries++
	res.badSamples += samples
	if res.firstErr == nil {
		res.firstErr = err
	}
	res.discard(samples, err)
}

func (res *writeResult) discard(samples int, err error) {
	if res.discarded == nil {
		res.discarded = map[string]int{}
	}
	res.discarded[reason(err)] += samples
}

// message is the 400 body, or "" if nothing was refused.
func (res *writeResult) message() string {
	var parts []string
	if res.badSeries > 0 {
		parts = append(parts, fmt.Sprintf("%v; %d series (%d samples) refused in total", res.firstErr, res.badSeries, res.badSamples))
	}
	if res.histograms > 0 {
		parts = append(parts, fmt.Sprintf("native histograms are not supported yet: %d histogram samples were not written", res.histograms))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + fmt.Sprintf("; %d series (%d samples) were written", res.series, res.samples)
}

func (h *WriteHandler) write(ctx context.Context, tenant string, req *remotewrite.Request) (*writeResult, error) {
	res := &writeResult{histograms: len(req.Histograms), exemplars: len(req.Exemplars), meta: len(req.Metadata)}
	now := h.opts.Now()
	bb := h.builders.Get().(*write.Builder)
	defer func() {
		if bb.BufferBytes() <= maxPooledRequestBytes {
			h.builders.Put(bb)
		}
	}()
	bb.Reset(tenant)
	var kept []int // index in req.Series of each batch series
	// One copy of all samples for the batch (the request's buffer is reused
	// after we answer); series take consecutive parts of it.
	flat := make([]write.Sample, 0, len(req.Samples))
	for i := range req.Series {
		s := &req.Series[i]
		if len(s.Samples) == 0 {
			continue
		}
		if err := h.opts.Limits.ValidateSeries(s); err != nil {
			res.refuse(len(s.Samples), err)
			continue
		}
		if err := h.opts.Limits.ValidateSamples(s.Labels, s.Samples, now); err != nil {
			res.refuse(len(s.Samples), err)
			continue
		}
		start := len(flat)
		for _, x := range s.Samples {
			flat = append(flat, write.Sample{T: x.T, V: x.V})
		}
		// Valid labels, without the empty-valued ones, in wire order are
		// sorted and unique: s.Key is then the engine's encoding of the
		// label set to store (remotewrite.Series.Key), and the batch takes
		// it as one copy instead of label by label.
		bb.AddEncoded(s.Key, flat[start:len(flat):len(flat)])
		kept = append(kept, i)
	}
	if len(kept) == 0 {
		return res, nil
	}
	errs, err := h.w.Write(ctx, bb.Batch())
	if err != nil {
		return nil, err
	}
	refused := make(map[int]write.Refusal, len(errs))
	for _, e := range errs {
		refused[e.Series] = e
	}
	for bi, ri := range kept {
		s := &req.Series[ri]
		e, ok := refused[bi]
		if !ok {
			res.series++
			res.samples += len(s.Samples)
			continue
		}
		res.samples += len(s.Samples) - e.Rejected
		if e.Rejected < len(s.Samples) {
			res.series++
		}
		res.badSeries++
		res.badSamples += e.Rejected
		res.discard(e.Rejected, e.Err)
		if res.firstErr == nil {
			res.firstErr = fmt.Errorf("%w: %d of %d samples refused in series %s", e.Err, e.Rejected, len(s.Samples), s)
		}
	}
	return res, nil
}

// checkContentType accepts remote write 1.0: no content type, or
// application/x-protobuf without a proto parameter or with
// prometheus.WriteRequest.
func checkContentType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("bad Content-Type %q: %v", ct, err)
	}
	if mt != "application/x-protobuf" {
		return fmt.Errorf("unsupported Content-Type %q: want application/x-protobuf", ct)
	}
	switch params["proto"] {
	case "", "prometheus.WriteRequest":
		return nil
	}
	return fmt.Errorf("unsupported remote write message %q: this server accepts prometheus.WriteRequest (remote write 1.0)", params["proto"])
}

// readLimited reads all of r, failing if it holds more than limit bytes.
func readLimited(r io.Reader, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("request body larger than %d bytes", limit)
	}
	return b, nil
}
