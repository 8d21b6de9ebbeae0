package main

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests drive myelin as a user would: a real Prometheus
// (the Debian package, 2.42) scrapes itself and a target served by the
// test every second and remote-writes to a myelin child process; then
// Prometheus's API and myelin's must answer alike. Helpers are in
// e2e_procs_test.go (processes) and e2e_api_test.go (API client).
//
// Raw samples are compared with range-vector selectors, which return them
// bit for bit as stored, except staleness markers: PromQL drops those from
// range vectors in both 2.42 and 3.x. A staleness marker shows instead in
// what instant selectors see after it, so a range query of every series
// with a 1s step is compared too; the test target makes series go stale
// (see startTarget).

// allSeries selects every series.
const allSeries = `{__name__=~".+"}`

// e2eQueries mean the same in Prometheus 2.42 and in the 3.x engine
// myelin embeds.
var e2eQueries = []struct {
	name, query string
	ties        bool // topk: equal values may select different series
}{
	{name: "sum by", query: `sum by (job) (up)`},
	{name: "count by name", query: `count by (__name__) ({job="prometheus"})`},
	{name: "topk", query: `topk(3, prometheus_http_requests_total)`, ties: true},
	{name: "label_replace", query: `label_replace(up, "x", "$1", "instance", "(.*):.*")`},
	{name: "absent", query: `absent(nonexistent_metric)`},
	{name: "histogram_quantile", query: `histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[1m])))`},
	{name: "special values", query: `e2e_special`},
	// Not rate(e2e_flap_counter_total[5s]): 3.x extrapolates a counter's
	// start towards zero differently (first sample 1 at 3.4 s into the
	// range, next 2 a second later: 2.42 says 0.5134/s, 3.x 0.4134/s).
	{name: "flapping target", query: `max_over_time(up{job="e2e_flap"}[5s])`},
}

// e2eSetup is one myelin, one Prometheus writing to it, one scrape target.
type e2eSetup struct {
	dataDir    string
	myelinArgs []string // startMyelin's args
	myelin     *myelinProc
	prom       *promProc
	startMs    int64  // before Prometheus started: no sample is older
	token      string // with auth: the token myelinAPI reads with
}

func (s *e2eSetup) myelinAPI() apiClient {
	return apiClient{name: "myelin", base: "http://" + s.myelin.addr + "/api/v1", token: s.token}
}

func (s *e2eSetup) promAPI() apiClient {
	return apiClient{name: "prometheus", base: "http://" + s.prom.addr + "/api/v1"}
}

func startE2E(t *testing.T) *e2eSetup {
	t.Helper()
	return startE2EWith(t, nil, headerRemoteWrite)
}

// startE2EWith starts myelin with myelinArgs (startMyelin's) and a
// Prometheus whose remote_write section is remoteWrite(myelin's address).
func startE2EWith(t *testing.T, myelinArgs []string, remoteWrite func(myelinAddr string) string) *e2eSetup {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test with a real Prometheus; skipped with -short")
	}
	bin := findPrometheus(t)
	// Each takes 20-35 s, mostly waiting for scrapes; side by side they
	// barely slow each other.
	t.Parallel()
	s := &e2eSetup{dataDir: filepath.Join(t.TempDir(), "data"), myelinArgs: myelinArgs}
	s.myelin = startMyelin(t, s.dataDir, "127.0.0.1:0", myelinArgs...)
	target := startTarget(t)
	s.startMs = time.Now().UnixMilli()
	s.prom = startPrometheus(t, bin, target, remoteWrite(s.myelin.addr))
	return s
}

// waitWritten polls myelin until every target's up series has a sample at
// or after tMillis, i.e. Prometheus has scraped that long and the samples
// have arrived. Series are sent in parallel shards, so other series may
// still lag by a batch; compareWindow retries for that.
func (s *e2eSetup) waitWritten(t *testing.T, tMillis int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	q := fmt.Sprintf(`min(timestamp(up)) >= %s and count(up) == 3`, apiTime(tMillis))
	for {
		v, err := s.myelinAPI().scalarValue(q)
		if err == nil && !math.IsNaN(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("myelin has no up samples at or after %s (%v ago) within %v (last error: %v)",
				apiTime(tMillis), time.Since(time.UnixMilli(tMillis)).Round(time.Millisecond), timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rawSamples returns every series' samples in [startMillis, endMillis]
// as a range-vector selector returns them (staleness markers dropped).
func rawSamples(c apiClient, startMillis, endMillis int64) (result, error) {
	// Two seconds more than the window, so that whether the range is
	// closed on the left (2.x) or open (3.x) cannot matter; window()
	// then cuts it exactly.
	rangeSecs := (endMillis-startMillis)/1000 + 2
	res, err := c.query(fmt.Sprintf("%s[%ds]", allSeries, rangeSecs), endMillis)
	if err != nil {
		return nil, err
	}
	return res.window(startMillis, endMillis), nil
}

// compareWindow requires Prometheus and myelin to hold the same series
// with the same samples in [startMillis, endMillis], which must be in the
// past. Samples still in Prometheus's remote-write queue arrive within a
// few batches, so a difference fails only if it lasts for timeout.
func (s *e2eSetup) compareWindow(t *testing.T, startMillis, endMillis int64, timeout time.Duration) {
	t.Helper()
	prom, my := s.promAPI(), s.myelinAPI()
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		diffs, stats, err := compareOnce(prom, my, startMillis, endMillis)
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) == 0 {
			t.Logf("window %s..%s (%.1fs), identical after %d attempt(s): %s",
				apiTime(startMillis), apiTime(endMillis), float64(endMillis-startMillis)/1000, attempt, stats)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("window %s..%s: prometheus and myelin still differ after %v (%d attempts); %s\n%s",
				apiTime(startMillis), apiTime(endMillis), timeout, attempt, stats, strings.Join(diffs, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// compareOnce compares the series lists, the raw samples, and what
// instant selectors see at every second of the window (which shows
// staleness markers), and returns the differences.
func compareOnce(prom, my apiClient, startMillis, endMillis int64) (diffs []string, stats string, err error) {
	promRaw, err := rawSamples(prom, startMillis, endMillis)
	if err != nil {
		return nil, "", err
	}
	if len(promRaw) < 100 {
		return nil, "", fmt.Errorf("prometheus has only %d series in the window, want a self-scrape's hundreds", len(promRaw))
	}
	myRaw, err := rawSamples(my, startMillis, endMillis)
	if err != nil {
		return nil, "", err
	}
	for _, d := range diffResults("prometheus", promRaw.sent(), "myelin", myRaw, 20, false) {
		diffs = append(diffs, "raw samples: "+d)
	}

	promSeries, err := prom.series(allSeries, startMillis, endMillis)
	if err != nil {
		return nil, "", err
	}
	mySeries, err := my.series(allSeries, startMillis, endMillis)
	if err != nil {
		return nil, "", err
	}
	for _, k := range sortedKeys(promSeries) {
		if !mySeries[k] {
			diffs = append(diffs, "series API: "+k+" listed by prometheus, not by myelin")
		}
	}
	for _, k := range sortedKeys(mySeries) {
		if !promSeries[k] {
			diffs = append(diffs, "series API: "+k+" listed by myelin, not by prometheus")
		}
	}

	promSteps, err := prom.queryRange(allSeries, startMillis, endMillis, time.Second)
	if err != nil {
		return nil, "", err
	}
	mySteps, err := my.queryRange(allSeries, startMillis, endMillis, time.Second)
	if err != nil {
		return nil, "", err
	}
	for _, d := range diffResults("prometheus", promSteps.sent(), "myelin", mySteps, 20, false) {
		diffs = append(diffs, "range query (staleness): "+d)
	}
	stale := 0 // series that went stale before the last step
	lastStep := startMillis + (endMillis-startMillis)/1000*1000
	for _, pts := range promSteps {
		if pts[len(pts)-1].tMillis < lastStep {
			stale++
		}
	}
	stats = fmt.Sprintf("%d series, %d raw samples (prometheus: %d); %d in the series API; %d series went stale",
		len(myRaw), myRaw.samples(), promRaw.samples(), len(promSeries), stale)
	if stale == 0 {
		diffs = append(diffs, "no series went stale in the window: the staleness check checked nothing")
	}
	return diffs, stats, nil
}

// compareQueries runs e2eQueries on both, instant at endMillis and as
// range queries over the window.
func (s *e2eSetup) compareQueries(t *testing.T, startMillis, endMillis int64) {
	t.Helper()
	prom, my := s.promAPI(), s.myelinAPI()
	my.base = "http://" + s.myelin.addr + "/prometheus/api/v1" // Grafana's path
	for _, q := range e2eQueries {
		t.Run(q.name, func(t *testing.T) {
			for _, kind := range []string{"instant", "range"} {
				var want, got result
				var err1, err2 error
				if kind == "instant" {
					want, err1 = prom.query(q.query, endMillis)
					got, err2 = my.query(q.query, endMillis)
				} else {
					want, err1 = prom.queryRange(q.query, startMillis, endMillis, 2*time.Second)
					got, err2 = my.queryRange(q.query, startMillis, endMillis, 2*time.Second)
				}
				if err := cmpErr(err1, err2); err != nil {
					t.Fatalf("%s query %s: %v", kind, q.query, err)
				}
				if len(want) == 0 {
					t.Fatalf("%s query %s: prometheus returned nothing; the comparison would be empty", kind, q.query)
				}
				want = want.sent()
				if q.ties {
					want, got = byValue(want), byValue(got)
				}
				if d := diffResults("prometheus", want, "myelin", got, 20, true); d != nil {
					t.Errorf("%s query %s differs:\n%s", kind, q.query, strings.Join(d, "\n"))
				}
			}
		})
	}
}

func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// byValue rekeys a result by the values at each timestamp, ignoring which
// of several equal series was chosen: the key of a series is its labels
// only where its value is the only one with that value at that time.
func byValue(r result) result {
	type tv struct {
		t int64
		v string
	}
	n := map[tv]int{}
	for _, pts := range r {
		for _, p := range pts {
			n[tv{p.tMillis, p.value}]++
		}
	}
	out := result{}
	for k, pts := range r {
		for _, p := range pts {
			key := k
			if c := n[tv{p.tMillis, p.value}]; c > 1 {
				key = fmt.Sprintf("one of %d tied series", c)
			}
			out[key] = append(out[key], p)
		}
	}
	for k := range out {
		slices.SortFunc(out[k], func(a, b point) int {
			if a.tMillis != b.tMillis {
				return int(a.tMillis - b.tMillis)
			}
			return strings.Compare(a.value, b.value)
		})
	}
	return out
}

// TestE2EPrometheusRemoteWrite lets Prometheus write for about 15 s, then
// requires every series Prometheus has in that window to be in myelin
// with identical samples, and the same answers to queries.
func TestE2EPrometheusRemoteWrite(t *testing.T) {
	s := startE2E(t)
	end := s.startMs + 14_000
	// Wait until two more scrapes after end have arrived: by then
	// everything up to end has been sent, but for a batch in flight.
	s.waitWritten(t, end+2000, 40*time.Second)
	start := s.startMs - 1000
	s.compareWindow(t, start, end, 15*time.Second)
	s.compareQueries(t, start, end)
}

// TestE2EKillAndRestart kills myelin with SIGKILL while Prometheus writes
// to it, starts it again on the same data directory and port, and
// requires that nothing it had acknowledged is lost and that Prometheus's
// retries fill in the rest.
func TestE2EKillAndRestart(t *testing.T) {
	s := startE2E(t)
	// Prometheus starts sending about 5 s after it starts (its WAL watcher
	// replays first), so this is about 5 s of writes.
	s.waitWritten(t, s.startMs+10_000, 30*time.Second)

	// What myelin shows has been committed and applied (Write returns
	// only then, and the 2xx follows), so all of it must survive the kill.
	// The final comparison with Prometheus covers what was acknowledged
	// between this query and the kill: Prometheus does not resend it.
	start, ackEnd := s.startMs-1000, time.Now().UnixMilli()
	before, err := rawSamples(s.myelinAPI(), start, ackEnd)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) < 100 {
		t.Fatalf("myelin has only %d series before the kill", len(before))
	}
	retried0, err := s.promAPI().scalarValue(`sum(prometheus_remote_storage_samples_retried_total)`)
	if err != nil {
		t.Fatal(err)
	}

	s.myelin.kill()
	if ws, ok := s.myelin.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("myelin exited with %v, want killed by SIGKILL", s.myelin.exit)
	}
	killed := time.Now()

	// Let Prometheus fail to send and retry, as it would in production.
	deadline := time.Now().Add(20 * time.Second)
	for {
		retried, err := s.promAPI().scalarValue(`sum(prometheus_remote_storage_samples_retried_total)`)
		if err != nil {
			t.Fatal(err)
		}
		if retried > retried0 || (math.IsNaN(retried0) && retried > 0) {
			t.Logf("prometheus retried %v samples after the kill", retried-retried0)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus has not retried any samples 20s after myelin was killed (%v retried before)", retried0)
		}
		time.Sleep(200 * time.Millisecond)
	}

	s.myelin = startMyelin(t, s.dataDir, s.myelin.addr, s.myelinArgs...)
	restartMs := time.Now().UnixMilli()
	t.Logf("myelin down for %v; after restart: %s", time.Since(killed).Round(time.Millisecond),
		firstLine(s.myelin.log.String(), "raft group ready"))

	after, err := rawSamples(s.myelinAPI(), start, ackEnd)
	if err != nil {
		t.Fatal(err)
	}
	// Samples sent before the kill but after the snapshot may appear now
	// (Prometheus resent them); acknowledged ones must all still be there.
	var lost []string
	n := 0
	for _, k := range sortedKeys(before) {
		have := map[point]bool{}
		for _, p := range after[k] {
			have[p] = true
		}
		for _, p := range before[k] {
			n++
			if !have[p] {
				lost = append(lost, fmt.Sprintf("%s %s", k, p))
			}
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged samples lost after kill -9 and restart, e.g.:\n%s",
			len(lost), n, strings.Join(lost[:min(len(lost), 20)], "\n"))
	}
	t.Logf("all %d samples of %d series acknowledged before the kill are there after the restart", n, len(before))

	// Prometheus resends what failed: the whole time since it started,
	// across the kill, must match.
	end := restartMs + 2000
	s.waitWritten(t, end+2000, 30*time.Second)
	s.compareWindow(t, start, end, 15*time.Second)
}

// firstLine returns the first line of log containing substr.
func firstLine(log, substr string) string {
	for line := range strings.Lines(log) {
		if strings.Contains(line, substr) {
			return strings.TrimSpace(line)
		}
	}
	return "(no line with " + substr + ")"
}
