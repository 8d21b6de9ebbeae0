// Command loadgen sends a node_exporter-like remote-write 1.0 load to any
// receiver and reports the receiver's CPU time per million samples (read
// from /proc/PID/stat, the fair figure on a shared machine) and its
// memory.
//
//	go run ./bench/cmd/loadgen -url http://127.0.0.1:9009/api/v1/push \
//	    -tenant bench -pid $(pidof myelin) -series 50000 -hours 2
//
// Requests are built and snappy-encoded before the clock starts, so the
// client's own CPU is not mixed into the server's. Series are spread over
// -shards concurrent senders by hash, as Prometheus shards its queue, so
// every series reaches the receiver in time order; 5xx and 429 are retried
// with backoff as Prometheus does.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type config struct {
	url      string
	tenant   string
	pid      int
	series   int
	hours    float64
	interval time.Duration
	shards   int
	batch    int
	seed     uint64
	dataDir  string
}

func run(args []string, out io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&cfg.url, "url", "http://127.0.0.1:9009/api/v1/push", "Remote-write URL.")
	fs.StringVar(&cfg.tenant, "tenant", "bench", "X-Scope-OrgID header value; empty sends none.")
	fs.IntVar(&cfg.pid, "pid", 0, "PID of the receiver, for its CPU time and memory (0: not measured).")
	fs.StringVar(&cfg.dataDir, "data-dir", "", "Receiver's data directory, for bytes on disk (empty: not measured).")
	fs.IntVar(&cfg.series, "series", 10000, "Active series.")
	fs.Float64Var(&cfg.hours, "hours", 1, "Hours of backfill, ending now.")
	fs.DurationVar(&cfg.interval, "interval", 15*time.Second, "Scrape interval.")
	fs.IntVar(&cfg.shards, "shards", 4, "Concurrent senders.")
	fs.IntVar(&cfg.batch, "batch", 2000, "Samples per request.")
	fs.Uint64Var(&cfg.seed, "seed", 1, "Random seed of the values.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	reqs, samples := build(cfg)
	fmt.Fprintf(out, "built %d requests, %d samples, %d series in %v\n", countReqs(reqs), samples, cfg.series, time.Since(start).Round(time.Millisecond))

	before, err := procStat(cfg.pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := send(context.Background(), cfg, reqs); err != nil {
		return err
	}
	elapsed := time.Since(t0)
	after, err := procStat(cfg.pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sent %d samples in %v: %.0f samples/s\n", samples, elapsed.Round(time.Millisecond), float64(samples)/elapsed.Seconds())
	if cfg.pid != 0 {
		cpu := after.cpu - before.cpu
		fmt.Fprintf(out, "server CPU: %.2f s, %.3f CPU-seconds per million samples\n", cpu, cpu/float64(samples)*1e6)
		fmt.Fprintf(out, "server RSS: %.1f MiB (%.0f bytes per active series), peak %.1f MiB\n",
			float64(after.rss)/(1<<20), float64(after.rss)/float64(cfg.series), float64(after.hwm)/(1<<20))
	}
	if cfg.dataDir != "" {
		n, err := dirBytes(cfg.dataDir)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "data dir: %.1f MiB, %.3f bytes per sample\n", float64(n)/(1<<20), float64(n)/float64(samples))
	}
	return nil
}

// metric families of a node_exporter, with their label sets per instance
// and how their values move.
var families = []struct {
	name   string
	labels [][]string
	kind   int // 0 counter of decimals, 1 gauge with few decimals, 2 constant, 3 true float
}{
	{"node_cpu_seconds_total", cross([]string{"cpu"}, seq(8), []string{"mode"}, []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}), 0},
	{"node_memory_MemFree_bytes", nil, 1},
	{"node_memory_Cached_bytes", nil, 1},
	{"node_network_receive_bytes_total", cross([]string{"device"}, []string{"eth0", "lo"}), 0},
	{"node_network_transmit_bytes_total", cross([]string{"device"}, []string{"eth0", "lo"}), 0},
	{"node_disk_io_time_seconds_total", cross([]string{"device"}, []string{"sda", "sdb"}), 0},
	{"node_filesystem_avail_bytes", cross([]string{"mountpoint"}, []string{"/", "/boot", "/var"}), 1},
	{"node_load1", nil, 3},
	{"node_uname_info", nil, 2},
	{"up", nil, 2},
}

func seq(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}

// cross returns every combination of (name, values) pairs.
func cross(pairs ...[]string) [][]string {
	out := [][]string{nil}
	for i := 0; i+1 < len(pairs); i += 2 {
		var next [][]string
		for _, o := range out {
			for _, v := range pairs[i+1] {
				next = append(next, append(append([]string{}, o...), pairs[i][0], v))
			}
		}
		out = next
	}
	return out
}

type series struct {
	labels []prompb.Label
	kind   int
	v      float64
	rate   float64 // counters: mean increase per scrape
}

// build makes the requests of every shard, in time order.
func build(cfg config) ([][][]byte, int) {
	rng := rand.New(rand.NewPCG(cfg.seed, 2))
	var all []series
	for inst := 0; len(all) < cfg.series; inst++ {
		for _, f := range families {
			lsets := f.labels
			if lsets == nil {
				lsets = [][]string{nil}
			}
			for _, ls := range lsets {
				if len(all) == cfg.series {
					break
				}
				l := []prompb.Label{{Name: "__name__", Value: f.name}}
				for i := 0; i < len(ls); i += 2 {
					l = append(l, prompb.Label{Name: ls[i], Value: ls[i+1]})
				}
				l = append(l, prompb.Label{Name: "instance", Value: fmt.Sprintf("host-%d:9100", inst)}, prompb.Label{Name: "job", Value: "node"})
				sortLabels(l)
				all = append(all, series{labels: l, kind: f.kind, v: math.Round(rng.Float64()*1e4) / 100, rate: math.Round(rng.ExpFloat64()*500) / 100})
			}
		}
	}
	shardOf := make([][]int, cfg.shards)
	for i, s := range all {
		h := fnv.New64a()
		for _, l := range s.labels {
			h.Write([]byte(l.Name))
			h.Write([]byte(l.Value))
		}
		k := int(h.Sum64() % uint64(cfg.shards))
		shardOf[k] = append(shardOf[k], i)
	}
	step := cfg.interval.Milliseconds()
	end := time.Now().UnixMilli() / step * step
	steps := int(cfg.hours * float64(time.Hour.Milliseconds()) / float64(step))
	startT := end - int64(steps)*step
	reqs := make([][][]byte, cfg.shards)
	total := 0
	for k, idx := range shardOf {
		var req prompb.WriteRequest
		n := 0
		flush := func() {
			if n == 0 {
				return
			}
			b, err := req.Marshal()
			if err != nil {
				panic(err)
			}
			reqs[k] = append(reqs[k], snappy.Encode(nil, b))
			req.Timeseries = req.Timeseries[:0]
			n = 0
		}
		for st := 0; st < steps; st++ {
			// Scrape jitter as recorded in the shared data: most scrapes on
			// time, one in ten a few ms late.
			t := startT + int64(st)*step
			if rng.IntN(10) == 0 {
				t += 1 + rng.Int64N(5)
			}
			for _, i := range idx {
				s := &all[i]
				switch s.kind {
				case 0: // a counter of centiseconds or bytes at a varying rate
					s.v = math.Round((s.v+s.rate*(0.5+rng.Float64()))*100) / 100
				case 1: // a gauge that moves now and then, in pages
					if rng.IntN(4) == 0 {
						s.v += float64(4096 * (rng.IntN(21) - 10))
					}
				case 3: // a true float, like a load average
					s.v = math.Abs(s.v*0.9 + rng.Float64())
				}
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: s.labels, Samples: []prompb.Sample{{Timestamp: t, Value: s.v}}})
				n++
				total++
				if n == cfg.batch {
					flush()
				}
			}
		}
		flush()
	}
	return reqs, total
}

func sortLabels(l []prompb.Label) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].Name < l[j-1].Name; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

func countReqs(reqs [][][]byte) int {
	n := 0
	for _, r := range reqs {
		n += len(r)
	}
	return n
}

// send sends every shard's requests in order, shards concurrently,
// retrying 5xx and 429 with exponential backoff (30 ms to 5 s).
func send(ctx context.Context, cfg config, reqs [][][]byte) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for _, shard := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, body := range shard {
				if err := post(ctx, client, cfg, body); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return *p
	}
	return nil
}

func post(ctx context.Context, client *http.Client, cfg config, body []byte) error {
	backoff := 30 * time.Millisecond
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		if cfg.tenant != "" {
			req.Header.Set("X-Scope-OrgID", cfg.tenant)
		}
		resp, err := client.Do(req)
		code := 0
		var msg []byte
		if err == nil {
			msg, _ = io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			code = resp.StatusCode
		}
		switch {
		case err == nil && code/100 == 2:
			return nil
		case err == nil && code/100 == 4 && code != http.StatusTooManyRequests:
			return fmt.Errorf("remote write: %d %s", code, strings.TrimSpace(string(msg)))
		case errors.Is(ctx.Err(), context.Canceled):
			return ctx.Err()
		case attempt >= 20:
			return fmt.Errorf("remote write: giving up after %d attempts: %v %d %s", attempt+1, err, code, msg)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

type stat struct {
	cpu      float64 // user + system seconds
	rss, hwm int64   // bytes
}

// procStat reads a process's CPU time from /proc/PID/stat and its memory
// from /proc/PID/status.
func procStat(pid int) (stat, error) {
	if pid == 0 {
		return stat{}, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	const ticks = 100 // USER_HZ on Linux
	s := stat{cpu: (utime + stime) / ticks}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return stat{}, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rss = kb << 10
		case "VmHWM":
			s.hwm = kb << 10
		}
	}
	return s, nil
}

func dirBytes(dir string) (int64, error) {
	var n int64
	err := walk(dir, func(size int64) { n += size })
	return n, err
}
