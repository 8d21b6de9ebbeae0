package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
)

// samplesBody is a remote-write body of series name{i="0"} to
// name{i="n-1"}, each with a sample at every time of ts (value: the time
// in seconds).
func samplesBody(t testing.TB, name string, n int, ts []int64) []byte {
	t.Helper()
	return oooBody(t, name, n, ts, false)
}

// histogramsBody is samplesBody with a native histogram at every time
// instead of a sample.
func histogramsBody(t testing.TB, name string, n int, ts []int64) []byte {
	t.Helper()
	return oooBody(t, name, n, ts, true)
}

func oooBody(t testing.TB, name string, n int, ts []int64, hist bool) []byte {
	t.Helper()
	req := prompb.WriteRequest{}
	for k := range n {
		s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}, {Name: "i", Value: strconv.Itoa(k)}}}
		for _, t := range ts {
			if hist {
				// A counter histogram of t/1000 observations, one bucket.
				c := uint64(t / 1000)
				h := &histogram.Histogram{Count: c, Sum: float64(c), ZeroThreshold: 0.001, ZeroCount: c - 1,
					PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{1}}
				s.Histograms = append(s.Histograms, prompb.FromIntHistogram(t, h))
				continue
			}
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: t, Value: float64(t / 1000)})
		}
		req.Timeseries = append(req.Timeseries, s)
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// TestClusterOutOfOrder: on a three-node cluster (three groups of three
// replicas), a tenant with out_of_order_time_window in the runtime
// config writes samples and native histograms out of order, into open
// and sealed chunks, while a node is down; a tenant without one is
// refused them. The replicas
// end identical (the restarted node replays the entries), and every node
// answers every accepted sample.
func TestClusterOutOfOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(path, []byte("overrides:\n  late:\n    out_of_order_time_window: 10m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, 3, false, "-auth.multitenancy-enabled=true", "-runtime-config.file", path)
	c.startAll()
	nodes := c.nodes
	const series = 12
	// 130 samples every 15s (the open chunk cuts at 120), ending a
	// minute ago.
	end := time.Now().Add(-time.Minute).UnixMilli() / 1000 * 1000
	var inOrder []int64
	for k := range 130 {
		inOrder = append(inOrder, end-int64(129-k)*15_000)
	}
	for _, tenant := range []string{"late", "strict"} {
		push(t, nodes[0].http, tenant, samplesBody(t, "c", series, inOrder))
		push(t, nodes[0].http, tenant, histogramsBody(t, "h", series, inOrder))
	}
	c.kill(nodes[2])
	// Into the open chunk (the last 10 samples, 2m15s) and into the
	// sealed one, through both live nodes.
	ooo := [][]int64{{end - 7_000, end - 61_000}, {end - 9*60_000 - 1_000, end - 5*60_000 + 3_000}}
	for k, ts := range ooo {
		push(t, nodes[k].http, "late", samplesBody(t, "c", series, ts))
		push(t, nodes[k].http, "late", histogramsBody(t, "h", series, ts))
		for _, body := range [][]byte{samplesBody(t, "c", series, ts), histogramsBody(t, "h", series, ts)} {
			code, msg := clusterPush(nodes[k].http, "strict", body)
			if code != 400 || !strings.Contains(msg, "write: out-of-order sample") {
				t.Fatalf("out-of-order samples of a tenant without a window: %d %s", code, msg)
			}
		}
	}
	code, msg := clusterPush(nodes[1].http, "late", samplesBody(t, "c", series, []int64{end - 11*60_000}))
	if code != 400 || !strings.Contains(msg, "beyond the out-of-order time window of 10m") {
		t.Fatalf("a sample beyond the window: %d %s", code, msg)
	}
	c.start(nodes[2])
	waitReady(t, nodes[2].http)
	c.converge(nodes)
	for _, n := range nodes {
		for tenant, want := range map[string]float64{"late": series * (130 + 4), "strict": series * 130} {
			api := apiClient{name: "node " + n.id + " " + tenant, base: "http://" + n.http + "/api/v1", tenant: tenant}
			for _, name := range []string{"c", "h"} {
				q := fmt.Sprintf("sum(count_over_time(%s[1h] @ %s))", name, apiTime(end))
				if v, err := api.scalarValue(q); err != nil || v != want {
					t.Fatalf("%s: %s = %v, %v; want %v", api.name, q, v, err, want)
				}
			}
		}
	}
}
