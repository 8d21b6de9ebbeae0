// Command rulebench measures what recording rules cost to evaluate: the
// same recording rules of one tenant over the same series, evaluated by a
// single Myelin node and by Prometheus side by side (issue 18's
// benchmark: 10,000 rules, each over ~50 series, every 15 s).
//
// Both servers get the same data by remote write: -metrics metrics of 50
// series each, 10 minutes of history, then one sample per series every
// -interval while the run lasts. Then, per server, two windows of
// -window each with the same writes: one without rules (the cost of the
// writes alone) and one with the rules (Myelin: set through its rule
// configuration API; Prometheus: a rule file and a reload), after two
// evaluation intervals to start. The rules' CPU is the difference, given
// per 1,000 rules per evaluation. Missed iterations and the slowest
// group's last evaluation come from each server's own metrics, and the
// number of series the rules recorded must be the same on both.
//
//	make bench-rules            # or: go run ./bench/cmd/rulebench -h
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/server"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rulebench:", err)
		os.Exit(1)
	}
}

type config struct {
	myelinBin, promBin string
	rules, metrics     int
	groupSize          int
	interval, window   time.Duration
	tenant             string
	out                string
	workDir            string
}

const seriesPerMetric = 50

func run(args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("rulebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.myelinBin, "myelin", "bin/myelin", "Myelin binary (make build).")
	fs.StringVar(&cfg.promBin, "prometheus", "", "Prometheus binary (default: prometheus on PATH).")
	fs.IntVar(&cfg.rules, "rules", 10000, "Recording rules of the tenant.")
	fs.IntVar(&cfg.metrics, "metrics", 200, "Metrics of 50 series each; rule i reads metric i mod metrics.")
	fs.IntVar(&cfg.groupSize, "group-size", 100, "Rules per rule group.")
	fs.DurationVar(&cfg.interval, "interval", 15*time.Second, "Evaluation interval of every group, and the write interval.")
	fs.DurationVar(&cfg.window, "window", 2*time.Minute, "Length of each measured window.")
	fs.StringVar(&cfg.tenant, "tenant", "bench", "Tenant (X-Scope-OrgID) of Myelin's writes and rules.")
	fs.StringVar(&cfg.out, "out", "", "Also write the table to this file.")
	fs.StringVar(&cfg.workDir, "work-dir", "", "Directory for the servers' data and logs (default: a temporary one, removed after).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.rules <= 0 || cfg.metrics <= 0 || cfg.groupSize <= 0 || cfg.interval <= 0 || cfg.window < cfg.interval {
		return errors.New("-rules, -metrics, -group-size and -interval must be above 0, -window at least -interval")
	}
	if cfg.promBin == "" {
		p, err := exec.LookPath("prometheus")
		if err != nil {
			return fmt.Errorf("no prometheus on PATH (apt-get install prometheus, or -prometheus): %w", err)
		}
		cfg.promBin = p
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work := cfg.workDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "rulebench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "rulebench: "+format+"\n", a...) }

	var results []result
	for _, name := range []string{"myelin", "prometheus"} {
		dir := filepath.Join(work, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		r, err := measure(ctx, cfg, name, dir, logf)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r)
	}
	table := format(cfg, results)
	fmt.Fprint(stdout, table)
	if cfg.out != "" {
		return os.WriteFile(cfg.out, []byte(table), 0o644)
	}
	return nil
}

// result is one server's run.
type result struct {
	name              string
	baseCPU, rulesCPU float64 // CPU-s in each window
	evaluations       float64 // evaluations of every group in the rules window
	missed, failures  float64
	slowestGroup      float64 // seconds, the largest last evaluation duration
	recordedSeries    int
	rssBase, rssRules int64
}

func measure(ctx context.Context, cfg config, name, dir string, logf func(string, ...any)) (result, error) {
	res := result{name: name}
	var srv *server.Server
	var err error
	ruleFile := filepath.Join(dir, "rules.yml")
	var pushURL, metricsPrefix string
	header := http.Header{}
	switch name {
	case "myelin":
		srv, err = server.StartMyelin(ctx, cfg.myelinBin, dir,
			"-ruler.evaluation-interval", cfg.interval.String(), "-ruler.poll-interval", "10s")
		pushURL, metricsPrefix = "/api/v1/push", "myelin_"
		header.Set("X-Scope-OrgID", cfg.tenant)
	default:
		promCfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  evaluation_interval: %s\nrule_files: [%q]\n", cfg.interval, cfg.interval, ruleFile)
		if err := os.WriteFile(ruleFile, []byte("groups: []\n"), 0o644); err != nil {
			return res, err
		}
		srv, err = server.StartPrometheus(ctx, cfg.promBin, dir, promCfg, "--web.enable-lifecycle")
		pushURL = "/api/v1/write"
	}
	if err != nil {
		return res, err
	}
	defer srv.Stop()
	base := "http://" + srv.Addr
	w := &writer{url: base + pushURL, header: header, metrics: cfg.metrics}

	// History: 10 minutes at the interval, so rate(...[5m]) has data.
	now := time.Now()
	for t := now.Add(-10 * time.Minute); t.Before(now); t = t.Add(cfg.interval) {
		if err := w.push(ctx, t); err != nil {
			return res, err
		}
	}
	tick := func(until time.Time) error {
		for time.Now().Before(until) {
			if err := w.push(ctx, time.Now()); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(cfg.interval):
			}
		}
		return nil
	}
	window := func() (float64, int64, error) {
		p0, err := load.ReadProc(srv.PID())
		if err != nil {
			return 0, 0, err
		}
		if err := tick(time.Now().Add(cfg.window)); err != nil {
			return 0, 0, err
		}
		p1, err := load.ReadProc(srv.PID())
		return p1.CPUSeconds - p0.CPUSeconds, p1.RSS, err
	}

	logf("%s: window without rules (%v)", name, cfg.window)
	if res.baseCPU, res.rssBase, err = window(); err != nil {
		return res, err
	}

	groups := ruleGroups(cfg)
	logf("%s: %d rules in %d groups", name, cfg.rules, len(groups))
	switch name {
	case "myelin":
		for _, g := range groups {
			if err := post(ctx, base+"/api/v1/rules/bench", header, "application/yaml", g); err != nil {
				return res, fmt.Errorf("set rule group: %w", err)
			}
		}
	default:
		var b bytes.Buffer
		b.WriteString("groups:\n")
		for _, g := range groups {
			b.WriteString(indent(g))
		}
		if err := os.WriteFile(ruleFile, b.Bytes(), 0o644); err != nil {
			return res, err
		}
		if err := post(ctx, base+"/-/reload", nil, "", ""); err != nil {
			return res, fmt.Errorf("reload: %w", err)
		}
	}
	// Two intervals for every group to start evaluating.
	if err := tick(time.Now().Add(2 * cfg.interval)); err != nil {
		return res, err
	}
	ev0, err := sumMetric(ctx, base, metricsPrefix+"prometheus_rule_evaluations_total", header)
	if err != nil {
		return res, err
	}
	logf("%s: window with rules (%v)", name, cfg.window)
	if res.rulesCPU, res.rssRules, err = window(); err != nil {
		return res, err
	}
	ev1, err := sumMetric(ctx, base, metricsPrefix+"prometheus_rule_evaluations_total", header)
	if err != nil {
		return res, err
	}
	res.evaluations = (ev1 - ev0) / float64(cfg.rules)
	if res.missed, err = sumMetric(ctx, base, metricsPrefix+"prometheus_rule_group_iterations_missed_total", header); err != nil {
		return res, err
	}
	if res.failures, err = sumMetric(ctx, base, metricsPrefix+"prometheus_rule_evaluation_failures_total", header); err != nil {
		return res, err
	}
	if res.slowestGroup, err = maxMetric(ctx, base, metricsPrefix+"prometheus_rule_group_last_duration_seconds", header); err != nil {
		return res, err
	}
	if res.recordedSeries, err = countRecorded(ctx, base, header); err != nil {
		return res, err
	}
	return res, nil
}

// ruleGroups returns the rule groups' YAML: rule i reads metric i mod
// metrics with one of four expressions, each over the metric's 50 series.
func ruleGroups(cfg config) []string {
	var out []string
	var b strings.Builder
	for i := range cfg.rules {
		if i%cfg.groupSize == 0 {
			if b.Len() > 0 {
				out = append(out, b.String())
				b.Reset()
			}
			fmt.Fprintf(&b, "name: group_%d\ninterval: %s\nrules:\n", i/cfg.groupSize, cfg.interval)
		}
		m := fmt.Sprintf("bench_metric_%d_total", i%cfg.metrics)
		var expr string
		switch (i / cfg.metrics) % 4 {
		case 0:
			expr = fmt.Sprintf("sum by (job) (rate(%s[5m]))", m)
		case 1:
			expr = fmt.Sprintf("avg by (zone) (rate(%s[5m]))", m)
		case 2:
			expr = fmt.Sprintf("max by (job) (increase(%s[2m]))", m)
		default:
			expr = fmt.Sprintf("count by (zone) (%s > %d)", m, i%100)
		}
		fmt.Fprintf(&b, "- record: bench:rule_%d:value\n  expr: %s\n", i, expr)
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

// indent turns a group's YAML into an item of a rule file's groups list.
func indent(group string) string {
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimRight(group, "\n"), "\n") {
		if i == 0 {
			b.WriteString("- " + line + "\n")
		} else {
			b.WriteString("  " + line + "\n")
		}
	}
	return b.String()
}

// writer sends one sample of every series per call, by remote write 1.0.
type writer struct {
	url     string
	header  http.Header
	metrics int
	value   float64
}

func (w *writer) push(ctx context.Context, t time.Time) error {
	w.value++
	var req prompb.WriteRequest
	for m := range w.metrics {
		name := fmt.Sprintf("bench_metric_%d_total", m)
		for s := range seriesPerMetric {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels: []prompb.Label{
					{Name: "__name__", Value: name},
					{Name: "instance", Value: "host-" + strconv.Itoa(s)},
					{Name: "job", Value: "job-" + strconv.Itoa(s%3)},
					{Name: "zone", Value: "zone-" + strconv.Itoa(s%5)},
				},
				Samples: []prompb.Sample{{Timestamp: t.UnixMilli(), Value: w.value * float64(1+s%7)}},
			})
		}
	}
	b, err := req.Marshal()
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(snappy.Encode(nil, b)))
	if err != nil {
		return err
	}
	for k, v := range w.header {
		hr.Header[k] = v
	}
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("remote write: %d %s", resp.StatusCode, body)
	}
	return nil
}

func post(ctx context.Context, u string, header http.Header, contentType, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d %s", u, resp.StatusCode, b)
	}
	return nil
}

// get returns the body and status of a GET with header.
func get(ctx context.Context, u string, header http.Header) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

// metricLines returns the values of /metrics lines of the metric name
// (any labels).
func metricLines(ctx context.Context, base, name string, header http.Header) ([]float64, error) {
	b, _, err := get(ctx, base+"/metrics", header)
	if err != nil {
		return nil, err
	}
	var out []float64
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[strings.LastIndexByte(rest, ' ')+1:]), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.TrimSpace(line), err)
		}
		out = append(out, v)
	}
	return out, nil
}

func sumMetric(ctx context.Context, base, name string, header http.Header) (float64, error) {
	vs, err := metricLines(ctx, base, name, header)
	sum := 0.0
	for _, v := range vs {
		sum += v
	}
	return sum, err
}

func maxMetric(ctx context.Context, base, name string, header http.Header) (float64, error) {
	vs, err := metricLines(ctx, base, name, header)
	m := 0.0
	for _, v := range vs {
		m = math.Max(m, v)
	}
	return m, err
}

// countRecorded asks the server how many series the rules recorded.
func countRecorded(ctx context.Context, base string, header http.Header) (int, error) {
	q := url.Values{"query": {`count({__name__=~"bench:rule_.+"})`}}
	b, code, err := get(ctx, base+"/api/v1/query?"+q.Encode(), header)
	if err != nil {
		return 0, err
	}
	// {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[t,"N"]}]}}
	i := bytes.LastIndex(b, []byte(`,"`))
	j := bytes.LastIndex(b, []byte(`"]`))
	if code != 200 || i < 0 || j < i {
		return 0, fmt.Errorf("count recorded series: %d %s", code, b)
	}
	return strconv.Atoi(string(b[i+2 : j]))
}

// num prints whole numbers whole and others with three digits.
func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func format(cfg config, rs []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d recording rules of one tenant in groups of %d, each over %d series (%d metrics), every %v; windows of %v\n\n",
		cfg.rules, cfg.groupSize, seriesPerMetric, cfg.metrics, cfg.interval, cfg.window)
	// Per evaluation of every rule, as counted by the server: the window
	// holds window/interval of them, give or take one per group.
	per := func(r result) float64 {
		return (r.rulesCPU - r.baseCPU) / r.evaluations / (float64(cfg.rules) / 1000)
	}
	fmt.Fprintf(&b, "| | %s | %s | %s / %s |\n|---|---:|---:|---:|\n", rs[0].name, rs[1].name, rs[0].name, rs[1].name)
	row := func(what string, f func(result) float64, unit string, ratio bool) {
		a, c := f(rs[0]), f(rs[1])
		r := ""
		if ratio && c != 0 {
			r = fmt.Sprintf("**%.2fx**", a/c)
		}
		fmt.Fprintf(&b, "| %s | %s%s | %s%s | %s |\n", what, num(a), unit, num(c), unit, r)
	}
	row("rule CPU per 1,000 rules per evaluation", func(r result) float64 { return per(r) * 1000 }, " ms", true)
	row("CPU-s in the window without rules (writes only)", func(r result) float64 { return r.baseCPU }, "", true)
	row("CPU-s in the window with rules", func(r result) float64 { return r.rulesCPU }, "", true)
	row("evaluations of every rule in the window", func(r result) float64 { return r.evaluations }, "", false)
	row("slowest group's last evaluation", func(r result) float64 { return r.slowestGroup }, " s", false)
	row("missed iterations", func(r result) float64 { return r.missed }, "", false)
	row("evaluation failures", func(r result) float64 { return r.failures }, "", false)
	row("recorded series", func(r result) float64 { return float64(r.recordedSeries) }, "", false)
	row("RSS with rules, MiB", func(r result) float64 { return float64(r.rssRules) / (1 << 20) }, "", true)
	if rs[0].recordedSeries != rs[1].recordedSeries {
		fmt.Fprintf(&b, "\nThe recorded series differ: %d against %d.\n", rs[0].recordedSeries, rs[1].recordedSeries)
	}
	return b.String()
}
