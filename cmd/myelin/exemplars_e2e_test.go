package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// exemplarAnswer is /api/v1/query_exemplars's data, as JSON text per
// series, sorted, so that answers of different nodes compare.
func exemplarAnswer(t *testing.T, addr, query string) (int, []string) {
	t.Helper()
	q := url.Values{"query": {query}, "start": {"0"}, "end": {"100000"}}
	code, body := do(t, "GET", "http://"+addr+"/api/v1/query_exemplars?"+q.Encode(), "", nil)
	if code != 200 {
		return code, []string{body}
	}
	var resp struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("query_exemplars: %v: %s", err, body)
	}
	var out []string
	for _, d := range resp.Data {
		out = append(out, string(d))
	}
	slices.Sort(out)
	return code, out
}

// TestClusterExemplars writes exemplars and metadata through one node of
// a three-node cluster: every node answers /api/v1/query_exemplars and
// /api/v1/metadata with all of them, reading the groups other nodes lead
// over the cluster, and after kill -9 of every node and a restart the
// acknowledged exemplars are all back (replayed from the Raft logs and
// checkpoints).
func TestClusterExemplars(t *testing.T) {
	c := newCluster(t, 3, false, "-ingester.max-global-exemplars-per-user=1000")
	c.startAll()
	const n = 30
	req := prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "ex_total", Help: "Exemplar test counter.", Unit: "requests"},
	}}
	for i := range n {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:    []prompb.Label{{Name: "__name__", Value: "ex_total"}, {Name: "i", Value: fmt.Sprint(i)}},
			Samples:   []prompb.Sample{{Timestamp: 10_000, Value: float64(i)}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: fmt.Sprintf("trace-%d", i)}}, Value: float64(i), Timestamp: 10_000}},
		})
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	body := snappy.Encode(nil, b)
	_, addr, _ := c.pick(0)
	poll(t, 30*time.Second, 100*time.Millisecond, "the write acknowledged", func() (bool, string) {
		code, msg := do(t, "POST", "http://"+addr+"/api/v1/push", "", body)
		return code == 204, fmt.Sprint(code, " ", msg)
	})
	var want []string
	check := func(when string) {
		for i := range c.nodes {
			_, addr, _ := c.pick(i)
			poll(t, 30*time.Second, 200*time.Millisecond, when+": exemplars through node "+c.nodes[i].id, func() (bool, string) {
				code, got := exemplarAnswer(t, addr, `ex_total`)
				if code != 200 || len(got) != n {
					return false, fmt.Sprint(code, " ", len(got), " series: ", got)
				}
				if want == nil {
					want = got
				}
				return slices.Equal(got, want), fmt.Sprint(got)
			})
			code, md := do(t, "GET", "http://"+addr+"/api/v1/metadata", "", nil)
			const wantMD = `{"status":"success","data":{"ex_total":[{"type":"counter","unit":"requests","help":"Exemplar test counter."}]}}`
			if code != 200 || md != wantMD+"\n" {
				t.Fatalf("%s: metadata through node %s: %d %s, want %s", when, c.nodes[i].id, code, md, wantMD)
			}
		}
	}
	check("after the write")
	if want[0] != `{"seriesLabels":{"__name__":"ex_total","i":"0"},"exemplars":[{"labels":{"trace_id":"trace-0"},"value":"0","timestamp":10}]}` {
		t.Fatalf("first series: %s", want[0])
	}
	for _, nd := range c.nodes {
		c.kill(nd)
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	for _, nd := range c.nodes {
		waitReady(t, nd.http)
	}
	check("after kill -9 of every node")
}
