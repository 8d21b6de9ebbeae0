package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
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
		{"bad duration", []string{"-querier.max-query-lookback", "soon"}, `invalid value "soon" for flag -querier.max-query-lookback`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tc.args, io.Discard, &stderr)
			if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Fatalf("run(%q) = %v, stderr %q; want a usage error with %q", tc.args, err, stderr.String(), tc.wantStderr)
			}
		})
	}
	// Prometheus durations, as Mimir's limits take them.
	cfg, _, err := parseFlags([]string{"-querier.max-query-lookback", "30d", "-store.max-query-length", "2w"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.defaultLimits(); time.Duration(d.MaxQueryLookback) != 30*24*time.Hour || time.Duration(d.MaxQueryLength) != 14*24*time.Hour {
		t.Fatalf("durations %v, %v", d.MaxQueryLookback, d.MaxQueryLength)
	}
}
