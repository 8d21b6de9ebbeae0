package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/strutil"

	"github.com/myelindb/myelin/server/internal/tenantreg"
	"github.com/myelindb/myelin/server/tenant"
)

// Notifier sends a tenant's alerts to an Alertmanager: the node's own
// (server/alertmanager, in process) or the external ones of
// -ruler.alertmanager-url (ExternalNotifier). Send must not block on the
// network: the rules manager calls it from its evaluation.
type Notifier interface {
	Send(tenant string, alerts ...*notifier.Alert)
}

// notifyFunc is a tenant's rules.NotifyFunc: Prometheus's own
// conversion of the manager's alerts (cmd/prometheus sendAlerts): a
// firing alert ends at its ValidUntil (the manager resends it before
// then), a resolved one at its ResolvedAt.
func notifyFunc(n Notifier, tenantID string, externalURL *url.URL) rules.NotifyFunc {
	return func(_ context.Context, expr string, alerts ...*rules.Alert) {
		if len(alerts) == 0 {
			return
		}
		out := make([]*notifier.Alert, 0, len(alerts))
		for _, a := range alerts {
			na := &notifier.Alert{
				StartsAt:     a.FiredAt,
				Labels:       a.Labels,
				Annotations:  a.Annotations,
				GeneratorURL: externalURL.String() + strutil.TableLinkForExpression(expr),
				EndsAt:       a.ValidUntil,
			}
			if !a.ResolvedAt.IsZero() {
				na.EndsAt = a.ResolvedAt
			}
			out = append(out, na)
		}
		n.Send(tenantID, out...)
	}
}

// ExternalOptions configure an ExternalNotifier.
type ExternalOptions struct {
	// URLs of the Alertmanagers (Cortex's -ruler.alertmanager-url, comma
	// separated): http(s)://[user:password@]host[:port][/path-prefix]; the
	// alerts are posted to <path-prefix>/api/v2/alerts with the tenant in
	// X-Scope-OrgID.
	URLs []string
	// QueueCapacity of each tenant's queue (Cortex's
	// -ruler.notification-queue-capacity). Zero means 10000.
	QueueCapacity int
	// Timeout of a send (Cortex's -ruler.notification-timeout). Zero
	// means 10s.
	Timeout time.Duration
	Logger  *slog.Logger // nil means discard
	// Registerer gets the per-tenant notifier metrics
	// (myelin_prometheus_notifications_sent_total{tenant, alertmanager}
	// and siblings, Cortex's cortex_prometheus_notifications_*). Nil
	// means none.
	Registerer prometheus.Registerer
}

// notifierMetrics are the notifier's metrics that /metrics shows per
// tenant.
var notifierMetrics = map[string]string{
	"prometheus_notifications_sent_total":      "Total number of alerts sent, per tenant and Alertmanager.",
	"prometheus_notifications_errors_total":    "Total number of sent alerts affected by errors, per tenant and Alertmanager.",
	"prometheus_notifications_dropped_total":   "Total number of alerts dropped due to errors when sending to Alertmanager, per tenant.",
	"prometheus_notifications_queue_length":    "The number of alert notifications in the queue, per tenant.",
	"prometheus_notifications_latency_seconds": "Latency quantiles for sending alert notifications, per tenant and Alertmanager.",
}

// ParseAlertmanagerURLs splits -ruler.alertmanager-url and checks each
// URL, saying which is wrong.
func ParseAlertmanagerURLs(s string) ([]string, error) {
	var out []string
	for u := range strings.SplitSeq(s, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if _, err := alertmanagerConfig(u, time.Second); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// alertmanagerConfig is Prometheus's alerting.alertmanagers entry for
// one URL, and its target address.
func alertmanagerConfig(raw string, timeout time.Duration) (*config.AlertmanagerConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("-ruler.alertmanager-url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("-ruler.alertmanager-url %q: want http(s)://host[:port][/path]", raw)
	}
	cfg := config.DefaultAlertmanagerConfig
	cfg.Scheme = u.Scheme
	cfg.PathPrefix = u.Path
	cfg.Timeout = model.Duration(timeout)
	if u.User != nil {
		pw, _ := u.User.Password()
		cfg.HTTPClientConfig.BasicAuth = &commoncfg.BasicAuth{Username: u.User.Username(), Password: commoncfg.Secret(pw)}
	}
	return &cfg, nil
}

// ExternalNotifier sends each tenant's alerts to the Alertmanagers of
// -ruler.alertmanager-url with Prometheus's notifier (queue, batching,
// retries by the next resend), one notifier.Manager per tenant so that
// a tenant's queue and X-Scope-OrgID are its own (as Cortex's ruler).
//
// Locking: mu guards managers.
type ExternalNotifier struct {
	opts    ExternalOptions
	metrics *tenantreg.Collector
	cfgs    []*config.AlertmanagerConfig
	addrs   []string
	mu      struct {
		sync.Mutex
		managers map[string]*notifier.Manager
		closed   bool
	}
	wg sync.WaitGroup // the managers' Run
}

// NewExternalNotifier checks the URLs; managers start with a tenant's
// first alert.
func NewExternalNotifier(opts ExternalOptions) (*ExternalNotifier, error) {
	if len(opts.URLs) == 0 {
		return nil, errors.New("ruler: no Alertmanager URL")
	}
	if opts.QueueCapacity == 0 {
		opts.QueueCapacity = 10000
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n := &ExternalNotifier{opts: opts, metrics: tenantreg.New("myelin_", notifierMetrics)}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(n.metrics); err != nil {
			return nil, fmt.Errorf("ruler: register notifier metrics: %w", err)
		}
	}
	for _, raw := range opts.URLs {
		cfg, err := alertmanagerConfig(raw, opts.Timeout)
		if err != nil {
			return nil, err
		}
		u, _ := url.Parse(raw)
		n.cfgs = append(n.cfgs, cfg)
		n.addrs = append(n.addrs, u.Host)
	}
	n.mu.managers = map[string]*notifier.Manager{}
	return n, nil
}

// Send queues alerts for the tenant's Alertmanagers.
func (n *ExternalNotifier) Send(tenantID string, alerts ...*notifier.Alert) {
	m, err := n.manager(tenantID)
	if err != nil {
		n.opts.Logger.Error("ruler: alertmanager notifier", "tenant", tenantID, "err", err)
		return
	}
	m.Send(alerts...)
}

func (n *ExternalNotifier) manager(tenantID string) (*notifier.Manager, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return nil, errors.New("stopped")
	}
	if m := n.mu.managers[tenantID]; m != nil {
		return m, nil
	}
	reg := prometheus.NewRegistry()
	m := notifier.NewManager(&notifier.Options{
		QueueCapacity: n.opts.QueueCapacity,
		Registerer:    reg,
		Do: func(ctx context.Context, c *http.Client, req *http.Request) (*http.Response, error) {
			req.Header.Set(tenant.Header, tenantID)
			return c.Do(req.WithContext(ctx))
		},
	}, model.UTF8Validation, n.opts.Logger.With("tenant", tenantID))
	cfg := &config.Config{}
	cfg.AlertingConfig.AlertmanagerConfigs = n.cfgs
	if err := m.ApplyConfig(cfg); err != nil {
		return nil, err
	}
	// The targets are static: one update, as a discovery manager would
	// send for static_configs. The channel stays open until Close.
	tsets := make(chan map[string][]*targetgroup.Group, 1)
	groups := map[string][]*targetgroup.Group{}
	for i, addr := range n.addrs {
		key := fmt.Sprintf("config-%d", i) // config.AlertmanagerConfigs.ToMap's keys
		groups[key] = []*targetgroup.Group{{Source: key, Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(addr)}}}}
	}
	tsets <- groups
	n.wg.Go(func() { m.Run(tsets) })
	// Run applies the targets on its own goroutine, and Send drops the
	// alerts of a manager without targets: wait for them (microseconds),
	// or the tenant's first alerts would wait for the rules manager's
	// resend a minute later.
	for deadline := time.Now().Add(5 * time.Second); len(m.Alertmanagers()) < len(n.addrs); {
		if time.Now().After(deadline) {
			m.Stop()
			return nil, errors.New("the notifier did not take its Alertmanagers within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	n.mu.managers[tenantID] = m
	n.metrics.Add(tenantID, reg)
	return m, nil
}

// Close stops every tenant's manager (what is queued is dropped, as
// Prometheus does without DrainOnShutdown); it is idempotent.
func (n *ExternalNotifier) Close() {
	n.mu.Lock()
	n.mu.closed = true
	ms := n.mu.managers
	n.mu.managers = map[string]*notifier.Manager{}
	n.mu.Unlock()
	for _, m := range ms {
		m.Stop()
	}
	n.wg.Wait()
}
