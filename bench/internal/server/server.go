// Package server starts and stops the servers the bench tools measure: a
// single Myelin node, Prometheus and VictoriaMetrics, each a child
// process with its own data directory and log file.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/myelindb/myelin/bench/internal/load"
)

// Server is a receiver under test, started by us and stopped by us.
type Server struct {
	Name     string
	DataDir  string
	Addr     string // host:port
	LogPath  string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	waitErr  error         // valid after exited is closed
	readyURL string
}

// FreeAddr returns a loopback address with a port free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// Start runs bin with args, logging to dir/<name>.log, and waits until
// readyPath answers 200.
func Start(ctx context.Context, name, bin, dir, dataDir, addr, readyPath string, args ...string) (*Server, error) {
	s := &Server{Name: name, DataDir: dataDir, Addr: addr, LogPath: filepath.Join(dir, name+".log"),
		readyURL: "http://" + addr + readyPath, exited: make(chan struct{})}
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("start %s: %w", name, err), logf.Close())
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.readyURL)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited before ready: %v; log in %s", name, s.waitErr, s.LogPath)
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), s.Stop())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, errors.Join(fmt.Errorf("%s not ready within 60 s; log in %s", name, s.LogPath), s.Stop())
		}
	}
}

// PID is the server's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM and waits up to a minute, then kills.
func (s *Server) Stop() error {
	if err := load.Stop(s.cmd.Process, s.exited, time.Minute); err != nil {
		return fmt.Errorf("stop %s: %w", s.Name, err)
	}
	return nil
}

// StartMyelin runs a single Myelin node with its data in dir/myelin and
// the extra flags.
func StartMyelin(ctx context.Context, bin, dir string, extra ...string) (*Server, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "myelin")
	return Start(ctx, "myelin", bin, dir, data, addr, "/ready",
		append([]string{"-data.dir", data, "-http.listen-address", addr}, extra...)...)
}

// StartPrometheus runs Prometheus as a remote-write receiver with config
// (its YAML; empty: scrape nothing), its TSDB in dir/prometheus keeping
// everything (its default retention, 15 days, would delete part of a
// longer load), the admin API on (for the snapshot) and the extra flags.
func StartPrometheus(ctx context.Context, bin, dir, config string, extra ...string) (*Server, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	if config == "" {
		config = "# no scrape jobs: remote-write receiver only\nglobal:\n  scrape_interval: 15s\n"
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "prometheus")
	return Start(ctx, "prometheus", bin, dir, data, addr, "/-/ready",
		append([]string{"--config.file=" + cfg, "--storage.tsdb.path=" + data, "--web.listen-address=" + addr,
			"--web.enable-remote-write-receiver", "--web.enable-admin-api",
			"--storage.tsdb.retention.time=100y"}, extra...)...)
}

// StartVictoriaMetrics runs single-node VictoriaMetrics with its storage
// in dir/victoriametrics, everything kept (-retentionPeriod=100y) and the
// newest samples queryable at once (-search.latencyOffset=0s: by default
// it hides the newest 30 s), no results cache (-search.disableCache: its
// cache would answer every run after the first, and it aligns a range
// query's start and end to the step for it, which changes the answer),
// acknowledged samples on disk within 1 s (-inmemoryDataFlushInterval,
// its minimum; 5 s by default, samples a crash may lose), and the extra
// flags.
func StartVictoriaMetrics(ctx context.Context, bin, dir string, extra ...string) (*Server, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "victoriametrics")
	return Start(ctx, "victoriametrics", bin, dir, data, addr, "/health",
		append([]string{"-storageDataPath=" + data, "-httpListenAddr=" + addr, "-retentionPeriod=100y",
			"-search.latencyOffset=0s", "-search.disableCache", "-inmemoryDataFlushInterval=1s"}, extra...)...)
}
