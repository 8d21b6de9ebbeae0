package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rulerGroupsOf returns the rule groups of the cluster as node addr's
// /prometheus/api/v1/rules lists them (every node's groups), by name,
// with their last evaluation.
func rulerGroupsOf(addr string) (map[string]time.Time, error) {
	var r struct {
		Data struct {
			Groups []struct {
				Name           string    `json:"name"`
				LastEvaluation time.Time `json:"lastEvaluation"`
			} `json:"groups"`
		} `json:"data"`
		Warnings []string `json:"warnings"`
	}
	if err := getJSON("http://"+addr+"/prometheus/api/v1/rules", &r); err != nil {
		return nil, err
	}
	if len(r.Warnings) > 0 {
		return nil, fmt.Errorf("warnings: %v", r.Warnings)
	}
	out := map[string]time.Time{}
	for _, g := range r.Data.Groups {
		if _, dup := out[g.Name]; dup {
			return nil, fmt.Errorf("group %s listed twice", g.Name)
		}
		out[g.Name] = g.LastEvaluation
	}
	return out, nil
}

// evaluatedBy returns the rule groups node addr evaluates itself, by
// name, with their last evaluation: its own
// myelin_prometheus_rule_group_last_evaluation_timestamp_seconds.
func evaluatedBy(addr string) (map[string]time.Time, error) {
	resp, err := clusterHTTP.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "myelin_prometheus_rule_group_last_evaluation_timestamp_seconds{")
		if !ok {
			continue
		}
		_, group, ok := strings.Cut(rest, `rule_group="`)
		if !ok {
			return nil, fmt.Errorf("no rule_group in %q", line)
		}
		group, _, _ = strings.Cut(group, `"`)
		_, name, _ := strings.Cut(group, ";")
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[strings.LastIndexByte(rest, ' ')+1:]), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		out[name] = time.UnixMilli(int64(v * 1000))
	}
	return out, nil
}

// alertsOf returns the active alerts of node addr
// (/prometheus/api/v1/alerts): alert name -> when it became active.
func alertsOf(addr string) (map[string]time.Time, error) {
	var r struct {
		Data struct {
			Alerts []struct {
				Labels   map[string]string `json:"labels"`
				ActiveAt time.Time         `json:"activeAt"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := getJSON("http://"+addr+"/prometheus/api/v1/alerts", &r); err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for _, a := range r.Data.Alerts {
		out[a.Labels["alertname"]] = a.ActiveAt
	}
	return out, nil
}

// rulerDo sends a request of the rule configuration API.
func rulerDo(method, addr, path, body string) (int, string, error) {
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := clusterHTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(bytes.TrimSpace(b)), err
}

// evaluators waits until every group in names is evaluated (a last
// evaluation after since) by exactly one of the nodes and no node
// evaluates any other group, and returns each group's node; it fails
// the test after timeout.
func evaluators(t *testing.T, nodes []*e2eNode, names []string, since time.Time, timeout time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for {
		owner := map[string]string{}
		why = ""
		for _, n := range nodes {
			gs, err := evaluatedBy(n.http)
			if err != nil {
				why = fmt.Sprintf("node %s: %v", n.id, err)
				break
			}
			for name, last := range gs {
				if prev, ok := owner[name]; ok {
					why = fmt.Sprintf("group %s on nodes %s and %s", name, prev, n.id)
				}
				if !slices.Contains(names, name) {
					why = fmt.Sprintf("node %s evaluates unknown group %s", n.id, name)
				}
				owner[name] = n.id
				if !last.After(since) && why == "" {
					why = fmt.Sprintf("group %s on node %s last evaluated at %v, not after %v", name, n.id, last, since)
				}
			}
		}
		if why == "" {
			for _, name := range names {
				if owner[name] == "" {
					why = "group " + name + " is evaluated nowhere"
					break
				}
			}
		}
		if why == "" {
			return owner
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRulerCluster: on three real nodes, rule groups set through node 1
// are listed by node 2, each is evaluated by exactly one node (its own
// metrics say which), every node's /prometheus/api/v1/rules and /alerts
// list every node's groups and alerts, and when
// node 1 is killed the groups are still listed, a new group can be set,
// and node 1's groups are evaluated by the others within DeadAfter and
// one interval (docs/design.md "Ruler"), with their pending alerts'
// `for` state restored from ALERTS_FOR_STATE.
func TestRulerCluster(t *testing.T) {
	const deadAfter, interval = 3 * time.Second, time.Second
	c := newCluster(t, 3, false, "-cluster.dead-after="+deadAfter.String(), "-ruler.poll-interval=1h")
	c.startAll()
	a, b, third := c.nodes[0], c.nodes[1], c.nodes[2]
	var names []string
	for i := range 9 {
		name := fmt.Sprintf("g%d", i)
		names = append(names, name)
		// The alert's `for` is above Prometheus's grace period (10m), so
		// a group that starts elsewhere restores its pending time.
		group := fmt.Sprintf("name: %s\ninterval: %v\nrules:\n- record: rha_%s\n  expr: vector(%d)\n- alert: A_%s\n  expr: vector(1)\n  for: 15m\n",
			name, interval, name, i, name)
		code, body, err := rulerDo("POST", a.http, "/api/v1/rules/ns", group)
		if err != nil || code != 202 {
			t.Fatalf("set group %s through node %s: %d %s %v", name, a.id, code, body, err)
		}
	}
	// Node 2 lists them: every node reads its applied copy.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body, err := rulerDo("GET", b.http, "/prometheus/config/v1/rules/ns", "")
		if err == nil && code == 200 && strings.Count(body, "record: rha_") == len(names) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s lists: %d %s %v", b.id, code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	start := time.Now()
	owner := evaluators(t, c.nodes, names, start, 15*time.Second)
	perNode := map[string][]string{}
	for g, n := range owner {
		perNode[n] = append(perNode[n], g)
	}
	t.Logf("placement: %v", perNode)
	if len(perNode[a.id]) == 0 || len(perNode) < 2 {
		t.Fatalf("placement %v: want node %s and another to evaluate groups (the test kills node %s)", perNode, a.id, a.id)
	}
	// Each stays on its node: one more interval, same placement.
	again := evaluators(t, c.nodes, names, time.Now(), 15*time.Second)
	for g, n := range owner {
		if again[g] != n {
			t.Fatalf("group %s moved from node %s to %s without a view change", g, n, again[g])
		}
	}

	// Node 1's alerts are pending for a while before it dies, longer
	// than the time its groups go unevaluated.
	time.Sleep(10 * time.Second)
	// Every node lists every node's groups and alerts.
	for _, n := range c.nodes {
		gs, err := rulerGroupsOf(n.http)
		if err != nil || len(gs) != len(names) {
			t.Fatalf("node %s lists the groups %v, %v; want all %d", n.id, gs, err, len(names))
		}
	}
	all, err := alertsOf(b.http)
	if err != nil || len(all) != len(names) {
		t.Fatalf("node %s lists the alerts %v, %v; want one per group", b.id, all, err)
	}
	pending := map[string]time.Time{}
	for _, g := range perNode[a.id] {
		pending["A_"+g] = all["A_"+g]
	}
	killed := time.Now()
	c.kill(a)
	live := []*e2eNode{b, third}
	moved := evaluators(t, live, names, killed.Add(deadAfter), 30*time.Second)
	took := time.Since(killed)
	t.Logf("node %s killed: its groups %v evaluated by the others %v after the kill (dead after %v, interval %v)",
		a.id, perNode[a.id], took.Round(100*time.Millisecond), deadAfter, interval)
	for g, n := range owner {
		if n != a.id && moved[g] != n {
			t.Errorf("group %s of live node %s moved to %s", g, n, moved[g])
		}
	}
	// DeadAfter + one interval, plus the evaluators poll and a loaded
	// machine's slack; the log line above has the real value.
	if limit := deadAfter + interval + 5*time.Second; took > limit {
		t.Errorf("groups moved after %v, want within %v", took, limit)
	}

	// The moved alerts restore their `for` state: Prometheus moves the
	// start later by the time no node evaluated them (about DeadAfter and
	// two intervals), less than they were pending before the kill, so it
	// is before kill + DeadAfter/2; a fresh start is at the group's first
	// evaluation on its new node, after kill + DeadAfter.
	deadline = time.Now().Add(10 * time.Second)
	for {
		restored, err := alertsOf(third.http)
		if err != nil {
			t.Fatal(err)
		}
		var wrong []string
		for name, at := range pending {
			if got := restored[name]; !got.Before(killed.Add(deadAfter/2)) || got.Before(at) {
				wrong = append(wrong, fmt.Sprintf("%s: active at %v, was %v, killed %v", name, got, at, killed))
			}
		}
		if len(wrong) == 0 {
			for name, at := range pending {
				t.Logf("alert %s: active %v before the kill, restored to %v before it", name,
					killed.Sub(at).Round(100*time.Millisecond), killed.Sub(restored[name]).Round(100*time.Millisecond))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts not restored after the move: %v", wrong)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The groups survive the loss of the node they were set through, and
	// the store takes changes through the new metadata leader.
	code, body, err := rulerDo("GET", third.http, "/api/v1/rules", "")
	if err != nil || code != 200 || strings.Count(body, "record: rha_") != len(names) {
		t.Fatalf("node %s lists after node %s died: %d %s %v", third.id, a.id, code, body, err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		code, body, err = rulerDo("POST", third.http, "/api/v1/rules/ns2", "name: late\ninterval: 1s\nrules:\n- record: rha_late\n  expr: vector(1)\n")
		if err == nil && code == 202 {
			break
		}
		if time.Now().After(deadline) || (err == nil && code != 503) {
			t.Fatalf("set a group after node %s died: %d %s %v", a.id, code, body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Node 3 has applied it (the 202 says so); node 2 within moments.
	deadline = time.Now().Add(5 * time.Second)
	for {
		code, body, err = rulerDo("GET", b.http, "/api/v1/rules/ns2/late", "")
		if err == nil && code == 200 && strings.Contains(body, "rha_late") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s reads the new group: %d %s %v", b.id, code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, body, err = rulerDo("DELETE", b.http, "/api/v1/rules/ns2/nope", "")
	if err != nil || code != 404 || body != "group does not exist" {
		t.Fatalf("delete a missing group: %d %q %v", code, body, err)
	}
	evaluators(t, live, append(names, "late"), time.Now(), 15*time.Second)
}
