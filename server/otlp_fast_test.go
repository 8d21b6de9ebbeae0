package server

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/myelindb/myelin/server/limits"
)

// otlpVariant is a tenant's OTel settings and the node's target_info
// switch, from the bits of v: NHCB, native deltas, the translation
// strategy (2 bits), promoted resource attributes, identifying resource
// attributes kept, scope metadata, no target_info.
func otlpVariant(wh *WriteHandler, v uint8) (*OTLPHandler, *limits.Limits) {
	d := limits.Defaults()
	d.OTelConvertHistogramsToNHCB = v&1 != 0
	d.OTelNativeDeltaIngestion = v&2 != 0
	d.OTelTranslationStrategy = []otlptranslator.TranslationStrategyOption{
		otlptranslator.UnderscoreEscapingWithSuffixes,
		otlptranslator.UnderscoreEscapingWithoutSuffixes,
		otlptranslator.NoUTF8EscapingWithSuffixes,
		otlptranslator.NoTranslation,
	}[v>>2&3]
	d.OTelMetricSuffixesEnabled = d.OTelTranslationStrategy.ShouldAddSuffixes()
	if v&16 != 0 {
		d.PromoteOTelResourceAttributes = limits.CSV{"host.name", "deployment.environment", "a.b", "k8s.pod.name"}
	}
	d.OTelKeepIdentifyingResourceAttributes = v&32 != 0
	d.OTelPromoteScopeMetadata = v&64 != 0
	return &OTLPHandler{wh: wh, opts: OTLPOptions{DisableTargetInfo: v&128 != 0}}, &d
}

// otlpFastCheck translates body with both paths and requires the same
// request, histograms and refusals whenever the fast path takes it (and
// that it never takes a body pdata refuses, or a request part of which
// the translator refuses). It reports whether the fast path took it.
func otlpFastCheck(t testing.TB, h *OTLPHandler, lim *limits.Limits, body []byte) bool {
	t.Helper()
	set := h.settings(lim)
	fast := &otlpState{}
	ftr, ok := fast.fast.translate(fast, body, set, lim)
	md, derr := decodeOTLP(body, otlpProto)
	if derr != nil {
		require.False(t, ok, "the fast path took a body pdata refuses: %v", derr)
		return false
	}
	if !ok {
		return false
	}
	slow := &otlpState{}
	str := translatePdata(context.Background(), slow, md, set, lim)
	require.NoError(t, str.err, "the fast path took a request the translator refuses part of")
	require.Equal(t, str.delta.points, ftr.delta.points, "delta points")
	require.Equal(t, str.delta.list, ftr.delta.list, "delta metrics")
	require.Equal(t, str.lowScale.points, ftr.lowScale.points, "low-scale points")
	require.Equal(t, str.lowScale.list, ftr.lowScale.list, "low-scale metrics")
	require.Equal(t, otlpRequestView(slow), otlpRequestView(fast))
	require.Len(t, fast.push.req.Exemplars, len(fast.push.builtEx))
	return true
}

// otlpSeriesView is a series of an OTLP state's request, comparable.
type otlpSeriesView struct {
	Labels                []string
	Key                   string
	KeyLabels             int32
	Exemplars, Histograms int32
	Samples               []string // time and value bits
	Hist                  *histogram.Histogram
	HistSum               uint64   // its Sum's bits (NaN is not equal to itself)
	Ex                    []string // exemplars: time, value bits, labels
}

func otlpRequestView(st *otlpState) []otlpSeriesView {
	req := &st.push.req
	var out []otlpSeriesView
	hi, ei := 0, 0
	for _, s := range req.Series {
		v := otlpSeriesView{Key: string(s.Key), KeyLabels: s.KeyLabels, Exemplars: s.Exemplars, Histograms: s.Histograms}
		for _, l := range s.Labels {
			v.Labels = append(v.Labels, string(l.Name)+"="+string(l.Value))
		}
		for _, x := range s.Samples {
			v.Samples = append(v.Samples, fmt.Sprintf("%d:%x", x.T, math.Float64bits(x.V)))
		}
		for range s.Histograms {
			b := st.push.built[hi]
			hi++
			h := *b.H
			v.HistSum, h.Sum = math.Float64bits(h.Sum), 0
			v.Hist = &h
			v.Samples = append(v.Samples, fmt.Sprintf("%d:h", b.T))
		}
		for range s.Exemplars {
			ex := st.push.builtEx[ei]
			ei++
			e := fmt.Sprintf("%d:%x", ex.T, math.Float64bits(ex.V))
			for _, l := range ex.Labels {
				e += " " + string(l.Name) + "=" + string(l.Value)
			}
			v.Ex = append(v.Ex, e)
		}
		out = append(out, v)
	}
	return out
}

// randomOTLP is a request of random resources, scopes, metrics and points
// drawn from small pools, so that names collide, attributes repeat across
// levels and every branch of the translation is taken.
func randomOTLP(r *rand.Rand, now time.Time) pmetric.Metrics {
	keys := []string{"host.name", "service.name", "service.namespace", "service.instance.id", "a.b", "http.method",
		"job", "instance", "__name__", "otel_scope_name", "deployment.environment", "1st", "_private", "a__b", "aä", "le", "k8s.pod.name",
		"host.name", "service.name", "service.instance.id", "http.method", "k8s.pod.name", "device", "mode"}
	rare := []string{"a_b", "", "___", "ä"} // collisions, names the namer refuses: the pdata path's
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	put := func(m pcommon.Map) {
		for range r.IntN(4) {
			k := pick(keys)
			if r.IntN(40) == 0 {
				k = pick(rare)
			}
			switch r.IntN(40) {
			case 0:
				m.PutInt(k, r.Int64N(2000)-1000)
			case 1:
				m.PutBool(k, r.IntN(2) == 0)
			case 2, 3:
				m.PutStr(k, "")
			case 4, 5:
				m.PutDouble(k, []float64{1.5, 0, math.Copysign(0, -1), 1e-7, -2.5e-9, 1e21, 123456789e15, 1.0 / 3, math.NaN(), math.Inf(1), math.Inf(-1), 1e300}[r.IntN(12)])
			case 6:
				m.PutEmptySlice(k).AppendEmpty().SetStr("x") // the pdata path's
			default:
				m.PutStr(k, pick([]string{"x", "y", "GET", "node-1", "ns", "a;b"}))
			}
		}
	}
	ts := func() pcommon.Timestamp {
		return pcommon.NewTimestampFromTime(now.Add(time.Duration(r.IntN(3)) * time.Duration(r.IntN(400)) * time.Second))
	}
	md := pmetric.NewMetrics()
	for range 1 + r.IntN(3) {
		rm := md.ResourceMetrics().AppendEmpty()
		put(rm.Resource().Attributes())
		for range r.IntN(3) {
			sm := rm.ScopeMetrics().AppendEmpty()
			if r.IntN(2) == 0 {
				sm.Scope().SetName(pick([]string{"lib", "go.opentelemetry.io/otel"}))
				sm.Scope().SetVersion(pick([]string{"", "v1"}))
				sm.SetSchemaUrl(pick([]string{"", "https://opentelemetry.io/schemas/1.26.0"}))
				put(sm.Scope().Attributes())
			}
			for range r.IntN(4) {
				m := sm.Metrics().AppendEmpty()
				m.SetName(pick([]string{"requests", "http.server.duration", "process.memory.usage", "ratio", "x_total", "1up", "ä.b"}))
				m.SetUnit(pick([]string{"", "1", "By", "s", "ms", "{request}", "By/s"}))
				temporality := pmetric.AggregationTemporality(pick([]string{"2", "2", "2", "2", "1", "1", "1", "0"})[0] - '0')
				n := 1 + r.IntN(3)
				if r.IntN(20) == 0 {
					n = 0 // the pdata path's, but for deltas and histograms of low scales only
				}
				switch r.IntN(33) {
				case 0, 1, 2, 3, 4, 5, 6, 7:
					g := m.SetEmptyGauge()
					for range n {
						numberPoint(r, g.DataPoints().AppendEmpty(), put, ts)
					}
				case 8, 9, 10, 11, 12, 13, 14, 15:
					s := m.SetEmptySum()
					s.SetIsMonotonic(r.IntN(2) == 0)
					s.SetAggregationTemporality(temporality)
					for range n {
						numberPoint(r, s.DataPoints().AppendEmpty(), put, ts)
					}
				case 16, 17, 18, 19, 20, 21, 22, 23:
					e := m.SetEmptyExponentialHistogram()
					e.SetAggregationTemporality(temporality)
					for range n {
						dp := e.DataPoints().AppendEmpty()
						put(dp.Attributes())
						dp.SetTimestamp(ts())
						dp.SetScale(int32(r.IntN(30) - 6))
						dp.SetZeroCount(uint64(r.IntN(3)))
						var count uint64
						for _, b := range []pmetric.ExponentialHistogramDataPointBuckets{dp.Positive(), dp.Negative()} {
							if r.IntN(3) == 0 {
								continue
							}
							b.SetOffset(int32(r.IntN(20) - 10))
							counts := make([]uint64, r.IntN(12))
							for i := range counts {
								if r.IntN(3) > 0 {
									counts[i] = uint64(r.IntN(5))
									count += counts[i]
								}
							}
							b.BucketCounts().FromRaw(counts)
						}
						dp.SetCount(count + dp.ZeroCount())
						if r.IntN(3) > 0 {
							dp.SetSum(float64(r.IntN(100)) / 4)
						}
						if r.IntN(8) == 0 {
							dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
						}
						if r.IntN(10) == 0 {
							dp.SetMin(0.5)
							dp.SetMax(7)
							dp.SetZeroThreshold(0.001)
						}
						addExemplars(r, dp.Exemplars(), ts)
					}
				case 24, 25, 26, 27, 28, 29:
					h := m.SetEmptyHistogram()
					h.SetAggregationTemporality(temporality)
					for range n {
						dp := h.DataPoints().AppendEmpty()
						put(dp.Attributes())
						dp.SetTimestamp(ts())
						bounds := []float64{0.005, 0.01, 0.25, 1, 2.5, 1e21, math.Inf(1)}[:r.IntN(7)]
						dp.ExplicitBounds().FromRaw(bounds)
						counts := make([]uint64, len(bounds)+1-r.IntN(2))
						var count uint64
						for i := range counts {
							if r.IntN(2) == 0 {
								counts[i] = uint64(r.IntN(4))
								count += counts[i]
							}
						}
						dp.BucketCounts().FromRaw(counts)
						dp.SetCount(count)
						if r.IntN(3) > 0 {
							dp.SetSum(float64(r.IntN(40)) / 8)
						}
						if r.IntN(8) == 0 {
							dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
						}
						addExemplars(r, dp.Exemplars(), ts)
					}
				default:
					sum := m.SetEmptySummary()
					for range n {
						dp := sum.DataPoints().AppendEmpty()
						put(dp.Attributes())
						dp.SetTimestamp(ts())
						dp.SetCount(uint64(r.IntN(10)))
						dp.SetSum(float64(r.IntN(40)) / 8)
						for _, q := range []float64{0.5, 0.9, 0.99, 1}[:r.IntN(5)] {
							qv := dp.QuantileValues().AppendEmpty()
							qv.SetQuantile(q)
							qv.SetValue(float64(r.IntN(100)) / 10)
						}
						if r.IntN(8) == 0 {
							dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
						}
					}
				}
			}
		}
	}
	return md
}

func numberPoint(r *rand.Rand, dp pmetric.NumberDataPoint, put func(pcommon.Map), ts func() pcommon.Timestamp) {
	put(dp.Attributes())
	dp.SetTimestamp(ts())
	switch r.IntN(3) {
	case 0:
		dp.SetIntValue(r.Int64N(100))
	case 1:
		dp.SetDoubleValue(r.Float64() * 10)
	}
	if r.IntN(8) == 0 {
		dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	}
	addExemplars(r, dp.Exemplars(), ts)
}

// addExemplars adds up to three exemplars of increasing values (or
// none), with trace and span IDs, attributes, and a time or not.
func addExemplars(r *rand.Rand, exs pmetric.ExemplarSlice, ts func() pcommon.Timestamp) {
	if r.IntN(3) > 0 {
		return
	}
	for i := range r.IntN(4) {
		ex := exs.AppendEmpty()
		switch r.IntN(20) {
		case 0: // no value: the pdata path's
		case 1, 2, 3, 4, 5:
			ex.SetIntValue(int64(i))
		default:
			ex.SetDoubleValue(float64(i)*0.7 + r.Float64()/2)
		}
		if r.IntN(3) > 0 {
			ex.SetTimestamp(ts())
		}
		if r.IntN(3) > 0 {
			ex.SetTraceID(pcommon.TraceID{byte(r.IntN(256)), 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, byte(i)})
		}
		if r.IntN(2) > 0 {
			ex.SetSpanID(pcommon.SpanID{byte(r.IntN(256)), 2, 3, 4, 5, 6, 7, byte(i)})
		}
		for range r.IntN(3) {
			k := []string{"user", "path", "trace_id", "ä", "long"}[r.IntN(5)]
			v := []string{"", "x", "/api/v1/push", strings.Repeat("ü", 60)}[r.IntN(4)]
			ex.FilteredAttributes().PutStr(k, v)
		}
	}
}

// The fast path gives the pdata path's request and refusals for random
// requests under every combination of settings, and takes most of them.
func TestOTLPFastEquivalence(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	wh, err := NewWriteHandler(nodeWriter(t, nil), WriteOptions{})
	require.NoError(t, err)
	now := time.UnixMilli(1_700_000_000_000)
	taken, n := 0, 0
	for i := range 600 {
		md := randomOTLP(r, now)
		body := otlpBody(t, md, false, false)
		v := uint8(r.Uint32())
		h, lim := otlpVariant(wh, v)
		n++
		if otlpFastCheck(t, h, lim, body) {
			taken++
		}
		if i < 5 { // the same request under every setting
			for v := range 256 {
				h, lim := otlpVariant(wh, uint8(v))
				otlpFastCheck(t, h, lim, body)
			}
		}
	}
	t.Logf("the fast path took %d of %d requests", taken, n)
	require.Greater(t, taken, n/4, "the fast path should take most requests")
}

// The shapes the fast path is for, and some it hands over, through the
// whole handler both ways: the same answers and the same stored series.
func TestOTLPFastHandler(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	cases := map[string]pmetric.Metrics{
		"gauges, sums, exponential histograms": otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addSum(ms, "http.server.requests", "s", pmetric.AggregationTemporalityCumulative, ts, 7, "http.method", "GET")
			addGauge(ms, "process.memory.usage", "By", ts, 1024, "a.b", "1", "a_c", "2")
			addExpHistogram(ms, "latency", ts)
		}),
		"deltas and low scales": otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addSum(ms, "d", "", pmetric.AggregationTemporalityDelta, ts, 1)
			addExpHistogram(ms, "low", ts)
			ms.At(1).ExponentialHistogram().DataPoints().At(0).SetScale(-5)
			addExpHistogram(ms, "deh", ts)
			ms.At(2).ExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
			addGauge(ms, "g", "", ts, 1)
		}),
		"everything refused": otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addSum(ms, "d", "", pmetric.AggregationTemporalityDelta, ts, 1)
		}),
		"invalid series": otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addGauge(ms, "g", "", ts, 1, "ok", string([]byte{0xff}))
			addGauge(ms, "h", "", ts, 1)
		}),
		"explicit histograms": otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addDeltaHistograms(ms, ts)
			ms.At(0).Histogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		}),
		"exemplars": otlpMetrics(now, func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
			addSum(ms, "c", "", pmetric.AggregationTemporalityCumulative, ts, 1)
			ex := ms.At(0).Sum().DataPoints().At(0).Exemplars().AppendEmpty()
			ex.SetDoubleValue(1)
			ex.SetTimestamp(ts)
			ex.SetTraceID(pcommon.TraceID{1, 2, 3})
		}),
	}
	for name, md := range cases {
		for _, v := range []uint8{0, 2, 4 | 8 | 16 | 64, 1 | 32 | 128} {
			t.Run(fmt.Sprintf("%s/%d", name, v), func(t *testing.T) {
				var answers [2]string
				var series [2][]string
				for i, pdataOnly := range []bool{true, false} {
					_, lim := otlpVariant(nil, v)
					o, err := limits.NewOverrides(*lim)
					require.NoError(t, err)
					gw := newGroupWriter(t)
					wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Limits: o, Now: func() time.Time { return now }})
					require.NoError(t, err)
					h, err := NewOTLPHandler(wh, OTLPOptions{DisableTargetInfo: v&128 != 0})
					require.NoError(t, err)
					h.pdataOnly = pdataOnly
					w := postOTLP(h, "t1", otlpProto, "gzip", otlpBody(t, md, false, true))
					answers[i] = fmt.Sprintf("%d %q", w.Code, w.Body.String())
					series[i] = stored(t, gw.g, "t1")
				}
				require.Equal(t, answers[0], answers[1])
				require.Equal(t, series[0], series[1])
			})
		}
	}
}

// bucketLayout against the translator's layout on every small dense
// bucket list: offsets, scale-downs and zero runs.
func TestOTLPFastBucketLayout(t *testing.T) {
	wh, err := NewWriteHandler(nodeWriter(t, nil), WriteOptions{})
	require.NoError(t, err)
	h, lim := otlpVariant(wh, 0)
	for counts := range 3 * 3 * 3 * 3 * 3 * 3 {
		var cs []uint64
		for c := counts; c > 0; c /= 3 {
			cs = append(cs, uint64(c%3))
		}
		for _, scale := range []int32{0, 8, 9, 10, 12} {
			for _, offset := range []int32{-5, -1, 0, 1, 4} {
				md := otlpMetrics(time.UnixMilli(1000), func(ms pmetric.MetricSlice, ts pcommon.Timestamp) {
					addExpHistogram(ms, "h", ts)
					dp := ms.At(0).ExponentialHistogram().DataPoints().At(0)
					dp.SetScale(scale)
					dp.Positive().SetOffset(offset)
					dp.Positive().BucketCounts().FromRaw(cs)
					dp.Negative().SetOffset(offset - 1)
					dp.Negative().BucketCounts().FromRaw(cs)
				})
				require.True(t, otlpFastCheck(t, h, lim, otlpBody(t, md, false, false)))
			}
		}
	}
}

// appendOTelFloat renders doubles as pdata's AsString does.
func TestOTLPFastFloatString(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	vs := []float64{0, math.Copysign(0, -1), 1, -1, 1e-6, 9.99e-7, 1e21, 9.99e20, 1e-7, 1e22, 5e-324, math.MaxFloat64,
		math.NaN(), math.Inf(1), math.Inf(-1), 1.0 / 3, 100, 1e-10}
	for range 20000 {
		vs = append(vs, math.Float64frombits(r.Uint64()), r.NormFloat64()*math.Pow(10, float64(r.IntN(60)-30)))
	}
	for _, v := range vs {
		require.Equal(t, pcommon.NewValueDouble(v).AsString(), string(appendOTelFloat(nil, v)), "%b", v)
	}
}
