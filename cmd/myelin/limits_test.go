package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestLimitsFlags(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"negative series limit", []string{"-ingester.max-global-series-per-user", "-1"},
			"max_global_series_per_user (-ingester.max-global-series-per-user): -1 is negative"},
		{"rate without burst", []string{"-distributor.ingestion-rate-limit", "100", "-distributor.ingestion-burst-size", "0"},
			"ingestion_burst_size (-distributor.ingestion-burst-size): 0: want at least 1 with an ingestion rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tc.args, io.Discard, &stderr)
			if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Fatalf("run(%q) = %v, stderr %q; want a usage error with %q", tc.args, err, stderr.String(), tc.wantStderr)
			}
		})
	}
}
