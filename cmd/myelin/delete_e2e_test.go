package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// deleteReq sends an admin request for tenant to the node at addr and
// returns the status and body.
//
// A 503 that asks for the request again (the cluster's metadata leader
// is being elected: a node was just killed) is sent again for up to 15 s,
// as a client would.
func deleteReq(t *testing.T, method, addr, path, tenant string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, err := http.NewRequest(method, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Scope-OrgID", tenant)
		resp, err := clusterHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "send the request again") && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return resp.StatusCode, string(b)
	}
}

// TestClusterDelete: on a three-node cluster (three groups of three
// replicas), delete_series through one node deletes whole series and a
// time range of another in every group; every API of every node stops
// showing them (query, series, label values, status/tsdb, Mimir's
// cardinality), the other tenant keeps its data, the replicas stay
// identical, also on a node that was down and catches up from a Raft
// snapshot; a tenant deletion leaves the tenant nothing, and bad
// requests get Prometheus's 400s.
func TestClusterDelete(t *testing.T) {
	// Pebble log store and short logs: the restarted node catches up
	// from a snapshot taken after the deletions (raft-wal would still
	// serve truncated entries from its open segment).
	// Answers older than a minute are cached: the whole test window.
	c := newCluster(t, 3, false, "-auth.multitenancy-enabled=true", "-raft.log-store=pebble",
		"-raft.snapshot-threshold=32", "-raft.trailing-logs=16", "-query-frontend.max-cache-freshness=1m")
	c.startAll()
	nodes := c.nodes
	ts0 := time.Now().Add(-10 * time.Minute).UnixMilli()
	ts1 := ts0 + 60_000
	for _, tenant := range []string{"acme", "other"} {
		for k, ts := range []int64{ts0, ts1} {
			push(t, nodes[k].http, tenant, seriesBody(t, "c", 0, 200, ts))
			push(t, nodes[k].http, tenant, seriesBody(t, "keep", 0, 1, ts))
		}
	}

	// Node 3 is down during the deletions.
	c.kill(nodes[2])
	live := nodes[:2]

	// Bad requests delete nothing.
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/admin/tsdb/delete_series", "no match[] parameter provided"},
		{"/api/v1/admin/tsdb/delete_series?match[]=c&start=x", `invalid parameter \"start\": invalid time value for 'start': cannot parse \"x\" to a valid timestamp`},
		{"/api/v1/admin/tsdb/delete_series?match[]=c&start=10&end=5", "end timestamp must not be before start time"},
		{"/api/v1/admin/tsdb/delete_series?match[]=c&match[]=c{", `invalid parameter \"match[]\"`},
	} {
		if code, body := deleteReq(t, "POST", nodes[0].http, tc.path, "acme"); code != 400 || !strings.Contains(body, tc.want) || !strings.Contains(body, `"errorType":"bad_data"`) {
			t.Errorf("POST %s = %d %s, want 400 saying %s", tc.path, code, body, tc.want)
		}
	}

	// Whole series: i=1, 10-19 and 100-199 (111); through node 2. A
	// range of keep (its first sample only); through node 1, with PUT.
	sel := url.QueryEscape(`c{i=~"1.*"}`)
	if code, body := deleteReq(t, "POST", nodes[1].http, "/api/v1/admin/tsdb/delete_series?match[]="+sel, "acme"); code != 204 {
		t.Fatalf("delete_series: %d %s", code, body)
	}
	rng := fmt.Sprintf("&start=%s&end=%s", apiTime(ts0-1000), apiTime(ts0+1000))
	if code, body := deleteReq(t, "PUT", nodes[0].http, "/prometheus/api/v1/admin/tsdb/delete_series?match[]=keep"+rng, "acme"); code != 204 {
		t.Fatalf("delete_series of a range: %d %s", code, body)
	}
	if code, body := deleteReq(t, "POST", nodes[0].http, "/api/v1/admin/tsdb/clean_tombstones", "acme"); code != 204 {
		t.Fatalf("clean_tombstones: %d %s", code, body)
	}

	check := func(when string, nodes []*e2eNode, otherKept bool) {
		t.Helper()
		for _, n := range nodes {
			api := apiClient{name: when + ", node " + n.id, base: "http://" + n.http + "/api/v1", tenant: "acme"}
			if v, err := api.scalarValue(fmt.Sprintf("count(count_over_time(c[1h] @ %s))", apiTime(ts1))); err != nil || v != 89 {
				t.Fatalf("%s: count(c) = %v, %v; want 89", api.name, v, err)
			}
			res, err := api.queryRange("keep", ts0, ts1, time.Minute)
			if err != nil || len(res) != 1 {
				t.Fatalf("%s: keep = %v, %v", api.name, res, err)
			}
			for _, pts := range res {
				if pts[0].tMillis < ts0+60_000 {
					t.Fatalf("%s: keep has the deleted sample: %v", api.name, pts)
				}
			}
			var series []map[string]string
			if err := getData(api, "/series", url.Values{"match[]": {"c"}}, &series); err != nil || len(series) != 89 {
				t.Fatalf("%s: /series: %d, %v", api.name, len(series), err)
			}
			var values []string
			if err := getData(api, "/label/i/values", nil, &values); err != nil || len(values) != 89 || strings.Contains(strings.Join(values, ","), "15") {
				t.Fatalf("%s: label values of i: %v, %v", api.name, values, err)
			}
			var tsdb struct {
				SeriesCountByMetricName []struct {
					Name  string `json:"name"`
					Value uint64 `json:"value"`
				} `json:"seriesCountByMetricName"`
			}
			if err := getData(api, "/status/tsdb", nil, &tsdb); err != nil {
				t.Fatalf("%s: status/tsdb: %v", api.name, err)
			}
			for _, s := range tsdb.SeriesCountByMetricName {
				if s.Name == "c" && s.Value != 89 {
					t.Fatalf("%s: status/tsdb counts %d series of c, want 89", api.name, s.Value)
				}
			}
			var card struct {
				Labels []struct {
					LabelName        string `json:"label_name"`
					LabelValuesCount uint64 `json:"label_values_count"`
				} `json:"labels"`
			}
			if err := getRaw(api, "/cardinality/label_values", url.Values{"label_names[]": {"i"}}, &card); err != nil || len(card.Labels) != 1 || card.Labels[0].LabelValuesCount != 89 {
				t.Fatalf("%s: cardinality of i: %+v, %v", api.name, card, err)
			}
			if !otherKept {
				continue
			}
			other := apiClient{name: when + ", node " + n.id + " other", base: api.base, tenant: "other"}
			if v, err := other.scalarValue(fmt.Sprintf("count(count_over_time(c[1h] @ %s))", apiTime(ts1))); err != nil || v != 200 {
				t.Fatalf("%s: count(c) = %v, %v; want 200", other.name, v, err)
			}
		}
	}
	check("after the deletion", live, true)

	// More writes, until the groups' logs are truncated past the
	// deletions: node 3 catches up from snapshots of the deleted state.
	deadline := time.Now().Add(60 * time.Second)
	for k := 0; ; k++ {
		push(t, live[k%2].http, "filler", seriesBody(t, "filler", 0, 30, ts1+int64(k)))
		if k < 64 || k%16 != 0 {
			continue
		}
		truncated := map[uint32]bool{} // by group: its leader's log
		for _, n := range live {
			st, err := n.status(false)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range st.Replicas {
				if r.State == "Leader" {
					truncated[r.Group] = r.Stats.FirstIndex > 1
				}
			}
		}
		if len(truncated) == 3 && !slices.Contains(slices.Collect(maps.Values(truncated)), false) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leaders' logs not truncated after %d writes: %v", k, truncated)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.start(nodes[2])
	waitReady(t, nodes[2].http)
	c.converge(nodes)
	if !strings.Contains(nodes[2].proc.log.String(), "Installed remote snapshot") {
		t.Errorf("node 3 did not install a snapshot")
	}
	check("node 3 restored from a snapshot", nodes, true)

	// Nodes 1 and 3 cache a range query of the tenant deleted next
	// through node 2: they must stop using it (the cache generation in
	// the metadata), not serve the deleted series for the cache's TTL.
	hits := func(n *e2eNode) float64 {
		return metricValue(t, "http://"+n.http, `myelin_query_frontend_results_cache_hits_total{kind="full"}`)
	}
	for _, n := range []*e2eNode{nodes[0], nodes[2]} {
		other := apiClient{name: "node " + n.id + " other", base: "http://" + n.http + "/api/v1", tenant: "other"}
		before := hits(n)
		for range 2 {
			if res, err := other.queryRange("count(c)", ts0, ts1, time.Minute); err != nil || len(res) != 1 {
				t.Fatalf("%s: count(c) = %v, %v", other.name, res, err)
			}
		}
		if after := hits(n); after <= before {
			t.Fatalf("%s: the second range query was not answered from the cache (hits %v, then %v)", other.name, before, after)
		}
	}

	// Mimir's tenant deletion.
	if code, body := deleteReq(t, "POST", nodes[1].http, "/purger/delete_tenant", "other"); code != 200 {
		t.Fatalf("delete_tenant: %d %s", code, body)
	}
	for _, n := range []*e2eNode{nodes[0], nodes[2]} {
		other := apiClient{name: "node " + n.id + " other", base: "http://" + n.http + "/api/v1", tenant: "other"}
		poll(t, 10*time.Second, 50*time.Millisecond, other.name+": cached count(c) after the tenant deletion", func() (bool, string) {
			res, err := other.queryRange("count(c)", ts0, ts1, time.Minute)
			return err == nil && len(res) == 0, fmt.Sprintf("%v, %v", res, err)
		})
	}
	code, body := deleteReq(t, "GET", nodes[0].http, "/purger/delete_tenant_status", "other")
	if code != 200 || !strings.Contains(body, `"blocks_deleted":true`) || !strings.Contains(body, `"tenant_id":"other"`) {
		t.Fatalf("delete_tenant_status: %d %s", code, body)
	}
	if code, body := deleteReq(t, "GET", nodes[0].http, "/purger/delete_tenant_status", "acme"); code != 200 || !strings.Contains(body, `"blocks_deleted":false`) {
		t.Fatalf("delete_tenant_status of acme: %d %s", code, body)
	}
	for _, n := range nodes {
		other := apiClient{name: "node " + n.id, base: "http://" + n.http + "/api/v1", tenant: "other"}
		var names []string
		if err := getData(other, "/labels", nil, &names); err != nil || len(names) != 0 {
			t.Fatalf("%s: labels of a deleted tenant: %v, %v", other.name, names, err)
		}
	}
	// Written again, it is a new tenant.
	push(t, nodes[0].http, "other", seriesBody(t, "d", 0, 3, ts1))
	c.converge(nodes)
	other := apiClient{name: "other again", base: "http://" + nodes[2].http + "/api/v1", tenant: "other"}
	if v, err := other.scalarValue(fmt.Sprintf("count({__name__=~\".+\"} @ %s)", apiTime(ts1))); err != nil || v != 3 {
		t.Fatalf("tenant written again: %v, %v; want 3 series", v, err)
	}
	check("after the other tenant's deletion", nodes, false)
}

// push writes body for tenant through addr, retrying 5xx while the
// cluster settles.
func push(t *testing.T, addr, tenant string, body []byte) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		code, msg := clusterPush(addr, tenant, body)
		if code == 204 {
			return
		}
		if code/100 != 5 && code != 0 || attempt == 50 {
			t.Fatalf("push: %d %s", code, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getData decodes the data of a successful answer to GET path.
func getData(api apiClient, path string, params url.Values, out any) error {
	data, err := api.get(path, params)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}

// getRaw decodes a whole answer (Mimir's cardinality API has no
// status/data envelope).
func getRaw(api apiClient, path string, params url.Values, out any) error {
	req, err := http.NewRequest("GET", api.base+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Scope-OrgID", api.tenant)
	resp, err := e2eHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// TestRetentionPeriod: a tenant's retention_period (runtime config)
// deletes its samples older than now minus it, a day partition at a
// time, and the series left without samples, on a single node; another
// tenant keeps everything.
func TestRetentionPeriod(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(path, []byte("overrides:\n  short:\n    retention_period: 1d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newLogWatcher()
	done := make(chan error, 1)
	argv := []string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0",
		"-runtime-config.file", path, "-compactor.cleanup-interval", "100ms"}
	goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
	addr := stderr.addr(t, done)
	waitReady(t, addr)
	now := time.Now()
	old, recent := now.Add(-72*time.Hour).UnixMilli(), now.Add(-time.Minute).UnixMilli()
	for _, tenant := range []string{"short", "long"} {
		for _, body := range [][]byte{seriesBody(t, "gone", 0, 3, old), seriesBody(t, "kept", 0, 2, old), seriesBody(t, "kept", 0, 2, recent)} {
			push(t, addr, tenant, body)
		}
	}
	count := func(tenant, sel string) int {
		var series []map[string]string
		api := apiClient{name: tenant, base: "http://" + addr + "/api/v1", tenant: tenant}
		if err := getData(api, "/series", url.Values{"match[]": {sel}, "start": {apiTime(old - 1000)}}, &series); err != nil {
			t.Fatal(err)
		}
		return len(series)
	}
	waitFor(t, 20*time.Second, "retention of tenant short", func() bool { return count("short", "gone") == 0 })
	api := apiClient{name: "short", base: "http://" + addr + "/api/v1", tenant: "short"}
	if v, err := api.scalarValue(fmt.Sprintf("count(count_over_time(kept[5m] @ %s))", apiTime(old+60_000))); err == nil && !math.IsNaN(v) {
		t.Fatalf("short: kept's old samples still answer: %v", v)
	}
	if n := count("short", "kept"); n != 2 {
		t.Fatalf("short: %d series of kept, want 2", n)
	}
	if n := count("long", "gone"); n != 3 {
		t.Fatalf("long: %d series of gone, want 3 (no retention)", n)
	}
	// An old sample is refused now, as too old.
	if code, body := clusterPush(addr, "short", seriesBody(t, "gone", 0, 1, old)); code != 400 || !strings.Contains(body, "too old") {
		t.Fatalf("push past retention: %d %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRetentionPeriodLonger: a tenant's retention_period longer than
// -storage.retention keeps the tenant's data for its period: once a
// retention step carried it, samples 3 days behind the newest are taken
// for that tenant and refused for another, and stay across a restart.
func TestRetentionPeriodLonger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(path, []byte("overrides:\n  long:\n    retention_period: 30d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	argv := []string{"-data.dir", dir, "-http.listen-address", "127.0.0.1:0", "-storage.retention", "48h",
		"-runtime-config.file", path, "-compactor.cleanup-interval", "100ms"}
	start := func() (string, context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		stderr := newLogWatcher()
		done := make(chan error, 1)
		goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
		addr := stderr.addr(t, done)
		waitReady(t, addr)
		return addr, cancel, done
	}
	addr, cancel, done := start()
	now := time.Now()
	old, recent := now.Add(-72*time.Hour).UnixMilli(), now.Add(-time.Minute).UnixMilli()
	for _, tenant := range []string{"short", "long"} {
		push(t, addr, tenant, seriesBody(t, "recent", 0, 2, recent))
	}
	// The first retention step gives long its period.
	poll(t, 20*time.Second, 50*time.Millisecond, "an old sample of tenant long accepted", func() (bool, string) {
		code, body := clusterPush(addr, "long", seriesBody(t, "old", 0, 3, old))
		return code == 204, fmt.Sprintf("%d %s", code, body)
	})
	if code, body := clusterPush(addr, "short", seriesBody(t, "old", 0, 3, old)); code != 400 || !strings.Contains(body, "too old") {
		t.Fatalf("short: push 3 days back: %d %s, want 400 too old", code, body)
	}
	count := func(addr, tenant string) int {
		api := apiClient{name: tenant, base: "http://" + addr + "/api/v1", tenant: tenant}
		v, err := api.scalarValue(fmt.Sprintf("count(count_over_time(old[5m] @ %s))", apiTime(old+60_000)))
		if err != nil || math.IsNaN(v) {
			return 0
		}
		return int(v)
	}
	if n := count(addr, "long"); n != 3 {
		t.Fatalf("long: %d old series answer, want 3", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	addr, cancel, done = start()
	if n := count(addr, "long"); n != 3 {
		t.Fatalf("long after a restart: %d old series answer, want 3", n)
	}
	if code, body := clusterPush(addr, "long", seriesBody(t, "old", 3, 4, old)); code != 204 {
		t.Fatalf("long after a restart: push 3 days back: %d %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
