package server

import "google.golang.org/protobuf/encoding/protowire"

// The protobuf of OTLP metrics as the fast path reads it: field numbers,
// one field at a time, and the counting walk that sizes a request.

// OTLP field numbers (opentelemetry/proto/metrics/v1/metrics.proto,
// common/v1/common.proto, resource/v1/resource.proto).
const (
	fResourceMetrics = 1 // ExportMetricsServiceRequest

	fRMResource     = 1 // ResourceMetrics
	fRMScopeMetrics = 2
	fRMSchemaURL    = 3

	fResAttributes = 1 // Resource
	fResDropped    = 2

	fSMScope     = 1 // ScopeMetrics
	fSMMetrics   = 2
	fSMSchemaURL = 3

	fScopeName       = 1 // InstrumentationScope
	fScopeVersion    = 2
	fScopeAttributes = 3
	fScopeDropped    = 4

	fMetricName        = 1 // Metric
	fMetricDescription = 2
	fMetricUnit        = 3
	fMetricGauge       = 5
	fMetricSum         = 7
	fMetricHistogram   = 9
	fMetricExpHist     = 10
	fMetricSummary     = 11

	fDataPoints  = 1 // Gauge, Sum, ExponentialHistogram
	fTemporality = 2 // Sum, ExponentialHistogram
	fMonotonic   = 3 // Sum

	fNumAttributes = 7 // NumberDataPoint
	fNumStart      = 2
	fNumTime       = 3
	fNumDouble     = 4
	fNumExemplars  = 5
	fNumInt        = 6
	fNumFlags      = 8

	fExpAttributes    = 1 // ExponentialHistogramDataPoint
	fExpStart         = 2
	fExpTime          = 3
	fExpCount         = 4
	fExpSum           = 5
	fExpScale         = 6
	fExpZeroCount     = 7
	fExpPositive      = 8
	fExpNegative      = 9
	fExpFlags         = 10
	fExpExemplars     = 11
	fExpMin           = 12
	fExpMax           = 13
	fExpZeroThreshold = 14

	fBucketsOffset = 1 // ExponentialHistogramDataPoint.Buckets
	fBucketsCounts = 2

	fKVKey   = 1 // KeyValue
	fKVValue = 2

	fAnyString = 1 // AnyValue
	fAnyBool   = 2
	fAnyInt    = 3
	fAnyDouble = 4

	temporalityDelta      = 1
	temporalityCumulative = 2
	flagNoRecordedValue   = 1
)

// pbField reads the field at the start of b: its number, wire type, its
// value (varint and fixed types) or bytes (length-delimited), and the
// rest of b. Groups and anything malformed are errOTLPSlow.
func pbField(b []byte) (num protowire.Number, typ protowire.Type, v uint64, m, rest []byte, err error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, nil, nil, errOTLPSlow
	}
	b = b[n:]
	switch typ {
	case protowire.VarintType:
		v, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		v, n = protowire.ConsumeFixed64(b)
	case protowire.Fixed32Type:
		var v32 uint32
		v32, n = protowire.ConsumeFixed32(b)
		v = uint64(v32)
	case protowire.BytesType:
		m, n = protowire.ConsumeBytes(b)
	default:
		return 0, 0, 0, nil, nil, errOTLPSlow
	}
	if n < 0 {
		return 0, 0, 0, nil, nil, errOTLPSlow
	}
	return num, typ, v, m, b[n:], nil
}

// zigzag32 is pdata's reading of a sint32: the low 32 bits of the varint.
func zigzag32(v uint64) int32 { return int32(uint32(v>>1)) ^ -int32(v&1) }

// otlpCount counts the series of an ExportMetricsServiceRequest (a
// number or native histogram point one each, a classic histogram one per
// bound and three more, a summary one per quantile and two more), the
// native histograms among them, and the labels they will have at most:
// their attributes and extra each (job, instance, name, promoted
// attributes), one more for le and quantile, and the scope's attributes
// and 3 more with scope metadata; and two target_info samples per
// resource. Malformed bytes
// end the count (translation refuses them).
func otlpCount(b []byte, extra int, scopeLabels, nhcb bool) (points, hists, labels int) {
	each := func(b []byte, num protowire.Number, f func(m []byte)) {
		for len(b) > 0 {
			n, typ, _, m, rest, err := pbField(b)
			if err != nil {
				return
			}
			b = rest
			if n == num && typ == protowire.BytesType {
				f(m)
			}
		}
	}
	count := func(b []byte, num protowire.Number) int {
		n := 0
		each(b, num, func([]byte) { n++ })
		return n
	}
	perPoint := 0
	// add counts n series of labels labels each.
	add := func(n int, hist bool, labels1 int) {
		points += n
		if hist {
			hists += n
		}
		labels += n * labels1
	}
	number := func(p []byte) { add(1, false, count(p, fNumAttributes)+perPoint) }
	each(b, fResourceMetrics, func(rm []byte) {
		// target_info: a sample at the first and last point; more for
		// points over 2.5 minutes apart (then the slices grow).
		each(rm, fRMResource, func(r []byte) {
			points += 2
			labels += 2 * (count(r, fResAttributes) + 3)
		})
		each(rm, fRMScopeMetrics, func(sm []byte) {
			perPoint = extra
			if scopeLabels {
				each(sm, fSMScope, func(s []byte) { perPoint += count(s, fScopeAttributes) + 3 })
			}
			each(sm, fSMMetrics, func(m []byte) {
				each(m, fMetricGauge, func(data []byte) { each(data, fDataPoints, number) })
				each(m, fMetricSum, func(data []byte) { each(data, fDataPoints, number) })
				each(m, fMetricExpHist, func(data []byte) {
					each(data, fDataPoints, func(p []byte) { add(1, true, count(p, fExpAttributes)+perPoint) })
				})
				each(m, fMetricHistogram, func(data []byte) {
					each(data, fDataPoints, func(p []byte) {
						if nhcb {
							add(1, true, count(p, fHistAttributes)+perPoint)
							return
						}
						bounds := 0
						for q := p; len(q) > 0; {
							n, typ, _, m, rest, err := pbField(q)
							if err != nil {
								break
							}
							q = rest
							if n == fHistBounds && typ == protowire.Fixed64Type {
								bounds++
							} else if n == fHistBounds && typ == protowire.BytesType {
								bounds = len(m) / 8 // a packed one replaces
							}
						}
						add(bounds+3, false, count(p, fHistAttributes)+perPoint+1)
					})
				})
				each(m, fMetricSummary, func(data []byte) {
					each(data, fDataPoints, func(p []byte) {
						add(count(p, fSumQuantiles)+2, false, count(p, fSumAttributes)+perPoint+1)
					})
				})
			})
		})
	})
	return points, hists, labels
}
