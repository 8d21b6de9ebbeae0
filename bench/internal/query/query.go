package query

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Query is one API request.
type Query struct {
	Name   string // short, for tables and plots
	Path   string // below the API base, e.g. "/api/v1/query_range"
	Params url.Values
	// Exact: checksum values bit for bit (raw samples); otherwise to 9
	// significant digits (computed values).
	Exact bool
}

// evalOffsetMs moves evaluation times off the 15 s scrape grid (see the
// package doc).
const evalOffsetMs = 7001

// Set returns the fixed query set over the written window [startMs, endMs]
// (first and last scrape). instance is one host that has
// node_cpu_seconds_total. Range queries start 30 minutes into the window
// (or at its start if it is shorter) and step 60 s.
func Set(instance string, startMs, endMs int64) []Query {
	endEval := endMs + evalOffsetMs
	rangeStart := min(startMs+30*60*1000, endMs) + evalOffsetMs
	sec := func(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }
	instant := func(name, expr string, exact bool) Query {
		return Query{Name: name, Path: "/api/v1/query", Exact: exact,
			Params: url.Values{"query": {expr}, "time": {sec(endEval)}}}
	}
	// A dashboard's resolution: 1,440 points at most (Grafana's default
	// for a wide panel), never under a minute; 60 s for the default 2 h.
	step := max(int64(60), (endEval-rangeStart)/1000/1440)
	rng := func(name, expr string) Query {
		return Query{Name: name, Path: "/api/v1/query_range",
			Params: url.Values{"query": {expr}, "start": {sec(rangeStart)}, "end": {sec(endEval)}, "step": {strconv.FormatInt(step, 10)}}}
	}
	window := url.Values{"start": {sec(startMs)}, "end": {sec(endEval)}}
	with := func(v url.Values, k, val string) url.Values {
		v = maps(v)
		v.Set(k, val)
		return v
	}
	return []Query{
		instant("raw 30m of one host", fmt.Sprintf(`node_cpu_seconds_total{instance=%q}[30m]`, instance), true),
		rng("sum by instance (rate)", `sum by (instance) (rate(node_cpu_seconds_total[5m]))`),
		rng("sum by mode (rate)", `sum by (mode) (rate(node_cpu_seconds_total[5m]))`),
		rng("topk 5 of sum by instance", `topk(5, sum by (instance) (rate(node_cpu_seconds_total[5m])))`),
		rng("quantile_over_time", `quantile_over_time(0.9, node_memory_MemAvailable_bytes[30m])`),
		instant("count by job (all)", `count by (job) ({__name__=~".+"})`, true),
		instant("count (all)", `count({__name__=~".+"})`, true),
		rng("regex avg by job", `avg by (job) ({__name__=~"node_memory_.+_bytes"})`),
		instant("count_over_time 2h", `count_over_time(node_load15[2h])`, true),
		instant("raw 2h of one host", fmt.Sprintf(`node_load15{instance=%q}[2h]`, instance), true),
		{Name: "labels", Path: "/api/v1/labels", Params: window, Exact: true},
		{Name: "label values instance", Path: "/api/v1/label/instance/values", Params: window, Exact: true},
		{Name: "series cpu=1", Path: "/api/v1/series", Params: with(window, "match[]", `node_cpu_seconds_total{cpu="1"}`), Exact: true},
	}
}

func maps(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// Result is the outcome of one query's runs.
type Result struct {
	Name    string  `json:"name"`
	Query   string  `json:"query"`
	MedianS float64 `json:"median_s"`
	MaxS    float64 `json:"max_s"`
	// P99S is the 99th percentile by nearest rank: the ceil(0.99 n)-th
	// fastest of n runs, so the max below 100 runs.
	P99S     float64 `json:"p99_s"`
	Checksum string  `json:"checksum"` // of the canonical result; "" on error
	Series   int     `json:"series"`   // series, or names/values, in the result
	Err      string  `json:"error,omitempty"`
}

// Client runs queries against one API.
type Client struct {
	HTTP *http.Client
	// Base is the URL the API paths go below: http://host:port for
	// Prometheus, http://host:port/prometheus for Myelin.
	Base   string
	Tenant string // X-Scope-OrgID; empty sends none
}

// Run runs q runs times and returns the median and max latency and the
// checksum of the result, which must be the same in every run.
func (c Client) Run(ctx context.Context, q Query, runs int) Result {
	return RunInterleaved(ctx, []Client{c}, []Query{q}, runs)[0][0]
}

// RunInterleaved runs every query runs times on each client, taking turns
// run by run and rotating which client goes first, so that every client
// meets the same machine load (the machine is shared: two servers queried
// minutes apart see different neighbours). It returns the results per
// client, in the order of qs. A client's query stops at its first error.
func RunInterleaved(ctx context.Context, clients []Client, qs []Query, runs int) [][]Result {
	out := make([][]Result, len(clients))
	for k := range clients {
		out[k] = make([]Result, len(qs))
	}
	for j, q := range qs {
		times := make([][]float64, len(clients))
		for k := range clients {
			out[k][j] = Result{Name: q.Name, Query: describe(q)}
		}
		for i := range runs {
			for o := range clients {
				k := (i + o) % len(clients)
				res := &out[k][j]
				if res.Err != "" {
					continue
				}
				d, sum, n, err := clients[k].once(ctx, q)
				times[k] = append(times[k], d)
				switch {
				case err != nil:
					res.Err = err.Error()
				case i > 0 && sum != res.Checksum:
					res.Err = fmt.Sprintf("result changed between runs: %s then %s", res.Checksum, sum)
				default:
					res.Checksum, res.Series = sum, n
				}
			}
		}
		for k := range clients {
			if res := &out[k][j]; res.Err == "" {
				res.MedianS, res.MaxS, res.P99S = median(times[k]), slices.Max(times[k]), Percentile(times[k], 0.99)
			} else {
				res.Checksum = ""
			}
		}
	}
	return out
}

// describe returns the PromQL of q, or its path and matcher.
func describe(q Query) string {
	if e := q.Params.Get("query"); e != "" {
		return e
	}
	d := q.Path
	if m := q.Params.Get("match[]"); m != "" {
		d += "?match[]=" + m
	}
	return d
}

// once runs q and returns its latency and the checksum of its result.
func (c Client) once(ctx context.Context, q Query) (seconds float64, sum string, n int, err error) {
	t0 := time.Now()
	body, err := c.get(ctx, q)
	seconds = time.Since(t0).Seconds()
	if err != nil {
		return seconds, "", 0, err
	}
	sum, n, err = Checksum(body, q.Exact)
	return seconds, sum, n, err
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Percentile returns the p-th quantile (0 < p <= 1) of xs by nearest
// rank: the ceil(p n)-th smallest of n values; NaN if xs is empty.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func (c Client) get(ctx context.Context, q Query) ([]byte, error) {
	u := strings.TrimSuffix(c.Base, "/") + q.Path + "?" + q.Params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if c.Tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.Tenant)
	}
	// Every run is evaluated: Myelin's query frontend (as Mimir's) neither
	// reads nor writes its results cache for no-store, so later runs do
	// not measure the cache; Prometheus ignores the header.
	req.Header.Set("Cache-Control", "no-store")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", q.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %d %s", q.Path, resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 300)])))
	}
	return body, nil
}

// Checksum returns the hash (12 hex digits) of the canonical form of an
// API response body and the number of series (or strings) in it.
func Checksum(body []byte, exact bool) (string, int, error) {
	text, n, err := Canonical(body, exact)
	if err != nil {
		return "", 0, err
	}
	h := sha256.Sum256([]byte(text))
	return hex.EncodeToString(h[:6]), n, nil
}

// Canonical returns the canonical text of an API response body (see the
// package doc) and the number of series or strings in it.
func Canonical(body []byte, exact bool) (string, int, error) {
	var resp struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return "", 0, fmt.Errorf("decode response: %w", err)
	}
	if resp.Status != "success" {
		return "", 0, fmt.Errorf("response status %q: %s", resp.Status, resp.Error)
	}
	// Query results are an object with a result type; the other APIs
	// return a list of strings or of label sets.
	var qr struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	var series []struct {
		Metric map[string]string `json:"metric"`
		Value  []any             `json:"value"`
		Values [][]any           `json:"values"`
	}
	if len(resp.Data) > 0 && resp.Data[0] == '{' {
		if err := json.Unmarshal(resp.Data, &qr); err != nil {
			return "", 0, fmt.Errorf("decode query result: %w", err)
		}
		if qr.ResultType != "matrix" && qr.ResultType != "vector" {
			return "", 0, fmt.Errorf("result type %q: not supported", qr.ResultType)
		}
		if err := json.Unmarshal(qr.Result, &series); err != nil {
			return "", 0, fmt.Errorf("decode %s: %w", qr.ResultType, err)
		}
		lines := make([]string, 0, len(series))
		for _, s := range series {
			var b strings.Builder
			b.WriteString(labelString(s.Metric))
			pts := s.Values
			if s.Value != nil {
				pts = [][]any{s.Value}
			}
			for _, p := range pts {
				if len(p) != 2 {
					return "", 0, fmt.Errorf("sample %v: want [time, value]", p)
				}
				t, ok1 := p[0].(float64)
				v, ok2 := p[1].(string)
				if !ok1 || !ok2 {
					return "", 0, fmt.Errorf("sample %v: want [number, string]", p)
				}
				b.WriteByte(' ')
				b.WriteString(strconv.FormatInt(int64(math.Round(t*1000)), 10))
				b.WriteByte('=')
				b.WriteString(canonicalValue(v, exact))
			}
			lines = append(lines, b.String())
		}
		sort.Strings(lines)
		return qr.ResultType + "\n" + strings.Join(lines, "\n"), len(lines), nil
	}
	var strs []string
	if err := json.Unmarshal(resp.Data, &strs); err == nil {
		sort.Strings(strs)
		return "strings\n" + strings.Join(strs, "\n"), len(strs), nil
	}
	var sets []map[string]string
	if err := json.Unmarshal(resp.Data, &sets); err != nil {
		return "", 0, fmt.Errorf("decode data: not a query result, strings or label sets: %w", err)
	}
	lines := make([]string, len(sets))
	for i, s := range sets {
		lines[i] = labelString(s)
	}
	sort.Strings(lines)
	return "series\n" + strings.Join(lines, "\n"), len(lines), nil
}

func labelString(m map[string]string) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
	}
	b.WriteByte('}')
	return b.String()
}

func canonicalValue(v string, exact bool) string {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return v // "NaN", "+Inf" parse; anything else is kept as written
	}
	if exact {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', 9, 64)
}
