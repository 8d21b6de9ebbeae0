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
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// version is set at link time with -ldflags "-X main.version=v1.2.3";
// empty means the module version from the build info.
var version string

// shutdownTimeout bounds how long in-flight requests may take to finish
// after SIGTERM. 30 s is the default Kubernetes/systemd grace period; past it
// we close connections rather than be killed mid-write.
const shutdownTimeout = 30 * time.Second

// notImplemented is the body of the 501 answers on the ingest/query paths.
const notImplemented = "not implemented yet: ingest/query arrive with the single-node server"

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
	dataDir      string
	listenAddr   string
	multitenancy bool
	version      bool
}

// parseFlags parses args. It returns help == true after printing the usage
// for -help, and an error wrapping errUsage for a bad command line.
func parseFlags(args []string, stderr io.Writer) (cfg config, help bool, err error) {
	fs := flag.NewFlagSet("myelin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.dataDir, "data.dir", "./data", "Directory for the node's data; created if missing.")
	fs.StringVar(&cfg.listenAddr, "http.listen-address", ":9009", "Address (host:port) the HTTP server listens on; port 0 picks a free port.")
	fs.BoolVar(&cfg.multitenancy, "auth.multitenancy-enabled", true,
		"Require the X-Scope-OrgID header naming the tenant on ingest and query requests;\n"+
			"if false, every request belongs to the tenant \"anonymous\". Takes effect once ingest/query exist.")
	fs.BoolVar(&cfg.version, "version", false, "Print the version and exit.")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: myelin [flags]

Myelin is a multi-tenant, Prometheus-compatible time-series database.
This build serves /ready and /metrics; ingest and query answer 501 until the
single-node server lands. SIGINT/SIGTERM shut it down gracefully.

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
	return cfg, false, nil
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
	srv := &http.Server{
		Handler:           newHandler(reg, logger),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("starting", "version", versionString(), "data_dir", cfg.dataDir,
		"multitenancy_enabled", cfg.multitenancy)
	logger.Info("listening", "addr", ln.Addr().String())

	// The server goroutine is owned here: started now, stopped by Shutdown
	// below, and waited for on serveErr.
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serr := <-serveErr; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	logger.Info("stopped")
	return nil
}

func newHandler(reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
		Registry: reg,
	}))
	todo := func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, notImplemented, http.StatusNotImplemented)
	}
	// The Prometheus API prefixes cover /api/v1/push, /api/v1/write,
	// /api/v1/query and /api/v1/query_range too.
	mux.HandleFunc("/api/v1/", todo)
	mux.HandleFunc("/prometheus/api/v1/", todo)
	return mux
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
