package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
}

// canonical returns the result of the instant query q at tMillis as JSON
// with its series sorted by labels, for comparing two servers.
func canonical(c apiClient, q string, tMillis int64) (string, error) {
	raw, err := c.get("/query", url.Values{"query": {q}, "time": {apiTime(tMillis)}})
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
