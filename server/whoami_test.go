package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/auth"
)

func TestWhoAmI(t *testing.T) {
	g := testGate(t, nil, nil)
	on := g.Wrap(auth.Token, WhoAmIHandler(true))
	off := NewAuthGate(AuthOptions{}).Wrap(auth.Token, WhoAmIHandler(false))
	type answer struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Data      WhoAmI `json:"data"`
	}
	for _, tc := range []struct {
		name, token, org string
		h                http.Handler
		code             int
		want             answer
	}{
		{"read and write", "tok-a", "", on, 200, answer{Status: "success", Data: WhoAmI{Auth: true, Name: "a-rw", Tenants: []string{"a"}, Scopes: []string{"write", "read"}}}},
		{"two tenants, none named", "tok-ab", "", on, 200, answer{Status: "success", Data: WhoAmI{Auth: true, Name: "ab-r", Tenants: []string{"a", "b"}, Scopes: []string{"read"}}}},
		{"a tenant header is not checked", "tok-a", "b", on, 200, answer{Status: "success", Data: WhoAmI{Auth: true, Name: "a-rw", Tenants: []string{"a"}, Scopes: []string{"write", "read"}}}},
		{"admin, no tenant", "tok-ops", "", on, 200, answer{Status: "success", Data: WhoAmI{Auth: true, Name: "ops", Scopes: []string{"admin"}}}},
		{"no token", "", "", on, 401, answer{Status: "error", ErrorType: "unauthorized"}},
		{"unknown token", "guess", "", on, 401, answer{Status: "error", ErrorType: "unauthorized"}},
		{"auth off", "", "a", off, 200, answer{Status: "success", Data: WhoAmI{Auth: false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/v1/auth/whoami", nil)
			r.RemoteAddr = "10.2.0.1:1"
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.org != "" {
				r.Header.Set("X-Scope-OrgID", tc.org)
			}
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, r)
			require.Equal(t, tc.code, w.Code, w.Body.String())
			var got answer
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got), w.Body.String())
			require.Equal(t, tc.want, got)
			if tc.code == 200 {
				require.Equal(t, "no-store", w.Header().Get("Cache-Control"))
			}
		})
	}
}
