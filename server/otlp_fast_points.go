package server

import (
	"encoding/hex"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/myelindb/myelin/server/remotewrite"
)

// The OTLP fast path's data points: each kind read from its bytes and
// turned into series as Prometheus's translator turns it (otlp_fast.go
// has the request, resource, scope and metric around them).

// point notes a point's time for target_info and returns it in ms.
func (f *otlpFast) point(t uint64) (int64, error) {
	if t > math.MaxInt64 {
		return 0, errOTLPSlow // target_info's time arithmetic would differ
	}
	f.minT, f.maxT = min(f.minT, t), max(f.maxT, t)
	return int64(t) / 1e6, nil
}

// numberPoint translates a NumberDataPoint of a gauge or sum; a sum's
// exemplars are the series', a gauge's are dropped (as the translator
// does).
func (f *otlpFast) numberPoint(b, name []byte, emit, sum bool) error {
	attrs := f.attrs[:0]
	f.exs, f.exAttrs = f.exs[:0], f.exAttrs[:0]
	var t uint64
	var v float64
	var flags uint32
	for len(b) > 0 {
		num, typ, x, m, rest, err := pbField(b)
		if err != nil {
			return err
		}
		b = rest
		switch {
		case num == fNumAttributes && typ == protowire.BytesType:
			a, err := f.keyValue(m)
			if err != nil {
				return err
			}
			attrs = append(attrs, a)
		case num == fNumStart && typ == protowire.Fixed64Type:
		case num == fNumTime && typ == protowire.Fixed64Type:
			t = x
		case num == fNumDouble && typ == protowire.Fixed64Type:
			v = math.Float64frombits(x)
		case num == fNumInt && typ == protowire.Fixed64Type:
			v = float64(int64(x))
		case num == fNumFlags && typ == protowire.VarintType:
			flags = uint32(x)
		case num == fNumExemplars && typ == protowire.BytesType:
			if err := f.exemplar(m); err != nil {
				return err
			}
		default: // unknown
			return errOTLPSlow
		}
	}
	f.attrs = attrs
	if !emit {
		return nil
	}
	if !sum {
		f.exs = f.exs[:0]
	}
	if flags&flagNoRecordedValue != 0 {
		v = math.Float64frombits(value.StaleNaN)
	}
	ms, err := f.point(t)
	if err != nil {
		return err
	}
	ls, err := f.labels(attrs, false, name)
	if err != nil {
		return err
	}
	exs, err := f.exemplars(ms, f.exs)
	if err != nil {
		return err
	}
	f.emit(ls, ms, v, nil, exs)
	return nil
}

// expPoint translates an ExponentialHistogramDataPoint into a native
// histogram as Prometheus's exponentialToNativeHistogram does; a point
// of a scale below -4 is refused (takeRefused).
func (f *otlpFast) expPoint(b, name []byte, temporality int32, emit bool) (refused bool, err error) {
	attrs := f.attrs[:0]
	var t, count, zeroCount uint64
	var sum float64
	var scale, pOffset, nOffset int32
	var flags uint32
	hasSum, seenPos, seenNeg := false, false, false
	f.counts, f.ncount = f.counts[:0], f.ncount[:0]
	f.exs, f.exAttrs = f.exs[:0], f.exAttrs[:0]
	for len(b) > 0 {
		num, typ, x, m, rest, err := pbField(b)
		if err != nil {
			return false, err
		}
		b = rest
		switch {
		case num == fExpAttributes && typ == protowire.BytesType:
			a, err := f.keyValue(m)
			if err != nil {
				return false, err
			}
			attrs = append(attrs, a)
		case num == fExpStart && typ == protowire.Fixed64Type:
		case num == fExpTime && typ == protowire.Fixed64Type:
			t = x
		case num == fExpCount && typ == protowire.Fixed64Type:
			count = x
		case num == fExpSum && typ == protowire.Fixed64Type:
			sum, hasSum = math.Float64frombits(x), true
		case num == fExpScale && typ == protowire.VarintType:
			scale = zigzag32(x)
		case num == fExpZeroCount && typ == protowire.Fixed64Type:
			zeroCount = x
		case num == fExpPositive && typ == protowire.BytesType && !seenPos:
			seenPos = true
			if pOffset, f.counts, err = buckets(m, f.counts); err != nil {
				return false, err
			}
		case num == fExpNegative && typ == protowire.BytesType && !seenNeg:
			seenNeg = true
			if nOffset, f.ncount, err = buckets(m, f.ncount); err != nil {
				return false, err
			}
		case num == fExpFlags && typ == protowire.VarintType:
			flags = uint32(x)
		case num == fExpMin && typ == protowire.Fixed64Type:
		case num == fExpMax && typ == protowire.Fixed64Type:
		case num == fExpZeroThreshold && typ == protowire.Fixed64Type:
		case num == fExpExemplars && typ == protowire.BytesType:
			if err := f.exemplar(m); err != nil {
				return false, err
			}
		default: // unknown
			return false, errOTLPSlow
		}
	}
	f.attrs = attrs
	if scale < histogram.ExponentialSchemaMin {
		return emit, nil
	}
	if !emit {
		return false, nil
	}
	ms, err := f.point(t)
	if err != nil {
		return false, err
	}
	var scaleDown int32
	if scale > histogram.ExponentialSchemaMax {
		scaleDown, scale = scale-histogram.ExponentialSchemaMax, histogram.ExponentialSchemaMax
	}
	h := f.histogram()
	h.Schema = scale
	h.ZeroThreshold = 1e-128 // Prometheus's, whatever OTel's zero_threshold says
	h.ZeroCount = zeroCount
	h.PositiveSpans, h.PositiveBuckets = f.bucketLayout(f.counts, pOffset, scaleDown, true)
	h.NegativeSpans, h.NegativeBuckets = f.bucketLayout(f.ncount, nOffset, scaleDown, true)
	if temporality == temporalityDelta {
		h.CounterResetHint = histogram.GaugeType
	}
	if flags&flagNoRecordedValue != 0 {
		h.Sum, h.Count = math.Float64frombits(value.StaleNaN), value.StaleNaN
	} else {
		if hasSum {
			h.Sum = sum
		}
		h.Count = count
	}
	ls, err := f.labels(attrs, false, name)
	if err != nil {
		return false, err
	}
	exs, err := f.exemplars(ms, f.exs)
	if err != nil {
		return false, err
	}
	f.emit(ls, ms, 0, h, exs)
	return false, nil
}

// Fields of HistogramDataPoint, SummaryDataPoint and ValueAtQuantile.
const (
	fHistAttributes = 9
	fHistStart      = 2
	fHistTime       = 3
	fHistCount      = 4
	fHistSum        = 5
	fHistCounts     = 6
	fHistBounds     = 7
	fHistExemplars  = 8
	fHistFlags      = 10
	fHistMin        = 11
	fHistMax        = 12

	fSumAttributes = 7
	fSumStart      = 2
	fSumTime       = 3
	fSumCount      = 4
	fSumSum        = 5
	fSumQuantiles  = 6
	fSumFlags      = 8

	fQuantile      = 1
	fQuantileValue = 2
)

// fixed64s reads a repeated fixed64 field as pdata does: a packed one
// replaces what came before (pdata makes a new slice), one value
// appends.
func fixed64s[E uint64 | float64](typ protowire.Type, v uint64, m []byte, dst []E, conv func(uint64) E) ([]E, error) {
	if typ == protowire.Fixed64Type {
		return append(dst, conv(v)), nil
	}
	if typ != protowire.BytesType || len(m)%8 != 0 {
		return dst, errOTLPSlow
	}
	dst = dst[:0]
	for ; len(m) > 0; m = m[8:] {
		x, _ := protowire.ConsumeFixed64(m)
		dst = append(dst, conv(x))
	}
	return dst, nil
}

func u64(v uint64) uint64 { return v }

// histPoint translates a HistogramDataPoint: a native histogram with
// custom buckets with NHCB (Prometheus's
// explicitHistogramToCustomBucketsHistogram), else the classic _sum,
// _count and cumulative _bucket series (addHistogramDataPoints).
func (f *otlpFast) histPoint(b, name []byte, temporality int32, emit bool) error {
	attrs := f.attrs[:0]
	var t, count uint64
	var sum float64
	var flags uint32
	hasSum := false
	f.counts, f.bounds = f.counts[:0], f.bounds[:0]
	f.exs, f.exAttrs = f.exs[:0], f.exAttrs[:0]
	for len(b) > 0 {
		num, typ, x, m, rest, err := pbField(b)
		if err != nil {
			return err
		}
		b = rest
		switch {
		case num == fHistAttributes && typ == protowire.BytesType:
			a, err := f.keyValue(m)
			if err != nil {
				return err
			}
			attrs = append(attrs, a)
		case num == fHistStart && typ == protowire.Fixed64Type:
		case num == fHistTime && typ == protowire.Fixed64Type:
			t = x
		case num == fHistCount && typ == protowire.Fixed64Type:
			count = x
		case num == fHistSum && typ == protowire.Fixed64Type:
			sum, hasSum = math.Float64frombits(x), true
		case num == fHistCounts:
			if f.counts, err = fixed64s(typ, x, m, f.counts, u64); err != nil {
				return err
			}
		case num == fHistBounds:
			if f.bounds, err = fixed64s(typ, x, m, f.bounds, math.Float64frombits); err != nil {
				return err
			}
		case num == fHistFlags && typ == protowire.VarintType:
			flags = uint32(x)
		case num == fHistMin && typ == protowire.Fixed64Type:
		case num == fHistMax && typ == protowire.Fixed64Type:
		case num == fHistExemplars && typ == protowire.BytesType:
			if err := f.exemplar(m); err != nil {
				return err
			}
		default: // unknown
			return errOTLPSlow
		}
	}
	f.attrs = attrs
	if !emit {
		return nil
	}
	ms, err := f.point(t)
	if err != nil {
		return err
	}
	stale := flags&flagNoRecordedValue != 0
	exs, err := f.exemplars(ms, f.exs)
	if err != nil {
		return err
	}
	if f.set.ConvertHistogramsToNHCB {
		h := f.histogram()
		h.Schema = histogram.CustomBucketsSchema
		first := 0
		for first < len(f.counts) && f.counts[first] == 0 {
			first++
		}
		h.PositiveSpans, h.PositiveBuckets = f.bucketLayout(f.counts[first:], int32(first), 0, false)
		if len(f.bounds) > 0 {
			if cap(f.floats)-len(f.floats) < len(f.bounds) {
				f.floats = make([]float64, 0, max(1024, len(f.bounds)))
			}
			n := len(f.floats)
			f.floats = append(f.floats, f.bounds...)
			h.CustomValues = f.floats[n:len(f.floats):len(f.floats)]
		}
		if temporality == temporalityDelta {
			h.CounterResetHint = histogram.GaugeType
		}
		if stale {
			h.Sum, h.Count = math.Float64frombits(value.StaleNaN), value.StaleNaN
		} else {
			if hasSum {
				h.Sum = sum
			}
			h.Count = count
		}
		ls, err := f.labels(attrs, false, name)
		if err != nil {
			return err
		}
		f.emit(ls, ms, 0, h, exs)
		return nil
	}
	if err := f.baseLabels(attrs); err != nil {
		return err
	}
	if hasSum {
		f.emitWith(f.nameSum, nil, nil, ms, sum, stale, nil)
	}
	f.emitWith(f.nameCount, nil, nil, ms, float64(count), stale, nil)
	// A bucket's exemplars are those up to its bound not taken by a
	// lower bucket, in their order (they are meant to be sorted); +Inf
	// takes the rest.
	var cum uint64
	for i := range min(len(f.bounds), len(f.counts)) {
		cum += f.counts[i]
		n := 0
		for n < len(exs) && exs[n].V <= f.bounds[i] {
			n++
		}
		f.emitWith(f.nameBucket, bytesOf("le"), f.formatFloat(f.bounds[i]), ms, float64(cum), stale, exs[:n])
		exs = exs[n:]
	}
	f.emitWith(f.nameBucket, bytesOf("le"), bytesOf("+Inf"), ms, float64(count), stale, exs)
	return nil
}

// summaryPoint translates a SummaryDataPoint: the _sum, _count and one
// series per quantile (addSummaryDataPoints).
func (f *otlpFast) summaryPoint(b, name []byte) error {
	attrs := f.attrs[:0]
	var t, count uint64
	var sum float64
	var flags uint32
	f.quantiles = f.quantiles[:0]
	for len(b) > 0 {
		num, typ, x, m, rest, err := pbField(b)
		if err != nil {
			return err
		}
		b = rest
		switch {
		case num == fSumAttributes && typ == protowire.BytesType:
			a, err := f.keyValue(m)
			if err != nil {
				return err
			}
			attrs = append(attrs, a)
		case num == fSumStart && typ == protowire.Fixed64Type:
		case num == fSumTime && typ == protowire.Fixed64Type:
			t = x
		case num == fSumCount && typ == protowire.Fixed64Type:
			count = x
		case num == fSumSum && typ == protowire.Fixed64Type:
			sum = math.Float64frombits(x)
		case num == fSumQuantiles && typ == protowire.BytesType:
			var q [2]float64
			for len(m) > 0 {
				qnum, qtyp, qx, _, qrest, err := pbField(m)
				if err != nil || qtyp != protowire.Fixed64Type || qnum != fQuantile && qnum != fQuantileValue {
					return errOTLPSlow
				}
				m = qrest
				q[qnum-1] = math.Float64frombits(qx)
			}
			f.quantiles = append(f.quantiles, q)
		case num == fSumFlags && typ == protowire.VarintType:
			flags = uint32(x)
		default: // unknown
			return errOTLPSlow
		}
	}
	f.attrs = attrs
	ms, err := f.point(t)
	if err != nil {
		return err
	}
	stale := flags&flagNoRecordedValue != 0
	if err := f.baseLabels(attrs); err != nil {
		return err
	}
	f.emitWith(f.nameSum, nil, nil, ms, sum, stale, nil)
	f.emitWith(f.nameCount, nil, nil, ms, float64(count), stale, nil)
	for _, q := range f.quantiles {
		f.emitWith(name, bytesOf("quantile"), f.formatFloat(q[0]), ms, q[1], stale, nil)
	}
	return nil
}

// baseLabels makes f.base, a classic histogram's or summary's point's
// labels (createAttributes without extras): labels with a placeholder
// name emitWith replaces.
func (f *otlpFast) baseLabels(attrs []otlpAttr) error {
	ls, err := f.labels(attrs, false, f.nameCount)
	if err != nil {
		return err
	}
	f.base = append(f.base[:0], ls...)
	return nil
}

// emitWith emits a series of f.base's labels named name, with the label
// extra=extraValue if extra is not nil (addLabels), of value v or the
// stale marker, and exemplars exs.
func (f *otlpFast) emitWith(name, extra, extraValue []byte, t int64, v float64, stale bool, exs []builtExemplar) {
	ls := append(f.ls[:0], f.base...)
	ls[labelIndex(ls, bytesOf("__name__"))].Value = name
	if extra != nil {
		ls = setLabel(ls, remotewrite.Label{Name: extra, Value: extraValue})
		sortLabelSet(ls)
	}
	f.ls = ls
	if stale {
		v = math.Float64frombits(value.StaleNaN)
	}
	f.emit(ls, t, v, nil, exs)
}

// formatFloat is strconv.FormatFloat(v, 'f', -1, 64) in the text arena.
func (f *otlpFast) formatFloat(v float64) []byte {
	free := f.alloc(24)
	out := strconv.AppendFloat(free, v, 'f', -1, 64)
	if len(out) <= cap(free) { // else it moved ('f' of 1e300)
		f.text = f.text[:len(f.text)+len(out)]
	}
	return out[:len(out):len(out)]
}

// otlpExemplar is an Exemplar as read: its attributes are
// f.exAttrs[attrs0:attrs1].
type otlpExemplar struct {
	t              uint64
	v              float64
	trace, span    []byte
	attrs0, attrs1 int
}

// Fields of Exemplar.
const (
	fExAttributes = 7
	fExTime       = 2
	fExDouble     = 3
	fExInt        = 6
	fExSpanID     = 4
	fExTraceID    = 5
)

// exemplar reads an Exemplar into f.exs.
func (f *otlpFast) exemplar(b []byte) error {
	ex := otlpExemplar{attrs0: len(f.exAttrs)}
	hasValue := false
	for len(b) > 0 {
		num, typ, x, m, rest, err := pbField(b)
		if err != nil {
			return err
		}
		b = rest
		switch {
		case num == fExAttributes && typ == protowire.BytesType:
			a, err := f.keyValue(m)
			if err != nil {
				return err
			}
			f.exAttrs = append(f.exAttrs, a)
		case num == fExTime && typ == protowire.Fixed64Type:
			ex.t = x
		case num == fExDouble && typ == protowire.Fixed64Type:
			ex.v, hasValue = math.Float64frombits(x), true
		case num == fExInt && typ == protowire.Fixed64Type:
			ex.v, hasValue = float64(int64(x)), true
		case num == fExTraceID && typ == protowire.BytesType && (len(m) == 0 || len(m) == 16):
			ex.trace = m
		case num == fExSpanID && typ == protowire.BytesType && (len(m) == 0 || len(m) == 8):
			ex.span = m
		default: // unknown; trace and span IDs pdata refuses
			return errOTLPSlow
		}
	}
	if !hasValue || ex.t > math.MaxInt64 {
		return errOTLPSlow // the translator's "unsupported exemplar value type"
	}
	ex.attrs1 = len(f.exAttrs)
	f.exs = append(f.exs, ex)
	return nil
}

// exemplars makes a point's exemplars as the translator
// (getPromExemplars) and our appender make them: trace_id and span_id
// in hex unless zero, the filtered attributes as they are if all of it
// fits in 128 runes, sorted by name; the exemplar's time, else the
// point's (t). Valid until the next call.
func (f *otlpFast) exemplars(t int64, exs []otlpExemplar) ([]builtExemplar, error) {
	out := f.built[:0]
	for _, ex := range exs {
		attrs := f.exAttrs[ex.attrs0:ex.attrs1]
		if cap(f.exLabels)-len(f.exLabels) < len(attrs)+2 {
			f.exLabels = make([]remotewrite.Label, 0, max(1024, len(attrs)+2))
		}
		ls := f.exLabels[len(f.exLabels):len(f.exLabels)]
		runes := 0
		for _, id := range []struct {
			name string
			id   []byte
		}{{"trace_id", ex.trace}, {"span_id", ex.span}} {
			if !nonZero(id.id) {
				continue
			}
			h := hex.AppendEncode(f.alloc(2*len(id.id)), id.id)
			f.text = f.text[:len(f.text)+len(h)]
			ls = append(ls, remotewrite.Label{Name: bytesOf(id.name), Value: h[:len(h):len(h)]})
			runes += len(id.name) + len(h)
		}
		for _, a := range attrs {
			runes += utf8.RuneCount(a.key) + utf8.RuneCount(a.value)
		}
		if runes <= 128 {
			for _, a := range attrs {
				ls = append(ls, remotewrite.Label{Name: a.key, Value: a.value})
			}
		}
		sortLabelSet(ls)
		for i := 1; i < len(ls); i++ {
			if string(ls[i].Name) == string(ls[i-1].Name) {
				return nil, errOTLPSlow // the translator's order is its sort's
			}
		}
		f.exLabels = f.exLabels[:len(f.exLabels)+len(ls)]
		b := builtExemplar{T: t, V: ex.v, Labels: ls[:len(ls):len(ls)]}
		if ms := int64(ex.t) / 1e6; ms != 0 {
			b.T = ms
		}
		out = append(out, b)
	}
	f.built = out
	return out, nil
}

func nonZero(id []byte) bool {
	for _, c := range id {
		if c != 0 {
			return true
		}
	}
	return false
}

// buckets reads an ExponentialHistogramDataPoint.Buckets, appending its
// counts (packed or not) to counts.
func buckets(b []byte, counts []uint64) (int32, []uint64, error) {
	var offset int32
	for len(b) > 0 {
		num, typ, v, m, rest, err := pbField(b)
		if err != nil {
			return 0, counts, err
		}
		b = rest
		switch {
		case num == fBucketsOffset && typ == protowire.VarintType:
			offset = zigzag32(v)
		case num == fBucketsCounts && typ == protowire.VarintType:
			counts = append(counts, v)
		case num == fBucketsCounts && typ == protowire.BytesType:
			for len(m) > 0 {
				c, n := protowire.ConsumeVarint(m)
				if n < 0 {
					return 0, counts, errOTLPSlow
				}
				counts = append(counts, c)
				m = m[n:]
			}
		default:
			return 0, counts, errOTLPSlow
		}
	}
	return offset, counts, nil
}

// histogram returns a zeroed histogram from the arena.
func (f *otlpFast) histogram() *histogram.Histogram {
	if len(f.hists) == cap(f.hists) {
		f.hists = make([]histogram.Histogram, 0, 256)
	}
	f.hists = f.hists[:len(f.hists)+1]
	return &f.hists[len(f.hists)-1]
}

// bucketLayout turns OTel's dense bucket counts from offset into
// Prometheus's spans and deltas, merging 2^scaleDown buckets into one,
// OTel's index i at Prometheus's i+1 (adjust; without, for custom
// buckets, the first span is at offset). It gives exactly what Prometheus's
// convertBucketsLayout gives (prometheusremotewrite/histograms.go, after
// client_golang's makeBuckets: gaps of up to two buckets filled with
// zeros, longer ones a new span), quirks included: a merged bucket whose
// count so far is zero does not move the current index, so the next
// bucket's count is laid out from the old one. The spans and deltas are
// in the arenas, capped: appending to them copies.
func (f *otlpFast) bucketLayout(counts []uint64, offset, scaleDown int32, adjust bool) ([]histogram.Span, []int64) {
	if len(counts) == 0 {
		return nil, nil
	}
	// At most a span per bucket and two zeros before each.
	if nSpans := len(counts) + 1; cap(f.spans)-len(f.spans) < nSpans {
		f.spans = make([]histogram.Span, 0, max(1024, nSpans))
	}
	if nDeltas := 3 * len(counts); cap(f.deltas)-len(f.deltas) < nDeltas {
		f.deltas = make([]int64, 0, max(8192, nDeltas))
	}
	s0, d0 := len(f.spans), len(f.deltas)
	var last int64 // the previous bucket's count
	put := func(c int64) {
		f.spans[len(f.spans)-1].Length++
		f.deltas = append(f.deltas, c-last)
		last = c
	}
	skip := func(gap int32) {
		if gap > 2 {
			f.spans = append(f.spans, histogram.Span{Offset: gap})
			return
		}
		for range gap {
			put(0)
		}
	}
	at := offset>>scaleDown + 1
	if adjust {
		f.spans = append(f.spans, histogram.Span{Offset: at})
	} else {
		f.spans = append(f.spans, histogram.Span{Offset: offset})
	}
	var pending int64
	for i, c := range counts {
		next := (int32(i)+offset)>>scaleDown + 1
		switch {
		case next == at:
			pending += int64(c)
		case pending == 0:
			pending = int64(c)
		default:
			skip(next - at - 1)
			put(pending)
			pending, at = int64(c), next
		}
	}
	skip((int32(len(counts))+offset-1)>>scaleDown + 1 - at)
	put(pending)
	return f.spans[s0:len(f.spans):len(f.spans)], f.deltas[d0:len(f.deltas):len(f.deltas)]
}
