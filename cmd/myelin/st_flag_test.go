package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStartTimestampsFlag: -query.use-start-timestamps is off by default,
// as Prometheus's use-start-timestamps, and set by the flag or by its name
// in -config.file.
func TestStartTimestampsFlag(t *testing.T) {
	cfg, _, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.False(t, cfg.queryStartTimes)
	cfg, _, err = parseFlags([]string{"-query.use-start-timestamps"}, io.Discard)
	require.NoError(t, err)
	require.True(t, cfg.queryStartTimes)
	file := filepath.Join(t.TempDir(), "myelin.yaml")
	require.NoError(t, os.WriteFile(file, []byte("query.use-start-timestamps: true\n"), 0o644))
	cfg, _, err = parseFlags([]string{"-config.file", file}, io.Discard)
	require.NoError(t, err)
	require.True(t, cfg.queryStartTimes)
}
