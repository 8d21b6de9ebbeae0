package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/myelindb/myelin/server"
)

// version is set at link time with -ldflags "-X main.version=v1.2.3";
// empty means the module version from the build info.
var version string

// shutdownTimeout bounds the shutdown after SIGTERM: in-flight requests,
// then the checkpoint and close of the node. 30 s is the default
// Kubernetes grace period; past it we close connections rather than be
// killed mid-write, and exit without finishing the close rather than hang
// (a full disk once held a shutdown for over 8 minutes): the Raft log
// holds every acknowledged write and the next start replays it from the
// last checkpoint, a few seconds of log at most.
const shutdownTimeout = 30 * time.Second

// minCloseTime is the least time the node's close gets, however long the
// requests took: enough for the final checkpoint of a large head.
const minCloseTime = 10 * time.Second

// errUsage means the command line was wrong; parseFlags has said why.
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

// run is main without the process: it serves until ctx is done, then shuts
// down gracefully and returns nil. It logs to stderr, among others
// "msg=listening addr=HOST:PORT" once the listener is bound.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return runCommandContext(ctx, args, stdout, stderr)
	}
	cfg, help, err := parseFlags(args, stderr)
	if err != nil || help {
		return err
	}
	if cfg.version {
		_, err := fmt.Fprintf(stdout, "myelin %s %s\n", versionString(), runtime.Version())
		return err
	}
	logger := newLogger(cfg, stderr)
	setGOGC(cfg.gogc, logger)
	if err := os.MkdirAll(cfg.dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDataDir(cfg.dataDir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unlock()) }()
	nodeID, err := resolveNodeID(cfg.dataDir, cfg.cluster.nodeID)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	gate, reloader, err := openAuth(cfg, logger, reg)
	if err != nil {
		return err
	}
	lims, err := openLimits(cfg, logger, reg)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.listenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.listenAddr, err)
	}
	h := server.NewRoutes(gate, reg)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.httpReadTimeout,
		WriteTimeout:      cfg.httpWriteTimeout,
		IdleTimeout:       cfg.httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("starting", "version", versionString(), "node_id", nodeID, "data_dir", cfg.dataDir,
		"multitenancy_enabled", cfg.multitenancy, "auth", gate.On())
	logger.Info("listening", "addr", ln.Addr().String())

	// The server goroutine is owned here: started now, stopped by Shutdown
	// below, and waited for on serveErr. Until the node is open it answers
	// 503 (and /ready says not ready).
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	// The reloader of the auth config, owned like srv: stopped by
	// cancelling reloadCtx, waited for on reloadDone.
	reloadCtx, stopReload := context.WithCancel(ctx)
	reloadDone := make(chan struct{})
	if reloader != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		go func() {
			defer close(reloadDone)
			defer signal.Stop(hup)
			reloader.run(reloadCtx, cfg.authReload, hup)
		}()
	} else {
		close(reloadDone)
	}
	// The reloader of the runtime config (per-tenant limits), owned the
	// same way.
	limitsDone := make(chan struct{})
	if lims.loader != nil {
		go func() {
			defer close(limitsDone)
			lims.loader.Run(reloadCtx)
		}()
	} else {
		close(limitsDone)
	}
	defer func() {
		stopReload()
		<-reloadDone
		<-limitsDone
	}()

	n, err := openNode(ctx, cfg, nodeID, lims, logger, reg, h.Waiting)
	if err != nil && ctx.Err() != nil {
		// Stopped while opening (waiting for disk space, say): a normal
		// shutdown.
		logger.Info("stopped while opening", "err", err)
		err = nil
	}
	var internal *http.Server
	internalErr := make(chan error, 1)
	if err == nil {
		err = install(h, n, cfg, gate, reg, logger)
	}
	if err == nil && n.mux.Listening() {
		// Other nodes' requests (control RPCs, forwarded writes, remote
		// reads) come over the Raft listener. Owned like srv.
		internal = &http.Server{
			Handler:           n.internalHandler(logger),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		go func() { internalErr <- internal.Serve(n.mux.HTTPListener()) }()
	}
	if err == nil {
		logger.Info("started: waiting for the groups to be ready (/ready)")
		select {
		case err = <-serveErr:
			err = fmt.Errorf("serve http: %w", err)
			serveErr <- nil
		case <-ctx.Done():
		}
	}
	logger.Info("shutting down", "timeout", shutdownTimeout)
	if n != nil {
		n.cluster.Stop()
	}
	closeBy := time.Now().Add(shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	// Stop accepting and finish in-flight requests, then checkpoint.
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		err = errors.Join(err, fmt.Errorf("shut down http server: %w", serr))
	}
	if serr := <-serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if internal != nil {
		if serr := internal.Shutdown(shutdownCtx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down internal server: %w", serr))
		}
		if serr := <-internalErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
			err = errors.Join(err, serr)
		}
	}
	if n != nil {
		deadline := closeBy
		if least := time.Now().Add(minCloseTime); least.After(deadline) {
			deadline = least
		}
		if cerr := closeWithin(n, deadline); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close node: %w", cerr))
		}
	}
	if err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// closeWithin closes n, waiting until deadline at most. Past it the close
// goes on in a goroutine that the process's exit ends.
func closeWithin(n *node, deadline time.Time) error {
	done := make(chan error, 1)
	go func() { done <- n.close() }()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errors.New("not closed by the end of the shutdown's time limit: exiting anyway; " +
			"the next start replays the Raft log from the last checkpoint")
	}
}

// dataPaths are the parts of the data directory.
func enginePath(cfg config) string { return filepath.Join(cfg.dataDir, "engine") }
func raftPath(cfg config) string   { return filepath.Join(cfg.dataDir, "raft") }

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// openAuth loads -auth.config-file into the gate of the HTTP routes and
// returns its reloader; without the flag, a gate with auth off and no
// reloader. A file that does not load stops the start: a node meant to
// be closed does not open.
func openAuth(cfg config, logger *slog.Logger, reg prometheus.Registerer) (*server.AuthGate, *authReloader, error) {
	if cfg.authFile == "" {
		return server.NewAuthGate(server.AuthOptions{}), nil, nil
	}
	keys, sum, err := loadAuthFile(cfg.authFile)
	if err != nil {
		return nil, nil, err
	}
	if keys.Len() == 0 {
		logger.Warn("auth config has no tokens: only / and /ready answer", "file", cfg.authFile)
	}
	gate := server.NewAuthGate(server.AuthOptions{Keys: keys, Logger: logger, Registerer: reg})
	return gate, newAuthReloader(cfg.authFile, sum, gate, logger, reg), nil
}

// defaultGOGC is -runtime.gogc's default: the heap grows to 1.5x the
// live data before a collection instead of Go's 2x. Measured with
// bench/cmd/loadgen (50,000 series, 24 M samples, two rounds taking
// turns): RSS after settling -21% and -26%, server CPU per sample +5%
// (docs/design.md "Memory per series").
const defaultGOGC = 50

// setGOGC sets the garbage collector's target percentage, unless the
// GOGC environment variable set one (it wins, as for any Go program).
func setGOGC(gogc int, logger *slog.Logger) {
	if env := os.Getenv("GOGC"); env != "" {
		logger.Debug("GOGC set by the environment; -runtime.gogc ignored", "GOGC", env)
		return
	}
	debug.SetGCPercent(gogc)
}
