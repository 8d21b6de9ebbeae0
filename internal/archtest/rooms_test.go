package archtest

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// roomRule: packages under rel (module-relative) must not depend, through
// any chain of the module's own packages, on a module package under one
// of the forbidden paths. Rules for rooms that do not exist yet hold as
// soon as their code lands (docs/design.md "Rooms").
type roomRule struct {
	rel       string
	forbidden []string
	why       string
}

// roomRules are the sub-layer rules of server/ and the rooms of
// docs/design.md. "server" below means the server root package only (its
// rooms are separate packages).
var roomRules = []roomRule{
	{rel: "server/distributor", forbidden: []string{"raftgroup", "raftgroup/cluster", "server", "engine"},
		why: "the distributor places and batches writes; it reaches groups through an interface (raftgroup/cluster's Router)"},
	{rel: "server/querier", forbidden: []string{"raftgroup", "raftgroup/cluster", "server", "engine"},
		why: "the querier fans reads out through interfaces (Router, Local); the engine and the cluster are wired by cmd"},
	{rel: "server/tenant", forbidden: []string{"server", "engine", "raftgroup", "raftgroup/cluster"},
		why: "tenant helpers sit below every room so that each may import them"},
	{rel: "server/queryshard", forbidden: []string{"server", "engine", "raftgroup", "raftgroup/cluster", "server/querier", "server/distributor", "server/frontend"},
		why: "the shard selector's vocabulary sits below the frontend that writes it and the storage side that honours it"},
	{rel: "server/cpuslot", forbidden: []string{"server", "engine", "raftgroup", "raftgroup/cluster", "server/querier", "server/distributor", "server/frontend"},
		why: "the CPU slots sit below the frontend that owns them and the query API's storage side that checkpoints in them"},
	{rel: "server/limits", forbidden: []string{"server", "engine", "raftgroup", "raftgroup/cluster", "server/querier", "server/distributor"},
		why: "limits are per-tenant values read per request; the rooms that enforce them import limits, not the reverse"},
	{rel: "server/auth", forbidden: []string{"server", "engine", "raftgroup", "raftgroup/cluster", "server/querier", "server/distributor"},
		why: "auth maps tokens to tenants and scopes; it knows no storage"},
	{rel: "server/frontend", forbidden: []string{"server", "engine", "raftgroup", "raftgroup/cluster", "server/querier", "server/distributor"},
		why: "the query frontend sits above PromQL and wraps the read API as HTTP; it never reads storage itself"},
	{rel: "server/ruler", forbidden: []string{"server", "engine", "raftgroup", "server/querier", "server/distributor"},
		why: "the ruler evaluates through a Queryable and writes through a Writer it is given; placement comes from the ring"},
	{rel: "server/alertmanager", forbidden: []string{"server", "engine", "raftgroup", "server/querier", "server/distributor"},
		why: "the Alertmanager room wraps prometheus/alertmanager per tenant; its state is replicated through an interface"},
	{rel: "server/ui", forbidden: []string{"server", "engine", "raftgroup", "raftgroup/cluster", "server/querier", "server/distributor"},
		why: "the UI only serves its embedded files; what it shows comes from the HTTP API, in the browser"},
}

// matches reports whether rel is the forbidden package (rules on
// "server" or "raftgroup" mean the root package, not its subpackages).
func matches(rel, forbidden string) bool {
	switch forbidden {
	case "server", "raftgroup":
		return rel == forbidden
	}
	return under(rel, forbidden)
}

// checkRooms returns one message per broken room rule.
func checkRooms(mod string, pkgs []pkg) []string {
	byPath := make(map[string]pkg, len(pkgs))
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	var msgs []string
	for _, p := range pkgs {
		if !inModule(mod, p.ImportPath) {
			continue
		}
		r := relPath(mod, p.ImportPath)
		for _, rule := range roomRules {
			if !under(r, rule.rel) {
				continue
			}
			reach(mod, byPath, p.ImportPath, func(imp string, chain []string) bool {
				if !inModule(mod, imp) {
					return false
				}
				ri := relPath(mod, imp)
				if under(ri, rule.rel) {
					return true
				}
				if slices.ContainsFunc(rule.forbidden, func(f string) bool { return matches(ri, f) }) {
					msgs = append(msgs, fmt.Sprintf("%s imports %s (%s): %s", r, ri, via(mod, chain, imp), rule.why))
					return false
				}
				return true
			})
		}
	}
	slices.Sort(msgs)
	return slices.Compact(msgs)
}

func TestRoomRules(t *testing.T) {
	mod, dir := module(t)
	cmd := exec.Command("go", "list", "-deps", "-e", "-json=ImportPath,Name,Standard,Imports", "./...")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs, err := decode(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range checkRooms(mod, pkgs) {
		t.Error(m)
	}
}

// TestCheckRooms: each kind of room rule fires on a made-up graph.
func TestCheckRooms(t *testing.T) {
	const mod = "example.com/m"
	p := func(rel string, imports ...string) pkg {
		var full []string
		for _, imp := range imports {
			full = append(full, mod+"/"+imp)
		}
		return pkg{ImportPath: mod + "/" + rel, Imports: full}
	}
	for _, tc := range []struct {
		name string
		pkgs []pkg
		want []string
	}{
		{"clean", []pkg{
			p("server", "server/querier", "server/tenant", "server/limits"),
			p("server/querier", "raftgroup/ring"), p("raftgroup/ring"),
			p("server/limits", "server/tenant"), p("server/tenant"),
			p("server/frontend", "server/limits", "server/tenant"),
		}, nil},
		{"querier imports the cluster", []pkg{p("server/querier", "raftgroup/cluster"), p("raftgroup/cluster", "raftgroup"), p("raftgroup")},
			[]string{"server/querier imports raftgroup/cluster (via server/querier → raftgroup/cluster)"}},
		{"distributor reaches raftgroup through a helper", []pkg{p("server/distributor", "internal/x"), p("internal/x", "raftgroup"), p("raftgroup")},
			[]string{"server/distributor imports raftgroup (via server/distributor → internal/x → raftgroup)"}},
		{"room imports the server root", []pkg{p("server/limits", "server"), p("server")},
			[]string{"server/limits imports server (via server/limits → server)"}},
		{"frontend reads storage", []pkg{p("server/frontend", "server/querier"), p("server/querier")},
			[]string{"server/frontend imports server/querier"}},
		{"tenant imports a room's sub-package is fine, the root is not", []pkg{p("server/tenant", "server"), p("server")},
			[]string{"server/tenant imports server (via server/tenant → server)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkRooms(mod, tc.pkgs)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d messages, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("message %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
