package frontend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/server/cpuslot"
)

// series is one series of a query's answer as the frontend holds it: the
// metric exactly as the downstream API wrote it, its labels (for identity
// and order), and its points in time order.
//
// INVARIANT: floats and hists are sorted by t, and each t appears once in
// each.
type series struct {
	metric json.RawMessage // the JSON object, as Prometheus's encoder wrote it
	lbls   labels.Labels
	floats []fpoint
	hists  []hpoint
}

type fpoint struct {
	t int64 // milliseconds
	v float64
}

// hpoint is a native histogram point, kept as the JSON the downstream
// wrote: the frontend never computes with histograms, and a histogram's
// JSON (buckets by boundaries) cannot be turned back into the spans it
// was made from.
type hpoint struct {
	t   int64
	raw json.RawMessage
}

// result is a decoded answer of /query or /query_range.
type result struct {
	resultType string          // matrix, vector, scalar, string
	series     []series        // matrix, vector (one point each)
	raw        json.RawMessage // scalar, string: the result as the API wrote it
	warnings   []string
	infos      []string
	stats      *queryStats // nil unless asked for
}

var errTimestamp = errors.New("frontend: bad timestamp")

// parseTimestamp reads a timestamp as Prometheus writes it (seconds with
// up to three decimals, jsonutil.MarshalTimestamp) into milliseconds,
// exactly: no float conversion.
func parseTimestamp(b []byte) (int64, error) {
	s := b
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	intPart, frac, hasFrac := bytes.Cut(s, []byte("."))
	if len(intPart) == 0 || len(intPart) > 15 || hasFrac && (len(frac) == 0 || len(frac) > 3) {
		return 0, fmt.Errorf("%w: %q", errTimestamp, b)
	}
	var sec int64
	for _, c := range intPart {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q", errTimestamp, b)
		}
		sec = sec*10 + int64(c-'0')
	}
	var ms int64
	for i := range 3 {
		ms *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%w: %q", errTimestamp, b)
			}
			ms += int64(c - '0')
		}
	}
	t := sec*1000 + ms
	if neg {
		t = -t
	}
	return t, nil
}

// appendTimestamp writes t (milliseconds) as Prometheus does
// (jsonutil.MarshalTimestamp): seconds, and three decimals unless they
// are all zero.
func appendTimestamp(dst []byte, t int64) []byte {
	if t < 0 {
		dst = append(dst, '-')
		t = -t
	}
	dst = strconv.AppendInt(dst, t/1000, 10)
	if f := t % 1000; f != 0 {
		dst = append(dst, '.')
		if f < 100 {
			dst = append(dst, '0')
		}
		if f < 10 {
			dst = append(dst, '0')
		}
		dst = strconv.AppendInt(dst, f, 10)
	}
	return dst
}

// appendFloat writes v as a JSON string as Prometheus does
// (jsonutil.MarshalFloat): the shortest decimal that reads back as v,
// in exponent form below 1e-6 and from 1e21.
func appendFloat(dst []byte, v float64) []byte {
	dst = append(dst, '"')
	format := byte('f')
	if abs := math.Abs(v); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, v, format, -1, 64)
	return append(dst, '"')
}

// appendString writes s as a JSON string the way Prometheus's encoder
// (jsoniter, compatible with encoding/json) does, HTML characters
// escaped.
func appendString(dst []byte, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic("BUG: marshal string: " + err.Error())
	}
	return append(dst, b...)
}

// encode writes r as the query API's successful answer, byte for byte
// what Prometheus's JSON codec writes for the same result; stats only if
// withStats.
func (r *result) encode(dst []byte, withStats bool) []byte {
	dst, _ = r.encodeSlot(dst, withStats, nil)
	return dst
}

// encodeSlot is encode under a CPU slot, which it checkpoints in every
// cpuslot.TickEvery points; it fails only if the slot's context ends
// while it waits for the slot.
func (r *result) encodeSlot(dst []byte, withStats bool, sl *cpuslot.Slot) ([]byte, error) {
	dst = append(dst, `{"status":"success","data":{"resultType":`...)
	dst = appendString(dst, r.resultType)
	dst = append(dst, `,"result":`...)
	switch r.resultType {
	case "matrix":
		dst = append(dst, '[')
		for i, s := range r.series {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = s.appendMatrixSeries(dst)
			if err := sl.Work(len(s.floats) + len(s.hists)); err != nil {
				return nil, err
			}
		}
		dst = append(dst, ']')
	case "vector":
		dst = append(dst, '[')
		for i, s := range r.series {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = s.appendVectorSample(dst)
			if err := sl.Tick(); err != nil {
				return nil, err
			}
		}
		dst = append(dst, ']')
	case "scalar", "string":
		dst = append(dst, r.raw...)
	}
	if withStats && r.stats != nil {
		b, err := json.Marshal(r.stats)
		if err != nil {
			panic("BUG: marshal stats: " + err.Error())
		}
		dst = append(dst, `,"stats":`...)
		dst = append(dst, b...)
	}
	dst = append(dst, '}')
	for _, a := range []struct {
		name string
		list []string
	}{{"warnings", r.warnings}, {"infos", r.infos}} {
		if len(a.list) == 0 {
			continue
		}
		dst = append(dst, `,"`...)
		dst = append(dst, a.name...)
		dst = append(dst, `":[`...)
		for i, w := range a.list {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, w)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}'), nil
}

func (s *series) appendMatrixSeries(dst []byte) []byte {
	dst = append(dst, `{"metric":`...)
	dst = append(dst, s.metric...)
	for i, p := range s.floats {
		if i == 0 {
			dst = append(dst, `,"values":[`...)
		} else {
			dst = append(dst, ',')
		}
		dst = append(dst, '[')
		dst = appendTimestamp(dst, p.t)
		dst = append(dst, ',')
		dst = appendFloat(dst, p.v)
		dst = append(dst, ']')
	}
	if len(s.floats) > 0 {
		dst = append(dst, ']')
	}
	for i, p := range s.hists {
		if i == 0 {
			dst = append(dst, `,"histograms":[`...)
		} else {
			dst = append(dst, ',')
		}
		dst = append(dst, '[')
		dst = appendTimestamp(dst, p.t)
		dst = append(dst, ',')
		dst = append(dst, p.raw...)
		dst = append(dst, ']')
	}
	if len(s.hists) > 0 {
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func (s *series) appendVectorSample(dst []byte) []byte {
	dst = append(dst, `{"metric":`...)
	dst = append(dst, s.metric...)
	if len(s.hists) > 0 {
		dst = append(dst, `,"histogram":[`...)
		dst = appendTimestamp(dst, s.hists[0].t)
		dst = append(dst, ',')
		dst = append(dst, s.hists[0].raw...)
	} else {
		dst = append(dst, `,"value":[`...)
		dst = appendTimestamp(dst, s.floats[0].t)
		dst = append(dst, ',')
		dst = appendFloat(dst, s.floats[0].v)
	}
	return append(dst, "]}"...)
}

// mergeMatrices joins the matrices of consecutive, disjoint time ranges,
// in time order, into one: series with the same labels become one, and
// the result is sorted by labels as the PromQL engine sorts a range
// query's matrix (promql.Matrix's Less, labels.Compare).
func mergeMatrices(parts [][]series) []series {
	if len(parts) == 1 {
		return parts[0]
	}
	n := 0
	for _, p := range parts {
		n = max(n, len(p))
	}
	byMetric := make(map[string]int, n)
	var out []series
	for _, p := range parts {
		for _, s := range p {
			i, ok := byMetric[string(s.metric)]
			if !ok {
				byMetric[string(s.metric)] = len(out)
				out = append(out, series{metric: s.metric, lbls: s.lbls,
					floats: slices.Clip(s.floats), hists: slices.Clip(s.hists)})
				continue
			}
			o := &out[i]
			o.floats = appendPoints(o.floats, s.floats)
			o.hists = appendPoints(o.hists, s.hists)
		}
	}
	slices.SortFunc(out, func(a, b series) int { return labels.Compare(a.lbls, b.lbls) })
	return out
}

// appendPoints appends the points of a later range to dst, dropping any
// that are not after dst's last (two ranges' answers never overlap; this
// keeps the invariant if they did).
func appendPoints[P fpoint | hpoint](dst, src []P) []P {
	if len(dst) > 0 && len(src) > 0 {
		last := pointT(dst[len(dst)-1])
		i := 0
		for i < len(src) && pointT(src[i]) <= last {
			i++
		}
		src = src[i:]
	}
	return append(dst, src...)
}

func pointT[P fpoint | hpoint](p P) int64 {
	switch p := any(p).(type) {
	case fpoint:
		return p.t
	case hpoint:
		return p.t
	}
	panic("BUG: unknown point type")
}

// cut returns the series' points in [start, end], dropping series left
// without any. The returned series share the points' arrays with ss.
func cut(ss []series, start, end int64) []series {
	out := make([]series, 0, len(ss))
	for _, s := range ss {
		c := series{metric: s.metric, lbls: s.lbls, floats: cutPoints(s.floats, start, end), hists: cutPoints(s.hists, start, end)}
		if len(c.floats) > 0 || len(c.hists) > 0 {
			out = append(out, c)
		}
	}
	return out
}

func cutPoints[P fpoint | hpoint](ps []P, start, end int64) []P {
	lo, _ := slices.BinarySearchFunc(ps, start, func(p P, t int64) int { return cmpInt(pointT(p), t) })
	hi, found := slices.BinarySearchFunc(ps, end, func(p P, t int64) int { return cmpInt(pointT(p), t) })
	if found {
		hi++
	}
	if lo >= hi {
		return nil
	}
	return ps[lo:hi:hi]
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// mergeAnnotations returns the union of lists, each string once, in
// order of first appearance. (Prometheus writes a query's annotations
// from a map, in no fixed order.)
func mergeAnnotations(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}
