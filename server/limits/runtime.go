package limits

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/server/tenant"
)

// ParseConfig reads a runtime config file (format in doc.go) over
// defaults. It reports every problem at once, each with its tenant and
// line; unknown sections and limits are errors (a misspelt name must not
// leave a tenant without its limit silently).
func ParseConfig(b []byte, defaults Limits) (*Config, error) {
	sum := sha256.Sum256(b)
	c := &Config{Tenants: map[string]*Limits{}, SHA256: hex.EncodeToString(sum[:])}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // an empty file: no overrides
			return c, nil
		}
		return nil, err
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		return c, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping with an overrides section", root.Line)
	}
	var errs []error
	var tenants *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "overrides" {
			errs = append(errs, fmt.Errorf("line %d: unknown section %q: a runtime config has only overrides (tenant -> limits)", k.Line, k.Value))
			continue
		}
		tenants = v
	}
	if tenants == nil || isNull(tenants) {
		return c, errors.Join(errs...)
	}
	if tenants.Kind != yaml.MappingNode {
		return nil, errors.Join(append(errs, fmt.Errorf("line %d: overrides: want a mapping of tenant IDs to limits", tenants.Line))...)
	}
	known := knownNames()
	for i := 0; i+1 < len(tenants.Content); i += 2 {
		k, v := tenants.Content[i], tenants.Content[i+1]
		name := k.Value
		if err := tenant.Validate(name); err != nil {
			errs = append(errs, fmt.Errorf("line %d: overrides: %w", k.Line, err))
			continue
		}
		if _, dup := c.Tenants[name]; dup {
			errs = append(errs, fmt.Errorf("line %d: overrides: tenant %q twice", k.Line, name))
			continue
		}
		l := defaults
		prefix := fmt.Sprintf("tenant %q (line %d)", name, k.Line)
		if err := decodeLimits(v, &l, known); err != nil {
			errs = append(errs, prefixEach(prefix, err)...)
			continue
		}
		if err := errors.Join(l.Validate(), l.validateOverride(&defaults)); err != nil {
			errs = append(errs, prefixEach(prefix, err)...)
			continue
		}
		c.Tenants[name] = &l
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeLimits decodes a tenant's overrides onto l: the limits it names
// replace l's, the others stay.
func decodeLimits(n *yaml.Node, l *Limits, known map[string]bool) error {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return errors.New("want a mapping of limit names to values")
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !known[k.Value] {
			errs = append(errs, fmt.Errorf("line %d: unknown limit %q (Myelin's limits: %s)", k.Line, k.Value, strings.Join(slices.Sorted(func(yield func(string) bool) {
				for name := range known {
					if !yield(name) {
						return
					}
				}
			}), ", ")))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := n.Decode(l); err != nil {
		return err
	}
	var namedStrategy, namedSuffixes bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		namedStrategy = namedStrategy || n.Content[i].Value == "otel_translation_strategy"
		namedSuffixes = namedSuffixes || n.Content[i].Value == "otel_metric_suffixes_enabled"
	}
	l.ReconcileOTelNames(namedStrategy, namedSuffixes)
	return nil
}

// prefixEach returns each error joined in err (errors.Join) with prefix.
func prefixEach(prefix string, err error) []error {
	var out []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, prefixEach(prefix, e)...)
		}
		return out
	}
	return []error{fmt.Errorf("%s: %w", prefix, err)}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// knownNames is the set of YAML names of Limits.
func knownNames() map[string]bool {
	var l Limits
	m := map[string]bool{}
	for _, v := range l.Values() {
		m[v.Name] = true
	}
	for _, n := range otelNames {
		m[n] = true
	}
	return m
}

// LoaderOptions configure a Loader.
type LoaderOptions struct {
	// Path of the runtime config file. Required.
	Path string
	// Period between checks of the file. Zero means 10s (Mimir's
	// -runtime-config.reload-period).
	Period time.Duration
	// Overrides receive each config that loads.
	Overrides  *Overrides
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// Loader keeps an Overrides following a runtime config file: it reads the
// file every Period and, when its content changed, parses it
// (ParseConfig) and sets it. A file that does not load leaves the last
// good config in force; the log says why (once per content), /metrics
// shows it (myelin_runtime_config_last_reload_successful 0 and the
// reason in myelin_runtime_config_reloads_total), and so does Status.
//
// Its goroutine (Run) is owned by its caller; Reload may be called from
// any goroutine.
type Loader struct {
	opts LoaderOptions
	mu   struct {
		sync.Mutex
		lastSum  [sha256.Size]byte // content last tried
		loadedAt time.Time         // of the config in force
		lastErr  error             // of the last attempt, nil if it loaded or was unchanged
	}
	success   prometheus.Gauge
	hash      *prometheus.GaugeVec // sha256
	reloads   *prometheus.CounterVec
	successTS prometheus.Gauge
}

// Reload results, the label values of myelin_runtime_config_reloads_total.
const (
	resultSuccess = "success"
	resultRead    = "read_error"
	resultInvalid = "invalid"
)

// NewLoader loads the file once and returns its loader, or the error
// that refused the file: a node does not start with limits it cannot
// read.
func NewLoader(opts LoaderOptions) (*Loader, error) {
	if opts.Path == "" || opts.Overrides == nil {
		return nil, errors.New("limits: a loader needs a path and overrides")
	}
	if opts.Period < 0 {
		return nil, fmt.Errorf("runtime config reload period %v is negative", opts.Period)
	}
	if opts.Period == 0 {
		opts.Period = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Loader{opts: opts,
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myelin_runtime_config_last_reload_successful",
			Help: "Whether the last load of -runtime-config.file succeeded (1) or kept the config before it (0).",
		}),
		successTS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myelin_runtime_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful load of -runtime-config.file.",
		}),
		hash: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "myelin_runtime_config_hash",
			Help: "1 for the SHA-256 of the runtime config in force.",
		}, []string{"sha256"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_runtime_config_reloads_total",
			Help: "Loads of -runtime-config.file whose content changed, by result: success, read_error (the file could not be read) or invalid (it did not parse or a limit was refused; the log says why).",
		}, []string{"result"}),
	}
	for _, r := range []string{resultSuccess, resultRead, resultInvalid} {
		l.reloads.WithLabelValues(r)
	}
	b, err := os.ReadFile(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("read runtime config: %w", err)
	}
	c, err := ParseConfig(b, opts.Overrides.Defaults())
	if err != nil {
		return nil, fmt.Errorf("runtime config %s: %w", opts.Path, err)
	}
	l.set(c, sha256.Sum256(b), time.Now())
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(l.success, l.successTS, l.hash, l.reloads)
	}
	return l, nil
}

// set puts c in force.
func (l *Loader) set(c *Config, sum [sha256.Size]byte, now time.Time) {
	l.opts.Overrides.Set(c)
	l.mu.Lock()
	l.mu.lastSum, l.mu.loadedAt, l.mu.lastErr = sum, now, nil
	l.mu.Unlock()
	l.success.Set(1)
	l.successTS.Set(float64(now.UnixNano()) / 1e9)
	l.hash.Reset()
	l.hash.WithLabelValues(c.SHA256).Set(1)
}

// Reload reads the file and puts it in force if its content changed
// since the last attempt. It returns the error that kept the previous
// config, nil if the file loaded or did not change.
func (l *Loader) Reload() error {
	b, err := os.ReadFile(l.opts.Path)
	if err != nil {
		err = fmt.Errorf("read runtime config: %w", err)
		l.fail(err, resultRead, [sha256.Size]byte{}) // reload whatever comes back
		return err
	}
	sum := sha256.Sum256(b)
	l.mu.Lock()
	same := sum == l.mu.lastSum
	l.mu.Unlock()
	if same {
		return nil
	}
	c, err := ParseConfig(b, l.opts.Overrides.Defaults())
	if err != nil {
		err = fmt.Errorf("runtime config %s: %w", l.opts.Path, err)
		l.fail(err, resultInvalid, sum)
		return err
	}
	l.set(c, sum, time.Now())
	l.reloads.WithLabelValues(resultSuccess).Inc()
	l.opts.Logger.Info("runtime config reloaded", "file", l.opts.Path, "tenants", len(c.Tenants), "sha256", c.SHA256)
	return nil
}

// fail records a failed load of content sum (zero for a read error).
func (l *Loader) fail(err error, result string, sum [sha256.Size]byte) {
	l.mu.Lock()
	repeated := l.mu.lastErr != nil && l.mu.lastErr.Error() == err.Error()
	l.mu.lastSum, l.mu.lastErr = sum, err
	l.mu.Unlock()
	l.success.Set(0)
	if !repeated {
		l.reloads.WithLabelValues(result).Inc()
		l.opts.Logger.Error("runtime config not loaded; the last good one stays in force", "file", l.opts.Path, "err", err)
	}
}

// Status says which file is in force since when, and why the last
// attempt failed (nil if it did not).
func (l *Loader) Status() (path string, loadedAt time.Time, lastErr error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opts.Path, l.mu.loadedAt, l.mu.lastErr
}

// Run reloads every Period until ctx is done.
func (l *Loader) Run(ctx context.Context) {
	t := time.NewTicker(l.opts.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = l.Reload() // Reload logs and counts failures
		}
	}
}
