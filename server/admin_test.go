package server

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeMembership records the calls it gets and fails with err.
type fakeMembership struct {
	calls []string
	err   error
}

func (f *fakeMembership) Status(context.Context, bool) (any, error) {
	return map[string]int{"x": 1}, nil
}
func (f *fakeMembership) Dump(_ context.Context, w io.Writer) error {
	_, err := io.WriteString(w, "line\n")
	return err
}

func (f *fakeMembership) AddVoter(_ context.Context, id, addr string) error {
	f.calls = append(f.calls, "add "+id+" "+addr)
	return f.err
}

func (f *fakeMembership) RemoveServer(_ context.Context, id string) error {
	f.calls = append(f.calls, "remove "+id)
	return f.err
}

func TestAdminMembers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		method    string
		query     string
		err       error
		wantCode  int
		wantCalls string
	}{
		{"add", "POST", "id=4&address=h:1", nil, 204, "add 4 h:1"},
		{"replace removes first", "POST", "id=4&address=h:1&replace=3", nil, 204, "remove 3,add 4 h:1"},
		{"replace by itself", "POST", "id=3&address=h:1&replace=3", nil, 400, ""},
		{"remove", "DELETE", "id=3", nil, 204, "remove 3"},
		{"missing id", "POST", "address=h:1", nil, 400, ""},
		{"missing address", "POST", "id=4", nil, 400, ""},
		{"bad method", "GET", "id=4", nil, 405, ""},
		{"bad request", "POST", "id=4&address=h:1", fmt.Errorf("%w: x", ErrBadRequest), 400, "add 4 h:1"},
		{"no leader", "DELETE", "id=3", fmt.Errorf("%w: x", ErrUnavailable), 503, "remove 3"},
		{"other error", "DELETE", "id=3", fmt.Errorf("boom"), 500, "remove 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeMembership{err: tc.err}
			h := NewAdminHandler(m, 0)
			rec := httptest.NewRecorder()
			h.Members(rec, httptest.NewRequest(tc.method, "/admin/raft/members?"+tc.query, nil))
			if rec.Code != tc.wantCode {
				t.Fatalf("code %d (%s), want %d", rec.Code, rec.Body, tc.wantCode)
			}
			if got := strings.Join(m.calls, ","); got != tc.wantCalls {
				t.Fatalf("calls %q, want %q", got, tc.wantCalls)
			}
		})
	}
}
