package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/internal/invariants"
	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/server/distributor"
	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// Writer makes a write batch durable: when Write returns without error the
// batch is committed to its Raft group's log on a quorum and applied, and
// the per-series refusals of the apply are returned. The batch's label
// and sample slices alias the request's buffers, reused once it is
// answered: Write must not keep them after it returns.
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
	Decoder remotewrite.Options
	// Limits are the tenants' limits, read per request: the validation
	// limits and the ingestion rate. Nil means limits.Defaults() for
	// every tenant.
	Limits *limits.Overrides
	// LegacyNames restricts metric and label names to Prometheus 2's
	// character set (remotewrite.Limits.LegacyNames).
	LegacyNames bool
	// ActiveNodes returns the number of active nodes of the cluster: a
	// tenant's ingestion rate is divided between them. Nil means 1.
	ActiveNodes func() int
	MultiTenant bool
	// MaxInflightRequests: the node serves at most this many push
	// requests at once and answers 429 to more. Zero means no limit
	// (DefaultMaxInflightPushRequests is the flag's default).
	MaxInflightRequests int
	// MaxInflightBytes: the push requests being served hold at most this
	// many bytes, bodies compressed and decompressed; a request that
	// would go past it gets 429. Zero means no limit
	// (DefaultMaxInflightPushBytes is the flag's default); otherwise it
	// must admit one request at the decoder's limits.
	MaxInflightBytes int
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

// WriteHandler serves Prometheus remote write 1.0 and 2.0 on the same
// endpoints (POST /api/v1/push and /api/v1/write), told apart by the
// Content-Type. See ServeHTTP for the answers it gives.
type WriteHandler struct {
	w       Writer
	dec     *remotewrite.Decoder
	opts    WriteOptions
	states  sync.Pool // *pushState
	limit   *pushLimiter
	ingest  *limits.IngestionLimiter
	metrics *writeMetrics
	mem     *memoryReleaser // cost: bytes of the decompressed body
	// freeMemory returns freed memory to the OS (func freeMemory).
	freeMemory func()
}

// pushMemPerByte: a push request allocates at most this many bytes per
// byte of its body, compressed plus decompressed (what pushLimiter
// reserves), refused series included (TestWriteMemory checks it for the
// worst cases). Measured per decompressed byte, up to the Raft proposal: 11.0
// for a body at the decoder's budget (10 bytes of decoded elements per
// body byte, remotewrite's memPerByte, plus the decompressed body),
// 10.1 for the smallest valid series, 7.4 for the refused
// one-label series (38 before presizing and counting refusals).
const pushMemPerByte = 12

// freeMemoryPushBytes: after a push of this many decompressed bytes or
// more, memory goes back to the OS (memoryReleaser, at most every 5 s).
// Such a request allocates up to ~350 MB (pushMemPerByte), which Go kept
// resident for minutes: after two pushes of 100 MiB of refused series
// the process stayed at 1.3 GB; freeMemory brought it to 57 MB. A
// sender's usual request is ~0.5 MB: only abnormal requests pay.
const freeMemoryPushBytes = 32 << 20

// pushState is the memory one push request works in, pooled: the body as
// read, the decoded Request, and the batch built from it. A state is used
// by one request at a time.
type pushState struct {
	body   []byte
	req    remotewrite.Request
	kept   []kept              // what each batch series holds of req.Series
	batch  []write.Series      // aliases req's keys and samples
	hists  []write.Histogram   // the valid native histograms, series after series
	hsts   []int64             // their start timestamps (0: none), when the request has any
	hasHST bool                // a histogram of hsts has a start timestamp
	labels []remotewrite.Label // one 2.0 series' labels (labelsOf)
	exs    []write.Exemplar    // the valid exemplars, series after series
	exLbls []remotewrite.Label // one exemplar's labels (Request.Exemplar)
	metas  []write.Metadata    // the request's distinct valid metadata
	smeta  []write.SeriesMeta  // the batch series' exemplars and metadata
	zeros  []write.Sample      // zero samples at start timestamps, series after series
	mkeys  [][]byte            // the label set placing each of metas on a group
	// built (OTLP): the request's native histograms already built, one
	// per req.Histograms entry, whose spans then hold no bytes. Nil for
	// remote write, which decodes them from the body (histogram).
	built []write.Histogram
	// builtEx (OTLP): the request's exemplars, one per req.Exemplars
	// entry (whose spans then hold no bytes), their labels not checked
	// yet. Nil for remote write (exemplar).
	builtEx []builtExemplar
}

// builtExemplar is an exemplar OTLP's translator gave, as it gave it.
type builtExemplar struct {
	T      int64
	V      float64
	Labels []remotewrite.Label
}

// exemplar returns the request's i-th exemplar with its labels checked
// and encoded: from builtEx for OTLP, else decoded from the body
// (Request.Exemplar). scratch is reused for labels.
func (st *pushState) exemplar(i int, legacy bool, scratch []remotewrite.Label) (write.Exemplar, []remotewrite.Label, error) {
	if len(st.builtEx) > 0 {
		b := st.builtEx[i]
		ls, err := remotewrite.EncodeExemplarLabels(append(scratch[:0], b.Labels...), legacy)
		return write.Exemplar{T: b.T, V: b.V, Labels: ls}, scratch, err
	}
	return st.req.Exemplar(i, legacy, scratch)
}

// histogram returns the request's i-th native histogram: built[i] for
// OTLP, else decoded from the body (Request.Histogram).
func (st *pushState) histogram(i int) (write.Histogram, int64, error) {
	if len(st.built) > 0 {
		return st.built[i], 0, nil
	}
	return st.req.HistogramST(i)
}

// retainedBytes is the memory st keeps between requests.
func (st *pushState) retainedBytes() int {
	return cap(st.body) + st.req.RetainedBytes() + int(unsafe.Sizeof(kept{}))*cap(st.kept) + int(unsafe.Sizeof(write.Series{}))*cap(st.batch) +
		int(unsafe.Sizeof(write.Histogram{}))*(cap(st.hists)+cap(st.built)) + 8*cap(st.hsts) +
		int(unsafe.Sizeof(remotewrite.Label{}))*(cap(st.labels)+cap(st.exLbls)) +
		int(unsafe.Sizeof(write.Exemplar{}))*cap(st.exs) + int(unsafe.Sizeof(builtExemplar{}))*cap(st.builtEx)
}

// floatSTs returns the start timestamps of the float samples of batch
// series k (0 where the sender gave none), nil if none has one. firsts
// holds the index in req.Samples of each series' first sample; nil when
// the request has no start timestamps.
func (st *pushState) floatSTs(k kept, firsts []int) []int64 {
	if firsts == nil {
		return nil
	}
	all := st.req.StartTimestamps
	lo, hi := firsts[k.series]+int(k.lo), firsts[k.series]+int(k.hi)
	i, _ := slices.BinarySearchFunc(all, lo, func(s remotewrite.StartTimestamp, n int) int { return s.Sample - n })
	if i == len(all) || all[i].Sample >= hi {
		return nil
	}
	sts := make([]int64, hi-lo)
	for ; i < len(all) && all[i].Sample < hi; i++ {
		sts[all[i].Sample-lo] = all[i].ST
	}
	return sts
}

// histogramSTs returns the start timestamps of the histograms of batch
// series k, nil if none has one.
func (st *pushState) histogramSTs(k kept) []int64 {
	if !st.hasHST {
		return nil
	}
	sts := st.hsts[k.lo:k.hi:k.hi]
	for _, v := range sts {
		if v != 0 {
			return sts
		}
	}
	return nil
}

// kept is one series of a push's batch: float samples of
// req.Series[series], its Samples[lo:hi], or (hist) valid native
// histograms of it, st.hists[lo:hi]. A series with both is two or more
// batch series with the same labels, each of one kind, in time order:
// its floats and histograms merged by timestamp into runs of one kind
// (the engine applies a batch's series in order, so a series that
// switches between floats and histograms within a request stores both,
// as Prometheus's head appends them in the order of their times), and an
// engine refusal, which counts the samples it refused in one batch
// series, says which kind it refused. counted: validation refused some
// of the series' samples or histograms, so it is counted in
// writeResult.badSeries already.
type kept struct {
	series, lo, hi int32
	kind           keptKind
	counted        bool
}

// keptKind is what a batch series of a push holds.
type keptKind uint8

const (
	keptFloats    keptKind = iota // float samples: Samples[lo:hi] of the series
	keptHists                     // native histograms: st.hists[lo:hi]
	keptExemplars                 // exemplars: st.exs[lo:hi], after the series' samples
	keptMetadata                  // metadata st.metas[lo] alone (series is -1)
	keptZeros                     // a zero sample at a start timestamp: st.zeros[lo:hi], before the series' samples
)

// labelsOf returns the labels of s, a series of st.req: a 1.0 series'
// own, or a 2.0 series' resolved into st.labels, valid until the next
// call.
func (st *pushState) labelsOf(s *remotewrite.Series) []remotewrite.Label {
	if st.req.Proto != remotewrite.ProtoV2 {
		return s.Labels
	}
	st.labels = st.req.LabelsOf(s, st.labels)
	return st.labels
}

// maxPooledStateBytes: a state that holds more than this after a request
// is dropped, not pooled, so one large request does not pin its memory
// (every pooled state holds the high-water mark of the requests it
// served). A typical request of 2,000 node_exporter series leaves
// ~1.3 MB; 16 MiB pools up to ~12x that. Pooled states go away after two GCs
// without requests (sync.Pool's victim cache).
const maxPooledStateBytes = 16 << 20

// NewWriteHandler returns a remote-write handler that writes through w.
func NewWriteHandler(w Writer, opts WriteOptions) (*WriteHandler, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Limits == nil {
		var err error
		if opts.Limits, err = limits.NewOverrides(limits.Defaults()); err != nil {
			return nil, err
		}
	}
	if opts.ActiveNodes == nil {
		opts.ActiveNodes = func() int { return 1 }
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
		limit:      newPushLimiter(opts.MaxInflightRequests, opts.MaxInflightBytes, opts.Registerer),
		ingest:     limits.NewIngestionLimiter(opts.Limits, opts.ActiveNodes),
		metrics:    newWriteMetrics(opts.Registerer, opts.TenantMetricsIdle, opts.MetricsMaxTenants, opts.Now, opts.Limits),
		mem:        &memoryReleaser{minCost: freeMemoryPushBytes, interval: freeMemoryInterval},
		freeMemory: freeMemory}
	h.states.New = func() any { return new(pushState) }
	return h, nil
}

// ServeHTTP answers as the remote-write specs (1.0, 2.0) ask:
//   - 204 when every sample was written;
//   - 400 for bad input, with a body that says what and where: an
//     undecodable body, or series that were refused (invalid labels or
//     symbol references, samples too far in the future, out of order,
//     duplicates, too old), native histograms that Prometheus's
//     validation refuses (bucket counts that do not match the spans,
//     negative counts, ...), exemplars that are invalid, out of order or
//     of a series without samples (and in 2.0 any exemplar of a tenant
//     that keeps none), metadata that is invalid or past its limits.
//     The valid series, samples, histograms and exemplars of a partly bad
//     request are written all the same, and the body says how many; the
//     sender must not retry a 400;
//   - 401 "no org id" for a request without a tenant, as Mimir answers;
//   - 429 when the node serves as many push requests, or they hold as
//     many bytes, as its in-flight limits allow (pushLimiter), or when
//     the tenant's ingestion rate does not admit the request's valid
//     samples (limits.IngestionLimiter; nothing is written): retry
//     later, with backoff;
//   - 400 also for series refused by the tenant's series limits
//     (max_global_series_per_user, _per_metric), naming the series and
//     the limit; the series the tenant has keep being written;
//   - 405 for a method other than POST; 415 for a Content-Type other
//     than 1.0's or 2.0's, or a Content-Encoding other than snappy; 503
//     when the write could not be made durable and a retry may succeed,
//     500 for other failures.
//
// A 2.0 answer past content negotiation carries the
// X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written
// headers: the samples and native histograms written (in a 400 too) and
// 0 exemplars; 0 of each on a 5xx, whose retry writes everything again
// (setWritten).
//
// After a request of freeMemoryPushBytes or more, with its slot and
// state given back, it returns the freed memory to the OS before the
// response goes out (at most every 5 s; memoryReleaser).
func (h *WriteHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
	tenant, res, size := h.serve(cw, r)
	h.metrics.record(tenant, cw.code, res)
	if res != nil {
		h.opts.Tenants.Add(tenant, res.samples+res.histograms)
	}
	if h.mem.done(time.Now(), size) {
		h.freeMemory()
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
	if o.MaxInflightRequests < 0 {
		errs = append(errs, fmt.Errorf("max in-flight push requests %d is negative", o.MaxInflightRequests))
	}
	// A request at the decoder's limits must fit alone, or it would be
	// refused forever (and retried forever).
	d := o.Decoder
	if d.MaxCompressedBytes == 0 {
		d.MaxCompressedBytes = remotewrite.DefaultMaxCompressedBytes
	}
	if d.MaxDecompressedBytes == 0 {
		d.MaxDecompressedBytes = remotewrite.DefaultMaxDecompressedBytes
	}
	if largest := d.MaxCompressedBytes + d.MaxDecompressedBytes; o.MaxInflightBytes < 0 || o.MaxInflightBytes > 0 && o.MaxInflightBytes < largest {
		errs = append(errs, fmt.Errorf("max in-flight push bytes %d: want 0 (no limit) or at least %d, one request at the limits (%d bytes compressed, %d decompressed)",
			o.MaxInflightBytes, largest, d.MaxCompressedBytes, d.MaxDecompressedBytes))
	}
	return errors.Join(errs...)
}

// serve is ServeHTTP; it returns the tenant for the metrics ("" when
// unknown), what was written (nil if the request did not get that far)
// and the decompressed size of the body (0 if unknown).
func (h *WriteHandler) serve(w http.ResponseWriter, r *http.Request) (string, *writeResult, int) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "remote write requires POST", http.StatusMethodNotAllowed)
		return "", nil, 0
	}
	proto, err := checkContentType(r.Header.Values("Content-Type"))
	if err == nil {
		err = checkContentEncoding(r.Header.Values("Content-Encoding"))
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return "", nil, 0
	}
	if proto == remotewrite.ProtoV2 {
		// Every 2.0 answer past content negotiation says what was
		// written: nothing, until the request's result says otherwise.
		setWritten(w.Header(), nil)
	}
	tenant, err := tenant.FromRequest(r, h.opts.MultiTenant)
	if err != nil {
		code, msg := tenantError(err)
		http.Error(w, msg, code)
		return "", nil, 0
	}
	// Past the cheap checks, the request takes its share of the node's
	// limits before it allocates anything: a slot, then the bytes of its
	// body and of its decompressed body.
	var t pushTicket
	if err := h.limit.admit(&t); err != nil {
		http.Error(w, err.Error(), pushLimitCode)
		return tenant, nil, 0
	}
	defer t.release()
	st := h.states.Get().(*pushState)
	defer func() {
		clear(st.batch) // drop references to the request
		st.batch = st.batch[:0]
		clear(st.hists)
		st.hists = st.hists[:0]
		st.hsts, st.hasHST = st.hsts[:0], false
		clear(st.exs)
		st.exs = st.exs[:0]
		clear(st.metas)
		st.metas = st.metas[:0]
		clear(st.mkeys)
		st.mkeys = st.mkeys[:0]
		clear(st.smeta)
		st.smeta = st.smeta[:0]
		st.zeros = st.zeros[:0]
		if st.retainedBytes() <= maxPooledStateBytes {
			h.states.Put(st)
		}
	}()
	size := 0
	body, err := h.readBody(st, r, &t)
	if err == nil {
		if size, err = h.dec.DecodedLen(body); err == nil {
			err = t.reserve(size)
		}
	}
	if err == nil {
		if proto == remotewrite.ProtoV2 {
			err = h.dec.DecodeV2(&st.req, body)
		} else {
			err = h.dec.Decode(&st.req, body)
		}
	}
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, ErrTooManyPushBytes) {
			code = pushLimitCode
		}
		http.Error(w, err.Error(), code)
		return tenant, nil, size
	}
	res, err := h.write(r.Context(), tenant, st)
	if errors.Is(err, limits.ErrIngestionRate) {
		lim := h.opts.Limits.For(tenant)
		http.Error(w, limits.IngestionRateError(lim.IngestionRate, lim.IngestionBurstSize), http.StatusTooManyRequests)
		return tenant, res, size
	}
	if err != nil {
		code := http.StatusInternalServerError
		if retryable(err) {
			code = http.StatusServiceUnavailable
		}
		if !errors.Is(err, raftgroup.ErrDiskFull) { // the disk guard logs a full disk, once per outage
			h.opts.Logger.Warn("remote write failed", "tenant", tenant, "err", err)
		}
		http.Error(w, err.Error(), code)
		return tenant, nil, size
	}
	if proto == remotewrite.ProtoV2 {
		setWritten(w.Header(), res)
	}
	if msg := res.message(); msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return tenant, res, size
	}
	w.WriteHeader(http.StatusNoContent)
	return tenant, res, size
}

// The remote-write 2.0 response headers that count what was written.
const (
	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// setWritten sets the 2.0 "written" headers to what res wrote (nil:
// nothing): the float samples, native histograms and exemplars the
// engine stored (refusals subtracted; an exemplar the engine took as a
// retry of the newest counts, as Prometheus counts it).
// 1.0 answers have none, as Prometheus's receiver sends them only for
// 2.0: 1.0 senders may not rely on them, and the receiver suite's 1.0
// case expects none.
func setWritten(h http.Header, res *writeResult) {
	samples, histograms, exemplars := 0, 0, 0
	if res != nil {
		samples, histograms, exemplars = res.samples, res.histograms, res.exemplars
	}
	h.Set(headerSamplesWritten, strconv.Itoa(samples))
	h.Set(headerHistogramsWritten, strconv.Itoa(histograms))
	h.Set(headerExemplarsWritten, strconv.Itoa(exemplars))
}

// readChunkBytes: a body without a Content-Length is read, and its bytes
// reserved, this much at a time.
const readChunkBytes = 64 << 10

// readBody reads r's body into st.body, at most the decoder's
// MaxCompressedBytes, reserving its bytes in t before it reads them: the
// Content-Length at once (the buffer is allocated to it exactly), a body
// without one readChunkBytes at a time. Errors wrap ErrTooManyPushBytes
// when a reservation failed (429); the others are 400s.
func (h *WriteHandler) readBody(st *pushState, r *http.Request, t *pushTicket) ([]byte, error) {
	limit := h.dec.MaxCompressedBytes()
	tooLarge := func() error { return fmt.Errorf("request body larger than %d bytes", limit) }
	if r.ContentLength > int64(limit) {
		return nil, tooLarge()
	}
	if n := int(r.ContentLength); n >= 0 {
		if err := t.reserve(n); err != nil {
			return nil, err
		}
		st.body = grow(st.body[:0], n)[:n]
		if _, err := io.ReadFull(r.Body, st.body); err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		return st.body, nil
	}
	buf, reserved := st.body[:0], 0
	for {
		if len(buf) > limit {
			return nil, tooLarge()
		}
		if len(buf) == cap(buf) {
			// Double, as io.ReadAll does, up to one byte past the limit.
			buf = grow(buf, min(max(2*cap(buf), readChunkBytes), limit+1))
			st.body = buf
		}
		end := min(cap(buf), len(buf)+readChunkBytes, limit+1)
		if err := t.reserve(end - reserved); err != nil {
			return nil, err
		}
		reserved = max(reserved, end)
		n, err := r.Body.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if len(buf) > limit {
				return nil, tooLarge()
			}
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
	}
}

// grow returns s with a capacity of at least n, allocating exactly n if it
// must.
func grow[E any](s []E, n int) []E {
	if n <= cap(s) {
		return s
	}
	t := make([]E, len(s), n)
	copy(t, s)
	return t
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

// writeResult counts what happened to one request. It is built without
// allocating per series: a refusal is counted under its reason, and only
// the first refusal gets its error text.
type writeResult struct {
	proto                 remotewrite.Proto
	series, samples       int // written
	histograms            int // native histogram samples written
	badSeries, badSamples int // refused (series with any refused sample or histogram)
	badHistograms         int // native histogram samples refused
	firstErr              error
	discarded             [numReasons]int // refused samples and histograms by reason

	exemplars    int   // exemplars written (X-Prometheus-Remote-Write-Exemplars-Written)
	badExemplars int   // exemplars refused, by validation or the engine
	exemplarErr  error // the first exemplar refusal's text
	exemplarsOff int   // of them: 2.0 exemplars of a tenant that keeps none
	// ignoredExemplars: 1.0 (and OTLP) exemplars of a tenant that keeps
	// none, dropped without an error (myelin_ignored_total).
	ignoredExemplars   int
	discardedExemplars [numExemplarReasons]int
	metadata           int // distinct metadata written
	badMetadata        int // metadata refused
	metadataErr        error
	discardedMetadata  [numMetadataReasons]int
}

// Reasons of refused exemplars and metadata, the reason label of
// myelin_discarded_exemplars_total and myelin_discarded_metadata_total
// (Mimir's names where it has one).
const (
	exemplarInvalid = iota
	exemplarSeriesRefused
	exemplarOutOfOrder
	exemplarSeriesMissing
	exemplarsDisabled
	exemplarOther
	numExemplarReasons
)

var exemplarReasons = [numExemplarReasons]string{"exemplar_invalid", "exemplar_series_invalid", "exemplar_out_of_order",
	"exemplar_series_missing", "exemplars_disabled", "other"}

const (
	metadataInvalid = iota
	metadataPerUser
	metadataPerMetric
	metadataOther
	numMetadataReasons
)

var metadataReasons = [numMetadataReasons]string{"metadata_invalid", "per_user_metadata_limit", "per_metric_metadata_limit", "other"}

// refuseExemplars counts n exemplars refused for reason.
func (res *writeResult) refuseExemplars(n, reason int) {
	res.badExemplars += n
	res.discardedExemplars[reason] += n
}

// exemplarsOutcome counts what the engine did with a batch series of n
// exemplars (refusal: its refusal, or nil) of the series series names.
func (res *writeResult) exemplarsOutcome(n int, refusal *write.Refusal, series func() string) {
	if refusal == nil {
		res.exemplars += n
		return
	}
	rejected := min(refusal.Rejected, n)
	res.exemplars += n - rejected
	reason := exemplarOther
	switch {
	case strings.Contains(refusal.Err.Error(), engineOutOfOrderExemplar):
		reason = exemplarOutOfOrder
	case strings.Contains(refusal.Err.Error(), engineExemplarNoSeries):
		reason = exemplarSeriesMissing
	}
	res.refuseExemplars(rejected, reason)
	if res.exemplarErr == nil {
		res.exemplarErr = fmt.Errorf("%v: %d of %d exemplars refused in series %s", refusal.Err, rejected, n, series())
	}
}

// The texts of the engine's exemplar refusals (engine.ErrOutOfOrderExemplar,
// ErrExemplarNoSeries): an outcome carries a refusal's text, not its
// sentinel, for the causes it has no code for.
const (
	engineOutOfOrderExemplar = "out of order exemplar"
	engineExemplarNoSeries   = "exemplar for a series with no samples in the head"
)

// metadataOutcome counts what the engine did with metadata m.
func (res *writeResult) metadataOutcome(refusal *write.Refusal, m *write.Metadata, tl *limits.Limits) {
	if refusal == nil {
		res.metadata++
		return
	}
	res.badMetadata++
	reason, text := metadataOther, refusal.Err.Error()
	switch {
	case strings.Contains(text, engineMetadataLimit):
		reason, text = metadataPerUser, limits.MetadataPerUserError(tl.MaxGlobalMetadataPerUser)
	case strings.Contains(text, engineMetadataPerMetricLimit):
		reason, text = metadataPerMetric, limits.MetadataPerMetricError(tl.MaxGlobalMetadataPerMetric)
	}
	res.discardedMetadata[reason]++
	if res.metadataErr == nil {
		res.metadataErr = fmt.Errorf("%s This is for metric %s", text, m.Family)
	}
}

// The texts of the engine's metadata refusals (engine.ErrMetadataLimit,
// ErrMetadataPerMetricLimit).
const (
	engineMetadataLimit          = "metric metadata limit of the tenant in the group reached"
	engineMetadataPerMetricLimit = "metadata per metric limit of the tenant in the group reached"
)

// keepStartZero keeps a zero sample at the start timestamp startTS of
// series i, whose first float sample in the request is at t, as a batch
// series before the series' samples: Prometheus's AppendSTZeroSample
// (created-timestamp-zero-ingestion). Only for a start before the
// sample and within what queries read; the engine refuses it, and the
// server ignores the refusal, when the series has a sample at or after
// the start already (the start was ingested before, as Prometheus
// ignores ErrOutOfOrderST). Only the first sample's start of each series
// in a request: a later sample's start after the previous sample (a
// counter reset inside one request) would need the zero between the two,
// in the same batch series (not done: Prometheus's sender puts a series'
// samples of one scrape in a request, one each).
func keepStartZero(st *pushState, i int, startTS, t int64) {
	if startTS >= t || startTS < remotewrite.MinTimestamp {
		return
	}
	z := len(st.zeros)
	st.zeros = append(st.zeros, write.Sample{T: startTS, V: 0})
	st.kept = append(st.kept, kept{series: int32(i), lo: int32(z), hi: int32(z + 1), kind: keptZeros})
}

// keepExemplars validates the exemplars of series i of st.req, the first
// of them req.Exemplars[e0], and keeps the valid ones as a batch series
// after the series' samples (stored: the series has samples or
// histograms in the batch). A tenant that keeps no exemplars has them
// refused in 2.0 (the spec allows no 2xx then) and dropped in 1.0.
func (h *WriteHandler) keepExemplars(st *pushState, res *writeResult, i, e0 int, stored, on bool) {
	req := &st.req
	n := int(req.Series[i].Exemplars)
	switch {
	case !on && req.Proto == remotewrite.ProtoV2:
		res.refuseExemplars(n, exemplarsDisabled)
		res.exemplarsOff += n
		return
	case !on:
		res.ignoredExemplars += n
		return
	case !stored:
		// The series' samples were all refused: its exemplars go with them.
		res.refuseExemplars(n, exemplarSeriesRefused)
		return
	}
	x0 := len(st.exs)
	for j := range n {
		var e write.Exemplar
		var err error
		e, st.exLbls, err = st.exemplar(e0+j, h.opts.LegacyNames, st.exLbls)
		if err != nil {
			res.refuseExemplars(1, exemplarInvalid)
			if res.exemplarErr == nil {
				res.exemplarErr = fmt.Errorf("exemplar %d of series %s: %w", j, req.SeriesString(&req.Series[i]), err)
			}
			continue
		}
		st.exs = append(st.exs, e)
	}
	if len(st.exs) > x0 {
		st.kept = append(st.kept, kept{series: int32(i), lo: int32(x0), hi: int32(len(st.exs)), kind: keptExemplars})
	}
}

// keepMetadata validates the request's metadata and keeps each distinct
// one once, as a batch series of its own whose labels
// ({__name__=family}) place it on a group. 2.0 metadata of a series
// refused whole is left out with it.
func (h *WriteHandler) keepMetadata(st *pushState, res *writeResult) {
	req := &st.req
	seen := make(map[write.Metadata]bool, min(len(req.Metadata), 1024))
	m0 := len(st.metas)
	for j, sp := range req.Metadata {
		if req.Proto == remotewrite.ProtoV2 && !h.seriesKept(st, sp.Series) {
			continue
		}
		m, err := req.MetadataOf(j)
		if err != nil {
			res.badMetadata++
			res.discardedMetadata[metadataInvalid]++
			if res.metadataErr == nil {
				res.metadataErr = err
			}
			continue
		}
		if seen[m] {
			continue
		}
		seen[m] = true
		st.metas = append(st.metas, m)
		st.mkeys = append(st.mkeys, write.AppendLabel(nil, "__name__", m.Family))
	}
	for k := m0; k < len(st.metas); k++ {
		st.kept = append(st.kept, kept{series: -1, lo: int32(k), hi: int32(k + 1), kind: keptMetadata})
	}
}

// seriesKept reports whether series i of st.req has a batch series.
func (h *WriteHandler) seriesKept(st *pushState, i int) bool {
	_, ok := slices.BinarySearchFunc(st.kept, int32(i), func(k kept, i int32) int { return int(k.series - i) })
	return ok
}

// refuse counts a series whose samples (and histograms) were all refused
// by validation; err is a sentinel (Limits.CheckSeries).
func (res *writeResult) refuse(samples, histograms int, err error) {
	res.badSeries++
	res.badSamples += samples
	res.badHistograms += histograms
	res.discarded[reasonOf(err)] += samples + histograms
}

// message is the 400 body, or "" if nothing was refused.
func (res *writeResult) message() string {
	var parts []string
	if res.badSeries > 0 {
		if res.badHistograms > 0 {
			parts = append(parts, fmt.Sprintf("%v; %d series (%d samples, %d histograms) refused in total", res.firstErr, res.badSeries, res.badSamples, res.badHistograms))
		} else {
			parts = append(parts, fmt.Sprintf("%v; %d series (%d samples) refused in total", res.firstErr, res.badSeries, res.badSamples))
		}
	}
	// A 2.0 answer may not be a 2xx while exemplars were not written
	// (spec, "Response"); 1.0 has no such rule and no written headers, so
	// a 1.0 sender would count its stored samples as failed: there they
	// are only counted (myelin_ignored_total).
	if res.exemplarsOff > 0 {
		parts = append(parts, fmt.Sprintf("exemplars are not kept for this tenant (max_global_exemplars_per_user is 0; -%s): %d exemplars were not written",
			limits.Flag["max_global_exemplars_per_user"], res.exemplarsOff))
	}
	if n := res.badExemplars - res.exemplarsOff - res.discardedExemplars[exemplarSeriesRefused]; n > 0 && res.exemplarErr != nil {
		parts = append(parts, fmt.Sprintf("%v; %d exemplars refused in total", res.exemplarErr, n))
	}
	if res.badMetadata > 0 {
		parts = append(parts, fmt.Sprintf("%v; %d metadata refused in total", res.metadataErr, res.badMetadata))
	}
	if len(parts) == 0 {
		return ""
	}
	written := fmt.Sprintf("%d samples", res.samples)
	if res.histograms > 0 {
		written += fmt.Sprintf(", %d histograms", res.histograms)
	}
	if res.exemplars > 0 {
		written += fmt.Sprintf(", %d exemplars", res.exemplars)
	}
	return strings.Join(parts, "; ") + fmt.Sprintf("; %d series (%s) were written", res.series, written)
}

// write validates the decoded request in st, writes its valid series as
// one batch and counts what happened. The batch aliases the request's
// keys and samples (no copy) and st.hists: it lives only while Write
// runs.
func (h *WriteHandler) write(ctx context.Context, tenant string, st *pushState) (*writeResult, error) {
	req := &st.req
	res := &writeResult{proto: req.Proto}
	now := h.opts.Now()
	tl := h.opts.Limits.For(tenant)
	exemplarsOn := tl.MaxGlobalExemplarsPerUser > 0
	v := tl.Validation(h.opts.LegacyNames)
	lim := &v
	// kept: room for every series at once, so that it never grows by
	// copying (a series with histograms may take a second entry); the
	// batch is then allocated to size.
	// INVARIANT: fewer than 2^31 series and histograms (2 bytes each at
	// least, in a body of at most 2^32-1), so an int32 holds an index.
	st.kept = grow(st.kept[:0], len(req.Series))
	// The valid histograms, at most all of them: allocated once (append
	// would copy a large request's several times over).
	st.hists = grow(st.hists, len(st.hists)+len(req.Histograms))
	firstBad := -1 // series of the first validation refusal of labels or samples
	var firstHistErr error
	hi, ei := 0, 0 // next of req.Histograms, req.Exemplars
	si, s0 := 0, 0 // next of req.StartTimestamps; index of series i's first sample
	for i := range req.Series {
		s := &req.Series[i]
		first := s0 // series i's samples are req.Samples[first:first+len(s.Samples)]
		s0 += len(s.Samples)
		for si < len(req.StartTimestamps) && req.StartTimestamps[si].Sample < first {
			si++
		}
		// The histograms of series i are req.Histograms[hi:hend], its
		// exemplars req.Exemplars[ei:eend].
		for hi < len(req.Histograms) && req.Histograms[hi].Series < i {
			hi++
		}
		for ei < len(req.Exemplars) && req.Exemplars[ei].Series < i {
			ei++
		}
		hend, eend := hi+int(s.Histograms), ei+int(s.Exemplars)
		e0 := ei
		ei = eend
		err := s.Err() // 2.0: bad references, no samples nor histograms
		// Exemplars alone: the 2.0 spec asks senders for samples or
		// histograms in every series, but Prometheus's own 2.0 sender
		// (3.14) sends a scrape's exemplars in series of their own,
		// without samples, which its receiver refuses. They are taken: the
		// engine keeps them if the series has samples (this request's, or
		// earlier ones'), and refuses them otherwise.
		exemplarsOnly := len(s.Samples) == 0 && s.Histograms == 0 && s.Exemplars > 0
		if exemplarsOnly && errors.Is(err, remotewrite.ErrNoSamples) {
			err = nil
		}
		if err == nil {
			err = lim.CheckSeries(s, st.labelsOf(s))
		}
		if err != nil {
			res.refuse(len(s.Samples), int(s.Histograms), err)
			res.refuseExemplars(int(s.Exemplars), exemplarSeriesRefused)
			if firstBad < 0 {
				firstBad = i
			}
			hi = hend
			continue
		}
		badSeries, k0 := false, len(st.kept)
		floatsOK := false
		if len(s.Samples) > 0 {
			if err := lim.CheckSamples(s.Samples, now); err != nil {
				res.badSamples += len(s.Samples)
				res.discarded[reasonOf(err)] += len(s.Samples)
				badSeries = true
				if firstBad < 0 {
					firstBad = i
				}
			} else {
				floatsOK = true
			}
		}
		h0 := len(st.hists)
		if s.Histograms > 0 {
			for j := range int(s.Histograms) {
				hist, hst, err := st.histogram(hi + j)
				if err == nil {
					err = lim.ValidateHistogram(st.labelsOf(s), j, &hist, now)
				}
				if err != nil {
					res.badHistograms++
					res.discarded[reasonOf(errors.Unwrap(err))]++
					badSeries = true
					if firstHistErr == nil {
						firstHistErr = err
					}
					continue
				}
				st.hists = append(st.hists, hist)
				if hst != 0 && !st.hasHST {
					st.hasHST = true
					st.hsts = append(st.hsts[:0], make([]int64, len(st.hists)-1)...)
				}
				if st.hasHST {
					st.hsts = append(st.hsts, hst)
				}
			}
		}
		var floats []remotewrite.Sample
		if floatsOK {
			floats = s.Samples
			if tl.StartTimestampZeroIngestion && req.Proto == remotewrite.ProtoV2 && s.Histograms == 0 && si < len(req.StartTimestamps) && req.StartTimestamps[si].Sample == first {
				keepStartZero(st, i, req.StartTimestamps[si].ST, floats[0].T)
			}
		}
		st.kept = appendRuns(st.kept, int32(i), floats, st.hists[h0:], int32(h0))
		hi = hend
		if s.Exemplars > 0 {
			h.keepExemplars(st, res, i, e0, len(st.kept) > k0 || exemplarsOnly, exemplarsOn)
		}
		if badSeries {
			res.badSeries++
			for k := k0; k < len(st.kept); k++ {
				st.kept[k].counted = true
			}
		}
	}
	if firstBad >= 0 {
		// The one error text of the request's validation refusals.
		s := &req.Series[firstBad]
		res.firstErr = req.SeriesError(firstBad)
		if s.Exemplars > 0 && errors.Is(res.firstErr, remotewrite.ErrNoSamples) {
			res.firstErr = nil // exemplars alone are taken: its labels were refused
		}
		if res.firstErr == nil {
			ls := req.LabelsOf(s, nil)
			res.firstErr = lim.ValidateSeries(s, ls)
			if res.firstErr == nil {
				res.firstErr = lim.ValidateSamples(ls, s.Samples, now)
			}
		}
	}
	if res.firstErr == nil {
		res.firstErr = firstHistErr
	}
	if len(req.Metadata) > 0 {
		h.keepMetadata(st, res)
	}
	if len(st.kept) == 0 {
		return res, nil
	}
	st.batch = grow(st.batch[:0], len(st.kept))
	// Room for every batch series' SeriesMeta at once: the batch points
	// into it.
	nmeta := 0
	for _, k := range st.kept {
		if k.kind == keptExemplars || k.kind == keptMetadata {
			nmeta++
		}
	}
	st.smeta = grow(st.smeta[:0], nmeta)
	// firsts: the index in req.Samples of each series' first sample, for
	// the start timestamps (only when the request has any).
	var firsts []int
	if len(req.StartTimestamps) > 0 {
		firsts = make([]int, len(req.Series))
		n := 0
		for i := range req.Series {
			firsts[i] = n
			n += len(req.Series[i].Samples)
		}
	}
	valid := 0
	for _, k := range st.kept {
		if k.kind == keptMetadata {
			st.smeta = append(st.smeta, write.SeriesMeta{Metadata: &st.metas[k.lo]})
			st.batch = append(st.batch, write.Series{Labels: st.mkeys[k.lo], Meta: &st.smeta[len(st.smeta)-1]})
			valid++
			continue
		}
		s := &req.Series[k.series]
		// Valid labels, without the empty-valued ones, in wire order are
		// sorted and unique: s.Key is then the engine's encoding of the
		// label set to store (remotewrite.Series.Key).
		if invariants.Enabled {
			if err := write.CheckLabels(s.Key); err != nil {
				panic(fmt.Sprintf("BUG: key %q of a valid series: %v", s.Key, err))
			}
		}
		valid += int(k.hi - k.lo)
		switch k.kind {
		case keptHists:
			st.batch = append(st.batch, write.Series{Labels: s.Key, Histograms: st.hists[k.lo:k.hi:k.hi]})
			st.batch[len(st.batch)-1].SetStartTimestamps(st.histogramSTs(k))
		case keptZeros:
			st.batch = append(st.batch, write.Series{Labels: s.Key, Samples: st.zeros[k.lo:k.hi:k.hi]})
			continue
		case keptExemplars:
			st.smeta = append(st.smeta, write.SeriesMeta{Exemplars: st.exs[k.lo:k.hi:k.hi]})
			st.batch = append(st.batch, write.Series{Labels: s.Key, Meta: &st.smeta[len(st.smeta)-1]})
		default:
			st.batch = append(st.batch, write.Series{Labels: s.Key, Samples: s.Samples[k.lo:k.hi:k.hi]})
			st.batch[len(st.batch)-1].SetStartTimestamps(st.floatSTs(k, firsts))
		}
	}
	// The valid samples and histograms take their share of the tenant's
	// rate, or the whole request is refused (429, retried by the sender):
	// Mimir's order, after validation; Mimir counts a histogram as a
	// sample.
	if !h.ingest.AllowN(now, tenant, valid) {
		res.discarded[reasonOf(limits.ErrIngestionRate)] += valid
		return res, limits.ErrIngestionRate
	}
	// The tenant's global exemplar and metadata limits, for a batch that
	// carries either: the distributor gives each group its share.
	var meta write.MetaLimits
	if nmeta > 0 {
		meta = write.MetaLimits{MaxExemplars: tl.MaxGlobalExemplarsPerUser, MaxMetadata: tl.MaxGlobalMetadataPerUser,
			MaxMetadataPerMetric: tl.MaxGlobalMetadataPerMetric}
	}
	refused, err := h.w.Write(ctx, &write.Batch{Tenant: tenant, MetaLimits: meta, Series: st.batch})
	if err != nil {
		return nil, err
	}
	// Refusals by batch index, in order (the distributor sorts them; sort
	// a Writer's that are not), merged with the batch: no map.
	if !slices.IsSortedFunc(refused, func(a, b write.Refusal) int { return a.Series - b.Series }) {
		slices.SortFunc(refused, func(a, b write.Refusal) int { return a.Series - b.Series })
	}
	// A series counts as written if any of its batch series wrote
	// something, and as refused if any refused something (and was not
	// counted refused by validation already).
	prevSeries, prevWrote, prevBad := int32(-1), false, false
	flush := func() {
		if prevSeries < 0 {
			return
		}
		if prevWrote {
			res.series++
		}
		if prevBad {
			res.badSeries++
		}
	}
	for bi, k := range st.kept {
		if k.series != prevSeries {
			flush()
			prevSeries, prevWrote, prevBad = k.series, false, false
		}
		n := int(k.hi - k.lo)
		for len(refused) > 0 && refused[0].Series < bi {
			refused = refused[1:] // a second refusal of a series: not expected
		}
		var refusal *write.Refusal
		if len(refused) > 0 && refused[0].Series == bi {
			refusal = &refused[0]
			refused = refused[1:]
		}
		switch k.kind {
		case keptZeros:
			// Neither written nor refused, as Prometheus counts them: a
			// refusal (out of order: the start was ingested already, or
			// the series has newer samples) is the common case and ignored.
			continue
		case keptExemplars:
			res.exemplarsOutcome(n, refusal, func() string { return req.SeriesString(&req.Series[k.series]) })
			continue
		case keptMetadata:
			res.metadataOutcome(refusal, &st.metas[k.lo], tl)
			continue
		}
		s := &req.Series[k.series]
		rejected := 0
		if refusal != nil {
			e := *refusal
			rejected = min(e.Rejected, n)
			res.discarded[reasonOf(e.Err)] += rejected
			if res.firstErr == nil {
				res.firstErr = refusalError(e, n, req.SeriesString(s), tl)
			}
			prevBad = prevBad || !k.counted
		}
		if k.kind == keptFloats {
			res.samples += n - rejected
			res.badSamples += rejected
		} else {
			res.histograms += n - rejected
			res.badHistograms += rejected
		}
		prevWrote = prevWrote || rejected < n
	}
	flush()
	return res, nil
}

// appendRuns appends the batch series of series i (kept): its floats
// and hists (st.hists from h0) merged by time into runs of one kind, a
// float first at equal times. A series of one kind, or whose floats all
// come before its histograms, is one entry per kind.
func appendRuns(dst []kept, i int32, floats []remotewrite.Sample, hists []write.Histogram, h0 int32) []kept {
	fi, hi := 0, 0
	for fi < len(floats) || hi < len(hists) {
		if hi == len(hists) || fi < len(floats) && floats[fi].T <= hists[hi].T {
			start := fi
			for fi < len(floats) && (hi == len(hists) || floats[fi].T <= hists[hi].T) {
				fi++
			}
			dst = append(dst, kept{series: i, lo: int32(start), hi: int32(fi)})
			continue
		}
		start := hi
		for hi < len(hists) && (fi == len(floats) || hists[hi].T < floats[fi].T) {
			hi++
		}
		dst = append(dst, kept{series: i, lo: h0 + int32(start), hi: h0 + int32(hi), kind: keptHists})
	}
	return dst
}

// refusalError is the text of the first refusal of a request by the
// engine, e of series s of n samples: a series limit in Mimir's words
// with the tenant's global limit and the series, anything else with the
// samples refused.
func refusalError(e write.Refusal, n int, s string, tl *limits.Limits) error {
	switch {
	case errors.Is(e.Err, write.ErrSeriesLimit):
		return fmt.Errorf("%s This is for series %s (%w)", limits.SeriesPerUserError(tl.MaxGlobalSeriesPerUser), s, e.Err)
	case errors.Is(e.Err, write.ErrMetricSeriesLimit):
		return fmt.Errorf("%s This is for series %s (%w)", limits.SeriesPerMetricError(tl.MaxGlobalSeriesPerMetric), s, e.Err)
	}
	return fmt.Errorf("%w: %d of %d samples refused in series %s", e.Err, e.Rejected, n, s)
}

// checkContentType returns the message a request's Content-Type names
// (remote-write 2.0 spec, "Content-Type"): application/x-protobuf with
// no proto parameter or proto=prometheus.WriteRequest is 1.0,
// proto=io.prometheus.write.v2.Request is 2.0; no Content-Type at all is
// 1.0, as senders older than the header send it and Prometheus's
// receiver assumes. Anything else is an error, answered 415: the spec
// asks for it, so that a sender may try another message.
func checkContentType(values []string) (remotewrite.Proto, error) {
	switch len(values) {
	case 0:
		return remotewrite.ProtoV1, nil
	case 1:
	default:
		return 0, fmt.Errorf("%d Content-Type headers, want one", len(values))
	}
	ct := values[0]
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, fmt.Errorf("bad Content-Type %q: %v", ct, err)
	}
	if mt != "application/x-protobuf" {
		return 0, fmt.Errorf("unsupported Content-Type %q: want application/x-protobuf", ct)
	}
	switch params["proto"] {
	case "", remotewrite.ProtoV1.String():
		return remotewrite.ProtoV1, nil
	case remotewrite.ProtoV2.String():
		return remotewrite.ProtoV2, nil
	}
	return 0, fmt.Errorf("unsupported remote write message %q: this server accepts proto=%s (remote write 2.0) and %s (1.0)",
		params["proto"], remotewrite.ProtoV2, remotewrite.ProtoV1)
}

// checkContentEncoding accepts a snappy body: Content-Encoding snappy, or
// none (Prometheus's receiver assumes snappy then, and so do senders that
// predate the header). Anything else is a 415, as the remote-write spec
// asks ("Unsupported Request Content"): the body would not decode, and a
// 400 would tell the sender to drop it rather than try another encoding.
// Content-coding names are case-insensitive (RFC 9110, 8.4.1).
func checkContentEncoding(values []string) error {
	switch {
	case len(values) == 0:
		return nil
	case len(values) == 1 && strings.EqualFold(strings.TrimSpace(values[0]), "snappy"):
		return nil
	}
	return fmt.Errorf("unsupported Content-Encoding %q: remote write bodies must be snappy-compressed (Content-Encoding: snappy)",
		strings.Join(values, ", "))
}
