package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// pkg is what `go list -json` says about one package.
type pkg struct {
	ImportPath   string
	Name         string
	Standard     bool
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// layerRank orders the layers of STYLE.md: "Imports point down:
// cmd → server → raftgroup, engine → chunkenc, write". A package of a
// layer may depend on its own layer and on layers of lower rank only;
// raftgroup and engine share a rank, so neither may import the other, and
// so do chunkenc and write, the pure bottom layers (write is the write
// vocabulary of DESIGN.md: batches, refusals and their codecs, used by
// server, cmd and engine alike). A layer includes its subpackages
// (server/distributor is server, raftgroup/ring is raftgroup). Packages
// outside the layers (internal/..., bench, fuzz) are not ranked.
var layerRank = map[string]int{
	"cmd":       3,
	"server":    2,
	"raftgroup": 1,
	"engine":    1,
	"chunkenc":  0,
	"write":     0,
}

// unimportable: nothing outside these trees imports them.
var unimportable = []string{"bench", "fuzz", "cmd"}

// bannedNames are package names that say nothing about their contents.
var bannedNames = []string{"util", "utils", "common", "misc"}

func TestDependencyRules(t *testing.T) {
	mod, dir := module(t)
	cmd := exec.Command("go", "list", "-deps", "-e",
		"-json=ImportPath,Name,Standard,Imports,TestImports,XTestImports", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./... in %s: %v\n%s", dir, err, stderr.Bytes())
	}
	pkgs, err := decode(out)
	if err != nil {
		t.Fatal(err)
	}
	var own int
	for _, p := range pkgs {
		if inModule(mod, p.ImportPath) {
			own++
		}
	}
	if own == 0 {
		t.Fatalf("go list found no packages of module %s", mod)
	}
	for _, v := range check(mod, pkgs) {
		t.Error(v)
	}
	t.Logf("checked %d packages of %s", own, mod)
}

// module returns the main module's path and directory.
func module(t *testing.T) (path, dir string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	path, dir, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok {
		t.Fatalf("go list -m printed %q", out)
	}
	return path, dir
}

func decode(out []byte) ([]pkg, error) {
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return pkgs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
}

// check returns one message per broken rule. pkgs must hold every package
// of module mod and the standard-library packages they depend on (as
// `go list -deps ./...` gives); other packages are optional.
func check(mod string, pkgs []pkg) []string {
	byPath := make(map[string]pkg, len(pkgs))
	var own []pkg
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
		if inModule(mod, p.ImportPath) {
			own = append(own, p)
		}
	}
	slices.SortFunc(own, func(a, b pkg) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	rel := func(path string) string { return relPath(mod, path) }

	var msgs []string
	for _, p := range own {
		r := rel(p.ImportPath)

		// No package named util, common, misc.
		last := r[strings.LastIndex(r, "/")+1:]
		for _, name := range []string{last, p.Name} {
			if slices.Contains(bannedNames, name) {
				msgs = append(msgs, fmt.Sprintf("package %s is named %q: name packages for what they own (STYLE.md: no util, common, misc)", r, name))
				break
			}
		}

		// Nothing imports bench, fuzz or cmd (tests included).
		for _, imp := range allImports(p) {
			if !inModule(mod, imp) {
				continue
			}
			top := topDir(rel(imp))
			if slices.Contains(unimportable, top) && topDir(r) != top {
				msgs = append(msgs, fmt.Sprintf("%s imports %s: nothing may import %s/ (STYLE.md)", r, rel(imp), top))
			}
		}

		// Layers, through every chain of the module's own packages.
		layer, ranked := layerRank[topDir(r)]
		if !ranked {
			continue
		}
		reach(mod, byPath, p.ImportPath, func(imp string, chain []string) bool {
			if !inModule(mod, imp) {
				if pr, ok := pureRuleOf(r); ok && !pr.mayImport(byPath, imp) {
					msgs = append(msgs, fmt.Sprintf("%s imports %s (%s): %s", r, imp, via(mod, chain, imp), pr.message()))
				}
				return false
			}
			top := topDir(rel(imp))
			if other, ok := layerRank[top]; ok && top != topDir(r) && other >= layer {
				msgs = append(msgs, fmt.Sprintf("%s imports %s (%s): %s must not import %s; imports point down: cmd → server → raftgroup, engine → chunkenc, write (STYLE.md)",
					r, rel(imp), via(mod, chain, imp), topDir(r), top))
				return false
			}
			if pr, ok := pureRuleOf(r); ok && !under(rel(imp), pr.rel) && !isInternal(rel(imp)) {
				msgs = append(msgs, fmt.Sprintf("%s imports %s (%s): %s", r, rel(imp), via(mod, chain, imp), pr.message()))
				return false
			}
			return true
		})
	}
	return msgs
}

// reach walks the production (non-test) imports of start, breadth first.
// It calls visit(imp, chain) once per import edge from start or from a
// module package visit chose to follow; chain is the path start → ... → the
// importer. visit returns whether to follow imp (only module packages are
// followed: others cannot import ours).
func reach(mod string, byPath map[string]pkg, start string, visit func(imp string, chain []string) bool) {
	parent := map[string]string{start: ""}
	queue := []string{start}
	for len(queue) > 0 {
		from := queue[0]
		queue = queue[1:]
		var chain []string
		for p := from; p != ""; p = parent[p] {
			chain = append(chain, p)
		}
		slices.Reverse(chain)
		for _, imp := range byPath[from].Imports {
			if _, seen := parent[imp]; seen {
				continue
			}
			if visit(imp, chain) && inModule(mod, imp) {
				parent[imp] = from
				queue = append(queue, imp)
			}
		}
	}
}

// via renders the import chain ending in imp, e.g. "engine → internal/x → server".
func via(mod string, chain []string, imp string) string {
	parts := make([]string, 0, len(chain)+1)
	for _, p := range append(chain, imp) {
		parts = append(parts, relPath(mod, p))
	}
	return "via " + strings.Join(parts, " → ")
}

// pureRule: the packages under rel (module-relative) are pure code that
// may import only the standard library, the external modules listed, the
// module's internal packages and their own subpackages.
type pureRule struct {
	rel      string
	external []string // module paths; their subpackages are allowed too
}

// pureRules (STYLE.md): chunkenc has no I/O and no engine types;
// write is vocabulary and codecs with no I/O (labels.Labels is the
// label set type of its builder); raftgroup/ring is a value type and
// planner with no I/O, lock or clock, the state machine of the metadata
// group, so that it tests and fuzzes alone.
//
// chunkenc takes no external module, as its doc.go says: its encodings are
// its own code, and it imports no compression library (the rule once
// allowed github.com/klauspost/compress for a block-compression layer that
// was never written). Adding one is a decision for STYLE.md and
// chunkenc/doc.go first, then this list.
var pureRules = []pureRule{
	{rel: "chunkenc"},
	{rel: "write", external: []string{"github.com/klauspost/compress", "github.com/prometheus/prometheus/model/labels", "github.com/prometheus/prometheus/model/histogram"}},
	{rel: "raftgroup/ring", external: []string{"github.com/cespare/xxhash/v2"}},
}

func pureRuleOf(rel string) (pureRule, bool) {
	for _, pr := range pureRules {
		if under(rel, pr.rel) {
			return pr, true
		}
	}
	return pureRule{}, false
}

func (pr pureRule) mayImport(byPath map[string]pkg, imp string) bool {
	if p, ok := byPath[imp]; ok && p.Standard {
		return true
	}
	for _, ext := range pr.external {
		if under(imp, ext) {
			return true
		}
	}
	return false
}

func (pr pureRule) message() string {
	allowed := "the standard library"
	for _, e := range pr.external {
		allowed += ", " + e + "/..."
	}
	return fmt.Sprintf("%s may import only %s and the module's internal packages (STYLE.md)", pr.rel, allowed)
}

// under reports whether path is dir or below it.
func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }

func allImports(p pkg) []string {
	return slices.Concat(p.Imports, p.TestImports, p.XTestImports)
}

func inModule(mod, path string) bool { return path == mod || strings.HasPrefix(path, mod+"/") }

// relPath is path relative to the module, or path itself if outside it.
func relPath(mod, path string) string {
	if path == mod {
		return "."
	}
	if r, ok := strings.CutPrefix(path, mod+"/"); ok {
		return r
	}
	return path
}

func topDir(rel string) string {
	top, _, _ := strings.Cut(rel, "/")
	return top
}

// isInternal reports whether a module-relative path is an internal package.
func isInternal(rel string) bool {
	return rel == "internal" || strings.HasPrefix(rel, "internal/") || strings.Contains(rel, "/internal/") || strings.HasSuffix(rel, "/internal")
}
