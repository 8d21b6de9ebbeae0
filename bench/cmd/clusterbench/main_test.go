package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/bench/internal/query"
	"github.com/myelindb/myelin/bench/internal/report"
)

func TestParseNodes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []int
		wantErr string
	}{
		{"default", "1,3,5", []int{1, 3, 5}, ""},
		{"spaces and repeats", " 3, 3 ,1", []int{3, 3, 1}, ""},
		{"empty", "", nil, ""},
		{"zero", "1,0", nil, `"0" is not a node count`},
		{"word", "three", nil, `"three" is not a node count`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseNodes(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	cfg, err := parseFlags(nil, &stderr)
	require.NoError(t, err)
	require.Equal(t, []int{1, 3, 5}, cfg.nodes)
	require.True(t, cfg.baseline)
	require.Equal(t, 20000, cfg.series)
	require.Equal(t, 1.0, cfg.opts.Hours)
	require.Equal(t, 8, cfg.opts.Shards)
	require.Equal(t, 2*time.Minute, cfg.readyTimeout)
	require.Equal(t, "go run ./bench/cmd/clusterbench", cfg.command)

	cfg, err = parseFlags([]string{"-nodes", "3", "-baseline=false", "-node-args", "-query.timeout=1m  -x=y", "-series", "5"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, []int{3}, cfg.nodes)
	require.False(t, cfg.baseline)
	require.Equal(t, []string{"-query.timeout=1m", "-x=y"}, cfg.nodeArgs)
	require.Equal(t, "go run ./bench/cmd/clusterbench -nodes 3 -baseline=false -node-args -query.timeout=1m  -x=y -series 5", cfg.command)

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad nodes", []string{"-nodes", "1,x"}, `"x" is not a node count`},
		{"every bad number at once", []string{"-series", "0", "-hours", "-1", "-idle", "-1s", "-query-runs", "0"},
			"-series 0: want > 0\n-hours -1: want > 0\n-idle -1s, -max-settle 1m0s: want >= 0\n-query-runs 0: want > 0"},
		{"unknown flag", []string{"-no-such-flag"}, "not defined"},
		{"stray argument", []string{"5"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, &stderr)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestNothingToMeasure(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.ErrorContains(t, run([]string{"-nodes", "", "-baseline=false"}, &stdout, &stderr), "nothing to measure")
}

// fakeEnv makes the test binary a fake Myelin node (see TestMain).
const fakeEnv = "CLUSTERBENCH_TEST_FAKE_NODE"

// TestMain runs the test binary as a fake Myelin node when fakeEnv is set:
// it accepts every write, answers every query with the same label list,
// and its /ring lists n1..n5, converged and active; SIGTERM ends it.
func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) != "" {
		fakeNode()
		return
	}
	os.Exit(m.Run())
}

func fakeNode() {
	var addr string
	for _, a := range os.Args[1:] {
		if v, ok := strings.CutPrefix(a, "-http.listen-address="); ok {
			addr = v
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/ring", func(w http.ResponseWriter, r *http.Request) {
		var nodes []string
		for i := 1; i <= 5; i++ {
			nodes = append(nodes, fmt.Sprintf(`{"id": "n%d", "state": "active"}`, i))
		}
		fmt.Fprintf(w, `{"converged": true, "nodes": [%s], "groups": [{"id": 1, "leader": "n1", "replicas": [{"node": "n1", "voter": true}]}]}`,
			strings.Join(nodes, ","))
	})
	mux.HandleFunc("POST /api/v1/push", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/prometheus/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"success","data":["a"]}`))
	})
	srv := &http.Server{Addr: addr, Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go srv.ListenAndServe()
	<-ctx.Done()
	srv.Close()
}

// TestRun measures a baseline and clusters of 1 and 2 fake nodes, then
// rewrites the report from its .json.
func TestRun(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	t.Setenv(fakeEnv, "1")
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	err = run([]string{"-myelin", exe, "-nodes", "1,2", "-workload", "synthetic", "-series", "50", "-hours", "0.05",
		"-query-runs", "2", "-max-settle", "1ms", "-idle", "50ms", "-out", out, "-label", "t"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	require.Contains(t, stdout.String(), "| accepted samples/s |")
	require.Contains(t, stdout.String(), "| labels | ")
	require.Contains(t, stdout.String(), "same on every node (")

	mds, err := filepath.Glob(filepath.Join(out, "*-t.md"))
	require.NoError(t, err)
	require.Len(t, mds, 1)
	jsonPath := strings.TrimSuffix(mds[0], ".md") + ".json"
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var in report.ClusterInput
	require.NoError(t, json.Unmarshal(b, &in))
	require.Len(t, in.Runs, 3)
	require.True(t, in.Runs[0].Plain)
	require.Equal(t, []int{1, 1, 2}, []int{in.Runs[0].Nodes, in.Runs[1].Nodes, in.Runs[2].Nodes})
	for _, r := range in.Runs {
		require.Equal(t, int64(600), r.Samples, r.Label())
		require.Len(t, r.Queries, len(query.Set("host", 0, 1)))
		require.Len(t, r.NodeQueries, r.Nodes)
	}
	require.Equal(t, "1 groups, 1 voters each, leaders n1:1", in.Runs[2].Ring)

	// -from rewrites the same report.
	md, err := os.ReadFile(mds[0])
	require.NoError(t, err)
	require.NoError(t, os.Remove(mds[0]))
	stdout.Reset()
	require.NoError(t, run([]string{"-from", jsonPath, "-out", out, "-label", "t"}, &stdout, &stderr))
	again, err := os.ReadFile(mds[0])
	require.NoError(t, err)
	require.Equal(t, string(md), string(again))
}
