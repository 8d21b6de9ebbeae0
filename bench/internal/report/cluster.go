package report

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/query"
)

// ClusterInput is everything one run of bench/cmd/clusterbench measured.
type ClusterInput struct {
	Date      time.Time
	Commit    string
	Machine   string
	Command   string
	Workload  string
	Series    int
	Hours     float64
	Shards    int
	Batch     int
	QueryRuns int
	// Runs, one per configuration, in the order measured. The first is
	// the baseline of every ratio and of the query results.
	Runs []ClusterRun
}

// ClusterRun is one configuration: a plain single node or a cluster.
type ClusterRun struct {
	// Result: CPU, RSS and disk are sums over the nodes; Queries were run
	// on node 1.
	load.Result
	Nodes int  `json:"nodes"`
	Plain bool `json:"plain"` // single-node mode, no cluster flags
	// Ring summarises the ring once ready (cluster.Ring.Summary).
	Ring         string  `json:"ring,omitempty"`
	ReadySeconds float64 `json:"ready_s"` // from the first start until ready
	// IdleCores is the nodes' CPU-s per second, summed, over a few
	// seconds after ready and before the load.
	IdleCores float64 `json:"idle_cores"`
	// CPUPerMillionAboveIdle is CPUPerMillion less IdleCores over the
	// same time: the work the load caused.
	CPUPerMillionAboveIdle float64 `json:"cpu_s_per_million_above_idle"`
	// NodeQueries is one round of the query set on each node, in node
	// order, for the checksums.
	NodeQueries [][]query.Result `json:"node_queries"`
}

// Label names the configuration in tables.
func (r ClusterRun) Label() string {
	if r.Plain {
		return "single node"
	}
	return fmt.Sprintf("%d-node cluster", r.Nodes)
}

// Grid is a table of text cells.
type Grid struct {
	Header []string
	Rows   [][]string
}

// Write writes g as a Markdown table; columns after the first are right
// aligned.
func (g Grid) Write(w io.Writer) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(g.Header, " | "))
	align := make([]string, len(g.Header))
	for i := range align {
		align[i] = "---:"
	}
	align[0] = "---"
	fmt.Fprintf(w, "|%s|\n", strings.Join(align, "|"))
	for _, r := range g.Rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
}

// ratio formats v / base as "1.23x"; "–" if either is missing.
func ratio(v, base float64) string {
	if base == 0 || math.IsNaN(v) || math.IsNaN(base) {
		return "–"
	}
	return fmt.Sprintf("%.2fx", v/base)
}

// IngestGrid is the ingest table of in: one column per run, each figure
// with its ratio to the first run.
func IngestGrid(in ClusterInput) Grid {
	g := Grid{Header: []string{""}}
	for _, r := range in.Runs {
		g.Header = append(g.Header, r.Label())
	}
	if len(in.Runs) == 0 {
		return g
	}
	base := in.Runs[0]
	row := func(name string, cell func(r ClusterRun) string) {
		cells := []string{name}
		for _, r := range in.Runs {
			cells = append(cells, cell(r))
		}
		g.Rows = append(g.Rows, cells)
	}
	withRatio := func(text string, v, b float64) string { return text + " (" + ratio(v, b) + ")" }
	row("accepted samples/s", func(r ClusterRun) string {
		return withRatio(fmt.Sprintf("%.0f", r.SamplesPerSec), r.SamplesPerSec, base.SamplesPerSec)
	})
	row("CPU-s per million samples, all nodes (first request to settled)", func(r ClusterRun) string {
		return withRatio(fmt.Sprintf("%.3f", r.CPUPerMillion), r.CPUPerMillion, base.CPUPerMillion)
	})
	row("CPU-s per million samples above idle, all nodes", func(r ClusterRun) string {
		return withRatio(fmt.Sprintf("%.3f", r.CPUPerMillionAboveIdle), r.CPUPerMillionAboveIdle, base.CPUPerMillionAboveIdle)
	})
	row("idle CPU before the load, cores, all nodes", func(r ClusterRun) string { return fmt.Sprintf("%.3f", r.IdleCores) })
	row("RSS after settling, all nodes", func(r ClusterRun) string {
		return withRatio(mib(r.RSSBytes), float64(r.RSSBytes), float64(base.RSSBytes))
	})
	row("peak RSS (VmHWM), all nodes", func(r ClusterRun) string {
		return withRatio(mib(r.HWMBytes), float64(r.HWMBytes), float64(base.HWMBytes))
	})
	row("data directories after settling, all nodes", func(r ClusterRun) string {
		return withRatio(fmt.Sprintf("%s, %.2f B/sample", mib(r.DiskBytes), r.DiskPerSample), float64(r.DiskBytes), float64(base.DiskBytes))
	})
	row("send time, s (retried requests)", func(r ClusterRun) string { return fmt.Sprintf("%.1f (%d)", r.SendSeconds, r.Retries) })
	row("settled after the load, s", func(r ClusterRun) string { return fmt.Sprintf("%.0f", r.SettleSeconds) })
	row("start until ready, s", func(r ClusterRun) string { return fmt.Sprintf("%.1f", r.ReadySeconds) })
	row("ring", func(r ClusterRun) string {
		if r.Ring == "" {
			return "–"
		}
		return r.Ring
	})
	return g
}

// QueryGrid is the query table of in: per query, the p50 and p99 latency
// on node 1 of every run with the p50's ratio to the first run, and
// whether every node of every run gave the first run's result.
func QueryGrid(in ClusterInput) Grid {
	g := Grid{Header: []string{"query: p50 / p99 ms on node 1"}}
	for _, r := range in.Runs {
		g.Header = append(g.Header, r.Label())
	}
	g.Header = append(g.Header, "results")
	if len(in.Runs) == 0 {
		return g
	}
	base := in.Runs[0]
	for j, bq := range base.Queries {
		cells := []string{bq.Name}
		for _, r := range in.Runs {
			if j >= len(r.Queries) || r.Queries[j].Err != "" {
				cells = append(cells, "error")
				continue
			}
			q := r.Queries[j]
			cells = append(cells, fmt.Sprintf("%.1f / %.1f (%s)", q.MedianS*1e3, q.P99S*1e3, ratio(q.MedianS, bq.MedianS)))
		}
		note, _ := queryNote(in, j)
		g.Rows = append(g.Rows, append(cells, note))
	}
	return g
}

// queryNote checks query j: every run's node-1 result and every node's
// round must carry the first run's checksum, without error.
func queryNote(in ClusterInput, j int) (note string, fail bool) {
	want := in.Runs[0].Queries[j]
	if want.Err != "" || want.Checksum == "" {
		return fmt.Sprintf("FAIL: %s on %s node 1: %s", want.Name, in.Runs[0].Label(), want.Err), true
	}
	var bad []string
	check := func(where string, qs []query.Result) {
		switch {
		case j >= len(qs):
			bad = append(bad, where+": not run")
		case qs[j].Err != "":
			bad = append(bad, where+": "+qs[j].Err)
		case qs[j].Checksum != want.Checksum:
			bad = append(bad, fmt.Sprintf("%s: %s (%d series)", where, qs[j].Checksum, qs[j].Series))
		}
	}
	for _, r := range in.Runs {
		check(r.Label()+" node 1", r.Queries)
		for k, qs := range r.NodeQueries {
			check(fmt.Sprintf("%s node %d round", r.Label(), k+1), qs)
		}
	}
	if len(bad) > 0 {
		return fmt.Sprintf("FAIL: want %s (%d series); %s", want.Checksum, want.Series, strings.Join(bad, "; ")), true
	}
	return fmt.Sprintf("same on every node (%s, %d series)", want.Checksum, want.Series), false
}

// ClusterFailed reports whether a query failed or gave another result
// on some node or cluster size than on the baseline.
func ClusterFailed(in ClusterInput) bool {
	if len(in.Runs) == 0 {
		return false
	}
	for j := range in.Runs[0].Queries {
		if _, fail := queryNote(in, j); fail {
			return true
		}
	}
	return false
}

// WriteClusterMarkdown writes the whole report of a clusterbench run.
func WriteClusterMarkdown(w io.Writer, in ClusterInput) {
	fmt.Fprintf(w, "# Myelin cluster overhead on one machine, %s, commit %s\n\n", in.Date.UTC().Format("2006-01-02 15:04 UTC"), in.Commit)
	fmt.Fprintf(w, "Command: `%s`\n\nMachine: %s\n\n", in.Command, in.Machine)
	samples := int64(0)
	if len(in.Runs) > 0 {
		samples = in.Runs[0].Samples
	}
	fmt.Fprintf(w, "Every node runs on this machine and talks over loopback, so these figures show what replication, "+
		"forwarding and fan-out cost, not how a cluster scales: more nodes share the same cores. "+
		"Each configuration starts fresh (new data directories and ports): a plain single node (no cluster flags) as the baseline, "+
		"then clusters of 1 (a one-node cluster: the same cluster code, one replica) and more nodes; nodes 2.. join node 1 "+
		"and the run waits until /ring reports the ring converged, every node active and every group led. "+
		"Tenancy is off on every node.\n\n")
	fmt.Fprintf(w, "Workload: %s, %d active series, %.3g h of 15 s scrapes ending at the start of the run (%d samples), "+
		"the same requests for every configuration, sent as remote write 1.0 by %d concurrent shards of %d samples per request, "+
		"round-robin over all nodes' /api/v1/push (5xx and 429 retried with backoff, as Prometheus does). "+
		"CPU and memory are read from /proc/PID of every node and summed. The nodes' idle CPU is measured for a few seconds before the load "+
		"(a cluster is never idle: Raft ticks and node heartbeats); CPU counts from the first request until all nodes settled "+
		"(in 3 s, under 0.05 CPU-s per node above 1.25 times the idle CPU, and no change on disk), in total and less the idle rate over that time. "+
		"Data directories are file sizes, preallocated Raft log segments included, so small loads look large on disk. "+
		"Ratios are against the first column, measured in the same run.\n\n",
		in.Workload, in.Series, in.Hours, samples, in.Shards, in.Batch)
	if ClusterFailed(in) {
		fmt.Fprintf(w, "**FAILED: some query results differ between nodes or configurations, or a query failed; see the results column.**\n\n")
	}
	IngestGrid(in).Write(w)
	fmt.Fprintf(w, "\nQueries: after the load settled, each query %d times on node 1 (the first run cold), p50 and p99 by nearest rank "+
		"(below 100 runs the p99 is the slowest run); then one round on every node. Results are checksummed in a canonical form "+
		"(series sorted, computed values to 9 significant digits, raw samples exact) and must equal the first column's on every node.\n\n", in.QueryRuns)
	QueryGrid(in).Write(w)
	fmt.Fprintln(w)
	if len(in.Runs) > 0 {
		for _, q := range in.Runs[0].Queries {
			fmt.Fprintf(w, "- %s: `%s`\n", q.Name, q.Query)
		}
	}
}
