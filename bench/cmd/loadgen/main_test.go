package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/query"
)

// TestRun sends a small synthetic load to a receiver that accepts
// everything and answers every query with the same label list.
func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Write([]byte(`{"status":"success","data":["a"]}`))
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	err := run([]string{"-write-url", srv.URL + "/api/v1/push", "-query-url", srv.URL, "-workload", "synthetic",
		"-series", "50", "-hours", "0.05", "-pid", "0", "-query-runs", "2", "-json", out}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	require.Contains(t, stdout.String(), "accepted 600 samples")
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	var res load.Result
	require.NoError(t, json.Unmarshal(b, &res))
	require.Equal(t, int64(600), res.Samples)
	require.Len(t, res.Queries, len(query.Set("host", 0, 1)))
	for _, q := range res.Queries {
		require.Empty(t, q.Err, q.Name)
		require.Equal(t, 1, q.Series, q.Name)
	}
}

func TestRunBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Error(t, run([]string{"-workload", "zipf"}, &stdout, &stderr))
	require.Error(t, run([]string{"-no-such-flag"}, &stdout, &stderr))
}
