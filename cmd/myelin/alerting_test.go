package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/myelindb/myelin/server/alertmanager"
)

// This file tests the ruler's alerts end to end: to the node's own
// Alertmanager and from there to a test's webhook, amtool (Debian's
// prometheus-alertmanager package) against the node's API v2, and
// Debian's Alertmanager as the external target of -ruler.alertmanager-url.

// hookReceiver is a test's own HTTP server receiving Alertmanager's
// webhook notifications.
type hookReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	msgs  []hookMessage
	times []time.Time // when each of msgs came
}

type hookMessage struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m hookMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		h.mu.Lock()
		h.msgs = append(h.msgs, m)
		h.times = append(h.times, time.Now())
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) messages() []hookMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookMessage(nil), h.msgs...)
}

// waitMessages waits up to 20s for the first notification, then d for a
// duplicate, and returns what came.
func (h *hookReceiver) waitMessages(t *testing.T, d time.Duration) []hookMessage {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(h.messages()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no notification within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(d)
	return h.messages()
}

// hookAMConfig is an Alertmanager configuration that sends every alert
// to url at once, and again only after an hour.
func hookAMConfig(url string) string {
	return fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 500ms
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: false
`, url)
}

// alertGroup is a rule group whose alert fires at its first evaluation
// on the samples of pushBody("am_input", ...).
const alertGroup = "name: g\ninterval: 1s\nrules:\n- alert: InputHigh\n  expr: am_input > 0\n  labels:\n    severity: page\n  annotations:\n    summary: input is high\n"

// findTool returns the path of a binary of Debian's
// prometheus-alertmanager package. Without it the test is skipped on a
// developer machine and fails on CI (CI set), where .ci/run installs it.
func findTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/bin/" + name; fileExists(p) {
		return p
	}
	msg := name + " not found on PATH or in /usr/bin; install it with `make e2e-deps` " +
		"(apt-get install --no-install-recommends prometheus-alertmanager)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so this is a failure, not a skip")
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// startAlertingNode starts a node with auth, pushes am_input for alpha
// and returns its URL and tokens.
func startAlertingNode(t *testing.T, args ...string) (string, map[string]string) {
	t.Helper()
	path, tokens := writeAuthFile(t, matrixEntries())
	_, base := startAuthNode(t, path, args...)
	now := time.Now().UnixMilli()
	if code, body := authDo(t, base, "POST", "/api/v1/push", tokens["write"], alpha, pushBody(t, "am_input", now-1000, now)); code != 204 {
		t.Fatalf("push: %d %s", code, body)
	}
	return base, tokens
}

func amConfigBody(amYAML string) []byte {
	var b strings.Builder
	b.WriteString("alertmanager_config: |\n")
	for l := range strings.SplitSeq(strings.TrimRight(amYAML, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return []byte(b.String())
}

// TestRulerAlertToWebhook: a firing alert of the ruler reaches the
// tenant's Alertmanager on the same node and the test's webhook gets
// exactly one notification (the ruler resends, the notification log
// deduplicates); the node's /metrics counts it for the tenant and
// integration, and the evaluation per tenant; another tenant's
// Alertmanager holds nothing.
func TestRulerAlertToWebhook(t *testing.T) {
	hook := newHookReceiver(t)
	base, tokens := startAlertingNode(t)
	if code, body := authDo(t, base, "POST", "/api/v1/alerts", tokens["alertmanager"], alpha, amConfigBody(hookAMConfig(hook.srv.URL))); code != 201 {
		t.Fatalf("set alertmanager config: %d %s", code, body)
	}
	if code, body := authDo(t, base, "POST", "/api/v1/rules/ns", tokens["rules"], alpha, []byte(alertGroup)); code != 202 {
		t.Fatalf("set rule group: %d %s", code, body)
	}
	// Several group intervals and rule evaluations after the first.
	msgs := hook.waitMessages(t, 3*time.Second)
	if len(msgs) != 1 || len(msgs[0].Alerts) != 1 || msgs[0].Status != "firing" ||
		msgs[0].Alerts[0].Labels["alertname"] != "InputHigh" || msgs[0].Alerts[0].Labels["severity"] != "page" {
		t.Fatalf("webhook got %+v, want one firing InputHigh", msgs)
	}
	code, body := authDo(t, base, "GET", "/alertmanager/api/v2/alerts", tokens["alertmanager"], alpha, nil)
	if code != 200 || !strings.Contains(body, `"alertname":"InputHigh"`) || !strings.Contains(body, "/graph?g0.expr=am_input") {
		t.Fatalf("alpha's alerts: %d %s", code, body)
	}
	if code, body := authDo(t, base, "GET", "/alertmanager/api/v2/alerts", tokens["wrong-tenant"], bravo, nil); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("bravo's alerts: %d %s", code, body)
	}
	mcode, metrics := authDo(t, base, "GET", "/metrics", tokens["metrics"], "", nil)
	if mcode != 200 {
		t.Fatalf("/metrics: %d %s", mcode, metrics)
	}
	for _, want := range []string{
		`myelin_alertmanager_notifications_total{integration="webhook",tenant="` + alpha + `"} 1`,
		`myelin_alertmanager_notifications_failed_total{integration="webhook",reason="other",tenant="` + alpha + `"} 0`,
		`myelin_prometheus_rule_evaluation_failures_total{rule_group="ns;g",tenant="` + alpha + `"} 0`,
		`myelin_prometheus_rule_group_iterations_missed_total{rule_group="ns;g",tenant="` + alpha + `"} 0`,
		`myelin_prometheus_rule_evaluation_duration_seconds_count{tenant="` + alpha + `"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestAmtool drives the node's Alertmanager with Debian's amtool: it
// lists the ruler's alert and creates a silence, which the tenant then
// sees in its API and another tenant does not. amtool 0.25 (Debian 12)
// reads an HTTP client config without http_headers, so the tenant comes
// from its token (a token of one tenant); with auth off a newer amtool
// sends X-Scope-OrgID through http_headers.
func TestAmtool(t *testing.T) {
	amtool := findTool(t, "amtool")
	base, tokens := startAlertingNode(t)
	if code, body := authDo(t, base, "POST", "/api/v1/rules/ns", tokens["rules"], alpha, []byte(alertGroup)); code != 202 {
		t.Fatalf("set rule group: %d %s", code, body)
	}
	httpConfig := filepath.Join(t.TempDir(), "http.yml")
	if err := os.WriteFile(httpConfig, []byte("authorization:\n  credentials: "+tokens["alertmanager"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(amtool, append([]string{"--alertmanager.url=" + base + "/alertmanager", "--http.config.file=" + httpConfig}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("amtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(run("alert", "query", "-o", "json"), `"alertname":"InputHigh"`) {
		if time.Now().After(deadline) {
			t.Fatal("amtool lists no InputHigh within 20s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	id := lastLine(run("silence", "add", "alertname=InputHigh", "--comment=maintenance", "--author=test", "--duration=1h"))
	if id == "" {
		t.Fatal("amtool silence add printed no ID")
	}
	if out := run("silence", "query", "-o", "json"); !strings.Contains(out, id) || !strings.Contains(out, "maintenance") {
		t.Fatalf("amtool silence query: %s", out)
	}
	// The silence mutes the alert, in the tenant's API.
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, body := authDo(t, base, "GET", "/alertmanager/api/v2/alerts?silenced=true", tokens["alertmanager"], alpha, nil)
		if strings.Contains(body, id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the alert is not silenced by %s: %s", id, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := authDo(t, base, "GET", "/alertmanager/api/v2/silences", tokens["wrong-tenant"], bravo, nil); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("bravo's silences: %d %s", code, body)
	}
}

// TestExternalAlertmanager: with -ruler.alertmanager-url the ruler sends
// to Debian's Alertmanager (a process of its own), which notifies the
// test's webhook once; the node's own Alertmanager gets nothing.
func TestExternalAlertmanager(t *testing.T) {
	bin := findTool(t, "prometheus-alertmanager")
	hook := newHookReceiver(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgFile, []byte(hookAMConfig(hook.srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	cmd.SysProcAttr = childProcAttr()
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", tail(log.String(), 40))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready: %v\n%s", err, tail(log.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}

	base, tokens := startAlertingNode(t, "-ruler.alertmanager-url=http://"+addr)
	if code, body := authDo(t, base, "POST", "/api/v1/rules/ns", tokens["rules"], alpha, []byte(alertGroup)); code != 202 {
		t.Fatalf("set rule group: %d %s", code, body)
	}
	msgs := hook.waitMessages(t, 2*time.Second)
	if len(msgs) != 1 || len(msgs[0].Alerts) != 1 || msgs[0].Alerts[0].Labels["alertname"] != "InputHigh" {
		t.Fatalf("webhook got %+v, want one InputHigh", msgs)
	}
	resp, err := http.Get("http://" + addr + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var alerts []struct {
		Labels       map[string]string `json:"labels"`
		GeneratorURL string            `json:"generatorURL"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil || len(alerts) != 1 || alerts[0].Labels["severity"] != "page" {
		t.Fatalf("external alertmanager's alerts: %+v %v", alerts, err)
	}
	if code, body := authDo(t, base, "GET", "/alertmanager/api/v2/alerts", tokens["alertmanager"], alpha, nil); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("the node's own alertmanager got alerts: %d %s", code, body)
	}
	_, metrics := authDo(t, base, "GET", "/metrics", tokens["metrics"], "", nil)
	if want := `myelin_prometheus_notifications_sent_total{alertmanager="http://` + addr + `/api/v2/alerts",tenant="` + alpha + `"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// lastLine is the last line of amtool's output (the first may be its
// warning that our version is not its own).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// TestAlertmanagerImportsFiles: the configuration a node kept in
// DATA/alertmanager/configs before it was replicated is in the
// replicated store after the node's start, and the directory is renamed
// so it is imported once.
func TestAlertmanagerImportsFiles(t *testing.T) {
	path, tokens := writeAuthFile(t, matrixEntries())
	dir := t.TempDir()
	fs, err := alertmanager.NewFileStore(filepath.Join(dir, "alertmanager", "configs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Set(context.Background(), alpha, alertmanager.UserConfig{AlertmanagerConfig: hookAMConfig("http://127.0.0.1:1/legacy")}); err != nil {
		t.Fatal(err)
	}
	_, base := startAuthNode(t, path, "-data.dir", dir)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := authDo(t, base, "GET", "/api/v1/alerts", tokens["alertmanager"], alpha, nil)
		if code == 200 && strings.Contains(body, "127.0.0.1:1/legacy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("imported configuration: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for !fileExists(filepath.Join(dir, "alertmanager.imported")) {
		if time.Now().After(deadline) {
			t.Fatal("DATA/alertmanager not renamed after the import")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
