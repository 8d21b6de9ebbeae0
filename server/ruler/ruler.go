package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/myelindb/myelin/server/internal/tenantreg"
	"github.com/myelindb/myelin/write"
)

// exportedMetrics are the rules manager's metrics that /metrics shows
// per tenant, as myelin_<name>{tenant, rule_group} (Cortex's
// cortex_prometheus_rule_* with its user label).
var exportedMetrics = map[string]string{
	"prometheus_rule_evaluation_duration_seconds":             "The duration of rule evaluations, per tenant.",
	"prometheus_rule_group_duration_seconds":                  "The duration of rule group evaluations, per tenant.",
	"prometheus_rule_evaluations_total":                       "The total number of rule evaluations, per tenant and rule group.",
	"prometheus_rule_evaluation_failures_total":               "The total number of rule evaluation failures, per tenant and rule group.",
	"prometheus_rule_group_iterations_total":                  "The total number of scheduled rule group evaluations, whether executed or missed, per tenant and rule group.",
	"prometheus_rule_group_iterations_missed_total":           "The total number of rule group evaluations missed due to slow rule group evaluation, per tenant and rule group.",
	"prometheus_rule_group_last_evaluation_timestamp_seconds": "The timestamp of the last rule group evaluation in seconds, per tenant and rule group.",
	"prometheus_rule_group_last_duration_seconds":             "The duration of the last rule group evaluation, per tenant and rule group.",
	"prometheus_rule_group_rules":                             "The number of rules, per tenant and rule group.",
}

// Writer is the write path the rules' results go through: the
// distributor, as for a remote write (server.Writer has the same
// method).
type Writer interface {
	Write(ctx context.Context, b *write.Batch) ([]write.Refusal, error)
}

// Options configure a Ruler.
type Options struct {
	Store Store
	// Queryable returns the storage a tenant's rules read.
	Queryable func(tenant string) storage.Queryable
	Writer    Writer
	// Engine evaluates the rules' expressions.
	Engine promql.QueryEngine
	// Parser parses rule expressions. Nil means Prometheus's default.
	Parser parser.Parser
	// EvaluationInterval of a group without its own. Zero means 1m
	// (Cortex's -ruler.evaluation-interval).
	EvaluationInterval time.Duration
	// PollInterval: how often the store is read for changes another
	// writer made. Zero means 1m (Cortex's -ruler.poll-interval).
	PollInterval time.Duration
	// Owns says whether this node evaluates a group (the placement of
	// MetaStore.Owns). Nil means every group.
	Owns func(tenant, ns, group string) bool
	// Version, if set, is polled every VersionPoll: when it changes the
	// groups or their placement may have, and the ruler syncs
	// (MetaStore.Version).
	Version func() uint64
	// ExternalURL is the ruler's URL in alerts' generator URL.
	ExternalURL *url.URL
	// MaxConcurrentEvals bounds the rules of every tenant this node
	// evaluates at once beside their group's sequence (Mimir's
	// -ruler.max-independent-rule-evaluation-concurrency); zero
	// evaluates each group's rules one after the other, as Prometheus
	// does by default.
	MaxConcurrentEvals int
	// TenantConcurrency returns a tenant's own bound within
	// MaxConcurrentEvals (ruler_max_independent_rule_evaluation_concurrency_per_tenant),
	// read for every rule. Nil means MaxConcurrentEvals.
	TenantConcurrency func(tenant string) int
	// Notifier sends the alerts (the node's Alertmanager or external
	// ones, docs/design.md "Alertmanager"). Nil means alerts are
	// evaluated, written and shown, not sent.
	Notifier Notifier
	Logger   *slog.Logger // nil means discard
	// Registerer gets the per-tenant evaluation metrics
	// (myelin_prometheus_rule_evaluation_failures_total{tenant, rule_group}
	// and siblings). Nil means none.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.EvaluationInterval == 0 {
		o.EvaluationInterval = time.Minute
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Minute
	}
	if o.Parser == nil {
		o.Parser = parser.NewParser(parser.Options{})
	}
	if o.Owns == nil {
		o.Owns = func(string, string, string) bool { return true }
	}
	if o.ExternalURL == nil {
		o.ExternalURL = &url.URL{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TenantConcurrency == nil {
		o.TenantConcurrency = func(string) int { return o.MaxConcurrentEvals }
	}
	return o
}

// Validate reports every missing part at once.
func (o Options) Validate() error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("ruler: no Store"))
	}
	if o.Queryable == nil {
		errs = append(errs, errors.New("ruler: no Queryable"))
	}
	if o.Writer == nil {
		errs = append(errs, errors.New("ruler: no Writer"))
	}
	if o.Engine == nil {
		errs = append(errs, errors.New("ruler: no Engine"))
	}
	return errors.Join(errs...)
}

// Ruler evaluates every tenant's rule groups on this node with one
// Prometheus rules.Manager per tenant (as Cortex and Mimir do), reading
// through the tenant's Queryable and writing through the Writer as the
// tenant. It syncs the managers with the Store every PollInterval and
// at once after Changed.
//
// Locking: mu guards managers; sync runs on the loop goroutine only.
type Ruler struct {
	opts    Options
	metrics *tenantreg.Collector
	slots   *evalSlots // of MaxConcurrentEvals
	kick    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	mu      struct {
		sync.Mutex
		managers map[string]*tenantRules
	}
	closeOnce sync.Once
}

// tenantRules is one tenant's manager and the groups it loads.
type tenantRules struct {
	m      *rules.Manager
	loader *loader
	wg     sync.WaitGroup // the manager's Run
}

// New starts a Ruler; Close stops it.
func New(opts Options) (*Ruler, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Ruler{opts: opts, metrics: tenantreg.New("myelin_", exportedMetrics), slots: newEvalSlots(opts.MaxConcurrentEvals),
		kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	r.mu.managers = map[string]*tenantRules{}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(r.metrics); err != nil {
			cancel()
			return nil, fmt.Errorf("ruler: register metrics: %w", err)
		}
	}
	go r.loop(ctx)
	return r, nil
}

// Changed asks for a sync now (a tenant's groups changed).
func (r *Ruler) Changed(string) {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// VersionPoll is how often Options.Version is read.
const VersionPoll = 200 * time.Millisecond

func (r *Ruler) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.opts.PollInterval)
	defer t.Stop()
	var version <-chan time.Time
	if r.opts.Version != nil {
		vt := time.NewTicker(VersionPoll)
		defer vt.Stop()
		version = vt.C
	}
	for {
		var synced uint64
		if r.opts.Version != nil {
			synced = r.opts.Version()
		}
		if err := r.sync(ctx); err != nil && ctx.Err() == nil {
			r.opts.Logger.Error("ruler: sync rule groups", "err", err)
		}
		if !r.wait(ctx, t.C, version, synced) {
			return
		}
	}
}

// wait returns when the next sync is due (a tick, a kick, a new
// version), false when ctx ends.
func (r *Ruler) wait(ctx context.Context, tick, version <-chan time.Time, synced uint64) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick:
			return true
		case <-r.kick:
			return true
		case <-version:
			if r.opts.Version() != synced {
				return true
			}
		}
	}
}

// sync makes the managers evaluate what the store holds and this node
// owns (Options.Owns): a manager per tenant with such groups, updated in
// place (Prometheus keeps the state of a group that did not change),
// stopped for a tenant without such groups.
func (r *Ruler) sync(ctx context.Context) error {
	all, err := r.opts.Store.Tenants(ctx)
	if err != nil {
		return err
	}
	var errs []error
	var tenants []string // with groups owned here, sorted
	for _, t := range all {
		gs, err := r.opts.Store.List(ctx, t, "")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for ns, groups := range gs {
			groups = slices.DeleteFunc(groups, func(g rulefmt.RuleGroup) bool { return !r.opts.Owns(t, ns, g.Name) })
			if len(groups) == 0 {
				delete(gs, ns)
			} else {
				gs[ns] = groups
			}
		}
		if len(gs) == 0 {
			continue
		}
		tenants = append(tenants, t)
		if err := r.update(ctx, t, gs); err != nil {
			errs = append(errs, fmt.Errorf("load rule groups of tenant %s: %w", t, err))
		}
	}
	r.mu.Lock()
	var gone []*tenantRules
	for t, tr := range r.mu.managers {
		if _, ok := slices.BinarySearch(tenants, t); !ok {
			gone = append(gone, tr)
			delete(r.mu.managers, t)
			r.metrics.Remove(t)
		}
	}
	r.mu.Unlock()
	for _, tr := range gone {
		tr.stop()
	}
	return errors.Join(errs...)
}

func (r *Ruler) update(ctx context.Context, t string, gs map[string][]rulefmt.RuleGroup) error {
	r.mu.Lock()
	tr := r.mu.managers[t]
	r.mu.Unlock()
	if tr == nil {
		tr = r.newTenant(ctx, t)
		r.mu.Lock()
		r.mu.managers[t] = tr
		r.mu.Unlock()
	}
	tr.loader.set(gs)
	files := slices.Sorted(maps.Keys(gs))
	return tr.m.Update(r.opts.EvaluationInterval, files, labels.EmptyLabels(), r.opts.ExternalURL.String(), nil)
}

func (r *Ruler) newTenant(ctx context.Context, t string) *tenantRules {
	q := r.opts.Queryable(t)
	ld := &loader{parser: r.opts.Parser}
	notify := func(context.Context, string, ...*rules.Alert) {}
	if r.opts.Notifier != nil {
		notify = notifyFunc(r.opts.Notifier, t, r.opts.ExternalURL)
	}
	reg := prometheus.NewRegistry()
	r.metrics.Add(t, reg)
	m := rules.NewManager(&rules.ManagerOptions{
		ExternalURL: r.opts.ExternalURL,
		QueryFunc:   rules.EngineQueryFunc(r.opts.Engine, q),
		NotifyFunc:  notify,
		Context:     ctx,
		Appendable:  &appendable{tenant: t, w: r.opts.Writer},
		Queryable:   q,
		Logger:      r.opts.Logger.With("tenant", t),
		// Prometheus's defaults (--rules.alert.for-outage-tolerance,
		// --rules.alert.for-grace-period, --rules.alert.resend-delay).
		OutageTolerance: time.Hour,
		ForGracePeriod:  10 * time.Minute,
		ResendDelay:     time.Minute,
		// A group that starts here (a restart, or moved from another
		// node) restores its alerts' `for` state from ALERTS_FOR_STATE.
		RestoreNewRuleGroups: true,
		GroupLoader:          ld,
		// The tenant's own registry, exported with a tenant label.
		Metrics:              rules.NewGroupMetrics(reg),
		NameValidationScheme: model.UTF8Validation,
		Parser:               r.opts.Parser,
		// The manager's dependency analysis runs either way; the
		// controller decides what runs at once.
		ConcurrentEvalsEnabled:    r.opts.MaxConcurrentEvals > 0,
		RuleConcurrencyController: &tenantConcurrency{slots: r.slots, tenant: t, limit: r.opts.TenantConcurrency},
	})
	tr := &tenantRules{m: m, loader: ld}
	tr.wg.Go(m.Run)
	return tr
}

func (tr *tenantRules) stop() {
	tr.m.Stop()
	tr.wg.Wait()
}

// RuleGroups returns the tenant's groups as its manager evaluates them
// (none for a tenant without groups on this node).
func (r *Ruler) RuleGroups(tenant string) []*rules.Group {
	r.mu.Lock()
	tr := r.mu.managers[tenant]
	r.mu.Unlock()
	if tr == nil {
		return nil
	}
	return tr.m.RuleGroups()
}

// AlertingRules returns the tenant's alerting rules.
func (r *Ruler) AlertingRules(tenant string) []*rules.AlertingRule {
	r.mu.Lock()
	tr := r.mu.managers[tenant]
	r.mu.Unlock()
	if tr == nil {
		return nil
	}
	return tr.m.AlertingRules()
}

// Tenant returns what Prometheus's API reads of one tenant's rules
// (web/api/v1.RulesRetriever).
func (r *Ruler) Tenant(tenant string) TenantRules { return TenantRules{r: r, tenant: tenant} }

// TenantRules is one tenant's view of the Ruler.
type TenantRules struct {
	r      *Ruler
	tenant string
}

func (t TenantRules) RuleGroups() []*rules.Group           { return t.r.RuleGroups(t.tenant) }
func (t TenantRules) AlertingRules() []*rules.AlertingRule { return t.r.AlertingRules(t.tenant) }

// Close stops the sync loop and every manager; it is idempotent.
func (r *Ruler) Close() {
	r.closeOnce.Do(func() {
		r.cancel()
		<-r.done
		r.mu.Lock()
		trs := slices.Collect(maps.Values(r.mu.managers))
		r.mu.managers = map[string]*tenantRules{}
		r.mu.Unlock()
		for _, tr := range trs {
			tr.stop()
		}
	})
}

// loader is a tenant's rules.GroupLoader: a "file" is a namespace, read
// from the groups the last sync set. Locking: mu guards groups.
type loader struct {
	parser parser.Parser
	mu     sync.Mutex
	groups map[string][]rulefmt.RuleGroup
}

func (l *loader) set(gs map[string][]rulefmt.RuleGroup) {
	l.mu.Lock()
	l.groups = gs
	l.mu.Unlock()
}

func (l *loader) Load(ns string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &rulefmt.RuleGroups{Groups: l.groups[ns]}, nil
}

func (l *loader) Parse(q string) (parser.Expr, error) { return l.parser.ParseExpr(q) }
