package main

import (
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/myelindb/myelin/server/auth"
)

// TestCPUSlots: on a node wired as run wires it, a query through the
// frontend takes a CPU slot of its tenant, which /metrics shows per
// tenant, with -query-frontend.cpu-slots slots; -1 turns them off, and
// less is refused at start.
func TestCPUSlots(t *testing.T) {
	path, tokens := writeAuthFile(t, matrixEntries())
	_, base := startAuthNode(t, path, "-query-frontend.cpu-slots", "3")
	now := time.Now()
	if code, body := authDo(t, base, "POST", "/api/v1/push", tokens[string(auth.ScopeWrite)], alpha, pushBody(t, "slot_input", now.UnixMilli()-1000, now.UnixMilli())); code != 204 {
		t.Fatalf("push: %d %s", code, body)
	}
	q := url.Values{"query": {"sum(slot_input)"}, "time": {now.Format(time.RFC3339Nano)}}
	if code, body := authDo(t, base, "GET", "/api/v1/query?"+q.Encode(), tokens[string(auth.ScopeRead)], alpha, nil); code != 200 || !strings.Contains(body, `"value"`) {
		t.Fatalf("query: %d %s", code, body)
	}
	_, metrics := authDo(t, base, "GET", "/metrics", tokens[string(auth.ScopeMetrics)], "", nil)
	for _, want := range []string{
		"myelin_query_frontend_cpu_slots 3\n",
		`myelin_query_frontend_cpu_slot_wait_seconds_count{tenant="` + alpha + `"} 1` + "\n",
		`myelin_query_frontend_cpu_slot_seconds_total{tenant="` + alpha + `"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	path2, tokens2 := writeAuthFile(t, matrixEntries())
	_, base2 := startAuthNode(t, path2, "-query-frontend.cpu-slots", "-1")
	if code, body := authDo(t, base2, "GET", "/api/v1/query?"+q.Encode(), tokens2[string(auth.ScopeRead)], alpha, nil); code != 200 {
		t.Fatalf("query without slots: %d %s", code, body)
	}
	_, metrics = authDo(t, base2, "GET", "/metrics", tokens2[string(auth.ScopeMetrics)], "", nil)
	if strings.Contains(metrics, "myelin_query_frontend_cpu_slot") {
		t.Errorf("slots off, yet /metrics has them")
	}

	if _, _, err := parseFlags([]string{"-query-frontend.cpu-slots", "-2"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-query-frontend.cpu-slots -2") {
		t.Errorf("-query-frontend.cpu-slots -2: %v, want an error naming it", err)
	}
}

// TestShardParallelismFlag: -query-frontend.query-sharding-parallelism
// takes -1 (no bound), 0 (the CPU slots) or more, and refuses less.
func TestShardParallelismFlag(t *testing.T) {
	if _, _, err := parseFlags([]string{"-query-frontend.query-sharding-parallelism", "-2"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "-query-frontend.query-sharding-parallelism -2") {
		t.Errorf("-query-frontend.query-sharding-parallelism -2: %v, want an error naming it", err)
	}
	if cfg, _, err := parseFlags([]string{"-query-frontend.query-sharding-parallelism", "-1"}, io.Discard); err != nil ||
		cfg.frontend.shardParallelism != -1 {
		t.Errorf("-query-frontend.query-sharding-parallelism -1: %v", err)
	}
	if cfg, _, err := parseFlags(nil, io.Discard); err != nil || cfg.frontend.shardParallelism != 0 {
		t.Errorf("default: %v, want 0", err)
	}
}
