package main

import (
	"context"
	"encoding/json"
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

// server is a receiver under test, started by us and stopped by us.
type server struct {
	name     string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has been waited for
	waitErr  error         // valid after exited is closed
	dataDir  string
	addr     string // host:port
	logPath  string
	readyURL string
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// start runs bin with args, logging to dir/<name>.log, and waits until
// readyPath answers 200.
func start(ctx context.Context, name, bin, dir, dataDir, addr, readyPath string, args ...string) (*server, error) {
	s := &server{name: name, dataDir: dataDir, addr: addr, logPath: filepath.Join(dir, name+".log"),
		readyURL: "http://" + addr + readyPath, exited: make(chan struct{})}
	logf, err := os.Create(s.logPath)
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
			return nil, fmt.Errorf("%s exited before ready: %v; log in %s", name, s.waitErr, s.logPath)
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), s.stop())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, errors.Join(fmt.Errorf("%s not ready within 60 s; log in %s", name, s.logPath), s.stop())
		}
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits up to a minute, then kills.
func (s *server) stop() error {
	if err := load.Stop(s.cmd.Process, s.exited, time.Minute); err != nil {
		return fmt.Errorf("stop %s: %w", s.name, err)
	}
	return nil
}

// startMyelin runs a single Myelin node with its data in dir/myelin.
func startMyelin(ctx context.Context, bin, dir string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "myelin")
	return start(ctx, "myelin", bin, dir, data, addr, "/ready",
		"-data.dir", data, "-http.listen-address", addr)
}

// startPrometheus runs Prometheus as a remote-write receiver that scrapes
// nothing, with its TSDB in dir/prometheus and the admin API on (for the
// snapshot).
func startPrometheus(ctx context.Context, bin, dir string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("# no scrape jobs: remote-write receiver only\nglobal:\n  scrape_interval: 15s\n"), 0o644); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "prometheus")
	return start(ctx, "prometheus", bin, dir, data, addr, "/-/ready",
		"--config.file="+cfg, "--storage.tsdb.path="+data, "--web.listen-address="+addr,
		"--web.enable-remote-write-receiver", "--web.enable-admin-api")
}

// promSnapshot asks Prometheus for a TSDB snapshot with its head, which
// writes the head as a block, and returns that block's bytes.
func promSnapshot(ctx context.Context, s *server) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr+"/api/v1/admin/tsdb/snapshot?skip_head=false", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("prometheus snapshot: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Name string `json:"name"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Data.Name == "" {
		return 0, fmt.Errorf("prometheus snapshot: status %d, %v", resp.StatusCode, err)
	}
	return load.DirBytes(filepath.Join(s.dataDir, "snapshots", out.Data.Name))
}
