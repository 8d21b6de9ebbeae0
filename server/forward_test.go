package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fakeLeadership struct {
	id        string
	local     bool
	verifyErr error
}

func (f fakeLeadership) Leader() (string, bool)           { return f.id, f.local }
func (f fakeLeadership) VerifyRead(context.Context) error { return f.verifyErr }

func TestForwarder(t *testing.T) {
	// The "leader" answers with who served and whether the request was
	// marked as forwarded.
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "leader forwarded-by="+r.Header.Get(ForwardedHeader))
	}))
	defer leader.Close()
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "local") })
	for _, tc := range []struct {
		name      string
		l         fakeLeadership
		read      bool
		forwarded bool
		wantCode  int
		wantBody  string
	}{
		{"leader write", fakeLeadership{id: "a", local: true}, false, false, 200, "local"},
		{"leader read", fakeLeadership{id: "a", local: true}, true, false, 200, "local"},
		{"leader read, leadership not confirmed", fakeLeadership{id: "a", local: true, verifyErr: errors.New("lost")}, true, false, 503, "cannot confirm leadership"},
		{"follower write", fakeLeadership{id: "b"}, false, false, 200, "leader forwarded-by=a"},
		{"follower read", fakeLeadership{id: "b"}, true, false, 200, "leader forwarded-by=a"},
		{"no leader", fakeLeadership{}, false, false, 503, "no leader"},
		{"forwarded to a follower", fakeLeadership{id: "c"}, false, true, 503, "not the leader"},
		{"forwarded to the leader", fakeLeadership{id: "a", local: true}, true, true, 200, "local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dialed string
			f, err := NewForwarder(tc.l, ForwardOptions{NodeID: "a", Dial: func(ctx context.Context, id string) (net.Conn, error) {
				dialed = id
				var d net.Dialer
				return d.DialContext(ctx, "tcp", strings.TrimPrefix(leader.URL, "http://"))
			}})
			if err != nil {
				t.Fatal(err)
			}
			h := f.Writes(local)
			if tc.read {
				h = f.Reads(local)
			}
			req := httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
			if tc.forwarded {
				req.Header.Set(ForwardedHeader, "z")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody)
			}
			if strings.HasPrefix(rec.Body.String(), "leader") && dialed != tc.l.id {
				t.Fatalf("dialed %q, want the leader %q", dialed, tc.l.id)
			}
		})
	}
}
