package ruler

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
)

// TestExternalNotifier: each tenant's alerts are posted to the URL's
// path prefix + /api/v2/alerts with the tenant in X-Scope-OrgID, the
// first ones at once.
func TestExternalNotifier(t *testing.T) {
	type post struct{ path, org, alertname, user string }
	got := make(chan post, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []struct {
			Labels map[string]string `json:"labels"`
		}
		if err := json.NewDecoder(r.Body).Decode(&as); err != nil || len(as) != 1 {
			t.Errorf("body: %v %v", as, err)
			return
		}
		u, _, _ := r.BasicAuth()
		got <- post{r.URL.Path, r.Header.Get("X-Scope-OrgID"), as[0].Labels["alertname"], u}
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://am:pw@", 1) + "/prefix"
	urls, err := ParseAlertmanagerURLs(" " + u + ",")
	if err != nil || len(urls) != 1 {
		t.Fatalf("parse: %v %v", urls, err)
	}
	reg := prometheus.NewRegistry()
	n, err := NewExternalNotifier(ExternalOptions{URLs: urls, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, tenant := range []string{"t1", "t2"} {
		n.Send(tenant, &notifier.Alert{Labels: labels.FromStrings("alertname", "A"+tenant), EndsAt: time.Now().Add(time.Hour)})
		select {
		case p := <-got:
			if want := (post{"/prefix/api/v2/alerts", tenant, "A" + tenant, "am"}); p != want {
				t.Fatalf("got %+v, want %+v", p, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("nothing posted for %s within 5s", tenant)
		}
	}
	// The sent counter is bumped after the post returns.
	want := `
# HELP myelin_prometheus_notifications_sent_total Total number of alerts sent, per tenant and Alertmanager.
# TYPE myelin_prometheus_notifications_sent_total counter
myelin_prometheus_notifications_sent_total{alertmanager="` + srv.URL + `/prefix/api/v2/alerts",tenant="t1"} 1
myelin_prometheus_notifications_sent_total{alertmanager="` + srv.URL + `/prefix/api/v2/alerts",tenant="t2"} 1
`
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := testutil.GatherAndCompare(reg, strings.NewReader(want), "myelin_prometheus_notifications_sent_total")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParseAlertmanagerURLs(t *testing.T) {
	for _, tc := range []struct {
		in, err string
		n       int
	}{
		{"", "", 0},
		{"http://a:9093,https://b/am", "", 2},
		{"a:9093", "want http(s)://host", 0},
		{"http://", "want http(s)://host", 0},
		{"http://a/%zz", "invalid URL escape", 0},
	} {
		got, err := ParseAlertmanagerURLs(tc.in)
		if tc.err == "" && (err != nil || len(got) != tc.n) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %v %v, want %d URLs or an error with %q", tc.in, got, err, tc.n, tc.err)
		}
	}
}
