package report

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/myelindb/myelin/bench/internal/chunkmeasure"
	"github.com/myelindb/myelin/bench/internal/load"
)

// Input is everything one `make bench` measured.
type Input struct {
	Date     time.Time
	Commit   string
	Machine  string // CPU, cores, memory, OS
	Command  string // that reproduces the run
	Workload string
	Hours    float64
	Shards   int
	Batch    int
	// PrometheusVersion is the first line of the baseline's `--version`.
	PrometheusVersion string
	// Baseline names the server measured against Myelin: "" (Prometheus,
	// the default, what older reports hold) or "VictoriaMetrics". The
	// Prometheus fields below are the baseline's figures.
	Baseline string `json:",omitempty"`

	Myelin, Prometheus load.Result
	// MyelinStoppedBytes and MyelinEngineBytes: Myelin's data directory,
	// and its engine directory alone (the Raft log left out), after a
	// graceful stop, which checkpoints the engine; 0 if not measured.
	MyelinStoppedBytes, MyelinEngineBytes int64
	// PrometheusBlockBytes: the size of the block Prometheus's TSDB
	// snapshot wrote from its head (what its blocks take once compacted);
	// 0 if not taken.
	PrometheusBlockBytes int64

	Engine    []Pair // from bench/engine_bench_test.go
	EngineRaw string // its `go test -bench` output
	Chunks    []chunkmeasure.Row
}

// BaselineName is the name of the server measured against Myelin.
func (in Input) BaselineName() string {
	if in.Baseline == "" {
		return "Prometheus"
	}
	return in.Baseline
}

// Row is one line of the table: a figure of Myelin and of Prometheus.
type Row struct {
	Section            string // "load", "query", "engine", "chunks"
	Metric             string
	Myelin, Prometheus float64
	// MyelinText and PrometheusText are the raw figures as printed.
	MyelinText, PrometheusText string
	HigherIsBetter             bool
	Note                       string
	Fail                       bool // a correctness failure: results differ or a query failed
}

// Ratio is Myelin / Prometheus (NaN if either is missing).
func (r Row) Ratio() float64 {
	if r.Prometheus == 0 || math.IsNaN(r.Myelin) || math.IsNaN(r.Prometheus) {
		return math.NaN()
	}
	return r.Myelin / r.Prometheus
}

// Ahead reports whether Myelin's figure is the better one.
func (r Row) Ahead() bool {
	q := r.Ratio()
	if math.IsNaN(q) {
		return false
	}
	if r.HigherIsBetter {
		return q > 1
	}
	return q < 1
}

// Rows builds the table of in.
func Rows(in Input) []Row {
	m, p := in.Myelin, in.Prometheus
	num := func(format string, v float64) string { return fmt.Sprintf(format, v) }
	var rows []Row
	add := func(r Row) { rows = append(rows, r) }
	add(Row{Section: "load", Metric: "ingest: accepted samples/s", Myelin: m.SamplesPerSec, Prometheus: p.SamplesPerSec,
		MyelinText: num("%.0f", m.SamplesPerSec), PrometheusText: num("%.0f", p.SamplesPerSec), HigherIsBetter: true})
	add(Row{Section: "load", Metric: "ingest: server CPU-s per million samples", Myelin: m.CPUPerMillion, Prometheus: p.CPUPerMillion,
		MyelinText: num("%.3f", m.CPUPerMillion), PrometheusText: num("%.3f", p.CPUPerMillion),
		Note: "from the first request until settled"})
	add(Row{Section: "load", Metric: "RSS per active series, bytes (VmRSS after settling)", Myelin: m.RSSPerSeries, Prometheus: p.RSSPerSeries,
		MyelinText: fmt.Sprintf("%.0f (%s)", m.RSSPerSeries, mib(m.RSSBytes)), PrometheusText: fmt.Sprintf("%.0f (%s)", p.RSSPerSeries, mib(p.RSSBytes))})
	add(Row{Section: "load", Metric: "peak RSS per active series, bytes (VmHWM)", Myelin: m.HWMPerSeries, Prometheus: p.HWMPerSeries,
		MyelinText: fmt.Sprintf("%.0f (%s)", m.HWMPerSeries, mib(m.HWMBytes)), PrometheusText: fmt.Sprintf("%.0f (%s)", p.HWMPerSeries, mib(p.HWMBytes))})
	diskNote, restMetric, restNote := "Myelin: Raft log + Pebble; Prometheus: WAL + head chunks (no block is cut before the head spans 3 h)",
		"disk bytes per sample at rest: Myelin's engine vs Prometheus's block",
		"Prometheus: the block its TSDB snapshot cuts from the head, WAL not counted"
	if in.Baseline == VictoriaMetrics {
		diskNote, restMetric, restNote = "Myelin: Raft log + Pebble; VictoriaMetrics: its storage directory, its caches not counted",
			"disk bytes per sample at rest: Myelin's engine vs VictoriaMetrics' storage",
			"VictoriaMetrics: its storage directory after a graceful stop, its saved caches (cache/) not counted"
	}
	add(Row{Section: "load", Metric: "disk bytes per sample after settling, as on disk", Myelin: m.DiskPerSample, Prometheus: p.DiskPerSample,
		MyelinText: fmt.Sprintf("%.3f (%s)", m.DiskPerSample, mib(m.DiskBytes)), PrometheusText: fmt.Sprintf("%.3f (%s)", p.DiskPerSample, mib(p.DiskBytes)),
		Note: diskNote})
	if in.PrometheusBlockBytes > 0 && in.MyelinEngineBytes > 0 && m.Samples > 0 && p.Samples > 0 {
		a := float64(in.MyelinEngineBytes) / float64(m.Samples)
		b := float64(in.PrometheusBlockBytes) / float64(p.Samples)
		add(Row{Section: "load", Metric: restMetric, Myelin: a, Prometheus: b,
			MyelinText: fmt.Sprintf("%.3f (%s)", a, mib(in.MyelinEngineBytes)), PrometheusText: fmt.Sprintf("%.3f (%s)", b, mib(in.PrometheusBlockBytes)),
			Note: fmt.Sprintf("Myelin: engine directory after a graceful stop (checkpointed; whole data dir then %s, Raft log included); %s",
				mib(in.MyelinStoppedBytes), restNote)})
	}
	byName := map[string]int{}
	for i, q := range p.Queries {
		byName[q.Name] = i
	}
	for _, mq := range m.Queries {
		i, ok := byName[mq.Name]
		if !ok {
			continue
		}
		pq := p.Queries[i]
		r := Row{Section: "query", Metric: "query " + mq.Name + ": median latency, ms", Myelin: mq.MedianS * 1e3, Prometheus: pq.MedianS * 1e3,
			MyelinText: fmt.Sprintf("%.1f (max %.1f)", mq.MedianS*1e3, mq.MaxS*1e3), PrometheusText: fmt.Sprintf("%.1f (max %.1f)", pq.MedianS*1e3, pq.MaxS*1e3)}
		switch {
		case mq.Err != "" || pq.Err != "":
			r.Fail, r.Note = true, "FAIL: "+strings.TrimSpace(mq.Err+" "+pq.Err)
		case mq.Checksum != pq.Checksum && in.Baseline == VictoriaMetrics:
			// MetricsQL is not PromQL: VictoriaMetrics drops NaN samples
			// and computes rate() without extrapolation, by design. A
			// difference is said, not failed; Prometheus is the reference.
			r.Note = fmt.Sprintf("MetricsQL's answer differs from PromQL's (%s %d series, %s %d series)", mq.Checksum, mq.Series, pq.Checksum, pq.Series)
		case mq.Checksum != pq.Checksum:
			r.Fail, r.Note = true, fmt.Sprintf("FAIL: results differ (%s %d series, %s %d series)", mq.Checksum, mq.Series, pq.Checksum, pq.Series)
		default:
			r.Note = fmt.Sprintf("same result (%s, %d series)", mq.Checksum, mq.Series)
		}
		add(r)
	}
	for _, e := range in.Engine {
		add(Row{Section: "engine", Metric: "engine " + e.Name + ", " + e.Unit, Myelin: e.Myelin, Prometheus: e.Prometheus,
			MyelinText: short(e.Myelin), PrometheusText: short(e.Prometheus), HigherIsBetter: HigherIsBetter(e.Unit)})
	}
	var base *chunkmeasure.Row
	for i, c := range in.Chunks {
		if c.Dataset == chunkmeasure.OverallDataset && c.Encoding == "prom-xor" {
			base = &in.Chunks[i]
		}
	}
	if base != nil {
		for _, c := range in.Chunks {
			if c.Dataset != chunkmeasure.OverallDataset || c.Encoding != "pack" {
				continue
			}
			what := fmt.Sprintf("chunks: %s at %d samples vs Prometheus XOR at %d", c.Encoding, c.ChunkSamples, base.ChunkSamples)
			add(Row{Section: "chunks", Metric: what + ", bytes/sample", Myelin: c.BytesPerSample, Prometheus: base.BytesPerSample,
				MyelinText: num("%.3f", c.BytesPerSample), PrometheusText: num("%.3f", base.BytesPerSample)})
			add(Row{Section: "chunks", Metric: what + ", encode ns/sample", Myelin: c.EncodeNsPerSample, Prometheus: base.EncodeNsPerSample,
				MyelinText: num("%.1f", c.EncodeNsPerSample), PrometheusText: num("%.1f", base.EncodeNsPerSample)})
			add(Row{Section: "chunks", Metric: what + ", decode ns/sample", Myelin: c.DecodeNsPerSample, Prometheus: base.DecodeNsPerSample,
				MyelinText: num("%.1f", c.DecodeNsPerSample), PrometheusText: num("%.1f", base.DecodeNsPerSample)})
		}
	}
	return rows
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// short prints a benchmark figure with about 4 significant digits.
func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.4g", v)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.4g", v)
}

// Failed reports whether any row is a correctness failure.
func Failed(rows []Row) bool {
	for _, r := range rows {
		if r.Fail {
			return true
		}
	}
	return false
}

// VictoriaMetrics is Input.Baseline for a run against VictoriaMetrics.
const VictoriaMetrics = "VictoriaMetrics"

// WriteTable writes rows as a Markdown table: metric, Myelin, the
// baseline (named baseline), ratio, and whether Myelin is ahead.
func WriteTable(w io.Writer, baseline string, rows []Row) {
	fmt.Fprintf(w, "| | Myelin | %s | Myelin / %[1]s | Myelin ahead | note |\n", baseline)
	fmt.Fprintln(w, "|---|---:|---:|---:|:-:|---|")
	for _, r := range rows {
		ratio := "–"
		if q := r.Ratio(); !math.IsNaN(q) {
			ratio = fmt.Sprintf("%.2fx", q)
		}
		ahead := "no"
		if r.Ahead() {
			ahead = "yes"
		}
		if r.HigherIsBetter {
			ahead += " (higher is better)"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.Metric, r.MyelinText, r.PrometheusText, ratio, ahead, r.Note)
	}
}

// WriteMarkdown writes the whole report: what ran where, the table, the
// plots (file names relative to the report) and the raw engine output.
func WriteMarkdown(w io.Writer, in Input, rows []Row, plots []string) {
	fmt.Fprintf(w, "# Myelin vs %s, %s, commit %s\n\n", in.BaselineName(), in.Date.UTC().Format("2006-01-02 15:04 UTC"), in.Commit)
	fmt.Fprintf(w, "Command: `%s`\n\nMachine: %s\n\n", in.Command, in.Machine)
	if in.Baseline == VictoriaMetrics {
		fmt.Fprintf(w, "VictoriaMetrics: single-node %s, run with its own empty `-storageDataPath`, `-retentionPeriod=100y` "+
			"`-search.latencyOffset=0s` (by default it hides the newest 30 s from queries) `-search.disableCache` (its results cache would answer every run after the first, and aligns range queries to the step) "+
			"and `-inmemoryDataFlushInterval=1s` (acknowledged samples on disk within 1 s rather than 5 s; the load is followed by `/internal/force_flush`). ", in.PrometheusVersion)
	} else {
		fmt.Fprintf(w, "Prometheus: %s, run with `--web.enable-remote-write-receiver` and its own empty `--storage.tsdb.path`. ", in.PrometheusVersion)
	}
	fmt.Fprintf(w, "Myelin: a single node (one Raft group of one replica), tenant `bench` in X-Scope-OrgID.\n\n")
	fmt.Fprintf(w, "Workload: %s, %d active series, %.3g h of 15 s scrapes ending at the start of the run, sent in time order "+
		"as remote write 1.0 by %d concurrent shards of %d samples per request (%d samples). "+
		"Both servers got the same requests, one after the other, on the same machine. "+
		"CPU and memory are read from /proc/PID; every figure is a ratio measured in the same run, "+
		"because the machine is shared and absolute timings move by 20%% or more between runs.\n\n",
		in.Workload, in.Myelin.Series, in.Hours, in.Shards, in.Batch, in.Myelin.Samples)
	if Failed(rows) {
		fmt.Fprintf(w, "**FAILED: some query results differ between the two or failed; see the notes.**\n\n")
	}
	WriteTable(w, in.BaselineName(), rows)
	fmt.Fprintf(w, "\nQueries: run after both servers have ingested and settled, taking turns between the two run by run "+
		"(so both meet the same load from the machine's other tenants), 5 runs each by default, the first one cold; median and max. "+
		"The result of every run is checksummed in a canonical form "+
		"(series sorted, computed values to 9 significant digits, raw samples exact) and the two servers must agree. "+
		"Evaluation times sit 7.001 s off the scrape grid so that Prometheus 2.42's closed and 3.x's left-open range selectors pick the same samples.\n\n")
	if in.Baseline == VictoriaMetrics {
		fmt.Fprintf(w, "VictoriaMetrics answers MetricsQL, not PromQL: it drops NaN samples (Prometheus's own summaries have NaN quantiles) "+
			"and computes rate() without extrapolation, so its answers may differ; the notes say where. "+
			"Myelin's answers are checked against Prometheus by `make bench`.\n\n")
	}
	for _, q := range in.Myelin.Queries {
		fmt.Fprintf(w, "- %s: `%s`\n", q.Name, q.Query)
	}
	fmt.Fprintln(w)
	for _, p := range plots {
		fmt.Fprintf(w, "![%s](%s)\n\n", strings.TrimSuffix(strings.TrimSuffix(p, ".svg"), ".png"), p)
	}
	if in.EngineRaw != "" {
		fmt.Fprintf(w, "Engine benchmarks (bench/engine_bench_test.go: Myelin's engine and Prometheus's tsdb as libraries, same data):\n\n```\n%s```\n", in.EngineRaw)
	}
}
