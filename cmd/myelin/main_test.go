package main

import (
	"bytes"
	"context"
	"errors"
	"io"
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
	go func() {
		done <- run(ctx, []string{"-data.dir", dataDir, "-http.listen-address", "127.0.0.1:0"}, io.Discard, stderr)
	}()
	addr := stderr.addr(t, done)

	if st, err := os.Stat(dataDir); err != nil || !st.IsDir() {
		t.Fatalf("data dir %s not created: %v", dataDir, err)
	}
	for _, tc := range []struct {
		name, method, path string
		wantCode           int
		wantBody           string // substring
	}{
		{"ready", "GET", "/ready", 200, "ready"},
		{"metrics", "GET", "/metrics", 200, "go_goroutines"},
		{"process metrics", "GET", "/metrics", 200, "process_start_time_seconds"},
		{"push", "POST", "/api/v1/push", 501, notImplemented},
		{"write", "POST", "/api/v1/write", 501, notImplemented},
		{"query", "GET", "/api/v1/query", 501, notImplemented},
		{"query_range", "POST", "/api/v1/query_range", 501, notImplemented},
		{"prometheus prefix", "GET", "/prometheus/api/v1/labels", 501, notImplemented},
		{"unknown path", "GET", "/nope", 404, "not found"},
		{"ready wrong method", "POST", "/ready", 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://"+addr+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantCode || !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("%s %s = %d %q, want %d with %q", tc.method, tc.path, resp.StatusCode, truncate(body), tc.wantCode, tc.wantBody)
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
	if log := stderr.String(); !strings.Contains(log, "msg=stopped") {
		t.Fatalf("log has no clean stop:\n%s", log)
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
			wantStderr: []string{"Usage: myelin", "-data.dir", "-http.listen-address", "-auth.multitenancy-enabled", "-version"},
		},
		{name: "version", args: []string{"-version"}, wantStdout: "myelin "},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: errUsage, wantStderr: []string{"flag provided but not defined: -nope", "Usage: myelin"}},
		{name: "bad bool", args: []string{"-auth.multitenancy-enabled=maybe"}, wantErr: errUsage},
		{name: "positional argument", args: []string{"serve"}, wantErr: errUsage, wantStderr: []string{"unexpected arguments"}},
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
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"data dir under a file", []string{"-data.dir", filepath.Join(file, "data")}, "create data dir"},
		{"bad listen address", []string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:99999"}, "listen on 127.0.0.1:99999"},
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
			resp, err := http.Get("http://" + addr + "/ready")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
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
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
