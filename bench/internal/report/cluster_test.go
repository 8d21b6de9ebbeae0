package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/query"
)

// clusterInput is a baseline and a 3-node cluster that agree on two
// queries.
func clusterInput() ClusterInput {
	qs := func(scale float64, sums ...string) []query.Result {
		var out []query.Result
		for i, s := range sums {
			out = append(out, query.Result{Name: []string{"raw", "rate"}[i], Query: []string{"up[5m]", "rate(x[5m])"}[i],
				MedianS: scale * 0.010 * float64(i+1), P99S: scale * 0.020 * float64(i+1), Checksum: s, Series: 3})
		}
		return out
	}
	base := ClusterRun{Plain: true, Nodes: 1, Result: load.Result{SamplesPerSec: 1e6, CPUPerMillion: 2, RSSBytes: 100 << 20, HWMBytes: 150 << 20,
		DiskBytes: 10 << 20, DiskPerSample: 2.1, SendSeconds: 4.8, SettleSeconds: 3, Samples: 4_800_000, Queries: qs(1, "aaa", "bbb")}}
	base.NodeQueries = [][]query.Result{qs(1, "aaa", "bbb")}
	base.CPUPerMillionAboveIdle = 1.9
	three := ClusterRun{Nodes: 3, Ring: "4 groups, 3 voters each", ReadySeconds: 6.5, IdleCores: 0.17, CPUPerMillionAboveIdle: 3.8, Result: load.Result{SamplesPerSec: 2.5e5, CPUPerMillion: 7,
		RSSBytes: 300 << 20, HWMBytes: 450 << 20, DiskBytes: 30 << 20, DiskPerSample: 6.3, SendSeconds: 19.2, Retries: 4, SettleSeconds: 9,
		Samples: 4_800_000, Queries: qs(3, "aaa", "bbb")}}
	three.NodeQueries = [][]query.Result{qs(3, "aaa", "bbb"), qs(3, "aaa", "bbb"), qs(3, "aaa", "bbb")}
	return ClusterInput{Date: time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC), Commit: "abc1234", Machine: "test", Command: "make bench-cluster",
		Workload: "synthetic", Series: 20000, Hours: 1, Shards: 8, Batch: 2000, QueryRuns: 20, Runs: []ClusterRun{base, three}}
}

func TestIngestGrid(t *testing.T) {
	g := IngestGrid(clusterInput())
	require.Equal(t, []string{"", "single node", "3-node cluster"}, g.Header)
	want := map[string][]string{
		"accepted samples/s": {"1000000 (1.00x)", "250000 (0.25x)"},
		"CPU-s per million samples, all nodes (first request to settled)": {"2.000 (1.00x)", "7.000 (3.50x)"},
		"RSS after settling, all nodes":                                   {"100.0 MiB (1.00x)", "300.0 MiB (3.00x)"},
		"data directories after settling, all nodes":                      {"10.0 MiB, 2.10 B/sample (1.00x)", "30.0 MiB, 6.30 B/sample (3.00x)"},
		"send time, s (retried requests)":                                 {"4.8 (0)", "19.2 (4)"},
		"ring":                                                            {"–", "4 groups, 3 voters each"},
	}
	found := 0
	for _, r := range g.Rows {
		require.Len(t, r, 3)
		if w, ok := want[r[0]]; ok {
			require.Equal(t, w, r[1:], r[0])
			found++
		}
	}
	require.Equal(t, len(want), found)
	require.Empty(t, IngestGrid(ClusterInput{}).Rows)
}

func TestQueryGrid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(in *ClusterInput)
		want   string // the results cell of query "rate"
		fail   bool
	}{
		{"same everywhere", func(*ClusterInput) {}, "same on every node (bbb, 3 series)", false},
		{"node 2 differs", func(in *ClusterInput) { in.Runs[1].NodeQueries[1][1].Checksum = "ccc" },
			"FAIL: want bbb (3 series); 3-node cluster node 2 round: ccc (3 series)", true},
		{"node 1 of the cluster differs", func(in *ClusterInput) { in.Runs[1].Queries[1].Checksum = "ccc" },
			"FAIL: want bbb (3 series); 3-node cluster node 1: ccc (3 series)", true},
		{"error on a node", func(in *ClusterInput) {
			in.Runs[1].NodeQueries[2][1] = query.Result{Name: "rate", Err: "503 no leader"}
		},
			"FAIL: want bbb (3 series); 3-node cluster node 3 round: 503 no leader", true},
		{"node round missing", func(in *ClusterInput) { in.Runs[1].NodeQueries[0] = in.Runs[1].NodeQueries[0][:1] },
			"FAIL: want bbb (3 series); 3-node cluster node 1 round: not run", true},
		{"baseline failed", func(in *ClusterInput) { in.Runs[0].Queries[1] = query.Result{Name: "rate", Err: "timeout"} },
			"FAIL: rate on single node node 1: timeout", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := clusterInput()
			tc.change(&in)
			g := QueryGrid(in)
			require.Equal(t, []string{"query: p50 / p99 ms on node 1", "single node", "3-node cluster", "results"}, g.Header)
			require.Len(t, g.Rows, 2)
			require.Equal(t, tc.want, g.Rows[1][3])
			require.Equal(t, tc.fail, ClusterFailed(in))
		})
	}
	g := QueryGrid(clusterInput())
	require.Equal(t, []string{"raw", "10.0 / 20.0 (1.00x)", "30.0 / 60.0 (3.00x)", "same on every node (aaa, 3 series)"}, g.Rows[0])
}

func TestWriteClusterMarkdown(t *testing.T) {
	var b bytes.Buffer
	WriteClusterMarkdown(&b, clusterInput())
	md := b.String()
	require.Contains(t, md, "# Myelin cluster overhead on one machine, 2026-11-21 14:00 UTC, commit abc1234")
	require.Contains(t, md, "|  | single node | 3-node cluster |\n|---|---:|---:|\n| accepted samples/s | 1000000 (1.00x) | 250000 (0.25x) |")
	require.Contains(t, md, "- rate: `rate(x[5m])`")
	require.NotContains(t, md, "FAILED")
	require.Equal(t, 2+11+2+2, strings.Count(md, "|\n"), "header, separator and rows of both tables")
}
