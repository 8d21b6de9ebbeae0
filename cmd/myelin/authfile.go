package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/auth"
)

// authFile is the YAML of -auth.config-file (format in server/auth's
// doc.go).
type authFile struct {
	Tokens []auth.Entry `yaml:"tokens"`
}

// parseAuthFile reads an auth config file's bytes. Unknown keys are
// errors: a misspelt "scopes" must not leave a token without them
// silently.
func parseAuthFile(b []byte) (authFile, error) {
	var f authFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return f, err
	}
	return f, nil
}

// loadAuthFile reads and checks the auth config file at path.
func loadAuthFile(path string) (*auth.Keys, [sha256.Size]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, [sha256.Size]byte{}, fmt.Errorf("read auth config: %w", err)
	}
	k, err := loadAuthBytes(path, b)
	return k, sha256.Sum256(b), err
}

// authReloader keeps an AuthGate's keys following the auth config file:
// it reloads when the file's content changes (checked every interval)
// and on every signal from hup. A file that does not load leaves the
// last good keys in place; the log says why (once per content) and
// /metrics shows it (myelin_auth_config_last_reload_successful 0).
// Its goroutine (run) is owned by main's run.
type authReloader struct {
	path   string
	gate   *server.AuthGate
	logger *slog.Logger

	// Touched by run's goroutine only (and by newAuthReloader before).
	lastSum [sha256.Size]byte // content last tried
	lastErr string            // last read error, not logged twice

	success     prometheus.Gauge
	successTime prometheus.Gauge
	reloads     *prometheus.CounterVec // result: success, failure
}

// newAuthReloader returns the reloader of gate, whose keys came from
// path with content hash sum.
func newAuthReloader(path string, sum [sha256.Size]byte, gate *server.AuthGate, logger *slog.Logger, reg prometheus.Registerer) *authReloader {
	r := &authReloader{path: path, gate: gate, logger: logger, lastSum: sum,
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myelin_auth_config_last_reload_successful",
			Help: "Whether the last load of -auth.config-file succeeded (1) or kept the keys before it (0).",
		}),
		successTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myelin_auth_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful load of -auth.config-file.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_auth_config_reloads_total",
			Help: "Loads of -auth.config-file after the first, by result.",
		}, []string{"result"}),
	}
	r.success.Set(1)
	r.successTime.SetToCurrentTime()
	r.reloads.WithLabelValues("success")
	r.reloads.WithLabelValues("failure")
	reg.MustRegister(r.success, r.successTime, r.reloads)
	return r
}

// reload loads the file if its content changed since the last attempt,
// or in any case with force.
func (r *authReloader) reload(force bool) {
	b, err := os.ReadFile(r.path)
	if err != nil {
		r.lastSum = [sha256.Size]byte{} // reload whatever comes back
		r.fail(fmt.Errorf("read auth config: %w", err))
		return
	}
	r.lastErr = ""
	sum := sha256.Sum256(b)
	if sum == r.lastSum && !force {
		return
	}
	r.lastSum = sum
	k, err := loadAuthBytes(r.path, b)
	if err != nil {
		r.fail(err)
		return
	}
	r.gate.SetKeys(k)
	r.success.Set(1)
	r.successTime.SetToCurrentTime()
	r.reloads.WithLabelValues("success").Inc()
	r.logger.Info("auth config reloaded", "file", r.path, "tokens", k.Len())
}

func (r *authReloader) fail(err error) {
	r.success.Set(0)
	r.reloads.WithLabelValues("failure").Inc()
	if err.Error() != r.lastErr {
		r.lastErr = err.Error()
		r.logger.Error("auth config not loaded; the last good one stays in use", "file", r.path, "err", err)
	}
}

// loadAuthBytes is loadAuthFile on bytes read already.
func loadAuthBytes(path string, b []byte) (*auth.Keys, error) {
	f, err := parseAuthFile(b)
	if err != nil {
		return nil, fmt.Errorf("auth config %s: %w", path, err)
	}
	k, err := auth.NewKeys(f.Tokens)
	if err != nil {
		return nil, fmt.Errorf("auth config %s: %w", path, err)
	}
	return k, nil
}

// run reloads every interval (never if 0) and on each hup until ctx is
// done.
func (r *authReloader) run(ctx context.Context, interval time.Duration, hup <-chan os.Signal) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			r.reload(false)
		case <-hup:
			r.reload(true)
		}
	}
}
