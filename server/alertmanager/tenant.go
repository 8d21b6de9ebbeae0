package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/api"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
)

// tenantOptions configure one tenant's Alertmanager.
type tenantOptions struct {
	tenant string
	// dir holds the tenant's silences and notification log: snapshots
	// and state logs.
	dir string
	// prefix is the path the tenant's API is served under
	// ("/alertmanager").
	prefix string
	// externalURL is the Alertmanager's URL in notifications.
	externalURL         *url.URL
	retention           time.Duration
	maintenanceInterval time.Duration
	logger              *slog.Logger
	// repl, if not nil, replicates the state instead of dir's files.
	repl *tenantRepl
}

// tenantRepl is a tenant's replicated state (docs/design.md
// "Alertmanager"): the records it starts from, and how a change is
// committed.
type tenantRepl struct {
	records []Record
	// put commits a record; gc the removal of the records expired by now.
	put func(ctx context.Context, r Record) error
	gc  func(ctx context.Context, now time.Time) error
}

// tenantAM is one tenant's Alertmanager, built of the library's parts
// as its own main builds them (alert store, silences, notification log,
// inhibitor, dispatcher, notification pipeline, API v2), without the
// gossip cluster. Its metrics are in its own registry, which the
// Multitenant's collector exports with the tenant as the user label.
//
// Locking: mu serialises applyConfig and close; disp and inhibitor are
// read by the API and Send without it.
type tenantAM struct {
	opts      tenantOptions
	reg       *prometheus.Registry
	alerts    *mem.Alerts
	silences  *silence.Silences
	silencer  *silence.Silencer
	nflog     *nflog.Log
	marker    marker.GroupMarker
	api       *api.API
	handler   http.Handler
	pipeline  *notify.PipelineBuilder
	dispStats *dispatch.DispatcherMetrics
	state     *stateLog // nil when replicated
	started   time.Time
	// replFailures counts the records that could not be committed: a
	// silence change that raised it is answered 503 (ServeHTTP).
	replFailures atomic.Int64
	// replicated and replFailed count the records committed and not, by
	// kind, in reg; nil when not replicated.
	replicated, replFailed *prometheus.CounterVec
	// merging is the first byte of the replicated record being merged
	// (mergeReplicated): the library broadcasts what Merge takes, with
	// the same slice, and a committed record is not committed again.
	merging atomic.Pointer[byte]

	disp           atomic.Pointer[dispatch.Dispatcher]
	inhibitor      atomic.Pointer[inhibit.Inhibitor]
	resolveTimeout atomic.Int64 // time.Duration of the configuration's global resolve_timeout

	stop chan struct{}
	wg   sync.WaitGroup // the maintenance loop

	mu     sync.Mutex
	raw    UserConfig // the configuration applied
	closed bool
}

func (t *tenantAM) silencesPath() string { return filepath.Join(t.opts.dir, "silences") }
func (t *tenantAM) nflogPath() string    { return filepath.Join(t.opts.dir, "nflog") }

// newTenantAM opens a tenant's state (snapshots, then the state logs
// merged on top) and starts its parts; applyConfig must be called
// before it routes alerts.
func newTenantAM(opts tenantOptions) (t *tenantAM, err error) {
	var silencesFile, nflogFile string
	if opts.repl == nil {
		if err := os.MkdirAll(opts.dir, 0o755); err != nil {
			return nil, fmt.Errorf("create alertmanager state directory of tenant %s: %w", opts.tenant, err)
		}
		silencesFile, nflogFile = filepath.Join(opts.dir, "silences"), filepath.Join(opts.dir, "nflog")
	}
	logger := opts.logger
	t = &tenantAM{opts: opts, reg: prometheus.NewRegistry(), marker: marker.NewGroupMarker(), stop: make(chan struct{}), started: time.Now()}
	t.resolveTimeout.Store(int64(5 * time.Minute))
	if t.silences, err = silence.New(silence.Options{
		SnapshotFile: silencesFile,
		Retention:    opts.retention,
		Logger:       logger.With("component", "silences"),
		Metrics:      t.reg,
	}); err != nil {
		return nil, fmt.Errorf("open silences of tenant %s: %w", opts.tenant, err)
	}
	if t.nflog, err = nflog.New(nflog.Options{
		SnapshotFile: nflogFile,
		Retention:    opts.retention,
		Logger:       logger.With("component", "nflog"),
		Metrics:      t.reg,
	}); err != nil {
		return nil, fmt.Errorf("open notification log of tenant %s: %w", opts.tenant, err)
	}
	if opts.repl != nil {
		t.replicated = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alertmanager_state_replicated_total"}, []string{"kind"})
		t.replFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alertmanager_state_replication_failed_total"}, []string{"kind"})
		for _, k := range []string{"silences", "nflog"} {
			t.replicated.WithLabelValues(k)
			t.replFailed.WithLabelValues(k)
		}
		t.reg.MustRegister(t.replicated, t.replFailed)
		// Merged before the broadcast is set: Merge broadcasts what it
		// takes, and these records are committed already.
		for _, r := range opts.repl.records {
			if err := t.merge(r.Kind, r.Payload); err != nil {
				return nil, fmt.Errorf("merge replicated alertmanager state of tenant %s, record %q: %w", opts.tenant, r.Key, err)
			}
		}
		t.silences.SetBroadcast(func(b []byte) {
			if !t.isMerging(b) {
				t.replicate(KindSilences, b)
			}
		})
		t.nflog.SetBroadcast(func(b []byte) {
			if !t.isMerging(b) {
				t.replicate(KindNflog, b)
			}
		})
	} else {
		if err := t.replay(); err != nil {
			if t.state != nil {
				err = errors.Join(err, t.state.close())
			}
			return nil, err
		}
		t.silences.SetBroadcast(func(b []byte) { t.state.append(KindSilences, b) })
		t.nflog.SetBroadcast(func(b []byte) { t.state.append(KindNflog, b) })
	}
	t.wg.Go(t.maintenance)
	defer func() {
		if err != nil {
			t.close()
		}
	}()

	t.silencer = silence.NewSilencer(t.silences, logger, eventrecorder.Recorder{})
	ff := featurecontrol.NoopFlags{}
	if t.alerts, err = mem.NewAlerts(context.Background(), 30*time.Minute, 0, t.silencer, logger, eventrecorder.Recorder{}, t.reg, ff); err != nil {
		return t, fmt.Errorf("alert store of tenant %s: %w", opts.tenant, err)
	}
	if t.api, err = api.New(api.Options{
		Alerts:         t.alerts,
		Silences:       t.silences,
		GroupMutedFunc: t.marker.Muted,
		Logger:         logger.With("component", "api"),
		Registry:       t.reg,
		// Required by the library; the node's routes time every request
		// in myelin_http_request_duration_seconds already, so it is not
		// exported.
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "alertmanager_http_request_duration_seconds",
			Help: "Histogram of latencies for HTTP requests.",
		}, []string{"handler", "method", "code"}),
		GroupFunc: func(ctx context.Context, rf func(*dispatch.Route) bool, af func(*alert.Alert, time.Time) bool) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
			d := t.disp.Load()
			if d == nil {
				return nil, nil, nil
			}
			return d.Groups(ctx, rf, af)
		},
	}); err != nil {
		return t, fmt.Errorf("alertmanager API of tenant %s: %w", opts.tenant, err)
	}
	t.handler = t.api.Register(route.New(), opts.prefix)
	t.pipeline = notify.NewPipelineBuilder(t.reg, ff, eventrecorder.Recorder{})
	t.dispStats = dispatch.NewDispatcherMetrics(false, t.reg, ff)
	return t, nil
}

// replay merges the state logs into the state the snapshots loaded,
// starts a new log, writes new snapshots and drops the logs they cover.
func (t *tenantAM) replay() error {
	recs, gens, err := readLogs(t.opts.dir)
	if err != nil {
		return fmt.Errorf("read alertmanager state of tenant %s: %w", t.opts.tenant, err)
	}
	for _, r := range recs {
		if err := t.merge(r.Kind, r.Payload); err != nil {
			return fmt.Errorf("merge alertmanager state of tenant %s: %w", t.opts.tenant, err)
		}
	}
	var last uint64
	if len(gens) > 0 {
		last = gens[len(gens)-1]
	}
	if t.state, err = openStateLog(t.opts.dir, last); err != nil {
		return err
	}
	if len(gens) == 0 {
		return nil
	}
	return t.snapshot(last)
}

// merge merges one record of kind into the state.
func (t *tenantAM) merge(kind byte, payload []byte) error {
	switch kind {
	case KindSilences:
		return t.silences.Merge(payload)
	case KindNflog:
		return t.nflog.Merge(payload)
	}
	return fmt.Errorf("unknown record kind %d", kind)
}

// mergeReplicated merges a record committed by another node (one call
// at a time: the Multitenant's sync).
func (t *tenantAM) mergeReplicated(r Record) error {
	if len(r.Payload) == 0 {
		return nil
	}
	t.merging.Store(&r.Payload[0])
	defer t.merging.Store(nil)
	return t.merge(r.Kind, r.Payload)
}

// isMerging reports whether b is the record mergeReplicated merges.
func (t *tenantAM) isMerging(b []byte) bool {
	p := t.merging.Load()
	return p != nil && len(b) > 0 && &b[0] == p
}

// replicate commits one change the library broadcast (called with the
// library's lock held, before the change returns to its caller). The
// broadcast cannot fail: a record not committed is counted in
// replFailures (a silence change that raised it is answered 503) and
// logged.
func (t *tenantAM) replicate(kind byte, payload []byte) {
	r, err := recordOf(kind, payload)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		err = t.opts.repl.put(ctx, r)
		cancel()
	}
	kindName := "silences"
	if kind == KindNflog {
		kindName = "nflog"
	}
	if err != nil {
		t.replFailures.Add(1)
		t.replFailed.WithLabelValues(kindName).Inc()
		t.opts.logger.Error("alertmanager: replicate state", "kind", kindName, "key", r.Key, "err", err)
		return
	}
	t.replicated.WithLabelValues(kindName).Inc()
}

// snapshot writes the silences and the notification log and drops the
// state logs through gen, which the snapshot covers.
func (t *tenantAM) snapshot(gen uint64) error {
	if err := writeSnapshot(t.silencesPath(), t.silences.Snapshot); err != nil {
		return fmt.Errorf("snapshot silences of tenant %s: %w", t.opts.tenant, err)
	}
	if err := writeSnapshot(t.nflogPath(), t.nflog.Snapshot); err != nil {
		return fmt.Errorf("snapshot notification log of tenant %s: %w", t.opts.tenant, err)
	}
	return t.state.dropThrough(gen)
}

// maintain garbage-collects expired silences and notifications and
// snapshots the state: the state log is rotated first, so the snapshot
// covers every record of the files it drops.
func (t *tenantAM) maintain() error {
	if t.opts.repl != nil {
		// Replicated: every replica drops what expired by the time in
		// the committed entry; the library drops its own copy.
		now := time.Now()
		_, err1 := t.silences.GC()
		_, err2 := t.nflog.GC()
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		defer cancel()
		return errors.Join(err1, err2, t.opts.repl.gc(ctx, now))
	}
	gen, err := t.state.rotate()
	if err != nil {
		t.opts.logger.Error("alertmanager: state log", "err", err) // the snapshot below covers it
	}
	_, err1 := t.silences.GC()
	_, err2 := t.nflog.GC()
	return errors.Join(err1, err2, t.snapshot(gen))
}

func (t *tenantAM) maintenance() {
	tick := time.NewTicker(t.opts.maintenanceInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			if t.opts.repl != nil {
				return // nothing of the node's own to write
			}
			if err := t.maintain(); err != nil {
				t.opts.logger.Error("alertmanager: final maintenance", "err", err)
			}
			return
		case <-tick.C:
			if err := t.maintain(); err != nil {
				t.opts.logger.Error("alertmanager: maintenance", "err", err)
			}
		}
	}
}

// applyConfig routes the tenant's alerts by cfg from now on: the
// receivers, inhibitor and dispatcher are rebuilt (Alertmanager's own
// reload), silences, the notification log and the alerts are kept.
func (t *tenantAM) applyConfig(uc UserConfig, cfg *config.Config, tmpl *template.Template) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("alertmanager: tenant stopped")
	}
	logger := t.opts.logger
	tmpl.ExternalURL = t.opts.externalURL
	routes := dispatch.NewRoute(cfg.Route, nil)
	active := map[string]bool{}
	routes.Walk(func(r *dispatch.Route) { active[r.RouteOpts.Receiver] = true })
	receivers := make(map[string][]notify.Integration, len(active))
	for _, rcv := range cfg.Receivers {
		if !active[rcv.Name] {
			continue
		}
		ints, err := receiver.BuildReceiverIntegrations(rcv, tmpl, logger)
		if err != nil {
			return fmt.Errorf("receiver %q: %w", rcv.Name, err)
		}
		receivers[rcv.Name] = ints
	}
	intervals := make(map[string][]timeinterval.TimeInterval, len(cfg.MuteTimeIntervals)+len(cfg.TimeIntervals))
	for _, ti := range cfg.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range cfg.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	t.stopRouting()
	inh := inhibit.NewInhibitor(t.alerts, cfg.InhibitRules, logger, eventrecorder.Recorder{})
	pipeline := t.pipeline.New(receivers, func() time.Duration { return 0 }, inh, t.silencer,
		timeinterval.NewIntervener(intervals), t.marker, t.nflog, nil)
	t.resolveTimeout.Store(int64(cfg.Global.ResolveTimeout))
	t.api.Update(cfg, func(ctx context.Context, ls model.LabelSet) {
		inh.Mutes(ctx, ls)
		t.silencer.Mutes(ctx, ls)
	})
	timeout := func(d time.Duration) time.Duration { return max(d, notify.MinTimeout) }
	d := dispatch.NewDispatcher(t.alerts, routes, pipeline, t.marker, timeout, 30*time.Second, nil, logger, eventrecorder.Recorder{}, t.dispStats)
	go inh.Run()
	inh.WaitForLoading()
	t.inhibitor.Store(inh)
	go d.Run(t.started)
	d.WaitForLoading()
	t.disp.Store(d)
	t.raw = uc
	return nil
}

// stopRouting stops the dispatcher and the inhibitor, if running.
func (t *tenantAM) stopRouting() {
	if d := t.disp.Swap(nil); d != nil {
		d.Stop()
	}
	if i := t.inhibitor.Swap(nil); i != nil {
		i.Stop()
	}
}

// put takes alerts as Alertmanager's POST /api/v2/alerts takes them: a
// missing start is now (or the end), a missing end is now plus the
// configuration's resolve_timeout; an alert that does not validate is
// refused, the others are stored.
func (t *tenantAM) put(ctx context.Context, alerts []*alert.Alert) error {
	now := time.Now()
	resolve := time.Duration(t.resolveTimeout.Load())
	valid := alerts[:0:0]
	var errs []error
	for _, a := range alerts {
		a.UpdatedAt = now
		if a.StartsAt.IsZero() {
			if a.EndsAt.IsZero() {
				a.StartsAt = now
			} else {
				a.StartsAt = a.EndsAt
			}
		}
		if a.EndsAt.IsZero() {
			a.Timeout = true
			a.EndsAt = now.Add(resolve)
		}
		if err := a.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		valid = append(valid, a)
	}
	if err := t.alerts.Put(ctx, valid...); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// close stops the tenant's Alertmanager and snapshots its state; it is
// idempotent.
func (t *tenantAM) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	t.stopRouting()
	if t.alerts != nil {
		t.alerts.Close()
	}
	close(t.stop)
	t.wg.Wait()
	if t.state == nil {
		return
	}
	if err := t.state.close(); err != nil {
		t.opts.logger.Error("alertmanager: close state log", "err", err)
	}
}
