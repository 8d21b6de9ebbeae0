package remotewrite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Per-series validation errors; a *SeriesError wraps one of them.
var (
	ErrMissingName       = errors.New("remotewrite: series has no metric name")
	ErrInvalidMetricName = errors.New("remotewrite: invalid metric name")
	ErrInvalidLabelName  = errors.New("remotewrite: invalid label name")
	ErrInvalidLabelValue = errors.New("remotewrite: label value is not valid UTF-8")
	ErrDuplicateLabel    = errors.New("remotewrite: duplicate label name")
	// ErrUnsortedLabels: only for labels that do not come from a
	// Request, which sorts every series' labels by name.
	ErrUnsortedLabels    = errors.New("remotewrite: labels not sorted by name")
	ErrTooManyLabels     = errors.New("remotewrite: too many labels")
	ErrLabelNameTooLong  = errors.New("remotewrite: label name too long")
	ErrLabelValueTooLong = errors.New("remotewrite: label value too long")
	ErrTooFarInFuture    = errors.New("remotewrite: sample timestamp too far in the future")
	// ErrTimestampUnreadable: the sample's timestamp is outside
	// [MinTimestamp, MaxTimestamp], where no query can read it back.
	ErrTimestampUnreadable = errors.New("remotewrite: sample timestamp outside the range queries can read")
)

// The sample timestamps (ms since the epoch) that queries can read back.
// PromQL evaluates at times it holds as int64 nanoseconds
// (time.Time.UnixNano, in promql.Engine), which reach from
// 1677-09-21T00:12:43.145Z to 2262-04-11T23:47:16.854Z: a query at an
// earlier or later time evaluates at a wrapped-around time instead, so a
// sample outside these bounds would be stored and never seen again (and
// one at math.MinInt64 is also the engine's "no data" marker). Prometheus
// itself refuses nothing here, and its API's open-ended start and end
// (v1.MinTime, v1.MaxTime) lie beyond these bounds, so /series finds
// every sample within them.
const (
	MinTimestamp = math.MinInt64 / int64(time.Millisecond) // 1677-09-21T00:12:43.146Z
	MaxTimestamp = math.MaxInt64 / int64(time.Millisecond) // 2262-04-11T23:47:16.854Z
)

// Default limits, those of Cortex and Mimir (-validation.max-label-names-
// per-series, -validation.max-length-label-name, -validation.max-length-
// label-value, -validation.create-grace-period).
const (
	DefaultMaxLabelNames      = 30
	DefaultMaxLabelNameBytes  = 1024
	DefaultMaxLabelValueBytes = 2048
	DefaultMaxFutureSkew      = 10 * time.Minute
)

// metricName is the label that holds the metric name.
const metricName = "__name__"

// Limits are the per-series validation limits of one tenant.
type Limits struct {
	// MaxLabelNames: most labels per series, __name__ included, empty
	// values not counted. Zero means DefaultMaxLabelNames.
	MaxLabelNames int
	// MaxLabelNameBytes: longest label name. Zero means
	// DefaultMaxLabelNameBytes.
	MaxLabelNameBytes int
	// MaxLabelValueBytes: longest label value (the metric name included).
	// Zero means DefaultMaxLabelValueBytes.
	MaxLabelValueBytes int
	// MaxFutureSkew: reject samples later than now plus this. Zero means
	// DefaultMaxFutureSkew.
	MaxFutureSkew time.Duration
	// LegacyNames restricts names to Prometheus 2's character set: metric
	// names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*.
	// False (the default) is Prometheus 3: any non-empty valid UTF-8.
	LegacyNames bool
}

// Validate reports every problem of l at once.
func (l Limits) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxLabelNames", int64(l.MaxLabelNames)},
		{"MaxLabelNameBytes", int64(l.MaxLabelNameBytes)},
		{"MaxLabelValueBytes", int64(l.MaxLabelValueBytes)},
		{"MaxFutureSkew", int64(l.MaxFutureSkew)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("remotewrite: limit %s is negative", f.name))
		}
	}
	return errors.Join(errs...)
}

// SeriesError is a validation error of one series. It wraps one of the
// Err* sentinels of this file.
type SeriesError struct {
	Err    error  // the sentinel, e.g. ErrInvalidLabelName
	Detail string // which label or sample, e.g. `label "a-b"`
	Series string // the series as {__name__="x", a="b"}, long values truncated
}

func (e *SeriesError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%v in series %s", e.Err, e.Series)
	}
	return fmt.Sprintf("%v (%s) in series %s", e.Err, e.Detail, e.Series)
}

func (e *SeriesError) Unwrap() error { return e.Err }

// seriesErr returns a *SeriesError for sentinel err, or err itself
// without detail (CheckSeries).
func seriesErr(err error, detail bool, ls []Label, what string) error {
	if !detail {
		return err
	}
	return &SeriesError{Err: err, Detail: what, Series: renderLabels(ls)}
}

// labelDetail says which label of a series has problem err: lb, after
// prev.
func labelDetail(err error, lb Label, prev []byte, maxNameBytes, maxValueBytes int) string {
	switch err {
	case ErrLabelNameTooLong:
		return fmt.Sprintf("label %s of %d bytes, limit %d", quote(lb.Name), len(lb.Name), maxNameBytes)
	case ErrLabelValueTooLong:
		return fmt.Sprintf("label %s value of %d bytes, limit %d", quote(lb.Name), len(lb.Value), maxValueBytes)
	case ErrUnsortedLabels:
		return fmt.Sprintf("label %s after %s", quote(lb.Name), quote(prev))
	}
	return "label " + quote(lb.Name)
}

// ValidateLabels checks the labels of one series, in the order given (a
// Request's are sorted by name), with
// Prometheus and Cortex semantics. Labels with an empty value are absent
// in Prometheus: they are ignored here (not checked, not counted) and the
// caller drops them when storing (Series.Key holds the others). It returns the first
// problem found, as a *SeriesError, in this order: missing or invalid
// metric name, too many labels, then per label: invalid name, name too
// long, value not UTF-8, value too long, unsorted, duplicate.
// It allocates only for the error.
func (l *Limits) ValidateLabels(ls []Label) error {
	return l.validateLabels(ls, false, true)
}

// ValidateSeries is ValidateLabels(ls) for ls the labels of s
// (Request.LabelsOf: s.Labels for 1.0), faster: when s.Key is all ASCII,
// as nearly every real label set is, one pass over it replaces a UTF-8
// check per name and value (those were 8% of the write path).
func (l *Limits) ValidateSeries(s *Series, ls []Label) error {
	return l.validateLabels(ls, asciiKey(s.Key, int(s.KeyLabels)), true)
}

// CheckSeries is ValidateSeries without the detail: it returns the bare
// sentinel of the same problem (ErrMissingName, ...) and never
// allocates. A request may refuse millions of series: the server says
// which was the first (ValidateSeries of that one) and counts the rest,
// so a refusal costs no error value or rendered label set.
func (l *Limits) CheckSeries(s *Series, ls []Label) error {
	return l.validateLabels(ls, asciiKey(s.Key, int(s.KeyLabels)), false)
}

// asciiKey reports whether the names and values in a Series.Key of n
// labels are all ASCII: every byte is below 0x80 except the 2n
// separators (write.LabelSep, 0xff; TestASCIIKeySeparator pins it). (A
// 0xff inside a name or value makes more than 2n.)
//
// Eight bytes at a time: the bytes with the high bit set must be exactly
// the 0xff bytes. A per-byte loop over words holding a separator (nearly
// all of them) cost 80 ns per node_exporter series; this costs ~15.
func asciiKey(key []byte, n int) bool {
	const (
		high = 0x8080808080808080
		low  = 0x7f7f7f7f7f7f7f7f
	)
	seps := 0
	for len(key) > 0 {
		var w uint64
		if len(key) >= 8 {
			w = binary.LittleEndian.Uint64(key)
			key = key[8:]
		} else {
			for i, c := range key { // the tail, zero-padded
				w |= uint64(c) << (8 * i)
			}
			key = nil
		}
		x := ^w // 0xff bytes of w are zero bytes of x
		ff := ^((x&low + low) | x | low)
		if w&high != ff {
			return false
		}
		seps += bits.OnesCount64(ff)
	}
	return seps == 2*n
}

// validateLabels is ValidateLabels; ascii says that every name and value
// is known to be ASCII; without detail it returns the bare sentinel
// (CheckSeries).
func (l *Limits) validateLabels(ls []Label, ascii, detail bool) error {
	// Zero fields mean defaults, read field by field: a withDefaults copy
	// of Limits per series cost 10% of decoding + validation.
	maxNames := orDefault(l.MaxLabelNames, DefaultMaxLabelNames)
	maxNameBytes := orDefault(l.MaxLabelNameBytes, DefaultMaxLabelNameBytes)
	maxValueBytes := orDefault(l.MaxLabelValueBytes, DefaultMaxLabelValueBytes)
	var name []byte
	n := 0
	for _, lb := range ls {
		if len(lb.Value) == 0 {
			continue
		}
		n++
		if string(lb.Name) == metricName {
			name = lb.Value
		}
	}
	if name == nil {
		return seriesErr(ErrMissingName, detail, ls, "")
	}
	if !validName(name, l.LegacyNames, true, ascii) {
		return seriesErr(ErrInvalidMetricName, detail, ls, "")
	}
	if n > maxNames {
		if !detail {
			return ErrTooManyLabels
		}
		return seriesErr(ErrTooManyLabels, detail, ls, fmt.Sprintf("%d labels, limit %d", n, maxNames))
	}
	var prev []byte
	first := true
	for _, lb := range ls {
		if len(lb.Value) == 0 {
			continue
		}
		var err error
		switch {
		case !validName(lb.Name, l.LegacyNames, false, ascii):
			err = ErrInvalidLabelName
		case len(lb.Name) > maxNameBytes:
			err = ErrLabelNameTooLong
		case !ascii && !utf8.Valid(lb.Value):
			err = ErrInvalidLabelValue
		case len(lb.Value) > maxValueBytes:
			err = ErrLabelValueTooLong
		case !first:
			switch c := bytes.Compare(prev, lb.Name); {
			case c > 0:
				err = ErrUnsortedLabels
			case c == 0:
				err = ErrDuplicateLabel
			}
		}
		if err != nil {
			if !detail {
				return err
			}
			return seriesErr(err, detail, ls, labelDetail(err, lb, prev, maxNameBytes, maxValueBytes))
		}
		prev, first = lb.Name, false
	}
	return nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// ValidateSamples checks the sample timestamps of the series with labels
// ls against now: none may be later than now + MaxFutureSkew
// (ErrTooFarInFuture) or outside [MinTimestamp, MaxTimestamp]
// (ErrTimestampUnreadable). It returns the first bad sample as a
// *SeriesError. Out-of-order and duplicate samples are the engine's to
// judge, not checked here.
func (l *Limits) ValidateSamples(ls []Label, ss []Sample, now time.Time) error {
	return l.validateSamples(ls, ss, now, true)
}

// CheckSamples is ValidateSamples without the detail: the bare sentinel
// of the same problem, and no allocation (see CheckSeries).
func (l *Limits) CheckSamples(ss []Sample, now time.Time) error {
	return l.validateSamples(nil, ss, now, false)
}

func (l *Limits) validateSamples(ls []Label, ss []Sample, now time.Time, detail bool) error {
	skew := l.MaxFutureSkew
	if skew == 0 {
		skew = DefaultMaxFutureSkew
	}
	maxT := now.Add(skew).UnixMilli()
	for i, s := range ss {
		if s.T > maxT {
			if !detail {
				return ErrTooFarInFuture
			}
			ahead := fmt.Sprintf("%d ms", s.T-now.UnixMilli())
			if d := s.T - now.UnixMilli(); d > 0 && d < math.MaxInt64/int64(time.Millisecond) {
				ahead = (time.Duration(d) * time.Millisecond).String()
			}
			return seriesErr(ErrTooFarInFuture, detail, ls, fmt.Sprintf("sample %d at %d ms is %s ahead of now, limit %v",
				i, s.T, ahead, skew))
		}
		if s.T < MinTimestamp || s.T > MaxTimestamp {
			if !detail {
				return ErrTimestampUnreadable
			}
			return seriesErr(ErrTimestampUnreadable, detail, ls, fmt.Sprintf("sample %d at %d ms; queries read %d to %d ms, 1677-09-21 to 2262-04-11",
				i, s.T, int64(MinTimestamp), int64(MaxTimestamp)))
		}
	}
	return nil
}

// validName reports whether b is a valid metric name (metric) or label
// name: non-empty valid UTF-8 (known to be if ascii), or in legacy mode
// the Prometheus 2 charset.
func validName(b []byte, legacy, metric, ascii bool) bool {
	if !legacy {
		return len(b) > 0 && (ascii || utf8.Valid(b))
	}
	return isLegacyName(b, metric)
}

// isLegacyName reports whether b matches [a-zA-Z_][a-zA-Z0-9_]*, with ':'
// also allowed anywhere if colon (metric names).
func isLegacyName(b []byte, colon bool) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(i > 0 && c >= '0' && c <= '9') || (colon && c == ':')
		if !ok {
			return false
		}
	}
	return true
}

// Rendering limits for error messages: a 1 MB label value must not become
// a 1 MB error body.
const (
	maxRenderValueBytes = 64
	maxRenderLabels     = 32
)

// renderLabels renders ls as labels.Labels.String does, {__name__="x",
// a="b"}, in wire order with values over maxRenderValueBytes truncated and
// at most maxRenderLabels labels.
func renderLabels(ls []Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i == maxRenderLabels {
			fmt.Fprintf(&b, ", ...(%d more)", len(ls)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if isLegacyName(l.Name, false) && len(l.Name) <= maxRenderValueBytes {
			b.Write(l.Name)
		} else {
			b.WriteString(quote(l.Name))
		}
		b.WriteByte('=')
		b.WriteString(quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// quote Go-quotes v, truncated to maxRenderValueBytes (on a rune boundary)
// with the full length noted: "aaaa...(1048576 bytes)".
func quote(v []byte) string {
	if len(v) <= maxRenderValueBytes {
		return strconv.Quote(string(v))
	}
	q := strconv.Quote(string(truncate(v)))
	return q[:len(q)-1] + "...(" + strconv.Itoa(len(v)) + " bytes)\""
}

func truncate(v []byte) []byte {
	if len(v) <= maxRenderValueBytes {
		return v
	}
	n := maxRenderValueBytes
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n]
}
