package server

import (
	"encoding/json"
	"net/http"

	"github.com/myelindb/myelin/server/auth"
)

// WhoAmI is what GET /api/v1/auth/whoami tells a token about itself: the
// UI lists the tenants it may pick and the views its scopes open.
type WhoAmI struct {
	Auth    bool     `json:"auth"`              // auth is on
	Name    string   `json:"name,omitempty"`    // the token's name in the auth file
	Tenants []string `json:"tenants,omitempty"` // the tenants it grants, sorted
	Scopes  []string `json:"scopes,omitempty"`  // in the order of auth.Scopes
}

// WhoAmIHandler serves GET /api/v1/auth/whoami, in the Prometheus API's
// envelope. With auth on it must sit behind the gate with auth.Token (any
// valid token, which the gate puts in the request's context) and answers
// with the token's name, tenants and scopes: nothing the holder of the
// token could not learn by trying it. With auth off it answers
// {"auth":false}: every tenant is named by the request's header.
func WhoAmIHandler(authOn bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := WhoAmI{Auth: authOn}
		if authOn {
			p, ok := auth.FromContext(r.Context())
			if !ok {
				writeAPIError(w, http.StatusUnauthorized, "unauthorized", auth.ErrNoCredentials.Error())
				return
			}
			who.Name, who.Tenants = p.Name, p.Tenants
			for _, s := range p.Scopes() {
				who.Scopes = append(who.Scopes, string(s))
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(struct {
			Status string `json:"status"`
			Data   WhoAmI `json:"data"`
		}{"success", who}) // a write error means the client left
	})
}
