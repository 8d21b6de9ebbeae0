package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// This file starts the processes of the end-to-end tests: myelin (this
// test binary re-executed as main, see TestMain), a real Prometheus from
// the Debian package, and a scrape target served by the test.

// e2eTenant is the tenant Prometheus is configured to write as. The
// Debian package's Prometheus 2.42.0+ds-5+deb12u1 does not send the
// remote_write "headers" it is configured with (its /api/v1/status/config
// shows them, its requests lack them), so without auth myelin runs with
// -auth.multitenancy-enabled=false, and everything lands in the tenant
// "anonymous", as for a single-tenant user. With auth (TestE2EAuth) the
// tenant comes from the token, which 2.42 does send.
const e2eTenant = "e2e"

// findPrometheus returns the path of the prometheus binary. Without one the
// test is skipped on a developer machine and fails on CI (CI set), where
// .ci/run installs it.
func findPrometheus(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	msg := "prometheus not found on PATH or at /usr/bin/prometheus; install it with `make e2e-deps` " +
		"(apt-get install --no-install-recommends prometheus)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so this is a failure, not a skip")
	}
	t.Skip(msg)
	return ""
}

// myelinProc is a myelin child process.
type myelinProc struct {
	cmd  *exec.Cmd
	log  *logWatcher
	done chan error // receives cmd.Wait's result once
	addr string     // host:port it listens on
	exit error      // cmd.Wait's result once waited for
	gone bool       // waited for
}

// startMyelin starts myelin on dataDir listening on listenAddr
// ("127.0.0.1:0" picks a port) with args (none: single-tenant,
// -auth.multitenancy-enabled=false) and waits until it is ready. The
// process is killed at the end of the test if still running.
func startMyelin(t *testing.T, dataDir, listenAddr string, args ...string) *myelinProc {
	t.Helper()
	if len(args) == 0 {
		args = []string{"-auth.multitenancy-enabled=false"}
	}
	cmd := exec.Command(os.Args[0], append([]string{"-data.dir", dataDir, "-http.listen-address", listenAddr}, args...)...)
	cmd.Env = append(os.Environ(), "MYELIN_TEST_RUN_MAIN=1")
	cmd.SysProcAttr = childProcAttr()
	p := &myelinProc{cmd: cmd, log: newLogWatcher(), done: make(chan error, 1)}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start myelin: %v", err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("myelin (pid %d) log:\n%s", cmd.Process.Pid, tail(p.log.String(), 60))
		}
	})
	p.addr = p.log.addr(t, p.done)
	waitReady(t, p.addr)
	return p
}

// kill sends SIGKILL and waits for the exit; it is a no-op once exited.
func (p *myelinProc) kill() {
	if p.gone {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.exit = <-p.done
	p.gone = true
}

// promProc is a Prometheus child process.
type promProc struct {
	cmd     *exec.Cmd
	log     *syncBuffer
	done    chan error
	addr    string // host:port of its web API
	dataDir string // its TSDB directory
	stopped bool
}

// stop sends SIGTERM, waits for the exit (SIGKILL after 10 s); it is a
// no-op once stopped.
func (p *promProc) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// headerRemoteWrite is the remote_write section of a Prometheus that
// writes to myelinAddr as tenant e2eTenant by its header.
func headerRemoteWrite(myelinAddr string) string {
	return fmt.Sprintf(`remote_write:
  - url: http://%s/api/v1/push
    headers:
      X-Scope-OrgID: %s
`+e2eQueueConfig, myelinAddr, e2eTenant)
}

// e2eQueueConfig sends every second and retries fast; it ends a
// remote_write entry.
const e2eQueueConfig = `    queue_config:
      batch_send_deadline: 1s
      min_backoff: 50ms
      max_backoff: 1s
`

// startPrometheus runs the Prometheus binary with a configuration that
// scrapes itself (job "prometheus") and the test's target (jobs "e2e" and
// "e2e_flap") every second and remote-writes as remoteWrite (a
// remote_write section, e.g. headerRemoteWrite's), and waits until it is
// ready.
func startPrometheus(t *testing.T, bin, targetAddr, remoteWrite string) *promProc {
	t.Helper()
	return startPrometheusWith(t, bin, targetAddr, remoteWrite, "")
}

// startPrometheusWith is startPrometheus with more lines (indented) in
// the configuration's global section.
func startPrometheusWith(t *testing.T, bin, targetAddr, remoteWrite, global string) *promProc {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
`+global+`scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: [%q]}]
  - job_name: e2e
    static_configs: [{targets: [%q]}]
  - job_name: e2e_flap
    metrics_path: /flap
    static_configs: [{targets: [%[2]q]}]
`, addr, targetAddr) + remoteWrite
	return runPrometheus(t, bin, cfg, filepath.Join(dir, "data"), addr)
}

// runPrometheus runs the Prometheus binary with the configuration cfg on
// the TSDB directory dataDir, its web API on addr (and more flags args),
// and waits until it is ready. It is stopped at the end of the test if still running.
func runPrometheus(t *testing.T, bin, cfg, dataDir, addr string, args ...string) *promProc {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{
		"--config.file=" + cfgFile,
		"--storage.tsdb.path=" + dataDir,
		"--web.listen-address=" + addr,
	}, args...)...)
	cmd.SysProcAttr = childProcAttr()
	p := &promProc{cmd: cmd, log: &syncBuffer{}, done: make(chan error, 1), addr: addr, dataDir: dataDir}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("prometheus config:\n%s\nprometheus log:\n%s", cfg, tail(p.log.String(), 40))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-p.done:
			t.Fatalf("prometheus exited before ready: %v; log:\n%s", err, tail(p.log.String(), 40))
		default:
		}
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s: %v; log:\n%s", err, tail(p.log.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago (Prometheus cannot be told to pick one and report it).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startTarget serves two scrape targets whose samples exercise what a
// self-scrape does not:
//   - /metrics: floats that only survive bit-exact storage (-0, NaN, ±Inf,
//     the smallest subnormal, the largest float, 0.1+0.2), and a series
//     whose "phase" label changes every 4 scrapes, so Prometheus writes a
//     staleness marker for the old one;
//   - /flap: answers 500 for 3 scrapes out of 7, so up{job="e2e_flap"}
//     is 0 and every series of the target gets a staleness marker.
func startTarget(t *testing.T) string {
	t.Helper()
	var scrapes, flaps atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		n := scrapes.Add(1)
		fmt.Fprintf(w, `# TYPE e2e_special gauge
e2e_special{kind="negzero"} -0
e2e_special{kind="nan"} NaN
e2e_special{kind="inf"} +Inf
e2e_special{kind="neginf"} -Inf
e2e_special{kind="subnormal"} 5e-324
e2e_special{kind="max"} 1.7976931348623157e+308
e2e_special{kind="sum"} 0.30000000000000004
e2e_special{kind="scrape"} %d
# TYPE e2e_phase gauge
e2e_phase{phase="%d"} %d
`, n, (n-1)/4, n)
	})
	mux.HandleFunc("/flap", func(w http.ResponseWriter, _ *http.Request) {
		n := flaps.Add(1)
		if n%7 >= 4 {
			http.Error(w, "flapping", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "# TYPE e2e_flap_counter counter\ne2e_flap_counter_total %d\n", n)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
