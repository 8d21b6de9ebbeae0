// Command clusterbench measures what running Myelin as a cluster costs on
// one machine: write throughput, CPU and memory under one remote-write
// load, and query latency, for a plain single node and for clusters of 1,
// 3 and 5 nodes (by default). All nodes run here and talk over loopback,
// so it shows overhead, not scale. It is what `make bench-cluster` runs:
//
//  1. Build the load once per configuration, the same requests every time
//     (same seed, same end time), before any node starts.
//  2. Start the configuration fresh in a temporary directory with new
//     ports (bench/internal/cluster): the plain single node (no cluster
//     flags, the baseline), then for each -nodes count a cluster whose
//     nodes join node 1; wait until its ring has converged.
//  3. Measure the nodes' idle CPU for -idle (a cluster is never idle:
//     Raft ticks, heartbeats). Send the load round-robin over all nodes'
//     /api/v1/push from -shards concurrent senders, retrying 5xx and 429
//     like Prometheus (bench/internal/load); wait until every node is
//     quiet (allowing for the idle CPU); sum the nodes' CPU time (first
//     request to settled, also less the idle rate over that time), RSS,
//     peak RSS (each node's own peak) and data directories.
//  4. Run the query set of bench/internal/query -query-runs times on node
//     1 (p50, p99), then once on every node.
//  5. Stop every node (SIGTERM, wait).
//  6. Print the tables; write bench/results/<date>-<commit>-cluster.md and
//     the raw figures as .json beside it (-from rewrites the report from
//     that .json without measuring).
//
// Every query result is checksummed; a result that differs between nodes
// or from the baseline's (the same data must give the same answers) is a
// failure: reported in the table, exit code 1.
//
//	go run ./bench/cmd/clusterbench -nodes 1,3,5 -series 20000 -hours 1
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/myelindb/myelin/bench/internal/cluster"
	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/query"
	"github.com/myelindb/myelin/bench/internal/report"
	"github.com/myelindb/myelin/internal/tsdata"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	var failed errFailed
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &failed):
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(2)
	}
}

// errFailed: the run finished and the report is written, but a query
// failed or its results differ.
type errFailed struct{ path string }

func (e errFailed) Error() string {
	return "query results differ between nodes or configurations, or a query failed; see " + e.path
}

type config struct {
	myelinBin         string
	nodes             []int
	baseline          bool
	workload, dataDir string
	series            int
	opts              load.Options
	queryRuns         int
	readyTimeout      time.Duration
	maxSettle         time.Duration
	idle              time.Duration
	nodeArgs          []string
	outDir, workDir   string
	keep              bool
	label             string
	from              string
	command           string
}

// parseFlags parses the command line.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("clusterbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nodes, nodeArgs string
	fs.StringVar(&cfg.myelinBin, "myelin", "bin/myelin", "Myelin binary (make build).")
	fs.StringVar(&nodes, "nodes", "1,3,5", "Cluster sizes to measure, comma-separated, in this order.")
	fs.BoolVar(&cfg.baseline, "baseline", true, "Also measure a plain single node (no cluster flags), first, as the baseline of the ratios; false makes the first cluster the baseline.")
	fs.StringVar(&cfg.workload, "workload", "", `"replay" (the shared data's label sets and values, copied per instance) or "synthetic"; default replay if the shared data is found.`)
	fs.StringVar(&cfg.dataDir, "data", tsdata.SharedDir(), "Shared data directory, for -workload replay.")
	fs.IntVar(&cfg.series, "series", 20000, "Active series.")
	fs.Float64Var(&cfg.opts.Hours, "hours", 1, "Hours of 15 s scrapes to backfill, ending at the start of the run.")
	fs.IntVar(&cfg.opts.Shards, "shards", 8, "Concurrent senders.")
	fs.IntVar(&cfg.opts.Batch, "batch", 2000, "Samples per request.")
	fs.Uint64Var(&cfg.opts.Seed, "seed", 1, "Random seed of the scrape jitter and synthetic values.")
	fs.IntVar(&cfg.queryRuns, "query-runs", 20, "Runs of every query on node 1 (p50, p99 by nearest rank).")
	fs.DurationVar(&cfg.readyTimeout, "ready-timeout", 2*time.Minute, "Wait at most this long for a cluster's ring to converge.")
	fs.DurationVar(&cfg.maxSettle, "max-settle", time.Minute, "Wait at most this long for the nodes to go quiet after the load.")
	fs.DurationVar(&cfg.idle, "idle", 5*time.Second, "Measure each configuration's idle CPU over this long before the load (0: not measured).")
	fs.StringVar(&nodeArgs, "node-args", "", "Extra flags for every node, space-separated.")
	fs.StringVar(&cfg.outDir, "out", "bench/results", "Directory of the reports.")
	fs.StringVar(&cfg.workDir, "work", "", "Directory for the nodes' data and logs (default: a new temporary directory, removed afterwards).")
	fs.BoolVar(&cfg.keep, "keep", false, "Keep the nodes' data directories and logs.")
	fs.StringVar(&cfg.label, "label", "cluster", "Appended to the report's file name: <date>-<commit>-<label>.md.")
	fs.StringVar(&cfg.from, "from", "", "Measure nothing: rewrite the report and table of a run from its .json.")
	fs.StringVar(&cfg.command, "command", "", "The command to print in the report (default: this one).")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.nodes, err = parseNodes(nodes); err != nil {
		return cfg, err
	}
	cfg.nodeArgs = strings.Fields(nodeArgs)
	var errs []error
	if cfg.series <= 0 {
		errs = append(errs, fmt.Errorf("-series %d: want > 0", cfg.series))
	}
	if cfg.opts.Hours <= 0 {
		errs = append(errs, fmt.Errorf("-hours %g: want > 0", cfg.opts.Hours))
	}
	if cfg.opts.Shards <= 0 || cfg.opts.Batch <= 0 {
		errs = append(errs, fmt.Errorf("-shards %d, -batch %d: want > 0", cfg.opts.Shards, cfg.opts.Batch))
	}
	if cfg.idle < 0 || cfg.maxSettle < 0 {
		errs = append(errs, fmt.Errorf("-idle %v, -max-settle %v: want >= 0", cfg.idle, cfg.maxSettle))
	}
	if cfg.queryRuns <= 0 {
		errs = append(errs, fmt.Errorf("-query-runs %d: want > 0", cfg.queryRuns))
	}
	if cfg.command == "" {
		cfg.command = strings.Join(append([]string{"go run ./bench/cmd/clusterbench"}, args...), " ")
	}
	return cfg, errors.Join(errs...)
}

// parseNodes parses a comma-separated list of cluster sizes: "1,3,5".
// An empty list is allowed (the baseline alone).
func parseNodes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-nodes %q: %q is not a node count >= 1", s, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.from != "" {
		b, err := os.ReadFile(cfg.from)
		if err != nil {
			return err
		}
		var in report.ClusterInput
		if err := json.Unmarshal(b, &in); err != nil {
			return fmt.Errorf("%s: %w", cfg.from, err)
		}
		return finish(stdout, cfg, in)
	}
	if !cfg.baseline && len(cfg.nodes) == 0 {
		return errors.New("nothing to measure: -nodes is empty and -baseline=false")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s clusterbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	in := report.ClusterInput{
		Date: time.Now(), Commit: report.Commit(), Machine: report.Machine(), Command: cfg.command,
		Series: cfg.series, Hours: cfg.opts.Hours, Shards: cfg.opts.Shards, Batch: cfg.opts.Batch, QueryRuns: cfg.queryRuns,
	}
	// Every configuration gets the same scrapes: one end time for all.
	cfg.opts.End = in.Date
	work := cfg.workDir
	if work == "" {
		if work, err = os.MkdirTemp("", "myelin-clusterbench-"); err != nil {
			return err
		}
		if !cfg.keep {
			defer os.RemoveAll(work)
		}
	}
	type setup struct {
		nodes int
		plain bool
	}
	var setups []setup
	if cfg.baseline {
		setups = append(setups, setup{1, true})
	}
	for _, n := range cfg.nodes {
		setups = append(setups, setup{n, false})
	}
	for i, s := range setups {
		dir := filepath.Join(work, fmt.Sprintf("%d-%s", i, label(s.nodes, s.plain)))
		r, workload, err := measure(ctx, cfg, dir, s.nodes, s.plain, logf)
		if err != nil {
			return err
		}
		in.Workload = workload
		in.Runs = append(in.Runs, r)
		if !cfg.keep {
			// The next configuration starts on an empty disk cache.
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
		}
	}
	return finish(stdout, cfg, in)
}

func label(nodes int, plain bool) string {
	if plain {
		return "single"
	}
	return strconv.Itoa(nodes) + "-nodes"
}

// measure builds the load, starts one configuration in dir, sends, settles,
// measures and queries it, and stops it.
func measure(ctx context.Context, cfg config, dir string, nodes int, plain bool, logf func(string, ...any)) (report.ClusterRun, string, error) {
	r := report.ClusterRun{Nodes: nodes, Plain: plain}
	name := r.Label()
	w, err := load.Named(cfg.workload, cfg.dataDir, cfg.series, cfg.opts.Seed)
	if err != nil {
		return r, "", err
	}
	t0 := time.Now()
	p := load.Build(w, cfg.opts, true)
	logf("%s: %s workload, %d series, %d samples, %d requests, built in %v", name, w.Name, p.Series, p.Samples, p.Requests, time.Since(t0).Round(time.Millisecond))
	c, err := cluster.Start(ctx, cluster.Options{
		Bin: cfg.myelinBin, Dir: dir, Nodes: nodes, Plain: plain, Args: cfg.nodeArgs,
		ReadyTimeout: cfg.readyTimeout, Log: func(f string, a ...any) { logf(name+": "+f, a...) },
	})
	if err != nil {
		return r, "", fmt.Errorf("%s: %w", name, err)
	}
	r.ReadySeconds = c.ReadyAfter.Seconds()
	if !plain {
		r.Ring = c.Ring.Summary()
	}
	logf("%s: ready after %.1f s; %s", name, r.ReadySeconds, r.Ring)
	if err := loadAndQuery(ctx, cfg, c, w.Instance, p, &r, logf); err != nil {
		return r, "", errors.Join(fmt.Errorf("%s: %w (logs in %s)", name, err, dir), c.Stop())
	}
	t1 := time.Now()
	if err := c.Stop(); err != nil {
		return r, "", fmt.Errorf("%s: %w", name, err)
	}
	logf("%s: stopped in %.1f s", name, time.Since(t1).Seconds())
	return r, w.Name, nil
}

// loadAndQuery measures c's idle CPU, sends p round-robin to c's nodes,
// waits for them to settle, measures them and runs the query set:
// -query-runs times on node 1 (r.Queries), once on each node
// (r.NodeQueries).
func loadAndQuery(ctx context.Context, cfg config, c *cluster.Cluster, instance string, p *load.Plan, r *report.ClusterRun, logf func(string, ...any)) error {
	name := r.Label()
	res := &r.Result
	*res = load.Result{Name: name, Series: p.Series, Requests: p.Requests, StartMs: p.Start, EndMs: p.End}
	pids, dirs := c.PIDs(), c.DataDirs()
	// A cluster is never idle (Raft ticks, node heartbeats to the
	// metadata leader): its idle CPU is measured first, reported, and
	// allowed for when waiting for quiet after the load.
	idle0, err := load.ReadProcs(pids)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(cfg.idle):
	}
	before, err := load.ReadProcs(pids)
	if err != nil {
		return err
	}
	if cfg.idle > 0 {
		r.IdleCores = (before.CPUSeconds - idle0.CPUSeconds) / cfg.idle.Seconds()
		logf("%s: idle before the load: %.3f cores over %v", name, r.IdleCores, cfg.idle)
	}
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, "http://"+n.HTTPAddr+"/api/v1/push")
	}
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	cpu0 := load.SelfCPU()
	t0 := time.Now()
	logf("%s: sending %d samples in %d requests round-robin over %d nodes", name, p.Samples, p.Requests, len(urls))
	sent, err := load.Send(ctx, client, load.Target{WriteURLs: urls}, p, time.Second)
	res.ClientCPUSeconds = load.SelfCPU() - cpu0
	res.Samples, res.Retries, res.Rate = sent.Samples, sent.Retries, sent.Rate
	res.SendSeconds = sent.Elapsed.Seconds()
	if err != nil {
		return errors.Join(fmt.Errorf("send: %w", err), c.Alive())
	}
	res.SamplesPerSec = float64(sent.Samples) / sent.Elapsed.Seconds()
	logf("%s: sent in %.1f s (%.0f samples/s, %d retries)", name, res.SendSeconds, res.SamplesPerSec, res.Retries)
	// Quiet: over 3 s, under 0.05 CPU-s per node (housekeeping) above
	// 1.25 times the idle CPU, and no change on disk.
	const quiet = 3 * time.Second
	threshold := 0.05*float64(len(pids)) + 1.25*r.IdleCores*quiet.Seconds()
	waited, err := load.SettleAll(ctx, pids, dirs, quiet, threshold, cfg.maxSettle)
	if err != nil {
		return err
	}
	res.SettleSeconds = waited.Seconds()
	after, err := load.ReadProcs(pids)
	if err != nil {
		return errors.Join(err, c.Alive())
	}
	busy := time.Since(t0).Seconds()
	res.ServerCPUSeconds = after.CPUSeconds - before.CPUSeconds
	res.CPUPerMillion = res.ServerCPUSeconds / float64(res.Samples) * 1e6
	r.CPUPerMillionAboveIdle = (res.ServerCPUSeconds - r.IdleCores*busy) / float64(res.Samples) * 1e6
	res.RSSBytes, res.HWMBytes = after.RSS, after.HWM
	res.RSSPerSeries = float64(after.RSS) / float64(p.Series)
	res.HWMPerSeries = float64(after.HWM) / float64(p.Series)
	for _, d := range dirs {
		n, err := load.DirBytes(d)
		if err != nil {
			return err
		}
		res.DiskBytes += n
	}
	res.DiskPerSample = float64(res.DiskBytes) / float64(res.Samples)
	logf("%s: settled after %.0f s: %.1f CPU-s (%.3f per million samples, %.3f above idle), RSS %.1f MiB, disk %.1f MiB over %d nodes",
		name, res.SettleSeconds, res.ServerCPUSeconds, res.CPUPerMillion, r.CPUPerMillionAboveIdle,
		float64(res.RSSBytes)/(1<<20), float64(res.DiskBytes)/(1<<20), len(pids))

	qs := query.Set(instance, p.Start, p.End)
	qclient := &http.Client{Timeout: 5 * time.Minute}
	qc := func(n *cluster.Node) query.Client {
		return query.Client{HTTP: qclient, Base: "http://" + n.HTTPAddr + "/prometheus"}
	}
	logf("%s: %d queries, %d runs each on node 1", name, len(qs), cfg.queryRuns)
	res.Queries = query.RunInterleaved(ctx, []query.Client{qc(c.Nodes[0])}, qs, cfg.queryRuns)[0]
	for _, q := range res.Queries {
		logf("%s: query %-28s p50 %8.1f ms  p99 %8.1f ms  %5d series  %s %s", name, q.Name, q.MedianS*1e3, q.P99S*1e3, q.Series, q.Checksum, q.Err)
	}
	r.NodeQueries = make([][]query.Result, len(c.Nodes))
	for k, n := range c.Nodes {
		r.NodeQueries[k] = query.RunInterleaved(ctx, []query.Client{qc(n)}, qs, 1)[0]
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.Alive()
}

// finish prints the tables of in and writes the report.
func finish(stdout io.Writer, cfg config, in report.ClusterInput) error {
	report.IngestGrid(in).Write(stdout)
	fmt.Fprintln(stdout)
	report.QueryGrid(in).Write(stdout)
	base := in.Date.UTC().Format("2006-01-02") + "-" + in.Commit
	if cfg.label != "" {
		base += "-" + cfg.label
	}
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return err
	}
	var md bytes.Buffer
	report.WriteClusterMarkdown(&md, in)
	path := filepath.Join(cfg.outDir, base+".md")
	if err := os.WriteFile(path, md.Bytes(), 0o644); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.outDir, base+".json"), raw, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nreport: %s\n", path)
	if report.ClusterFailed(in) {
		return errFailed{path}
	}
	return nil
}
