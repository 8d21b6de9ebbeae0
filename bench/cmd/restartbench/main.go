// Command restartbench measures how long a Myelin node takes to serve
// again after kill -9 at the worst moment: just before a checkpoint would
// have let it truncate its Raft log, so the restart replays the most log.
//
// It starts a node on a fresh data directory and sends it the make bench
// load (the shared recording's series, 4 shards of 2,000 samples per
// request; see bench/internal/load), watching myelin_raft_log_entries on
// /metrics every 20 ms. The log grows until a checkpoint truncates it: the
// first drop gives the height of that sawtooth, and in the next cycle the
// node is killed (SIGKILL) once its log reaches -kill-at of that height.
// Then the same binary restarts on the same data, and the tool measures
// the time from exec to /ready answering 200, and to the first write
// accepted, and reads how many entries the node replayed. With
// -baseline it does the same with another binary, alternating runs, and
// prints the ratios of the medians.
//
//	make build && go run ./bench/cmd/restartbench -bin bin/myelin -baseline /tmp/myelin-before -runs 3
//
// The load is 4 hours of 50,000 series by default (48 M samples), longer
// than make bench's 2 so that a policy of one checkpoint per 8,192
// entries checkpoints twice.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/server"
	"github.com/myelindb/myelin/internal/tsdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "restartbench:", err)
		os.Exit(1)
	}
}

type config struct {
	bin, baseline string
	args          string
	runs          int
	killAt        float64
	series        int
	workload      string
	dataDir       string
	opts          load.Options
	keep          bool
	jsonOut       string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restartbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.bin, "bin", "bin/myelin", "The myelin binary to measure.")
	fs.StringVar(&c.baseline, "baseline", "", "Another myelin binary (e.g. built from an older commit) to measure the same way; the ratios are bin / baseline.")
	fs.StringVar(&c.args, "args", "", "Extra flags for both binaries, space-separated.")
	fs.IntVar(&c.runs, "runs", 3, "Runs per binary (alternating with -baseline); medians are reported.")
	fs.Float64Var(&c.killAt, "kill-at", 0.9, "Kill when the log reaches this fraction of the height it had at the last checkpoint.")
	fs.IntVar(&c.series, "series", 50000, "Active series.")
	fs.Float64Var(&c.opts.Hours, "hours", 4, "Hours of backfill, ending now.")
	fs.IntVar(&c.opts.Shards, "shards", 4, "Concurrent senders.")
	fs.IntVar(&c.opts.Batch, "batch", 2000, "Samples per request.")
	fs.StringVar(&c.workload, "workload", "", `"replay" (the shared data) or "synthetic"; default replay if the shared data is found.`)
	fs.StringVar(&c.dataDir, "data", tsdata.SharedDir(), "Shared data directory, for -workload replay.")
	fs.BoolVar(&c.keep, "keep", false, "Keep the data directories and logs (their path is printed).")
	fs.StringVar(&c.jsonOut, "json", "", "Also write every run as JSON to this file.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.killAt <= 0 || c.killAt > 1 {
		return fmt.Errorf("-kill-at %v: want (0, 1]", c.killAt)
	}
	bins := []string{c.bin}
	if c.baseline != "" {
		bins = append(bins, c.baseline)
	}
	work, err := os.MkdirTemp("", "restartbench-")
	if err != nil {
		return err
	}
	if !c.keep {
		defer os.RemoveAll(work)
	} else {
		fmt.Fprintln(stderr, "restartbench: data and logs in", work)
	}
	var results []result
	for i := range c.runs {
		for _, bin := range bins {
			dir := filepath.Join(work, fmt.Sprintf("run%d-%s", i, filepath.Base(bin)))
			r, err := measure(ctx, c, bin, dir, stderr)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", bin, i, err)
			}
			fmt.Fprintf(stderr, "restartbench: %s run %d: %s\n", bin, i, r)
			results = append(results, r)
		}
	}
	report(stdout, c, results)
	if c.jsonOut != "" {
		b, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(c.jsonOut, b, 0o644)
	}
	return nil
}

// result is one run: the node killed at the worst point and restarted.
type result struct {
	Bin            string  `json:"bin"`
	Height         int     `json:"log_entries_at_checkpoint"` // the sawtooth's height
	KilledAt       int     `json:"log_entries_at_kill"`
	Samples        int64   `json:"samples_before_kill"` // accepted
	IngestPerSec   float64 `json:"ingest_samples_per_s"`
	Replayed       int     `json:"replayed_entries"`
	ReadySeconds   float64 `json:"ready_s"`       // exec to /ready 200
	WriteSeconds   float64 `json:"first_write_s"` // exec to the first accepted write
	ReplayPerSec   float64 `json:"replayed_entries_per_ready_s"`
	CheckpointsObs int     `json:"checkpoints_seen"`
}

func (r result) String() string {
	return fmt.Sprintf("checkpoint at %d log entries, killed at %d (%d samples accepted, %.0f/s); ready after %.2f s, first write after %.2f s, %d entries replayed",
		r.Height, r.KilledAt, r.Samples, r.IngestPerSec, r.ReadySeconds, r.WriteSeconds, r.Replayed)
}

// node is a myelin process.
type node struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
	log    *os.File
}

func startNode(bin, data, logPath, extra string) (*node, error) {
	addr, err := server.FreeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	args := append([]string{"-data.dir", data, "-http.listen-address", addr}, strings.Fields(extra)...)
	n := &node{cmd: exec.Command(bin, args...), addr: addr, exited: make(chan struct{}), log: logf}
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		n.cmd.Wait()
		logf.Close()
		close(n.exited)
	}()
	return n, nil
}

func (n *node) kill() {
	n.cmd.Process.Kill()
	<-n.exited
}

// get returns the status and body of GET path, or an error.
func (n *node) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// waitReady polls /ready every 20 ms until it answers 200.
func (n *node) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if code, _, err := n.get(ctx, "/ready"); err == nil && code == http.StatusOK {
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("exited before ready (log: %s)", n.log.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v (log: %s)", limit, n.log.Name())
		}
	}
}

// metric returns the value of the first series of name whose labels
// contain match, from /metrics.
func (n *node) metric(ctx context.Context, name, match string) (float64, error) {
	code, body, err := n.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, match) {
			continue
		}
		rest := line[len(name):]
		if rest[0] != '{' && rest[0] != ' ' {
			continue // a longer name
		}
		f := strings.Fields(line)
		return strconv.ParseFloat(f[len(f)-1], 64)
	}
	return 0, fmt.Errorf("%s{%s} not on /metrics", name, match)
}

// measure runs one kill and restart of bin in dir.
func measure(ctx context.Context, c config, bin, dir string, stderr io.Writer) (result, error) {
	res := result{Bin: bin}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	data := filepath.Join(dir, "data")
	logPath := filepath.Join(dir, "myelin.log")
	w, err := load.Named(c.workload, c.dataDir, c.series, 1)
	if err != nil {
		return res, err
	}
	p := load.Build(w, c.opts, true)
	n, err := startNode(bin, data, logPath, c.args)
	if err != nil {
		return res, err
	}
	defer n.kill()
	if err := n.waitReady(ctx, time.Minute); err != nil {
		return res, err
	}
	sendCtx, cancelSend := context.WithCancel(ctx)
	defer cancelSend()
	sent := make(chan error, 1)
	var sendRes load.SendResult
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t0 := time.Now()
	go func() {
		var err error
		sendRes, err = load.Send(sendCtx, client, load.Target{WriteURL: "http://" + n.addr + "/api/v1/push", Tenant: "bench"}, p, time.Second)
		sent <- err
	}()

	// Watch the log's sawtooth; kill in the cycle after the first drop.
	const group = `group="1"`
	saw := sawtooth{killAt: c.killAt}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for killed := false; !killed; {
		select {
		case err := <-sent:
			return res, fmt.Errorf("the load ended before the kill point (%d checkpoints seen, height %d, log at %d): %v; raise -hours",
				saw.drops, saw.height, saw.prev, err)
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
		v, err := n.metric(ctx, "myelin_raft_log_entries", group)
		if err != nil {
			continue // not registered yet
		}
		killed = saw.observe(int(v))
	}
	res.KilledAt, res.Height, res.CheckpointsObs = saw.prev, saw.height, saw.drops
	n.kill()
	elapsed := time.Since(t0)
	cancelSend()
	<-sent
	res.Samples = sendRes.Samples
	res.IngestPerSec = float64(res.Samples) / elapsed.Seconds()

	start := time.Now()
	n2, err := startNode(bin, data, logPath, c.args)
	if err != nil {
		return res, err
	}
	defer n2.kill()
	if err := n2.waitReady(ctx, 5*time.Minute); err != nil {
		return res, err
	}
	res.ReadySeconds = time.Since(start).Seconds()
	// The probe's sample is near the newest the node has, as a sender's
	// next one would be: a sample hours ahead would make the engine
	// evict every series of the tenant as idle in that write.
	step := int64(cmp.Or(c.opts.Interval, 15*time.Second) / time.Millisecond)
	if err := firstWrite(ctx, n2.addr, p.Start+res.Samples/int64(p.Series)*step); err != nil {
		return res, err
	}
	res.WriteSeconds = time.Since(start).Seconds()
	if v, err := n2.metric(ctx, "myelin_raft_replayed_entries", group); err == nil {
		res.Replayed = int(v)
		res.ReplayPerSec = v / res.ReadySeconds
	}
	return res, nil
}

// sawtooth follows the log's length: it grows until a checkpoint lets
// raft truncate it. The first drop gives the height; observe says when
// the log is back at killAt of it.
type sawtooth struct {
	killAt float64
	prev   int // the last value
	peak   int // the highest since the last drop
	height int // the peak before the last drop
	drops  int
}

func (s *sawtooth) observe(cur int) (kill bool) {
	if cur < s.prev/2 { // a truncation
		s.drops++
		s.height, s.peak = s.peak, 0
	}
	s.peak = max(s.peak, cur)
	s.prev = cur
	return s.height > 0 && float64(cur) >= s.killAt*float64(s.height)
}

// firstWrite sends one sample of a new series at atMs until it is
// accepted.
func firstWrite(ctx context.Context, addr string, atMs int64) error {
	req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "restartbench_probe"}},
		Samples: []prompb.Sample{{Timestamp: atMs, Value: 1}},
	}}}
	b, err := req.Marshal()
	if err != nil {
		return err
	}
	body := snappy.Encode(nil, b)
	deadline := time.Now().Add(time.Minute)
	last := ""
	for {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/push", bytes.NewReader(body))
		if err != nil {
			return err
		}
		hr.Header.Set("X-Scope-OrgID", "bench")
		hr.Header.Set("Content-Encoding", "snappy")
		hr.Header.Set("Content-Type", "application/x-protobuf")
		resp, err := http.DefaultClient.Do(hr)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no write accepted within a minute of the restart; last answer: %s", last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func report(w io.Writer, c config, rs []result) {
	type agg struct{ ready, write, replayed, killed, ingest []float64 }
	by := map[string]*agg{}
	for _, r := range rs {
		a := by[r.Bin]
		if a == nil {
			a = &agg{}
			by[r.Bin] = a
		}
		a.ready = append(a.ready, r.ReadySeconds)
		a.write = append(a.write, r.WriteSeconds)
		a.replayed = append(a.replayed, float64(r.Replayed))
		a.killed = append(a.killed, float64(r.KilledAt))
		a.ingest = append(a.ingest, r.IngestPerSec)
	}
	fmt.Fprintf(w, "restart after kill -9 at %.0f%% of the log's height at a checkpoint (%d series, %.1f h, %d shards x %d samples), medians of %d runs:\n\n",
		c.killAt*100, c.series, c.opts.Hours, c.opts.Shards, c.opts.Batch, c.runs)
	fmt.Fprintf(w, "| binary | log entries at kill | replayed entries | to /ready | to first write | ingest samples/s |\n|---|---:|---:|---:|---:|---:|\n")
	bins := []string{c.bin}
	if c.baseline != "" {
		bins = append(bins, c.baseline)
	}
	for _, b := range bins {
		a := by[b]
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f s | %.2f s | %.0f |\n", b, median(a.killed), median(a.replayed), median(a.ready), median(a.write), median(a.ingest))
	}
	if c.baseline != "" {
		a, b := by[c.bin], by[c.baseline]
		fmt.Fprintf(w, "\n%s / %s: to /ready %.2fx, to first write %.2fx, replayed entries %.2fx\n", c.bin, c.baseline,
			median(a.ready)/median(b.ready), median(a.write)/median(b.write), median(a.replayed)/median(b.replayed))
	}
}
