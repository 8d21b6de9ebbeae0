// Command loadgen sends a remote-write 1.0 load to any receiver (Myelin,
// Prometheus with --web.enable-remote-write-receiver, ...) and measures it
// from outside: accepted samples/s, the receiver's CPU-seconds per million
// samples (from /proc/PID/stat, the fair figure on a shared machine), its
// RSS per active series, its data directory's bytes per sample after it
// settled, and the latency and result checksum of a fixed query set. The
// method is in bench/internal/load and bench/internal/query;
// bench/cmd/compare runs it against Myelin and Prometheus side by side.
//
//	go run ./bench/cmd/loadgen -write-url http://127.0.0.1:9009/api/v1/push \
//	    -query-url http://127.0.0.1:9009/prometheus -tenant bench \
//	    -pid $(pidof myelin) -data-dir ./data -series 50000 -hours 2
//
// Workloads: "replay" (default when the shared data is found) copies the
// label sets and values of the shared recording's 15 s series per
// instance; "synthetic" is node_exporter-shaped. Requests are built and
// snappy-encoded before the clock starts unless -prebuild=false (for runs
// too large to hold in memory; the client's CPU is then reported).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/internal/tsdata"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      load.RunConfig
		opts     load.Options
		series   int
		workload string
		dataDir  string
		prebuild bool
		jsonOut  string
		endMs    int64
	)
	fs.StringVar(&cfg.Target.WriteURL, "write-url", "http://127.0.0.1:9009/api/v1/push", "Remote-write URL.")
	fs.StringVar(&cfg.Target.WriteURL, "url", "http://127.0.0.1:9009/api/v1/push", "Alias of -write-url.")
	fs.StringVar(&cfg.QueryBase, "query-url", "", "Base of the Prometheus query API (the part before /api/v1), e.g. http://127.0.0.1:9009/prometheus; empty skips the queries.")
	fs.StringVar(&cfg.Target.Tenant, "tenant", "bench", "X-Scope-OrgID header value; empty sends none.")
	fs.IntVar(&cfg.PID, "pid", 0, "PID of the receiver, for its CPU time and memory (0: not measured).")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "Receiver's data directory, for bytes on disk and settling (empty: not measured).")
	fs.StringVar(&cfg.Name, "name", "target", "Name of the receiver in the output.")
	fs.IntVar(&cfg.QueryRuns, "query-runs", 5, "Runs of every query (median and max are reported).")
	fs.StringVar(&workload, "workload", "", `"replay" (the shared data's label sets and values) or "synthetic"; default replay if the shared data is found.`)
	fs.StringVar(&dataDir, "data", tsdata.SharedDir(), "Shared data directory, for -workload replay.")
	fs.IntVar(&series, "series", 10000, "Active series.")
	fs.Float64Var(&opts.Hours, "hours", 1, "Hours of backfill, ending now.")
	fs.DurationVar(&opts.Interval, "interval", 15*time.Second, "Scrape interval.")
	fs.IntVar(&opts.Shards, "shards", 4, "Concurrent senders (Prometheus's queue shards).")
	fs.IntVar(&opts.Batch, "batch", 2000, "Samples per request.")
	fs.Uint64Var(&opts.Seed, "seed", 1, "Random seed of the jitter and the synthetic values.")
	fs.BoolVar(&prebuild, "prebuild", true, "Encode every request before sending; false encodes while sending (client CPU is reported).")
	fs.Int64Var(&endMs, "end-ms", 0, "End of the backfill, ms since the epoch (0: now); give two runs the same to compare their query results.")
	fs.StringVar(&jsonOut, "json", "", "Also write the result as JSON to this file.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if endMs != 0 {
		opts.End = time.UnixMilli(endMs)
	}
	w, err := load.Named(workload, dataDir, series, opts.Seed)
	if err != nil {
		return err
	}
	cfg.Instance = w.Instance
	cfg.Log = func(format string, args ...any) { fmt.Fprintf(stderr, "loadgen: "+format+"\n", args...) }
	t0 := time.Now()
	p := load.Build(w, opts, prebuild)
	cfg.Log("%s workload: %d series, %d samples, %d requests, built in %v", w.Name, p.Series, p.Samples, p.Requests, time.Since(t0).Round(time.Millisecond))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := load.Run(ctx, cfg, p, time.Second)
	if err != nil {
		return err
	}
	printResult(stdout, res)
	if jsonOut != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(jsonOut, b, 0o644)
	}
	return nil
}

func printResult(w io.Writer, r load.Result) {
	fmt.Fprintf(w, "accepted %d samples in %.1f s: %.0f samples/s (%d retries)\n", r.Samples, r.SendSeconds, r.SamplesPerSec, r.Retries)
	fmt.Fprintf(w, "client CPU: %.2f s\n", r.ClientCPUSeconds)
	if r.ServerCPUSeconds > 0 || r.RSSBytes > 0 {
		fmt.Fprintf(w, "server CPU: %.2f s (to settled, %.0f s after the load), %.3f CPU-seconds per million samples\n", r.ServerCPUSeconds, r.SettleSeconds, r.CPUPerMillion)
		fmt.Fprintf(w, "server RSS: %.1f MiB (%.0f bytes per active series), peak %.1f MiB (%.0f bytes per series)\n",
			float64(r.RSSBytes)/(1<<20), r.RSSPerSeries, float64(r.HWMBytes)/(1<<20), r.HWMPerSeries)
	}
	if r.DiskBytes > 0 {
		fmt.Fprintf(w, "data dir: %.1f MiB, %.3f bytes per sample\n", float64(r.DiskBytes)/(1<<20), r.DiskPerSample)
	}
	for _, q := range r.Queries {
		fmt.Fprintf(w, "query %-22s median %8.1f ms  max %8.1f ms  %6d series  %s %s\n", q.Name, q.MedianS*1e3, q.MaxS*1e3, q.Series, q.Checksum, q.Err)
	}
}
