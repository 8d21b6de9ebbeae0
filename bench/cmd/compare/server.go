package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/server"
)

// promSnapshot asks Prometheus for a TSDB snapshot with its head, which
// writes the head as a block, and returns that block's bytes.
func promSnapshot(ctx context.Context, s *server.Server) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.Addr+"/api/v1/admin/tsdb/snapshot?skip_head=false", nil)
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
	return load.DirBytes(filepath.Join(s.DataDir, "snapshots", out.Data.Name))
}
