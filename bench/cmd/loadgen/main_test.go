package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

func TestBuild(t *testing.T) {
	cfg := config{series: 300, hours: 0.1, interval: 15 * time.Second, shards: 3, batch: 100, seed: 1}
	reqs, total := build(cfg)
	steps := int(0.1 * 3600 / 15)
	require.Equal(t, 300*steps, total)
	seen := map[string]int64{} // series -> last timestamp
	shardOf := map[string]int{}
	n := 0
	for k, shard := range reqs {
		for _, body := range shard {
			raw, err := snappy.Decode(nil, body)
			require.NoError(t, err)
			var req prompb.WriteRequest
			require.NoError(t, req.Unmarshal(raw))
			require.LessOrEqual(t, len(req.Timeseries), cfg.batch)
			for _, ts := range req.Timeseries {
				key := ""
				for i, l := range ts.Labels {
					if i > 0 {
						require.Less(t, ts.Labels[i-1].Name, l.Name, "labels sorted")
					}
					key += l.Name + "=" + l.Value + ","
				}
				if s, ok := shardOf[key]; ok {
					require.Equal(t, s, k, "a series stays on one shard")
				}
				shardOf[key] = k
				for _, s := range ts.Samples {
					require.Greater(t, s.Timestamp, seen[key], "samples of a series in time order")
					seen[key] = s.Timestamp
					n++
				}
			}
		}
	}
	require.Equal(t, total, n)
	require.Len(t, seen, 300)
}

func TestPostRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "t1", r.Header.Get("X-Scope-OrgID"))
		switch calls.Add(1) {
		case 1:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 2:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	cfg := config{url: srv.URL, tenant: "t1"}
	require.NoError(t, post(t.Context(), srv.Client(), cfg, []byte("x")))
	require.Equal(t, int32(3), calls.Load())

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad labels", http.StatusBadRequest)
	}))
	defer bad.Close()
	err := post(t.Context(), bad.Client(), config{url: bad.URL}, []byte("x"))
	require.ErrorContains(t, err, "400 bad labels")
}

func TestProcStat(t *testing.T) {
	s, err := procStat(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, s.rss)
	require.GreaterOrEqual(t, s.hwm, s.rss)
	require.GreaterOrEqual(t, s.cpu, 0.0)
}
