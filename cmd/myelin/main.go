package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/remotewrite"
)

// version is set at link time with -ldflags "-X main.version=v1.2.3";
// empty means the module version from the build info.
var version string

// shutdownTimeout bounds how long in-flight requests may take to finish
// after SIGTERM. 30 s is the default Kubernetes/systemd grace period; past it
// we close connections rather than be killed mid-write.
const shutdownTimeout = 30 * time.Second

// errUsage means the command line was wrong; the flag package has already
// said why.
var errUsage = errors.New("usage error")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "myelin:", err)
		os.Exit(1)
	}
}

type config struct {
	configFile   string
	dataDir      string
	listenAddr   string
	multitenancy bool
	version      bool
	retention    time.Duration
	cacheBytes   int64
	memTable     int64

	queryTimeout       time.Duration
	queryMaxSamples    int
	lookbackDelta      time.Duration
	queryExperimental  bool
	maxLabelNames      int
	maxLabelNameBytes  int
	maxLabelValueBytes int
	maxFutureSkew      time.Duration
	legacyNames        bool
	maxRecvBytes       int

	queryMaxConcurrency int
	queryMaxQueued      int
	maxExprBytes        int
	maxExprDepth        int
	metricsTenantIdle   time.Duration
	metricsMaxTenants   int
	httpReadTimeout     time.Duration
	httpWriteTimeout    time.Duration
	httpIdleTimeout     time.Duration

	cluster clusterConfig

	// effective is every flag's value after the config file and the
	// command line, served by /config.
	effective map[string]string
}

// parseFlags parses args. It returns help == true after printing the usage
// for -help, and an error wrapping errUsage for a bad command line.
// -config.file names a YAML file that maps flag names to values; flags on
// the command line override it.
func parseFlags(args []string, stderr io.Writer) (cfg config, help bool, err error) {
	fs := flag.NewFlagSet("myelin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.configFile, "config.file", "", "YAML file of flag values, e.g. `query.timeout: 1m`; command-line flags override it.")
	fs.StringVar(&cfg.dataDir, "data.dir", "./data", "Directory for the node's data (engine and Raft log); created if missing.")
	fs.StringVar(&cfg.listenAddr, "http.listen-address", ":9009", "Address (host:port) the HTTP server listens on; port 0 picks a free port.")
	fs.BoolVar(&cfg.multitenancy, "auth.multitenancy-enabled", true,
		"Require the X-Scope-OrgID header naming the tenant on ingest and query requests;\n"+
			"if false, every request belongs to the tenant \"anonymous\".")
	fs.DurationVar(&cfg.retention, "storage.retention", 0, "Refuse samples older than a tenant's newest sample minus this; 0 keeps everything.")
	fs.Int64Var(&cfg.cacheBytes, "storage.cache-size", 64<<20, "Block cache of the embedded Pebble store, shared by index and chunk reads (bytes).")
	fs.Int64Var(&cfg.memTable, "storage.memtable-size", 32<<20, "Size of one memtable of the embedded Pebble store (bytes); up to two are in memory.")
	fs.DurationVar(&cfg.queryTimeout, "query.timeout", 2*time.Minute, "Maximum time one query may take.")
	fs.IntVar(&cfg.queryMaxSamples, "query.max-samples", 50_000_000, "Maximum number of samples one query may load into memory.")
	fs.DurationVar(&cfg.lookbackDelta, "query.lookback-delta", 5*time.Minute, "How far back an instant selector looks for the latest sample.")
	fs.BoolVar(&cfg.queryExperimental, "query.enable-experimental", false,
		"Enable all of Prometheus 3's experimental PromQL features: experimental functions,\n"+
			"duration expressions, extended range selectors, binop fill modifiers, delayed name removal.")
	fs.IntVar(&cfg.maxLabelNames, "validation.max-label-names-per-series", 30, "Refuse series with more labels than this.")
	fs.IntVar(&cfg.maxLabelNameBytes, "validation.max-length-label-name", 1024, "Refuse series with a longer label name (bytes).")
	fs.IntVar(&cfg.maxLabelValueBytes, "validation.max-length-label-value", 2048, "Refuse series with a longer label value (bytes).")
	fs.DurationVar(&cfg.maxFutureSkew, "validation.create-grace-period", 10*time.Minute, "Refuse samples further than this in the future.")
	fs.BoolVar(&cfg.legacyNames, "validation.legacy-names", false, "Accept only Prometheus 2's metric and label name characters (default: any UTF-8, as Prometheus 3).")
	fs.IntVar(&cfg.maxRecvBytes, "distributor.max-recv-msg-size", 100<<20, "Largest remote-write request accepted, decompressed (bytes).")
	// Query guards (server.QueryOptions): Prometheus's and Mimir's flag
	// names where they have one; the depth limit has no counterpart and
	// sits beside Mimir's size limit.
	fs.IntVar(&cfg.queryMaxConcurrency, "query.max-concurrency", server.DefaultMaxConcurrent,
		"Maximum number of queries (requests that parse or evaluate PromQL) the node runs at once; more wait in a queue,\n"+
			"within -query.timeout, and get 503 after it. Prometheus's default is 20; 4 suits 2 cores, with a query at\n"+
			"-query.max-samples holding ~1.2 GB.")
	fs.IntVar(&cfg.queryMaxQueued, "query.max-queued-queries", server.DefaultMaxQueued,
		"Maximum number of queries waiting for one of -query.max-concurrency slots; more get 503 at once.")
	fs.IntVar(&cfg.maxExprBytes, "query-frontend.max-query-expression-size-bytes", server.DefaultMaxExpressionBytes,
		"Refuse (400) a query expression or match[] selector larger than this (bytes), before parsing it.")
	fs.IntVar(&cfg.maxExprDepth, "query-frontend.max-query-expression-depth", server.DefaultMaxExpressionDepth,
		"Refuse (400) a query expression nested deeper than this before parsing it: each level of brackets and each\n"+
			"operator chained at one level counts. The parser's time grows with the square of the depth.")
	fs.DurationVar(&cfg.metricsTenantIdle, "distributor.metrics-tenant-idle-timeout", server.DefaultTenantMetricsIdle,
		"Delete a tenant's series from the write metrics on /metrics after it has not written for this long.")
	fs.IntVar(&cfg.metricsMaxTenants, "distributor.metrics-max-tenants", server.DefaultMetricsMaxTenants,
		"Maximum number of tenants with series of their own in the write metrics; more are counted as tenant=\"<overflow>\".")
	// HTTP server timeouts: dskit's names (Cortex, Mimir, Loki).
	fs.DurationVar(&cfg.httpReadTimeout, "server.http-read-timeout", 30*time.Second,
		"Maximum time to read a request, headers and body (dskit's default).")
	fs.DurationVar(&cfg.httpWriteTimeout, "server.http-write-timeout", 2*time.Minute+30*time.Second,
		"Maximum time from the end of a request's headers to the end of its response; 0 means none. It must exceed\n"+
			"-query.timeout, or the slowest queries are cut off without an answer (dskit's default is 30s; with a 2m\n"+
			"query timeout this is 2m30s).")
	fs.DurationVar(&cfg.httpIdleTimeout, "server.http-idle-timeout", 2*time.Minute,
		"Close a keep-alive connection idle for this long (dskit's default).")
	cfg.cluster.register(fs)
	fs.BoolVar(&cfg.version, "version", false, "Print the version and exit.")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: myelin [flags]

Myelin is a multi-tenant, Prometheus-compatible time-series database. It
serves remote write on /api/v1/push and /api/v1/write, the Prometheus
query API under /api/v1 and /prometheus/api/v1, /ready and /metrics.
Every write goes through a Raft log on disk before it is acknowledged.
Without -cluster.node-id it runs a single node; with it, a member of a
cluster (see -cluster.join and README "Cluster").
SIGINT/SIGTERM shut it down gracefully.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, true, nil
		}
		return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return cfg, false, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if cfg.configFile != "" {
		if err := applyConfigFile(fs, cfg.configFile); err != nil {
			fmt.Fprintln(stderr, err)
			return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	if err := cfg.cluster.parse(); err != nil {
		fmt.Fprintln(stderr, err)
		return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	if cfg.httpWriteTimeout > 0 && cfg.httpWriteTimeout <= cfg.queryTimeout {
		err := fmt.Errorf("-server.http-write-timeout %v must exceed -query.timeout %v (or be 0)", cfg.httpWriteTimeout, cfg.queryTimeout)
		fmt.Fprintln(stderr, err)
		return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg.effective = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { cfg.effective[f.Name] = f.Value.String() })
	return cfg, false, nil
}

// applyConfigFile sets the flags named in a YAML file that were not set on
// the command line.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		if fs.Lookup(name) == nil || name == "config.file" {
			errs = append(errs, fmt.Errorf("config file %s: unknown setting %q", path, name))
			continue
		}
		if set[name] {
			continue
		}
		if err := fs.Set(name, fmt.Sprint(values[name])); err != nil {
			errs = append(errs, fmt.Errorf("config file %s: %s: %w", path, name, err))
		}
	}
	return errors.Join(errs...)
}

// run is main without the process: it serves until ctx is done, then shuts
// down gracefully and returns nil. It logs to stderr, among others
// "msg=listening addr=HOST:PORT" once the listener is bound.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, help, err := parseFlags(args, stderr)
	if err != nil || help {
		return err
	}
	if cfg.version {
		_, err := fmt.Fprintf(stdout, "myelin %s %s\n", versionString(), runtime.Version())
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.listenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.listenAddr, err)
	}
	h := &handler{mux: http.NewServeMux()}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.httpReadTimeout,
		WriteTimeout:      cfg.httpWriteTimeout,
		IdleTimeout:       cfg.httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("starting", "version", versionString(), "data_dir", cfg.dataDir,
		"multitenancy_enabled", cfg.multitenancy)
	logger.Info("listening", "addr", ln.Addr().String())

	// The server goroutine is owned here: started now, stopped by Shutdown
	// below, and waited for on serveErr. Until the node is open it answers
	// 503 (and /ready says not ready).
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	n, err := openBackend(ctx, cfg, logger, reg)
	if err == nil {
		err = h.install(n, cfg, reg, logger)
	}
	// A cluster node also serves other nodes over its Raft listener: the
	// control RPCs and the querier's remote reads. Owned like srv.
	var fsrv *http.Server
	fwdErr := make(chan error, 1)
	if c, ok := n.(*clusterNode); ok && err == nil {
		fsrv = &http.Server{
			Handler:           c.internalHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		go func() { fwdErr <- fsrv.Serve(c.mux.HTTPListener()) }()
	}
	if err == nil {
		logger.Info("ready")
		select {
		case err = <-serveErr:
			err = fmt.Errorf("serve http: %w", err)
			serveErr <- nil
		case <-ctx.Done():
		}
	}
	logger.Info("shutting down", "timeout", shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	// Stop accepting and finish in-flight requests, then checkpoint.
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		err = errors.Join(err, fmt.Errorf("shut down http server: %w", serr))
	}
	if serr := <-serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if fsrv != nil {
		if serr := fsrv.Shutdown(shutdownCtx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down forwarded-request server: %w", serr))
		}
		if serr := <-fwdErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
			err = errors.Join(err, serr)
		}
	}
	if n != nil {
		if cerr := n.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close node: %w", cerr))
		}
	}
	if err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// handler answers 503 on everything but /metrics until install.
type handler struct {
	mux   *http.ServeMux
	ready atomic.Bool
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.ready.Load() {
		http.Error(w, "not ready: opening storage and replaying the Raft log", http.StatusServiceUnavailable)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// install routes the APIs to n and marks the node ready.
func (h *handler) install(n backend, cfg config, reg *prometheus.Registry, logger *slog.Logger) error {
	write, err := server.NewWriteHandler(n, server.WriteOptions{
		Decoder: remotewrite.Options{MaxDecompressedBytes: cfg.maxRecvBytes},
		Limits: remotewrite.Limits{
			MaxLabelNames:      cfg.maxLabelNames,
			MaxLabelNameBytes:  cfg.maxLabelNameBytes,
			MaxLabelValueBytes: cfg.maxLabelValueBytes,
			MaxFutureSkew:      cfg.maxFutureSkew,
			LegacyNames:        cfg.legacyNames,
		},
		MultiTenant:       cfg.multitenancy,
		TenantMetricsIdle: cfg.metricsTenantIdle,
		MetricsMaxTenants: cfg.metricsMaxTenants,
		Logger:            logger,
		Registerer:        reg,
	})
	if err != nil {
		return err
	}
	query, err := server.NewQueryAPI(n, server.QueryOptions{
		Timeout:            cfg.queryTimeout,
		MaxSamples:         cfg.queryMaxSamples,
		LookbackDelta:      cfg.lookbackDelta,
		EnableExperimental: cfg.queryExperimental,
		MultiTenant:        cfg.multitenancy,
		MaxExpressionBytes: cfg.maxExprBytes,
		MaxExpressionDepth: cfg.maxExprDepth,
		MaxConcurrent:      cfg.queryMaxConcurrency,
		MaxQueued:          cfg.queryMaxQueued,
		Version:            versionString(),
		Logger:             logger,
		Registerer:         reg,
	})
	if err != nil {
		return err
	}
	reg.MustRegister(newNodeCollector(n))
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:                           "myelin_http_request_duration_seconds",
		Help:                           "Time to answer HTTP requests, per handler, method and status code.",
		Buckets:                        prometheus.DefBuckets,
		NativeHistogramBucketFactor:    1.1,
		NativeHistogramMaxBucketNumber: 100,
	}, []string{"handler", "method", "code"})
	reg.MustRegister(duration)
	handle := func(pattern, name string, hh http.Handler) {
		h.mux.Handle(pattern, promhttp.InstrumentHandlerDuration(duration.MustCurryWith(prometheus.Labels{"handler": name}), hh))
	}
	handle("GET /ready", "ready", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		// A cluster node serves once it is a member and every group has
		// a leader.
		if c, ok := n.(*clusterNode); ok {
			if err := c.ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ready\n")
	}))
	handle("GET /config", "config", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
		b, err := yaml.Marshal(cfg.effective)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(b)
	}))
	// Profiling, as Prometheus and every Go server offer it.
	h.mux.HandleFunc("/debug/pprof/", pprof.Index)
	h.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	h.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	h.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	h.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
		Registry: reg,
	}))
	var writes, reads http.Handler = write, query
	if c, ok := n.(*clusterNode); ok {
		handle("GET /ring", "ring", server.RingHandler(c.ringStatus))
		handle("GET /status/tenants", "tenants", server.TenantsHandler(c.tenantsStatus))
		handle("POST /admin/cluster/drain", "admin", http.HandlerFunc(c.serveDrain))
		handle("GET /admin/raft/status", "admin", http.HandlerFunc(c.serveReplicas))
		handle("GET /admin/raft/data", "admin", http.HandlerFunc(c.serveData))
	}
	for _, p := range []string{"/api/v1/push", "/api/v1/write", "/prometheus/api/v1/push", "/prometheus/api/v1/write"} {
		handle(p, "push", writes)
	}
	handle("/api/v1/", "query", reads)
	handle("/prometheus/api/v1/", "query", reads)
	h.ready.Store(true)
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
