package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// This file tests the Alertmanager replicated over a cluster of three
// real nodes (docs/design.md "Alertmanager"): a tenant's Alertmanager
// runs on one node, its configuration, silences and notification log
// are in the metadata group, so a notification goes out once although
// the node that runs it dies, and a silence outlives the node that took
// it. The nodes run without multitenancy: the tenant is "anonymous".

const amTenant = "anonymous"

// amOwner returns the node that runs the tenant's Alertmanager: the only
// node whose /metrics has the tenant's Alertmanager series. It waits up
// to timeout for exactly one such node among nodes.
func amOwner(t *testing.T, nodes []*e2eNode, timeout time.Duration) *e2eNode {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var owners []*e2eNode
		var why string
		for _, n := range nodes {
			resp, err := clusterHTTP.Get("http://" + n.http + "/metrics")
			if err != nil {
				why = err.Error()
				break
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `myelin_alertmanager_silences{state="active",tenant="`+amTenant+`"}`) {
				owners = append(owners, n)
			}
		}
		if why == "" && len(owners) == 1 {
			return owners[0]
		}
		if time.Now().After(deadline) {
			ids := []string{}
			for _, o := range owners {
				ids = append(ids, o.id)
			}
			t.Fatalf("after %v: the tenant's Alertmanager runs on %v (want one node) %s", timeout, ids, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// notified counts the notifications of each alert name.
func (h *hookReceiver) notified() map[string]int {
	out := map[string]int{}
	for _, m := range h.messages() {
		for _, a := range m.Alerts {
			out[a.Labels["alertname"]]++
		}
	}
	return out
}

// TestAlertmanagerClusterNotifyOnce: alerts pending on a 3-node cluster
// when the node that runs the tenant's Alertmanager (and evaluates some
// of the groups) is killed fire after the failover and reach the test's
// webhook exactly once each; when the node comes back the Alertmanager
// moves back to it, which knows from the replicated notification log
// that they were notified and sends nothing again.
func TestAlertmanagerClusterNotifyOnce(t *testing.T) {
	const deadAfter, hold = 3 * time.Second, 12 * time.Second
	c := newClusterE2E(t, 3, false, "-cluster.dead-after="+deadAfter.String(), "-ruler.poll-interval=1h", "-ruler.resend-delay=1s")
	c.startAll()
	hook := newHookReceiver(t)
	code, body, err := rulerDo("POST", c.nodes[0].http, "/api/v1/alerts", string(amConfigBody(hookAMConfig(hook.srv.URL))))
	if err != nil || code != 201 {
		t.Fatalf("set the alertmanager config through node %s: %d %s %v", c.nodes[0].id, code, body, err)
	}
	// Every node reads it (its applied copy of the metadata).
	for _, n := range c.nodes {
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, body, err := rulerDo("GET", n.http, "/api/v1/alerts", "")
			if err == nil && code == 200 && strings.Contains(body, hook.srv.URL) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s reads the config: %d %s %v", n.id, code, body, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	owner := amOwner(t, c.nodes, 10*time.Second)
	var names []string
	for i := range 6 {
		name := fmt.Sprintf("g%d", i)
		names = append(names, name)
		group := fmt.Sprintf("name: %s\ninterval: 1s\nrules:\n- alert: A_%s\n  expr: vector(1)\n  for: %v\n", name, name, hold)
		if code, body, err := rulerDo("POST", c.nodes[1].http, "/api/v1/rules/ns", group); err != nil || code != 202 {
			t.Fatalf("set group %s: %d %s %v", name, code, body, err)
		}
	}
	placed := evaluators(t, c.nodes, names, time.Now(), 15*time.Second)
	t.Logf("alertmanager on node %s; groups evaluated by %v", owner.id, placed)

	// Every alert pending, none fired yet.
	var first time.Time
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending := map[string]time.Time{}
		for _, n := range c.nodes {
			as, err := alertsOf(n.http)
			if err != nil {
				t.Fatal(err)
			}
			for name, at := range as {
				pending[name] = at
			}
		}
		if len(pending) == len(names) {
			for _, at := range pending {
				if first.IsZero() || at.Before(first) {
					first = at
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending alerts %v, want %d", pending, len(names))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Until(first.Add(hold / 3)))
	if got := hook.notified(); len(got) != 0 {
		t.Fatalf("notified before the kill: %v", got)
	}
	killed := time.Now()
	c.kill(owner)
	live := without(c.nodes, owner)
	t.Logf("killed node %s, %v after the first alert became pending", owner.id, killed.Sub(first).Round(100*time.Millisecond))

	want := map[string]int{}
	for _, name := range names {
		want["A_"+name] = 1
	}
	// The groups the killed node evaluated move once the others see it
	// dead and wait out their `for` again: notified 15 s after the kill
	// when the test runs alone, past 30 s under make test beside other
	// jobs (load 16).
	deadline = time.Now().Add(60 * time.Second)
	for len(hook.notified()) < len(names) {
		if time.Now().After(deadline) {
			t.Fatalf("notified %v after the failover, want %v", hook.notified(), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	hook.mu.Lock()
	for i, m := range hook.msgs {
		t.Logf("notification %d (%s) %v after the kill", i+1, m.Alerts[0].Labels["alertname"], hook.times[i].Sub(killed).Round(100*time.Millisecond))
	}
	hook.mu.Unlock()
	newOwner := amOwner(t, live, 5*time.Second)
	// Resends (every second) and group intervals: no second notification.
	time.Sleep(4 * time.Second)
	if got := hook.notified(); !mapsEqual(got, want) {
		t.Fatalf("after the failover to node %s: notified %v, want %v", newOwner.id, got, want)
	}

	// The killed node comes back: the tenant's Alertmanager moves back to
	// it (the ring of the active nodes), which has the notification log.
	c.start(owner)
	waitReady(t, owner.http)
	if back := amOwner(t, c.nodes, 20*time.Second); back != owner {
		t.Fatalf("after node %s came back the alertmanager runs on %s", owner.id, back.id)
	}
	time.Sleep(4 * time.Second)
	if got := hook.notified(); !mapsEqual(got, want) {
		t.Fatalf("after the alertmanager moved back to node %s: notified %v, want %v", owner.id, got, want)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestAlertmanagerClusterSilence: a silence set through a node that
// does not run the tenant's Alertmanager (forwarded to the one that
// does) survives the death of the node that held it: another node runs
// the Alertmanager with the silence, and every live node answers it.
func TestAlertmanagerClusterSilence(t *testing.T) {
	const deadAfter = 3 * time.Second
	c := newClusterE2E(t, 3, false, "-cluster.dead-after="+deadAfter.String())
	c.startAll()
	// The tenant has no configuration: its first request starts the
	// fallback one on the node that runs it.
	if code, body, err := jsonDo("GET", c.nodes[0].http, "/alertmanager/api/v2/status", ""); err != nil || code != 200 {
		t.Fatalf("status through node %s: %d %s %v", c.nodes[0].id, code, body, err)
	}
	owner := amOwner(t, c.nodes, 10*time.Second)
	via := c.nodes[slices.IndexFunc(c.nodes, func(n *e2eNode) bool { return n != owner })]
	sil := fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"A","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":"maintenance"}`,
		time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
	code, body, err := jsonDo("POST", via.http, "/alertmanager/api/v2/silences", sil)
	if err != nil || code != 200 {
		t.Fatalf("set a silence through node %s: %d %s %v", via.id, code, body, err)
	}
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil || created.SilenceID == "" {
		t.Fatalf("silence answer %s: %v", body, err)
	}
	// Every node answers it (the owner's, through the forward).
	for _, n := range c.nodes {
		if code, body, err := jsonDo("GET", n.http, "/alertmanager/api/v2/silence/"+created.SilenceID, ""); err != nil || code != 200 || !strings.Contains(body, `"comment":"maintenance"`) {
			t.Fatalf("node %s: silence %s: %d %s %v", n.id, created.SilenceID, code, body, err)
		}
	}
	killed := time.Now()
	c.kill(owner)
	live := without(c.nodes, owner)
	for _, n := range live {
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, body, err := jsonDo("GET", n.http, "/alertmanager/api/v2/silences", "")
			if err == nil && code == 200 {
				if !strings.Contains(body, created.SilenceID) || !strings.Contains(body, `"state":"active"`) {
					t.Fatalf("node %s after node %s died: silences %s, want %s active", n.id, owner.id, body, created.SilenceID)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s after node %s died: %d %s %v", n.id, owner.id, code, body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	newOwner := amOwner(t, live, 5*time.Second)
	t.Logf("silence set through node %s on node %s; node %s has it %v after the kill",
		via.id, owner.id, newOwner.id, time.Since(killed).Round(100*time.Millisecond))
}

// jsonDo sends a request with a JSON body.
func jsonDo(method, addr, path, body string) (int, string, error) {
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := clusterHTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// TestAlertmanagerSilenceSurvivesKill9: on a single node (a cluster of
// one, the same path) a silence the API acknowledged is in the metadata
// group's log: kill -9 right after the answer and a restart find it.
func TestAlertmanagerSilenceSurvivesKill9(t *testing.T) {
	c := newClusterE2E(t, 1, false)
	c.startAll()
	n := c.nodes[0]
	sil := fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"A","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"test","comment":"kept"}`,
		time.Now().Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
	code, body, err := jsonDo("POST", n.http, "/alertmanager/api/v2/silences", sil)
	if err != nil || code != 200 {
		t.Fatalf("set a silence: %d %s %v", code, body, err)
	}
	c.kill(n)
	c.start(n)
	waitReady(t, n.http)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, err = jsonDo("GET", n.http, "/alertmanager/api/v2/silences", "")
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("silences after the restart: %d %s %v", code, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(body, `"comment":"kept"`) {
		t.Fatalf("silences after kill -9 and a restart: %s", body)
	}
}
