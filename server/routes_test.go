package server

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/server/auth"
)

// TestRoutesNotOpen: until Open every request is a 503 that says why the
// node is not open: opening its storage, or what it waits for (a node
// restarted on a full disk waits for space before it opens Pebble).
func TestRoutesNotOpen(t *testing.T) {
	r := NewRoutes(NewAuthGate(AuthOptions{}), prometheus.NewRegistry())
	r.Handle("GET /ready", "ready", auth.Public, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ready")
	}))
	get := func() (int, string) {
		t.Helper()
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/ready", nil))
		return w.Code, strings.TrimSpace(w.Body.String())
	}
	for _, tc := range []struct {
		name     string
		step     func()
		wantCode int
		wantBody string
	}{
		{"opening", func() {}, 503, "not ready: opening storage"},
		{"waiting for space", func() { r.Waiting(errors.New("disk full: 0 bytes free")) }, 503, "not ready: disk full: 0 bytes free"},
		{"opening again", func() { r.Waiting(nil) }, 503, "not ready: opening storage"},
		{"open", r.Open, 200, "ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.step()
			if code, body := get(); code != tc.wantCode || body != tc.wantBody {
				t.Fatalf("got %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}
