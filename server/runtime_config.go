package server

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/tenant"
)

// RuntimeConfigStatus says which runtime config file is in force since
// when, and why its last reload failed (limits.Loader.Status).
type RuntimeConfigStatus func() (path string, loadedAt time.Time, lastErr error)

// RuntimeConfigHandler serves GET /runtime_config, Mimir's endpoint: the
// runtime config in force as YAML, each tenant it names with its
// effective limits. ?mode=diff shows only the limits that differ from
// the defaults (Mimir's mode); ?tenant=ID shows that tenant's effective
// limits, whether the file names it or not (with mode=diff, how they
// differ from the defaults). A comment on top names the file, its hash,
// when it was loaded and the error of a failed reload (the last good
// config stays in force). status may be nil (no runtime config file).
// With auth on it needs the admin scope: it names every tenant with
// overrides.
func RuntimeConfigHandler(o *limits.Overrides, status RuntimeConfigStatus) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		diff := false
		switch mode := r.URL.Query().Get("mode"); mode {
		case "":
		case "diff":
			diff = true
		default:
			http.Error(w, fmt.Sprintf("unknown mode %q: want diff or none", mode), http.StatusBadRequest)
			return
		}
		c := o.Config()
		var b bytes.Buffer
		if status == nil {
			b.WriteString("# no runtime config file (-runtime-config.file): every tenant has the defaults\n")
		} else {
			path, loadedAt, lastErr := status()
			fmt.Fprintf(&b, "# runtime config %s, sha256 %s, loaded %s\n", path, c.SHA256, loadedAt.UTC().Format(time.RFC3339))
			if lastErr != nil {
				fmt.Fprintf(&b, "# the last reload failed; this config stays in force until the file loads:\n")
				for _, line := range bytes.Split([]byte(lastErr.Error()), []byte("\n")) {
					fmt.Fprintf(&b, "#   %s\n", line)
				}
			}
		}
		defaults := o.Defaults()
		var out any
		if id := r.URL.Query().Get("tenant"); id != "" {
			if err := tenant.Validate(id); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			source := "the defaults"
			if _, ok := c.Tenants[id]; ok {
				source = "overrides from the runtime config"
			}
			fmt.Fprintf(&b, "# limits of tenant %s: %s\n", id, source)
			out = limitsYAML(o.For(id), &defaults, diff)
		} else {
			tenants := map[string]any{}
			for _, id := range c.Names() {
				tenants[id] = limitsYAML(c.Tenants[id], &defaults, diff)
			}
			out = map[string]any{"overrides": tenants}
		}
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(out); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
		w.Write(b.Bytes())
	})
}

// limitsYAML is l as YAML: the struct (every limit, in its order), or
// with diff a map of the limits that differ from defaults.
func limitsYAML(l, defaults *limits.Limits, diff bool) any {
	if !diff {
		return l
	}
	m, dm := asMap(l), asMap(defaults)
	for _, k := range slices.Collect(maps.Keys(m)) {
		if fmt.Sprint(m[k]) == fmt.Sprint(dm[k]) {
			delete(m, k)
		}
	}
	return m
}

// asMap returns l's YAML as a map by limit name.
func asMap(l *limits.Limits) map[string]any {
	b, err := yaml.Marshal(l)
	if err != nil {
		panic("BUG: marshal limits: " + err.Error())
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		panic("BUG: unmarshal limits: " + err.Error())
	}
	return m
}
