package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// OTLPOptions configure the OTLP/HTTP metrics handler node-wide. How a
// tenant's OTLP names and resources become Prometheus series (Prometheus
// 3's otlp: settings) is per tenant, in its limits (limits.Limits'
// OTel* fields), read per request.
type OTLPOptions struct {
	// DisableTargetInfo: no target_info series for the resources.
	DisableTargetInfo bool
}

// OTLPHandler serves OTLP/HTTP metrics (POST /otlp/v1/metrics): it decodes
// an ExportMetricsServiceRequest, translates it to Prometheus series with
// Prometheus's own translator (storage/remote/otlptranslator) and writes
// them through its WriteHandler's path: the same tenant, validation,
// limits, in-flight bounds, metrics and Writer as remote write.
type OTLPHandler struct {
	wh     *WriteHandler
	opts   OTLPOptions // immutable
	states sync.Pool   // *otlpState
	// maxBytes: the longest body, compressed or not, and the most bytes
	// a gzip body decompresses to.
	maxCompressed, maxDecompressed int
	// pdataOnly: never the fast path (tests compare the two).
	pdataOnly bool
}

// otlpMemPerByte: an OTLP request allocates at most this many bytes per
// byte of its decompressed body: the body, the decoded pmetric request
// (pdata copies every string), the translator's label sets and the
// batch. Measured by TestOTLPMemory: 8.4 for node_exporter-like gauges,
// 12 for points of 28 one-byte attributes, 68 for gauge points without
// attributes (11 bytes each on the wire, ~750 in memory: pdata's point,
// the series, its three labels and batch entry), 72 with -race; the
// most, 80 (84 with -race), for exponential histogram points without
// buckets or attributes (a pdata point and the translator's native
// histogram more; 96 before the histograms' slices were presized). The
// handler reserves otlpMemPerByte/pushMemPerByte times the decompressed
// size in the node's in-flight bytes, so that the bound the in-flight
// limit keeps for remote write (pushMemPerByte per reserved byte) holds
// for OTLP too.
const otlpMemPerByte = 96

// otlpState is the memory one OTLP request works in, pooled.
type otlpState struct {
	push pushState // the series handed to WriteHandler.write
	raw  []byte    // the decompressed body (gzip)
	keys []byte    // Series.Key of all series
	// lens: labels and key bytes of each series, until link.
	lens []int
	// fast: the fast path's scratch and caches (otlp_fast.go).
	fast otlpFast
}

// NewOTLPHandler returns the OTLP handler of wh.
func NewOTLPHandler(wh *WriteHandler, opts OTLPOptions) (*OTLPHandler, error) {
	d := wh.opts.Decoder
	h := &OTLPHandler{wh: wh, opts: opts,
		maxCompressed:   orDefault(d.MaxCompressedBytes, remotewrite.DefaultMaxCompressedBytes),
		maxDecompressed: orDefault(d.MaxDecompressedBytes, remotewrite.DefaultMaxDecompressedBytes),
	}
	// A request at the limits must fit in the in-flight bytes alone, or
	// it would be refused forever: at the defaults (160 MiB) 18.75 MiB.
	if lim := wh.opts.MaxInflightBytes; lim > 0 {
		h.maxDecompressed = min(h.maxDecompressed, (lim-h.maxCompressed)*pushMemPerByte/otlpMemPerByte)
	}
	h.states.New = func() any { return new(otlpState) }
	return h, nil
}

// settings are the translator's settings for a tenant of limits l:
// Prometheus 3's defaults (config.DefaultOTLPConfig: label underscore
// sanitization and preserved underscores on) with the tenant's OTel
// settings. Built per request (a map of the promoted attributes): the
// limits may change with every runtime config reload.
func (h *OTLPHandler) settings(l *limits.Limits) prometheusremotewrite.Settings {
	strategy := l.OTelStrategy(h.wh.opts.LegacyNames)
	cfg := config.DefaultOTLPConfig
	cfg.PromoteResourceAttributes = l.PromoteOTelResourceAttributes
	return prometheusremotewrite.Settings{
		AddMetricSuffixes:                    strategy.ShouldAddSuffixes(),
		AllowUTF8:                            !strategy.ShouldEscape(),
		PromoteResourceAttributes:            prometheusremotewrite.NewPromoteResourceAttributes(cfg),
		KeepIdentifyingResourceAttributes:    l.OTelKeepIdentifyingResourceAttributes,
		PromoteScopeMetadata:                 l.OTelPromoteScopeMetadata,
		ConvertHistogramsToNHCB:              l.OTelConvertHistogramsToNHCB,
		AllowDeltaTemporality:                l.OTelNativeDeltaIngestion,
		DisableTargetInfo:                    h.opts.DisableTargetInfo,
		LabelNameUnderscoreSanitization:      cfg.LabelNameUnderscoreSanitization,
		LabelNamePreserveMultipleUnderscores: cfg.LabelNamePreserveMultipleUnderscores,
	}
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
		h.wh.opts.Tenants.Add(tenant, res.samples+res.histograms)
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
	lim := h.wh.opts.Limits.For(tenantID)
	var tr otlpTranslation
	if err == nil {
		// The decoded request and its translation, on top of the body:
		// the bound is pdata's (otlpMemPerByte), whichever path runs.
		if err = t.reserve(size * (otlpMemPerByte - pushMemPerByte) / pushMemPerByte); err == nil {
			tr, err = h.translate(r.Context(), lim, st, body, ct)
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
	res, msg, err := h.write(r.Context(), tenantID, st, tr)
	if errors.Is(err, limits.ErrIngestionRate) {
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
	if res.samples+res.histograms == 0 && res.rejectedPoints > 0 {
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
	clear(ps.built[:cap(ps.built)])           // the translator's histograms
	ps.built = ps.built[:0]
	clear(ps.hists) // the valid ones, as WriteHandler's states drop them
	ps.hists = ps.hists[:0]
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
	// the delta points, plus every sample and native histogram the write
	// path refused (a classic histogram or summary point refused whole
	// counts once per sample).
	rejectedPoints int
}

// otlpTranslation is what translating a request into st.push refused
// before the write path saw it.
type otlpTranslation struct {
	// delta and lowScale: the points taken out of the request (takeRefused).
	delta, lowScale refused
	// noTargetInfo: why the request's target_info was not written
	// (targetInfoBound), or "".
	noTargetInfo string
	// err: what Prometheus's translator answered (the pdata path only: the
	// fast path hands every request it would answer to the pdata path).
	err error
}

// translate lays the request body (of content type ct) out in st.push:
// with otlpFast when it can (protobuf bodies of the shapes it knows),
// else with pdata and Prometheus's translator. Both give the same
// series, samples and refusals (TestOTLPFastEquivalence, FuzzOTLPFast).
// The error is the body's decoding error (400).
func (h *OTLPHandler) translate(ctx context.Context, lim *limits.Limits, st *otlpState, body []byte, ct string) (otlpTranslation, error) {
	settings := h.settings(lim)
	if ct == otlpProto && !h.pdataOnly {
		if tr, ok := st.fast.translate(st, body, settings, lim); ok {
			return tr, nil
		}
	}
	md, err := decodeOTLP(body, ct)
	if err != nil {
		return otlpTranslation{}, err
	}
	return translatePdata(ctx, st, md, settings, lim), nil
}

// translatePdata is the reference path: Prometheus's translator on
// pdata's decoded request, into an otlpAppender.
func translatePdata(ctx context.Context, st *otlpState, md pmetric.Metrics, settings prometheusremotewrite.Settings, lim *limits.Limits) otlpTranslation {
	// Refused before translation: the converter refuses delta
	// temporality with a terse error per metric and no count, and stops
	// at an exponential histogram point of a scale below -4 with the
	// metric's later points silently dropped; they are taken out,
	// counted and explained.
	var tr otlpTranslation
	tr.delta, tr.lowScale = takeRefused(md, lim.OTelNativeDeltaIngestion)
	if !settings.DisableTargetInfo {
		if tr.noTargetInfo = targetInfoBound(md); tr.noTargetInfo != "" {
			settings.DisableTargetInfo = true
		}
	}
	app := &otlpAppender{st: st}
	app.reset(countOTLP(md, len(lim.PromoteOTelResourceAttributes)+3, settings.ConvertHistogramsToNHCB))
	conv := prometheusremotewrite.NewPrometheusConverter(app)
	_, tr.err = conv.FromMetrics(ctx, md, settings)
	app.link()
	return tr
}

// write writes the series translate laid out in st.push with the write
// handler's write; msg is the partial_success error message.
func (h *OTLPHandler) write(ctx context.Context, tenantID string, st *otlpState, tr otlpTranslation) (*otlpResult, string, error) {
	if ctx.Err() != nil {
		return nil, "", ctx.Err()
	}
	res := &otlpResult{}
	var msgs []string
	delta, lowScale := &tr.delta, &tr.lowScale
	if delta.points > 0 {
		msgs = append(msgs, fmt.Sprintf("delta temporality is not supported: %d data points of delta sums and histograms (%s) were not written; "+
			"Myelin stores cumulative series and does not convert deltas (the running sum would live on the node that receives the write); "+
			"convert them to cumulative before sending (the OpenTelemetry Collector's deltatocumulative processor), "+
			"or store the raw deltas with otel_native_delta_ingestion", delta.points, delta.names()))
	}
	if lowScale.points > 0 {
		msgs = append(msgs, fmt.Sprintf("exponential histograms of a scale below %d cannot be native histograms: %d data points (%s) were not written; "+
			"allow more buckets (the SDK's or Collector's max_size) so that the scale stays at %[1]d or above",
			histogram.ExponentialSchemaMin, lowScale.points, lowScale.names()))
	}
	if tr.noTargetInfo != "" {
		msgs = append(msgs, "target_info was not written for this request (its data points were): "+tr.noTargetInfo)
	}
	res.rejectedPoints = delta.points + lowScale.points
	if tr.err != nil {
		msgs = append(msgs, "translate: "+tr.err.Error())
	}
	wres, err := h.wh.write(ctx, tenantID, &st.push)
	if wres != nil {
		res.writeResult = *wres
	}
	if err != nil {
		return res, "", err
	}
	res.rejectedPoints += res.badSamples + res.badHistograms
	if res.badSeries > 0 && res.firstErr != nil {
		msgs = append(msgs, fmt.Sprintf("%v; %d series (%d samples, %d histograms) refused in total", res.firstErr, res.badSeries, res.badSamples, res.badHistograms))
	}
	if len(msgs) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d series (%d samples, %d histograms) were written", res.series, res.samples, res.histograms))
	}
	return res, strings.Join(msgs, "; "), nil
}

// maxRefusedNames: the metrics a refusal names; more are counted.
const maxRefusedNames = 5

// refused counts the data points of one reason taken out of a request,
// and names their metrics (OTel names) in request order, each once.
type refused struct {
	points int
	list   []string
	seen   map[string]bool
}

func (r *refused) add(name string, points int) {
	r.points += points
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if !r.seen[name] {
		r.seen[name] = true
		r.list = append(r.list, name)
	}
}

// names lists the first maxRefusedNames metrics quoted, then how many
// more.
func (r *refused) names() string {
	var b strings.Builder
	for i, name := range r.list[:min(len(r.list), maxRefusedNames)] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", name)
	}
	if len(r.list) > maxRefusedNames {
		fmt.Fprintf(&b, " and %d more", len(r.list)-maxRefusedNames)
	}
	return b.String()
}

// takeRefused removes from md what the translator would refuse without
// a count: the sums and histograms (explicit and exponential) of delta
// temporality unless allowDelta, and the exponential histogram points
// of a scale below Prometheus's lowest schema (-4).
func takeRefused(md pmetric.Metrics, allowDelta bool) (delta, lowScale refused) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			sms.At(j).Metrics().RemoveIf(func(m pmetric.Metric) bool {
				var n int
				var temporality pmetric.AggregationTemporality
				switch m.Type() {
				case pmetric.MetricTypeSum:
					n, temporality = m.Sum().DataPoints().Len(), m.Sum().AggregationTemporality()
				case pmetric.MetricTypeHistogram:
					n, temporality = m.Histogram().DataPoints().Len(), m.Histogram().AggregationTemporality()
				case pmetric.MetricTypeExponentialHistogram:
					n, temporality = m.ExponentialHistogram().DataPoints().Len(), m.ExponentialHistogram().AggregationTemporality()
				default:
					return false
				}
				if temporality == pmetric.AggregationTemporalityDelta && !allowDelta {
					delta.add(m.Name(), n)
					return true
				}
				if m.Type() != pmetric.MetricTypeExponentialHistogram {
					return false
				}
				dps := m.ExponentialHistogram().DataPoints()
				low := 0
				dps.RemoveIf(func(dp pmetric.ExponentialHistogramDataPoint) bool {
					if dp.Scale() < histogram.ExponentialSchemaMin {
						low++
						return true
					}
					return false
				})
				if low > 0 {
					lowScale.add(m.Name(), low)
				}
				return low > 0 && dps.Len() == 0
			})
		}
	}
	return delta, lowScale
}

// Bounds on target_info. Prometheus's translator writes a resource's
// target_info every 2.5 minutes from its first data point in the request
// to its last: two points a year apart in a 140-byte request made 210,000
// samples (250 MB), ten years 2.5 GB, none of it counted against the
// node's in-flight bytes. An exporter's request spans seconds to
// minutes; a backfill of a day through OTLP still fits.
const (
	// otlpMaxTargetInfoPerResource: a day's span (24h / 2.5m + 1).
	otlpMaxTargetInfoPerResource = 577
	// otlpMaxTargetInfoPerRequest: ~4 MB of samples at most.
	otlpMaxTargetInfoPerRequest = 100_000
)

// targetInfoSamples is how many target_info samples the translator writes
// for a resource whose data points span [minT, maxT] (ns): one every
// targetInfoStepNanos from minT while before maxT, and one at maxT.
func targetInfoSamples(minT, maxT uint64) uint64 {
	if minT > maxT {
		return 0
	}
	return (maxT-minT+targetInfoStepNanos-1)/targetInfoStepNanos + 1
}

// targetInfoBound says why the request's target_info would pass the
// bounds (a resource's span, or the request's sum), or "": the spans of
// the resources' data points as the translator takes them
// (findMinAndMaxTimestamps: every point of every remaining metric).
func targetInfoBound(md pmetric.Metrics) string {
	var total uint64
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		minT, maxT := uint64(math.MaxUint64), uint64(0)
		note := func(ts pcommon.Timestamp) {
			minT, maxT = min(minT, uint64(ts)), max(maxT, uint64(ts))
		}
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				switch m := ms.At(k); m.Type() {
				case pmetric.MetricTypeGauge:
					for p := range m.Gauge().DataPoints().Len() {
						note(m.Gauge().DataPoints().At(p).Timestamp())
					}
				case pmetric.MetricTypeSum:
					for p := range m.Sum().DataPoints().Len() {
						note(m.Sum().DataPoints().At(p).Timestamp())
					}
				case pmetric.MetricTypeHistogram:
					for p := range m.Histogram().DataPoints().Len() {
						note(m.Histogram().DataPoints().At(p).Timestamp())
					}
				case pmetric.MetricTypeExponentialHistogram:
					for p := range m.ExponentialHistogram().DataPoints().Len() {
						note(m.ExponentialHistogram().DataPoints().At(p).Timestamp())
					}
				case pmetric.MetricTypeSummary:
					for p := range m.Summary().DataPoints().Len() {
						note(m.Summary().DataPoints().At(p).Timestamp())
					}
				}
			}
		}
		n := targetInfoSamples(minT, maxT)
		if n > otlpMaxTargetInfoPerResource {
			return fmt.Sprintf("resource %d's data points span %v, which would make %d target_info samples (one every 2.5 minutes across the span, as Prometheus writes them; at most %d per resource); "+
				"send a resource's points closer in time, or turn target_info off (-distributor.otel-target-info-enabled=false)",
				i, time.Duration(maxT-minT), n, otlpMaxTargetInfoPerResource)
		}
		if total += n; total > otlpMaxTargetInfoPerRequest {
			return fmt.Sprintf("its resources' data points would make more than %d target_info samples (one every 2.5 minutes across each resource's span); "+
				"send smaller requests, or turn target_info off (-distributor.otel-target-info-enabled=false)", otlpMaxTargetInfoPerRequest)
		}
	}
	return ""
}

// otlpAppender is the storage.AppenderV2 the translator appends to: it
// lays the samples out as a remotewrite.Request of one series per
// sample or native histogram, in append order, for WriteHandler.write.
// Labels alias the translator's label strings (immutable), kept alive by
// the Request; histograms are the translator's (each its own).
type otlpAppender struct {
	st *otlpState
}

var _ storage.AppenderV2 = (*otlpAppender)(nil)

// reset empties the appender's request and sizes it for about samples
// series (one sample or histogram each) of labels labels in all, hists of
// them native histograms.
func (a *otlpAppender) reset(samples, hists, labels int) {
	st := a.st
	req := &st.push.req
	req.Reset()
	req.Series = grow(req.Series, samples)
	req.Samples = grow(req.Samples, samples-hists)
	req.Labels = grow(req.Labels, labels)
	req.Histograms = grow(req.Histograms, hists)
	st.push.built = grow(st.push.built[:0], hists)
	st.push.builtEx = st.push.builtEx[:0]
	st.keys = st.keys[:0]
	st.lens = grow(st.lens[:0], samples)
}

// countOTLP returns about how many samples and labels the translation of
// md appends: a sample per gauge or sum point, per bucket, sum and count
// of a histogram point, per quantile, sum and count of a summary point,
// plus one target_info per resource, and one per native histogram point
// (exponential, or explicit with nhcb); each with its attributes and
// extra labels more (name, job, instance, le or quantile, promoted).
// Presizing from it allocates the request once: TestOTLPMemory.
func countOTLP(md pmetric.Metrics, extra int, nhcb bool) (samples, hists, labels int) {
	add := func(n, attrs int) {
		samples += n
		labels += n * (attrs + extra)
	}
	addHist := func(attrs int) {
		add(1, attrs)
		hists++
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
						if nhcb {
							addHist(dp.Attributes().Len())
						} else {
							add(dp.ExplicitBounds().Len()+3, dp.Attributes().Len())
						}
					}
				case pmetric.MetricTypeExponentialHistogram:
					dps := m.ExponentialHistogram().DataPoints()
					for p := range dps.Len() {
						addHist(dps.At(p).Attributes().Len())
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
	return samples, hists, labels
}

// Append implements storage.AppenderV2: a float sample, or a native
// histogram (the translator's integer histograms: exponential ones, and
// explicit ones with nhcb), each as a series of its own. The start
// timestamp is not stored: the fast path (otlp_fast.go) would have to
// give the same ones (docs/design.md "Start timestamps"; "OTLP metrics
// ingest": otel_created_timestamp_zero_ingestion_enabled).
func (a *otlpAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	ps := &a.st.push
	req := &ps.req
	// The point's exemplars (the translator's, from the OTLP point's
	// exemplars: trace_id and span_id as labels), checked and kept by
	// the write path as remote write's are.
	for _, ex := range opts.Exemplars {
		b := builtExemplar{T: t, V: ex.Value, Labels: make([]remotewrite.Label, 0, ex.Labels.Len())}
		if ex.HasTs {
			b.T = ex.Ts
		}
		ex.Labels.Range(func(l labels.Label) {
			b.Labels = append(b.Labels, remotewrite.Label{Name: bytesOf(l.Name), Value: bytesOf(l.Value)})
		})
		req.Exemplars = push(req.Exemplars, remotewrite.Span{Series: len(req.Series)})
		ps.builtEx = push(ps.builtEx, b)
	}
	k0, n := len(a.st.keys), 0
	ls.Range(func(l labels.Label) {
		if l.Value == "" {
			return
		}
		a.appendLabel(bytesOf(l.Name), bytesOf(l.Value))
		n++
	})
	a.endSeries(n, len(opts.Exemplars), t, v, h, fh)
	a.st.lens = push(a.st.lens, len(a.st.keys)-k0)
	return 0, nil
}

// appendLabel appends a label of the series being appended: name and
// value must stay valid and unmodified until the request is written.
func (a *otlpAppender) appendLabel(name, value []byte) {
	req := &a.st.push.req
	req.Labels = push(req.Labels, remotewrite.Label{Name: name, Value: value})
	if need := len(a.st.keys) + len(name) + len(value) + 2; need > cap(a.st.keys) {
		a.st.keys = grow(a.st.keys, max(2*cap(a.st.keys), need, 4096))
	}
	a.st.keys = write.AppendLabel(a.st.keys, name, value)
}

// endSeries ends the series whose n labels were appended, with nEx
// exemplars appended before them: a float sample, or h or fh if either
// is not nil. The caller notes the length of its key in st.lens.
func (a *otlpAppender) endSeries(n, nEx int, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) {
	ps := &a.st.push
	req := &ps.req
	s := remotewrite.Series{KeyLabels: int32(n), Exemplars: int32(nEx)}
	switch {
	case h != nil || fh != nil:
		// The write path takes it from built, in the place of the bytes
		// a remote-write histogram has (pushState.histogram).
		s.Histograms = 1
		req.Histograms = push(req.Histograms, remotewrite.Span{Series: len(req.Series)})
		ps.built = push(ps.built, write.Histogram{T: t, H: h, FH: fh})
	default:
		req.Samples = push(req.Samples, remotewrite.Sample{T: t, V: v})
	}
	req.Series = push(req.Series, s)
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
	nl, nk, ns := 0, 0, 0
	for i := range req.Series {
		s := &req.Series[i]
		l, k := int(s.KeyLabels), a.st.lens[i]
		s.Labels = req.Labels[nl : nl+l : nl+l]
		if s.Histograms == 0 {
			s.Samples = req.Samples[ns : ns+1 : ns+1]
			ns++
		}
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
