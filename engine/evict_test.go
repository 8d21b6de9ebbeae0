package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// chunksPerSeries counts the sealed chunk keys ('c') of every series of
// tenant id 1 of group g in partition part, by series id.
func chunksPerSeries(t testing.TB, db *DB, g uint32, part uint32) map[uint64]int {
	t.Helper()
	prefix := appendPrefix(nil, g, 1, kindChunk)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	require.NoError(t, err)
	defer it.Close()
	n := map[uint64]int{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[prefixLen:]
		if binary.BigEndian.Uint32(k) == part {
			n[binary.BigEndian.Uint64(k[4:])]++
		}
	}
	require.NoError(t, it.Error())
	return n
}

// TestEvictLaggingSeriesKeepsChunks: a series written all the time but
// behind another of its tenant stays in the head, so its day is stored
// in as few chunks as the other's. Before, it was evicted at every scan
// (every 15 minutes of sample time) once more than EvictIdle behind: at
// 90 minutes behind it ended the day with 97 chunks instead of 2 (found
// by the 30-day benchmark).
func TestEvictLaggingSeriesKeepsChunks(t *testing.T) {
	const minute = int64(time.Minute / time.Millisecond)
	const day = 1440 * minute
	for _, lag := range []int64{0, 30, 90, 150} {
		t.Run(fmt.Sprintf("lag=%dm", lag), func(t *testing.T) {
			opts := Options{Dir: "db", FS: vfs.NewMem()} // the defaults: 1 h EvictIdle, 1-day partitions, 120 x 8
			db, g := openTest(t, opts)
			a := labels.FromStrings("__name__", "up", "sender", "current")
			b := labels.FromStrings("__name__", "up", "sender", "behind")
			// One sample a minute each, b lag minutes behind a, until both
			// are an hour into the next day (so the day's last runs merge).
			index := uint64(0)
			for ts := int64(0); ts-lag*minute <= day+time.Hour.Milliseconds(); ts += minute {
				bb := write.NewBuilder("t")
				require.NoError(t, bb.Add(a, []write.Sample{{T: ts, V: float64(ts)}}))
				if tb := ts - lag*minute; tb >= 0 {
					require.NoError(t, bb.Add(b, []write.Sample{{T: tb, V: float64(tb)}}))
				}
				index++
				require.Empty(t, apply(t, g, index, bb.Batch()))
			}
			// 1,440 samples: 12 chunks of 120 merged in runs of 8: 2.
			require.Equal(t, map[uint64]int{1: 2, 2: 2}, chunksPerSeries(t, db, 7, partitionOf(0, day)))
			require.Equal(t, 2, g.Stats()[0].HeadSeries)
			for _, s := range selectAll(t, g, "t", 0, day-1) {
				require.Len(t, s.samples, 1440, s.lset)
			}
		})
	}
}

// TestEvictDeadSeries: a series that stops is still evicted: at the
// first scan after it falls EvictIdle behind, as before, when it was
// not written since the scan before; one scan later when it was (a
// series that stops while behind).
func TestEvictDeadSeries(t *testing.T) {
	const minute = int64(time.Minute / time.Millisecond)
	for _, tc := range []struct {
		name      string
		lag       int64 // minutes b is behind a
		stop      int64 // a's minute of b's last sample
		evictedAt int64 // a's minute at which b leaves the head
	}{
		// b's last sample at 60 is before the scan at 60 (same batch):
		// that scan clears the flag, the one at 135 (horizon 75) evicts.
		{"current, stops at a scan", 0, 60, 135},
		{"current, stops between scans", 0, 61, 135},
		// b, 90 minutes behind, writes 60 at a's 150 (that batch's scan
		// clears the flag): the next scan, at 165, evicts it.
		{"behind, stops", 90, 150, 165},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Dir: "db", FS: vfs.NewMem()}
			_, g := openTest(t, opts)
			a := labels.FromStrings("__name__", "up", "sender", "a")
			b := labels.FromStrings("__name__", "up", "sender", "b")
			for m := int64(0); m <= tc.evictedAt; m++ {
				bb := write.NewBuilder("t")
				require.NoError(t, bb.Add(a, []write.Sample{{T: m * minute, V: 1}}))
				if tb := m - tc.lag; tb >= 0 && m <= tc.stop {
					require.NoError(t, bb.Add(b, []write.Sample{{T: tb * minute, V: 1}}))
				}
				require.Empty(t, apply(t, g, uint64(m+1), bb.Batch()))
				want := 2
				if m < tc.lag || m >= tc.evictedAt {
					want = 1
				}
				require.Equal(t, want, g.Stats()[0].HeadSeries, "after a's minute %d", m)
			}
			// b's open chunk was sealed: every sample is in Pebble.
			got := selectFrom(t, pebbleQuerier(t, g, "t", math.MinInt64, math.MaxInt64), labels.MustNewMatcher(labels.MatchEqual, "sender", "b"))
			require.Len(t, got, 1)
			require.Len(t, got[0].samples, int(tc.stop-tc.lag+1))
		})
	}
}

// TestEvictFlagAcrossRestartAndSnapshot: the flag that keeps a series
// written since the last scan is part of the checkpoint, so a replica
// that checkpoints at any entry and restarts (replaying the rest), or
// one restored from a snapshot taken there, stores the same bytes as
// one that never stopped. The series b writes every 10 minutes, 90
// minutes behind a, with a gap of 40 minutes: the scans keep it while it
// writes (the flag set, checkpointed, cleared by the scan and
// checkpointed again) and evict it in the gap.
func TestEvictFlagAcrossRestartAndSnapshot(t *testing.T) {
	const minute = int64(time.Minute / time.Millisecond)
	a := labels.FromStrings("__name__", "up", "sender", "a")
	b := labels.FromStrings("__name__", "up", "sender", "b")
	var entries []*write.Batch
	for m := int64(0); m <= 300; m += 5 {
		bb := write.NewBuilder("t")
		require.NoError(t, bb.Add(a, []write.Sample{{T: m * minute, V: float64(m)}}))
		if tb := m - 90; tb >= 0 && m%10 == 0 && (m < 200 || m >= 240) {
			require.NoError(t, bb.Add(b, []write.Sample{{T: tb * minute, V: float64(tb)}}))
		}
		entries = append(entries, bb.Batch())
	}
	opts := Options{Dir: "db", ChunkSamples: 4, MergeChunks: 2, Partition: 2 * time.Hour}
	group7 := func(db *DB) []string {
		var out []string
		for _, kv := range dump(t, db) {
			if bytes.HasPrefix([]byte(kv), []byte("00000007")) {
				out = append(out, kv)
			}
		}
		return out
	}
	opts.FS = vfs.NewMem()
	ref, g := openTest(t, opts)
	evictions := 0
	for i, e := range entries {
		before := headSeries(g, "t")
		require.Empty(t, apply(t, g, uint64(i+1), e))
		if headSeries(g, "t") < before {
			evictions++
		}
	}
	require.Equal(t, 1, evictions, "b is evicted once, in its gap")
	require.NoError(t, g.Checkpoint())
	want := group7(ref)

	for at := 1; at < len(entries); at++ {
		for _, mode := range []string{"restart", "snapshot"} {
			opts.FS = vfs.NewMem()
			db, err := Open(opts)
			require.NoError(t, err)
			g, _, err := db.OpenGroup(7)
			require.NoError(t, err)
			// A checkpoint after every entry: one at the entry after a
			// scan holds the flags the scan cleared only if the scan
			// marked those series dirty.
			for i, e := range entries[:at] {
				require.Empty(t, apply(t, g, uint64(i+1), e))
				require.NoError(t, g.Checkpoint())
			}
			from := uint64(at)
			switch mode {
			case "restart":
				require.NoError(t, g.Checkpoint())
				// A few entries after the checkpoint reach Pebble
				// before the crash: the replay applies them again.
				for i := at; i < min(at+3, len(entries)); i++ {
					require.Empty(t, apply(t, g, uint64(i+1), entries[i]))
				}
				require.NoError(t, db.Close())
				db, err = Open(opts)
				require.NoError(t, err)
				g, from, err = db.OpenGroup(7)
				require.NoError(t, err)
				require.Equal(t, uint64(at), from)
			case "snapshot":
				var buf bytes.Buffer
				require.NoError(t, g.Snapshot(&buf))
				require.NoError(t, db.Close())
				opts.FS = vfs.NewMem()
				db, err = Open(opts)
				require.NoError(t, err)
				g, _, err = db.OpenGroup(7)
				require.NoError(t, err)
				require.NoError(t, g.Restore(bytes.NewReader(buf.Bytes())))
			}
			for i := from; i < uint64(len(entries)); i++ {
				require.Empty(t, apply(t, g, i+1, entries[i]))
			}
			require.NoError(t, g.Checkpoint())
			got := group7(db)
			require.NoError(t, db.Close())
			if !slices.Equal(want, got) {
				t.Errorf("%s at entry %d: not the bytes of the replica that never stopped", mode, at)
				requireSameDump(t, want, got)
			}
		}
	}
}
