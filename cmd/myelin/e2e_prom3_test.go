package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// findPrometheus3 returns the path of a Prometheus 3 binary: $PROMETHEUS3,
// or bin/prometheus-3 as `make prometheus3` builds it. Without one the
// test is skipped, unless PROMETHEUS3_REQUIRED is set (`make
// e2e-prometheus3` and CI set it).
func findPrometheus3(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMETHEUS3"); p != "" {
		return p
	}
	if p, err := filepath.Abs("../../bin/prometheus-3"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "no Prometheus 3: build it with `make prometheus3` (bin/prometheus-3) or set PROMETHEUS3"
	if os.Getenv("PROMETHEUS3_REQUIRED") != "" {
		t.Fatal(msg + "; PROMETHEUS3_REQUIRED is set")
	}
	t.Skip(msg)
	return ""
}

// TestE2EPrometheus3NativeHistograms: a real Prometheus 3 scrapes its own
// metrics as native histograms and the test's target every second and
// remote-writes everything to myelin with Remote-Write 2.0 (as the tenant
// of its X-Scope-OrgID header, which 3.x sends). Then the same queries
// over a past window, raw samples of native histogram series and PromQL
// over them, must answer identically from both.
func TestE2EPrometheus3NativeHistograms(t *testing.T) {
	bin := findPrometheus3(t)
	target := startTarget(t)
	my := startMyelin(t, t.TempDir(), "127.0.0.1:0", "-auth.multitenancy-enabled=true")
	rw := fmt.Sprintf(`remote_write:
  - url: http://%s/api/v1/push
    protobuf_message: io.prometheus.write.v2.Request
    send_native_histograms: true
    headers:
      X-Scope-OrgID: %s
`+e2eQueueConfig, my.addr, e2eTenant)
	prom := startPrometheusWith(t, bin, target, rw, "  scrape_native_histograms: true\n")
	promAPI := apiClient{name: "prometheus", base: "http://" + prom.addr + "/api/v1"}
	myAPI := apiClient{name: "myelin", base: "http://" + my.addr + "/prometheus/api/v1", tenant: e2eTenant}

	// Wait until both have native histograms of the window's end.
	start := time.Now().UnixMilli()
	end := start + 12_000
	const hist = `prometheus_http_request_duration_seconds`
	poll(t, 60*time.Second, 500*time.Millisecond, "native histograms in myelin past the window", func() (bool, string) {
		v, err := myAPI.scalarValue(fmt.Sprintf(`count(timestamp(%s) >= %s)`, hist, apiTime(end+2000)))
		return err == nil && v > 0, fmt.Sprint(v, err)
	})

	queries := []string{
		fmt.Sprintf(`%s[%ds]`, hist, (end-start)/1000),
		fmt.Sprintf(`histogram_quantile(0.9, sum by (handler) (rate(%s[5s])))`, hist),
		fmt.Sprintf(`histogram_count(rate(%s[5s]))`, hist),
		fmt.Sprintf(`sum(%s)`, hist),
		`count by (job) ({__name__=~".+"})`,
		`e2e_special`,
	}
	for _, q := range queries {
		poll(t, 15*time.Second, 500*time.Millisecond, "identical answers to "+q, func() (bool, string) {
			a, errA := canonical(promAPI, q, end)
			// What the sender can send: -0 arrives as 0 (result.sent;
			// Prometheus 3's v2 Sample.Marshal omits a Value == 0 too).
			a = strings.ReplaceAll(a, `,"-0"]`, `,"0"]`)
			b, errB := canonical(myAPI, q, end)
			switch {
			case errA != nil || errB != nil:
				return false, fmt.Sprintf("prometheus: %v, myelin: %v", errA, errB)
			case a != b:
				return false, fmt.Sprintf("prometheus:\n%s\nmyelin:\n%s", trimTo(a, 3000), trimTo(b, 3000))
			case strings.HasPrefix(q, hist) && !strings.Contains(a, `"histograms"`):
				return false, "no histograms in the answer: " + trimTo(a, 500)
			}
			t.Logf("%s: identical (%d bytes)", q, len(a))
			return true, ""
		})
	}

	// The same Prometheus's TSDB imported with `myelin import -tsdb`
	// (native histograms and staleness markers travel in native frames,
	// floats with their bits, -0 too) answers as that Prometheus,
	// restarted on it without targets; so does a second node fed by
	// `myelin export -format native` of the first.
	prom.stop()
	ctx := context.Background()
	imported := startMyelin(t, t.TempDir(), "127.0.0.1:0")
	var stdout, stderr bytes.Buffer
	if err := runCommandContext(ctx, []string{"import", "-url", "http://" + imported.addr, "-progress", "0", "-tsdb", prom.dataDir}, &stdout, &stderr); err != nil {
		t.Fatalf("myelin import -tsdb: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	t.Logf("myelin import -tsdb: %s", stdout.String())
	if !strings.Contains(stdout.String(), " 0 samples refused") || strings.Contains(stdout.String(), " 0 histogram samples written") {
		t.Fatalf("myelin import -tsdb: want histograms written and nothing refused:\n%s", stdout.String())
	}
	file := filepath.Join(t.TempDir(), "export.native")
	if err := runCommandContext(ctx, []string{"export", "-url", "http://" + imported.addr, "-format", "native", "-o", file}, &stdout, &stderr); err != nil {
		t.Fatalf("myelin export -format native: %v\n%s", err, stderr.String())
	}
	again := startMyelin(t, t.TempDir(), "127.0.0.1:0")
	stdout.Reset()
	if err := runCommandContext(ctx, []string{"import", "-url", "http://" + again.addr, "-progress", "0", "-format", "native", file}, &stdout, &stderr); err != nil {
		t.Fatalf("myelin import -format native: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	t.Logf("myelin import -format native: %s", stdout.String())
	restarted := runPrometheus(t, bin, "global:\n  scrape_interval: 1s\n", prom.dataDir, freeAddr(t))
	promAPI = apiClient{name: "prometheus", base: "http://" + restarted.addr + "/api/v1"}
	for _, c := range []apiClient{
		{name: "myelin import -tsdb", base: "http://" + imported.addr + "/api/v1"},
		{name: "myelin import -format native", base: "http://" + again.addr + "/api/v1"},
	} {
		for _, q := range queries {
			a, errA := canonical(promAPI, q, end)
			b, errB := canonical(c, q, end)
			switch {
			case errA != nil || errB != nil:
				t.Fatalf("%s: %s: prometheus: %v, myelin: %v", c.name, q, errA, errB)
			case a != b:
				t.Fatalf("%s: %s:\nprometheus:\n%s\nmyelin:\n%s", c.name, q, trimTo(a, 3000), trimTo(b, 3000))
			}
		}
		t.Logf("%s: %d queries identical", c.name, len(queries))
	}
}

// canonical returns the result of the instant query q at tMillis as JSON
// with its series sorted by labels, for comparing two servers.
func canonical(c apiClient, q string, tMillis int64) (string, error) {
	return canonicalAt(c, "/query", url.Values{"query": {q}, "time": {apiTime(tMillis)}})
}

// canonicalAt returns the result of the query API's path with params as
// JSON with its series sorted by labels.
func canonicalAt(c apiClient, path string, params url.Values) (string, error) {
	raw, err := c.get(path, params)
	if err != nil {
		return "", err
	}
	var data struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		return "", err
	}
	lines := make([]string, 0, len(data.Result))
	for _, r := range data.Result {
		lines = append(lines, string(r))
	}
	slices.Sort(lines)
	return data.ResultType + "\n" + strings.Join(lines, "\n"), nil
}

func trimTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// startExemplarTarget serves OpenMetrics with exemplars: a counter, a
// classic histogram with an exemplar on two buckets, and a gauge, each
// exemplar new every scrape (its trace id and timestamp the scrape's).
func startExemplarTarget(t *testing.T) string {
	t.Helper()
	var scrapes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		n := scrapes.Add(1)
		ts := float64(time.Now().UnixMilli()) / 1000
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		fmt.Fprintf(w, `# TYPE ex_requests counter
# HELP ex_requests Requests served.
ex_requests_total{path="/a"} %[1]d # {trace_id="a-%[1]d"} 1 %.3[2]f
# TYPE ex_latency_seconds histogram
# UNIT ex_latency_seconds seconds
# HELP ex_latency_seconds Request latency.
ex_latency_seconds_bucket{le="0.1"} %[1]d # {trace_id="fast-%[1]d",span_id="s%[1]d"} 0.05 %.3[2]f
ex_latency_seconds_bucket{le="1"} %[3]d # {trace_id="slow-%[1]d"} 0.5 %.3[2]f
ex_latency_seconds_bucket{le="+Inf"} %[3]d
ex_latency_seconds_sum %[4]g
ex_latency_seconds_count %[3]d
# TYPE ex_temperature gauge
# HELP ex_temperature A gauge with metadata.
ex_temperature 21.5
# EOF
`, n, ts, 2*n, 0.55*float64(n))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestE2EPrometheus3Exemplars: a real Prometheus 3 with its exemplar
// storage scrapes OpenMetrics exemplars and remote-writes them to myelin
// twice, as two tenants: with 2.0 (send_exemplars: its 2.0 sender puts
// each scrape's exemplars in series of their own, without samples, and
// sends no metadata, even with metadata-wal-records) and with 1.0 (with
// metadata every second). /api/v1/query_exemplars over a past window
// answers identically from Prometheus and from each tenant, and
// /api/v1/metadata of the 1.0 tenant identically for every family.
func TestE2EPrometheus3Exemplars(t *testing.T) {
	bin := findPrometheus3(t)
	target := startExemplarTarget(t)
	my := startMyelin(t, t.TempDir(), "127.0.0.1:0", "-auth.multitenancy-enabled=true", "-ingester.max-global-exemplars-per-user=100000")
	addr := freeAddr(t)
	const v1Tenant = e2eTenant + "-v1"
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: ex
    static_configs: [{targets: [%q]}]
remote_write:
  - url: http://%[2]s/api/v1/push
    protobuf_message: io.prometheus.write.v2.Request
    send_exemplars: true
    headers:
      X-Scope-OrgID: %[3]s
`+e2eQueueConfig+`  - url: http://%[2]s/api/v1/push
    send_exemplars: true
    metadata_config:
      send: true
      send_interval: 1s
    headers:
      X-Scope-OrgID: %[4]s
`+e2eQueueConfig, target, my.addr, e2eTenant, v1Tenant)
	prom := runPrometheus(t, bin, cfg, filepath.Join(t.TempDir(), "data"), addr, "--enable-feature=exemplar-storage")
	promAPI := apiClient{name: "prometheus", base: "http://" + prom.addr + "/api/v1"}
	myAPIs := []apiClient{
		{name: "myelin (2.0)", base: "http://" + my.addr + "/prometheus/api/v1", tenant: e2eTenant},
		{name: "myelin (1.0)", base: "http://" + my.addr + "/prometheus/api/v1", tenant: v1Tenant},
	}

	const q = `ex_requests_total or ex_latency_seconds_bucket`
	// The window starts once Prometheus scrapes (its first scrape comes
	// seconds after it is ready).
	poll(t, 60*time.Second, 200*time.Millisecond, "prometheus scraping exemplars", func() (bool, string) {
		raw, err := promAPI.get("/query_exemplars", url.Values{"query": {q}, "start": {"0"}, "end": {apiTime(time.Now().Add(time.Hour).UnixMilli())}})
		return err == nil && strings.Contains(string(raw), "trace_id"), fmt.Sprint(string(raw), err)
	})
	start := time.Now().UnixMilli()
	end := start + 6_000
	exemplars := func(c apiClient) (string, int, error) {
		raw, err := c.get("/query_exemplars", url.Values{"query": {q}, "start": {apiTime(start)}, "end": {apiTime(end)}})
		if err != nil {
			return "", 0, err
		}
		var data []json.RawMessage
		if err := json.Unmarshal(raw, &data); err != nil {
			return "", 0, err
		}
		lines := make([]string, 0, len(data))
		for _, d := range data {
			lines = append(lines, string(d))
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n"), strings.Count(string(raw), "trace_id"), nil
	}
	for _, myAPI := range myAPIs {
		poll(t, 60*time.Second, 500*time.Millisecond, myAPI.name+" has exemplars past the window", func() (bool, string) {
			raw, err := myAPI.get("/query_exemplars", url.Values{"query": {q}, "start": {apiTime(end + 1000)}, "end": {apiTime(end + 60_000)}})
			return err == nil && strings.Contains(string(raw), "trace_id"), fmt.Sprint(string(raw), err)
		})
		poll(t, 20*time.Second, 500*time.Millisecond, myAPI.name+": identical exemplars", func() (bool, string) {
			a, na, errA := exemplars(promAPI)
			b, _, errB := exemplars(myAPI)
			switch {
			case errA != nil || errB != nil:
				return false, fmt.Sprintf("prometheus: %v, myelin: %v", errA, errB)
			case a != b:
				return false, fmt.Sprintf("prometheus:\n%s\n%s:\n%s", trimTo(a, 3000), myAPI.name, trimTo(b, 3000))
			case na < 9: // three exemplars a scrape, six scrapes in the window
				return false, "too few exemplars: " + trimTo(a, 1000)
			}
			t.Logf("%s: %d exemplars, identical", myAPI.name, na)
			return true, ""
		})
	}
	for _, metric := range []string{"ex_requests", "ex_latency_seconds", "ex_temperature"} {
		poll(t, 20*time.Second, 500*time.Millisecond, "identical metadata of "+metric, func() (bool, string) {
			params := url.Values{"metric": {metric}}
			a, errA := promAPI.get("/metadata", params)
			b, errB := myAPIs[1].get("/metadata", params)
			if errA != nil || errB != nil || string(a) != string(b) || !strings.Contains(string(a), `"help"`) {
				return false, fmt.Sprintf("prometheus: %s %v\nmyelin: %s %v", a, errA, b, errB)
			}
			t.Logf("metadata of %q: %s", metric, a)
			return true, ""
		})
	}
}
