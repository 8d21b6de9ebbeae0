package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRulerBigGroupKill9: a group of 10,000 rules (1.3 MB of YAML, the
// scale the metadata is planned for) is stored in the metadata group,
// acknowledged (202), and still there after kill -9 and a restart,
// beside a small group set after it.
func TestRulerBigGroupKill9(t *testing.T) {
	dir := t.TempDir()
	p := startMyelin(t, dir, "127.0.0.1:0")
	var b strings.Builder
	b.WriteString("name: big\ninterval: 1h\nrules:\n")
	for i := range 10_000 {
		fmt.Fprintf(&b, "- record: job:big_metric_%05d:sum_rate5m\n  expr: sum by (job, instance) (rate(big_metric_%05d_total{env=\"production\"}[5m]))\n", i, i)
	}
	start := time.Now()
	code, body, err := rulerDo("POST", p.addr, "/api/v1/rules/big", b.String())
	if err != nil || code != 202 {
		t.Fatalf("set a group of %d bytes: %d %s %v", b.Len(), code, body, err)
	}
	t.Logf("set a group of 10,000 rules (%d bytes) in %v", b.Len(), time.Since(start))
	if code, body, err := rulerDo("POST", p.addr, "/api/v1/rules/small", "name: s\nrules:\n- record: r\n  expr: vector(1)\n"); err != nil || code != 202 {
		t.Fatalf("set a small group: %d %s %v", code, body, err)
	}
	p.kill()
	p = startMyelin(t, dir, "127.0.0.1:0")
	code, body, err = rulerDo("GET", p.addr, "/api/v1/rules", "")
	if err != nil || code != 200 || strings.Count(body, "record: job:big_metric_") != 10_000 || !strings.Contains(body, "record: r\n") {
		t.Fatalf("after kill -9: %d, %d big rules, small group %v, %v", code, strings.Count(body, "record: job:big_metric_"), strings.Contains(body, "record: r\n"), err)
	}
}
