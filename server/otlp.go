package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// OTLPOptions configure the OTLP/HTTP metrics handler: how OTLP names and
// resources become Prometheus series, Prometheus 3's otlp: settings.
type OTLPOptions struct {
	// TranslationStrategy is Prometheus's otlp.translation_strategy.
	// Empty means UnderscoreEscapingWithSuffixes, Prometheus's default.
	TranslationStrategy otlptranslator.TranslationStrategyOption
	// PromoteResourceAttributes: resource attributes copied as labels
	// onto every series of the resource (otlp.promote_resource_attributes).
	PromoteResourceAttributes []string
	// KeepIdentifyingResourceAttributes keeps service.name,
	// service.namespace and service.instance.id on target_info
	// (otlp.keep_identifying_resource_attributes).
	KeepIdentifyingResourceAttributes bool
	// PromoteScopeMetadata adds otel_scope_name, _version, _schema_url
	// and the scope's attributes as labels (otlp.promote_scope_metadata).
	PromoteScopeMetadata bool
	// DisableTargetInfo: no target_info series for the resources.
	DisableTargetInfo bool
}

// Validate reports every problem of o at once.
func (o OTLPOptions) Validate() error {
	switch o.TranslationStrategy {
	case "", otlptranslator.UnderscoreEscapingWithSuffixes, otlptranslator.UnderscoreEscapingWithoutSuffixes,
		otlptranslator.NoUTF8EscapingWithSuffixes, otlptranslator.NoTranslation:
		return nil
	}
	return fmt.Errorf("unknown OTLP translation strategy %q: want %s, %s, %s or %s", o.TranslationStrategy,
		otlptranslator.UnderscoreEscapingWithSuffixes, otlptranslator.UnderscoreEscapingWithoutSuffixes,
		otlptranslator.NoUTF8EscapingWithSuffixes, otlptranslator.NoTranslation)
}

// OTLPHandler serves OTLP/HTTP metrics (POST /otlp/v1/metrics): it decodes
// an ExportMetricsServiceRequest, translates it to Prometheus series with
// Prometheus's own translator (storage/remote/otlptranslator) and writes
// them through its WriteHandler's path: the same tenant, validation,
// limits, in-flight bounds, metrics and Writer as remote write.
type OTLPHandler struct {
	wh       *WriteHandler
	settings prometheusremotewrite.Settings // immutable
	states   sync.Pool                      // *otlpState
	// maxBytes: the longest body, compressed or not, and the most bytes
	// a gzip body decompresses to.
	maxCompressed, maxDecompressed int
	promoted                       int // resource attributes promoted
}

// otlpMemPerByte: an OTLP request allocates at most this many bytes per
// byte of its decompressed body: the body, the decoded pmetric request
// (pdata copies every string), the translator's label sets and the
// batch. Measured by TestOTLPMemory: 8.4 for node_exporter-like gauges,
// 12 for points of 28 one-byte attributes, 68 for points without
// attributes (11 bytes each on the wire, ~750 in memory: pdata's point,
// the series, its three labels and batch entry), 72 with -race. The
// handler reserves
// otlpMemPerByte/pushMemPerByte times the decompressed size in the
// node's in-flight bytes, so that the bound the in-flight limit keeps
// for remote write (pushMemPerByte per reserved byte) holds for OTLP too.
const otlpMemPerByte = 80

// otlpState is the memory one OTLP request works in, pooled.
type otlpState struct {
	push pushState // the series handed to WriteHandler.write
	raw  []byte    // the decompressed body (gzip)
	keys []byte    // Series.Key of all series
	// lens: labels and key bytes of each series, until link.
	lens []int
}

// NewOTLPHandler returns the OTLP handler of wh.
func NewOTLPHandler(wh *WriteHandler, opts OTLPOptions) (*OTLPHandler, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	strategy := opts.TranslationStrategy
	if strategy == "" {
		strategy = otlptranslator.UnderscoreEscapingWithSuffixes
	}
	cfg := config.DefaultOTLPConfig
	cfg.PromoteResourceAttributes = opts.PromoteResourceAttributes
	d := wh.opts.Decoder
	h := &OTLPHandler{wh: wh, promoted: len(opts.PromoteResourceAttributes),
		settings: prometheusremotewrite.Settings{
			AddMetricSuffixes:                    strategy.ShouldAddSuffixes(),
			AllowUTF8:                            !strategy.ShouldEscape(),
			PromoteResourceAttributes:            prometheusremotewrite.NewPromoteResourceAttributes(cfg),
			KeepIdentifyingResourceAttributes:    opts.KeepIdentifyingResourceAttributes,
			PromoteScopeMetadata:                 opts.PromoteScopeMetadata,
			DisableTargetInfo:                    opts.DisableTargetInfo,
			LabelNameUnderscoreSanitization:      cfg.LabelNameUnderscoreSanitization,
			LabelNamePreserveMultipleUnderscores: cfg.LabelNamePreserveMultipleUnderscores,
		},
		maxCompressed:   orDefault(d.MaxCompressedBytes, remotewrite.DefaultMaxCompressedBytes),
		maxDecompressed: orDefault(d.MaxDecompressedBytes, remotewrite.DefaultMaxDecompressedBytes),
	}
	// A request at the limits must fit in the in-flight bytes alone, or
	// it would be refused forever: at the defaults (160 MiB) 22.5 MiB.
	if lim := wh.opts.MaxInflightBytes; lim > 0 {
		h.maxDecompressed = min(h.maxDecompressed, (lim-h.maxCompressed)*pushMemPerByte/otlpMemPerByte)
	}
	h.states.New = func() any { return new(otlpState) }
	return h, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Content types of OTLP/HTTP.
const (
	otlpProto = "application/x-protobuf"
	otlpJSON  = "application/json"
)

// ServeHTTP answers as the OTLP/HTTP specification asks, in the request's
// content type (protobuf or JSON):
//   - 200 with an ExportMetricsServiceResponse when the request was
//     written; its partial_success says how many data points were refused
//     and why (exponential histograms, delta sums and histograms, invalid
//     series, out-of-order samples, series limits): the rest is written;
//   - 400 with a google.rpc.Status for an undecodable body, or when every
//     data point was refused; 401 without a tenant (Mimir's "no org id");
//   - 415 for a content type other than protobuf or JSON, or an encoding
//     other than gzip;
//   - 429 past the node's in-flight limits or the tenant's ingestion rate,
//     503 when the write could not be made durable (both retryable), 500
//     for other failures.
func (h *OTLPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
	tenant, res, size := h.serve(cw, r)
	h.wh.metrics.record(tenant, cw.code, res)
	if res != nil {
		h.wh.opts.Tenants.Add(tenant, res.samples)
	}
	if h.wh.mem.done(time.Now(), size) {
		h.wh.freeMemory()
	}
}

// otlpContentType returns the OTLP content type of a request, or an error.
func otlpContentType(ct string) (string, error) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("bad Content-Type %q: %v", ct, err)
	}
	if mt != otlpProto && mt != otlpJSON {
		return "", fmt.Errorf("unsupported Content-Type %q: want %s or %s", ct, otlpProto, otlpJSON)
	}
	return mt, nil
}

func (h *OTLPHandler) serve(w http.ResponseWriter, r *http.Request) (string, *writeResult, int) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "OTLP requires POST", http.StatusMethodNotAllowed)
		return "", nil, 0
	}
	ct, err := otlpContentType(r.Header.Get("Content-Type"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return "", nil, 0
	}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if enc != "" && enc != "gzip" && enc != "identity" {
		otlpError(w, ct, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Encoding %q: want gzip or none", enc))
		return "", nil, 0
	}
	tenantID, err := tenant.FromRequest(r, h.wh.opts.MultiTenant)
	if err != nil {
		code, msg := tenantError(err)
		otlpError(w, ct, code, msg)
		return "", nil, 0
	}
	// As remote write: a slot, then every byte reserved before it is
	// allocated.
	var t pushTicket
	if err := h.wh.limit.admit(&t); err != nil {
		otlpError(w, ct, pushLimitCode, err.Error())
		return tenantID, nil, 0
	}
	defer t.release()
	st := h.states.Get().(*otlpState)
	defer h.putState(st)
	body, err := h.readBody(st, r, enc, &t)
	size := len(body)
	var md pmetric.Metrics
	if err == nil {
		// The decoded request and its translation, on top of the body.
		if err = t.reserve(size * (otlpMemPerByte - pushMemPerByte) / pushMemPerByte); err == nil {
			md, err = decodeOTLP(body, ct)
		}
	}
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, ErrTooManyPushBytes) {
			code = pushLimitCode
		}
		otlpError(w, ct, code, err.Error())
		return tenantID, nil, size
	}
	res, msg, err := h.write(r.Context(), tenantID, st, md)
	if errors.Is(err, limits.ErrIngestionRate) {
		lim := h.wh.opts.Limits.For(tenantID)
		otlpError(w, ct, http.StatusTooManyRequests, limits.IngestionRateError(lim.IngestionRate, lim.IngestionBurstSize))
		return tenantID, &res.writeResult, size
	}
	if err != nil {
		code := http.StatusInternalServerError
		if retryable(err) {
			code = http.StatusServiceUnavailable
		}
		if !errors.Is(err, raftgroup.ErrDiskFull) {
			h.wh.opts.Logger.Warn("OTLP write failed", "tenant", tenantID, "err", err)
		}
		otlpError(w, ct, code, err.Error())
		return tenantID, nil, size
	}
	if res.samples == 0 && res.rejectedPoints > 0 {
		otlpError(w, ct, http.StatusBadRequest, msg)
		return tenantID, &res.writeResult, size
	}
	resp := pmetricotlp.NewExportResponse()
	if res.rejectedPoints > 0 || msg != "" {
		resp.PartialSuccess().SetRejectedDataPoints(int64(res.rejectedPoints))
		resp.PartialSuccess().SetErrorMessage(msg)
	}
	var out []byte
	if ct == otlpJSON {
		out, err = resp.MarshalJSON()
	} else {
		out, err = resp.MarshalProto()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return tenantID, &res.writeResult, size
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return tenantID, &res.writeResult, size
}

func (h *OTLPHandler) putState(st *otlpState) {
	ps := &st.push
	clear(ps.batch)
	ps.batch = ps.batch[:0]
	ps.req.Reset()
	clear(ps.req.Labels[:cap(ps.req.Labels)]) // the translator's strings
	if ps.retainedBytes()+cap(st.raw)+cap(st.keys)+8*cap(st.lens) <= maxPooledStateBytes {
		h.states.Put(st)
	}
}

// readBody reads the request's body, gunzipped if enc is gzip, into a
// buffer of st, reserving every byte in t before it is read: at most
// maxCompressed bytes of gzip, and maxDecompressed bytes of protobuf or
// JSON.
func (h *OTLPHandler) readBody(st *otlpState, r *http.Request, enc string, t *pushTicket) ([]byte, error) {
	if enc != "gzip" {
		if r.ContentLength > int64(h.maxDecompressed) {
			return nil, fmt.Errorf("request body larger than %d bytes", h.maxDecompressed)
		}
		var err error
		st.raw, err = readReserved(st.raw[:0], r.Body, h.maxDecompressed, t)
		return st.raw, err
	}
	zipped, err := h.wh.readBody(&st.push, r, t)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytesReader(zipped))
	if err != nil {
		return nil, fmt.Errorf("decompress gzip body: %w", err)
	}
	st.raw, err = readReserved(st.raw[:0], zr, h.maxDecompressed, t)
	if err != nil && !errors.Is(err, ErrTooManyPushBytes) && !strings.HasPrefix(err.Error(), "request body") {
		err = fmt.Errorf("decompress gzip body: %w", err)
	}
	return st.raw, err
}

// bytesReader is an io.Reader over b.
func bytesReader(b []byte) io.Reader { return &sliceReader{b} }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// readReserved appends what src yields to buf, at most limit bytes,
// reserving each readChunkBytes in t before reading it.
func readReserved(buf []byte, src io.Reader, limit int, t *pushTicket) ([]byte, error) {
	reserved := 0
	for {
		if len(buf) > limit {
			return buf[:0], fmt.Errorf("request body larger than %d bytes", limit)
		}
		if len(buf) == cap(buf) {
			buf = grow(buf, min(max(2*cap(buf), readChunkBytes), limit+1))
		}
		end := min(cap(buf), len(buf)+readChunkBytes, limit+1)
		if err := t.reserve(end - reserved); err != nil {
			return buf[:0], err
		}
		reserved = max(reserved, end)
		n, err := src.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if len(buf) > limit {
				return buf[:0], fmt.Errorf("request body larger than %d bytes", limit)
			}
			return buf, nil
		}
		if err != nil {
			return buf[:0], fmt.Errorf("read request body: %w", err)
		}
	}
}

// decodeOTLP decodes an ExportMetricsServiceRequest.
func decodeOTLP(body []byte, ct string) (pmetric.Metrics, error) {
	req := pmetricotlp.NewExportRequest()
	var err error
	if ct == otlpJSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		return pmetric.Metrics{}, fmt.Errorf("decode OTLP metrics request (%s): %w", ct, err)
	}
	return req.Metrics(), nil
}

// otlpResult is a writeResult with what the translation refused.
type otlpResult struct {
	writeResult
	// rejectedPoints: the OTLP data points refused (partial_success):
	// the exponential histogram and delta points, plus every sample the
	// write path refused (a classic histogram or summary point refused
	// whole counts once per sample).
	rejectedPoints int
}

// write translates md into the series of st.push and writes them with
// the write handler's write; msg is the partial_success error message.
func (h *OTLPHandler) write(ctx context.Context, tenantID string, st *otlpState, md pmetric.Metrics) (*otlpResult, string, error) {
	res := &otlpResult{}
	var msgs []string
	// Refused before translation: the converter would turn exponential
	// histograms into native histograms, which the engine cannot store
	// yet, and refuses delta temporality with a terse error; they are
	// taken out, counted and explained.
	expo, delta, deltaName := takeUnsupported(md)
	if expo > 0 {
		res.histograms = expo
		msgs = append(msgs, fmt.Sprintf("exponential histograms are not supported yet (they need native histograms): %d data points were not written", expo))
	}
	if delta > 0 {
		msgs = append(msgs, fmt.Sprintf("delta temporality is not supported: %d data points of delta sums and histograms (the first %q) were not written; convert them to cumulative (the Collector's deltatocumulative processor)", delta, deltaName))
	}
	res.rejectedPoints = expo + delta

	app := &otlpAppender{st: st}
	app.reset(countOTLP(md, h.promoted+3))
	conv := prometheusremotewrite.NewPrometheusConverter(app)
	_, convErr := conv.FromMetrics(ctx, md, h.settings)
	if ctx.Err() != nil {
		return nil, "", ctx.Err()
	}
	if convErr != nil {
		msgs = append(msgs, "translate: "+convErr.Error())
	}
	app.link()
	res.exemplars = app.exemplars
	wres, err := h.wh.write(ctx, tenantID, &st.push)
	if wres != nil {
		wres.histograms, wres.ignoredExemplars = res.histograms, res.exemplars
		res.writeResult = *wres
	}
	if err != nil {
		return res, "", err
	}
	res.rejectedPoints += res.badSamples
	if res.badSeries > 0 && res.firstErr != nil {
		msgs = append(msgs, fmt.Sprintf("%v; %d series (%d samples) refused in total", res.firstErr, res.badSeries, res.badSamples))
	}
	if len(msgs) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d series (%d samples) were written", res.series, res.samples))
	}
	return res, strings.Join(msgs, "; "), nil
}

// takeUnsupported removes from md the exponential histograms and the
// metrics of delta temporality, and returns how many data points each
// had, and the name of the first delta metric.
func takeUnsupported(md pmetric.Metrics) (expo, delta int, deltaName string) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			sms.At(j).Metrics().RemoveIf(func(m pmetric.Metric) bool {
				switch m.Type() {
				case pmetric.MetricTypeExponentialHistogram:
					expo += m.ExponentialHistogram().DataPoints().Len()
					return true
				case pmetric.MetricTypeSum:
					if m.Sum().AggregationTemporality() == pmetric.AggregationTemporalityDelta {
						delta += m.Sum().DataPoints().Len()
						deltaName = cmpOr(deltaName, m.Name())
						return true
					}
				case pmetric.MetricTypeHistogram:
					if m.Histogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta {
						delta += m.Histogram().DataPoints().Len()
						deltaName = cmpOr(deltaName, m.Name())
						return true
					}
				}
				return false
			})
		}
	}
	return expo, delta, deltaName
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// otlpAppender is the storage.AppenderV2 the translator appends to: it
// lays the samples out as a remotewrite.Request of one series per
// sample, in append order, for WriteHandler.write. Labels alias the
// translator's label strings (immutable), kept alive by the Request.
type otlpAppender struct {
	st        *otlpState
	exemplars int
}

var _ storage.AppenderV2 = (*otlpAppender)(nil)

// reset empties the appender's request and sizes it for about samples
// series (one sample each) of labels labels in all.
func (a *otlpAppender) reset(samples, labels int) {
	st := a.st
	req := &st.push.req
	req.Reset()
	req.Series = grow(req.Series, samples)
	req.Samples = grow(req.Samples, samples)
	req.Labels = grow(req.Labels, labels)
	st.keys = st.keys[:0]
	st.lens = grow(st.lens[:0], samples)
}

// countOTLP returns about how many samples and labels the translation of
// md appends: a sample per gauge or sum point, per bucket, sum and count
// of a histogram point, per quantile, sum and count of a summary point,
// plus one target_info per resource; each with its attributes and extra
// labels more (name, job, instance, le or quantile, promoted).
// Presizing from it allocates the request once: TestOTLPMemory.
func countOTLP(md pmetric.Metrics, extra int) (samples, labels int) {
	add := func(n, attrs int) {
		samples += n
		labels += n * (attrs + extra)
	}
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		add(1, rm.Resource().Attributes().Len())
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dps := m.Gauge().DataPoints()
					for p := range dps.Len() {
						add(1, dps.At(p).Attributes().Len())
					}
				case pmetric.MetricTypeSum:
					dps := m.Sum().DataPoints()
					for p := range dps.Len() {
						add(1, dps.At(p).Attributes().Len())
					}
				case pmetric.MetricTypeHistogram:
					dps := m.Histogram().DataPoints()
					for p := range dps.Len() {
						dp := dps.At(p)
						add(dp.ExplicitBounds().Len()+3, dp.Attributes().Len())
					}
				case pmetric.MetricTypeSummary:
					dps := m.Summary().DataPoints()
					for p := range dps.Len() {
						dp := dps.At(p)
						add(dp.QuantileValues().Len()+2, dp.Attributes().Len())
					}
				}
			}
		}
	}
	return samples, labels
}

// Append implements storage.AppenderV2. Histograms cannot come: the
// handler takes exponential histograms out before translating, and
// classic ones are translated to float series (ConvertHistogramsToNHCB
// is off).
func (a *otlpAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	if h != nil || fh != nil {
		panic("BUG: a native histogram from the OTLP translator")
	}
	a.exemplars += len(opts.Exemplars)
	req := &a.st.push.req
	k0, n := len(a.st.keys), 0
	ls.Range(func(l labels.Label) {
		if l.Value == "" {
			return
		}
		name, value := bytesOf(l.Name), bytesOf(l.Value)
		req.Labels = push(req.Labels, remotewrite.Label{Name: name, Value: value})
		if need := len(a.st.keys) + len(name) + len(value) + 2; need > cap(a.st.keys) {
			a.st.keys = grow(a.st.keys, max(2*cap(a.st.keys), need, 4096))
		}
		a.st.keys = write.AppendLabel(a.st.keys, name, value)
		n++
	})
	req.Samples = push(req.Samples, remotewrite.Sample{T: t, V: v})
	req.Series = push(req.Series, remotewrite.Series{KeyLabels: int32(n)})
	a.st.lens = push(a.st.lens, len(a.st.keys)-k0)
	return 0, nil
}

// push appends e to s, doubling s when it is full: append grows large
// slices by 1.25x, which allocated 5 times the final size on the way
// (TestOTLPMemory: 195 bytes per body byte before, for points without
// attributes).
func push[E any](s []E, e E) []E {
	if len(s) == cap(s) {
		s = grow(s, max(2*cap(s), 256))
	}
	return append(s, e)
}

// link points the series into the flat slices, now that they no longer
// grow.
func (a *otlpAppender) link() {
	req := &a.st.push.req
	nl, nk := 0, 0
	for i := range req.Series {
		s := &req.Series[i]
		l, k := int(s.KeyLabels), a.st.lens[i]
		s.Labels = req.Labels[nl : nl+l : nl+l]
		s.Samples = req.Samples[i : i+1 : i+1]
		s.Key = a.st.keys[nk : nk+k : nk+k]
		nl, nk = nl+l, nk+k
	}
}

func (a *otlpAppender) Commit() error   { return nil }
func (a *otlpAppender) Rollback() error { return nil }

// bytesOf is s's bytes, without a copy: the caller must not modify them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// otlpError answers code with a google.rpc.Status holding msg, in the
// request's content type, as OTLP/HTTP asks.
func otlpError(w http.ResponseWriter, ct string, code int, msg string) {
	grpcCode := 2 // UNKNOWN
	switch code {
	case http.StatusBadRequest:
		grpcCode = 3 // INVALID_ARGUMENT
	case http.StatusUnauthorized:
		grpcCode = 16 // UNAUTHENTICATED
	case http.StatusUnsupportedMediaType:
		grpcCode = 3
	case http.StatusTooManyRequests:
		grpcCode = 8 // RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable:
		grpcCode = 14 // UNAVAILABLE
	case http.StatusInternalServerError:
		grpcCode = 13 // INTERNAL
	}
	var out []byte
	if ct == otlpJSON {
		out, _ = json.Marshal(struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}{grpcCode, msg})
	} else {
		out = protowire.AppendTag(out, 1, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(grpcCode))
		out = protowire.AppendTag(out, 2, protowire.BytesType)
		out = protowire.AppendString(out, msg)
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(out)
}
