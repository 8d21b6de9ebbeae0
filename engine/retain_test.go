package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// retainLog (1s partitions): a has samples only in partitions 0 and 1, b
// in 0 to 5, d only in 1, e is evicted in partition 0; a retention step before 2000
// drops partitions 0 and 1 and collects a, d and e; a second step of the
// same partition (another node's proposal) changes nothing; a sample
// older than 2000 is refused after it, and a written again is a new
// series.
func retainLog(t testing.TB) [][]byte {
	b := func(series map[string][]write.Sample) []byte {
		return write.Append(nil, batchOf(t, "acme", series))
	}
	return [][]byte{
		b(map[string][]write.Sample{"a": samplesAt(0, 500, 1000, 1500), "b": samplesAt(0, 1000), "e": samplesAt(100)}),
		// e is evicted; d is created after a checkpoint and collected by
		// the step: a replay of this entry must give it the same id.
		b(map[string][]write.Sample{"b": samplesAt(2000, 2500, 3000, 3500, 4000, 4500, 5000), "d": samplesAt(1200)}),
		write.AppendRetain(nil, write.Retain{Tenant: "acme", Before: 2000}),
		write.AppendRetain(nil, write.Retain{Tenant: "acme", Before: 2999}),
		b(map[string][]write.Sample{"b": samplesAt(5500), "c": samplesAt(1999, 5500), "a": samplesAt(5600)}),
		write.AppendRetain(nil, write.Retain{Tenant: "nobody", Before: 2000}),
		write.AppendRetain(nil, write.Retain{Tenant: "acme", Before: math.MinInt64}),
	}
}

func TestRetainCollectsSeries(t *testing.T) {
	db, g := openTest(t, testOptions(vfs.NewMem()))
	var refused []string
	for i, e := range retainLog(t) {
		for _, r := range applyRaw(t, g, uint64(i+1), e) {
			refused = append(refused, fmt.Sprintf("entry %d series %d: %v", i+1, r.Series, r.Err))
		}
	}
	require.Equal(t, []string{"entry 5 series 2: sample 0 at 1999: write: sample too old for retention"}, refused)
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	require.Equal(t, []seriesSamples{
		{`{__name__="a", job="x"}`, samplesAt(5600), nil},
		{`{__name__="b", job="x"}`, samplesAt(2000, 2500, 3000, 3500, 4000, 4500, 5000, 5500), nil},
		{`{__name__="c", job="x"}`, samplesAt(5500), nil},
	}, selectAll(t, g, "acme", math.MinInt64, math.MaxInt64, all))
	// The same from the head index (a recent range): no collected ghost.
	q, err := g.Querier("acme", 2000, 6000)
	require.NoError(t, err)
	ss := q.Select(t.Context(), true, &storage.SelectHints{Start: 2000, End: 6000, Func: "series"}, all)
	var names []string
	for ss.Next() {
		names = append(names, ss.At().Labels().Get("__name__"))
	}
	require.NoError(t, ss.Err())
	require.NoError(t, q.Close())
	require.Equal(t, []string{"a", "b", "c"}, names)

	// a (id 1), e (id 3) and d (id 4) were collected: a is back as id 6
	// (c is 5).
	ids := map[uint64]bool{}
	it, err := db.pdb.NewIter(nil)
	require.NoError(t, err)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) == prefixLen+8 && k[8] == kindSeries {
			ids[binary.BigEndian.Uint64(k[prefixLen:])] = true
		}
		if k[8] == kindEvicted {
			t.Errorf("eviction record %x of a collected series", k)
		}
		if (k[8] == kindChunk || k[8] == kindPostings) && binary.BigEndian.Uint32(k[prefixLen:]) < partitionOf(2000, 1000) {
			t.Errorf("key %x of a dropped partition", k)
		}
	}
	require.NoError(t, it.Close())
	require.Equal(t, map[uint64]bool{2: true, 5: true, 6: true}, ids)
}

func TestRetainDeterministic(t *testing.T) {
	requireDeterministic(t, retainLog(t))
}

// TestRetainCollectsAfterGlobalRetention: a collect-only step (Before =
// MinInt64, what the node proposes without a retention_period) collects
// the series the engine's own retention (Options.Retention) left
// without samples, and only once.
func TestRetainCollectsAfterGlobalRetention(t *testing.T) {
	opts := testOptions(vfs.NewMem())
	opts.Retention = 2 * time.Second
	db, g := openTest(t, opts)
	log := [][]byte{
		write.Append(nil, batchOf(t, "acme", map[string][]write.Sample{"a": samplesAt(0, 500), "b": samplesAt(0, 2500)})),
		write.Append(nil, batchOf(t, "acme", map[string][]write.Sample{"b": samplesAt(4500)})), // keeps partitions 2 on
		write.AppendRetain(nil, write.Retain{Tenant: "acme", Before: math.MinInt64}),
	}
	for i, e := range log {
		applyRaw(t, g, uint64(i+1), e)
	}
	n := 0
	it, err := db.pdb.NewIter(nil)
	require.NoError(t, err)
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); len(k) == prefixLen+8 && k[8] == kindSeries {
			n++
			require.Equal(t, uint64(2), binary.BigEndian.Uint64(k[prefixLen:]), "only b is left")
		}
	}
	require.NoError(t, it.Close())
	require.Equal(t, 1, n)
	stored := g.AppliedIndex()
	applyRaw(t, g, stored+1, write.AppendRetain(nil, write.Retain{Tenant: "acme", Before: math.MinInt64}))
	require.Equal(t, stored+1, g.AppliedIndex())
}

// periodLog (1s partitions, the engine's retention 2s): acme gets a
// retention period of 10s before its first sample, so its data older
// than 2s behind its newest stays and old samples are accepted; other,
// without one, loses its partitions older than 2s. A step without a
// period puts acme back on the engine's 2s: the next batch drops its
// old partitions. other then gets a period of 10s: a sample 3.5s behind
// its newest is taken, where its partitions were dropped.
func periodLog(t testing.TB) [][]byte {
	b := func(tenant string, series map[string][]write.Sample) []byte {
		return write.Append(nil, batchOf(t, tenant, series))
	}
	return [][]byte{
		write.AppendRetain(nil, write.Retain{Tenant: "acme", Before: math.MinInt64, Period: 10_000}),
		b("acme", map[string][]write.Sample{"a": samplesAt(0, 500), "b": samplesAt(0, 1500)}),
		b("other", map[string][]write.Sample{"a": samplesAt(0, 500), "b": samplesAt(0, 1500)}),
		b("acme", map[string][]write.Sample{"b": samplesAt(4500)}),
		b("other", map[string][]write.Sample{"b": samplesAt(4500)}),
		b("acme", map[string][]write.Sample{"c": samplesAt(1000)}),  // 3.5s behind: kept
		b("other", map[string][]write.Sample{"c": samplesAt(1000)}), // refused
		write.AppendRetain(nil, write.Retain{Tenant: "acme", Before: math.MinInt64}),
		b("acme", map[string][]write.Sample{"b": samplesAt(5000)}),
		write.AppendRetain(nil, write.Retain{Tenant: "other", Before: math.MinInt64, Period: 10_000}),
		b("other", map[string][]write.Sample{"c": samplesAt(1000)}),
	}
}

// TestRetainPeriod: a tenant's retention period replaces the engine's
// retention, longer, and back; replicas stay identical through crashes
// and a snapshot.
func TestRetainPeriod(t *testing.T) {
	opts := testOptions(vfs.NewMem())
	opts.Retention = 2 * time.Second
	_, g := openTest(t, opts)
	var refused []string
	for i, e := range periodLog(t) {
		for _, r := range applyRaw(t, g, uint64(i+1), e) {
			refused = append(refused, fmt.Sprintf("entry %d series %d: %v", i+1, r.Series, r.Err))
		}
		if i+1 == 7 {
			all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
			require.Equal(t, []seriesSamples{
				{`{__name__="a", job="x"}`, samplesAt(0, 500), nil},
				{`{__name__="b", job="x"}`, samplesAt(0, 1500, 4500), nil},
				{`{__name__="c", job="x"}`, samplesAt(1000), nil},
			}, selectAll(t, g, "acme", math.MinInt64, math.MaxInt64, all), "acme keeps 10s")
			require.Equal(t, []seriesSamples{
				{`{__name__="b", job="x"}`, samplesAt(4500), nil},
			}, selectAll(t, g, "other", math.MinInt64, math.MaxInt64, all), "other keeps 2s")
		}
	}
	require.Equal(t, []string{"entry 7 series 0: sample 0 at 1000: write: sample too old for retention"}, refused)
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	require.Equal(t, []seriesSamples{
		{`{__name__="b", job="x"}`, samplesAt(4500, 5000), nil},
	}, selectAll(t, g, "acme", math.MinInt64, math.MaxInt64, all), "acme back on 2s")
	require.Equal(t, []seriesSamples{
		{`{__name__="b", job="x"}`, samplesAt(4500), nil},
		{`{__name__="c", job="x"}`, samplesAt(1000), nil},
	}, selectAll(t, g, "other", math.MinInt64, math.MaxInt64, all), "other on 10s")

	requireDeterministicWith(t, periodLog(t), func(o *Options) { o.Retention = 2 * time.Second })
}
