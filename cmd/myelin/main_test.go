package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// TestMain lets a test run this binary as myelin itself (see TestSignal).
func TestMain(m *testing.M) {
	if os.Getenv("MYELIN_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRun(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "a", "data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newLogWatcher()
	done := make(chan error, 1)
	argv := []string{"-data.dir", dataDir, "-http.listen-address", "127.0.0.1:0"}
	goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
	addr := stderr.addr(t, done)

	if st, err := os.Stat(dataDir); err != nil || !st.IsDir() {
		t.Fatalf("data dir %s not created: %v", dataDir, err)
	}
	waitReady(t, addr)
	base := "http://" + addr
	body := pushBody(t, "up", 1000, 2000, 3000)
	for _, tc := range []struct {
		name, method, path, tenant string
		body                       []byte
		wantCode                   int
		wantBody                   string // substring
	}{
		{"ready", "GET", "/ready", "", nil, 200, "ready"},
		{"metrics", "GET", "/metrics", "", nil, 200, "go_goroutines"},
		{"process metrics", "GET", "/metrics", "", nil, 200, "process_start_time_seconds"},
		{"push", "POST", "/api/v1/push", "t1", body, 204, ""},
		// A retry of the newest sample is accepted (same timestamp, same
		// value); older ones are out of order, as in Prometheus.
		{"write again (idempotent)", "POST", "/api/v1/write", "t1", pushBody(t, "up", 3000), 204, ""},
		{"write older again", "POST", "/api/v1/write", "t1", body, 400, "out-of-order"},
		{"push without tenant", "POST", "/api/v1/push", "", body, 401, "no org id"},
		{"query", "GET", "/api/v1/query?query=sum(up)&time=3", "t1", nil, 200, `"value":[3,"2"]`},
		{"query other tenant", "GET", "/api/v1/query?query=sum(up)&time=3", "t2", nil, 200, `"result":[]`},
		{"query_range", "POST", "/api/v1/query_range?query=up&start=1&end=3&step=1", "t1", nil, 200, `"values":[[1,"0"],[2,"1"],[3,"2"]]`},
		{"prometheus prefix", "GET", "/prometheus/api/v1/labels", "t1", nil, 200, `["__name__","job"]`},
		{"metrics after ingest", "GET", "/metrics", "", nil, 200, "myelin_raft_proposals_total"},
		{"ingested samples metric", "GET", "/metrics", "", nil, 200, `myelin_ingested_samples_total{tenant="t1"} 5`},
		{"discarded samples metric", "GET", "/metrics", "", nil, 200, `myelin_discarded_samples_total{reason="sample_out_of_order",tenant="t1"} 2`},
		{"http metrics", "GET", "/metrics", "", nil, 200, `myelin_http_request_duration_seconds_count{code="204",handler="push",method="post"}`},
		{"config", "GET", "/config", "", nil, 200, "query.timeout: 2m0s"},
		{"head series metric", "GET", "/metrics", "", nil, 200, `myelin_head_series{tenant="t1"} 1`},
		{"pebble metrics", "GET", "/metrics", "", nil, 200, "myelin_pebble_disk_bytes"},
		{"unknown path", "GET", "/nope", "", nil, 404, "not found"},
		{"ready wrong method", "POST", "/ready", "", nil, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, got := do(t, tc.method, base+tc.path, tc.tenant, tc.body)
			if code != tc.wantCode || !strings.Contains(got, tc.wantBody) {
				t.Fatalf("%s %s = %d %q, want %d with %q", tc.method, tc.path, code, truncate([]byte(got)), tc.wantCode, tc.wantBody)
			}
		})
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancel")
	}
	log := stderr.String()
	if !strings.Contains(log, "msg=stopped") {
		t.Fatalf("log has no clean stop:\n%s", log)
	}
	// A normal start, use and stop logs no warning or error (the pushes
	// refused as out of order are the client's, answered 400).
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("a normal run logged: %s", line)
		}
	}
}

func TestRunArgs(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantErr    error // errors.Is; nil means success
		wantStdout string
		wantStderr []string
	}{
		{
			name: "help", args: []string{"-help"},
			wantStderr: []string{"Usage: myelin", "-data.dir", "-http.listen-address", "-auth.multitenancy-enabled", "-auth.config-file", "-version", "myelin token create"},
		},
		{name: "version", args: []string{"-version"}, wantStdout: "myelin "},
		// One bad flag: the problem and a hint, not the whole usage.
		{name: "unknown flag", args: []string{"-nope"}, wantErr: errUsage, wantStderr: []string{"flag provided but not defined: -nope", "Run 'myelin -help'"}},
		{name: "bad bool", args: []string{"-auth.multitenancy-enabled=maybe"}, wantErr: errUsage},
		{name: "unknown command", args: []string{"serve"}, wantErr: errUsage, wantStderr: []string{"unknown command \"serve\"", "myelin token create"}},
		{name: "argument after flags", args: []string{"-log.level", "info", "serve"}, wantErr: errUsage, wantStderr: []string{"unexpected arguments"}},
		{name: "write timeout cuts queries", args: []string{"-query.timeout", "5m"}, wantErr: errUsage,
			wantStderr: []string{"-server.http-write-timeout 2m30s must exceed -query.timeout 5m0s"}},
		// A request at the size limits must fit in the in-flight bytes.
		{name: "in-flight bytes below one request", args: []string{"-distributor.max-recv-msg-size", "200000000"}, wantErr: errUsage,
			wantStderr: []string{"-distributor.instance-limits.max-inflight-push-requests-bytes 167772160: want 0 (no limit) or at least 210485760"}},
		{name: "negative in-flight requests", args: []string{"-distributor.instance-limits.max-inflight-push-requests", "-1"}, wantErr: errUsage,
			wantStderr: []string{"max-inflight-push-requests -1: want 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if !errors.Is(err, tc.wantErr) || (err != nil && tc.wantErr == nil) {
				t.Fatalf("run(%q) = %v, want %v", tc.args, err, tc.wantErr)
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tc.wantStdout)
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	singleDir, otherNode := t.TempDir(), t.TempDir()
	if err := errors.Join(os.MkdirAll(filepath.Join(singleDir, "raft", "1"), 0o755),
		os.WriteFile(filepath.Join(otherNode, "node-id"), []byte("b\n"), 0o644)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"data dir under a file", []string{"-data.dir", filepath.Join(file, "data")}, "create data dir"},
		{"bad listen address", []string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:99999"}, "listen on 127.0.0.1:99999"},
		{"single node's data joining a cluster", []string{"-data.dir", singleDir, "-http.listen-address", "127.0.0.1:0",
			"-cluster.node-id", "a", "-raft.listen-address", "127.0.0.1:0", "-raft.advertise-address", "127.0.0.1:1", "-cluster.join", "127.0.0.1:2", "-raft.insecure"},
			"holds a single node's data: it cannot join or found a cluster of several nodes"},
		{"another node's data", []string{"-data.dir", otherNode, "-http.listen-address", "127.0.0.1:0", "-cluster.node-id", "a",
			"-raft.listen-address", "127.0.0.1:0", "-raft.advertise-address", "127.0.0.1:1", "-raft.insecure"}, `belongs to node "b", not -cluster.node-id "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
}

// TestSignal runs main in a child process and checks that SIGTERM and
// SIGINT shut it down with exit status 0.
func TestSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), "MYELIN_TEST_RUN_MAIN=1")
			stderr := newLogWatcher()
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			addr := stderr.addr(t, done)
			waitReady(t, addr)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("myelin exited with %v after %v, want status 0; log:\n%s", err, sig, stderr)
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("myelin still running 10s after %v", sig)
			}
		})
	}
}

// logWatcher collects log output and finds the listening address in it.
type logWatcher struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	addrOnce sync.Once
	addrc    chan string
}

func newLogWatcher() *logWatcher { return &logWatcher{addrc: make(chan string, 1)} }

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

func (w *logWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := listeningRE.FindSubmatch(w.buf.Bytes()); m != nil {
		w.addrOnce.Do(func() { w.addrc <- string(m[1]) })
	}
	return len(p), nil
}

func (w *logWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// addr waits for the listening address; done reports an early exit.
func (w *logWatcher) addr(t *testing.T, done <-chan error) string {
	t.Helper()
	select {
	case a := <-w.addrc:
		return a
	case err := <-done:
		t.Fatalf("myelin exited before listening: %v; log:\n%s", err, w)
	case <-time.After(10 * time.Second):
		t.Fatalf("no listening address logged within 10s; log:\n%s", w)
	}
	return ""
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}

// waitReady polls /ready until it answers 200.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 20s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do sends a request and returns the status and body.
func do(t *testing.T, method, url, tenant string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	if body != nil {
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// pushBody is a remote-write request of one series {__name__=name,
// job="j"} with the value t/1000-1 at each timestamp t (ms), so a sample
// sent twice is the same sample.
func pushBody(t *testing.T, name string, ts ...int64) []byte {
	t.Helper()
	s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "j"}}}
	for _, tt := range ts {
		s.Samples = append(s.Samples, prompb.Sample{Timestamp: tt, Value: float64(tt/1000 - 1)})
	}
	b, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// TestRestartKeepsData writes, stops gracefully, starts again on the same
// data directory and reads everything back. (Recovery from kill -9, with
// entries after the last checkpoint replayed from the log, is tested in
// raftgroup and engine.)
func TestRestartKeepsData(t *testing.T) {
	dataDir := t.TempDir()
	start := func() (string, context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		stderr := newLogWatcher()
		done := make(chan error, 1)
		argv := []string{"-data.dir", dataDir, "-http.listen-address", "127.0.0.1:0"}
		goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
		addr := stderr.addr(t, done)
		waitReady(t, addr)
		return "http://" + addr, cancel, done
	}
	stop := func(cancel context.CancelFunc, done chan error) {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	base, cancel, done := start()
	for i := range 50 {
		code, body := do(t, "POST", base+"/api/v1/push", "t1", pushBody(t, fmt.Sprintf("m%d", i%5), int64(i)*1000+1000))
		if code != 204 {
			t.Fatalf("push %d: %d %s", i, code, body)
		}
	}
	stop(cancel, done)

	base, cancel, done = start()
	defer stop(cancel, done)
	for i := range 5 {
		// Each of the 5 series got 10 of the 50 samples.
		code, body := do(t, "GET", fmt.Sprintf("%s/api/v1/query?query=count_over_time(m%d[1h])&time=100", base, i), "t1", nil)
		if code != 200 || !strings.Contains(body, `"value":[100,"10"]`) {
			t.Fatalf("m%d after restart: %d %s", i, code, body)
		}
	}
}

// A client that sends its body too slowly is cut off after
// -server.http-read-timeout instead of holding its connection and
// goroutine forever.
func TestSlowBody(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	stderr := newLogWatcher()
	done := make(chan error, 1)
	dir := t.TempDir()
	argv := []string{"-data.dir", dir, "-http.listen-address", "127.0.0.1:0",
		"-server.http-read-timeout", "500ms"}
	goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
	// Stop the node before the data directory is removed.
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	addr := stderr.addr(t, done)
	waitReady(t, addr)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half of a 100-byte body, then nothing.
	if _, err := io.WriteString(conn, "POST /api/v1/push HTTP/1.1\r\nHost: x\r\nX-Scope-OrgID: t1\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("x", 50)); err != nil {
		t.Fatal(err)
	}
	// The server answers and closes; without a read timeout it waited for
	// the rest forever, and this read ran into its own deadline.
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("connection still open: %v (read %q)", err, got)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 400 ") || !strings.Contains(string(got), "i/o timeout") {
		t.Fatalf("answer %q, want a 400 for the body read timing out", got)
	}
}

// goRun runs f (a run of the node) in a goroutine that sends its result
// on done, and makes the test's cleanup cancel it and wait for it to
// return (at most a minute) before the cleanups registered earlier run:
// a test that fails half-way must not remove the data directory under a
// node still closing its Pebble store (a background compaction then
// panics on the missing files and takes every test of the binary down).
// Arguments holding t.TempDir() must be evaluated before the call.
func goRun(t *testing.T, cancel context.CancelFunc, done chan<- error, f func() error) {
	t.Helper()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- f()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(time.Minute):
			t.Error("the node did not stop within a minute of the test's end")
		}
	})
}
