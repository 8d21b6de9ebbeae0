package engine

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

func delEntry(tenant string, start, end int64, re string) []byte {
	return write.AppendDeleteSeries(nil, &write.DeleteSeries{
		Tenant:   tenant,
		Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", re)},
		Start:    start, End: end,
	})
}

// rangeLog is a log of writes and deletions of time ranges (ChunkSamples
// 4, 1s partitions): a deletion that rewrites a chunk straddling its
// start, empties an open chunk (e, evicted with its newest sample), trims
// another (a), deletes a series whole (b) and, later, one created after
// the first deletion (d); samples after the deletions, one of them older
// than the evicted newest sample (refused on every replica); a tenant
// deleted and written again under a new id.
func rangeLog(t testing.TB) [][]byte {
	b := func(tenant string, series map[string][]write.Sample) []byte {
		return write.Append(nil, batchOf(t, tenant, series))
	}
	return [][]byte{
		b("acme", map[string][]write.Sample{
			"a": samplesAt(0, 100, 200, 300, 400, 500, 600, 700, 800, 900),
			"b": samplesAt(300, 500, 1000),
			"c": samplesAt(1000, 1100, 1200, 1300, 1400, 1500),
			"e": samplesAt(0, 100, 200, 300, 400, 500),
		}),
		b("other", map[string][]write.Sample{"a": samplesAt(0, 100)}),
		b("acme", map[string][]write.Sample{"a": samplesAt(1000, 1100, 1200, 1300, 1400, 1500, 1600), "c": samplesAt(1600)}),
		delEntry("acme", 250, 1050, "a|b|e"),
		b("acme", map[string][]write.Sample{"a": samplesAt(1700), "d": samplesAt(1700)}),
		delEntry("acme", 1650, 1800, "a|c|d"),
		b("acme", map[string][]write.Sample{"a": samplesAt(1650), "e": samplesAt(450, 700)}),
		write.AppendDeleteTenant(nil, "other"),
		b("other", map[string][]write.Sample{"b": samplesAt(2000)}),
		b("acme", map[string][]write.Sample{"a": samplesAt(2100), "c": samplesAt(2100)}),
	}
}

func applyRaw(t testing.TB, g *Group, index uint64, entry []byte) []write.Refusal {
	t.Helper()
	o, err := g.apply(index, entry)
	require.NoError(t, err)
	require.NoError(t, o.Err)
	return o.Refused
}

// TestDeleteRangeAnswers checks what a reader sees after the range
// deletions of rangeLog, applied through Apply (the entry dispatch).
func TestDeleteRangeAnswers(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	var refused []string
	for i, e := range rangeLog(t) {
		for _, r := range applyRaw(t, g, uint64(i+1), e) {
			refused = append(refused, fmt.Sprintf("entry %d series %d: %v", i+1, r.Series, r.Err))
		}
	}
	// e's open chunk [400, 500] was emptied: 450 is still older than its
	// newest sample, on every replica.
	require.Len(t, refused, 1)
	require.Contains(t, refused[0], "entry 7 series 1")
	require.Contains(t, refused[0], "out-of-order")

	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	require.Equal(t, []seriesSamples{
		{`{__name__="a", job="x"}`, samplesAt(0, 100, 200, 1100, 1200, 1300, 1400, 1500, 1600, 1650, 2100), nil},
		{`{__name__="c", job="x"}`, samplesAt(1000, 1100, 1200, 1300, 1400, 1500, 1600, 2100), nil},
		{`{__name__="e", job="x"}`, samplesAt(0, 100, 200, 700), nil},
	}, selectAll(t, g, "acme", math.MinInt64, math.MaxInt64, all))
	require.Equal(t, []seriesSamples{{`{__name__="b", job="x"}`, samplesAt(2000), nil}},
		selectAll(t, g, "other", math.MinInt64, math.MaxInt64, all))

	// Label values: b and d are gone from every partition.
	q, err := g.Querier("acme", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	names, _, err := q.LabelValues(t.Context(), "__name__", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c", "e"}, names)
	// Partition 0 (times [0, 1000)) no longer lists b.
	q0, err := g.Querier("acme", 0, 999)
	require.NoError(t, err)
	defer q0.Close()
	names, _, err = q0.LabelValues(t.Context(), "__name__", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "e"}, names)
}

// TestDeleteRangeDeterministic applies rangeLog on a reference replica
// and, for every checkpoint and crash point, on one that crashes (with
// and without the memtables on disk), recovers and replays: every store
// must hold the reference's bytes, and so must a replica restored from a
// snapshot.
func TestDeleteRangeDeterministic(t *testing.T) {
	requireDeterministic(t, rangeLog(t))
}

// requireDeterministic applies log on a reference replica and, for every
// checkpoint and crash point, on one that crashes (with and without the
// memtables on disk), recovers and replays: every store must hold the
// reference's bytes, and so must a replica restored from a snapshot.
func requireDeterministic(t *testing.T, log [][]byte) {
	requireDeterministicWith(t, log, func(*Options) {})
}

// requireDeterministicWith is requireDeterministic with options set by
// setOpts on every replica.
func requireDeterministicWith(t *testing.T, log [][]byte, setOpts func(*Options)) {
	withOpts := func(fs vfs.FS) Options {
		o := testOptions(fs)
		setOpts(&o)
		return o
	}
	refDB, ref := openTest(t, withOpts(vfs.NewMem()))
	for i, e := range log {
		applyRaw(t, ref, uint64(i+1), e)
	}
	require.NoError(t, ref.Checkpoint())
	want := dump(t, refDB)

	for checkpointAt := 1; checkpointAt < len(log); checkpointAt++ {
		for crashAfter := checkpointAt; crashAfter <= len(log); crashAfter++ {
			for _, flush := range []bool{true, false} {
				t.Run(fmt.Sprintf("checkpoint %d crash %d flush %v", checkpointAt, crashAfter, flush), func(t *testing.T) {
					fs := vfs.NewCrashableMem()
					opts := withOpts(fs)
					db, err := Open(opts)
					require.NoError(t, err)
					g, _, err := db.OpenGroup(7)
					require.NoError(t, err)
					for i, e := range log[:crashAfter] {
						applyRaw(t, g, uint64(i+1), e)
						if i+1 == checkpointAt {
							require.NoError(t, g.Checkpoint())
						}
					}
					if flush {
						require.NoError(t, db.pdb.Flush())
					}
					crashed := fs.CrashClone(vfs.CrashCloneCfg{})
					require.NoError(t, db.Close())

					opts.FS = crashed
					db2, g2 := openTest(t, opts)
					for i := g2.AppliedIndex(); i < uint64(len(log)); i++ {
						applyRaw(t, g2, i+1, log[i])
					}
					require.NoError(t, g2.Checkpoint())
					requireSameDump(t, want, dump(t, db2))
				})
			}
		}
	}

	var snap bytes.Buffer
	require.NoError(t, ref.Snapshot(&snap))
	db3, g3 := openTest(t, withOpts(vfs.NewMem()))
	require.NoError(t, g3.Restore(&snap))
	requireSameDump(t, want, dump(t, db3))
}

// TestDeleteRangeHeadIndex: a range deletion that empties a series' open
// chunk while older samples are left, and one that deletes an evicted
// series' newest samples: selects and series queries of recent data,
// answered from the head index, see exactly the samples left, before
// and after a restart.
func TestDeleteRangeHeadIndex(t *testing.T) {
	fs := vfs.NewMem()
	opts := testOptions(fs)
	db, err := Open(opts)
	require.NoError(t, err)
	g, _, err := db.OpenGroup(7)
	require.NoError(t, err)
	var ts []int64
	for t := int64(2000); t <= 2900; t += 100 {
		ts = append(ts, t)
	}
	// a's open chunk is [3000, 3100] in partition 3; c is evicted with
	// its newest sample in partition 3.
	applyRaw(t, g, 1, write.Append(nil, batchOf(t, "acme", map[string][]write.Sample{
		"a": samplesAt(append(ts, 3000, 3100)...), "c": samplesAt(2000, 2100, 2200, 2300, 2400, 3050)})))
	applyRaw(t, g, 2, write.Append(nil, batchOf(t, "acme", map[string][]write.Sample{"b": samplesAt(3500, 6100)})))
	applyRaw(t, g, 3, delEntry("acme", 2950, 3200, "a"))
	applyRaw(t, g, 4, delEntry("acme", 3000, 3100, "c"))
	// Tenant zz: a's open chunk [3000] is emptied, and its samples left
	// are newer than maxT - EvictIdle: a restarted replica's index must
	// not claim to cover them ('m' 'g').
	applyRaw(t, g, 5, write.Append(nil, batchOf(t, "zz", map[string][]write.Sample{"a": samplesAt(2800, 2900, 3000), "b": samplesAt(3100)})))
	applyRaw(t, g, 6, delEntry("zz", 2950, 3000, "a"))
	check := func(when string, g *Group) {
		t.Helper()
		require.Equal(t, []seriesSamples{{`{__name__="a", job="x"}`, samplesAt(2800, 2900), nil}},
			selectAll(t, g, "zz", 2250, 3500, labels.MustNewMatcher(labels.MatchEqual, "__name__", "a")), when)
		require.Equal(t, []seriesSamples{
			{`{__name__="a", job="x"}`, samplesAt(2300, 2400, 2500, 2600, 2700, 2800, 2900), nil},
			{`{__name__="c", job="x"}`, samplesAt(2300, 2400), nil},
		}, selectAll(t, g, "acme", 2250, 3500, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "a|c")), when)
		// Series in [3000, 3500] (partition 3): a and c have no sample
		// left there.
		q, err := g.Querier("acme", 3000, 3500)
		require.NoError(t, err)
		defer q.Close()
		ss := q.Select(t.Context(), true, &storage.SelectHints{Start: 3000, End: 3500, Func: "series"}, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		var names []string
		for ss.Next() {
			names = append(names, ss.At().Labels().Get("__name__"))
		}
		require.NoError(t, ss.Err())
		require.Equal(t, []string{"b"}, names, when)
	}
	check("before a restart", g)
	require.NoError(t, g.Checkpoint())
	require.NoError(t, db.Close())
	_, g2 := openTest(t, opts)
	check("after a restart", g2)
}

// TestDeleteRangeHistograms: native histogram series under range
// deletions: chunks inside the range go, a straddling stored chunk is
// rewritten, an open chunk trimmed or, emptied, evicted with its newest
// histogram as the eviction record (a later older sample is refused),
// replicas stay identical across a crash, and a whole deletion removes
// the series.
func TestDeleteRangeHistograms(t *testing.T) {
	hb := func(name string, ts ...int64) []byte {
		bb := write.NewBuilder("acme")
		var hs []write.Histogram
		for _, t := range ts {
			hs = append(hs, write.Histogram{T: t, H: &histogram.Histogram{Count: uint64(t), Sum: float64(t),
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{t}}})
		}
		require.NoError(t, bb.AddHistograms(labels.FromStrings("__name__", name, "job", "x"), nil, hs))
		return write.Append(nil, bb.Batch())
	}
	log := [][]byte{
		hb("h", 0, 100, 200, 300, 400, 500, 600, 700, 800, 1100, 1200),
		hb("g", 0, 100, 1100),
		write.Append(nil, batchOf(t, "acme", map[string][]write.Sample{"a": samplesAt(0, 1200)})),
		delEntry("acme", 50, 1150, "h|a"),
		delEntry("acme", 1050, 1150, "g"), // empties g's open chunk
		hb("h", 1300),
		hb("g", 1060, 1250), // 1060 is older than g's newest sample, deleted or not
		delEntry("acme", math.MinInt64, math.MaxInt64, "a"),
	}
	_, g := openTest(t, testOptions(vfs.NewMem()))
	for i, e := range log {
		refused := applyRaw(t, g, uint64(i+1), e)
		if i == 6 {
			require.Len(t, refused, 1)
			require.ErrorIs(t, refused[0].Err, write.ErrOutOfOrder)
		} else {
			require.Empty(t, refused, "entry %d", i+1)
		}
	}
	got := selectAll(t, g, "acme", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	require.Len(t, got, 2)
	times := func(s seriesSamples) []string {
		var out []string
		for _, h := range s.hists {
			out = append(out, strings.Fields(h)[0])
		}
		return out
	}
	// g: 0 and 100 sealed, 1100 deleted with its open chunk, 1250 after.
	require.Equal(t, `{__name__="g", job="x"}`, got[0].lset)
	require.Equal(t, []string{"0", "100", "1250"}, times(got[0]), "%q", got[0].hists)
	// h: 0 (a straddling chunk, rewritten), 1200 (the open chunk then,
	// trimmed) and 1300.
	require.Equal(t, `{__name__="h", job="x"}`, got[1].lset)
	require.Equal(t, []string{"0", "1200", "1300"}, times(got[1]), "%q", got[1].hists)
	requireDeterministic(t, log)
	applyRaw(t, g, uint64(len(log)+1), delEntry("acme", math.MinInt64, math.MaxInt64, "h|g"))
	require.Empty(t, selectAll(t, g, "acme", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")))
}
