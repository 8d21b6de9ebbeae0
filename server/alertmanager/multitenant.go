package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/server/internal/tenantreg"
)

// PathPrefix is where each tenant's Alertmanager API is served
// (Cortex's and Mimir's -alertmanager.web.external-url path).
const PathPrefix = "/alertmanager"

// Options configure a Multitenant.
type Options struct {
	// Store holds the configurations. Nil with Metadata: the replicated
	// MetaStore.
	Store Store
	// Metadata, if not nil, replicates the Alertmanager over a cluster
	// (docs/design.md "Alertmanager"): each tenant's Alertmanager runs on
	// its owner node only, which other nodes forward its requests and
	// alerts to, and its silences and notification log are committed
	// through the metadata group instead of written to DataDir.
	Metadata Metadata
	// Fence: with Metadata, a node that has not heard from the metadata
	// leader for this long owns no tenant (give it less than the
	// cluster's DeadAfter, so a node cut off stops notifying before
	// another takes its tenants). Zero means 5s.
	Fence time.Duration
	// DataDir holds each tenant's silences and notification log under
	// DataDir/<tenant> (Cortex's -alertmanager.storage.path); unused with
	// Metadata.
	DataDir string
	// ExternalURL is where PathPrefix is reachable, for the links in
	// notifications. Nil means http://localhost/alertmanager.
	ExternalURL *url.URL
	// FallbackConfig is the Alertmanager YAML of a tenant without a
	// configuration (Cortex's -alertmanager.configs.fallback). Empty
	// means DefaultFallbackConfig.
	FallbackConfig string
	// Retention of silences and notification log entries after they end
	// (Cortex's -alertmanager.storage.retention). Zero means 120h.
	Retention time.Duration
	// MaintenanceInterval: how often state is garbage-collected and
	// snapshotted (the state log makes each change durable before).
	// Zero means 15m.
	MaintenanceInterval time.Duration
	// PollInterval: how often the Store is read for changes made
	// elsewhere (Cortex's -alertmanager.configs.poll-interval). Zero
	// means 15s.
	PollInterval time.Duration
	// MultiTenant: the tenant is X-Scope-OrgID; otherwise tenant.Default.
	MultiTenant bool
	Logger      *slog.Logger          // nil means discard
	Registerer  prometheus.Registerer // nil means none
}

func (o Options) withDefaults() Options {
	if o.ExternalURL == nil {
		o.ExternalURL = &url.URL{Scheme: "http", Host: "localhost", Path: PathPrefix}
	}
	if o.FallbackConfig == "" {
		o.FallbackConfig = DefaultFallbackConfig
	}
	if o.Retention == 0 {
		o.Retention = 120 * time.Hour
	}
	if o.MaintenanceInterval == 0 {
		o.MaintenanceInterval = 15 * time.Minute
	}
	if o.PollInterval == 0 {
		o.PollInterval = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metadata != nil && o.Store == nil {
		o.Store = NewMetaStore(o.Metadata)
	}
	if o.Fence == 0 {
		o.Fence = 5 * time.Second
	}
	return o
}

// Validate reports every problem at once.
func (o Options) Validate() error {
	var errs []error
	if o.Store == nil && o.Metadata == nil {
		errs = append(errs, errors.New("alertmanager: no Store"))
	}
	if o.DataDir == "" && o.Metadata == nil {
		errs = append(errs, errors.New("alertmanager: no DataDir"))
	}
	if o.FallbackConfig != "" {
		if _, _, err := ParseConfig(UserConfig{AlertmanagerConfig: o.FallbackConfig}); err != nil {
			errs = append(errs, fmt.Errorf("alertmanager: fallback config: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Multitenant runs one Alertmanager per tenant on this node (as Cortex's
// and Mimir's MultitenantAlertmanager): a tenant's is started with its
// stored configuration at the first sync, or with the fallback
// configuration at its first request or alert, and reconfigured when its
// configuration changes (at once through this node's API, within
// PollInterval otherwise). A tenant whose configuration is deleted goes
// back to the fallback configuration; its silences are kept.
//
// Locking: mu guards the tenants map; each tenantAM locks itself.
type Multitenant struct {
	opts     Options
	fallback UserConfig
	metrics  *tenantreg.Collector
	kick     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}

	// applyMu serialises a read of the store and the apply of what was
	// read (sync's per tenant, the API's set): without it a sync that
	// read a configuration before a POST stored a new one would apply
	// the old one after the POST applied the new one, until the next
	// poll.
	applyMu sync.Mutex
	mu      struct {
		sync.Mutex
		tenants map[string]*tenantAM
		closed  bool
	}
	closeOnce sync.Once
}

// New starts a Multitenant; Close stops it.
func New(opts Options) (*Multitenant, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	m := &Multitenant{
		opts:     opts,
		fallback: UserConfig{AlertmanagerConfig: opts.FallbackConfig},
		metrics:  newTenantMetrics(),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	m.mu.tenants = map[string]*tenantAM{}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(m.metrics); err != nil {
			return nil, fmt.Errorf("alertmanager: register metrics: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if err := m.sync(ctx); err != nil {
		opts.Logger.Error("alertmanager: first sync of configurations", "err", err)
	}
	go m.loop(ctx)
	return m, nil
}

// Changed asks for a sync now.
func (m *Multitenant) Changed() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Multitenant) loop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.opts.PollInterval)
	defer t.Stop()
	// With Metadata, the applied metadata is watched: a configuration
	// set elsewhere, or a tenant that moved, applies within versionPoll.
	vt := time.NewTicker(versionPoll)
	defer vt.Stop()
	version := m.version()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		case <-vt.C:
			if v := m.version(); v != version {
				version = v
				break
			}
			// Records do not move the version: a tenant taken over
			// lately merges what its previous owner committed late.
			m.catchUp()
			continue
		}
		if err := m.sync(ctx); err != nil && ctx.Err() == nil {
			m.opts.Logger.Error("alertmanager: sync configurations", "err", err)
		}
	}
}

// sync applies every stored configuration that differs from the one its
// tenant runs, and the fallback to running tenants that have none; with
// Metadata, only to the tenants this node owns, and it stops those it
// no longer owns.
func (m *Multitenant) sync(ctx context.Context) error {
	tenants, err := m.opts.Store.Tenants(ctx)
	if err != nil {
		return err
	}
	var errs []error
	m.stopUnowned()
	for _, t := range tenants {
		if _, self := m.owner(t); !self {
			continue
		}
		if err := m.syncTenant(ctx, t); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t, err))
		}
	}
	m.catchUp()
	m.mu.Lock()
	running := slices.Collect(maps.Keys(m.mu.tenants))
	m.mu.Unlock()
	for _, t := range running {
		if _, ok := slices.BinarySearch(tenants, t); !ok {
			if err := m.syncTenant(ctx, t); err != nil {
				errs = append(errs, fmt.Errorf("tenant %s: %w", t, err))
			}
		}
	}
	return errors.Join(errs...)
}

// syncTenant applies what the store holds for t: its configuration, or
// the fallback if it has none.
func (m *Multitenant) syncTenant(ctx context.Context, t string) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	uc, err := m.opts.Store.Get(ctx, t)
	switch {
	case errors.Is(err, ErrNotFound):
		uc = m.fallback
	case err != nil:
		return err
	}
	return m.apply(t, uc)
}

// sameConfig: a and b configure the same (a nil and an empty
// template_files are the same: the store's YAML turns one into the
// other).
func sameConfig(a, b UserConfig) bool {
	return a.AlertmanagerConfig == b.AlertmanagerConfig && maps.Equal(a.TemplateFiles, b.TemplateFiles)
}

// apply runs uc for tenant t, starting its Alertmanager if needed; an
// unchanged configuration is left as it runs.
func (m *Multitenant) apply(t string, uc UserConfig) error {
	m.mu.Lock()
	am := m.mu.tenants[t]
	m.mu.Unlock()
	if am == nil {
		_, err := m.tenant(t, uc)
		return err
	}
	am.mu.Lock()
	same := sameConfig(am.raw, uc)
	am.mu.Unlock()
	if same {
		return nil
	}
	cfg, tmpl, err := ParseConfig(uc)
	if err != nil {
		return fmt.Errorf("invalid alertmanager config: %w", err)
	}
	return am.applyConfig(uc, cfg, tmpl)
}

// tenant returns t's Alertmanager, starting it with uc if it is not
// running. INVARIANT: a tenant in m.mu.tenants has a configuration
// applied (its API and dispatcher are never seen unconfigured).
func (m *Multitenant) tenant(t string, uc UserConfig) (*tenantAM, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, errors.New("alertmanager: stopped")
	}
	if am := m.mu.tenants[t]; am != nil {
		return am, nil
	}
	// Checked under mu, as stopUnowned does: an Alertmanager is never
	// started after the view that moved its tenant away was seen.
	if _, self := m.owner(t); !self {
		return nil, errMoved
	}
	cfg, tmpl, err := ParseConfig(uc)
	if err != nil {
		return nil, fmt.Errorf("invalid alertmanager config: %w", err)
	}
	am, err := newTenantAM(tenantOptions{
		tenant:              t,
		dir:                 filepath.Join(m.opts.DataDir, t),
		prefix:              PathPrefix,
		externalURL:         m.opts.ExternalURL,
		retention:           m.opts.Retention,
		maintenanceInterval: m.opts.MaintenanceInterval,
		logger:              m.opts.Logger.With("tenant", t),
		repl:                m.replication(t),
	})
	if err != nil {
		return nil, err
	}
	if err := am.applyConfig(uc, cfg, tmpl); err != nil {
		am.close()
		return nil, err
	}
	m.mu.tenants[t] = am
	m.metrics.Add(t, am.reg)
	return am, nil
}

// replication returns tenant t's replicated state, nil without
// Metadata.
func (m *Multitenant) replication(t string) *tenantRepl {
	md := m.opts.Metadata
	if md == nil {
		return nil
	}
	return &tenantRepl{
		records: md.Records(t),
		put:     func(ctx context.Context, r Record) error { return md.PutRecord(ctx, t, r) },
		gc:      func(ctx context.Context, now time.Time) error { return md.GCRecords(ctx, t, now) },
	}
}

// errMoved: the tenant's Alertmanager runs on another node now (a view
// change since the request was routed); answered 503, retried.
var errMoved = errors.New("alertmanager: the tenant's Alertmanager moved to another node; retry")

// running returns t's Alertmanager, started with its stored
// configuration, or with the fallback if it has none.
func (m *Multitenant) running(ctx context.Context, t string) (*tenantAM, error) {
	m.mu.Lock()
	am := m.mu.tenants[t]
	m.mu.Unlock()
	if am != nil {
		return am, nil
	}
	uc, err := m.opts.Store.Get(ctx, t)
	switch {
	case errors.Is(err, ErrNotFound):
		uc = m.fallback
	case err != nil:
		return nil, err
	}
	return m.tenant(t, uc)
}

// Send hands alerts to the tenant's Alertmanager as its POST
// /api/v2/alerts would (the ruler's in-process path): alerts that do not
// validate are refused with the reason, the others are taken. With
// Metadata, the alerts of a tenant another node owns are sent to it.
func (m *Multitenant) Send(ctx context.Context, tenant string, alerts []*alert.Alert) error {
	owner, self := m.owner(tenant)
	if !self {
		return m.forwardAlerts(ctx, owner, tenant, alerts)
	}
	am, err := m.running(ctx, tenant)
	if err != nil {
		return err
	}
	return am.put(ctx, alerts)
}

// ServeHTTP serves the Alertmanager API v2 of the request's tenant under
// PathPrefix (/alertmanager/api/v2/alerts, /silences, /status, ...), as
// amtool and Grafana's Alertmanager data source call it.
//
// With Metadata, the request of a tenant another node owns is forwarded
// to it (forward.go).
func (m *Multitenant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	org, ok := tenantOf(w, r, m.opts.MultiTenant)
	if !ok {
		return
	}
	if owner, self := m.owner(org); !self {
		m.forward(w, r, owner, org)
		return
	}
	m.serveLocal(w, r, org)
}

// serveLocal serves the request with the tenant's Alertmanager on this
// node.
func (m *Multitenant) serveLocal(w http.ResponseWriter, r *http.Request, org string) {
	am, err := m.running(r.Context(), org)
	if errors.Is(err, errMoved) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		m.opts.Logger.Error("alertmanager: start tenant", "tenant", org, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if m.opts.Metadata == nil || r.Method == http.MethodGet || r.Method == http.MethodHead {
		am.handler.ServeHTTP(w, r)
		return
	}
	// A change (a silence set or expired) is acknowledged only if its
	// records were committed: the library cannot fail its broadcast, so
	// the answer is held until the handler returns.
	before := am.replFailures.Load()
	var buf bufferedResponse
	am.handler.ServeHTTP(&buf, r)
	if am.replFailures.Load() != before {
		http.Error(w, "the change was not replicated (no metadata leader?); retry", http.StatusServiceUnavailable)
		return
	}
	buf.writeTo(w)
}

// owner returns the node that runs tenant t's Alertmanager and whether
// it is this node: always this node without Metadata; none ("", false)
// while this node is fenced off.
func (m *Multitenant) owner(t string) (string, bool) {
	md := m.opts.Metadata
	if md == nil {
		return "", true
	}
	if m.fenced() {
		return "", false
	}
	o := md.Owner(t)
	return o, o == md.ID()
}

func (m *Multitenant) fenced() bool {
	return m.opts.Metadata != nil && m.opts.Metadata.MetadataAge() > m.opts.Fence
}

// versionPoll is how often the applied metadata is looked at (a
// comparison of two integers).
const versionPoll = 200 * time.Millisecond

// version changes whenever the configurations or the owners may have:
// the applied metadata index, and whether the node is fenced off.
func (m *Multitenant) version() uint64 {
	if m.opts.Metadata == nil {
		return 0
	}
	v := m.opts.Metadata.Index() << 1
	if m.fenced() {
		v |= 1
	}
	return v
}

// handoverGrace: how long after this node started a tenant's
// Alertmanager it merges records other nodes commit (catchUp).
const handoverGrace = time.Minute

// catchUp merges into the Alertmanagers this node started within
// handoverGrace the records committed since by another node: the
// previous owner may commit one (a notification it was sending) between
// the view change's commit and its own apply of it, after this node
// read the records at the start. Merge keeps the later of two versions,
// so merging again what is there changes nothing.
func (m *Multitenant) catchUp() {
	md := m.opts.Metadata
	if md == nil {
		return
	}
	m.mu.Lock()
	var ams []*tenantAM
	for _, am := range m.mu.tenants {
		if time.Since(am.started) < handoverGrace {
			ams = append(ams, am)
		}
	}
	m.mu.Unlock()
	for _, am := range ams {
		for _, r := range md.Records(am.opts.tenant) {
			if err := am.mergeReplicated(r); err != nil {
				m.opts.Logger.Warn("alertmanager: merge a replicated record", "tenant", am.opts.tenant, "key", r.Key, "err", err)
			}
		}
	}
}

// stopUnowned stops the Alertmanagers of the tenants another node owns
// now: their state is replicated, and the owner notifies.
func (m *Multitenant) stopUnowned() {
	if m.opts.Metadata == nil {
		return
	}
	m.mu.Lock()
	var stop []*tenantAM
	for t, am := range m.mu.tenants {
		if _, self := m.owner(t); !self {
			delete(m.mu.tenants, t)
			m.metrics.Remove(t)
			stop = append(stop, am)
		}
	}
	m.mu.Unlock()
	for _, am := range stop {
		m.opts.Logger.Info("alertmanager: tenant moved to another node", "tenant", am.opts.tenant)
		am.close()
	}
}

// Close stops every tenant's Alertmanager, snapshotting its state; it is
// idempotent.
func (m *Multitenant) Close() {
	m.closeOnce.Do(func() {
		m.cancel()
		<-m.done
		m.mu.Lock()
		m.mu.closed = true
		ams := slices.Collect(maps.Values(m.mu.tenants))
		m.mu.Unlock()
		for _, am := range ams {
			am.close()
		}
	})
}

// marshalConfig is the YAML of a UserConfig as Cortex answers it.
func marshalConfig(uc UserConfig) ([]byte, error) { return yaml.Marshal(uc) }

// applyParsed is apply with the configuration already parsed.
func (m *Multitenant) applyParsed(t string, uc UserConfig, cfg *config.Config, tmpl *template.Template) error {
	m.mu.Lock()
	am := m.mu.tenants[t]
	m.mu.Unlock()
	if am == nil {
		_, err := m.tenant(t, uc)
		return err
	}
	return am.applyConfig(uc, cfg, tmpl)
}
