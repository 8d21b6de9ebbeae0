package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/alertmanager"
	"github.com/myelindb/myelin/server/auth"
	"github.com/myelindb/myelin/server/distributor"
	"github.com/myelindb/myelin/server/frontend"
	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/querier"
	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/server/ruler"
	"github.com/myelindb/myelin/server/ui"
)

// node is what run wires: the engine, the node's Raft listener, its
// cluster member (a cluster of one unless configured otherwise), and the
// write and read paths over them.
type node struct {
	disk    *raftgroup.DiskGuard
	db      *engine.DB
	mux     *raftgroup.Mux
	cluster *cluster.Node
	tenants *server.Tenants
	limits  tenantLimits
	dist    *distributor.Distributor
	query   *querier.Querier
	api     *server.ClusterAPI
	// frontend is the query frontend in front of the query API, and
	// memcached its results cache if it has one: set by install, closed
	// by close.
	frontend  *frontend.Frontend
	memcached *frontend.Memcached
	// memory returns the heap of a burst of writes once the node's
	// groups go quiet; closed by close after the cluster.
	memory *memoryReturner
	// ruler evaluates the tenants' rule groups: set by install, closed
	// by close (before the cluster it writes through).
	ruler *ruler.Ruler
	// stopImport ends the import of DATA/rules (newRuler), importDone
	// is closed when it ended.
	stopImport context.CancelFunc
	importDone chan struct{}
	// stopAMImport ends the import of DATA/alertmanager (newAlerting),
	// amImportDone is closed when it has.
	stopAMImport context.CancelFunc
	amImportDone chan struct{}
	// retention proposes the tenants' retention steps; nil until install.
	retention *server.Retention
	// alertmanager is the node's multi-tenant Alertmanager, notifier the
	// ruler's sender to external Alertmanagers (nil when it sends to
	// alertmanager): set by install, closed by close after the ruler.
	alertmanager *alertmanager.Multitenant
	notifier     *ruler.ExternalNotifier
	// peerRules serves this node's own rule groups and alerts to the
	// other nodes (server.PathPeerRules): set by install.
	peerRules http.Handler
}

// openMinFree is the free space the node waits for before it opens its
// storage: Pebble's open writes a manifest and an options file, and a
// manifest write that fails is fatal to Pebble (it panics), so a node
// restarted on a full disk waits, answering 503 with the reason, instead
// of crashing in a loop.
const openMinFree = 16 << 20

// openNode opens the engine and starts the cluster member on it, after
// waiting for openMinFree bytes of free space; waiting is told why the
// node is waiting (nil once it is not).
func openNode(ctx context.Context, cfg config, nodeID string, lims tenantLimits, logger *slog.Logger, reg prometheus.Registerer, waiting func(error)) (n *node, err error) {
	// One guard of the data directory's free space for the engine and
	// every group: the groups refuse writes while it says the disk is
	// full, the engine and the logs report their ENOSPC errors to it.
	disk, err := raftgroup.NewDiskGuard(raftgroup.DiskGuardOptions{
		Dirs:         []string{cfg.dataDir},
		MinFreeBytes: uint64(cfg.minFreeBytes),
		Setting:      "-storage.min-free-disk-space-bytes",
		Logger:       logger,
		Registerer:   reg,
	})
	if err != nil {
		return nil, err
	}
	if m := cfg.minFreeBytes; m > 0 && m < 2*cfg.memTable {
		logger.Warn("-storage.min-free-disk-space-bytes is below two memtables (-storage.memtable-size): "+
			"a flush may not fit when writes are refused, and applies then wait for space", "min_free_bytes", m, "memtable_bytes", cfg.memTable)
	}
	if err := waitForSpace(ctx, disk, logger, waiting); err != nil {
		disk.Close()
		return nil, err
	}
	cacheBytes := cfg.cacheBytes
	if cacheBytes == 0 {
		mem := memoryLimit()
		cacheBytes = autoCacheBytes(mem)
		logger.Info("block cache sized to the memory", "cache_bytes", cacheBytes, "memory_bytes", mem)
	}
	db, err := engine.Open(engine.Options{
		Dir:           enginePath(cfg),
		Retention:     cfg.retention,
		CacheBytes:    cacheBytes,
		MemTableBytes: cfg.memTable,
		OnDiskFull:    disk.Report,
		Logger:        logger,
		Registerer:    reg,
	})
	if err != nil {
		disk.Close()
		return nil, fmt.Errorf("open engine: %w", err)
	}
	n = &node{disk: disk, db: db, tenants: server.NewTenants(db), limits: lims}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.close())
			n = nil
		}
	}()
	cc := cfg.cluster
	tlsConf, err := cc.tlsConfig()
	if err != nil {
		return n, err
	}
	secret, err := cc.secret()
	if err != nil {
		return n, err
	}
	// A node that is not configured for a cluster opens no Raft port: it
	// is a cluster of one (docs/design.md "One path"). Its address in its
	// groups' configurations is never dialed.
	var ln net.Listener
	advertise := nodeID + ":0"
	if cc.listen {
		var lc net.ListenConfig
		if ln, err = lc.Listen(ctx, "tcp", cc.listenAddr); err != nil {
			return n, fmt.Errorf("raft listen on %s: %w", cc.listenAddr, err)
		}
		advertise = cc.advertise
		logger.Info("raft listening", "addr", ln.Addr().String(), "advertise", advertise, "tls", tlsConf != nil,
			"secret", secret != nil, "mutual_tls", tlsConf != nil && tlsConf.ClientCAs != nil)
		if cc.insecure {
			logger.Warn("raft listener open to anyone (-raft.insecure): whoever reaches it can read and write every tenant and join the cluster",
				"addr", ln.Addr().String())
		}
	}
	n.memory = newMemoryReturner(memoryReturnInterval, returnMemory)
	var cn atomic.Pointer[cluster.Node]
	n.mux, err = raftgroup.NewMux(raftgroup.MuxOptions{
		Listener:  ln,
		Advertise: advertise,
		TLS:       tlsConf,
		Secret:    secret,
		Resolve: func(id string) string {
			if c := cn.Load(); c != nil {
				return c.Resolve(id)
			}
			return cc.peers[id]
		},
		Logger:     logger,
		Registerer: reg,
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return n, err
	}
	// Take the listener of other nodes' requests now: until the internal
	// server serves it, their connections wait instead of being refused.
	n.mux.HTTPListener()
	n.cluster, err = cluster.Start(cluster.Options{
		NodeID:    nodeID,
		Advertise: advertise,
		Dir:       raftPath(cfg),
		Mux:       n.mux,
		Storage:   engineStorage{db},
		Peers:     cc.voters(),
		Join:      cc.joinAddr,
		Ring:      ring.Options{ReplicationFactor: cc.replication, GroupsPerNode: cc.groupsPerNode},
		DeadAfter: cc.deadAfter,
		Heartbeat: cc.heartbeatInterval,
		Raft: raftgroup.Options{
			Disk:                disk,
			LogStore:            raftgroup.LogStore(cc.logStore),
			WALSegmentBytes:     cc.walSegmentBytes,
			HeartbeatTimeout:    cc.heartbeat,
			SnapshotThreshold:   cc.snapshotThr,
			SnapshotMaxLogBytes: cc.snapshotLogBytes,
			SnapshotMaxLogAge:   cc.snapshotLogAge,
			TrailingLogs:        cc.trailing,
			Quiesced:            n.memory.quiesced,
		},
		Tenants:    n.tenants.Report,
		Registerer: reg,
		Logger:     logger,
	})
	if err != nil {
		return n, err
	}
	cn.Store(n.cluster)
	router := n.cluster.Router()
	// Each part of a write carries its tenant's series limits, scaled
	// to its group.
	n.dist = distributor.New(router, router.Ring, lims.o)
	if cc.plainEntries() {
		n.dist.PlainEntries()
	}
	n.query = querier.New(querier.Routed(router, engineLocal(db), cluster.ReadWindow(cfg.maxFutureSkew), cluster.ForwardTimeout),
		querier.Options{Logger: logger})
	n.api = server.NewClusterAPI(n.cluster, db)
	return n, nil
}

// waitForSpace returns once disk has read openMinFree bytes free, or with
// ctx's error. It logs once why it waits, and every 5 minutes after.
func waitForSpace(ctx context.Context, disk *raftgroup.DiskGuard, logger *slog.Logger, waiting func(error)) error {
	tick := time.NewTicker(time.Second) // as often as the guard reads the free space
	defer tick.Stop()
	var logged time.Time
	for {
		free := disk.Free()
		if free >= openMinFree {
			waiting(nil)
			return nil
		}
		err := fmt.Errorf("disk full: %d bytes free in the data directory, %d needed to open the storage; waiting for space", free, openMinFree)
		waiting(err)
		if logged.IsZero() || time.Since(logged) >= 5*time.Minute {
			logger.Error("waiting for disk space before opening the storage (free some space)", "free_bytes", free, "needed_bytes", openMinFree)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for disk space: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// internalHandler serves what other nodes call over the Raft listener:
// the cluster's control RPCs, the querier's remote protocol and the
// Alertmanager's forwarded requests.
func (n *node) internalHandler(logger *slog.Logger) http.Handler {
	m := http.NewServeMux()
	m.Handle(cluster.PathPrefix, n.cluster.Handler())
	qh := querier.NewHandler(querier.Verified(n.cluster.Router().VerifyRead, engineLocal(n.db)), querier.HandlerOptions{Logger: logger})
	for _, p := range []string{querier.PathSelect, querier.PathLabels, querier.PathValues, querier.PathExemplars, querier.PathMetadata} {
		m.Handle(p, qh)
	}
	if n.peerRules != nil {
		m.Handle("GET "+server.PathPeerRules, n.peerRules)
	}
	if n.alertmanager != nil {
		// Tenants' Alertmanager requests and alerts forwarded to the node
		// that runs them (docs/design.md "Alertmanager").
		ah := n.alertmanager.InternalHandler()
		m.Handle(alertmanager.InternalPrefix+alertmanager.PathPrefix+"/", ah)
		m.Handle(alertmanager.PushPath, ah)
	}
	return m
}

// close stops the cluster member (checkpointing every replica), the
// listener and the engine; any may be missing after a failed open.
func (n *node) close() error {
	var errs []error
	if n.stopImport != nil {
		n.stopImport()
		<-n.importDone
	}
	if n.stopAMImport != nil {
		n.stopAMImport()
		<-n.amImportDone
	}
	if n.ruler != nil {
		n.ruler.Close()
	}
	if n.retention != nil {
		n.retention.Close()
	}
	if n.notifier != nil {
		n.notifier.Close()
	}
	if n.alertmanager != nil {
		n.alertmanager.Close()
	}
	if n.frontend != nil {
		n.frontend.Close()
	}
	if n.memcached != nil {
		errs = append(errs, n.memcached.Close())
	}
	if n.cluster != nil {
		errs = append(errs, n.cluster.Close())
	}
	if n.memory != nil {
		n.memory.close()
	}
	if n.mux != nil {
		errs = append(errs, n.mux.Close())
	}
	errs = append(errs, n.db.Close())
	n.disk.Close()
	return errors.Join(errs...)
}

// engineLocal is the querier's Local over the node's engine: the query's
// budget counts the engine's reads.
func engineLocal(db *engine.DB) querier.Local {
	return func(g uint32, tenant string, mint, maxt int64, b *limits.QueryBudget) (storage.Querier, error) {
		var rb engine.ReadBudget
		if b != nil { // a nil *QueryBudget in the interface would not be nil
			rb = b
		}
		return db.QuerierWithBudget(g, tenant, mint, maxt, rb)
	}
}

// The engine is a Raft state machine without importing raftgroup.
var _ raftgroup.Applier = (*engine.Applier)(nil)

// engineStorage is cluster.Storage over the node's engine.
type engineStorage struct{ db *engine.DB }

func (s engineStorage) Open(g ring.GroupID) (raftgroup.Applier, error) {
	eg, recovered, err := s.db.OpenGroup(uint32(g))
	if err != nil {
		return nil, err
	}
	return engine.NewApplier(eg, recovered), nil
}

// Close keeps the group open in the engine: its replica stopped, and a
// later open of the replica finds its state there.
func (s engineStorage) Close(ring.GroupID) error  { return nil }
func (s engineStorage) Drop(g ring.GroupID) error { return s.db.DropGroup(uint32(g)) }

// install routes the public APIs to n, each with what it needs with auth
// on (docs/design.md "Auth" has the table), and opens h.
func install(h *server.Routes, n *node, cfg config, gate *server.AuthGate, reg *prometheus.Registry, logger *slog.Logger) error {
	write, err := server.NewWriteHandler(n.dist, server.WriteOptions{
		Decoder:     remotewrite.Options{MaxDecompressedBytes: cfg.maxRecvBytes},
		Limits:      n.limits.o,
		LegacyNames: cfg.legacyNames,
		// A tenant's ingestion rate is shared by the nodes it writes
		// through (Mimir's global strategy).
		ActiveNodes:         func() int { return len(n.cluster.View().State.ActiveNodes()) },
		MultiTenant:         cfg.multitenancy,
		MaxInflightRequests: cfg.maxInflightPushes,
		MaxInflightBytes:    cfg.maxInflightPushBytes,
		Tenants:             n.tenants,
		TenantMetricsIdle:   cfg.metricsTenantIdle,
		MetricsMaxTenants:   cfg.metricsMaxTenants,
		Logger:              logger,
		Registerer:          reg,
	})
	if err != nil {
		return err
	}
	otlp, err := server.NewOTLPHandler(write, cfg.otlp.options())
	if err != nil {
		return err
	}
	am, notifier, err := newAlerting(n, cfg, reg, logger)
	if err != nil {
		return err
	}
	rl, rulesAPI, err := newRuler(n, cfg, notifier, reg, logger)
	if err != nil {
		return err
	}
	query, err := server.NewQueryAPI(n.query, server.QueryOptions{
		Rules:              func(org string) v1.RulesRetriever { return rl.Tenant(org) },
		Limits:             n.limits.o,
		LookbackDelta:      cfg.lookbackDelta,
		EnableExperimental: cfg.queryExperimental,
		UseStartTimestamps: cfg.queryStartTimes,
		MultiTenant:        cfg.multitenancy,
		Federation:         gate.On(),
		MaxExpressionBytes: cfg.maxExprBytes,
		MaxExpressionDepth: cfg.maxExprDepth,
		MaxConcurrent:      cfg.queryMaxConcurrency,
		MaxQueued:          cfg.queryMaxQueued,
		ShardHints:         true, // the querier and the engine honour them
		Version:            versionString(),
		Logger:             logger,
		Registerer:         reg,
	})
	if err != nil {
		return err
	}
	// The tenants' in-memory series, beside their limits.
	reg.MustRegister(n.tenants.SeriesCollector(cfg.metricsMaxTenants))
	handle := h.Handle
	// Public: what a load balancer and a visitor need, without tenants:
	// readiness, and the UI (its page and code; the data it shows come
	// from the API with the user's token).
	page, err := ui.New(func() ui.NodeInfo {
		info := ui.NodeInfo{Version: versionString(), NodeID: n.cluster.ID(), Ready: true, Auth: gate.On(), MultiTenant: cfg.multitenancy}
		if err := n.api.Ready(); err != nil {
			info.Ready, info.NotReady = false, err.Error()
		}
		return info
	})
	if err != nil {
		return err
	}
	handle("GET /{$}", "index", auth.Public, page.Index())
	handle("GET /ui/", "ui", auth.Public, page.Assets())
	handle("GET /ready", "ready", auth.Public, server.ReadyHandler(n.api.Ready))
	// What a token may learn about itself (its tenants and scopes), for
	// the UI's tenant picker: any valid token.
	handle("GET /api/v1/auth/whoami", "whoami", auth.Token, server.WhoAmIHandler(gate.On()))
	handle("GET /config", "config", auth.Admin, server.ConfigHandler(cfg.effective))
	// Every tenant's limits: admin, as /config.
	handle("GET /runtime_config", "runtime_config", auth.Admin, server.RuntimeConfigHandler(n.limits.o, n.limits.status()))
	n.api.Register(handle)
	// Profiling, as Prometheus and every Go server offer it: admin, as a
	// heap profile holds whatever the heap held, label values included.
	handle("/debug/pprof/", "pprof", auth.Admin, http.HandlerFunc(pprof.Index))
	handle("/debug/pprof/cmdline", "pprof", auth.Admin, http.HandlerFunc(pprof.Cmdline))
	handle("/debug/pprof/profile", "pprof", auth.Admin, http.HandlerFunc(pprof.Profile))
	handle("/debug/pprof/symbol", "pprof", auth.Admin, http.HandlerFunc(pprof.Symbol))
	handle("/debug/pprof/trace", "pprof", auth.Admin, http.HandlerFunc(pprof.Trace))
	// The node's metrics name tenants: the metrics scope (a scraper's) or
	// admin.
	handle("GET /metrics", "metrics", auth.Metrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
		Registry: reg,
	}))
	for _, p := range []string{"/api/v1/push", "/api/v1/write", "/prometheus/api/v1/push", "/prometheus/api/v1/write"} {
		handle(p, "push", auth.Write, write)
	}
	// OTLP/HTTP metrics: Mimir's path, and Prometheus's.
	for _, p := range []string{"/otlp/v1/metrics", "/api/v1/otlp/v1/metrics"} {
		handle(p, "otlp", auth.Write, otlp)
	}
	// Backfill import of Prometheus text / OpenMetrics, and its export:
	// VictoriaMetrics' paths (docs/design.md "Import and export").
	imp := server.NewImportHandler(write, server.ImportOptions{})
	for _, p := range []string{"/api/v1/import/prometheus", "/prometheus/api/v1/import/prometheus"} {
		handle(p, "import", auth.Write, imp)
	}
	exp := server.NewExportHandler(n.query, cfg.multitenancy)
	for _, p := range []string{"/api/v1/export", "/prometheus/api/v1/export"} {
		handle(p, "export", auth.Read, exp)
	}
	expNative := server.NewNativeExportHandler(n.query, cfg.multitenancy)
	for _, p := range []string{"/api/v1/export/native", "/prometheus/api/v1/export/native"} {
		handle(p, "export", auth.Read, expNative)
	}
	// The Cortex and Mimir rule configuration API: the rules scope.
	// Prometheus's read of rules and alerts is the query API's
	// /prometheus/api/v1/rules and /alerts (GET /api/v1/rules is
	// Cortex's list of rule groups, docs/design.md "Ruler").
	rulesAPI.Register(func(pattern string, h http.Handler) { handle(pattern, "rules", auth.Rules, h) },
		"/api/v1/rules", "/prometheus/config/v1/rules")
	// Deletion (docs/design.md "Deletion and retention"): Prometheus's
	// admin API and Mimir's tenant deletion, replicated to every group by
	// the distributor. An admin token with the tenant.
	del := server.NewDeleteAPI(n.dist, server.DeleteOptions{
		MultiTenant: cfg.multitenancy,
		Parser:      server.NewParser(cfg.queryExperimental),
		HasData: func(ctx context.Context, org string) (bool, error) {
			q, err := n.query.Querier(org, math.MinInt64, math.MaxInt64)
			if err != nil {
				return false, err
			}
			defer q.Close()
			names, _, err := q.LabelNames(ctx, nil)
			return len(names) > 0, err
		},
		// Every node's query frontend stops using the tenant's cached
		// results: this one at once (set below, before the server
		// serves), the others when they apply the bump of the tenant's
		// cache generation in the metadata.
		Deleted: func(ctx context.Context, org string) error {
			if n.frontend != nil {
				n.frontend.Forget(org)
			}
			return n.cluster.BumpCacheGeneration(ctx, org)
		},
		Logger: logger.With("component", "delete"),
	})
	// Retention: the steps of the tenants this node holds data of, in
	// every group (docs/design.md "Deletion and retention").
	n.retention = server.StartRetention(n.dist, server.RetentionOptions{
		Interval: cfg.retentionInterval,
		Global:   cfg.retention,
		Period:   n.limits.o.RetentionPeriod,
		Tenants:  n.localTenants,
		Logger:   logger.With("component", "retention"),
	})
	for _, prefix := range []string{"", "/prometheus"} {
		for _, method := range []string{"POST", "PUT"} {
			handle(method+" "+prefix+"/api/v1/admin/tsdb/delete_series", "delete_series", auth.TenantAdmin, http.HandlerFunc(del.DeleteSeries))
			handle(method+" "+prefix+"/api/v1/admin/tsdb/clean_tombstones", "clean_tombstones", auth.TenantAdmin, http.HandlerFunc(del.CleanTombstones))
		}
	}
	handle("POST /purger/delete_tenant", "delete_tenant", auth.TenantAdmin, http.HandlerFunc(del.DeleteTenant))
	handle("GET /purger/delete_tenant_status", "delete_tenant_status", auth.TenantAdmin, http.HandlerFunc(del.DeleteTenantStatus))
	// The Alertmanager: Cortex's configuration API (/api/v1/alerts, so
	// Prometheus's read of alerts is under /prometheus only) and each
	// tenant's API v2 under /alertmanager, both with the alertmanager scope
	// (docs/design.md "Alertmanager").
	am.RegisterConfigAPI(func(pattern string, h http.Handler) { handle(pattern, "alertmanager_config", auth.Alertmanager, h) })
	handle(alertmanager.PathPrefix+"/", "alertmanager", auth.Alertmanager, am)
	// The query frontend sits in front of the query API: it takes
	// /query and /query_range and passes every other read on.
	fe, err := newFrontend(n, query, cfg, gate, reg, logger)
	if err != nil {
		return err
	}
	handle("/api/v1/", "query", auth.Read, fe)
	handle("/prometheus/api/v1/", "query", auth.Read, fe)
	// Prometheus's read of rules and alerts shows every node's groups
	// (each node evaluates those the ring gives it).
	n.peerRules = server.PeerRulesHandler(query)
	rulesFanout := server.NewRulesFanout(fe, server.RulesFanoutOptions{
		Peers:  n.peerBases,
		Client: n.cluster.Router().Client(),
		Logger: logger.With("component", "rules-fanout"),
	})
	for _, p := range []string{"GET /prometheus/api/v1/rules", "GET /prometheus/api/v1/alerts"} {
		handle(p, "query", auth.Read, rulesFanout)
	}
	h.Open()
	return nil
}

// newRuler starts the ruler over the node's read and write paths, with
// its rule groups in the metadata group (a single node is a cluster of
// one: docs/design.md "Ruler"), evaluating the groups the node ring gives
// this node; keeps it in n to be closed with it, and returns its
// configuration API.
func newRuler(n *node, cfg config, notifier ruler.Notifier, reg prometheus.Registerer, logger *slog.Logger) (*ruler.Ruler, *ruler.ConfigAPI, error) {
	// Fenced after half of DeadAfter without the metadata leader: a node
	// cut off stops evaluating before the others take its groups.
	store := ruler.NewMetaStore(rulerMetadata{n.cluster}, cfg.cluster.deadAfter/2)
	p := server.NewParser(cfg.queryExperimental)
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:                   logger,
		MaxSamples:               cfg.queryMaxSamples,
		Timeout:                  cfg.queryTimeout,
		LookbackDelta:            cfg.lookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return cfg.rulerEvalInterval.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		UseStartTimestamps:       cfg.queryStartTimes,
		Parser:                   p,
	})
	rl, err := ruler.New(ruler.Options{
		Store:   store,
		Owns:    store.Owns,
		Version: store.Version,
		Queryable: func(org string) storage.Queryable {
			return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
				return n.query.Querier(org, mint, maxt)
			})
		},
		Writer:             n.dist,
		Engine:             engine,
		Parser:             p,
		EvaluationInterval: cfg.rulerEvalInterval,
		PollInterval:       cfg.rulerPollInterval,
		ResendDelay:        cfg.rulerResendDelay,
		MaxConcurrentEvals: cfg.rulerConcurrency,
		TenantConcurrency:  n.limits.o.RulerMaxIndependentRuleEvaluationConcurrencyPerTenant,
		Notifier:           notifier,
		Registerer:         reg,
		Logger:             logger.With("component", "ruler"),
	})
	if err != nil {
		return nil, nil, err
	}
	n.ruler = rl
	api := ruler.NewConfigAPI(store, ruler.ConfigOptions{
		MultiTenant: cfg.multitenancy,
		Parser:      p,
		Changed:     rl.Changed,
		Limits:      n.limits.o,
		Logger:      logger,
	})
	// Groups a node stored in DATA/rules before they were replicated
	// move into the metadata once it has a leader.
	ctx, cancel := context.WithCancel(context.Background())
	n.stopImport, n.importDone = cancel, make(chan struct{})
	go func() {
		defer close(n.importDone)
		dir := filepath.Join(cfg.dataDir, "rules")
		if err := ruler.ImportFileStore(ctx, dir, store); err != nil && ctx.Err() == nil {
			logger.Error("ruler: import the rule groups of "+dir+" into the replicated store", "err", err)
		}
	}()
	return rl, api, nil
}

// newFrontend makes the query frontend in front of query, with its
// results cache, and keeps both in n to be closed with it.
func newFrontend(n *node, query http.Handler, cfg config, gate *server.AuthGate, reg prometheus.Registerer, logger *slog.Logger) (*frontend.Frontend, error) {
	fc := cfg.frontend
	var cache frontend.Cache
	switch fc.cacheBackend {
	case "memcached":
		m, err := frontend.NewMemcached(frontend.MemcachedOptions{
			Addresses:  strings.Split(fc.memcachedAddrs, ","),
			Timeout:    fc.memcachedTimeout,
			Logger:     logger,
			Registerer: reg,
		})
		if err != nil {
			return nil, err
		}
		n.memcached = m
		cache = m
	default:
		cache = frontend.NewLRU(fc.inmemoryBytes, nil, reg)
	}
	fe, err := frontend.New(query, frontend.Options{
		Defaults:             fc.limits,
		TenantLimits:         frontendLimits(fc.limits, n.limits.o),
		MaxInFlight:          cfg.queryMaxConcurrency,
		CPUSlots:             fc.cpuSlots,
		MultiTenant:          cfg.multitenancy,
		Federation:           gate.On(),
		Timeout:              cfg.queryTimeout,
		LogQueriesLongerThan: fc.logSlowerThan,
		CheckExpr: func(expr string) error {
			return server.CheckExpression(expr, cfg.maxExprBytes, cfg.maxExprDepth)
		},
		Parser:        server.NewParser(cfg.queryExperimental),
		LookbackDelta: cfg.lookbackDelta,
		Cache:         cache,
		// Bumped by deletions on any node (the metadata's).
		Generation: func(org string) uint64 { return n.cluster.View().CacheGeneration(org) },

		ParallelizeShardableQueries: fc.parallelize,
		ShardParallelism:            fc.shardParallelism,
		DelayedNameRemoval:          cfg.queryExperimental,
		Logger:                      logger,
		Registerer:                  reg,
	})
	if err != nil {
		return nil, err
	}
	n.frontend = fe
	return fe, nil
}

// peerBases returns the base URLs of the other active nodes' internal
// handlers (over the Mux).
func (n *node) peerBases() []string {
	self := n.cluster.ID()
	var out []string
	for _, id := range n.cluster.View().State.ActiveNodes() {
		if string(id) == self {
			continue
		}
		if addr := n.cluster.Resolve(string(id)); addr != "" {
			out = append(out, "http://"+addr)
		}
	}
	return out
}

// localTenants returns the tenants of this node's replicas, sorted, with
// the longest retention period a replica holds for each.
func (n *node) localTenants() []server.LocalTenant {
	r, err := n.cluster.Router().Ring()
	if err != nil {
		return nil
	}
	period := map[string]int64{}
	for _, id := range r.Groups() {
		if g := n.db.Group(uint32(id)); g != nil {
			for _, ts := range g.Stats() {
				period[ts.Tenant] = max(period[ts.Tenant], ts.RetentionPeriod)
			}
		}
	}
	out := make([]server.LocalTenant, 0, len(period))
	for _, t := range slices.Sorted(maps.Keys(period)) {
		out = append(out, server.LocalTenant{Name: t, Period: time.Duration(period[t]) * time.Millisecond})
	}
	return out
}
