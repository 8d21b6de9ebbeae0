// Command compare measures Myelin against Prometheus (or, with -baseline
// victoriametrics, against VictoriaMetrics: `make bench-vm`) on the same
// machine and the same remote-write load, one after the other, and writes
// one table of ratios (Myelin / the baseline) with the raw figures beside
// them. It is what `make bench` runs:
//
//  1. Start bin/myelin (one node) in a temporary directory, send it the
//     load, wait for it to settle and measure it (bench/internal/load).
//  2. The same with Prometheus (--web.enable-remote-write-receiver), while
//     Myelin idles.
//  3. Run the query set (bench/internal/query) on both, taking turns run
//     by run, so both meet the same load from the machine's other tenants.
//  4. Snapshot Prometheus's TSDB to see what its head takes as a block;
//     stop both (Myelin's graceful stop checkpoints; then its directories
//     are measured).
//  5. Run bench/cmd/chunkbench (chunk encodings on the shared data) and the
//     engine benchmarks of bench/engine_bench_test.go with `go test`.
//  6. Print the table; write bench/results/<date>-<commit>[-<label>].md with
//     the table and SVG plots, and the raw figures as .json beside it
//     (-from rewrites the report from that .json without measuring).
//
// Query results are checksummed; a query whose results differ between the
// two servers is a failure, reported in the table, and the exit code is 1.
//
//	go run ./bench/cmd/compare -series 50000 -hours 2
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
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/myelindb/myelin/bench/internal/chunkmeasure"
	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/query"
	"github.com/myelindb/myelin/bench/internal/report"
	"github.com/myelindb/myelin/bench/internal/server"
	"github.com/myelindb/myelin/internal/tsdata"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	var failed errFailed
	switch {
	case errors.As(err, &failed):
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
}

// errFailed: the run finished and the report is written, but results
// differ between the servers.
type errFailed struct{ path string }

func (e errFailed) Error() string {
	return "query results differ between Myelin and Prometheus or a query failed; see " + e.path
}

type config struct {
	myelinBin, promBin string
	baseline, vmBin    string
	workload, dataDir  string
	series             int
	opts               load.Options
	prebuild           bool
	queryRuns          int
	outDir, workDir    string
	keep               bool
	chunks, engine     bool
	engineArgs         string
	command            string
	plotFormat         string
	from               string
	label              string
}

func run(args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.myelinBin, "myelin", "bin/myelin", "Myelin binary (make build).")
	fs.StringVar(&cfg.promBin, "prometheus", "", "Prometheus binary (default: prometheus on PATH, else /usr/bin/prometheus).")
	fs.StringVar(&cfg.baseline, "baseline", "prometheus", `The server measured against Myelin: "prometheus" or "victoriametrics".`)
	fs.StringVar(&cfg.vmBin, "victoriametrics", "bin/victoria-metrics", "VictoriaMetrics single-node binary (make victoriametrics), for -baseline victoriametrics.")
	fs.StringVar(&cfg.workload, "workload", "", `"replay" (the shared data's label sets and values, copied per instance) or "synthetic"; default replay if the shared data is found.`)
	fs.StringVar(&cfg.dataDir, "data", tsdata.SharedDir(), "Shared data directory.")
	fs.IntVar(&cfg.series, "series", 50000, "Active series.")
	fs.Float64Var(&cfg.opts.Hours, "hours", 2, "Hours of 15 s scrapes to backfill, ending now.")
	fs.IntVar(&cfg.opts.Shards, "shards", 4, "Concurrent senders.")
	fs.IntVar(&cfg.opts.Batch, "batch", 2000, "Samples per request.")
	fs.BoolVar(&cfg.prebuild, "prebuild", true, "Encode all requests before sending (false for loads too large for memory; the client's CPU is then reported).")
	fs.IntVar(&cfg.queryRuns, "query-runs", 5, "Runs of every query.")
	fs.StringVar(&cfg.outDir, "out", "bench/results", "Directory of the reports.")
	fs.StringVar(&cfg.workDir, "work", "", "Directory for the servers' data (default: a new temporary directory, removed afterwards).")
	fs.BoolVar(&cfg.keep, "keep", false, "Keep the servers' data directories.")
	fs.BoolVar(&cfg.chunks, "chunks", true, "Also run the chunk-encoding benchmark (bench/cmd/chunkbench).")
	fs.BoolVar(&cfg.engine, "engine", true, "Also run the engine benchmarks (bench/engine_bench_test.go).")
	fs.StringVar(&cfg.engineArgs, "engine-args", "", "Extra arguments after -args for the engine benchmarks, e.g. -engine.series=100000.")
	fs.StringVar(&cfg.label, "label", "", "Appended to the report's file name: <date>-<commit>-<label>.md.")
	fs.StringVar(&cfg.from, "from", "", "Measure nothing: rewrite the report, plots and table of a run from its .json.")
	fs.StringVar(&cfg.plotFormat, "plot-format", "svg", `Format of the plots: "svg" or "png".`)
	fs.StringVar(&cfg.command, "command", "", "The command to print in the report (default: this one).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.from != "" {
		b, err := os.ReadFile(cfg.from)
		if err != nil {
			return err
		}
		var in report.Input
		if err := json.Unmarshal(b, &in); err != nil {
			return fmt.Errorf("%s: %w", cfg.from, err)
		}
		return finish(stdout, cfg, in)
	}
	if cfg.command == "" {
		cfg.command = strings.Join(append([]string{"go run ./bench/cmd/compare"}, args...), " ")
	}
	if cfg.promBin == "" {
		if p, err := exec.LookPath("prometheus"); err == nil {
			cfg.promBin = p
		} else {
			cfg.promBin = "/usr/bin/prometheus"
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s compare: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}

	in := report.Input{
		Date: time.Now(), Commit: report.Commit(), Machine: report.Machine(), Command: cfg.command,
		Hours: cfg.opts.Hours, Shards: cfg.opts.Shards, Batch: cfg.opts.Batch,
	}
	switch cfg.baseline {
	case "prometheus":
		in.PrometheusVersion = firstLine(exec.Command(cfg.promBin, "--version"))
	case "victoriametrics":
		in.Baseline = report.VictoriaMetrics
		in.PrometheusVersion = vmVersion(cfg.vmBin)
		if cfg.engine || cfg.chunks {
			fmt.Fprintf(stderr, "compare: -baseline victoriametrics: the engine and chunk benchmarks compare with Prometheus's libraries; left out\n")
			cfg.engine, cfg.chunks = false, false
		}
	default:
		return fmt.Errorf("-baseline %q: want prometheus or victoriametrics", cfg.baseline)
	}
	// Both servers get the same scrapes: one end time for both.
	cfg.opts.End = in.Date

	work := cfg.workDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "myelin-bench-"); err != nil {
			return err
		}
		if !cfg.keep {
			defer os.RemoveAll(work)
		}
	}
	// Ingest one server at a time, so neither shares the machine with the
	// other's ingest; then query both, taking turns, so both meet the same
	// neighbours; then stop both.
	my, err := ingest(ctx, cfg, work, "myelin", logf)
	if err != nil {
		return err
	}
	prom, err := ingest(ctx, cfg, work, cfg.baseline, logf)
	if err != nil {
		return errors.Join(err, my.srv.Stop())
	}
	queries(ctx, cfg.queryRuns, []*measured{my, prom}, logf)
	if err := errors.Join(finishServer(ctx, my, logf), finishServer(ctx, prom, logf)); err != nil {
		return err
	}
	in.Workload, in.Myelin, in.Prometheus = my.workload, my.Result, prom.Result
	in.MyelinStoppedBytes, in.MyelinEngineBytes = my.stoppedBytes, my.engineBytes
	in.PrometheusBlockBytes = prom.blockBytes
	if cfg.chunks {
		logf("chunk encodings: go run ./bench/cmd/chunkbench -json")
		if in.Chunks, err = chunkRows(ctx, cfg.dataDir); err != nil {
			return err
		}
	}
	if cfg.engine {
		if in.EngineRaw, in.Engine, err = engineBench(ctx, cfg.engineArgs, logf); err != nil {
			return err
		}
	}

	return finish(stdout, cfg, in)
}

// finish prints the table of in and writes the report.
func finish(stdout io.Writer, cfg config, in report.Input) error {
	rows := report.Rows(in)
	report.WriteTable(stdout, in.BaselineName(), rows)
	base := in.Date.UTC().Format("2006-01-02") + "-" + in.Commit
	if cfg.label != "" {
		base += "-" + cfg.label
	}
	path, err := write(cfg.outDir, base, cfg.plotFormat, in, rows)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nreport: %s\n", path)
	if report.Failed(rows) {
		return errFailed{path}
	}
	return nil
}

// measured is one server's run.
type measured struct {
	load.Result
	srv       *server.Server
	instance  string // for the query set
	queryBase string
	tenant    string
	workload  string
	// Myelin: its data directory and its engine directory alone (no Raft
	// log) after a graceful stop, which checkpoints the engine.
	stoppedBytes, engineBytes int64
	// Prometheus: the block its TSDB snapshot wrote from the head.
	blockBytes int64
}

// ingest starts one server, sends it the load and measures it. The
// server is left running for the queries; stop it with finishServer.
func ingest(ctx context.Context, cfg config, work, name string, logf func(string, ...any)) (*measured, error) {
	m := &measured{}
	w, err := load.Named(cfg.workload, cfg.dataDir, cfg.series, cfg.opts.Seed)
	if err != nil {
		return nil, err
	}
	m.workload, m.instance = w.Name, w.Instance
	t0 := time.Now()
	p := load.Build(w, cfg.opts, cfg.prebuild)
	logf("%s: %s workload, %d series, %d samples, %d requests, built in %v", name, w.Name, p.Series, p.Samples, p.Requests, time.Since(t0).Round(time.Millisecond))
	rc := load.RunConfig{Name: name, Log: logf}
	switch name {
	case "myelin":
		m.srv, err = server.StartMyelin(ctx, cfg.myelinBin, work)
		m.tenant = "bench"
		rc.Target = load.Target{WriteURL: "http://" + addrOf(m.srv) + "/api/v1/push", Tenant: m.tenant}
		m.queryBase = "http://" + addrOf(m.srv) + "/prometheus"
	case "prometheus":
		m.srv, err = server.StartPrometheus(ctx, cfg.promBin, work, "")
		rc.Target = load.Target{WriteURL: "http://" + addrOf(m.srv) + "/api/v1/write"}
		m.queryBase = "http://" + addrOf(m.srv)
		rc.SkipDirs = []string{"snapshots"}
	case "victoriametrics":
		m.srv, err = server.StartVictoriaMetrics(ctx, cfg.vmBin, work)
		rc.Target = load.Target{WriteURL: "http://" + addrOf(m.srv) + "/api/v1/write"}
		m.queryBase = "http://" + addrOf(m.srv)
		// Pending samples made searchable, then in-memory parts written:
		// every -inmemoryDataFlushInterval (1 s here), seen on disk 2-3 s
		// later; settling alone (3 s without a change) can end first.
		rc.Flush = func(ctx context.Context) error {
			if err := httpGet(ctx, "http://"+addrOf(m.srv)+"/internal/force_flush"); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(4 * time.Second):
				return nil
			}
		}
		rc.SkipDirs = []string{vmCacheDir}
	}
	if err != nil {
		return nil, err
	}
	rc.PID, rc.DataDir = m.srv.PID(), m.srv.DataDir
	if m.Result, err = load.Run(ctx, rc, p, time.Second); err != nil {
		return nil, errors.Join(fmt.Errorf("%w (server log: %s)", err, m.srv.LogPath), m.srv.Stop())
	}
	return m, nil
}

// finishServer measures what needs the server at rest and stops it:
// Prometheus's head snapshot before the stop, Myelin's directories after
// its graceful stop (which checkpoints the engine).
func finishServer(ctx context.Context, m *measured, logf func(string, ...any)) error {
	var err error
	if m.Name == "prometheus" {
		if m.blockBytes, err = promSnapshot(ctx, m.srv); err != nil {
			return errors.Join(err, m.srv.Stop())
		}
		logf("prometheus: head snapshot as a block: %.1f MiB", float64(m.blockBytes)/(1<<20))
	}
	if err := m.srv.Stop(); err != nil {
		return err
	}
	if m.Name == "victoriametrics" {
		// After its graceful stop, which flushes its in-memory parts.
		if m.blockBytes, err = load.DirBytes(m.srv.DataDir, vmCacheDir); err != nil {
			return err
		}
		logf("victoriametrics: after a graceful stop: %.1f MiB", float64(m.blockBytes)/(1<<20))
	}
	if m.Name == "myelin" {
		if m.stoppedBytes, err = load.DirBytes(m.srv.DataDir); err != nil {
			return err
		}
		if m.engineBytes, err = load.DirBytes(filepath.Join(m.srv.DataDir, "engine")); err != nil {
			return err
		}
		logf("myelin: after a graceful stop: %.1f MiB, of which the engine %.1f MiB",
			float64(m.stoppedBytes)/(1<<20), float64(m.engineBytes)/(1<<20))
	}
	return nil
}

// queries runs the query set on both servers, interleaved run by run.
func queries(ctx context.Context, runs int, ms []*measured, logf func(string, ...any)) {
	clients := make([]query.Client, len(ms))
	for k, m := range ms {
		clients[k] = query.Client{HTTP: &http.Client{Timeout: 5 * time.Minute}, Base: m.queryBase, Tenant: m.tenant}
	}
	qs := query.Set(ms[0].instance, ms[0].StartMs, ms[0].EndMs)
	logf("queries: %d, %d runs each, taking turns between the servers", len(qs), runs)
	res := query.RunInterleaved(ctx, clients, qs, runs)
	for k, m := range ms {
		m.Queries = res[k]
		for _, r := range res[k] {
			logf("%s: query %-28s median %8.1f ms  max %8.1f ms  %5d series  %s %s", m.Name, r.Name, r.MedianS*1e3, r.MaxS*1e3, r.Series, r.Checksum, r.Err)
		}
	}
}

// vmCacheDir is where VictoriaMetrics saves its in-memory caches at a
// stop: not data, not counted.
const vmCacheDir = "cache"

// httpGet gets url and wants a 200.
func httpGet(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func addrOf(s *server.Server) string {
	if s == nil {
		return ""
	}
	return s.Addr
}

// chunkRows runs chunkbench -json on the shared data.
func chunkRows(ctx context.Context, dataDir string) ([]chunkmeasure.Row, error) {
	cmd := exec.CommandContext(ctx, "go", "run", "./bench/cmd/chunkbench", "-json", "-data", dataDir)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("chunkbench: %w: %s", err, errb.String())
	}
	var rows []chunkmeasure.Row
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("chunkbench output: %w", err)
	}
	return rows, nil
}

// engineBench runs the engine benchmarks: apply, head bytes and disk once
// (each is one large operation), selects for a second each.
func engineBench(ctx context.Context, extra string, logf func(string, ...any)) (string, []report.Pair, error) {
	var raw strings.Builder
	for _, b := range []struct{ pattern, benchtime string }{
		{"EngineApply|EngineHeadBytes|EngineDisk", "1x"},
		{"EngineSelect", "1s"},
	} {
		args := []string{"test", "-run", "^$", "-bench", b.pattern, "-benchtime", b.benchtime, "-timeout", "0", "./bench/"}
		if extra != "" {
			args = append(args, append([]string{"-args"}, strings.Fields(extra)...)...)
		}
		logf("engine: go %s", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "go", args...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			return "", nil, fmt.Errorf("engine benchmarks: %w: %s%s", err, out, errb.String())
		}
		for _, line := range strings.SplitAfter(string(out), "\n") {
			if strings.HasPrefix(line, "Benchmark") {
				raw.WriteString(line)
			}
		}
	}
	lines, err := report.ParseGoBench(strings.NewReader(raw.String()))
	return raw.String(), report.Pairs(lines), err
}

// write writes the report, its plots and the raw figures into dir.
func write(dir, base, plotFormat string, in report.Input, rows []report.Row) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	plots, err := report.WritePlots(dir, base, plotFormat, in)
	if err != nil {
		return "", err
	}
	var md bytes.Buffer
	report.WriteMarkdown(&md, in, rows, plots)
	path := filepath.Join(dir, base+".md")
	if err := os.WriteFile(path, md.Bytes(), 0o644); err != nil {
		return "", err
	}
	raw, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(filepath.Join(dir, base+".json"), raw, 0o644)
}

// vmVersion is VictoriaMetrics' version: its -version, or the module
// version `go version -m` finds in a binary built without the release's
// ldflags (make victoriametrics).
func vmVersion(bin string) string {
	if v := firstLine(exec.Command(bin, "-version")); v != "" && v != "unknown version" {
		return v
	}
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/VictoriaMetrics/VictoriaMetrics" {
				return "VictoriaMetrics " + f[2]
			}
		}
	}
	return "VictoriaMetrics, unknown version"
}

func firstLine(cmd *exec.Cmd) string {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "unknown version"
	}
	l, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(l)
}
