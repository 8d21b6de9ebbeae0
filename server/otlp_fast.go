package server

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/write"
)

// errOTLPSlow: the fast path cannot answer this request as the pdata path
// would (a shape it does not handle, or bytes pdata may refuse); the
// request goes to the pdata path, which answers it, errors included.
var errOTLPSlow = errors.New("otlp: not for the fast path")

// otlpFast translates the protobuf bytes of an ExportMetricsServiceRequest
// straight into an otlpState's request, the way pdata's decoder and
// Prometheus's translator (translatePdata) do, without either: labels
// alias the body, resource and scope labels are made once per resource
// and scope, metric names once per metric name (cached across requests),
// attribute names sanitized once per distinct name, and a point
// allocates nothing (histograms take their spans and deltas from
// arenas). Naming is otlptranslator's own (MetricNamer, LabelNamer).
//
// It takes gauges, sums, explicit histograms (classic or NHCB),
// exponential histograms and summaries whose attributes are strings,
// integers, doubles or booleans, with exemplars, promoted resource attributes,
// scope metadata, target_info, deltas (refused or kept) and exponential
// histograms of a low scale (refused), exactly as the pdata path does.
// Anything else makes it give up (errOTLPSlow) and the pdata path
// translate the whole request: other attribute types, exemplars without
// a value or with clashing label names, metric metadata, unknown or
// repeated fields, bodies that do not decode, label names that collide
// once sanitized or that the namer refuses, metrics without points or
// of an unknown temporality, timestamps past 2^63 ns. So the refusals
// and their texts are always the pdata path's, and equivalence is only
// needed where the fast path finishes (TestOTLPFastEquivalence,
// FuzzOTLPFast; docs/design.md, "The fast path").
//
// INVARIANT: when translate answers true, st.push holds exactly what
// translatePdata would have put there for the same body and settings
// (series, labels, keys, samples bit for bit, histograms, exemplars),
// and its otlpTranslation counts the same refused points of the same
// metrics.
//
// One otlpFast lives in each pooled otlpState; it is used by one request
// at a time.
type otlpFast struct {
	app         otlpAppender
	set         prometheusremotewrite.Settings
	labelNamer  otlptranslator.LabelNamer
	metricNamer otlptranslator.MetricNamer
	nameMode    byte // the namers' settings, first byte of the cache keys
	promote     []string
	allowDelta  bool
	tr          otlpTranslation

	// Arenas: bytes, histograms, spans and deltas the request's series
	// point into; a full one is replaced, never grown, so what was handed
	// out stays put. Dropped after each request.
	text   []byte
	hists  []histogram.Histogram
	spans  []histogram.Span
	deltas []int64
	// targets: the target_info samples appended (labels hash and time),
	// as the translator deduplicates them across resources.
	targets map[otlpTargetKey]struct{}
	// targetCount: target_info samples the request's resources make so
	// far, bounded by otlpMaxTargetInfo*.
	targetCount uint64

	// The resource being translated: its attributes, job and instance
	// labels, promoted labels (sorted, no empty value), and the time
	// span of its points (for target_info).
	res           []otlpAttr
	job, instance []byte
	promoted      []remotewrite.Label
	minT, maxT    uint64
	// over: the labels set over a point's attributes, in order (job,
	// instance, then the scope's); an empty value deletes. nResOver of
	// them are the resource's.
	over     []remotewrite.Label
	nResOver int

	// The names of a classic histogram's or summary's series.
	nameSum, nameCount, nameBucket []byte
	floats                         []float64           // arena: NHCB's custom values
	exLabels                       []remotewrite.Label // arena: exemplars' labels

	// body: the request; sized: its slices were sized for it (presize).
	body  []byte
	sized bool

	// Scratch of one point.
	attrs          []otlpAttr
	ls             []remotewrite.Label
	counts, ncount []uint64
	bounds         []float64
	quantiles      [][2]float64
	exs            []otlpExemplar
	exAttrs        []otlpAttr
	built          []builtExemplar
	base           []remotewrite.Label
	key            []byte

	// Caches across requests (bounded by otlpCacheEntries): label names
	// and metric names, keyed by nameMode and the OTel names.
	labelNames, metricNames map[string]string
}

// otlpCacheEntries bounds each name cache; a full one is cleared.
const otlpCacheEntries = 1 << 14

type otlpAttr struct{ key, value []byte }

type otlpTargetKey struct {
	hash uint64
	t    int64
}

var (
	trueBytes  = []byte("true")
	falseBytes = []byte("false")
)

// translate lays body out in st.push as translatePdata would, or answers
// false (and st.push holds garbage the pdata path resets).
func (f *otlpFast) translate(st *otlpState, body []byte, set prometheusremotewrite.Settings, lim *limits.Limits) (otlpTranslation, bool) {
	f.app = otlpAppender{st: st}
	f.set = set
	f.labelNamer = otlptranslator.LabelNamer{
		UTF8Allowed: set.AllowUTF8,
		//lint:ignore SA1019 the translator sets it from the same setting; names must agree
		UnderscoreLabelSanitization: set.LabelNameUnderscoreSanitization,
		PreserveMultipleUnderscores: set.LabelNamePreserveMultipleUnderscores,
	}
	f.metricNamer = otlptranslator.MetricNamer{Namespace: set.Namespace, WithMetricSuffixes: set.AddMetricSuffixes, UTF8Allowed: set.AllowUTF8}
	f.nameMode = flagBits(set.AllowUTF8, set.LabelNameUnderscoreSanitization, set.LabelNamePreserveMultipleUnderscores, set.AddMetricSuffixes)
	f.promote = lim.PromoteOTelResourceAttributes
	f.allowDelta = lim.OTelNativeDeltaIngestion
	f.tr = otlpTranslation{}
	if set.Namespace != "" || len(set.ExternalLabels) > 0 || set.EnableTypeAndUnitLabels || set.LookbackDelta != 0 {
		return otlpTranslation{}, false // settings we never set; the translator has them
	}
	clear(f.targets)
	f.targetCount = 0
	f.app.reset(0, 0, 0)
	f.body, f.sized = body, false
	err := f.request(body)
	f.body = nil
	tr := f.tr
	f.tr = otlpTranslation{}
	f.text, f.hists, f.spans, f.deltas, f.floats, f.exLabels = nil, nil, nil, nil, nil, nil
	// Scratch of an outsized point is not kept in the pool.
	if cap(f.counts)+cap(f.ncount)+cap(f.bounds)+cap(f.attrs)+cap(f.exAttrs)+cap(f.ls)+cap(f.base) > 1<<14 {
		f.counts, f.ncount, f.bounds, f.attrs, f.exAttrs, f.ls, f.base = nil, nil, nil, nil, nil, nil, nil
	}
	if err != nil {
		return otlpTranslation{}, false
	}
	f.keys()
	f.app.link()
	return tr, true
}

func flagBits(bs ...bool) byte {
	var b byte
	for i, v := range bs {
		if v {
			b |= 1 << i
		}
	}
	return b
}

func (f *otlpFast) request(b []byte) error {
	for len(b) > 0 {
		num, typ, _, m, rest, err := pbField(b)
		if err != nil {
			return err
		}
		if num != fResourceMetrics || typ != protowire.BytesType {
			return errOTLPSlow
		}
		if err := f.resourceMetrics(m); err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// resourceMetrics translates one ResourceMetrics: its resource first
// (wherever it is on the wire), then its scopes, then its target_info.
func (f *otlpFast) resourceMetrics(b []byte) error {
	var resource []byte
	seen := false
	for rest := b; len(rest) > 0; {
		num, typ, _, m, r, err := pbField(rest)
		if err != nil {
			return err
		}
		rest = r
		switch {
		case num == fRMResource && typ == protowire.BytesType && !seen:
			resource, seen = m, true
		case num == fRMScopeMetrics && typ == protowire.BytesType:
		case num == fRMSchemaURL && typ == protowire.BytesType:
		default:
			return errOTLPSlow
		}
	}
	if err := f.resource(resource); err != nil {
		return err
	}
	f.minT, f.maxT = math.MaxUint64, 0
	for rest := b; len(rest) > 0; {
		num, _, _, m, r, _ := pbField(rest) // read above
		rest = r
		if num == fRMScopeMetrics {
			if err := f.scopeMetrics(m); err != nil {
				return err
			}
		}
	}
	return f.targetInfo()
}

// resource reads a Resource's attributes and makes the labels every
// point of it has: job, instance, promoted attributes.
func (f *otlpFast) resource(b []byte) error {
	f.res = f.res[:0]
	for len(b) > 0 {
		num, typ, _, m, rest, err := pbField(b)
		if err != nil {
			return err
		}
		b = rest
		switch {
		case num == fResAttributes && typ == protowire.BytesType:
			a, err := f.keyValue(m)
			if err != nil {
				return err
			}
			f.res = append(f.res, a)
		case num == fResDropped && typ == protowire.VarintType:
		default:
			return errOTLPSlow
		}
	}
	if dupKeys(f.res) {
		return errOTLPSlow
	}
	// Prometheus's setResourceContext: job is service.namespace/service.name
	// (the namespace only with a name), instance service.instance.id.
	f.job, f.instance = nil, nil
	if name, ok := findAttr(f.res, "service.name"); ok {
		f.job = name
		if ns, ok := findAttr(f.res, "service.namespace"); ok {
			f.job = f.concat(ns, "/", name)
		}
	}
	if inst, ok := findAttr(f.res, "service.instance.id"); ok {
		f.instance = inst
	}
	f.promoted = f.promoted[:0]
	for _, a := range f.res {
		if !contains(f.promote, a.key) {
			continue
		}
		name, err := f.labelName(a.key)
		if err != nil {
			return err
		}
		f.promoted = append(f.promoted, remotewrite.Label{Name: name, Value: a.value})
	}
	var err error
	if f.promoted, err = sortedLabels(f.promoted); err != nil {
		return err
	}
	f.over = f.over[:0]
	if len(f.job) > 0 {
		f.over = append(f.over, remotewrite.Label{Name: bytesOf("job"), Value: f.job})
	}
	if len(f.instance) > 0 {
		f.over = append(f.over, remotewrite.Label{Name: bytesOf("instance"), Value: f.instance})
	}
	f.nResOver = len(f.over)
	return nil
}

// sortedLabels sorts ls by name and drops those of an empty value;
// two of one name (attributes that collide once sanitized) are
// errOTLPSlow: the translator joins or overwrites them.
func sortedLabels(ls []remotewrite.Label) ([]remotewrite.Label, error) {
	sortLabelSet(ls)
	out := ls[:0]
	for i, l := range ls {
		if i > 0 && string(l.Name) == string(ls[i-1].Name) {
			return ls, errOTLPSlow
		}
		if len(l.Value) > 0 {
			out = append(out, l)
		}
	}
	return out, nil
}

// sortLabelSet sorts by name: an insertion sort, as label sets are
// small and usually sorted already (the SDKs sort attributes), but
// pdqsort past 32 labels, so that a point of many attributes in reverse
// order costs n log n.
func sortLabelSet(ls []remotewrite.Label) {
	if len(ls) > 32 {
		slices.SortFunc(ls, func(a, b remotewrite.Label) int { return bytes.Compare(a.Name, b.Name) })
		return
	}
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && string(ls[j].Name) < string(ls[j-1].Name); j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

func contains(list []string, b []byte) bool {
	for _, s := range list {
		if s == string(b) {
			return true
		}
	}
	return false
}

func findAttr(as []otlpAttr, key string) ([]byte, bool) {
	for _, a := range as {
		if string(a.key) == key {
			return a.value, true
		}
	}
	return nil, false
}

// dupKeys: two attributes of one key (pdata keeps both; the translator's
// answer then depends on their order).
func dupKeys(as []otlpAttr) bool {
	if len(as) > 32 {
		keys := make([][]byte, len(as))
		for i, a := range as {
			keys[i] = a.key
		}
		slices.SortFunc(keys, bytes.Compare)
		for i := 1; i < len(keys); i++ {
			if bytes.Equal(keys[i], keys[i-1]) {
				return true
			}
		}
		return false
	}
	for i := range as {
		for j := i + 1; j < len(as); j++ {
			if string(as[i].key) == string(as[j].key) {
				return true
			}
		}
	}
	return false
}

// keyValue reads a KeyValue: the key and the value as AsString renders
// it (strings, booleans, integers and doubles; other types are
// errOTLPSlow).
func (f *otlpFast) keyValue(b []byte) (otlpAttr, error) {
	var a otlpAttr
	seen := false
	for len(b) > 0 {
		num, typ, _, m, rest, err := pbField(b)
		if err != nil {
			return a, err
		}
		b = rest
		switch {
		case num == fKVKey && typ == protowire.BytesType:
			a.key = m
		case num == fKVValue && typ == protowire.BytesType && !seen:
			seen = true
			if a.value, err = f.anyValue(m); err != nil {
				return a, err
			}
		default:
			return a, errOTLPSlow
		}
	}
	return a, nil
}

func (f *otlpFast) anyValue(b []byte) ([]byte, error) {
	var out []byte
	for n := 0; len(b) > 0; n++ {
		num, typ, v, m, rest, err := pbField(b)
		if err != nil || n > 0 {
			return nil, errOTLPSlow
		}
		b = rest
		switch {
		case num == fAnyString && typ == protowire.BytesType:
			out = m
		case num == fAnyBool && typ == protowire.VarintType:
			out = falseBytes
			if v != 0 {
				out = trueBytes
			}
		case num == fAnyInt && typ == protowire.VarintType:
			out = f.alloc(20)
			out = strconv.AppendInt(out, int64(v), 10)
			f.text = f.text[:len(f.text)+len(out)]
			out = out[:len(out):len(out)]
		case num == fAnyDouble && typ == protowire.Fixed64Type:
			free := f.alloc(32)
			out = appendOTelFloat(free, math.Float64frombits(v))
			if len(out) <= cap(free) {
				f.text = f.text[:len(f.text)+len(out)]
			}
			out = out[:len(out):len(out)]
		default:
			return nil, errOTLPSlow
		}
	}
	return out, nil
}

// appendOTelFloat appends f as pcommon.Value.AsString renders a double:
// ES6's number to string (encoding/json's: 'f', or 'e' below 1e-6 and
// from 1e21, without a leading zero in the exponent), NaN, Infinity
// and -Infinity.
func appendOTelFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	n0 := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if n := len(dst); format == 'e' && n-n0 >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1]
		dst = dst[:n-1]
	}
	return dst
}

// alloc returns an empty slice of the text arena with room for n bytes;
// the caller extends f.text by what it wrote.
func (f *otlpFast) alloc(n int) []byte {
	if cap(f.text)-len(f.text) < n {
		f.text = make([]byte, 0, max(4096, n))
	}
	return f.text[len(f.text):len(f.text)]
}

// concat returns a+sep+b in the text arena.
func (f *otlpFast) concat(a []byte, sep string, b []byte) []byte {
	n := len(a) + len(sep) + len(b)
	out := append(append(append(f.alloc(n), a...), sep...), b...)
	f.text = f.text[:len(f.text)+n]
	return out[:n:n]
}

// labelName is otlptranslator's LabelNamer.Build of an attribute key,
// cached; a name the namer refuses is errOTLPSlow.
func (f *otlpFast) labelName(key []byte) ([]byte, error) {
	if plainLabelName(key, f.set.AllowUTF8) {
		return key, nil
	}
	f.key = append(append(f.key[:0], f.nameMode), key...)
	if name, ok := f.labelNames[string(f.key)]; ok {
		return bytesOf(name), nil
	}
	name, err := f.labelNamer.Build(string(key))
	if err != nil {
		return nil, errOTLPSlow
	}
	if f.labelNames == nil || len(f.labelNames) >= otlpCacheEntries {
		f.labelNames = make(map[string]string)
	}
	f.labelNames[string(f.key)] = name
	return bytesOf(name), nil
}

// plainLabelName: LabelNamer.Build returns key as it is. With UTF-8
// allowed, any key but "" and underscores only; else a letter, then
// letters, digits and single underscores (nothing to replace, collapse,
// or prefix with "key").
func plainLabelName(key []byte, utf8 bool) bool {
	if len(key) == 0 {
		return false
	}
	if utf8 {
		for _, c := range key {
			if c != '_' {
				return true
			}
		}
		return false
	}
	if c := key[0]; (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
		return false
	}
	for i, c := range key {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' && key[i-1] != '_':
		default:
			return false
		}
	}
	return true
}

// metricName is otlptranslator's MetricNamer.Build, cached.
func (f *otlpFast) metricName(name, unit []byte, typ otlptranslator.MetricType) ([]byte, error) {
	f.key = append(f.key[:0], f.nameMode, byte(typ))
	f.key = protowire.AppendVarint(f.key, uint64(len(name)))
	f.key = append(append(f.key, name...), unit...)
	if prom, ok := f.metricNames[string(f.key)]; ok {
		return bytesOf(prom), nil
	}
	prom, err := f.metricNamer.Build(otlptranslator.Metric{Name: string(name), Unit: string(unit), Type: typ})
	if err != nil || prom == "" {
		return nil, errOTLPSlow
	}
	if f.metricNames == nil || len(f.metricNames) >= otlpCacheEntries {
		f.metricNames = make(map[string]string)
	}
	f.metricNames[string(f.key)] = prom
	return bytesOf(prom), nil
}

// scopeMetrics translates one ScopeMetrics: its scope first, then its
// metrics.
func (f *otlpFast) scopeMetrics(b []byte) error {
	var scope, schemaURL []byte
	seen := false
	for rest := b; len(rest) > 0; {
		num, typ, _, m, r, err := pbField(rest)
		if err != nil {
			return err
		}
		rest = r
		switch {
		case num == fSMScope && typ == protowire.BytesType && !seen:
			scope, seen = m, true
		case num == fSMMetrics && typ == protowire.BytesType:
		case num == fSMSchemaURL && typ == protowire.BytesType:
			schemaURL = m
		default:
			return errOTLPSlow
		}
	}
	if err := f.scope(scope, schemaURL); err != nil {
		return err
	}
	for rest := b; len(rest) > 0; {
		num, _, _, m, r, _ := pbField(rest) // read above
		rest = r
		if num == fSMMetrics {
			if err := f.metric(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// scope reads an InstrumentationScope and, with PromoteScopeMetadata and
// a scope name, sets the otel_scope_ labels over the points'.
func (f *otlpFast) scope(b, schemaURL []byte) error {
	var name, version []byte
	attrs := f.attrs[:0]
	for len(b) > 0 {
		num, typ, _, m, rest, err := pbField(b)
		if err != nil {
			return err
		}
		b = rest
		switch {
		case num == fScopeName && typ == protowire.BytesType:
			name = m
		case num == fScopeVersion && typ == protowire.BytesType:
			version = m
		case num == fScopeAttributes && typ == protowire.BytesType:
			a, err := f.keyValue(m)
			if err != nil {
				return err
			}
			attrs = append(attrs, a)
		case num == fScopeDropped && typ == protowire.VarintType:
		default:
			return errOTLPSlow
		}
	}
	f.attrs = attrs
	if dupKeys(attrs) {
		return errOTLPSlow
	}
	f.over = f.over[:f.nResOver]
	if !f.set.PromoteScopeMetadata || len(name) == 0 {
		return nil
	}
	ls := f.ls[:0]
	for _, a := range attrs {
		key := f.concat(bytesOf("otel_scope_"), "", a.key)
		n, err := f.labelName(key)
		if err != nil {
			return err
		}
		ls = append(ls, remotewrite.Label{Name: n, Value: a.value})
	}
	ls, err := sortedLabels(ls)
	f.ls = ls
	if err != nil {
		return err
	}
	f.over = append(f.over, ls...)
	f.over = append(f.over,
		remotewrite.Label{Name: bytesOf("otel_scope_name"), Value: name},
		remotewrite.Label{Name: bytesOf("otel_scope_version"), Value: version},
		remotewrite.Label{Name: bytesOf("otel_scope_schema_url"), Value: schemaURL})
	return nil
}

// metric translates one Metric: gauges, sums and exponential histograms;
// deltas and exponential histogram points of a scale below -4 taken out
// and counted as takeRefused does.
func (f *otlpFast) metric(b []byte) error {
	var name, unit, data []byte
	var dataNum protowire.Number
	nData := 0
	for len(b) > 0 {
		num, typ, _, m, rest, err := pbField(b)
		if err != nil {
			return err
		}
		b = rest
		if typ != protowire.BytesType {
			return errOTLPSlow
		}
		switch num {
		case fMetricName:
			name = m
		case fMetricDescription:
		case fMetricUnit:
			unit = m
		case fMetricGauge, fMetricSum, fMetricHistogram, fMetricExpHist, fMetricSummary:
			data, dataNum = m, num
			nData++
		default: // metadata, unknown
			return errOTLPSlow
		}
	}
	if nData != 1 {
		return errOTLPSlow
	}
	temporality, monotonic := int32(0), false
	points := 0
	for rest := data; len(rest) > 0; {
		num, typ, v, _, r, err := pbField(rest)
		if err != nil {
			return err
		}
		rest = r
		switch {
		case num == fDataPoints && typ == protowire.BytesType:
			points++
		case num == fTemporality && typ == protowire.VarintType && dataNum != fMetricGauge && dataNum != fMetricSummary:
			temporality = int32(v)
		case num == fMonotonic && typ == protowire.VarintType && dataNum == fMetricSum:
			monotonic = v != 0
		default:
			return errOTLPSlow
		}
	}
	mtype := otlptranslator.MetricType(otlptranslator.MetricTypeGauge)
	switch {
	case dataNum == fMetricExpHist:
		mtype = otlptranslator.MetricTypeExponentialHistogram
	case dataNum == fMetricHistogram:
		mtype = otlptranslator.MetricTypeHistogram
	case dataNum == fMetricSummary:
		mtype = otlptranslator.MetricTypeSummary
	case dataNum == fMetricSum && monotonic:
		mtype = otlptranslator.MetricTypeMonotonicCounter
	case dataNum == fMetricSum:
		mtype = otlptranslator.MetricTypeNonMonotonicCounter
	}
	emit := true
	if dataNum != fMetricGauge && dataNum != fMetricSummary {
		if temporality == temporalityDelta && !f.allowDelta {
			// takeRefused: the metric is taken out whole, named even
			// without points; its points must still decode.
			f.tr.delta.add(string(name), points)
			emit = false
		} else if temporality != temporalityCumulative && temporality != temporalityDelta {
			return errOTLPSlow // the translator's "invalid temporality" error
		}
	}
	if emit && points == 0 {
		return errOTLPSlow // the translator's "empty data points" error
	}
	var prom []byte
	if emit {
		var err error
		if prom, err = f.metricName(name, unit, mtype); err != nil {
			return err
		}
		if dataNum == fMetricSummary || dataNum == fMetricHistogram && !f.set.ConvertHistogramsToNHCB {
			f.nameSum = f.concat(prom, "_sum", nil)
			f.nameCount = f.concat(prom, "_count", nil)
			f.nameBucket = f.concat(prom, "_bucket", nil)
		}
	}
	low := 0
	for rest := data; len(rest) > 0; {
		num, _, _, m, r, _ := pbField(rest) // read above
		rest = r
		if num != fDataPoints {
			continue
		}
		var err error
		switch dataNum {
		case fMetricExpHist:
			var refused bool
			refused, err = f.expPoint(m, prom, temporality, emit)
			if refused {
				low++
			}
		case fMetricHistogram:
			err = f.histPoint(m, prom, temporality, emit)
		case fMetricSummary:
			err = f.summaryPoint(m, prom)
		default:
			err = f.numberPoint(m, prom, emit, dataNum == fMetricSum)
		}
		if err != nil {
			return err
		}
	}
	if low > 0 {
		f.tr.lowScale.add(string(name), low)
	}
	return nil
}

// labels is the label set of a point of attributes attrs (of the current
// resource and scope) in metric name, as Prometheus's createAttributes
// makes it: attributes but __name__, sanitized unless UTF-8 is allowed;
// promoted resource attributes where no attribute has the name; job,
// instance and the scope's labels over them; the name. For target_info
// (target), attrs are the resource's, __name__ among them (the name is
// set over it), without promoted attributes and scope labels. Sorted by
// name, no empty value; valid until the next call.
func (f *otlpFast) labels(attrs []otlpAttr, target bool, name []byte) ([]remotewrite.Label, error) {
	ls := f.ls[:0]
	for _, a := range attrs {
		if !target && string(a.key) == "__name__" {
			continue
		}
		n := a.key
		if !f.set.AllowUTF8 {
			var err error
			if n, err = f.labelName(a.key); err != nil {
				return nil, err
			}
		}
		ls = append(ls, remotewrite.Label{Name: n, Value: a.value})
	}
	ls, err := sortedLabels(ls)
	f.ls = ls
	if err != nil {
		return nil, err
	}
	over := f.over
	if target {
		over = over[:f.nResOver]
	} else {
		for _, p := range f.promoted {
			if labelIndex(ls, p.Name) < 0 {
				ls = append(ls, p)
			}
		}
	}
	for _, o := range over {
		ls = setLabel(ls, o)
	}
	ls = setLabel(ls, remotewrite.Label{Name: bytesOf("__name__"), Value: name})
	sortLabelSet(ls)
	f.ls = ls
	return ls, nil
}

func labelIndex(ls []remotewrite.Label, name []byte) int {
	for i, l := range ls {
		if string(l.Name) == string(name) {
			return i
		}
	}
	return -1
}

// setLabel is labels.Builder.Set: l replaces the label of its name, an
// empty value deletes it.
func setLabel(ls []remotewrite.Label, l remotewrite.Label) []remotewrite.Label {
	i := labelIndex(ls, l.Name)
	switch {
	case i >= 0 && len(l.Value) == 0:
		return append(ls[:i], ls[i+1:]...)
	case i >= 0:
		ls[i] = l
	case len(l.Value) > 0:
		ls = append(ls, l)
	}
	return ls
}

// emit appends a series of labels ls (sorted, no empty value) with one
// sample, or h if not nil, and exemplars exs. Its key is made by keys,
// at the end.
func (f *otlpFast) emit(ls []remotewrite.Label, t int64, v float64, h *histogram.Histogram, exs []builtExemplar) {
	req := &f.app.st.push.req
	if !f.sized && (len(req.Series) == cap(req.Series) || len(req.Labels)+len(ls) > cap(req.Labels) || h != nil && len(req.Histograms) == cap(req.Histograms)) {
		f.presize()
	}
	for _, ex := range exs {
		req.Exemplars = push(req.Exemplars, remotewrite.Span{Series: len(req.Series)})
		f.app.st.push.builtEx = push(f.app.st.push.builtEx, ex)
	}
	for _, l := range ls {
		req.Labels = push(req.Labels, l)
	}
	f.app.endSeries(len(ls), len(exs), t, v, h, nil)
}

// presize sizes the request's slices for the whole body at once, when
// they would grow (a cold or smaller pooled state): doubling them as
// they fill allocated twice the final size (TestOTLPMemory).
func (f *otlpFast) presize() {
	f.sized = true
	points, hists, labels := otlpCount(f.body, 3+len(f.promote), f.set.PromoteScopeMetadata, f.set.ConvertHistogramsToNHCB)
	st := f.app.st
	req := &st.push.req
	req.Series = grow(req.Series, points)
	req.Samples = grow(req.Samples, points-hists)
	req.Labels = grow(req.Labels, labels)
	req.Histograms = grow(req.Histograms, hists)
	st.push.built = grow(st.push.built, hists)
}

// keys makes the series' keys (write's label set encoding) and lens, in
// one buffer sized once.
func (f *otlpFast) keys() {
	st := f.app.st
	req := &st.push.req
	n := 0
	for _, l := range req.Labels {
		n += len(l.Name) + len(l.Value) + 2
	}
	st.keys = grow(st.keys[:0], n)
	st.lens = grow(st.lens[:0], len(req.Series))
	ls := req.Labels
	for _, s := range req.Series {
		k0 := len(st.keys)
		for _, l := range ls[:s.KeyLabels] {
			st.keys = write.AppendLabel(st.keys, l.Name, l.Value)
		}
		ls = ls[s.KeyLabels:]
		st.lens = append(st.lens, len(st.keys)-k0)
	}
}

// targetInfoStepNanos: the translator writes target_info every half
// lookback delta (its default, 5m) from a resource's first point to its
// last, and at the last.
const targetInfoStepNanos = uint64(150e9)

// targetInfo appends the current resource's target_info samples, as
// Prometheus's addResourceTargetInfo does.
func (f *otlpFast) targetInfo() error {
	if f.set.DisableTargetInfo || f.minT == math.MaxUint64 {
		return nil
	}
	identifying := 0
	for _, k := range []string{"service.namespace", "service.name", "service.instance.id"} {
		if _, ok := findAttr(f.res, k); ok {
			identifying++
		}
	}
	if len(f.res) == identifying {
		return nil // only job and instance: not useful
	}
	attrs := f.attrs[:0]
	for _, a := range f.res {
		switch string(a.key) {
		case "service.namespace", "service.name", "service.instance.id":
			if !f.set.KeepIdentifyingResourceAttributes {
				continue
			}
		}
		attrs = append(attrs, a)
	}
	f.attrs = attrs
	ls, err := f.labels(attrs, true, bytesOf("target_info"))
	if err != nil {
		return err
	}
	if labelIndex(ls, bytesOf("job")) < 0 && labelIndex(ls, bytesOf("instance")) < 0 {
		return nil
	}
	f.key = f.key[:0]
	for _, l := range ls {
		f.key = write.AppendLabel(f.key, l.Name, l.Value)
	}
	// Beyond the bounds the pdata path writes no target_info for the
	// request and says why (targetInfoBound).
	n := targetInfoSamples(f.minT, f.maxT)
	if n > otlpMaxTargetInfoPerResource || f.targetCount+n > otlpMaxTargetInfoPerRequest {
		return errOTLPSlow
	}
	f.targetCount += n
	hash := xxhash.Sum64(f.key)
	add := func(t uint64) {
		k := otlpTargetKey{hash: hash, t: int64(t) / 1e6}
		if _, ok := f.targets[k]; ok {
			return
		}
		if f.targets == nil {
			f.targets = make(map[otlpTargetKey]struct{})
		}
		f.targets[k] = struct{}{}
		f.emit(ls, k.t, 1, nil, nil)
	}
	for t := f.minT; t < f.maxT; t += targetInfoStepNanos {
		add(t)
	}
	add(f.maxT)
	return nil
}
