// Package auth maps tokens to tenants and scopes: the token format and
// its hash, the keys of a config file (NewKeys), who a request is
// (Keys.Authenticate), what a route lets it do and as which tenant
// (Principal.Allow), and the limit on failed attempts per client
// (Limiter). It knows no storage and no route: it must not import the
// server root, engine, raftgroup, cluster, querier or distributor
// (internal/archtest). The server root's AuthGate applies it to every
// route cmd registers; cmd reads the config file and reloads it.
//
// # Tokens
//
// A token is TokenPrefix ("myelin_") and 32 random bytes in hex (NewToken,
// `myelin token create`). The config file holds only
//
//	hash = "sha256:" hex(SHA-256(token bytes))
//
// A 256-bit random token cannot be searched for, so a slow password hash
// adds nothing to its safety, while it would cost every request
// (bcrypt at cost 10: about 50 ms of CPU; a sender pushes many times a
// second). Human-chosen passwords are not accepted: Basic auth carries a
// token as its password. docs/design.md "Auth" has the rejected designs.
//
// # Config file (YAML, read by cmd)
//
//	tokens:
//	  - name: team-a-prometheus    # unique; in logs, never in answers
//	    hash: sha256:9f86...       # Hash(token)
//	    tenants: [team-a]          # for write, read, rules, alertmanager
//	    scopes: [write]            # write read rules alertmanager metrics admin
//
// # Caller protocol (the server root's AuthGate)
//
//  1. keys, err := NewKeys(entries) at start and at each reload; keep the
//     last good keys when a reload fails.
//  2. Per request to a route that needs n (not Public): if the client
//     (ClientKey of the remote address) is Blocked, answer 429 without
//     reading its credentials.
//  3. p, err := keys.Authenticate(r.Header); on error answer 401 and
//     count the failure (Limiter.Fail).
//  4. org, err := p.Allow(n, r.Header.Values(tenant.Header)): ErrScope
//     and ErrTenant are 403, tenant.ErrMissing 401, other tenant errors
//     400; else serve the request as tenant org, with p in its context
//     (NewContext) for a handler that answers about the token itself.
//
// Error texts never name a tenant or token: the 403 for a tenant the
// token does not grant must not confirm that the tenant exists.
package auth
