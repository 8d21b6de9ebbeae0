package engine

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// logEntry is a write batch or, with del set, a deletion of tenant's
// series matching del.
type logEntry struct {
	b      *write.Batch
	tenant string
	del    []*labels.Matcher
}

func applyEntry(t testing.TB, g *Group, index uint64, e logEntry) {
	t.Helper()
	if e.del != nil {
		_, err := g.ApplyDelete(index, e.tenant, e.del)
		require.NoError(t, err)
		return
	}
	apply(t, g, index, e.b)
}

func batchOf(t testing.TB, tenant string, series map[string][]write.Sample) *write.Batch {
	t.Helper()
	b := write.NewBuilder(tenant)
	for _, name := range []string{"a", "b", "c", "d", "e"} { // a fixed order
		if smp, ok := series[name]; ok {
			require.NoError(t, b.Add(labels.FromStrings("__name__", name, "job", "x"), smp))
		}
	}
	return b.Batch()
}

func samplesAt(ts ...int64) []write.Sample {
	out := make([]write.Sample, len(ts))
	for i, t := range ts {
		out[i] = write.Sample{T: t, V: float64(t) / 10}
	}
	return out
}

// deletionLog creates series, checkpoints after entry 2, creates c in
// entry 3, deletes it in entry 4 and creates d in entry 5: a replica that
// recovers from the checkpoint at 2 and replays entry 3 on a store that
// holds entry 4 must give c the id it had, or every later id shifts.
func deletionLog(t testing.TB) []logEntry {
	eq := labels.MustNewMatcher(labels.MatchEqual, "__name__", "c")
	return []logEntry{
		{b: batchOf(t, "acme", map[string][]write.Sample{"a": samplesAt(0, 100), "b": samplesAt(0)})},
		{b: batchOf(t, "acme", map[string][]write.Sample{"a": samplesAt(200, 300, 400, 500, 600)})},
		{b: batchOf(t, "acme", map[string][]write.Sample{"a": samplesAt(700), "c": samplesAt(700, 800, 900, 1000, 1100, 1200)})},
		{tenant: "acme", del: []*labels.Matcher{eq}},
		{b: batchOf(t, "acme", map[string][]write.Sample{"a": samplesAt(1300), "d": samplesAt(1300)})},
		{b: batchOf(t, "acme", map[string][]write.Sample{"c": samplesAt(1400), "e": samplesAt(1400)})},
	}
}

// TestDeleteReplayAfterCrashKeepsIdentity: a replica crashes after a
// deletion and the entries after it reached the disk (memtables flushed
// between checkpoints), recovers and replays; it must hold the same bytes
// as a replica that never crashed, and so must one restored from a
// snapshot taken after the deletion.
func TestDeleteReplayAfterCrashKeepsIdentity(t *testing.T) {
	log := deletionLog(t)
	const checkpointAt, crashAfter = 2, 5

	refDB, ref := openTest(t, testOptions(vfs.NewMem()))
	for i, e := range log {
		applyEntry(t, ref, uint64(i+1), e)
	}
	require.NoError(t, ref.Checkpoint())
	// c (id 3) was deleted; created again by entry 6 it is a new series.
	require.Equal(t, []seriesSamples{{`{__name__="c", job="x"}`, samplesAt(1400), nil}},
		selectAll(t, ref, "acme", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "c")))

	for _, tc := range []struct {
		name  string
		flush bool // the memtables reach the disk between checkpoints
	}{
		{"deletion on disk, replayed in the head only", true},
		{"deletion lost, applied again", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			opts := testOptions(fs)
			db, err := Open(opts)
			require.NoError(t, err)
			g, _, err := db.OpenGroup(7)
			require.NoError(t, err)
			for i, e := range log[:crashAfter] {
				applyEntry(t, g, uint64(i+1), e)
				if i+1 == checkpointAt {
					require.NoError(t, g.Checkpoint())
				}
			}
			if tc.flush {
				require.NoError(t, db.pdb.Flush())
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{})
			require.NoError(t, db.Close())

			opts.FS = crashed
			db2, g2 := openTest(t, opts)
			// The deletion (entry 4) checkpointed at 3 before it.
			require.Equal(t, uint64(3), g2.AppliedIndex(), "recovered to the barrier")
			for i := g2.AppliedIndex(); i < uint64(len(log)); i++ {
				applyEntry(t, g2, i+1, log[i])
			}
			require.NoError(t, g2.Checkpoint())
			requireSameDump(t, dump(t, refDB), dump(t, db2))
		})
	}

	t.Run("snapshot after the deletion", func(t *testing.T) {
		var snap bytes.Buffer
		require.NoError(t, ref.Snapshot(&snap))
		db3, g3 := openTest(t, testOptions(vfs.NewMem()))
		require.NoError(t, g3.Restore(&snap))
		requireSameDump(t, dump(t, refDB), dump(t, db3))
	})
}

// TestDeleteRemovesEveryKey deletes a series in the head and an evicted
// one and checks no key of either is left, and that the others answer as
// before.
func TestDeleteRemovesEveryKey(t *testing.T) {
	db, g := openTest(t, testOptions(vfs.NewMem()))
	log := []*write.Batch{
		batchOf(t, "acme", map[string][]write.Sample{"a": samplesAt(0, 500, 1000), "b": samplesAt(0, 500), "c": samplesAt(0, 1500, 2500, 3000, 3500, 4000)}),
		batchOf(t, "acme", map[string][]write.Sample{"a": samplesAt(5000, 9000), "c": samplesAt(9000)}), // b is evicted
	}
	for i, b := range log {
		apply(t, g, uint64(i+1), b)
	}
	require.NoError(t, g.Checkpoint()) // c has an 'o' key
	before := selectAll(t, g, "acme", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "a"))
	n, err := g.ApplyDelete(3, "acme", []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", "b|c")})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = g.ApplyDelete(4, "nobody", []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")})
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, uint64(4), g.AppliedIndex())

	it, err := db.pdb.NewIter(nil)
	require.NoError(t, err)
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		var id uint64
		switch k[8] {
		case kindSeries, kindOpen, kindEvicted:
			id = binary.BigEndian.Uint64(k[prefixLen:])
		case kindHash:
			id = binary.BigEndian.Uint64(k[prefixLen+8:])
		case kindChunk:
			id = binary.BigEndian.Uint64(k[prefixLen+4:])
		case kindPostings:
			id = binary.BigEndian.Uint64(k[len(k)-8:])
		}
		require.NotContains(t, []uint64{2, 3}, id, "key %x of a deleted series", k)
	}
	require.NoError(t, it.Error())
	require.Empty(t, selectAll(t, g, "acme", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "b|c")))
	require.Equal(t, before, selectAll(t, g, "acme", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "a")))
	require.Equal(t, []TenantStats{{Tenant: "acme", HeadSeries: 1, MaxTime: 9000}}, g.Stats())
}
