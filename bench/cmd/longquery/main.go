// Command longquery measures issue 17's long-range goal: a 30-day
// `sum by (instance) (rate(node_cpu_seconds_total[5m]))` at a dashboard's
// step (1,440 points) over 1,000 counter series, on a single Myelin node
// and on Prometheus holding the same samples, with identical answers
// required and the ratio of the medians from one run.
//
//  1. One load (bench/internal/load.CPUCounters: 100 hosts x 2 cpus x 5
//     modes, one scrape a minute, 30 days ending now) is built twice from
//     the same seed.
//  2. Myelin gets it through its remote-write endpoint (/api/v1/push, in
//     time order, 4 shards) and is left to settle, then restarted.
//  3. Prometheus gets it as what a Prometheus has after 30 days of
//     scraping: compacted blocks. They are written with Prometheus's own
//     TSDB library (tsdb.BlockWriter, one block per 486 h range aligned to
//     the epoch, the largest range its compactor makes at 100y retention)
//     before it starts, so it queries them as it would its own.
//  4. The query runs once on each freshly started server (cold: no process
//     cache, the OS page cache warm from the load), then -runs times on
//     both taking turns (warm). Every request sends Cache-Control:
//     no-store, so Myelin's query frontend evaluates it (bench/internal/query).
//  5. With -profile, Myelin's CPU profile over more warm runs is saved.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/query"
	"github.com/myelindb/myelin/bench/internal/server"
)

// promBlockRange is Prometheus's largest compaction range with
// --storage.tsdb.retention.time=100y: its ranges are 2h x 3^k, capped by
// the max block duration (10% of retention, at most 31 d), so 486 h.
const promBlockRange = 486 * time.Hour

func main() {
	var (
		myelinBin = flag.String("myelin", "bin/myelin", "Myelin binary")
		promBin   = flag.String("prometheus", "bin/prometheus-3", "Prometheus binary (3.x reads the blocks the vendored TSDB library writes)")
		instances = flag.Int("instances", 100, "hosts; each has 2 cpus x 5 modes = 10 series")
		days      = flag.Float64("days", 30, "days of samples, ending now")
		interval  = flag.Duration("interval", time.Minute, "scrape interval")
		runs      = flag.Int("runs", 5, "warm runs on each server, taking turns")
		portBase  = flag.Int("port-base", 19600, "Myelin listens on this port, Prometheus on the next")
		work      = flag.String("work", "", "work directory (default: a new temporary one, removed at the end)")
		profile   = flag.String("profile", "", "save Myelin's CPU profile over 20 s of warm runs to this file")
		extra     = flag.String("myelin-args", "", "extra Myelin flags, space separated")
		reuse     = flag.Bool("reuse", false, "query the servers' data left in -work by an earlier run with the same -instances, -days and -interval, without loading again")
	)
	flag.Parse()
	if *reuse && *work == "" {
		log.Fatal("-reuse needs -work")
	}
	if err := run(*myelinBin, *promBin, *instances, *days, *interval, *runs, *portBase, *work, *profile, *extra, *reuse); err != nil {
		log.Fatal(err)
	}
}

func run(myelinBin, promBin string, instances int, days float64, interval time.Duration, runs, portBase int, work, profile, extra string, reuse bool) (err error) {
	ctx := context.Background()
	if work == "" {
		if work, err = os.MkdirTemp("", "longquery-"); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(work)) }()
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	modes := []string{"idle", "iowait", "system", "user", "softirq"}
	opts := load.Options{Hours: days * 24, Interval: interval, End: time.Now(), Seed: 1}
	plan := func() *load.Plan { return load.Build(load.CPUCounters(instances, 2, modes, opts.Seed), opts, false) }

	endFile := filepath.Join(work, "end_ms")
	if reuse {
		b, err := os.ReadFile(endFile)
		if err != nil {
			return fmt.Errorf("reuse: %w", err)
		}
		ms, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return fmt.Errorf("reuse %s: %w", endFile, err)
		}
		opts.End = time.UnixMilli(ms)
	}
	p := plan()
	myelinAddr := "127.0.0.1:" + strconv.Itoa(portBase)
	args := strings.Fields(extra)
	if !reuse {
		if err := loadBoth(ctx, p, plan(), myelinBin, work, myelinAddr, args); err != nil {
			return err
		}
		if err := os.WriteFile(endFile, []byte(strconv.FormatInt(p.End, 10)), 0o644); err != nil {
			return err
		}
	}
	my, err := server.StartMyelinAt(ctx, myelinBin, work, myelinAddr, args...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, my.Stop()) }()
	prom, err := server.StartPrometheusAt(ctx, promBin, work, "127.0.0.1:"+strconv.Itoa(portBase+1), "")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, prom.Stop()) }()

	q := longQuery(p.End, days)
	hc := &http.Client{Timeout: 5 * time.Minute}
	clients := []query.Client{
		{HTTP: hc, Base: "http://" + myelinAddr + "/prometheus", Tenant: "bench"},
		{HTTP: hc, Base: "http://" + prom.Addr},
	}
	var cold [2]query.Result
	for k, c := range clients {
		cold[k] = c.Run(ctx, q, 1)
	}
	pids := []int{my.PID(), prom.PID()}
	var cpu [2]float64 // CPU-s per warm run: the servers are idle between their turns
	for k, pid := range pids {
		pr, err := load.ReadProc(pid)
		if err != nil {
			return err
		}
		cpu[k] = -pr.CPUSeconds
	}
	warm := query.RunInterleaved(ctx, clients, []query.Query{q}, runs)
	for k, pid := range pids {
		pr, err := load.ReadProc(pid)
		if err != nil {
			return err
		}
		cpu[k] = (cpu[k] + pr.CPUSeconds) / float64(runs)
	}
	for k, r := range []query.Result{cold[0], cold[1], warm[0][0], warm[1][0]} {
		if r.Err != "" {
			return fmt.Errorf("%s: %s", []string{"myelin cold", "prometheus cold", "myelin warm", "prometheus warm"}[k], r.Err)
		}
	}
	sums := []string{cold[0].Checksum, cold[1].Checksum, warm[0][0].Checksum, warm[1][0].Checksum}
	for _, s := range sums[1:] {
		if s != sums[0] {
			return fmt.Errorf("answers differ: myelin cold %s, prometheus cold %s, myelin warm %s, prometheus warm %s", sums[0], sums[1], sums[2], sums[3])
		}
	}
	fmt.Printf("\n`%s`, %s to %s, step %ss: %d series of 1,440 points; %d series x %d samples (%v scrapes); answers identical (%s)\n\n",
		q.Params.Get("query"), q.Params.Get("start"), q.Params.Get("end"), q.Params.Get("step"), warm[0][0].Series, p.Series, p.Samples/int64(p.Series), interval, sums[0])
	fmt.Printf("| | Myelin | Prometheus (%s) | Myelin / Prometheus |\n|---|---:|---:|---:|\n", filepath.Base(promBin))
	fmt.Printf("| cold (first query after start) | %.0f ms | %.0f ms | %.2fx |\n", cold[0].MedianS*1e3, cold[1].MedianS*1e3, cold[0].MedianS/cold[1].MedianS)
	fmt.Printf("| warm, median of %d | %.0f ms | %.0f ms | **%.2fx** |\n", runs, warm[0][0].MedianS*1e3, warm[1][0].MedianS*1e3, warm[0][0].MedianS/warm[1][0].MedianS)
	fmt.Printf("| warm, max | %.0f ms | %.0f ms | |\n", warm[0][0].MaxS*1e3, warm[1][0].MaxS*1e3)
	fmt.Printf("| server CPU per warm run | %.2f s | %.2f s | %.2fx |\n", cpu[0], cpu[1], cpu[0]/cpu[1])
	if profile != "" {
		return saveProfile(ctx, clients[0], q, "http://"+myelinAddr, profile)
	}
	return nil
}

// loadBoth writes plan pp as Prometheus's blocks while it sends pm, the
// same samples, to a Myelin node on myelinAddr, and stops the node once
// it has settled.
func loadBoth(ctx context.Context, pp, pm *load.Plan, myelinBin, work, myelinAddr string, args []string) (err error) {
	blocks := make(chan error, 1)
	go func() {
		t0 := time.Now()
		err := writeBlocks(ctx, pp, filepath.Join(work, "prometheus"))
		log.Printf("prometheus: %d series, %d samples written as blocks in %v", pp.Series, pp.Samples, time.Since(t0).Round(time.Millisecond))
		blocks <- err
	}()
	defer func() { err = errors.Join(err, <-blocks) }()
	my, err := server.StartMyelinAt(ctx, myelinBin, work, myelinAddr, args...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, my.Stop()) }()
	res, err := load.Run(ctx, load.RunConfig{Name: "myelin", Log: log.Printf, PID: my.PID(), DataDir: my.DataDir,
		Target: load.Target{WriteURL: "http://" + myelinAddr + "/api/v1/push", Tenant: "bench"}}, pm, time.Second)
	if err != nil {
		return fmt.Errorf("load myelin (log %s): %w", my.LogPath, err)
	}
	if res.Samples != pm.Samples {
		return fmt.Errorf("myelin accepted %d of %d samples", res.Samples, pm.Samples)
	}
	return nil
}

// longQuery is the dashboard panel over the whole load ending at endMs
// (its last scrape): 1,440 steps of days*24h/1440 (30 min for 30 days),
// the first a step after the first scrape so that every 5m window is
// full, evaluated 7.001 s off the scrape grid as bench/internal/query does.
func longQuery(endMs int64, days float64) query.Query {
	stepMs := int64(days * 24 * float64(time.Hour.Milliseconds()) / 1440)
	end := endMs + 7001
	start := end - 1439*stepMs
	sec := func(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }
	return query.Query{Name: "30d sum by instance (rate)", Path: "/api/v1/query_range", Params: url.Values{
		"query": {`sum by (instance) (rate(node_cpu_seconds_total[5m]))`},
		"start": {sec(start)}, "end": {sec(end)}, "step": {strconv.FormatFloat(float64(stepMs)/1000, 'f', -1, 64)}}}
}

// writeBlocks writes p's samples into dir as Prometheus blocks, one per
// promBlockRange aligned to the epoch. The shards' requests are read in
// turns so that all writers' heads move forward together (a head refuses
// samples older than half its range behind its newest).
func writeBlocks(ctx context.Context, p *load.Plan, dir string) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := promBlockRange.Milliseconds()
	type block struct {
		w    *tsdb.BlockWriter
		app  storage.Appender
		n    int
		refs map[string]storage.SeriesRef
	}
	blocks := map[int64]*block{}
	defer func() {
		for _, b := range blocks {
			err = errors.Join(err, b.w.Close())
		}
	}()
	logger := slog.New(slog.DiscardHandler)
	var (
		wr   prompb.WriteRequest
		raw  []byte
		key  []byte
		lbld labels.ScratchBuilder
	)
	for live := len(p.Shards); live > 0; {
		live = 0
		for _, next := range p.Shards {
			r, ok := next()
			if !ok {
				continue
			}
			live++
			if raw, err = snappy.Decode(raw[:cap(raw)], r.Body); err != nil {
				return fmt.Errorf("decode request: %w", err)
			}
			wr.Reset()
			if err := wr.Unmarshal(raw); err != nil {
				return fmt.Errorf("decode request: %w", err)
			}
			for _, ts := range wr.Timeseries {
				key = key[:0]
				for _, l := range ts.Labels {
					key = append(append(append(append(key, l.Name...), 0), l.Value...), 0)
				}
				for _, s := range ts.Samples {
					start := s.Timestamp / rng * rng
					b := blocks[start]
					if b == nil {
						w, err := tsdb.NewBlockWriter(logger, dir, rng)
						if err != nil {
							return err
						}
						b = &block{w: w, app: w.Appender(ctx), refs: map[string]storage.SeriesRef{}}
						blocks[start] = b
					}
					ref, ok := b.refs[string(key)]
					var lset labels.Labels
					if !ok {
						lbld.Reset()
						for _, l := range ts.Labels {
							lbld.Add(l.Name, l.Value)
						}
						lbld.Sort()
						lset = lbld.Labels()
					}
					if ref, err = b.app.Append(ref, lset, s.Timestamp, s.Value); err != nil {
						return fmt.Errorf("append to block at %d: %w", start, err)
					}
					b.refs[string(key)] = ref
					if b.n++; b.n%100_000 == 0 {
						if err := b.app.Commit(); err != nil {
							return err
						}
						b.app = b.w.Appender(ctx)
					}
				}
			}
		}
	}
	for _, b := range blocks {
		if err := b.app.Commit(); err != nil {
			return err
		}
		if _, err := b.w.Flush(ctx); err != nil {
			return fmt.Errorf("flush block: %w", err)
		}
	}
	return nil
}

// saveProfile runs q on c back to back while it takes Myelin's 20 s CPU
// profile from base, and writes the profile to path.
func saveProfile(ctx context.Context, c query.Client, q query.Query, base, path string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan int)
	go func() {
		n := 0
		for ctx.Err() == nil {
			c.Run(ctx, q, 1)
			n++
		}
		done <- n
	}()
	resp, err := http.Get(base + "/debug/pprof/profile?seconds=20")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	cancel()
	log.Printf("profile: %d queries in 20 s, written to %s", <-done, path)
	return errors.Join(err, f.Close())
}
