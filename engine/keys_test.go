package engine

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/write"
)

func TestPartitions(t *testing.T) {
	for _, tc := range []struct {
		t, width int64
		part     int64 // relative to 2^31
		end      int64
	}{
		{0, 1000, 0, 1000},
		{999, 1000, 0, 1000},
		{1000, 1000, 1, 2000},
		{-1, 1000, -1, 0},
		{-1000, 1000, -1, 0},
		{-1001, 1000, -2, -1000},
		{math.MaxInt64, 1, math.MaxUint32 - 1<<31, math.MaxInt64},
		{math.MinInt64, 1, -1 << 31, -(1 << 31) + 1},
		{math.MaxInt64, 86_400_000, 1<<31 - 1, math.MaxInt64}, // clamped
	} {
		t.Run(fmt.Sprint(tc.t, "/", tc.width), func(t *testing.T) {
			p := partitionOf(tc.t, tc.width)
			require.Equal(t, tc.part, int64(p)-1<<31)
			require.Equal(t, tc.end, partitionEnd(p, tc.width))
		})
	}
}

// TestKeySchemaGolden freezes the Pebble key schema (doc.go): it applies
// a fixed sequence of entries (two tenants; series that seal chunks,
// merge runs both ways, cross partitions, go idle and are evicted and
// revived; a refusal, a corrupt entry and a replay), checkpoints twice,
// and compares every key and value of the store, in key order, with
// testdata/keyschema.golden. A change needs a formatVersion bump, a
// doc.go update and -rewrite, together.
func TestKeySchemaGolden(t *testing.T) {
	opts := Options{
		Dir: "db", FS: vfs.NewMem(), ChunkSamples: 4, MergeChunks: 2, Partition: time.Minute,
		SealEncoding: chunkenc.EncPack, EvictIdle: time.Minute,
	}
	db, err := Open(opts)
	require.NoError(t, err)
	defer db.Close()
	g, _, err := db.OpenGroup(1)
	require.NoError(t, err)
	var (
		api   = labels.FromStrings("__name__", "up", "job", "api")
		fast  = labels.FromStrings("__name__", "requests_total", "job", "api", "path", "/a\x00b")
		batch = labels.FromStrings("__name__", "up", "job", "batch")
		temp  = labels.FromStrings("__name__", "temp", "room", "α")
		rpc   = labels.FromStrings("__name__", "rpc_seconds", "job", "api")
		queue = labels.FromStrings("__name__", "queue_bytes", "room", "α")
	)
	index := uint64(0)
	applyEntry := func(e []byte) {
		index++
		_, err := g.Apply(index, e)
		if !errors.Is(err, write.ErrCorrupt) {
			require.NoError(t, err)
		}
	}
	for r := range int64(18) { // 10s rounds: partitions at 60s and 120s
		ts := r * 10_000
		acme := write.NewBuilder("acme")
		require.NoError(t, acme.Add(api, []write.Sample{{T: ts, V: float64(r)}}))
		require.NoError(t, acme.Add(fast, []write.Sample{{T: ts, V: float64(2 * r)}, {T: ts + 5_000, V: float64(2*r + 1)}}))
		if r < 4 || r == 15 { // idle from 30s: evicted, then revived
			require.NoError(t, acme.Add(batch, []write.Sample{{T: ts, V: 1}}))
		}
		beta := write.NewBuilder("beta")
		v := 20.5 + float64(r)/4
		if r == 9 {
			v = math.Float64frombits(value.StaleNaN)
		}
		smp := []write.Sample{{T: ts - 60_000, V: v}} // negative times first
		if r == 5 {
			smp = append(smp, write.Sample{T: ts - 70_000, V: 1}) // out of order: refused
		}
		require.NoError(t, beta.Add(temp, smp))
		// Native histograms: an integer counter whose buckets grow
		// (a recoded chunk) and reset (a new chunk), idle from 90s
		// (evicted, its newest histogram in an 'e' record) and revived
		// at 170s; a gauge that is a float first and a float histogram
		// from 50s on (a new chunk at the switch), open at the end.
		if r <= 9 || r == 17 {
			n := uint64(r%6) + 1
			h := &histogram.Histogram{Schema: 0, Count: n + 1, Sum: float64(r), ZeroThreshold: 0.001, ZeroCount: 1,
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(n)}}
			if r >= 3 && r%6 != 0 {
				h.PositiveSpans[0].Length = 2
				h.PositiveBuckets = []int64{int64(n) - 1, -int64(n) + 2} // n-1 and 1: still n in all
			}
			require.NoError(t, acme.AddHistograms(rpc, nil, []write.Histogram{{T: ts + 1_000, H: h}}))
		}
		if r < 5 {
			require.NoError(t, beta.Add(queue, []write.Sample{{T: ts, V: float64(r)}}))
		} else {
			fh := &histogram.FloatHistogram{CounterResetHint: histogram.GaugeType, Count: 3.5, Sum: float64(r) / 2,
				PositiveSpans: []histogram.Span{{Offset: -1, Length: 2}}, PositiveBuckets: []float64{1.5, 2}}
			require.NoError(t, beta.AddHistograms(queue, nil, []write.Histogram{{T: ts, FH: fh}}))
		}
		applyEntry(write.Append(nil, acme.Batch()))
		applyEntry(write.Compress(nil, write.Append(nil, beta.Batch())))
		switch r {
		case 6:
			applyEntry([]byte{write.Version, 0}) // corrupt: counts as applied
		case 8:
			require.NoError(t, g.Checkpoint())
			_, err := g.Apply(index, write.Append(nil, acme.Batch())) // a replay: ignored
			require.NoError(t, err)
		}
	}
	require.NoError(t, g.Checkpoint())

	var text strings.Builder
	it, err := db.pdb.NewIter(nil)
	require.NoError(t, err)
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) < prefixLen {
			fmt.Fprintf(&text, "%x -> %x\n", k, v)
			continue
		}
		// Group, tenant, kind, rest: the rendering is one-to-one.
		fmt.Fprintf(&text, "%x %x %c %x -> %x\n", k[:4], k[4:8], k[8], k[prefixLen:], v)
	}
	require.NoError(t, errors.Join(it.Error(), it.Close()))

	path := filepath.Join("testdata", "keyschema.golden")
	if *rewrite {
		require.NoError(t, os.WriteFile(path, []byte(text.String()), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -rewrite to create it")
	if text.String() != string(want) {
		t.Errorf("the key schema changed (bump formatVersion, update doc.go, -rewrite):\n%s", lineDiff(string(want), text.String()))
	}
}

// lineDiff shows the first line where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range min(len(w), len(g)) {
		if w[i] != g[i] {
			return fmt.Sprintf("line %d:\nwant %s\ngot  %s", i+1, w[i], g[i])
		}
	}
	return fmt.Sprintf("want %d lines, got %d", len(w), len(g))
}
