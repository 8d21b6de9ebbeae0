package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file is a small client of the Prometheus HTTP API for the
// end-to-end tests, which ask Prometheus and myelin the same questions and
// compare the answers.

// apiClient queries one Prometheus-compatible API.
type apiClient struct {
	name   string // for messages: "prometheus" or "myelin"
	base   string // e.g. http://127.0.0.1:9090/api/v1
	tenant string // X-Scope-OrgID; empty sends none
	token  string // sent as Authorization: Bearer, as Grafana does; empty sends none
}

var e2eHTTP = &http.Client{Timeout: 20 * time.Second}

// get calls path (e.g. "/query") with params and returns the data of a
// successful answer.
func (c apiClient) get(path string, params url.Values) (json.RawMessage, error) {
	u := c.base + path + "?" + params.Encode()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return nil, err
	}
	if c.tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.tenant)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := e2eHTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: GET %s: %w", c.name, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: GET %s: read body: %w", c.name, u, err)
	}
	var r struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("%s: GET %s: status %d: %s", c.name, u, resp.StatusCode, truncate(b))
	}
	return r.Data, nil
}

// point is one sample as the API shows it: the timestamp in milliseconds
// and the value exactly as formatted ("NaN", "-0", "+Inf", ...).
type point struct {
	tMillis int64
	value   string
}

func (p point) String() string { return fmt.Sprintf("%d:%s", p.tMillis, p.value) }

// result is a query result by series: the key is the label set written
// as {a="1",b="2"} (sorted); a scalar is the series "scalar".
type result map[string][]point

// query evaluates an instant query at tMillis.
func (c apiClient) query(q string, tMillis int64) (result, error) {
	return c.queryParams("/query", url.Values{"query": {q}, "time": {apiTime(tMillis)}})
}

// queryRange evaluates a range query.
func (c apiClient) queryRange(q string, startMillis, endMillis int64, step time.Duration) (result, error) {
	return c.queryParams("/query_range", url.Values{
		"query": {q}, "start": {apiTime(startMillis)}, "end": {apiTime(endMillis)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	})
}

func (c apiClient) queryParams(path string, params url.Values) (result, error) {
	data, err := c.get(path, params)
	if err != nil {
		return nil, err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: decode %s result: %w", c.name, path, err)
	}
	res := result{}
	switch d.ResultType {
	case "matrix":
		var m []struct {
			Metric map[string]string    `json:"metric"`
			Values [][2]json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal(d.Result, &m); err != nil {
			return nil, fmt.Errorf("%s: decode matrix: %w", c.name, err)
		}
		for _, s := range m {
			k := labelsKey(s.Metric)
			if _, dup := res[k]; dup {
				return nil, fmt.Errorf("%s: series %s twice in one result", c.name, k)
			}
			res[k] = []point{}
			for _, v := range s.Values {
				p, err := parsePoint(v)
				if err != nil {
					return nil, fmt.Errorf("%s: series %s: %w", c.name, k, err)
				}
				res[k] = append(res[k], p)
			}
		}
	case "vector":
		var v []struct {
			Metric map[string]string  `json:"metric"`
			Value  [2]json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return nil, fmt.Errorf("%s: decode vector: %w", c.name, err)
		}
		for _, s := range v {
			p, err := parsePoint(s.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			k := labelsKey(s.Metric)
			if _, dup := res[k]; dup {
				return nil, fmt.Errorf("%s: series %s twice in one result", c.name, k)
			}
			res[k] = []point{p}
		}
	case "scalar":
		var v [2]json.RawMessage
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return nil, fmt.Errorf("%s: decode scalar: %w", c.name, err)
		}
		p, err := parsePoint(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		res["scalar"] = []point{p}
	default:
		return nil, fmt.Errorf("%s: unexpected result type %q", c.name, d.ResultType)
	}
	return res, nil
}

// series returns the label sets of the series matching match in
// [startMillis, endMillis], as labelsKey keys.
func (c apiClient) series(match string, startMillis, endMillis int64) (map[string]bool, error) {
	data, err := c.get("/series", url.Values{"match[]": {match}, "start": {apiTime(startMillis)}, "end": {apiTime(endMillis)}})
	if err != nil {
		return nil, err
	}
	var ls []map[string]string
	if err := json.Unmarshal(data, &ls); err != nil {
		return nil, fmt.Errorf("%s: decode series: %w", c.name, err)
	}
	keys := map[string]bool{}
	for _, l := range ls {
		keys[labelsKey(l)] = true
	}
	return keys, nil
}

// scalarValue evaluates q at the current time and returns the value of
// its only series, or NaN if it has none.
func (c apiClient) scalarValue(q string) (float64, error) {
	res, err := c.query(q, time.Now().UnixMilli())
	if err != nil {
		return 0, err
	}
	for _, pts := range res {
		if len(res) != 1 || len(pts) != 1 {
			return 0, fmt.Errorf("%s: %s: want one value, got %v", c.name, q, res)
		}
		return strconv.ParseFloat(pts[0].value, 64)
	}
	return math.NaN(), nil
}

// apiTime formats milliseconds as the API's seconds with a fraction.
func apiTime(tMillis int64) string {
	return fmt.Sprintf("%d.%03d", tMillis/1000, tMillis%1000)
}

// parsePoint decodes [seconds, "value"]. Timestamps have millisecond
// precision, which a float64 of seconds holds exactly enough to round.
func parsePoint(v [2]json.RawMessage) (point, error) {
	secs, err := strconv.ParseFloat(string(v[0]), 64)
	if err != nil {
		return point{}, fmt.Errorf("bad timestamp %s: %w", v[0], err)
	}
	var s string
	if err := json.Unmarshal(v[1], &s); err != nil {
		return point{}, fmt.Errorf("bad value %s: %w", v[1], err)
	}
	return point{tMillis: int64(math.Round(secs * 1000)), value: s}, nil
}

func labelsKey(m map[string]string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", n, m[n])
	}
	b.WriteByte('}')
	return b.String()
}

// window keeps the points in [startMillis, endMillis] and drops series
// left without any.
func (r result) window(startMillis, endMillis int64) result {
	out := result{}
	for k, pts := range r {
		var kept []point
		for _, p := range pts {
			if p.tMillis >= startMillis && p.tMillis <= endMillis {
				kept = append(kept, p)
			}
		}
		if len(kept) > 0 {
			out[k] = kept
		}
	}
	return out
}

// sent returns r as remote write 1.0 delivers it: -0 arrives as 0,
// because Prometheus's gogo-generated prompb.Sample.Marshal omits a Value
// that == 0 (so -0 too) and the receiver decodes the missing field as +0.
// (Myelin keeps -0 when it is on the wire.)
func (r result) sent() result {
	out := make(result, len(r))
	for k, pts := range r {
		out[k] = make([]point, len(pts))
		for i, p := range pts {
			if p.value == "-0" {
				p.value = "0"
			}
			out[k][i] = p
		}
	}
	return out
}

func (r result) samples() int {
	n := 0
	for _, pts := range r {
		n += len(pts)
	}
	return n
}

// diffResults lists how got differs from want (at most max lines, then a
// count of the rest); nil means identical, or, if approx, equal but for
// rounding (see approxEqual).
func diffResults(wantName string, want result, gotName string, got result, max int, approx bool) []string {
	var diffs []string
	for _, k := range sortedKeys(want) {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: in %s (%d samples), missing in %s", k, wantName, len(want[k]), gotName))
		case !slices.Equal(want[k], g) && !(approx && slices.EqualFunc(want[k], g, approxEqual)):
			diffs = append(diffs, fmt.Sprintf("%s: samples differ:\n\t%s: %s\n\t%s: %s", k, wantName, pointsDiff(want[k], g), gotName, pointsDiff(g, want[k])))
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: in %s (%d samples: %s), not in %s", k, gotName, len(got[k]), pointsDiff(got[k], nil), wantName))
		}
	}
	if len(diffs) > max {
		diffs = append(diffs[:max], fmt.Sprintf("... and %d more differences", len(diffs)-max))
	}
	return diffs
}

// approxEqual reports whether two computed points are at the same time
// and have the same value up to a relative 1e-12. PromQL 3.x sums with
// Kahan compensation where 2.42 adds plainly, so aggregates may differ
// in the last bits (0.09 against 0.09000000000000001).
func approxEqual(a, b point) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseFloat(a.value, 64)
	y, err2 := strconv.ParseFloat(b.value, 64)
	if a.tMillis != b.tMillis || err1 != nil || err2 != nil || math.IsInf(x, 0) || math.IsInf(y, 0) {
		return false
	}
	return math.Abs(x-y) <= 1e-12*max(math.Abs(x), math.Abs(y))
}

// pointsDiff shows a from the first point where it differs from b, up
// to 8 points.
func pointsDiff(a, b []point) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	var s []string
	if i > 0 {
		s = append(s, fmt.Sprintf("[%d equal]", i))
	}
	for j := i; j < len(a) && j < i+8; j++ {
		s = append(s, a[j].String())
	}
	if len(a) > i+8 {
		s = append(s, fmt.Sprintf("[%d more]", len(a)-i-8))
	}
	if i == len(a) {
		s = append(s, "[end]")
	}
	return strings.Join(s, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
