package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/server/alertmanager"
	"github.com/myelindb/myelin/server/ruler"
)

// alertingConfig are the flags of the Alertmanager (server/alertmanager)
// and of the ruler's sending of alerts, with Cortex's names.
type alertingConfig struct {
	fallbackFile      string
	retention         time.Duration
	pollInterval      time.Duration
	externalURL       string
	alertmanagerURLs  string
	notifyQueue       int
	notifyTimeout     time.Duration
	parsedURLs        []string
	parsedExternalURL *url.URL
	fallback          string
}

func (c *alertingConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.fallbackFile, "alertmanager.configs.fallback", "",
		"Alertmanager configuration `file` of a tenant that has set none. Empty: every alert goes to a receiver\n"+
			"without integrations (shown and silenceable, never sent) until the tenant sets a configuration.")
	fs.DurationVar(&c.retention, "alertmanager.storage.retention", 120*time.Hour, "How long silences and notification log entries are kept after they end.")
	fs.DurationVar(&c.pollInterval, "alertmanager.configs.poll-interval", 15*time.Second,
		"How often the stored Alertmanager configurations are read for changes made elsewhere; a change through this node's API applies at once.")
	fs.StringVar(&c.externalURL, "alertmanager.web.external-url", "",
		"The `URL` under which the Alertmanager is reachable (its /alertmanager path), for links in notifications.\n"+
			"Empty: http://<host name>:<http port>/alertmanager.")
	fs.StringVar(&c.alertmanagerURLs, "ruler.alertmanager-url", "",
		"Comma-separated `URLs` of the Alertmanagers the ruler sends alerts to (http(s)://[user:password@]host[:port][/path],\n"+
			"posted to <path>/api/v2/alerts with the tenant in X-Scope-OrgID). Empty: this node's own Alertmanager, in process.")
	fs.IntVar(&c.notifyQueue, "ruler.notification-queue-capacity", 10000, "Capacity of each tenant's queue of alerts to the Alertmanagers of -ruler.alertmanager-url.")
	fs.DurationVar(&c.notifyTimeout, "ruler.notification-timeout", 10*time.Second, "HTTP timeout of a send to the Alertmanagers of -ruler.alertmanager-url.")
}

// parse checks the flags, reading the fallback file, and reports every
// problem at once.
func (c *alertingConfig) parse(httpAddr string) error {
	var errs []error
	var err error
	if c.parsedURLs, err = ruler.ParseAlertmanagerURLs(c.alertmanagerURLs); err != nil {
		errs = append(errs, err)
	}
	if c.fallbackFile != "" {
		b, err := os.ReadFile(c.fallbackFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("-alertmanager.configs.fallback: %w", err))
		} else if _, _, err := alertmanager.ParseConfig(alertmanager.UserConfig{AlertmanagerConfig: string(b)}); err != nil {
			errs = append(errs, fmt.Errorf("-alertmanager.configs.fallback %s: %w", c.fallbackFile, err))
		} else {
			c.fallback = string(b)
		}
	}
	ext := c.externalURL
	if ext == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(httpAddr)
		ext = "http://" + host + ":" + port + alertmanager.PathPrefix
	}
	if c.parsedExternalURL, err = url.Parse(ext); err != nil {
		errs = append(errs, fmt.Errorf("-alertmanager.web.external-url: %w", err))
	}
	if c.retention <= 0 {
		errs = append(errs, fmt.Errorf("-alertmanager.storage.retention %v: want more than 0", c.retention))
	}
	if c.pollInterval <= 0 {
		errs = append(errs, fmt.Errorf("-alertmanager.configs.poll-interval %v: want more than 0", c.pollInterval))
	}
	return errors.Join(errs...)
}

// newAlerting starts the node's Alertmanager, replicated over the
// metadata group (a single node is a cluster of one: docs/design.md
// "Alertmanager"): its configurations and its tenants' silences and
// notification logs there, each tenant's Alertmanager on the node the
// node ring gives it; and the ruler's notifier: the Alertmanager in
// process (which sends to the owner), or the external ones of
// -ruler.alertmanager-url. Both are kept in n to be closed with it.
func newAlerting(n *node, cfg config, reg prometheus.Registerer, logger *slog.Logger) (*alertmanager.Multitenant, ruler.Notifier, error) {
	ac := cfg.alerting
	dir := filepath.Join(cfg.dataDir, "alertmanager")
	md := alertMetadata{n.cluster}
	am, err := alertmanager.New(alertmanager.Options{
		Metadata: md,
		// Fenced after half of DeadAfter without the metadata leader: a
		// node cut off stops notifying before the others take its
		// tenants.
		Fence:          cfg.cluster.deadAfter / 2,
		ExternalURL:    ac.parsedExternalURL,
		FallbackConfig: ac.fallback,
		Retention:      ac.retention,
		PollInterval:   ac.pollInterval,
		MultiTenant:    cfg.multitenancy,
		Logger:         logger.With("component", "alertmanager"),
		Registerer:     reg,
	})
	if err != nil {
		return nil, nil, err
	}
	n.alertmanager = am
	// Configurations and state a node kept in DATA/alertmanager before
	// they were replicated move into the metadata once it has a leader.
	ctx, cancel := context.WithCancel(context.Background())
	n.stopAMImport, n.amImportDone = cancel, make(chan struct{})
	go func() {
		defer close(n.amImportDone)
		if err := alertmanager.Import(ctx, dir, md, ac.retention); err != nil && ctx.Err() == nil {
			logger.Error("alertmanager: import "+dir+" into the replicated store", "err", err)
		}
	}()
	if len(ac.parsedURLs) == 0 {
		return am, am.PrometheusSender(), nil
	}
	ext, err := ruler.NewExternalNotifier(ruler.ExternalOptions{
		URLs:          ac.parsedURLs,
		QueueCapacity: ac.notifyQueue,
		Timeout:       ac.notifyTimeout,
		Logger:        logger.With("component", "ruler-notifier"),
		Registerer:    reg,
	})
	if err != nil {
		return nil, nil, err
	}
	n.notifier = ext
	return am, ext, nil
}
