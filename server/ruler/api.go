package ruler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/server/tenant"
)

// maxRuleBodyBytes bounds a POSTed rule group: Cortex takes any size; a
// group of 1,000 rules of 500 bytes is 0.5 MB.
const maxRuleBodyBytes = 4 << 20

// ConfigOptions configure the rule configuration API.
type ConfigOptions struct {
	// MultiTenant: the tenant is X-Scope-OrgID; otherwise tenant.Default.
	MultiTenant bool
	// Parser parses rule expressions (the query API's). Nil means
	// Prometheus's default parser.
	Parser parser.Parser
	// Changed is called after a tenant's groups changed (may be nil).
	Changed func(tenant string)
	// Limits bound what a tenant may store; nil means no limits.
	Limits Limits
	Logger *slog.Logger // nil means discard
}

// Limits are the per-tenant ruler limits, read per request.
type Limits interface {
	// RulerMaxRuleGroupsPerTenant: groups over all namespaces; 0 means
	// no limit.
	RulerMaxRuleGroupsPerTenant(tenant string) int
	// RulerMaxRulesPerRuleGroup: 0 means no limit.
	RulerMaxRulesPerRuleGroup(tenant string) int
}

// ConfigAPI is the Cortex/Mimir rule configuration API over a Store:
//
//	GET    <prefix>                        every namespace's groups (YAML)
//	GET    <prefix>/{namespace}            one namespace's groups
//	POST   <prefix>/{namespace}            set one group (YAML body), 202
//	DELETE <prefix>/{namespace}            delete the namespace, 202
//	GET    <prefix>/{namespace}/{groupName} one group
//	DELETE <prefix>/{namespace}/{groupName} delete one group, 202
//
// with <prefix> /api/v1/rules (Cortex) or /prometheus/config/v1/rules
// (Mimir). Status codes and texts are Cortex's: 404 "no rule groups
// found", "group does not exist", "group namespace does not exist"; 400
// for a body that does not validate, saying where.
type ConfigAPI struct {
	store Store
	opts  ConfigOptions
}

// NewConfigAPI returns the API over store.
func NewConfigAPI(store Store, opts ConfigOptions) *ConfigAPI {
	if opts.Parser == nil {
		opts.Parser = parser.NewParser(parser.Options{})
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Changed == nil {
		opts.Changed = func(string) {}
	}
	return &ConfigAPI{store: store, opts: opts}
}

// Register routes the API under each prefix with handle (the
// registration of server.Routes, without its auth need, which the
// caller binds).
func (a *ConfigAPI) Register(handle func(pattern string, h http.Handler), prefixes ...string) {
	for _, p := range prefixes {
		handle("GET "+p, http.HandlerFunc(a.list))
		handle("GET "+p+"/{namespace}", http.HandlerFunc(a.list))
		handle("POST "+p+"/{namespace}", http.HandlerFunc(a.set))
		handle("DELETE "+p+"/{namespace}", http.HandlerFunc(a.deleteNamespace))
		handle("GET "+p+"/{namespace}/{groupName}", http.HandlerFunc(a.get))
		handle("DELETE "+p+"/{namespace}/{groupName}", http.HandlerFunc(a.delete))
	}
}

// ErrNoRuleGroups: the tenant (or namespace) has no rule group
// (Cortex's text, answered 404).
var ErrNoRuleGroups = errors.New("no rule groups found")

func (a *ConfigAPI) tenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	org, err := tenant.FromRequest(r, a.opts.MultiTenant)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, tenant.ErrMissing) {
			code = http.StatusUnauthorized
		}
		http.Error(w, err.Error(), code)
		return "", false
	}
	return org, true
}

func (a *ConfigAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrGroupNotFound), errors.Is(err, ErrNamespaceNotFound), errors.Is(err, ErrNoRuleGroups):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, ErrUnavailable):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		a.opts.Logger.Error("ruler: rule store", "path", r.URL.Path, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func writeYAML(w http.ResponseWriter, v any) {
	b, err := yaml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(b)
}

// accepted is Cortex's answer to a change: 202 and an empty success.
func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"success","data":null,"errorType":"","error":""}`)
}

func (a *ConfigAPI) list(w http.ResponseWriter, r *http.Request) {
	org, ok := a.tenant(w, r)
	if !ok {
		return
	}
	gs, err := a.store.List(r.Context(), org, r.PathValue("namespace"))
	if err == nil && len(gs) == 0 {
		err = ErrNoRuleGroups
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeYAML(w, gs)
}

func (a *ConfigAPI) get(w http.ResponseWriter, r *http.Request) {
	org, ok := a.tenant(w, r)
	if !ok {
		return
	}
	g, err := a.store.Get(r.Context(), org, r.PathValue("namespace"), r.PathValue("groupName"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeYAML(w, g)
}

func (a *ConfigAPI) set(w http.ResponseWriter, r *http.Request) {
	org, ok := a.tenant(w, r)
	if !ok {
		return
	}
	ns := r.PathValue("namespace")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRuleBodyBytes))
	if err != nil {
		code := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			code = http.StatusRequestEntityTooLarge
		}
		http.Error(w, fmt.Sprintf("read rule group: %v", err), code)
		return
	}
	groups, err := ParseGroups(body, a.opts.Parser)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := a.checkLimits(r.Context(), org, ns, groups); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, g := range groups {
		if err := a.store.Set(r.Context(), org, ns, g); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	a.opts.Changed(org)
	accepted(w)
}

// checkLimits applies the tenant's limits to setting groups in ns, with
// Mimir's texts.
func (a *ConfigAPI) checkLimits(ctx context.Context, org, ns string, groups []rulefmt.RuleGroup) error {
	if a.opts.Limits == nil {
		return nil
	}
	if m := a.opts.Limits.RulerMaxRulesPerRuleGroup(org); m > 0 {
		for _, g := range groups {
			if len(g.Rules) > m {
				return fmt.Errorf("per-user rules per rule group limit (limit: %d actual: %d) exceeded", m, len(g.Rules))
			}
		}
	}
	m := a.opts.Limits.RulerMaxRuleGroupsPerTenant(org)
	if m <= 0 {
		return nil
	}
	all, err := a.store.List(ctx, org, "")
	if err != nil {
		return err
	}
	n := 0
	for name, gs := range all {
		n += len(gs)
		if name != ns {
			continue
		}
		for _, g := range gs {
			for _, ng := range groups {
				if g.Name == ng.Name {
					n-- // replaced, not added
				}
			}
		}
	}
	if n += len(groups); n > m {
		return fmt.Errorf("per-user rule groups limit (limit: %d actual: %d) exceeded", m, n)
	}
	return nil
}

func (a *ConfigAPI) delete(w http.ResponseWriter, r *http.Request) {
	org, ok := a.tenant(w, r)
	if !ok {
		return
	}
	if err := a.store.Delete(r.Context(), org, r.PathValue("namespace"), r.PathValue("groupName")); err != nil {
		a.fail(w, r, err)
		return
	}
	a.opts.Changed(org)
	accepted(w)
}

func (a *ConfigAPI) deleteNamespace(w http.ResponseWriter, r *http.Request) {
	org, ok := a.tenant(w, r)
	if !ok {
		return
	}
	if err := a.store.DeleteNamespace(r.Context(), org, r.PathValue("namespace")); err != nil {
		a.fail(w, r, err)
		return
	}
	a.opts.Changed(org)
	accepted(w)
}
