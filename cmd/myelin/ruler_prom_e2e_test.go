package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestE2ERecordingRulesMatchPrometheus: recording rules evaluated by
// Myelin's ruler over the data a real Prometheus remote-writes to it
// record, at every evaluation, what the same expression gives in that
// Prometheus over its own copy of the data at the same time. The group's
// query_offset keeps the evaluations behind the remote-write queue.
// Range selectors are left out: Prometheus 2.42 closes a range on the
// left and 3.x does not, so a sample exactly at the range's start would
// differ without either being wrong.
func TestE2ERecordingRulesMatchPrometheus(t *testing.T) {
	s := startE2E(t)
	rules := []struct{ record, expr string }{
		{"e2e:up:sum_by_job", `sum by (job) (up)`},
		// Not the recorded series, which only Myelin has.
		{"e2e:series:count_by_instance", `count by (instance) ({job="prometheus", __name__!~"e2e:.+"})`},
		{"e2e:up:relabeled", `label_replace(up, "x", "$1", "instance", "(.*):.*")`},
		{"e2e:latency:p90", `histogram_quantile(0.9, sum by (le) (prometheus_http_request_duration_seconds_bucket))`},
		{"e2e:special:max", `max by (kind) (e2e_special)`},
		{"e2e:up:offset", `sum(up offset 3s)`},
	}
	var group strings.Builder
	group.WriteString("name: compare\ninterval: 1s\nquery_offset: 5s\nrules:\n")
	for _, r := range rules {
		fmt.Fprintf(&group, "- record: %s\n  expr: %s\n", r.record, strconv.Quote(r.expr))
	}
	req, err := http.NewRequest("POST", "http://"+s.myelin.addr+"/api/v1/rules/e2e", strings.NewReader(group.String()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := e2eHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("set rule group: %d", resp.StatusCode)
	}

	my, prom := s.myelinAPI(), s.promAPI()
	// Ten evaluations of every rule.
	poll(t, 60*time.Second, 200*time.Millisecond, "ten evaluations of every rule", func() (bool, string) {
		for _, r := range rules {
			got, err := vectorOf(my, fmt.Sprintf("count_over_time(%s[1m])", r.record), time.Now().UnixMilli())
			if err != nil || len(got) == 0 || got[0].value < 10 {
				return false, fmt.Sprintf("%s: %v, %v", r.record, got, err)
			}
		}
		return true, ""
	})
	now := time.Now().UnixMilli()
	for _, r := range rules {
		recorded, err := matrixOf(my, r.record+"[1m]", now)
		if err != nil {
			t.Fatalf("%s: %v", r.record, err)
		}
		compared := 0
		for _, rs := range recorded {
			for _, p := range rs.points {
				want, err := vectorOf(prom, r.expr, p.t)
				if err != nil {
					t.Fatalf("prometheus: %s at %d: %v", r.expr, p.t, err)
				}
				var found *sampleOf
				for i := range want {
					if sameLabelsBut(want[i].labels, rs.labels, "__name__") {
						found = &want[i]
					}
				}
				if found == nil {
					t.Errorf("%s at %d: Myelin recorded %v = %v, Prometheus has no such series (%v)", r.record, p.t, rs.labels, p.value, want)
					continue
				}
				if !sameFloat(found.value, p.value) {
					t.Errorf("%s at %d, %v: Myelin recorded %v, Prometheus computes %v", r.record, p.t, rs.labels, p.value, found.value)
				}
				compared++
			}
		}
		if compared < 10 {
			t.Errorf("%s: %d samples compared, want at least 10", r.record, compared)
		}
		t.Logf("%s: %d recorded samples equal Prometheus's", r.record, compared)
	}
}

type sampleOf struct {
	labels map[string]string
	t      int64
	value  float64
}

type seriesOf struct {
	labels map[string]string
	points []sampleOf
}

func vectorOf(c apiClient, q string, tMillis int64) ([]sampleOf, error) {
	data, err := c.get("/query", url.Values{"query": {q}, "time": {apiTime(tMillis)}})
	if err != nil {
		return nil, err
	}
	var d struct {
		Result []struct {
			Metric map[string]string  `json:"metric"`
			Value  [2]json.RawMessage `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	var out []sampleOf
	for _, r := range d.Result {
		p, err := parsePoint(r.Value)
		if err != nil {
			return nil, err
		}
		v, err := strconv.ParseFloat(p.value, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, sampleOf{labels: r.Metric, t: p.tMillis, value: v})
	}
	return out, nil
}

func matrixOf(c apiClient, q string, tMillis int64) ([]seriesOf, error) {
	data, err := c.get("/query", url.Values{"query": {q}, "time": {apiTime(tMillis)}})
	if err != nil {
		return nil, err
	}
	var d struct {
		Result []struct {
			Metric map[string]string    `json:"metric"`
			Values [][2]json.RawMessage `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	var out []seriesOf
	for _, r := range d.Result {
		s := seriesOf{labels: r.Metric}
		for _, raw := range r.Values {
			p, err := parsePoint(raw)
			if err != nil {
				return nil, err
			}
			v, err := strconv.ParseFloat(p.value, 64)
			if err != nil {
				return nil, err
			}
			s.points = append(s.points, sampleOf{t: p.tMillis, value: v})
		}
		out = append(out, s)
	}
	return out, nil
}

// sameLabelsBut reports whether a and b are equal without the label
// except.
func sameLabelsBut(a, b map[string]string, except string) bool {
	n := 0
	for k, v := range a {
		if k == except {
			continue
		}
		if w, ok := b[k]; !ok || w != v {
			return false
		}
		n++
	}
	for k := range b {
		if k != except {
			n--
		}
	}
	return n == 0
}

// sameFloat: equal, both NaN, or within 1e-12 relative (2.42 and 3.x
// sum in different orders).
func sameFloat(a, b float64) bool {
	if a == b || math.IsNaN(a) && math.IsNaN(b) {
		return true
	}
	return math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}
