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

// apiResponse is the envelope of the Prometheus API's JSON, as
// decodeEnvelope reads it in one pass: nothing but the metric, the stats
// and a histogram's object is kept raw.
type apiResponse struct {
	Status    string
	Data      apiData
	ErrorType string
	Error     string
	Warnings  []string
	Infos     []string
}

type apiData struct {
	ResultType string
	Result     apiResult
	Stats      json.RawMessage
}

// apiResult is a result: the series of a matrix or vector, or the raw
// JSON of a scalar or string (an array that starts with a number or a
// string, not an object).
type apiResult struct {
	series []apiSeries
	raw    json.RawMessage
}

// decodeEnvelope reads the API's answer in one pass of its own
// (seriesScanner): the series point by point, the small members (status,
// errors, annotations, stats) with encoding/json. encoding/json's pass
// over the whole answer to check it before its reflection took 60 % of
// the decoding (BenchmarkDecodeResult); the answer comes from this
// node's own API, and the scanner checks the shape of what it reads (a
// value it skips is only scanned to its end).
func decodeEnvelope(body []byte, sl *cpuslot.Slot) (apiResponse, error) {
	var resp apiResponse
	sc := &seriesScanner{b: body, slot: sl}
	err := sc.object(func(key []byte) error {
		switch string(key) {
		case "data":
			return sc.object(func(key []byte) error {
				switch string(key) {
				case "resultType":
					return sc.small(&resp.Data.ResultType)
				case "result":
					return resp.Data.Result.read(sc)
				case "stats":
					v, err := sc.value()
					resp.Data.Stats = v
					return err
				}
				_, err := sc.value()
				return err
			})
		case "status":
			return sc.small(&resp.Status)
		case "errorType":
			return sc.small(&resp.ErrorType)
		case "error":
			return sc.small(&resp.Error)
		case "warnings":
			return sc.small(&resp.Warnings)
		case "infos":
			return sc.small(&resp.Infos)
		}
		_, err := sc.value()
		return err
	})
	if err != nil {
		return resp, err
	}
	if sc.ws(); sc.i != len(sc.b) {
		return resp, fmt.Errorf("%w: data after the answer at offset %d", errShape, sc.i)
	}
	return resp, nil
}

// read reads a result: an array of series objects (or an empty array),
// else kept raw (a scalar's or string's [t, v]).
func (r *apiResult) read(sc *seriesScanner) error {
	sc.ws()
	start := sc.i
	if sc.peek() == '[' {
		sc.i++
		sc.ws()
		if c := sc.peek(); c == '{' || c == ']' {
			sc.i = start
			var err error
			r.series, err = sc.seriesArray()
			return err
		}
		sc.i = start
	}
	v, err := sc.value()
	r.raw = bytes.Clone(v)
	return err
}

// object reads {"key": value, ...}, calling member after each key's
// colon to read its value.
func (sc *seriesScanner) object(member func(key []byte) error) error {
	if err := sc.expect('{'); err != nil {
		return err
	}
	if sc.empty('}') {
		return nil
	}
	for {
		key, err := sc.str()
		if err != nil {
			return err
		}
		if err := sc.expect(':'); err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
		more, err := sc.next('}')
		if err != nil || !more {
			return err
		}
	}
}

// small decodes the next value into v with encoding/json: for the
// envelope's few small members.
func (sc *seriesScanner) small(v any) error {
	b, err := sc.value()
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

type apiSeries struct {
	metric     []byte
	values     []fpoint
	histograms []hpoint
}

// seriesScanner reads a query answer (decodeEnvelope). It checks that
// the shape is the API's: an envelope object, series objects of metric,
// values/value, histograms/histogram; any other key's value is skipped.
type seriesScanner struct {
	slot *cpuslot.Slot
	b    []byte
	i    int
}

// errShape: valid JSON, but not the query API's series.
var errShape = errors.New("frontend: not the query API's series")

func (sc *seriesScanner) peek() byte {
	if sc.i < len(sc.b) {
		return sc.b[sc.i]
	}
	return 0
}

func (sc *seriesScanner) ws() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\r', '\n':
			sc.i++
		default:
			return
		}
	}
}

// expect consumes c after white space.
func (sc *seriesScanner) expect(c byte) error {
	sc.ws()
	if sc.peek() != c {
		return fmt.Errorf("%w: %q expected at offset %d", errShape, c, sc.i)
	}
	sc.i++
	return nil
}

// next reports, after white space, whether a list goes on: it consumes a
// comma (true) or the closing byte (false).
func (sc *seriesScanner) next(closing byte) (bool, error) {
	sc.ws()
	switch sc.peek() {
	case ',':
		sc.i++
		return true, nil
	case closing:
		sc.i++
		return false, nil
	}
	return false, fmt.Errorf("%w: ',' or %q expected at offset %d", errShape, closing, sc.i)
}

// empty consumes the closing byte of a list if it comes first.
func (sc *seriesScanner) empty(closing byte) bool {
	sc.ws()
	if sc.peek() == closing {
		sc.i++
		return true
	}
	return false
}

// str returns the next string's raw content (escapes as written).
func (sc *seriesScanner) str() ([]byte, error) {
	if err := sc.expect('"'); err != nil {
		return nil, err
	}
	start := sc.i
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case '\\':
			sc.i += 2
		case '"':
			sc.i++
			return sc.b[start : sc.i-1], nil
		default:
			sc.i++
		}
	}
	return nil, fmt.Errorf("%w: unterminated string", errShape)
}

// value skips the next value and returns its bytes.
func (sc *seriesScanner) value() ([]byte, error) {
	sc.ws()
	start := sc.i
	switch sc.peek() {
	case '"':
		if _, err := sc.str(); err != nil {
			return nil, err
		}
		return sc.b[start:sc.i], nil
	case '{', '[':
		depth := 0
		for sc.i < len(sc.b) {
			switch sc.b[sc.i] {
			case '"':
				if _, err := sc.str(); err != nil {
					return nil, err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					sc.i++
					return sc.b[start:sc.i], nil
				}
			}
			sc.i++
		}
		return nil, fmt.Errorf("%w: unterminated value at offset %d", errShape, start)
	}
	// A number, true, false or null.
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			if sc.i == start {
				return nil, fmt.Errorf("%w: a value expected at offset %d", errShape, start)
			}
			return sc.b[start:sc.i], nil
		}
		sc.i++
	}
	if sc.i == start {
		return nil, fmt.Errorf("%w: a value expected at offset %d", errShape, start)
	}
	return sc.b[start:sc.i], nil
}

// point reads [t, v] and returns t and v's bytes.
func (sc *seriesScanner) point() (int64, []byte, error) {
	if err := sc.expect('['); err != nil {
		return 0, nil, err
	}
	ts, err := sc.value()
	if err != nil {
		return 0, nil, err
	}
	t, err := parseTimestamp(ts)
	if err != nil {
		return 0, nil, err
	}
	if err := sc.expect(','); err != nil {
		return 0, nil, err
	}
	v, err := sc.value()
	if err != nil {
		return 0, nil, err
	}
	return t, v, sc.expect(']')
}

func (sc *seriesScanner) fpoint() (fpoint, error) {
	t, v, err := sc.point()
	if err != nil {
		return fpoint{}, err
	}
	vs, ok := plainString(v)
	if !ok {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return fpoint{}, fmt.Errorf("value %s: %w", v, err)
		}
		vs = []byte(s)
	}
	f, err := strconv.ParseFloat(string(vs), 64)
	if err != nil {
		return fpoint{}, fmt.Errorf("value %q: %w", vs, err)
	}
	return fpoint{t: t, v: f}, nil
}

func (sc *seriesScanner) hpoint() (hpoint, error) {
	t, v, err := sc.point()
	if err != nil {
		return hpoint{}, err
	}
	return hpoint{t: t, raw: bytes.Clone(v)}, nil
}

// seriesArray reads [{...}, ...].
func (sc *seriesScanner) seriesArray() ([]apiSeries, error) {
	if err := sc.expect('['); err != nil {
		return nil, err
	}
	var out []apiSeries
	if sc.empty(']') {
		return out, nil
	}
	for {
		s, err := sc.series()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if err := sc.slot.Work(len(s.values) + len(s.histograms)); err != nil {
			return nil, err
		}
		more, err := sc.next(']')
		if err != nil {
			return nil, err
		}
		if !more {
			return out, nil
		}
	}
}

// series reads one {"metric": {...}, "values": [...], ...}.
func (sc *seriesScanner) series() (apiSeries, error) {
	var s apiSeries
	if err := sc.expect('{'); err != nil {
		return s, err
	}
	if sc.empty('}') {
		return s, nil
	}
	for {
		key, err := sc.str()
		if err != nil {
			return s, err
		}
		if err := sc.expect(':'); err != nil {
			return s, err
		}
		switch string(key) {
		case "metric":
			v, err := sc.value()
			if err != nil {
				return s, err
			}
			s.metric = bytes.Clone(v)
		case "value":
			p, err := sc.fpoint()
			if err != nil {
				return s, err
			}
			s.values = []fpoint{p}
		case "histogram":
			p, err := sc.hpoint()
			if err != nil {
				return s, err
			}
			s.histograms = []hpoint{p}
		case "values":
			if err := sc.list(func() error {
				p, err := sc.fpoint()
				s.values = append(s.values, p)
				return err
			}); err != nil {
				return s, err
			}
		case "histograms":
			if err := sc.list(func() error {
				p, err := sc.hpoint()
				s.histograms = append(s.histograms, p)
				return err
			}); err != nil {
				return s, err
			}
		default:
			if _, err := sc.value(); err != nil {
				return s, err
			}
		}
		more, err := sc.next('}')
		if err != nil {
			return s, err
		}
		if !more {
			return s, nil
		}
	}
}

// list reads [elem, ...], calling elem for each.
func (sc *seriesScanner) list(elem func() error) error {
	if err := sc.expect('['); err != nil {
		return err
	}
	if sc.empty(']') {
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		more, err := sc.next(']')
		if err != nil || !more {
			return err
		}
	}
}

// plainString returns the content of the JSON string s when it has no
// escapes (every value Prometheus writes: digits, a sign, "NaN", "Inf").
func plainString(s []byte) ([]byte, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return nil, false
	}
	c := s[1 : len(s)-1]
	if bytes.IndexByte(c, '\\') >= 0 {
		return nil, false
	}
	return c, true
}

// decodeResult decodes a successful answer of the query API.
//
// Under a CPU slot (sl, nil for none) the series are read with a
// checkpoint every cpuslot.TickEvery points.
func decodeResult(body []byte, sl *cpuslot.Slot) (*result, error) {
	resp, err := decodeEnvelope(body, sl)
	if err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("decode answer: status %q: %s", resp.Status, resp.Error)
	}
	data := resp.Data
	r := &result{resultType: data.ResultType, warnings: resp.Warnings, infos: resp.Infos}
	if len(data.Stats) > 0 && !bytes.Equal(data.Stats, []byte("null")) {
		r.stats = new(queryStats)
		if err := json.Unmarshal(data.Stats, r.stats); err != nil {
			return nil, fmt.Errorf("decode answer's stats: %w", err)
		}
	}
	switch data.ResultType {
	case "matrix", "vector":
		if data.Result.raw != nil {
			return nil, fmt.Errorf("decode %s: a result of series expected, got %.40s", data.ResultType, data.Result.raw)
		}
		r.series = make([]series, len(data.Result.series))
		for i, rs := range data.Result.series {
			s, err := decodeSeries(rs)
			if err != nil {
				return nil, fmt.Errorf("decode %s: %w", data.ResultType, err)
			}
			r.series[i] = s
		}
	case "scalar", "string":
		// Kept as written: Prometheus writes these with encoding/json
		// (promql.Scalar.MarshalJSON), not the codec of series.
		r.raw = data.Result.raw
	default:
		return nil, fmt.Errorf("decode answer: unknown result type %q", data.ResultType)
	}
	return r, nil
}

func decodeSeries(rs apiSeries) (series, error) {
	s := series{metric: rs.metric, floats: rs.values, hists: rs.histograms}
	if s.floats == nil {
		s.floats = []fpoint{}
	}
	var m map[string]string
	if err := json.Unmarshal(rs.metric, &m); err != nil {
		return s, fmt.Errorf("metric: %w", err)
	}
	s.lbls = labels.FromMap(m)
	return s, nil
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

// encodedSizeHint is about the size of r's encoding: 32 bytes a float
// point (`[1796678670.123,"12345.678"]` and a comma is 31), 256 a
// histogram's, its labels and a little per series, plus the raw value.
func (r *result) encodedSizeHint() int {
	n := 256 + len(r.raw)
	for _, s := range r.series {
		n += 32 + len(s.metric) + 32*len(s.floats) + 256*len(s.hists)
	}
	return n
}

// encodeSlot is encode under a CPU slot, which it checkpoints in every
// cpuslot.TickEvery points; it fails only if the slot's context ends
// while it waits for the slot.
func (r *result) encodeSlot(dst []byte, withStats bool, sl *cpuslot.Slot) ([]byte, error) {
	if dst == nil {
		// Sized once: appending a large answer to a growing slice
		// allocated about twice its size, a third of a heavy range
		// query's allocations in the frontend, and the garbage
		// collector's work is other tenants' latency (CPU slots in
		// docs/design.md).
		dst = make([]byte, 0, r.encodedSizeHint())
	}
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
	// Two passes: the points of each series are counted first and
	// joined into one array of that size (appending piece after piece
	// allocated about twice the answer, 15 % of a heavy 7-day query's
	// allocations in the frontend); a series of one piece keeps its
	// array.
	byMetric := make(map[string]int, n)
	var out []series
	type count struct{ parts, floats, hists int }
	var counts []count
	for _, p := range parts {
		for _, s := range p {
			i, ok := byMetric[string(s.metric)]
			if !ok {
				i = len(out)
				byMetric[string(s.metric)] = i
				out = append(out, series{metric: s.metric, lbls: s.lbls})
				counts = append(counts, count{})
			}
			c := &counts[i]
			c.parts++
			c.floats += len(s.floats)
			c.hists += len(s.hists)
		}
	}
	for _, p := range parts {
		for _, s := range p {
			i := byMetric[string(s.metric)]
			o, c := &out[i], counts[i]
			if c.parts == 1 {
				o.floats, o.hists = slices.Clip(s.floats), slices.Clip(s.hists)
				continue
			}
			if o.floats == nil && c.floats > 0 {
				o.floats = make([]fpoint, 0, c.floats)
			}
			if o.hists == nil && c.hists > 0 {
				o.hists = make([]hpoint, 0, c.hists)
			}
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
