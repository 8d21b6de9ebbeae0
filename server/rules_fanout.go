package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/myelindb/myelin/server/tenant"
)

// PathPeerRules is the prefix of what a node serves other nodes of its
// cluster (over their authenticated internal listener): its own rule
// groups and alerts, PathPeerRules+"rules" and +"alerts", in the answer
// of Prometheus's /api/v1/rules and /api/v1/alerts, for the tenant of
// the X-Scope-OrgID header.
const PathPeerRules = "/internal/ruler/v1/"

// PeerRulesHandler serves PathPeerRules from the query API's own answer
// (this node's rule groups only).
func PeerRulesHandler(query http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := strings.TrimPrefix(r.URL.Path, PathPeerRules)
		if kind != "rules" && kind != "alerts" {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/api/v1/" + kind
		r2.RequestURI = ""
		query.ServeHTTP(w, r2)
	})
}

// RulesFanoutOptions configure a RulesFanout.
type RulesFanoutOptions struct {
	// Peers returns the base URLs ("http://" + Mux address) of the other
	// active nodes of the cluster, whose groups this node does not
	// evaluate.
	Peers func() []string
	// Client reaches the peers' internal handlers (the Mux's).
	Client *http.Client
	// Timeout bounds the wait for a peer. Zero means 10s.
	Timeout time.Duration
	Logger  *slog.Logger // nil means discard
}

// RulesFanout answers Prometheus's GET /api/v1/rules and /api/v1/alerts
// with the rule groups and alerts of every node of the cluster, as
// Cortex's ruler API fans out to every ruler: each node evaluates the
// groups the ring gives it, so its own answer holds only those. The
// request's parameters (type, rule_name[], rule_group[], file[],
// exclude_alerts, match[]) go to every node, which filters its own. A
// group that two nodes evaluated during a move is shown once, from the
// node that evaluated it last. A node that does not answer leaves its
// groups out and adds a warning naming it: the answer is partial, not an
// error, as a dashboard would rather show what is known. Without other
// nodes the request goes to this node's API as it is.
type RulesFanout struct {
	local http.Handler
	opts  RulesFanoutOptions
}

// NewRulesFanout returns the fan-out over local, this node's query API.
func NewRulesFanout(local http.Handler, opts RulesFanoutOptions) *RulesFanout {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &RulesFanout{local: local, opts: opts}
}

// apiAnswer is the envelope of a Prometheus API answer.
type apiAnswer struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data,omitempty"`
	ErrorType string          `json:"errorType,omitempty"`
	Error     string          `json:"error,omitempty"`
	Warnings  []string        `json:"warnings,omitempty"`
	Infos     []string        `json:"infos,omitempty"`
}

// bufferedResponse records an answer of the local handler.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (f *RulesFanout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := "rules"
	if strings.HasSuffix(r.URL.Path, "/alerts") {
		kind = "alerts"
	}
	peers := f.opts.Peers()
	if len(peers) == 0 {
		f.local.ServeHTTP(w, r)
		return
	}
	// Prometheus 3 pages groups by a token of its own list; a page of
	// several nodes' lists would skip or repeat groups.
	if q := r.URL.Query(); q.Has("group_limit") || q.Has("group_next_token") {
		writeAPIError(w, http.StatusBadRequest, "bad_data", "group_limit and group_next_token are not supported on a cluster of several nodes: ask for every group")
		return
	}
	// Every node's answer at once; this node's in the request's own
	// handler (auth, tenant, parameters: its errors are the answer).
	answers := make([]peerAnswer, len(peers))
	var wg sync.WaitGroup
	for i, base := range peers {
		wg.Go(func() { answers[i] = f.ask(r, base, kind) })
	}
	// The local answer is read here: not compressed.
	lr := r.Clone(r.Context())
	lr.Header.Del("Accept-Encoding")
	local := &bufferedResponse{header: http.Header{}}
	f.local.ServeHTTP(local, lr)
	wg.Wait()
	var own apiAnswer
	if local.code != http.StatusOK || json.Unmarshal(local.body.Bytes(), &own) != nil || own.Status != "success" {
		for k, v := range local.header {
			w.Header()[k] = v
		}
		w.WriteHeader(cmp.Or(local.code, http.StatusOK))
		w.Write(local.body.Bytes())
		return
	}
	merged, err := mergeRuleAnswers(kind, own, answers)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(merged)
}

// peerAnswer is one peer's answer, or why there is none.
type peerAnswer struct {
	base string
	ans  apiAnswer
	err  error
}

// ask gets a peer's own rules or alerts for the request's tenant.
func (f *RulesFanout) ask(r *http.Request, base, kind string) peerAnswer {
	ctx, cancel := context.WithTimeout(r.Context(), f.opts.Timeout)
	defer cancel()
	pa := peerAnswer{base: base}
	u := base + PathPeerRules + kind
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		pa.err = err
		return pa
	}
	if org := r.Header.Get(tenant.Header); org != "" {
		req.Header.Set(tenant.Header, org)
	}
	resp, err := f.opts.Client.Do(req)
	if err != nil {
		pa.err = err
		return pa
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		pa.err = err
		return pa
	}
	if err := json.Unmarshal(b, &pa.ans); err != nil || resp.StatusCode != http.StatusOK || pa.ans.Status != "success" {
		pa.err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b[:min(len(b), 512)]))
	}
	if pa.err != nil {
		f.opts.Logger.Warn("rules of a peer", "peer", base, "kind", kind, "err", pa.err)
	}
	return pa
}

// ruleGroupJSON is what the merge reads of a group; the rest is kept as
// the node wrote it.
type ruleGroupJSON struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// mergeRuleAnswers merges own and the peers' data: the groups (rules) or
// the alerts of all, each group once.
func mergeRuleAnswers(kind string, own apiAnswer, peers []peerAnswer) (apiAnswer, error) {
	out := apiAnswer{Status: "success", Warnings: own.Warnings, Infos: own.Infos}
	field := "groups"
	if kind == "alerts" {
		field = "alerts"
	}
	var items []json.RawMessage
	add := func(data json.RawMessage) error {
		var d map[string][]json.RawMessage
		if err := json.Unmarshal(data, &d); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		items = append(items, d[field]...)
		return nil
	}
	if err := add(own.Data); err != nil {
		return out, err
	}
	for _, p := range peers {
		if p.err != nil {
			out.Warnings = append(out.Warnings, fmt.Sprintf("the %s of node %s are missing: %v", kind, p.base, p.err))
			continue
		}
		if err := add(p.ans.Data); err != nil {
			out.Warnings = append(out.Warnings, fmt.Sprintf("the %s of node %s are missing: %v", kind, p.base, err))
			continue
		}
		out.Warnings = append(out.Warnings, p.ans.Warnings...)
		out.Infos = append(out.Infos, p.ans.Infos...)
	}
	if kind == "rules" {
		items = dedupGroups(items)
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	data, err := json.Marshal(map[string][]json.RawMessage{field: items})
	out.Data = data
	return out, err
}

// dedupGroups keeps each (file, name) once, the last evaluated, and
// sorts the groups by file and name, as one Prometheus lists them.
func dedupGroups(items []json.RawMessage) []json.RawMessage {
	type group struct {
		key  ruleGroupJSON
		json json.RawMessage
	}
	var gs []group
	for _, it := range items {
		var g ruleGroupJSON
		if json.Unmarshal(it, &g) != nil {
			continue
		}
		gs = append(gs, group{g, it})
	}
	slices.SortStableFunc(gs, func(a, b group) int {
		return cmp.Or(strings.Compare(a.key.File, b.key.File), strings.Compare(a.key.Name, b.key.Name),
			b.key.LastEvaluation.Compare(a.key.LastEvaluation))
	})
	gs = slices.CompactFunc(gs, func(a, b group) bool { return a.key.File == b.key.File && a.key.Name == b.key.Name })
	out := make([]json.RawMessage, len(gs))
	for i, g := range gs {
		out[i] = g.json
	}
	return out
}
