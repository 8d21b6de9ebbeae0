package server

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/myelindb/myelin/write"
)

type fakeDeleter struct {
	series  []string
	tenants []string
	err     error
}

func (f *fakeDeleter) DeleteSeries(_ context.Context, d *write.DeleteSeries) error {
	f.series = append(f.series, d.String())
	return f.err
}

func (f *fakeDeleter) DeleteTenant(_ context.Context, tenant string) error {
	f.tenants = append(f.tenants, tenant)
	return f.err
}

func TestDeleteSeriesHandler(t *testing.T) {
	for _, tc := range []struct {
		name, method, url string
		tenant            string
		err               error
		code              int
		body              string
		want              []string
	}{
		{"every time", "POST", "/api/v1/admin/tsdb/delete_series?match[]=up", "a", nil, 204, "",
			[]string{`tenant "a" [__name__="up"] [-9223372036854775808, 9223372036854775807]`}},
		{"range and two selectors", "PUT", `/api/v1/admin/tsdb/delete_series?match[]=up{job="x"}&match[]=down&start=1&end=2.5`, "a", nil, 204, "",
			[]string{`tenant "a" [job="x" __name__="up"] [1000, 2500]`, `tenant "a" [__name__="down"] [1000, 2500]`}},
		{"RFC 3339", "POST", "/api/v1/admin/tsdb/delete_series?match[]=up&start=2026-01-01T00:00:00Z", "a", nil, 204, "",
			[]string{`tenant "a" [__name__="up"] [1767225600000, 9223372036854775807]`}},
		{"no match", "POST", "/api/v1/admin/tsdb/delete_series", "a", nil, 400, "no match[] parameter provided", nil},
		{"bad selector deletes nothing", "POST", "/api/v1/admin/tsdb/delete_series?match[]=up&match[]=up{", "a", nil, 400, `invalid parameter \"match[]\"`, nil},
		// As Prometheus: a selector matching every series deletes them all.
		{"matches everything", "POST", `/api/v1/admin/tsdb/delete_series?match[]={job=~".*"}`, "a", nil, 204, "",
			[]string{`tenant "a" [job=~".*"] [-9223372036854775808, 9223372036854775807]`}},
		{"bad end", "POST", "/api/v1/admin/tsdb/delete_series?match[]=up&end=soon", "a", nil, 400, `invalid time value for 'end': cannot parse \"soon\" to a valid timestamp`, nil},
		{"end before start", "POST", "/api/v1/admin/tsdb/delete_series?match[]=up&start=5&end=4", "a", nil, 400, "end timestamp must not be before start time", nil},
		{"no tenant", "POST", "/api/v1/admin/tsdb/delete_series?match[]=up", "", nil, 401, "no org id", nil},
		{"not replicated", "POST", "/api/v1/admin/tsdb/delete_series?match[]=up", "a", errors.New("no leader"), 503, "no leader",
			[]string{`tenant "a" [__name__="up"] [-9223372036854775808, 9223372036854775807]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeDeleter{err: tc.err}
			api := NewDeleteAPI(f, DeleteOptions{MultiTenant: true})
			req := httptest.NewRequest(tc.method, tc.url, nil)
			if tc.tenant != "" {
				req.Header.Set("X-Scope-OrgID", tc.tenant)
			}
			w := httptest.NewRecorder()
			api.DeleteSeries(w, req)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.body) {
				t.Fatalf("%d %s, want %d with %q", w.Code, w.Body.String(), tc.code, tc.body)
			}
			if strings.Join(f.series, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("deleted %q, want %q", f.series, tc.want)
			}
		})
	}
}

func TestDeleteTenantHandlers(t *testing.T) {
	f := &fakeDeleter{}
	has := true
	api := NewDeleteAPI(f, DeleteOptions{MultiTenant: true, HasData: func(context.Context, string) (bool, error) { return has, nil }})
	do := func(h http.HandlerFunc, method, tenant string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/purger/x", nil)
		req.Header.Set("X-Scope-OrgID", tenant)
		w := httptest.NewRecorder()
		h(w, req)
		return w
	}
	if w := do(api.DeleteTenantStatus, "GET", "a"); w.Code != 200 || w.Body.String() != `{"tenant_id":"a","blocks_deleted":false}`+"\n" {
		t.Fatalf("status before: %d %s", w.Code, w.Body)
	}
	if w := do(api.DeleteTenant, "POST", "a"); w.Code != 200 || len(f.tenants) != 1 || f.tenants[0] != "a" {
		t.Fatalf("delete: %d %s %v", w.Code, w.Body, f.tenants)
	}
	has = false
	if w := do(api.DeleteTenantStatus, "GET", "a"); w.Code != 200 || !strings.Contains(w.Body.String(), `"blocks_deleted":true`) {
		t.Fatalf("status after: %d %s", w.Code, w.Body)
	}
	f.err = context.Canceled
	if w := do(api.DeleteTenant, "POST", "a"); w.Code != statusClientClosed {
		t.Fatalf("canceled: %d %s", w.Code, w.Body)
	}
}

// TestDeleteInvalidatesCache: every deletion, applied or failed, calls
// Deleted (the cache generation bump); a bump that fails after an
// applied deletion is a 503 saying so, so the client sends it again.
func TestDeleteInvalidatesCache(t *testing.T) {
	f := &fakeDeleter{}
	var called []string
	var bumpErr error
	api := NewDeleteAPI(f, DeleteOptions{MultiTenant: true, Deleted: func(_ context.Context, org string) error {
		called = append(called, org)
		return bumpErr
	}})
	do := func(h http.HandlerFunc, url string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", url, nil)
		req.Header.Set("X-Scope-OrgID", "a")
		w := httptest.NewRecorder()
		h(w, req)
		return w
	}
	for _, tc := range []struct {
		name      string
		deleteErr error
		bumpErr   error
		h         http.HandlerFunc
		url       string
		code      int
		body      string
	}{
		{"series", nil, nil, api.DeleteSeries, "/api/v1/admin/tsdb/delete_series?match[]=up", 204, ""},
		{"series, bump fails", nil, errors.New("no metadata leader"), api.DeleteSeries, "/api/v1/admin/tsdb/delete_series?match[]=up", 503,
			"series deleted, but the cached query results were not invalidated (send the request again): no metadata leader"},
		{"series, deletion fails", errors.New("no leader"), nil, api.DeleteSeries, "/api/v1/admin/tsdb/delete_series?match[]=up", 503, "no leader"},
		{"tenant", nil, nil, api.DeleteTenant, "/purger/delete_tenant", 200, ""},
		{"tenant, bump fails", nil, errors.New("no metadata leader"), api.DeleteTenant, "/purger/delete_tenant", 503,
			"tenant deleted, but the cached query results were not invalidated (send the request again): no metadata leader"},
		{"tenant, deletion fails", errors.New("no leader"), nil, api.DeleteTenant, "/purger/delete_tenant", 503, "no leader"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called, f.err, bumpErr = nil, tc.deleteErr, tc.bumpErr
			w := do(tc.h, tc.url)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.body) {
				t.Fatalf("%d %s, want %d with %q", w.Code, w.Body.String(), tc.code, tc.body)
			}
			if len(called) != 1 || called[0] != "a" {
				t.Fatalf("Deleted called for %q, want once for a", called)
			}
		})
	}
}

func TestRetentionSteps(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	period := func(tenant string) time.Duration {
		if tenant == "short" {
			return 24 * time.Hour
		}
		return 0
	}
	tenants := []LocalTenant{{Name: "long"}, {Name: "short"}}
	short := write.Retain{Tenant: "short", Before: now.Add(-24 * time.Hour).UnixMilli(), Period: 86_400_000}
	got := Steps(tenants, now, 0, period)
	if len(got) != 1 || got[0] != short {
		t.Fatalf("without a global retention: %+v", got)
	}
	got = Steps(tenants, now, time.Hour, period)
	if len(got) != 2 || got[0] != (write.Retain{Tenant: "long", Before: math.MinInt64}) || got[1] != short {
		t.Fatalf("with a global retention: %+v", got)
	}
	// long's replicas still hold the period it had: a step without one
	// puts it back on the engine's retention.
	tenants[0].Period = 48 * time.Hour
	got = Steps(tenants, now, 0, period)
	if len(got) != 2 || got[0] != (write.Retain{Tenant: "long", Before: math.MinInt64}) {
		t.Fatalf("a period removed: %+v", got)
	}
}
