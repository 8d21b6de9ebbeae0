package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/myelindb/myelin/server/ruler"
)

// TestRulerOverHTTP uploads a rule group through the Cortex API on a
// real node, writes samples, waits for the evaluation and checks that
// the recording rule's series equals what its expression gives, that
// the alert fires and is written, that bad groups are refused saying
// where, and that another tenant sees none of it.
func TestRulerOverHTTP(t *testing.T) {
	path, tokens := writeAuthFile(t, matrixEntries())
	_, base := startAuthNode(t, path)
	now := time.Now().UnixMilli()
	if code, body := authDo(t, base, "POST", "/api/v1/push", tokens["write"], alpha, pushBody(t, "rl_input", now-1000, now)); code != 204 {
		t.Fatalf("push: %d %s", code, body)
	}
	group := "name: g1\ninterval: 1s\nrules:\n- record: job:rl_input:sum\n  expr: sum by (job) (rl_input)\n- alert: InputHigh\n  expr: rl_input > 0\n  labels:\n    severity: page\n"
	if code, body := authDo(t, base, "POST", "/api/v1/rules/ns1", tokens["rules"], alpha, []byte(group)); code != 202 {
		t.Fatalf("set group: %d %s", code, body)
	}
	if code, body := authDo(t, base, "GET", "/prometheus/config/v1/rules/ns1/g1", tokens["rules"], alpha, nil); code != 200 || !strings.Contains(body, "sum by (job) (rl_input)") {
		t.Fatalf("get group: %d %s", code, body)
	}

	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	instant := func(org, tok, q string, ts float64) []sample {
		t.Helper()
		p := "/prometheus/api/v1/query?query=" + url.QueryEscape(q)
		if ts != 0 {
			p += "&time=" + strconv.FormatFloat(ts, 'f', 3, 64)
		}
		code, body := authDo(t, base, "GET", p, tok, org, nil)
		if code != 200 {
			t.Fatalf("query %s: %d %s", q, code, body)
		}
		var r struct {
			Data struct{ Result []sample } `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		return r.Data.Result
	}
	var rec []sample
	deadline := time.Now().Add(20 * time.Second)
	for {
		if rec = instant(alpha, tokens["read"], "job:rl_input:sum", 0); len(rec) > 0 {
			break
		}
		if time.Now().After(deadline) {
			_, rules := authDo(t, base, "GET", "/prometheus/api/v1/rules", tokens["read"], alpha, nil)
			t.Fatalf("no recording rule result after 20s; rules: %s", rules)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(rec) != 1 || rec[0].Metric["job"] != "j" || rec[0].Metric["__name__"] != "job:rl_input:sum" {
		t.Fatalf("recorded series: %+v", rec)
	}
	// The expression at the recorded sample's time gives the same.
	ts := rec[0].Value[0].(float64)
	want := instant(alpha, tokens["read"], "sum by (job) (rl_input)", ts)
	if len(want) != 1 || want[0].Value[1] != rec[0].Value[1] {
		t.Fatalf("recorded %v, the expression gives %+v", rec[0].Value, want)
	}
	// The alert is written by its own commit, after the recording rule's.
	waitSeries := func(q string) []sample {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if got := instant(alpha, tokens["read"], q, 0); len(got) > 0 || time.Now().After(deadline) {
				return got
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if got := waitSeries(`ALERTS{alertname="InputHigh",alertstate="firing"}`); len(got) != 1 || got[0].Metric["severity"] != "page" {
		t.Fatalf("ALERTS: %+v", got)
	}
	if got := waitSeries(`ALERTS_FOR_STATE{alertname="InputHigh"}`); len(got) != 1 {
		t.Fatalf("ALERTS_FOR_STATE: %+v", got)
	}
	code, body := authDo(t, base, "GET", "/prometheus/api/v1/rules", tokens["read"], alpha, nil)
	if code != 200 || !strings.Contains(body, `"name":"job:rl_input:sum"`) || !strings.Contains(body, `"health":"ok"`) || !strings.Contains(body, `"file":"ns1"`) {
		t.Fatalf("rules: %d %s", code, body)
	}
	code, body = authDo(t, base, "GET", "/prometheus/api/v1/alerts", tokens["read"], alpha, nil)
	if code != 200 || !strings.Contains(body, `"alertname":"InputHigh"`) || !strings.Contains(body, `"state":"firing"`) {
		t.Fatalf("alerts: %d %s", code, body)
	}

	// Refused groups say where.
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"bad expression", "name: g2\nrules:\n- record: r\n  expr: sum(\n", []string{"4:9:", `group "g2", rule 1, "r"`, "could not parse expression"}},
		{"no name", "rules:\n- record: r\n  expr: up\n", []string{"rule group name must not be empty"}},
		{"unknown field", "name: g2\nrulez: []\n", []string{"line 2", "rulez"}},
		{"duplicate group", "groups:\n- name: a\n  rules:\n  - record: r\n    expr: up\n- name: a\n  rules:\n  - record: r\n    expr: up\n", []string{"6:9:", `"a" is repeated`}},
		{"bad yaml", "name: [", []string{"invalid rules config", "yaml"}},
	} {
		code, body := authDo(t, base, "POST", "/api/v1/rules/ns2", tokens["rules"], alpha, []byte(tc.body))
		if code != 400 {
			t.Errorf("%s: %d %s, want 400", tc.name, code, body)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: %q does not say %q", tc.name, body, w)
			}
		}
	}

	// bravo sees none of alpha's rules, results or alerts.
	if code, body := authDo(t, base, "GET", "/api/v1/rules", tokens["wrong-tenant"], bravo, nil); code != 404 {
		t.Errorf("bravo's rules: %d %s", code, body)
	}
	if code, body := authDo(t, base, "GET", "/api/v1/rules/ns1/g1", tokens["wrong-tenant"], bravo, nil); code != 404 {
		t.Errorf("bravo reads alpha's group: %d %s", code, body)
	}
	if code, body := authDo(t, base, "GET", "/api/v1/rules", tokens["wrong-tenant"], alpha, nil); code != 403 {
		t.Errorf("bravo's token on alpha: %d %s", code, body)
	}
	for _, p := range []string{"/prometheus/api/v1/rules", "/prometheus/api/v1/alerts"} {
		if code, body := authDo(t, base, "GET", p, tokens["wrong-tenant"], bravo, nil); code != 200 || strings.Contains(body, "InputHigh") || strings.Contains(body, "rl_input") {
			t.Errorf("GET %s as bravo: %d %s", p, code, body)
		}
	}
	if got := instant(bravo, tokens["wrong-tenant"], `{__name__=~"job:rl_input:sum|ALERTS.*"}`, 0); len(got) != 0 {
		t.Errorf("bravo reads alpha's rule results: %+v", got)
	}

	// Deleting the group stops it: the listing is empty.
	if code, body := authDo(t, base, "DELETE", "/api/v1/rules/ns1/g1", tokens["rules"], alpha, nil); code != 202 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, body := authDo(t, base, "GET", "/api/v1/rules", tokens["rules"], alpha, nil); code != 404 || !strings.Contains(body, "no rule groups found") {
		t.Fatalf("list after delete: %d %s", code, body)
	}
}

// TestRulerLimits: the ruler's limits come from the flags and from the
// runtime config's overrides (Mimir's names and texts, 400), per tenant.
func TestRulerLimits(t *testing.T) {
	path, tokens := writeAuthFile(t, matrixEntries())
	rc := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(rc, []byte("overrides:\n  "+alpha+":\n    ruler_max_rules_per_rule_group: 1\n    ruler_max_rule_groups_per_tenant: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, base := startAuthNode(t, path, "-runtime-config.file", rc, "-ruler.max-rules-per-rule-group", "3")
	two := "name: %s\nrules:\n- record: a\n  expr: vector(1)\n- record: b\n  expr: vector(2)\n"
	one := "name: %s\nrules:\n- record: a\n  expr: vector(1)\n"
	for _, c := range []struct {
		org, tok, body string
		code           int
		text           string
	}{
		{alpha, tokens["rules"], fmt.Sprintf(two, "g1"), 400, "per-user rules per rule group limit (limit: 1 actual: 2) exceeded"},
		{alpha, tokens["rules"], fmt.Sprintf(one, "g1"), 202, ""},
		{alpha, tokens["rules"], fmt.Sprintf(one, "g2"), 202, ""},
		{alpha, tokens["rules"], fmt.Sprintf(one, "g3"), 400, "per-user rule groups limit (limit: 2 actual: 3) exceeded"},
		{alpha, tokens["rules"], fmt.Sprintf(one, "g1"), 202, ""}, // replaced, not added
		// bravo has the flags' limits: 3 rules per group, no group limit.
		{bravo, tokens["wrong-tenant"], fmt.Sprintf(two, "g1"), 202, ""},
		{bravo, tokens["wrong-tenant"], fmt.Sprintf(two, "g2"), 202, ""},
		{bravo, tokens["wrong-tenant"], fmt.Sprintf(two, "g3"), 202, ""},
		{bravo, tokens["wrong-tenant"], "name: g4\nrules:\n- record: a\n  expr: vector(1)\n- record: b\n  expr: vector(1)\n- record: c\n  expr: vector(1)\n- record: d\n  expr: vector(1)\n", 400,
			"per-user rules per rule group limit (limit: 3 actual: 4) exceeded"},
	} {
		code, body := authDo(t, base, "POST", "/api/v1/rules/ns", c.tok, c.org, []byte(c.body))
		if code != c.code || !strings.Contains(body, c.text) {
			t.Errorf("%s %q: %d %s, want %d %q", c.org, c.body, code, body, c.code, c.text)
		}
	}
}

// TestRulerImportsFileStore: the groups a node kept in DATA/rules before
// they were replicated are in the replicated store after its start, and
// the directory is renamed so it is imported once.
func TestRulerImportsFileStore(t *testing.T) {
	path, tokens := writeAuthFile(t, matrixEntries())
	dir := t.TempDir()
	fs, err := ruler.NewFileStore(filepath.Join(dir, "rules"))
	if err != nil {
		t.Fatal(err)
	}
	g := rulefmt.RuleGroup{Name: "old", Rules: []rulefmt.Rule{{Record: "old_rule", Expr: "vector(1)"}}}
	if err := fs.Set(context.Background(), alpha, "legacy", g); err != nil {
		t.Fatal(err)
	}
	_, base := startAuthNode(t, path, "-data.dir", dir)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := authDo(t, base, "GET", "/api/v1/rules/legacy/old", tokens["rules"], alpha, nil)
		if code == 200 && strings.Contains(body, "old_rule") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("imported group: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "rules.imported")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("DATA/rules not renamed after the import")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
