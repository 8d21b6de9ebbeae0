package report

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/bench/internal/chunkmeasure"
	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/query"
)

const goBenchOut = `goos: linux
BenchmarkEngineApply/myelin-2         	       1	 590544755 ns/op	       246.1 ns/sample	   4064044 samples/s	68531728 B/op	  266409 allocs/op
BenchmarkEngineApply/prometheus-2     	       1	 805029219 ns/op	       335.4 ns/sample	   2981258 samples/s	18170320 B/op	  148340 allocs/op
BenchmarkEngineHeadBytes/myelin-2     	       1	 715649847 ns/op	       884.5 head-bytes/series
BenchmarkEngineHeadBytes/prometheus-2 	       1	1119084317 ns/op	      1754 head-bytes/series
BenchmarkEngineSelect/myelin/1series/1h-2         	       1	    107851 ns/op	       240.0 samples/op	   2225292 samples/s
BenchmarkEngineSelect/prometheus/1series/1h-2     	       1	     62537 ns/op	       240.0 samples/op	   3837728 samples/s
BenchmarkEngineDisk/myelin-2                      	       1	1584623318 ns/op	         1.001 disk-bytes/sample
BenchmarkEngineDisk/prometheus-2                  	       1	1842431249 ns/op	         1.264 block-bytes/sample	         3.908 disk-bytes/sample
BenchmarkEngineDisk/new/myelin-2                  	       1	1584623318 ns/op	         1.101 disk-bytes/sample	 0.9 data-bytes/sample	 7.5 raw-bytes/sample
BenchmarkEngineDisk/new/prometheus-2                  	       1	1842431249 ns/op	         2.6 disk-bytes/sample	 1.26 data-bytes/sample
BenchmarkEngineRestart/myelin-2  1  100 ns/op  2.5 restart-s  300 ns/series
BenchmarkEngineRestart/prometheus-2  1  100 ns/op  5.0 restart-s  600 ns/series
BenchmarkChunkEncode/xor-2  10 100 ns/op
PASS
`

func TestParseGoBenchAndPairs(t *testing.T) {
	lines, err := ParseGoBench(strings.NewReader(goBenchOut))
	require.NoError(t, err)
	require.Len(t, lines, 13)
	require.Equal(t, "EngineSelect/myelin/1series/1h", lines[4].Name)
	require.Equal(t, 246.1, lines[0].Metrics["ns/sample"])

	got := Pairs(lines)
	require.Equal(t, []Pair{
		{"EngineApply", "ns/sample", 246.1, 335.4},
		{"EngineHeadBytes", "head-bytes/series", 884.5, 1754},
		{"EngineSelect/1series/1h", "ns/op", 107851, 62537},
		{"EngineDisk", "disk-bytes/sample", 1.001, 3.908},
		{"EngineDisk", "disk-bytes/sample vs blocks", 1.001, 1.264},
		{"EngineDisk/new", "disk-bytes/sample", 1.101, 2.6},
		{"EngineDisk/new", "data-bytes/sample", 0.9, 1.26},
		{"EngineRestart", "restart-s", 2.5, 5.0},
	}, got)
}

func TestRowRatio(t *testing.T) {
	for _, tc := range []struct {
		name  string
		row   Row
		ratio float64
		ahead bool
	}{
		{"lower is better, ahead", Row{Myelin: 1, Prometheus: 2}, 0.5, true},
		{"lower is better, behind", Row{Myelin: 3, Prometheus: 2}, 1.5, false},
		{"higher is better, ahead", Row{Myelin: 3, Prometheus: 2, HigherIsBetter: true}, 1.5, true},
		{"no Prometheus figure", Row{Myelin: 3}, math.NaN(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if math.IsNaN(tc.ratio) {
				require.True(t, math.IsNaN(tc.row.Ratio()))
			} else {
				require.InDelta(t, tc.ratio, tc.row.Ratio(), 1e-12)
			}
			require.Equal(t, tc.ahead, tc.row.Ahead())
		})
	}
}

func sampleInput() Input {
	res := func(name string, k float64, sum string) load.Result {
		return load.Result{Name: name, Series: 1000, Samples: 480000, SamplesPerSec: 1e5 * k, CPUPerMillion: 2 * k,
			RSSBytes: 100 << 20, HWMBytes: 120 << 20, RSSPerSeries: 1000 * k, HWMPerSeries: 1200 * k,
			DiskBytes: 1 << 20, DiskPerSample: 2 * k,
			Rate: []load.RatePoint{{Seconds: 1, SamplesPerSec: 1e5}, {Seconds: 2, SamplesPerSec: 2e5 * k}},
			Queries: []query.Result{
				{Name: "labels", MedianS: 0.001 * k, MaxS: 0.002, Checksum: "aaa", Series: 3},
				{Name: "sum", MedianS: 0.1 * k, MaxS: 0.2, Checksum: sum, Series: 3},
			}}
	}
	return Input{
		Date: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), Commit: "abc1234", Machine: "test", Command: "make bench",
		Workload: "replay", Hours: 2, Shards: 4, Batch: 2000, PrometheusVersion: "prometheus, version 2.42.0",
		Myelin: res("myelin", 1, "bbb"), Prometheus: res("prometheus", 2, "ccc"), PrometheusBlockBytes: 480000, MyelinEngineBytes: 240000, MyelinStoppedBytes: 1 << 20,
		Engine:    []Pair{{"EngineApply", "ns/sample", 1, 2}},
		EngineRaw: "BenchmarkEngineApply/myelin-2 1 1 ns/op\n",
		Chunks: []chunkmeasure.Row{
			{Dataset: "overall", Encoding: "prom-xor", ChunkSamples: 120, BytesPerSample: 1.25, EncodeNsPerSample: 20, DecodeNsPerSample: 15},
			{Dataset: "overall", Encoding: "pack", ChunkSamples: 1024, BytesPerSample: 0.46, EncodeNsPerSample: 30, DecodeNsPerSample: 10},
			{Dataset: "recorded/node_1s", Encoding: "pack", ChunkSamples: 1024, BytesPerSample: 0.3},
		},
	}
}

func TestRows(t *testing.T) {
	rows := Rows(sampleInput())
	byMetric := map[string]Row{}
	for _, r := range rows {
		byMetric[r.Metric] = r
	}
	require.Len(t, byMetric, len(rows), "metric names are unique")
	ingest := byMetric["ingest: accepted samples/s"]
	require.True(t, ingest.HigherIsBetter)
	require.False(t, ingest.Ahead())
	require.True(t, byMetric["ingest: server CPU-s per million samples"].Ahead())
	rest := byMetric["disk bytes per sample at rest: Myelin's engine vs Prometheus's block"]
	require.Equal(t, 1.0, rest.Prometheus)
	require.Equal(t, 0.5, rest.Myelin)
	require.Contains(t, rest.Note, "1.0 MiB")

	labels := byMetric["query labels: median latency, ms"]
	require.False(t, labels.Fail)
	require.Contains(t, labels.Note, "same result")
	sum := byMetric["query sum: median latency, ms"]
	require.True(t, sum.Fail)
	require.Contains(t, sum.Note, "results differ")
	require.True(t, Failed(rows))

	require.Contains(t, byMetric, "engine EngineApply, ns/sample")
	require.InDelta(t, 0.46/1.25, byMetric["chunks: pack at 1024 samples vs Prometheus XOR at 120, bytes/sample"].Ratio(), 1e-12)
}

func TestWriteMarkdownAndPlots(t *testing.T) {
	in := sampleInput()
	dir := t.TempDir()
	png, err := WritePlots(dir, "x", "png", in)
	require.NoError(t, err)
	require.Len(t, png, 3)
	b, err := os.ReadFile(filepath.Join(dir, png[0]))
	require.NoError(t, err)
	require.Equal(t, "\x89PNG", string(b[:4]))
	_, err = WritePlots(dir, "x", "gif", in)
	require.Error(t, err)

	plots, err := WritePlots(dir, "2026-11-21-abc1234", "svg", in)
	require.NoError(t, err)
	require.Equal(t, []string{"2026-11-21-abc1234-ingest.svg", "2026-11-21-abc1234-queries.svg", "2026-11-21-abc1234-encodings.svg"}, plots)
	for _, p := range plots {
		b, err := os.ReadFile(filepath.Join(dir, p))
		require.NoError(t, err)
		require.Contains(t, string(b), "<svg")
	}
	var md bytes.Buffer
	WriteMarkdown(&md, in, Rows(in), plots)
	s := md.String()
	require.Contains(t, s, "commit abc1234")
	require.Contains(t, s, "| ingest: accepted samples/s | 100000 | 200000 | 0.50x | no (higher is better) |")
	require.Contains(t, s, "FAILED")
	require.Contains(t, s, "![2026-11-21-abc1234-ingest](2026-11-21-abc1234-ingest.svg)")
}
