package remotewrite

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/histogram"

	"github.com/myelindb/myelin/write"
)

// Native histograms are decoded apart from the float path: Unmarshal
// checks a histogram's bytes and records where they are (Request.
// Histograms), and Histogram builds it when the server stores it. So a
// request without histograms costs nothing more, and the float decoder
// stays allocation-free; a histogram allocates its spans and buckets,
// which the batch keeps until the write is applied.

// ErrInvalidHistogram is the sentinel of a native histogram Prometheus's
// histogram.Validate refuses (bucket counts that do not match the spans,
// negative counts, a count below the buckets' sum, bad custom bounds, an
// unknown schema). The *SeriesError names the series and the histogram;
// its text is Prometheus's.
var ErrInvalidHistogram = errors.New("invalid native histogram")

// Histogram decodes the request's i-th native histogram
// (Request.Histograms[i]), of 1.0's prometheus.Histogram or 2.0's
// io.prometheus.write.v2.Histogram, as prompb's ToIntHistogram or
// ToFloatHistogram builds it: a float histogram if its count is
// count_float (the last of the oneof's fields on the wire), with the
// float bucket counts and zero_count_float; an integer one otherwise,
// with the bucket deltas and zero_count_int. A reset_hint outside the
// enum (0-3) is read as UNKNOWN. It does not validate the histogram
// (ValidateHistogram). The result does not alias the request.
func (r *Request) Histogram(i int) (write.Histogram, error) {
	h, _, err := r.HistogramST(i)
	return h, err
}

// HistogramST is Histogram with the histogram's start timestamp: 2.0's
// start_timestamp (field 17), 0 if absent and for a 1.0 request (whose
// Histogram has no such field).
func (r *Request) HistogramST(i int) (write.Histogram, int64, error) {
	h, st, err := r.histogram(i)
	if r.Proto != ProtoV2 {
		st = 0
	}
	return h, st, err
}

func (r *Request) histogram(i int) (write.Histogram, int64, error) {
	sp := r.Histograms[i]
	var (
		h                      histogram.Histogram // schema, sum, zero threshold
		countInt, zeroCountInt uint64
		countF, zeroF          float64
		floatCount             bool
		ts, st                 int64
		resetHint              uint64
		posSpans, negSpans     []histogram.Span
		posD, negD             []int64
		posC, negC, cvs        []float64
	)
	pos, end, b := sp.Start, sp.End, r.Body
	for pos < end {
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return write.Histogram{}, 0, err
		}
		pos = next
		switch {
		case wt == wireVarint && (num == 1 || num == 4 || num == 6 || num == 14 || num == 15 || num == 9 || num == 12 || num == 17):
			v, next := uvarint(b, pos, end)
			if next < 0 {
				return write.Histogram{}, 0, varintErr(next, pos, "histogram")
			}
			pos = next
			switch num {
			case 1:
				countInt, floatCount = v, false
			case 4:
				h.Schema = int32(uint32(v)>>1) ^ -int32(v&1) // sint32
			case 6:
				zeroCountInt, zeroF = v, 0
			case 14:
				resetHint = v
			case 15:
				ts = int64(v)
			case 17: // 2.0's int64 start_timestamp
				st = int64(v)
			case 9:
				negD = append(negD, zigzag(v))
			case 12:
				posD = append(posD, zigzag(v))
			}
		case wt == wireFixed64 && (num == 2 || num == 3 || num == 5 || num == 7 || num == 10 || num == 13 || num == 16):
			if end-pos < 8 {
				return write.Histogram{}, 0, protoErr(pos, "histogram", ReasonTruncated, "fixed64")
			}
			v := math.Float64frombits(fixed64(b, pos))
			pos += 8
			switch num {
			case 2:
				countF, floatCount = v, true
			case 3:
				h.Sum = v
			case 5:
				h.ZeroThreshold = v
			case 7:
				zeroF, zeroCountInt = v, 0
			case 10:
				negC = append(negC, v)
			case 13:
				posC = append(posC, v)
			case 16:
				cvs = append(cvs, v)
			}
		case wt == wireBytes && (num == 8 || num == 11 || num == 9 || num == 12 || num == 10 || num == 13 || num == 16):
			start, stop, err := readLen(b, pos, end, "histogram")
			if err != nil {
				return write.Histogram{}, 0, err
			}
			pos = stop
			switch num {
			case 8, 11:
				s, err := readBucketSpan(b, start, stop)
				if err != nil {
					return write.Histogram{}, 0, err
				}
				if num == 8 {
					negSpans = append(negSpans, s)
				} else {
					posSpans = append(posSpans, s)
				}
			case 9, 12:
				for p := start; p < stop; {
					v, next := uvarint(b, p, stop)
					if next < 0 {
						return write.Histogram{}, 0, varintErr(next, p, "histogram deltas")
					}
					p = next
					if num == 9 {
						negD = append(negD, zigzag(v))
					} else {
						posD = append(posD, zigzag(v))
					}
				}
			default: // packed doubles: 10, 13, 16
				if (stop-start)%8 != 0 {
					return write.Histogram{}, 0, protoErr(start, "histogram", ReasonPacked, fmt.Sprintf("%d bytes of doubles", stop-start))
				}
				for p := start; p < stop; p += 8 {
					v := math.Float64frombits(fixed64(b, p))
					switch num {
					case 10:
						negC = append(negC, v)
					case 13:
						posC = append(posC, v)
					default:
						cvs = append(cvs, v)
					}
				}
			}
		default:
			// Unknown fields and known
			// fields of another wire type, which Unmarshal refused.
			if pos, err = skip(b, tagPos, pos, end, wt, num); err != nil {
				return write.Histogram{}, 0, err
			}
		}
	}
	hint := histogram.UnknownCounterReset
	if resetHint <= uint64(histogram.GaugeType) {
		hint = histogram.CounterResetHint(resetHint)
	}
	if floatCount {
		return write.Histogram{T: ts, FH: &histogram.FloatHistogram{
			CounterResetHint: hint,
			Schema:           h.Schema,
			ZeroThreshold:    h.ZeroThreshold,
			ZeroCount:        zeroF,
			Count:            countF,
			Sum:              h.Sum,
			PositiveSpans:    posSpans,
			PositiveBuckets:  posC,
			NegativeSpans:    negSpans,
			NegativeBuckets:  negC,
			CustomValues:     cvs,
		}}, st, nil
	}
	h.CounterResetHint = hint
	h.Count, h.ZeroCount = countInt, zeroCountInt
	h.PositiveSpans, h.NegativeSpans = posSpans, negSpans
	h.PositiveBuckets, h.NegativeBuckets = posD, negD
	h.CustomValues = cvs
	return write.Histogram{T: ts, H: &h}, st, nil
}

// readBucketSpan reads a BucketSpan { sint32 offset = 1; uint32 length
// = 2; } at b[pos:end].
func readBucketSpan(b []byte, pos, end int) (histogram.Span, error) {
	var s histogram.Span
	for pos < end {
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return s, err
		}
		pos = next
		if wt != wireVarint || (num != 1 && num != 2) {
			if pos, err = skip(b, tagPos, pos, end, wt, num); err != nil {
				return s, err
			}
			continue
		}
		v, next := uvarint(b, pos, end)
		if next < 0 {
			return s, varintErr(next, pos, "histogram span")
		}
		pos = next
		if num == 1 {
			s.Offset = int32(uint32(v)>>1) ^ -int32(v&1)
		} else {
			s.Length = uint32(v)
		}
	}
	return s, nil
}

// zigzag decodes a sint64.
func zigzag(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

// ValidateHistogram checks native histogram j (its index among the
// series' histograms) of the series with labels ls as Prometheus's
// receiver does: an exponential schema finer than 8 (up to 52, the
// reserved range) is first reduced to 8 in place, as its remote-write
// appender does; then histogram.Validate, whose error is wrapped with
// ErrInvalidHistogram in a *SeriesError; and the timestamp as
// ValidateSamples checks a sample's.
func (l *Limits) ValidateHistogram(ls []Label, j int, h *write.Histogram, now time.Time) error {
	if err := l.validateSamples(ls, []Sample{{T: h.T}}, now, true); err != nil {
		if se, ok := err.(*SeriesError); ok {
			se.Detail = fmt.Sprintf("histogram %d %s", j, strings.TrimPrefix(se.Detail, "sample 0 "))
		}
		return err
	}
	var err error
	if h.H != nil {
		if histogram.IsExponentialSchemaReserved(h.H.Schema) && h.H.Schema > histogram.ExponentialSchemaMax {
			if err = h.H.ReduceResolution(histogram.ExponentialSchemaMax); err == nil {
				err = h.H.Validate()
			}
		} else {
			err = h.H.Validate()
		}
	} else {
		if histogram.IsExponentialSchemaReserved(h.FH.Schema) && h.FH.Schema > histogram.ExponentialSchemaMax {
			if err = h.FH.ReduceResolution(histogram.ExponentialSchemaMax); err == nil {
				err = h.FH.Validate()
			}
		} else {
			err = h.FH.Validate()
		}
	}
	if err != nil {
		return &SeriesError{Err: ErrInvalidHistogram, Detail: fmt.Sprintf("histogram %d at %d ms: %v", j, h.T, err), Series: renderLabels(ls)}
	}
	return nil
}
