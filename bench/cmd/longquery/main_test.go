package main

import (
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/bench/internal/load"
)

func TestLongQuery(t *testing.T) {
	end := int64(1_796_673_180_000)
	q := longQuery(end, 30)
	require.Equal(t, "1800", q.Params.Get("step"))
	start, err := strconv.ParseFloat(q.Params.Get("start"), 64)
	require.NoError(t, err)
	stop, err := strconv.ParseFloat(q.Params.Get("end"), 64)
	require.NoError(t, err)
	require.Equal(t, 1440, int(math.Round((stop-start)/1800))+1, "steps")
	first := end - 30*24*time.Hour.Milliseconds() + time.Minute.Milliseconds()
	require.GreaterOrEqual(t, int64(start*1000)-5*time.Minute.Milliseconds(), first, "the first step's 5m window is inside the data")
}

// TestWriteBlocks: the blocks hold every sample of the plan, once, and
// are cut at promBlockRange boundaries.
func TestWriteBlocks(t *testing.T) {
	modes := []string{"idle", "user"}
	opts := load.Options{Hours: 30 * 24, Interval: 30 * time.Minute, End: time.UnixMilli(1_796_673_180_000), Seed: 1}
	plan := func() *load.Plan { return load.Build(load.CPUCounters(3, 2, modes, 1), opts, false) }
	p := plan()
	dir := t.TempDir()
	require.NoError(t, writeBlocks(context.Background(), p, dir))

	require.NoError(t, os.Mkdir(filepath.Join(dir, "wal"), 0o755)) // an empty head, as Prometheus starts with
	db, err := tsdb.OpenDBReadOnly(dir, "", slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer db.Close()
	blocks, err := db.Blocks()
	require.NoError(t, err)
	rng := promBlockRange.Milliseconds()
	require.Len(t, blocks, int(p.End/rng-p.Start/rng)+1, "one block per 486 h range the data meets")
	for _, b := range blocks {
		require.Equal(t, b.Meta().MinTime/rng, (b.Meta().MaxTime-1)/rng, "block %v within one range", b.Meta().ULID)
	}
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "node_cpu_seconds_total"))
	var series, samples int64
	for ss.Next() {
		series++
		it := ss.At().Iterator(nil)
		prev := int64(math.MinInt64)
		for it.Next() == chunkenc.ValFloat {
			ts, _ := it.At()
			require.Greater(t, ts, prev)
			prev = ts
			samples++
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	require.Equal(t, int64(p.Series), series)
	require.Equal(t, p.Samples, samples)
}
