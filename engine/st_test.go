package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// stOfSample is the start timestamp the ST tests give the sample at t of
// the series with encoded labels lbls: a function of both, so a retry or
// an out-of-order copy of a sample carries the same one, and a read can
// be checked without knowing which samples were accepted. By series:
// none; a counter's (constant, reset every 2,500 ms, across partition
// boundaries); a delta's at a fixed offset; and a mix with gaps (0) and
// values after t.
func stOfSample(lbls []byte, t int64) int64 {
	switch xxhash.Sum64(lbls) % 4 {
	case 1:
		return t - t%2500 - 3
	case 2:
		return t - 100
	case 3:
		switch t % 5 {
		case 0:
			return 0
		case 1:
			return t + 1
		case 2:
			return t - t%700
		}
		return t - 1
	}
	return 0
}

// withSTs gives every sample of the batches its stOfSample.
func withSTs(batches []*write.Batch) {
	for _, b := range batches {
		for i := range b.Series {
			s := &b.Series[i]
			sts := make([]int64, 0, len(s.Samples)+len(s.Histograms))
			for _, smp := range s.Samples {
				sts = append(sts, stOfSample(s.Labels, smp.T))
			}
			for _, h := range s.Histograms {
				sts = append(sts, stOfSample(s.Labels, h.T))
			}
			s.SetStartTimestamps(sts)
		}
	}
}

// requireSTs reads every sample of the tenant and checks its AtST; it
// returns the number of samples with a start timestamp.
func requireSTs(t testing.TB, g *Group, tenant string) int {
	return requireSTsOf(t, g, tenant, stOfSample)
}

// requireSTsOf is requireSTs with the start timestamps of f.
func requireSTsOf(t testing.TB, g *Group, tenant string, f func([]byte, int64) int64) int {
	t.Helper()
	q, err := g.Querier(tenant, math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	n := 0
	for ss.Next() {
		s := ss.At()
		var enc []byte
		s.Labels().Range(func(l labels.Label) { enc = write.AppendLabel(enc, l.Name, l.Value) })
		it := s.Iterator(nil)
		for vt := it.Next(); vt != promchunk.ValNone; vt = it.Next() {
			ts := it.AtT()
			want := f(enc, ts)
			require.Equal(t, want, it.AtST(), "series %s sample at %d", s.Labels(), ts)
			if want != 0 {
				n++
			}
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return n
}

// stKeys returns the dump's start timestamp keys and meta flag.
func stKeys(d []string) []string {
	var out []string
	for _, kv := range d {
		// group:4 tenant:4 kind:1, hex; the meta flag is 'm' 's'.
		if len(kv) > 18 && (kv[16:18] == fmt.Sprintf("%x", kindST) || strings.HasPrefix(kv[16:], fmt.Sprintf("%x%x", kindMeta, metaHasST))) {
			out = append(out, kv)
		}
	}
	return out
}

// TestStartTimestamps: the start timestamps of random batches (floats and
// histograms, duplicates, out-of-order and too old samples among them,
// with and without an out-of-order window) read back through AtST from
// open, sealed and merged chunks, after a restart that replays the log
// from a checkpoint, and on a replica restored from a snapshot; replicas
// hold the same bytes.
func TestStartTimestamps(t *testing.T) {
	// 1 s partitions (with retention) cut rules at nearly every sample of
	// a series; 1 h partitions keep them, so a restarted replica must find
	// the rule in force in Pebble.
	for _, tc := range []struct {
		windowMs  int64
		partition time.Duration
	}{{0, time.Second}, {700, time.Second}, {0, time.Hour}, {700, time.Hour}} {
		windowMs := tc.windowMs
		t.Run(fmt.Sprintf("window=%dms/partition=%s", windowMs, tc.partition), func(t *testing.T) {
			seed := seedFromEnv(t)
			batches := randomBatches(t, seed, 80)
			if windowMs > 0 {
				withWindow(seed, batches, windowMs)
			}
			withSTs(batches)
			opts := testOptions(nil)
			opts.Partition = tc.partition
			if tc.partition == time.Second {
				opts.Retention = 2 * time.Second
			}

			opts.FS = vfs.NewMem()
			refDB, ref := openTest(t, opts)
			for i, b := range batches {
				apply(t, ref, uint64(i+1), b)
				if i%20 == 19 {
					n := 0
					for _, tenant := range []string{"alpha", "beta"} {
						n += requireSTs(t, ref, tenant)
					}
					require.Positive(t, n, "samples with start timestamps")
				}
			}
			require.NoError(t, ref.Checkpoint())

			// Restarted: a checkpoint at 30, entries to 55, then a
			// crash (no checkpoint) and a replay from 30.
			fs := vfs.NewMem()
			opts.FS = fs
			db, err := Open(opts)
			require.NoError(t, err)
			g, _, err := db.OpenGroup(7)
			require.NoError(t, err)
			for i := range 55 {
				apply(t, g, uint64(i+1), batches[i])
				if i == 29 {
					require.NoError(t, g.Checkpoint())
				}
			}
			require.NoError(t, db.Close())
			db, err = Open(opts)
			require.NoError(t, err)
			defer db.Close()
			g, idx, err := db.OpenGroup(7)
			require.NoError(t, err)
			require.Equal(t, uint64(30), idx)
			for _, tenant := range []string{"alpha", "beta"} {
				requireSTs(t, g, tenant) // mid-replay: Pebble holds later entries' keys
			}
			for i := idx; i < uint64(len(batches)); i++ {
				apply(t, g, i+1, batches[i])
			}
			require.NoError(t, g.Checkpoint())
			requireSameDump(t, dump(t, refDB), dump(t, db))
			for _, tenant := range []string{"alpha", "beta"} {
				requireSTs(t, g, tenant)
			}

			// A snapshot carries them.
			opts.FS = vfs.NewMem()
			_, dst := openTest(t, opts)
			var buf bytes.Buffer
			require.NoError(t, ref.Snapshot(&buf))
			require.NoError(t, dst.Restore(bytes.NewReader(buf.Bytes())))
			for _, tenant := range []string{"alpha", "beta"} {
				requireSTs(t, dst, tenant)
			}

			// Retention dropped the rules of the partitions it dropped.
			if opts.Retention == 0 {
				return
			}
			for _, tn := range ref.tenantsForTest() {
				rp := tn.mu.retainPart
				require.NotZero(t, rp)
				for _, kv := range stKeys(dump(t, refDB)) {
					k := mustHex(t, kv[:strings.IndexByte(kv, '=')])
					if k[prefixLen-1] == kindST && binaryTenant(k) == tn.ks.tenant {
						require.GreaterOrEqual(t, binaryPart(k), rp, "start timestamp key %x below the retained partitions", k)
					}
				}
			}
		})
	}
}

// TestStartTimestampsDeleteRange: a range deletion removes the start
// timestamps in the range and keeps those after it (a rule that started
// inside the range is written again after it); samples added afterwards,
// in order and out of order, get theirs; a restart that replays the
// entries after the deletion gives the same bytes.
func TestStartTimestampsDeleteRange(t *testing.T) {
	opts := testOptions(nil)
	opts.Partition = time.Hour
	opts.ChunkSamples = 3
	build := func(from, to, step int64, window int64) *write.Batch {
		bb := write.NewBuilder("alpha")
		for _, name := range []string{"c_total", "d", "mix", "none", "x", "y"} {
			var smp []write.Sample
			for ts := from; ts < to; ts += step {
				smp = append(smp, write.Sample{T: ts, V: float64(ts)})
			}
			require.NoError(t, bb.Add(labels.FromStrings("__name__", name), smp))
		}
		b := bb.Batch()
		b.OutOfOrderWindowMs = window
		withSTs([]*write.Batch{b})
		return b
	}
	del := &write.DeleteSeries{Tenant: "alpha", Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}, Start: 2010, End: 6980}
	entries := []func(g *Group, i uint64){
		func(g *Group, i uint64) { apply(t, g, i, build(0, 10_000, 10, 0)) },
		func(g *Group, i uint64) {
			_, err := g.ApplyDeleteSeries(i, del)
			require.NoError(t, err)
		},
		func(g *Group, i uint64) { apply(t, g, i, build(10_000, 12_000, 10, 0)) },
		func(g *Group, i uint64) { apply(t, g, i, build(3000, 4000, 7, 60_000)) }, // back into the deleted range
	}
	var dumps [][]string
	for restart := range 2 {
		opts.FS = vfs.NewMem()
		db, err := Open(opts)
		require.NoError(t, err)
		g, _, err := db.OpenGroup(7)
		require.NoError(t, err)
		for i, e := range entries {
			e(g, uint64(i+1))
			require.Positive(t, requireSTs(t, g, "alpha"))
			if restart == 1 && i == 2 {
				require.NoError(t, db.Close()) // no checkpoint since the deletion's
				db, err = Open(opts)
				require.NoError(t, err)
				var idx uint64
				g, idx, err = db.OpenGroup(7)
				require.NoError(t, err)
				require.Equal(t, uint64(1), idx) // the deletion checkpointed before it
				for j := idx + 1; j <= uint64(i+1); j++ {
					entries[j-1](g, j)
				}
				requireSTs(t, g, "alpha")
			}
		}
		require.NoError(t, g.Checkpoint())
		dumps = append(dumps, dump(t, db))
		require.NoError(t, db.Close())
	}
	requireSameDump(t, dumps[0], dumps[1])
}

// TestNoStartTimestampsNoKeys: a tenant whose samples have no start
// timestamp stores nothing for them: the keys are those of before.
func TestNoStartTimestampsNoKeys(t *testing.T) {
	batches := randomBatches(t, 1, 40)
	opts := testOptions(vfs.NewMem())
	db, g := openTest(t, opts)
	for i, b := range batches {
		apply(t, g, uint64(i+1), b)
	}
	require.NoError(t, g.Checkpoint())
	require.Empty(t, stKeys(dump(t, db)))
	require.Zero(t, requireSTsOf(t, g, "alpha", func([]byte, int64) int64 { return 0 }))
}

func (g *Group) tenantsForTest() []*tenant {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*tenant
	for _, t := range g.mu.tenants {
		out = append(out, t)
	}
	return out
}

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// binaryTenant and binaryPart read a key's tenant id and partition.
func binaryTenant(k []byte) uint32 { return binary.BigEndian.Uint32(k[4:]) }
func binaryPart(k []byte) uint32   { return binary.BigEndian.Uint32(k[prefixLen:]) }

// TestStartTimestampsDeleteWholeRange: a range deletion that leaves a
// series no sample deletes it whole, its start timestamps included.
func TestStartTimestampsDeleteWholeRange(t *testing.T) {
	opts := testOptions(vfs.NewMem())
	opts.Partition = time.Hour
	db, g := openTest(t, opts)
	bb := write.NewBuilder("alpha")
	var smp []write.Sample
	for ts := int64(0); ts < 5000; ts += 10 {
		smp = append(smp, write.Sample{T: ts, V: float64(ts)})
	}
	require.NoError(t, bb.Add(labels.FromStrings("__name__", "c_total"), smp))
	b := bb.Batch()
	withSTs([]*write.Batch{b})
	apply(t, g, 1, b)
	require.NotEmpty(t, stKeys(dump(t, db))[1:], "rules beside the flag")
	_, err := g.ApplyDeleteSeries(2, &write.DeleteSeries{Tenant: "alpha", Start: 0, End: 4995,
		Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "c_total")}})
	require.NoError(t, err)
	require.NoError(t, g.Checkpoint())
	for _, kv := range stKeys(dump(t, db)) {
		require.NotEqual(t, fmt.Sprintf("%x", kindST), kv[16:18], "start timestamp key %s of a deleted series", kv)
	}
}
