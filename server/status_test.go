package server

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func testRing() *RingStatus {
	seen := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	return &RingStatus{
		NodeID:            "n1",
		Generation:        7,
		ReplicationFactor: 3,
		GroupsPerNode:     4,
		MetadataLeader:    "n1",
		Nodes: []NodeStatus{
			{ID: "n2", Address: "10.0.0.2:9090", State: "draining", Replicas: 3, Leaders: 1, PreferredLeaders: 1},
			{ID: "n1", Address: "10.0.0.1:9090", State: "active", Replicas: 4, Leaders: 2, PreferredLeaders: 2, MetadataVoter: true, LastSeen: &seen},
		},
		Groups: []GroupStatus{
			{ID: 2, Ownership: 0.5, Tokens: 64, PreferredLeader: "n1", Leader: "n2", Replicas: []ReplicaStatus{
				{Node: "n1", Desired: true, Voter: true, State: "Follower", AppliedIndex: 90, Lag: 10},
				{Node: "n2", Desired: true, Voter: true, State: "Leader", AppliedIndex: 100},
			}},
			{ID: 1, Ownership: 0.5, Tokens: 64, PreferredLeader: "n1", Leader: "n1", Replicas: []ReplicaStatus{
				{Node: "n1", Desired: true, Voter: true, State: "Leader", AppliedIndex: 5},
			}},
		},
		Epochs: []EpochStatus{{Generation: 1, From: seen, Groups: 8}},
	}
}

func TestRingHandlerNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		method   string
		query    string
		accept   string
		wantCode int
		wantJSON bool
	}{
		{"no accept", "GET", "", "", 200, false},
		{"browser", "GET", "", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", 200, false},
		{"curl any", "GET", "", "*/*", 200, false},
		{"accept json", "GET", "", "application/json", 200, true},
		{"json preferred by q", "GET", "", "text/html;q=0.5, application/json", 200, true},
		{"html preferred by q", "GET", "", "text/html, application/json;q=0.9", 200, false},
		{"application wildcard", "GET", "", "application/*", 200, true},
		{"json refused", "GET", "", "application/json;q=0, */*", 200, false},
		{"case insensitive", "GET", "", "Application/JSON", 200, true},
		{"format json wins", "GET", "?format=json", "text/html", 200, true},
		{"format html wins", "GET", "?format=html", "application/json", 200, false},
		{"bad format", "GET", "?format=xml", "", 400, false},
		{"head", "HEAD", "?format=json", "", 200, true},
		{"post", "POST", "", "", 405, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := RingHandler(func(context.Context) (*RingStatus, error) { return testRing(), nil })
			req := httptest.NewRequest(tc.method, "/ring"+tc.query, nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("code %d, want %d: %s", rec.Code, tc.wantCode, rec.Body)
			}
			if tc.wantCode != 200 {
				return
			}
			ct := rec.Header().Get("Content-Type")
			if tc.wantJSON {
				if ct != "application/json" {
					t.Fatalf("Content-Type %q, want JSON", ct)
				}
				if tc.method == "HEAD" {
					return
				}
				var got RingStatus
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				if got.NodeID != "n1" || got.Generation != 7 || len(got.Groups) != 2 {
					t.Fatalf("decoded %+v", got)
				}
				return
			}
			if !strings.HasPrefix(ct, "text/html") {
				t.Fatalf("Content-Type %q, want HTML", ct)
			}
			if !strings.Contains(rec.Body.String(), "<h1>Ring</h1>") {
				t.Fatalf("no ring page:\n%s", rec.Body)
			}
		})
	}
}

// TestRingJSONShape pins the field names other code decodes.
func TestRingJSONShape(t *testing.T) {
	h := RingHandler(func(context.Context) (*RingStatus, error) { return testRing(), nil })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ring?format=json", nil))
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string {
		var ks []string
		for k := range v.(map[string]any) {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	for _, tc := range []struct {
		name string
		v    any
		want []string
	}{
		{"ring", m, []string{"converged", "epochs", "generation", "groups", "groups_per_node", "metadata_leader", "node_id", "nodes", "replication_factor"}},
		{"node with last_seen", m["nodes"].([]any)[0], []string{"address", "id", "last_seen", "leaders", "metadata_voter", "preferred_leaders", "replicas", "state"}},
		{"node without last_seen", m["nodes"].([]any)[1], []string{"address", "id", "leaders", "metadata_voter", "preferred_leaders", "replicas", "state"}},
		{"group", m["groups"].([]any)[0], []string{"id", "leader", "ownership", "preferred_leader", "replicas", "tokens"}},
		{"replica", m["groups"].([]any)[0].(map[string]any)["replicas"].([]any)[0], []string{"applied_index", "desired", "lag", "node", "state", "voter"}},
		{"epoch", m["epochs"].([]any)[0], []string{"from", "generation", "groups"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := keys(tc.v); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("keys %v, want %v", got, tc.want)
			}
		})
	}
	// Sorted by ID in the answer.
	if id := m["nodes"].([]any)[0].(map[string]any)["id"]; id != "n1" {
		t.Fatalf("first node %v, want n1", id)
	}
	if id := m["groups"].([]any)[0].(map[string]any)["id"]; id != 1.0 {
		t.Fatalf("first group %v, want 1", id)
	}
}

func TestRingHandlerDoesNotModifyStatus(t *testing.T) {
	st := testRing()
	h := RingHandler(func(context.Context) (*RingStatus, error) { return st, nil })
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/ring", nil))
	if !reflect.DeepEqual(st, testRing()) {
		t.Fatal("handler modified the status it was given")
	}
}

func TestRingHandlerEscapes(t *testing.T) {
	const hostile = `<script>alert("x")</script>`
	st := testRing()
	st.NodeID = hostile
	st.Nodes[0].ID = hostile
	st.Nodes[0].Address = hostile
	st.Groups[0].Leader = hostile
	st.Groups[0].Replicas[0].Node = hostile
	st.Errors = []string{hostile}
	h := RingHandler(func(context.Context) (*RingStatus, error) { return st, nil })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ring", nil))
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("code %d: %s", rec.Code, body)
	}
	if strings.Contains(body, "<script") {
		t.Fatalf("unescaped node ID in page:\n%s", body)
	}
	if !strings.Contains(body, "&lt;script&gt;") {
		t.Fatalf("node ID missing from page:\n%s", body)
	}
}

func TestRingAndTenantsError(t *testing.T) {
	boom := errors.New("metadata group has no leader")
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"ring", RingHandler(func(context.Context) (*RingStatus, error) { return nil, boom })},
		{"tenants", TenantsHandler(func(context.Context) ([]TenantStatus, error) { return nil, boom })},
	} {
		for _, q := range []string{"", "?format=json"} {
			t.Run(tc.name+q, func(t *testing.T) {
				rec := httptest.NewRecorder()
				tc.h.ServeHTTP(rec, httptest.NewRequest("GET", "/x"+q, nil))
				if rec.Code != http.StatusServiceUnavailable {
					t.Fatalf("code %d, want 503", rec.Code)
				}
				if !strings.Contains(rec.Body.String(), boom.Error()) {
					t.Fatalf("body %q lacks the reason", rec.Body)
				}
			})
		}
	}
}

func TestRingPage(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 42, 0, time.UTC)
	p := newRingPage(sortedRing(testRing()), now)
	for _, tc := range []struct {
		name string
		got  any
		want any
	}{
		{"n1 seen", p.Nodes[0].Seen, "42s ago"},
		{"n2 never seen", p.Nodes[1].Seen, "never"},
		{"n1 active", p.Nodes[0].Warn, false},
		{"n2 draining", p.Nodes[1].Warn, true},
		{"group 1 ok", len(p.Groups[0].Problems), 0},
		{"group 2 problems", p.Groups[1].Problems, []string{"led by n2, preferred n1", "n1 lags 10"}},
		{"group 2 lagging replica", p.Groups[1].Replicas[0].Warn, true},
		{"group 2 leader replica", p.Groups[1].Replicas[1].Warn, false},
		{"ownership", p.Groups[0].OwnershipPct, "50.00%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.got, tc.want) {
				t.Fatalf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestRingLastSeenAge(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	for _, tc := range []struct {
		name string
		t    *time.Time
		want string
	}{
		{"nil", nil, "never"},
		{"future", at(-time.Second), "0s ago"},
		{"sub-second", at(250 * time.Millisecond), "250ms ago"},
		{"seconds", at(3400 * time.Millisecond), "3s ago"},
		{"minutes", at(90 * time.Second), "1m30s ago"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lastSeenAge(tc.t, now); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTenantsHandler(t *testing.T) {
	stats := []TenantStatus{
		{Tenant: "zeta", Series: 2, Samples: 20, SamplesPerSecond: 1.5},
		{Tenant: "<b>alpha</b>", Series: 1, Samples: 10, SamplesPerSecond: 0.25},
	}
	h := TenantsHandler(func(context.Context) ([]TenantStatus, error) { return stats, nil })
	for _, tc := range []struct {
		name     string
		accept   string
		wantJSON bool
	}{
		{"html", "", false},
		{"json", "application/json", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/status/tenants", nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Fatalf("code %d: %s", rec.Code, rec.Body)
			}
			body := rec.Body.String()
			if tc.wantJSON {
				var got []TenantStatus
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				want := []TenantStatus{stats[1], stats[0]}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got %+v, want %+v", got, want)
				}
				if !strings.Contains(body, `"samples_per_second": 1.5`) {
					t.Fatalf("JSON field names changed:\n%s", body)
				}
				return
			}
			if strings.Contains(body, "<b>alpha") {
				t.Fatalf("unescaped tenant:\n%s", body)
			}
			a, z := strings.Index(body, "&lt;b&gt;alpha"), strings.Index(body, "zeta")
			if a < 0 || z < 0 || a > z {
				t.Fatalf("tenants missing or unsorted:\n%s", body)
			}
			if !strings.Contains(body, "1.5") {
				t.Fatalf("rate missing:\n%s", body)
			}
		})
	}
	if stats[0].Tenant != "zeta" {
		t.Fatal("handler sorted the caller's slice")
	}
}

func TestTenantsHandlerEmptyJSON(t *testing.T) {
	h := TenantsHandler(func(context.Context) ([]TenantStatus, error) { return nil, nil })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status/tenants?format=json", nil))
	if got := strings.TrimSpace(rec.Body.String()); got != "[]" {
		t.Fatalf("body %q, want []", got)
	}
}

func TestRateTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at     time.Duration // after t0
		totals map[string]int64
		want   map[string]float64
	}
	for _, tc := range []struct {
		name   string
		window time.Duration
		steps  []step
	}{
		{"one observation", 0, []step{
			{0, map[string]int64{"a": 100}, map[string]float64{"a": 0}},
		}},
		{"steady", 0, []step{
			{0, map[string]int64{"a": 0}, map[string]float64{"a": 0}},
			{10 * time.Second, map[string]int64{"a": 100}, map[string]float64{"a": 10}},
			{20 * time.Second, map[string]int64{"a": 300}, map[string]float64{"a": 15}},
		}},
		{"old observations leave the window", 0, []step{
			{0, map[string]int64{"a": 0}, map[string]float64{"a": 0}},
			{30 * time.Second, map[string]int64{"a": 3000}, map[string]float64{"a": 100}},
			{60 * time.Second, map[string]int64{"a": 3600}, map[string]float64{"a": 60}}, // t0 is exactly a window back: kept
			{90 * time.Second, map[string]int64{"a": 3900}, map[string]float64{"a": 15}}, // from 30s
			{300 * time.Second, map[string]int64{"a": 4900}, map[string]float64{"a": 0}}, // only itself left
		}},
		{"custom window", 10 * time.Second, []step{
			{0, map[string]int64{"a": 0}, map[string]float64{"a": 0}},
			{5 * time.Second, map[string]int64{"a": 50}, map[string]float64{"a": 10}},
			{15 * time.Second, map[string]int64{"a": 250}, map[string]float64{"a": 20}},
		}},
		{"counter reset restarts the window", 0, []step{
			{0, map[string]int64{"a": 1000, "b": 0}, map[string]float64{"a": 0, "b": 0}},
			{10 * time.Second, map[string]int64{"a": 1100, "b": 50}, map[string]float64{"a": 10, "b": 5}},
			{20 * time.Second, map[string]int64{"a": 30, "b": 100}, map[string]float64{"a": 0, "b": 5}},
			{30 * time.Second, map[string]int64{"a": 90, "b": 150}, map[string]float64{"a": 6, "b": 5}},
		}},
		{"clock going back restarts the window", 0, []step{
			{10 * time.Second, map[string]int64{"a": 0}, map[string]float64{"a": 0}},
			{20 * time.Second, map[string]int64{"a": 100}, map[string]float64{"a": 10}},
			{15 * time.Second, map[string]int64{"a": 200}, map[string]float64{"a": 0}},
		}},
		{"same time replaces", 0, []step{
			{0, map[string]int64{"a": 0}, map[string]float64{"a": 0}},
			{10 * time.Second, map[string]int64{"a": 100}, map[string]float64{"a": 10}},
			{10 * time.Second, map[string]int64{"a": 200}, map[string]float64{"a": 20}},
		}},
		{"absent tenant is forgotten", 0, []step{
			{0, map[string]int64{"a": 0, "b": 0}, map[string]float64{"a": 0, "b": 0}},
			{10 * time.Second, map[string]int64{"a": 10}, map[string]float64{"a": 1}},
			{20 * time.Second, map[string]int64{"a": 20, "b": 500}, map[string]float64{"a": 1, "b": 0}},
		}},
		{"empty", 0, []step{
			{0, nil, map[string]float64{}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := RateTracker{Window: tc.window}
			for i, s := range tc.steps {
				got := r.Observe(t0.Add(s.at), s.totals)
				if len(got) != len(s.want) {
					t.Fatalf("step %d: got %v, want %v", i, got, s.want)
				}
				for k, w := range s.want {
					if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-9 {
						t.Fatalf("step %d: got %v, want %v", i, got, s.want)
					}
				}
			}
		})
	}
}

func TestRateTrackerConcurrent(t *testing.T) {
	var r RateTracker
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 100 {
				r.Observe(t0.Add(time.Duration(g*100+i)*time.Millisecond), map[string]int64{"a": int64(i)})
			}
		}()
	}
	for range 4 {
		<-done
	}
}
