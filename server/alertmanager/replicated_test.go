package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeMeta is the metadata group as the room sees it, shared by the
// nodes of a test: what a commit puts in it every node reads at once
// (each node's applied copy is the same), the owner is set by the test.
type fakeMeta struct {
	mu      sync.Mutex
	index   uint64
	owner   string
	configs map[string][]byte
	records map[string]map[string]Record // tenant -> kind/key -> latest
	failPut bool
	puts    int               // records committed
	addrs   map[string]string // node -> internal host:port
}

func newFakeMeta() *fakeMeta {
	return &fakeMeta{configs: map[string][]byte{}, records: map[string]map[string]Record{}, addrs: map[string]string{}}
}

func (f *fakeMeta) setOwner(id string) {
	f.mu.Lock()
	f.owner = id
	f.index++
	f.mu.Unlock()
}

// fakeNodeMeta is one node's Metadata over the shared fakeMeta.
type fakeNodeMeta struct {
	*fakeMeta
	id string
}

func (f fakeNodeMeta) ConfigTenants() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for t := range f.configs {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (f fakeNodeMeta) Config(tenant string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.configs[tenant]
	return b, ok
}

func (f fakeNodeMeta) SetConfig(_ context.Context, tenant string, yaml []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.configs[tenant] = yaml
	f.index++
	return nil
}

func (f fakeNodeMeta) DeleteConfig(_ context.Context, tenant string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.configs, tenant)
	f.index++
	return nil
}

func (f fakeNodeMeta) Records(tenant string) []Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Record
	for _, r := range f.records[tenant] {
		out = append(out, r)
	}
	return out
}

func (f fakeNodeMeta) PutRecord(_ context.Context, tenant string, r Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failPut {
		return ErrUnavailable
	}
	if f.records[tenant] == nil {
		f.records[tenant] = map[string]Record{}
	}
	f.puts++
	k := string(r.Kind) + "/" + r.Key
	if prev, ok := f.records[tenant][k]; !ok || prev.Updated.Before(r.Updated) {
		f.records[tenant][k] = r
	}
	return nil // records do not move Index (the cluster's AlertConfigsIndex)
}

func (f fakeNodeMeta) GCRecords(_ context.Context, tenant string, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, r := range f.records[tenant] {
		if !r.Expires.After(now) {
			delete(f.records[tenant], k)
		}
	}
	return nil
}

func (f fakeNodeMeta) Owner(string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.owner
}

func (f fakeNodeMeta) ID() string { return f.id }

func (f fakeNodeMeta) Index() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index
}

func (f fakeNodeMeta) MetadataAge() time.Duration { return 0 }

func (f fakeNodeMeta) Address(node string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addrs[node]
}

func (f fakeNodeMeta) Client() *http.Client { return http.DefaultClient }

// startReplicatedNode starts node id's Multitenant over meta, with its
// public routes and its internal handler on two servers.
func startReplicatedNode(t *testing.T, meta *fakeMeta, id string) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(Options{Metadata: fakeNodeMeta{meta, id}, MultiTenant: true, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(PathPrefix+"/", m)
	m.RegisterConfigAPI(func(p string, h http.Handler) { mux.Handle(p, h) })
	internal := http.NewServeMux()
	internal.Handle(InternalPrefix+PathPrefix+"/", m.InternalHandler())
	internal.Handle(PushPath, m.InternalHandler())
	isrv := httptest.NewServer(internal)
	u, _ := url.Parse(isrv.URL)
	meta.mu.Lock()
	meta.addrs[id] = u.Host
	meta.mu.Unlock()
	n := &node{m: m, srv: httptest.NewServer(mux), reg: reg}
	t.Cleanup(func() { n.srv.Close(); isrv.Close(); m.Close() })
	return n
}

func (m *Multitenant) runs(t string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.tenants[t] != nil
}

// TestReplicatedOwnerAndFailover: on two nodes over one metadata, a
// tenant's Alertmanager runs on its owner only; the other node forwards
// its API requests (a silence set, listed) and its alerts to the owner;
// when the owner changes, the new owner runs it with the silence and
// the notification log, so an alert notified before is not notified
// again, and the old owner forwards.
func TestReplicatedOwnerAndFailover(t *testing.T) {
	meta := newFakeMeta()
	meta.setOwner("a")
	a, b := startReplicatedNode(t, meta, "a"), startReplicatedNode(t, meta, "b")
	hook := newWebhook(t)

	if code, body := b.do(t, "POST", "/api/v1/alerts", "t1", userConfig(t, webhookConfig(hook.srv.URL), nil)); code != 201 {
		t.Fatalf("set config through b: %d %s", code, body)
	}
	waitFor(t, "a runs the tenant", func() bool { return a.m.runs("t1") })
	if b.m.runs("t1") {
		t.Fatal("b runs the tenant it does not own")
	}
	if code, body := a.do(t, "GET", "/api/v1/alerts", "t1", ""); code != 200 || !strings.Contains(body, hook.srv.URL) {
		t.Fatalf("config read on a: %d %s", code, body)
	}

	sil := `{"matchers":[{"name":"alertname","value":"Silenced","isRegex":false}],"startsAt":"` + time.Now().Format(time.RFC3339) +
		`","endsAt":"` + time.Now().Add(time.Hour).Format(time.RFC3339) + `","createdBy":"test","comment":"c"}`
	code, body := b.do(t, "POST", PathPrefix+"/api/v2/silences", "t1", sil)
	if code != 200 {
		t.Fatalf("silence through b: %d %s", code, body)
	}
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	if b.m.runs("t1") {
		t.Fatal("b started the tenant for a forwarded request")
	}
	if n := len(fakeNodeMeta{meta, "a"}.Records("t1")); n != 1 {
		t.Fatalf("%d records after one silence, want 1", n)
	}

	// The ruler's alerts through b reach a, which notifies once.
	if err := b.m.Send(context.Background(), "t1", testAlerts(map[string]string{"alertname": "Fire"}, map[string]string{"alertname": "Silenced"})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one notification", func() bool { return len(hook.messages()) == 1 })
	time.Sleep(500 * time.Millisecond) // more than the group interval
	if got := hook.messages(); len(got) != 1 || got[0].Alerts[0].Labels["alertname"] != "Fire" {
		t.Fatalf("notifications %+v, want one of Fire (Silenced is silenced)", got)
	}
	waitFor(t, "the notification log record", func() bool {
		for _, r := range (fakeNodeMeta{meta, "a"}).Records("t1") {
			if r.Kind == KindNflog {
				return true
			}
		}
		return false
	})

	// Failover: b owns the tenant now.
	meta.setOwner("b")
	waitFor(t, "b runs the tenant, a does not", func() bool { return b.m.runs("t1") && !a.m.runs("t1") })
	code, body = a.do(t, "GET", PathPrefix+"/api/v2/silences", "t1", "")
	if code != 200 || !strings.Contains(body, created.SilenceID) || !strings.Contains(body, `"state":"active"`) {
		t.Fatalf("silences through a after the failover: %d %s", code, body)
	}
	// The ruler resends: b knows it was notified.
	if err := a.m.Send(context.Background(), "t1", testAlerts(map[string]string{"alertname": "Fire"})); err != nil {
		t.Fatal(err)
	}
	code, body = a.do(t, "GET", PathPrefix+"/api/v2/alerts", "t1", "")
	if code != 200 || !strings.Contains(body, `"alertname":"Fire"`) {
		t.Fatalf("alerts on b through a: %d %s", code, body)
	}
	time.Sleep(time.Second)
	if got := hook.messages(); len(got) != 1 {
		t.Fatalf("%d notifications after the failover, want still 1: %+v", len(got), got)
	}
}

// TestReplicationFailureAnswers503: a silence whose record cannot be
// committed is not acknowledged.
func TestReplicationFailureAnswers503(t *testing.T) {
	meta := newFakeMeta()
	meta.setOwner("a")
	a := startReplicatedNode(t, meta, "a")
	meta.mu.Lock()
	meta.failPut = true
	meta.mu.Unlock()
	sil := `{"matchers":[{"name":"alertname","value":"A","isRegex":false}],"startsAt":"` + time.Now().Format(time.RFC3339) +
		`","endsAt":"` + time.Now().Add(time.Hour).Format(time.RFC3339) + `","createdBy":"test","comment":"c"}`
	if code, body := a.do(t, "POST", PathPrefix+"/api/v2/silences", "t1", sil); code != http.StatusServiceUnavailable {
		t.Fatalf("silence without a metadata leader: %d %s, want 503", code, body)
	}
	if got := counterValue(t, a.reg, "myelin_alertmanager_state_replication_failed_total", map[string]string{"tenant": "t1", "kind": "silences"}); got != 1 {
		t.Fatalf("replication failures %v, want 1", got)
	}
}

// TestNoOwner503: a node fenced off (or without an owner for the
// tenant) answers 503 rather than serve or lose a request.
func TestNoOwner503(t *testing.T) {
	meta := newFakeMeta()
	a := startReplicatedNode(t, meta, "a")
	if code, body := a.do(t, "GET", PathPrefix+"/api/v2/status", "t1", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("no owner: %d %s, want 503", code, body)
	}
	if err := a.m.Send(context.Background(), "t1", testAlerts(map[string]string{"alertname": "A"})); err == nil {
		t.Fatal("alerts sent with no owner")
	}

}

// TestImport: a node's configurations and silences of before the
// replication (FileStore and state files) move into the metadata once,
// and the tenant's replicated Alertmanager has them.
func TestImport(t *testing.T) {
	dir := t.TempDir()
	old := startNode(t, dir)
	if code, body := old.do(t, "POST", "/api/v1/alerts", "t1", userConfig(t, webhookConfig("http://127.0.0.1:1/"), nil)); code != 201 {
		t.Fatalf("set config: %d %s", code, body)
	}
	sil := `{"matchers":[{"name":"alertname","value":"A","isRegex":false}],"startsAt":"` + time.Now().Format(time.RFC3339) +
		`","endsAt":"` + time.Now().Add(time.Hour).Format(time.RFC3339) + `","createdBy":"test","comment":"kept"}`
	code, body := old.do(t, "POST", PathPrefix+"/api/v2/silences", "t1", sil)
	if code != 200 {
		t.Fatalf("silence: %d %s", code, body)
	}
	old.m.Close()

	meta := newFakeMeta()
	meta.setOwner("a")
	if err := Import(context.Background(), dir, fakeNodeMeta{meta, "a"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, ok := (fakeNodeMeta{meta, "a"}).Config("t1"); !ok {
		t.Fatal("configuration not imported")
	}
	if !exists(dir+".imported") || exists(dir) {
		t.Fatalf("%s not renamed after the import", dir)
	}
	if err := Import(context.Background(), dir, fakeNodeMeta{meta, "a"}, time.Hour); err != nil {
		t.Fatalf("a second import: %v", err)
	}
	a := startReplicatedNode(t, meta, "a")
	code, body = a.do(t, "GET", PathPrefix+"/api/v2/silences", "t1", "")
	if code != 200 || !strings.Contains(body, `"comment":"kept"`) {
		t.Fatalf("silences after the import: %d %s", code, body)
	}
}

// meshSilence is the library's broadcast of a silence (as another node's
// Alertmanager would have committed it).
func meshSilence(t *testing.T, id, comment string, now time.Time) []byte {
	t.Helper()
	m := &silencepb.MeshSilence{
		Silence: &silencepb.Silence{
			Id:          id,
			MatcherSets: []*silencepb.MatcherSet{{Matchers: []*silencepb.Matcher{{Type: silencepb.Matcher_EQUAL, Name: "alertname", Pattern: "X"}}}},
			StartsAt:    timestamppb.New(now),
			EndsAt:      timestamppb.New(now.Add(time.Hour)),
			UpdatedAt:   timestamppb.New(now),
			CreatedBy:   "other node",
			Comment:     comment,
		},
		ExpiresAt: timestamppb.New(now.Add(2 * time.Hour)),
	}
	var buf bytes.Buffer
	if _, err := protodelim.MarshalTo(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHandoverCatchUp: a record the previous owner commits after the new
// owner started the tenant (the moments between two nodes applying the
// same view change) is merged by the new owner, and not committed again.
func TestHandoverCatchUp(t *testing.T) {
	meta := newFakeMeta()
	meta.setOwner("b")
	b := startReplicatedNode(t, meta, "b")
	if code, body := b.do(t, "GET", PathPrefix+"/api/v2/status", "t1", ""); code != 200 {
		t.Fatalf("status: %d %s", code, body)
	}
	payload := meshSilence(t, "late-silence", "committed late", time.Now())
	r, err := recordOf(KindSilences, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := (fakeNodeMeta{meta, "a"}).PutRecord(context.Background(), "t1", r); err != nil {
		t.Fatal(err)
	}
	meta.mu.Lock()
	puts := meta.puts
	meta.mu.Unlock()
	waitFor(t, "b merges the late record", func() bool {
		_, body := b.do(t, "GET", PathPrefix+"/api/v2/silences", "t1", "")
		return strings.Contains(body, "committed late")
	})
	meta.mu.Lock()
	defer meta.mu.Unlock()
	if meta.puts != puts {
		t.Fatalf("%d records committed by the merge, want none", meta.puts-puts)
	}
}
