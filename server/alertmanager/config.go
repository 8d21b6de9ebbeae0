package alertmanager

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
)

// UserConfig is a tenant's Alertmanager configuration as Cortex's and
// Mimir's /api/v1/alerts read and write it: the Alertmanager YAML as a
// string and the template files by name.
type UserConfig struct {
	TemplateFiles      map[string]string `yaml:"template_files"`
	AlertmanagerConfig string            `yaml:"alertmanager_config"`
}

// DefaultFallbackConfig is the configuration of a tenant that has none
// (Mimir's built-in fallback): every alert goes to a receiver without
// integrations, so the tenant's alerts are accepted and shown, and
// silences may be made, but nothing is sent until the tenant sets a
// configuration.
const DefaultFallbackConfig = `route:
  receiver: empty-receiver
  group_by: ['...']
receivers:
  - name: empty-receiver
`

// errFileSetting: a tenant's configuration may not name a file of the
// node (password_file, ca_file, ...): it would read the node's disk for
// the tenant (Cortex refuses the same settings).
var errFileSetting = errors.New("setting a file (password_file, credentials_file, ca_file, cert_file, key_file, api_url_file, ...) is not allowed")

// ParseConfig validates a tenant's configuration as Alertmanager loads
// it (config.Load) and as Cortex restricts it, and builds its templates:
// an empty alertmanager_config, a setting that names a file of the node
// or a proxy, a template name with a path, a `templates` entry that is
// not one of template_files, or a template that does not parse is an
// error saying which.
func ParseConfig(uc UserConfig) (*config.Config, *template.Template, error) {
	if strings.TrimSpace(uc.AlertmanagerConfig) == "" {
		return nil, nil, errors.New("configuration provided is empty, if you'd like to remove your configuration please use the delete configuration endpoint")
	}
	cfg, err := config.Load(uc.AlertmanagerConfig)
	if err != nil {
		return nil, nil, err
	}
	if err := checkSettings(reflect.ValueOf(cfg), "alertmanager_config"); err != nil {
		return nil, nil, err
	}
	for name := range uc.TemplateFiles {
		if err := checkTemplateName(name); err != nil {
			return nil, nil, err
		}
	}
	names, err := templateNames(uc, cfg.Templates)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := buildTemplate(uc, names)
	if err != nil {
		return nil, nil, err
	}
	return cfg, tmpl, nil
}

func checkTemplateName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("template_files: invalid template name %q: a file name without a directory", name)
	}
	return nil
}

// templateNames returns the template files the configuration's
// `templates` globs match, sorted (Alertmanager matches its globs against
// files; a tenant's globs match the names of its template_files and
// never touch the disk). A glob with a directory is an error.
func templateNames(uc UserConfig, globs []string) ([]string, error) {
	var names []string
	for _, g := range globs {
		if strings.ContainsAny(g, `/\`) {
			return nil, fmt.Errorf("templates: %q: name template_files without a directory", g)
		}
		for name := range uc.TemplateFiles {
			ok, err := path.Match(g, name)
			if err != nil {
				return nil, fmt.Errorf("templates: %q: %w", g, err)
			}
			if ok {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// buildTemplate parses Alertmanager's default templates, then the named
// template files.
func buildTemplate(uc UserConfig, names []string) (*template.Template, error) {
	tmpl, err := template.FromGlobs(nil)
	if err != nil {
		return nil, fmt.Errorf("default templates: %w", err)
	}
	for _, name := range names {
		if err := tmpl.Parse(strings.NewReader(uc.TemplateFiles[name])); err != nil {
			return nil, fmt.Errorf("template %q: %w", name, err)
		}
	}
	return tmpl, nil
}

// checkSettings walks v (the loaded configuration) and refuses any
// non-empty string field whose YAML name ends in "_file", and any
// proxy_url: such settings make the node read its own files or reach
// its own network for a tenant. at is the YAML path so far.
func checkSettings(v reflect.Value, at string) error {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			fv := v.Field(i)
			path := at
			if name != "" && name != "-" {
				path = at + "." + name
			}
			switch {
			case strings.HasSuffix(name, "_file") && fv.Kind() == reflect.String && fv.String() != "":
				return fmt.Errorf("%s: %w", path, errFileSetting)
			case strings.HasSuffix(name, "_files") && fv.Kind() == reflect.Slice && fv.Len() > 0:
				return fmt.Errorf("%s: %w", path, errFileSetting)
			case name == "proxy_url" && !fv.IsZero():
				return fmt.Errorf("%s: setting proxy_url is not allowed", path)
			}
			if err := checkSettings(fv, path); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := checkSettings(v.Index(i), fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			if err := checkSettings(iter.Value(), fmt.Sprintf("%s.%v", at, iter.Key())); err != nil {
				return err
			}
		}
	}
	return nil
}
