package alertmanager

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// webhook is a test's own HTTP receiver of Alertmanager's webhook
// notifications.
type webhook struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []webhookMessage
}

type webhookMessage struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var m webhookMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		w.mu.Lock()
		w.got = append(w.got, m)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) messages() []webhookMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]webhookMessage(nil), w.got...)
}

// node is a Multitenant behind its HTTP routes, as server wires it.
type node struct {
	m   *Multitenant
	srv *httptest.Server
	reg *prometheus.Registry
}

func startNode(t *testing.T, dir string) *node {
	t.Helper()
	store, err := NewFileStore(filepath.Join(dir, "configs"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := New(Options{Store: store, DataDir: filepath.Join(dir, "state"), MultiTenant: true, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(PathPrefix+"/", m)
	m.RegisterConfigAPI(func(p string, h http.Handler) { mux.Handle(p, h) })
	n := &node{m: m, srv: httptest.NewServer(mux), reg: reg}
	t.Cleanup(func() { n.srv.Close(); m.Close() })
	return n
}

func (n *node) do(t *testing.T, method, path, org, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, n.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if org != "" {
		req.Header.Set("X-Scope-OrgID", org)
	}
	if strings.HasPrefix(body, "[") || strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func userConfig(t *testing.T, amYAML string, templates map[string]string) string {
	t.Helper()
	b, err := yaml.Marshal(UserConfig{AlertmanagerConfig: amYAML, TemplateFiles: templates})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func webhookConfig(url string) string {
	return fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 300ms
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: false
`, url)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhookGetsOneNotification sets a tenant's configuration through
// /api/v1/alerts, posts a firing alert to its API v2 and checks that the
// test's own webhook receives it exactly once (no repeat within several
// group intervals), that the per-tenant metrics count it, and that
// another tenant sees none of it.
func TestWebhookGetsOneNotification(t *testing.T) {
	hook := newWebhook(t)
	n := startNode(t, t.TempDir())
	if code, body := n.do(t, "POST", "/api/v1/alerts", "a", userConfig(t, webhookConfig(hook.srv.URL), nil)); code != 201 {
		t.Fatalf("set config: %d %s", code, body)
	}
	alert := `[{"labels":{"alertname":"Up","job":"j"},"annotations":{"summary":"s"}}]`
	if code, body := n.do(t, "POST", "/alertmanager/api/v2/alerts", "a", alert); code != 200 {
		t.Fatalf("post alert: %d %s", code, body)
	}
	waitFor(t, "the notification", func() bool { return len(hook.messages()) > 0 })
	time.Sleep(4 * 300 * time.Millisecond) // group_interval: a repeat would come now
	msgs := hook.messages()
	if len(msgs) != 1 || len(msgs[0].Alerts) != 1 || msgs[0].Alerts[0].Labels["alertname"] != "Up" || msgs[0].Status != "firing" {
		t.Fatalf("webhook got %+v, want one firing notification of Up", msgs)
	}

	// The tenant sees its alert; another tenant sees nothing.
	if code, body := n.do(t, "GET", "/alertmanager/api/v2/alerts", "a", ""); code != 200 || !strings.Contains(body, `"alertname":"Up"`) {
		t.Fatalf("tenant a's alerts: %d %s", code, body)
	}
	if code, body := n.do(t, "GET", "/alertmanager/api/v2/alerts", "b", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("tenant b's alerts: %d %s", code, body)
	}
	if code, body := n.do(t, "GET", "/alertmanager/api/v2/alerts", "", ""); code != 401 {
		t.Fatalf("no tenant: %d %s, want 401", code, body)
	}

	if v := counterValue(t, n.reg, "myelin_alertmanager_notifications_total", map[string]string{"tenant": "a", "integration": "webhook"}); v != 1 {
		t.Fatalf("myelin_alertmanager_notifications_total{tenant=a,integration=webhook} = %v, want 1", v)
	}
	if v := counterValue(t, n.reg, "myelin_alertmanager_notifications_failed_total", map[string]string{"tenant": "a", "integration": "webhook"}); v != 0 {
		t.Fatalf("failed notifications: %v", v)
	}
}

// counterValue sums the samples of name whose labels include want.
func counterValue(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, lp := range m.GetLabel() {
				ls[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if ls[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestConfigAPI: Cortex's /api/v1/alerts reads back what was set, refuses
// bad configurations with 400 saying why, and deletes.
func TestConfigAPI(t *testing.T) {
	n := startNode(t, t.TempDir())
	if code, body := n.do(t, "GET", "/api/v1/alerts", "a", ""); code != 404 || !strings.Contains(body, "alertmanager config not found") {
		t.Fatalf("get before set: %d %s", code, body)
	}
	good := userConfig(t, webhookConfig("http://example.com/hook")+"templates: ['*.tmpl']\n", map[string]string{"a.tmpl": `{{ define "x" }}x{{ end }}`})
	if code, body := n.do(t, "POST", "/api/v1/alerts", "a", good); code != 201 {
		t.Fatalf("set: %d %s", code, body)
	}
	code, body := n.do(t, "GET", "/api/v1/alerts", "a", "")
	var got UserConfig
	if err := yaml.Unmarshal([]byte(body), &got); code != 200 || err != nil || !strings.Contains(got.AlertmanagerConfig, "http://example.com/hook") || got.TemplateFiles["a.tmpl"] == "" {
		t.Fatalf("get: %d %s (%v)", code, body, err)
	}
	if code, body := n.do(t, "GET", "/api/v1/alerts", "b", ""); code != 404 {
		t.Fatalf("tenant b reads a's config: %d %s", code, body)
	}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"not yaml", "{", "error marshalling YAML Alertmanager config"},
		{"empty", userConfig(t, "", nil), "configuration provided is empty"},
		{"unknown receiver", userConfig(t, "route:\n  receiver: nope\nreceivers:\n- name: x\n", nil), `undefined receiver "nope"`},
		{"password file", userConfig(t, "route:\n  receiver: x\nreceivers:\n- name: x\n  webhook_configs:\n  - url: http://h/\n    http_config:\n      basic_auth:\n        username: u\n        password_file: /etc/shadow\n", nil), "password_file: setting a file"},
		{"template with a path", userConfig(t, webhookConfig("http://h/"), map[string]string{"../x.tmpl": "x"}), `invalid template name "../x.tmpl"`},
		{"bad template", userConfig(t, webhookConfig("http://h/")+"templates: [t.tmpl]\n", map[string]string{"t.tmpl": "{{ define }"}), `template "t.tmpl"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := n.do(t, "POST", "/api/v1/alerts", "a", tc.body)
			if code != 400 || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want 400 with %q", code, body, tc.want)
			}
		})
	}
	// The refused configurations left the stored one alone.
	if code, body := n.do(t, "GET", "/api/v1/alerts", "a", ""); code != 200 || !strings.Contains(body, "http://example.com/hook") {
		t.Fatalf("get after refusals: %d %s", code, body)
	}
	if code, body := n.do(t, "DELETE", "/api/v1/alerts", "a", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, body := n.do(t, "GET", "/api/v1/alerts", "a", ""); code != 404 {
		t.Fatalf("get after delete: %d %s", code, body)
	}
	// A tenant without a configuration runs the fallback: its API works.
	if code, body := n.do(t, "GET", "/alertmanager/api/v2/status", "c", ""); code != 200 || !strings.Contains(body, "empty-receiver") {
		t.Fatalf("status of a tenant without config: %d %s", code, body)
	}
}

// TestSilenceSurvivesCrash: a silence the API acknowledged is in the
// state log before the answer, so a copy of the data directory taken at
// that moment (a crash: no final snapshot) has it; a clean restart has
// it too, and expiring it is also durable.
func TestSilenceSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	sil := fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"Up","isRegex":false,"isEqual":true}],"startsAt":%q,"endsAt":%q,"createdBy":"me","comment":"maintenance"}`,
		time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
	code, body := n.do(t, "POST", "/alertmanager/api/v2/silences", "a", sil)
	if code != 200 {
		t.Fatalf("create silence: %d %s", code, body)
	}
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil || created.SilenceID == "" {
		t.Fatalf("silence answer %s: %v", body, err)
	}
	crash := t.TempDir()
	if err := os.CopyFS(crash, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, crash)
	if code, body := n2.do(t, "GET", "/alertmanager/api/v2/silence/"+created.SilenceID, "a", ""); code != 200 || !strings.Contains(body, `"state":"active"`) {
		t.Fatalf("silence after a crash: %d %s", code, body)
	}
	if code, body := n2.do(t, "GET", "/alertmanager/api/v2/silences", "b", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("tenant b's silences: %d %s", code, body)
	}
	// Expire it, then restart cleanly (final snapshot, logs dropped).
	if code, body := n2.do(t, "DELETE", "/alertmanager/api/v2/silence/"+created.SilenceID, "a", ""); code != 200 {
		t.Fatalf("expire: %d %s", code, body)
	}
	n2.srv.Close()
	n2.m.Close()
	n3 := startNode(t, crash)
	if code, body := n3.do(t, "GET", "/alertmanager/api/v2/silence/"+created.SilenceID, "a", ""); code != 200 || !strings.Contains(body, `"state":"expired"`) {
		t.Fatalf("expired silence after a restart: %d %s", code, body)
	}
}

// TestSendInProcess is the ruler's path: alerts handed to Send are
// routed by the tenant's configuration, and an invalid one is refused
// while the valid one is taken.
func TestSendInProcess(t *testing.T) {
	hook := newWebhook(t)
	n := startNode(t, t.TempDir())
	if code, body := n.do(t, "POST", "/api/v1/alerts", "a", userConfig(t, webhookConfig(hook.srv.URL), nil)); code != 201 {
		t.Fatalf("set config: %d %s", code, body)
	}
	err := n.m.Send(t.Context(), "a", testAlerts(map[string]string{"alertname": "Sent"}, map[string]string{}))
	if err == nil || !strings.Contains(err.Error(), "at least one label pair required") {
		t.Fatalf("send with an invalid alert: %v", err)
	}
	waitFor(t, "the notification", func() bool { return len(hook.messages()) > 0 })
	if msgs := hook.messages(); len(msgs) != 1 || msgs[0].Alerts[0].Labels["alertname"] != "Sent" {
		t.Fatalf("webhook got %+v", msgs)
	}
}

// TestConfigsAtStartAndFromElsewhere: a node starts the stored
// configurations, and a configuration another writer stored is applied
// at the next sync.
func TestConfigsAtStartAndFromElsewhere(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	if code, body := n.do(t, "POST", "/api/v1/alerts", "a", userConfig(t, namedReceiver(webhookConfig("http://h/"), "first"), nil)); code != 201 {
		t.Fatalf("set: %d %s", code, body)
	}
	n.srv.Close()
	n.m.Close()
	n2 := startNode(t, dir)
	if code, body := n2.do(t, "GET", "/alertmanager/api/v2/status", "a", ""); code != 200 || !strings.Contains(body, "receiver: first") {
		t.Fatalf("status after a restart: %d %s", code, body)
	}
	// Another writer (another node's API, later the replicated store).
	if err := n2.m.opts.Store.Set(t.Context(), "a", UserConfig{AlertmanagerConfig: namedReceiver(webhookConfig("http://h/"), "second")}); err != nil {
		t.Fatal(err)
	}
	n2.m.Changed()
	waitFor(t, "the new configuration", func() bool {
		_, body := n2.do(t, "GET", "/alertmanager/api/v2/status", "a", "")
		return strings.Contains(body, "receiver: second")
	})
}

// TestPostAlertsKeepsValidOnes: a batch with an invalid alert is a 400
// saying why, and its valid alerts are taken.
func TestPostAlertsKeepsValidOnes(t *testing.T) {
	n := startNode(t, t.TempDir())
	batch := `[{"labels":{"alertname":"Good"}},{"labels":{"alertname":"Bad"},"startsAt":"2030-01-02T00:00:00Z","endsAt":"2030-01-01T00:00:00Z"}]`
	if code, body := n.do(t, "POST", "/alertmanager/api/v2/alerts", "a", batch); code != 400 || !strings.Contains(body, "start time must be before end time") {
		t.Fatalf("post: %d %s", code, body)
	}
	if code, body := n.do(t, "GET", "/alertmanager/api/v2/alerts", "a", ""); code != 200 || !strings.Contains(body, `"alertname":"Good"`) || strings.Contains(body, "Bad") {
		t.Fatalf("alerts: %d %s", code, body)
	}
}

// namedReceiver renames webhookConfig's receiver.
func namedReceiver(cfg, name string) string {
	return strings.NewReplacer("receiver: hook", "receiver: "+name, "name: hook", "name: "+name).Replace(cfg)
}

// TestSyncKeepsUnchangedConfig: a sync that reads back the configuration
// the API applied leaves the running dispatcher alone (the store's YAML
// turns a missing template_files into an empty one).
func TestSyncKeepsUnchangedConfig(t *testing.T) {
	n := startNode(t, t.TempDir())
	if code, body := n.do(t, "POST", "/api/v1/alerts", "a", userConfig(t, webhookConfig("http://h/"), nil)); code != 201 {
		t.Fatalf("set: %d %s", code, body)
	}
	am, err := n.m.running(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	before := am.disp.Load()
	if err := n.m.sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if am.disp.Load() != before {
		t.Fatal("a sync of the same configuration restarted the dispatcher")
	}
}
