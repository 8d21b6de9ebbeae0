package tenantreg

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	c := New("myelin_", map[string]string{"lib_sent_total": "Sent.", "lib_seconds": "Time."})
	for i, tenant := range []string{"b", "a"} {
		reg := prometheus.NewRegistry()
		cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lib_sent_total", Help: "x"}, []string{"integration"})
		sum := prometheus.NewSummary(prometheus.SummaryOpts{Name: "lib_seconds", Help: "x"})
		other := prometheus.NewCounter(prometheus.CounterOpts{Name: "lib_other_total", Help: "x"})
		reg.MustRegister(cv, sum, other)
		cv.WithLabelValues("webhook").Add(float64(i + 1))
		sum.Observe(2)
		other.Inc()
		c.Add(tenant, reg)
	}
	want := `
# HELP myelin_lib_sent_total Sent.
# TYPE myelin_lib_sent_total counter
myelin_lib_sent_total{integration="webhook",tenant="a"} 2
myelin_lib_sent_total{integration="webhook",tenant="b"} 1
# HELP myelin_lib_seconds Time.
# TYPE myelin_lib_seconds summary
myelin_lib_seconds_sum{tenant="a"} 2
myelin_lib_seconds_count{tenant="a"} 1
myelin_lib_seconds_sum{tenant="b"} 2
myelin_lib_seconds_count{tenant="b"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	c.Remove("b")
	if n := testutil.CollectAndCount(c, "myelin_lib_sent_total"); n != 1 {
		t.Fatalf("%d series after removing b, want 1", n)
	}
}
