package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/write"
)

// testOptions are small enough that a few samples exercise chunk cuts and
// partitions.
func testOptions(fs vfs.FS) Options {
	return Options{Dir: "db", FS: fs, ChunkSamples: 4, Partition: time.Second, SealEncoding: chunkenc.EncPack, EvictIdle: 3 * time.Second, IndexGhosts: 5 * time.Second}
}

func openTest(t testing.TB, opts Options) (*DB, *Group) {
	t.Helper()
	db, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	g, _, err := db.OpenGroup(7)
	require.NoError(t, err)
	return db, g
}

func apply(t testing.TB, g *Group, index uint64, b *write.Batch) []write.Refusal {
	t.Helper()
	errs, err := g.Apply(index, write.Append(nil, b))
	require.NoError(t, err)
	return errs
}

// dump returns every key and value of the store, for comparing replicas.
func dump(t testing.TB, db *DB) []string {
	t.Helper()
	it, err := db.pdb.NewIter(nil)
	require.NoError(t, err)
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		out = append(out, fmt.Sprintf("%x=%x", it.Key(), it.Value()))
	}
	require.NoError(t, it.Error())
	return out
}

// requireSameDump compares two dumps and reports the first difference.
func requireSameDump(t testing.TB, want, got []string) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			t.Fatalf("stores differ at entry %d of %d/%d:\nwant %s\ngot  %s", i, len(want), len(got), want[i], got[i])
		}
	}
	if len(want) != len(got) {
		t.Fatalf("stores differ: %d vs %d entries", len(want), len(got))
	}
}

type seriesSamples struct {
	lset    string
	samples []write.Sample
	hists   []string // histogram samples: time, type and value
}

// selectAll runs a select and returns every series and its samples.
func selectAll(t testing.TB, g *Group, tenant string, mint, maxt int64, ms ...*labels.Matcher) []seriesSamples {
	t.Helper()
	q, err := g.Querier(tenant, mint, maxt)
	require.NoError(t, err)
	return selectFrom(t, q, ms...)
}

// pebbleQuerier is a querier that reads the postings in Pebble, not the
// head index.
func pebbleQuerier(t testing.TB, g *Group, tenant string, mint, maxt int64) storage.Querier {
	t.Helper()
	q, err := g.Querier(tenant, mint, maxt)
	require.NoError(t, err)
	q.(*querier).noHeadIndex = true
	return q
}

// selectFrom selects ms from q, closes q and returns the series sorted.
func selectFrom(t testing.TB, q storage.Querier, ms ...*labels.Matcher) []seriesSamples {
	t.Helper()
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, ms...)
	var out []seriesSamples
	for ss.Next() {
		s := ss.At()
		it := s.Iterator(nil)
		var smp []write.Sample
		var hs []string
		for vt := it.Next(); vt != 0; vt = it.Next() {
			switch vt {
			case promchunk.ValFloat:
				ts, v := it.At()
				smp = append(smp, write.Sample{T: ts, V: v})
			case promchunk.ValHistogram:
				ts, h := it.AtHistogram(nil)
				hs = append(hs, histString(ts, h, nil))
			case promchunk.ValFloatHistogram:
				ts, h := it.AtFloatHistogram(nil)
				hs = append(hs, histString(ts, nil, h))
			}
		}
		require.NoError(t, it.Err())
		out = append(out, seriesSamples{s.Labels().String(), smp, hs})
	}
	require.NoError(t, ss.Err())
	return out
}

func TestOptionsValidate(t *testing.T) {
	require.NoError(t, Options{Dir: "x"}.Validate())
	err := Options{ChunkSamples: -1, Partition: time.Microsecond, Retention: -1, SealEncoding: 99}.Validate()
	require.Error(t, err)
	for _, want := range []string{"Dir", "ChunkSamples", "SealEncoding", "Partition", "Retention"} {
		require.Contains(t, err.Error(), want)
	}
}

func TestApplyRejections(t *testing.T) {
	up := labels.FromStrings("__name__", "up")
	for _, tc := range []struct {
		name     string
		other    []write.Sample // of another series, applied first
		samples  []write.Sample
		rejected int
		want     error
		stored   []write.Sample
	}{
		{"in order", nil, []write.Sample{{T: 1, V: 1}, {T: 2, V: 2}}, 0, nil, []write.Sample{{T: 1, V: 1}, {T: 2, V: 2}}},
		{"out of order", nil, []write.Sample{{T: 2, V: 2}, {T: 1, V: 1}, {T: 3, V: 3}}, 1, write.ErrOutOfOrder, []write.Sample{{T: 2, V: 2}, {T: 3, V: 3}}},
		{"duplicate same value accepted", nil, []write.Sample{{T: 2, V: 2}, {T: 2, V: 2}}, 0, nil, []write.Sample{{T: 2, V: 2}}},
		{"duplicate other value", nil, []write.Sample{{T: 2, V: 2}, {T: 2, V: 3}, {T: 2, V: 4}}, 2, write.ErrDuplicateSample, []write.Sample{{T: 2, V: 2}}},
		{"too old", []write.Sample{{T: 100000, V: 1}}, []write.Sample{{T: 100000 - 60001, V: 1}, {T: 100000 - 60000, V: 1}}, 1, write.ErrTooOld, []write.Sample{{T: 40000, V: 1}}},
		{"NaN duplicate by bits", nil, []write.Sample{{T: 1, V: math.NaN()}, {T: 1, V: math.NaN()}}, 0, nil, []write.Sample{{T: 1, V: math.NaN()}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(vfs.NewMem())
			opts.Retention = time.Minute
			_, g := openTest(t, opts)
			b := buildBatch(t, "t", labels.FromStrings("__name__", "other"), tc.other, up, tc.samples)
			errs := apply(t, g, 1, b)
			if tc.want == nil {
				require.Empty(t, errs)
			} else {
				require.Len(t, errs, 1)
				require.Equal(t, 1, errs[0].Series)
				require.Equal(t, tc.rejected, errs[0].Rejected)
				require.ErrorIs(t, errs[0].Err, tc.want)
			}
			got := selectAll(t, g, "t", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
			if len(tc.stored) == 0 {
				require.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			require.Equal(t, fmt.Sprint(tc.stored), fmt.Sprint(got[0].samples))
		})
	}
}

func TestApplyCutsChunksAndPartitions(t *testing.T) {
	db, g := openTest(t, testOptions(vfs.NewMem()))
	var smp []write.Sample
	for ts := int64(0); ts < 3000; ts += 100 { // 30 samples over 3 partitions of 10
		smp = append(smp, write.Sample{T: ts, V: float64(ts)})
	}
	apply(t, g, 1, buildBatch(t, "t", labels.FromStrings("__name__", "m"), smp))
	var mints []int64
	it, err := db.pdb.NewIter(nil)
	require.NoError(t, err)
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); k[prefixLen-1] == kindChunk {
			mints = append(mints, readTime(k[len(k)-8:]))
		}
	}
	require.NoError(t, it.Close())
	// 4 samples per chunk, never across a partition: 0-300,400-700,800-900
	// | ... Merged in runs of up to 8 (MergeChunks), the last run of a
	// partition when the next partition starts: 0-900 | 1000-1900 | then
	// 2000-2300 and 2400-2700 wait for their run to end. The last chunk
	// (2800-2900) is open, in the head.
	require.Equal(t, []int64{0, 1000, 2000, 2400}, mints)
	got := selectAll(t, g, "t", math.MinInt64, math.MaxInt64)
	require.Len(t, got, 1)
	require.Equal(t, smp, got[0].samples)
	// A range inside one chunk, across head and Pebble, and empty.
	require.Equal(t, smp[5:7], selectAll(t, g, "t", 450, 650)[0].samples)
	require.Equal(t, smp[26:], selectAll(t, g, "t", 2550, 5000)[0].samples)
	require.Empty(t, selectAll(t, g, "t", 3000, 5000))
	require.Empty(t, selectAll(t, g, "t", 450, 499))
}

func TestApplyReplayIsNoop(t *testing.T) {
	db, g := openTest(t, testOptions(vfs.NewMem()))
	b := buildBatch(t, "t", labels.FromStrings("a", "b"), []write.Sample{{T: 1, V: 1}})
	apply(t, g, 5, b)
	before := dump(t, db)
	require.Empty(t, apply(t, g, 5, buildBatch(t, "t", labels.FromStrings("a", "b"), []write.Sample{{T: 0, V: 1}})))
	require.Empty(t, apply(t, g, 3, b))
	require.Equal(t, before, dump(t, db))
	require.Equal(t, uint64(5), g.AppliedIndex())
}

func TestApplyCorruptBatchCountsAsApplied(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	_, err := g.Apply(1, []byte{1, 2, 3})
	require.ErrorIs(t, err, write.ErrCorrupt)
	require.Equal(t, uint64(1), g.AppliedIndex())
}

// randomBatches returns n batches over a few tenants and series with mostly
// increasing timestamps and some out-of-order, duplicate and old samples.
func randomBatches(t testing.TB, seed uint64, n int) []*write.Batch {
	rng := newRand(seed)
	var out []*write.Batch
	ts := int64(0)
	for range n {
		tenant := []string{"alpha", "beta"}[rng.IntN(2)]
		bb := write.NewBuilder(tenant)
		for range 1 + rng.IntN(6) {
			lset := randomLabels(rng)
			var smp []write.Sample
			for range rng.IntN(5) {
				ts += int64(rng.IntN(300))
				st := ts
				switch rng.IntN(20) {
				case 0:
					st -= int64(rng.IntN(3000)) // out of order or too old
				case 1:
					st = max(0, ts-int64(rng.IntN(2)))
				}
				v := float64(rng.IntN(4))
				smp = append(smp, write.Sample{T: st, V: v})
			}
			// Histograms: of series that may also have floats (a series
			// switches between kinds per chunk), out of order, duplicate
			// and too old ones among them.
			var hs []write.Histogram
			if lset.Get("__name__") == "mem_bytes" || rng.IntN(8) == 0 {
				for range rng.IntN(4) {
					ts += int64(rng.IntN(300))
					st := ts
					if rng.IntN(15) == 0 {
						st -= int64(rng.IntN(3000))
					}
					hs = append(hs, randHistogram(rng, st))
				}
			}
			require.NoError(t, bb.AddHistograms(lset, smp, hs))
		}
		out = append(out, bb.Batch())
	}
	return out
}

// randHistogram returns a valid histogram sample at t: integer or float,
// exponential or custom buckets, with a random layout and now and then a
// counter reset hint, a gauge or a stale marker.
func randHistogram(rng randSource, t int64) write.Histogram {
	h := &histogram.Histogram{Schema: int32(rng.IntN(3)), ZeroThreshold: 0.001}
	if rng.IntN(6) == 0 {
		h = &histogram.Histogram{Schema: histogram.CustomBucketsSchema, CustomValues: []float64{0.1, 1, 10}}
	}
	switch rng.IntN(10) {
	case 0:
		h.CounterResetHint = histogram.CounterReset
	case 1:
		h.CounterResetHint = histogram.GaugeType
	}
	n := 1 + rng.IntN(4)
	h.PositiveSpans = []histogram.Span{{Offset: int32(rng.IntN(3)), Length: uint32(n)}}
	if h.Schema == histogram.CustomBucketsSchema {
		h.PositiveSpans[0].Offset = 0
	}
	prev, total := int64(0), uint64(0)
	for range n {
		c := int64(rng.IntN(20))
		h.PositiveBuckets = append(h.PositiveBuckets, c-prev)
		prev = c
		total += uint64(c)
	}
	if h.Schema != histogram.CustomBucketsSchema {
		h.ZeroCount = uint64(rng.IntN(3))
	}
	h.Count = total + h.ZeroCount
	h.Sum = float64(rng.IntN(1000)) / 10
	if rng.IntN(20) == 0 {
		// A stale marker, as Prometheus writes one (and its chunks
		// store it): the StaleNaN sum and nothing else.
		h = &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}
	}
	if rng.IntN(3) == 0 {
		return write.Histogram{T: t, FH: h.ToFloat(nil)}
	}
	return write.Histogram{T: t, H: h}
}

func randomLabels(rng randSource) labels.Labels {
	b := labels.NewBuilder(labels.EmptyLabels())
	b.Set("__name__", []string{"up", "http_requests_total", "mem_bytes"}[rng.IntN(3)])
	if rng.IntN(4) > 0 {
		b.Set("job", []string{"api", "db", "api-canary"}[rng.IntN(3)])
	}
	b.Set("instance", fmt.Sprintf("host-%d", rng.IntN(4)))
	if rng.IntN(3) == 0 {
		b.Set("zone", []string{"a", "b", "\x00odd"}[rng.IntN(3)])
	}
	return b.Labels()
}

func TestReplicasHoldIdenticalData(t *testing.T) {
	seed := seedFromEnv(t)
	batches := randomBatches(t, seed, 60)
	opts := testOptions(nil)
	opts.Retention = 2 * time.Second
	var dumps [][]string
	for range 2 {
		opts.FS = vfs.NewMem()
		db, g := openTest(t, opts)
		for i, b := range batches {
			apply(t, g, uint64(i+1), b)
			if i == 30 && len(dumps) == 0 { // only the first replica checkpoints midway
				require.NoError(t, g.Checkpoint())
			}
		}
		require.NoError(t, g.Checkpoint())
		dumps = append(dumps, dump(t, db))
	}
	requireSameDump(t, dumps[0], dumps[1])
}

func TestRestartRecoversCheckpointAndReplays(t *testing.T) {
	seed := seedFromEnv(t)
	batches := randomBatches(t, seed, 80)
	opts := testOptions(nil)
	opts.Retention = 2 * time.Second

	// Reference: no restart.
	opts.FS = vfs.NewMem()
	refDB, ref := openTest(t, opts)
	for i, b := range batches {
		apply(t, ref, uint64(i+1), b)
	}
	require.NoError(t, ref.Checkpoint())

	// Restarted twice: once after a checkpoint and more entries (replay
	// from the checkpoint), once with no checkpoint since the last one.
	fs := vfs.NewMem()
	opts.FS = fs
	db, err := Open(opts)
	require.NoError(t, err)
	g, idx, err := db.OpenGroup(7)
	require.NoError(t, err)
	require.Zero(t, idx)
	for i := range 40 {
		apply(t, g, uint64(i+1), batches[i])
		if i == 24 {
			require.NoError(t, g.Checkpoint())
		}
	}
	require.NoError(t, db.Close())
	for _, restart := range []int{60} {
		db, err = Open(opts)
		require.NoError(t, err)
		g, idx, err = db.OpenGroup(7)
		require.NoError(t, err)
		require.Equal(t, uint64(25), idx, "recovered to the checkpoint")
		for i := idx; i < uint64(restart); i++ {
			apply(t, g, i+1, batches[i])
		}
		require.NoError(t, db.Close())
	}
	db, err = Open(opts)
	require.NoError(t, err)
	defer db.Close()
	g, idx, err = db.OpenGroup(7)
	require.NoError(t, err)
	require.Equal(t, uint64(25), idx)
	for i := idx; i < uint64(len(batches)); i++ {
		apply(t, g, i+1, batches[i])
	}
	require.NoError(t, g.Checkpoint())
	requireSameDump(t, dump(t, refDB), dump(t, db))
	for _, tenant := range []string{"alpha", "beta"} {
		require.Equal(t, selectAll(t, ref, tenant, math.MinInt64, math.MaxInt64), selectAll(t, g, tenant, math.MinInt64, math.MaxInt64))
	}
	// And after a checkpoint the restart recovers exactly.
	require.NoError(t, db.Close())
	db2, err := Open(opts)
	require.NoError(t, err)
	defer db2.Close()
	g2, idx, err := db2.OpenGroup(7)
	require.NoError(t, err)
	require.Equal(t, uint64(len(batches)), idx)
	require.Equal(t, selectAll(t, ref, "alpha", math.MinInt64, math.MaxInt64), selectAll(t, g2, "alpha", math.MinInt64, math.MaxInt64))
}

func TestSelectMatchers(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	var series []labels.Labels
	for _, s := range []string{
		`{__name__="up", job="api", instance="a"}`,
		`{__name__="up", job="api-canary", instance="b"}`,
		`{__name__="up", instance="c"}`,
		`{__name__="errors_total", job="db", instance="a"}`,
		`{__name__="errors_total", job="foo\x00bar", instance="a"}`,
	} {
		l, err := parseLabels(s)
		require.NoError(t, err)
		series = append(series, l)
	}
	bb := write.NewBuilder("t")
	for i, l := range series {
		require.NoError(t, bb.Add(l, []write.Sample{{T: int64(i), V: 1}, {T: int64(1500 + i), V: 2}}))
	}
	apply(t, g, 1, bb.Batch())
	apply(t, g, 2, buildBatch(t, "other", series[0], []write.Sample{{T: 1, V: 1}}))
	m := labels.MustNewMatcher
	for _, tc := range []struct {
		name string
		ms   []*labels.Matcher
		want []int
	}{
		{"name", []*labels.Matcher{m(labels.MatchEqual, "__name__", "up")}, []int{0, 1, 2}},
		{"and", []*labels.Matcher{m(labels.MatchEqual, "__name__", "up"), m(labels.MatchEqual, "job", "api")}, []int{0}},
		{"absent label", []*labels.Matcher{m(labels.MatchEqual, "job", "")}, []int{2}},
		{"not equal includes absent", []*labels.Matcher{m(labels.MatchNotEqual, "job", "api")}, []int{1, 2, 3, 4}},
		{"has label", []*labels.Matcher{m(labels.MatchNotEqual, "job", "")}, []int{0, 1, 3, 4}},
		{"regex set", []*labels.Matcher{m(labels.MatchRegexp, "job", "api|db")}, []int{0, 3}},
		{"regex prefix", []*labels.Matcher{m(labels.MatchRegexp, "job", "api.*")}, []int{0, 1}},
		{"regex general", []*labels.Matcher{m(labels.MatchRegexp, "job", ".*a.*")}, []int{0, 1, 4}},
		{"regex matching empty", []*labels.Matcher{m(labels.MatchRegexp, "job", "db|")}, []int{2, 3}},
		{"not regex", []*labels.Matcher{m(labels.MatchNotRegexp, "job", "api.*")}, []int{2, 3, 4}},
		{"not regex set", []*labels.Matcher{m(labels.MatchNotRegexp, "job", "api|db")}, []int{1, 2, 4}},
		{"not regex matching nonempty", []*labels.Matcher{m(labels.MatchNotRegexp, "job", "")}, []int{0, 1, 3, 4}},
		{"any name", []*labels.Matcher{m(labels.MatchRegexp, "__name__", ".+")}, []int{0, 1, 2, 3, 4}},
		{"nul byte value", []*labels.Matcher{m(labels.MatchEqual, "job", "foo\x00bar")}, []int{4}},
		{"no match", []*labels.Matcher{m(labels.MatchEqual, "job", "nope")}, nil},
		{"unknown name negative", []*labels.Matcher{m(labels.MatchNotEqual, "nope", "x"), m(labels.MatchEqual, "instance", "a")}, []int{0, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := selectAll(t, g, "t", math.MinInt64, math.MaxInt64, tc.ms...)
			var want []string
			for _, i := range tc.want {
				want = append(want, series[i].String())
			}
			var names []string
			for _, s := range got {
				names = append(names, s.lset)
				require.Len(t, s.samples, 2)
			}
			require.ElementsMatch(t, want, names)
			// Partition-restricted: [1000, 2000] holds only the second samples.
			for _, s := range selectAll(t, g, "t", 1000, 2000, tc.ms...) {
				require.Len(t, s.samples, 1)
			}
		})
	}

	q, err := g.Querier("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ctx := context.Background()
	names, _, err := q.LabelNames(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "instance", "job"}, names)
	vals, _, err := q.LabelValues(ctx, "job", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"api", "api-canary", "db", "foo\x00bar"}, vals)
	vals, _, err = q.LabelValues(ctx, "instance", nil, m(labels.MatchEqual, "__name__", "errors_total"))
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, vals)
	vals, _, err = q.LabelValues(ctx, "job", &storage.LabelHints{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"api", "api-canary"}, vals)
	names, _, err = q.LabelNames(ctx, nil, m(labels.MatchEqual, "job", ""))
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "instance"}, names)

	// Unknown tenant: empty, no error.
	require.Empty(t, selectAll(t, g, "nobody", math.MinInt64, math.MaxInt64))
}

func parseLabels(s string) (labels.Labels, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	b := labels.NewBuilder(labels.EmptyLabels())
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return labels.EmptyLabels(), fmt.Errorf("bad label %q", kv)
		}
		b.Set(k, strings.ReplaceAll(strings.Trim(v, `"`), `\x00`, "\x00"))
	}
	return b.Labels(), nil
}

var _ = pebble.Sync

func TestRetentionDeletesPartitions(t *testing.T) {
	opts := testOptions(vfs.NewMem())
	opts.Retention = 3 * time.Second
	db, g := openTest(t, opts)
	idle := labels.FromStrings("__name__", "idle")
	apply(t, g, 1, buildBatch(t, "t", idle, []write.Sample{{T: 100, V: 1}, {T: 200, V: 1}}))
	for i := range 10 {
		ts := int64(i) * 1000
		apply(t, g, uint64(i+2), buildBatch(t, "t", labels.FromStrings("__name__", "busy"),
			[]write.Sample{{T: ts + 300, V: 1}, {T: ts + 400, V: 1}, {T: ts + 500, V: 1}, {T: ts + 600, V: 1}, {T: ts + 700, V: 1}}))
	}
	// maxT 9700: keep partitions from floor(6700/1000) = 6.
	parts := map[byte][]uint32{}
	for _, kv := range dump(t, db) {
		k, _, _ := strings.Cut(kv, "=")
		var b []byte
		_, err := fmt.Sscanf(k, "%x", &b)
		require.NoError(t, err)
		if kind := b[prefixLen-1]; kind == kindChunk || kind == kindPostings {
			parts[kind] = append(parts[kind], binary.BigEndian.Uint32(b[prefixLen:]))
		}
	}
	for kind, ps := range parts {
		for _, p := range ps {
			require.GreaterOrEqual(t, p, partitionOf(6000, 1000), "kind %c", kind)
		}
	}
	require.NotEmpty(t, parts[kindChunk])
	got := selectAll(t, g, "t", math.MinInt64, math.MaxInt64)
	require.Len(t, got, 1, "the idle series' open chunk is past retention too")
	require.Equal(t, int64(6300), got[0].samples[0].T)
}

// TestConcurrentApplyAndQuery runs selects and label queries while batches
// are applied and checkpointed (run with -race). A select sees every sample
// of the entries applied before it started.
func TestConcurrentApplyAndQuery(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	batches := randomBatches(t, 1, 200)
	done := make(chan struct{})
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			ctx := context.Background()
			for {
				select {
				case <-done:
					errc <- nil
					return
				default:
				}
				q, err := g.Querier("alpha", math.MinInt64, math.MaxInt64)
				if err != nil {
					errc <- err
					return
				}
				ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
				for ss.Next() {
					it := ss.At().Iterator(nil)
					prev := int64(math.MinInt64)
					for it.Next() != 0 {
						if ts := it.AtT(); ts <= prev {
							errc <- fmt.Errorf("samples not increasing: %d after %d", ts, prev)
							return
						} else {
							prev = ts
						}
					}
					if it.Err() != nil {
						errc <- it.Err()
						return
					}
				}
				if _, _, err := q.LabelValues(ctx, "job", nil); err != nil {
					errc <- err
					return
				}
				if err := errors.Join(ss.Err(), q.Close()); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for i, b := range batches {
		apply(t, g, uint64(i+1), b)
		if i%50 == 0 {
			require.NoError(t, g.Checkpoint())
		}
	}
	close(done)
	for range 2 {
		require.NoError(t, <-errc)
	}
}

func TestSnapshotRestore(t *testing.T) {
	// With an out-of-order window too: the snapshot holds sealed chunks
	// that out-of-order samples and histograms changed, and the open
	// chunks they went into.
	for _, windowMs := range []int64{0, 700} {
		t.Run(fmt.Sprintf("window=%dms", windowMs), func(t *testing.T) { snapshotRestore(t, windowMs) })
	}
}

func snapshotRestore(t *testing.T, windowMs int64) {
	seed := seedFromEnv(t)
	batches := randomBatches(t, seed, 100)
	if windowMs > 0 {
		withWindow(seed, batches, windowMs)
	}
	opts := testOptions(nil)
	opts.Retention = 2 * time.Second
	opts.FS = vfs.NewMem()
	srcDB, src := openTest(t, opts)
	opts.FS = vfs.NewMem()
	dstDB, dst := openTest(t, opts)
	// The destination has other data of the group, which Restore replaces,
	// and of another group, which it keeps.
	apply(t, dst, 1, batches[7])
	other, _, err := dstDB.OpenGroup(8)
	require.NoError(t, err)
	apply(t, other, 1, batches[0])
	otherBefore := selectAll(t, other, batches[0].Tenant, math.MinInt64, math.MaxInt64)

	for i, b := range batches[:60] {
		apply(t, src, uint64(i+1), b)
	}
	var buf bytes.Buffer
	require.NoError(t, src.Snapshot(&buf))
	require.NoError(t, dst.Restore(bytes.NewReader(buf.Bytes())))
	require.Equal(t, uint64(60), dst.AppliedIndex())
	for i := 60; i < len(batches); i++ {
		for _, g := range []*Group{src, dst} {
			apply(t, g, uint64(i+1), batches[i])
		}
	}
	require.NoError(t, src.Checkpoint())
	require.NoError(t, dst.Checkpoint())
	group := func(d []string) []string { // keys of group 7 only
		var out []string
		for _, kv := range d {
			if strings.HasPrefix(kv, "00000007") {
				out = append(out, kv)
			}
		}
		return out
	}
	requireSameDump(t, group(dump(t, srcDB)), group(dump(t, dstDB)))
	for _, tenant := range []string{"alpha", "beta"} {
		require.Equal(t, selectAll(t, src, tenant, math.MinInt64, math.MaxInt64), selectAll(t, dst, tenant, math.MinInt64, math.MaxInt64))
	}
	require.Equal(t, otherBefore, selectAll(t, other, batches[0].Tenant, math.MinInt64, math.MaxInt64))

	for _, bad := range [][]byte{nil, {2}, {1}, {1, 5, 'a'}, buf.Bytes()[:buf.Len()/2]} {
		require.Error(t, dst.Restore(bytes.NewReader(bad)))
	}
}

func TestUseAfterClose(t *testing.T) {
	db, err := Open(testOptions(vfs.NewMem()))
	require.NoError(t, err)
	g, _, err := db.OpenGroup(1)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.NoError(t, db.Close(), "idempotent")
	_, err = g.Apply(1, write.Append(nil, buildBatch(t, "t", labels.FromStrings("a", "b"), []write.Sample{{T: 1, V: 1}})))
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, g.Checkpoint(), ErrClosed)
	_, err = g.Querier("t", 0, 1)
	require.ErrorIs(t, err, ErrClosed)
	_, _, err = db.OpenGroup(2)
	require.ErrorIs(t, err, ErrClosed)
}

func TestDropGroup(t *testing.T) {
	db, g := openTest(t, testOptions(vfs.NewMem()))
	other, _, err := db.OpenGroup(8)
	require.NoError(t, err)
	b := buildBatch(t, "t", labels.FromStrings("a", "b"), []write.Sample{{T: 1, V: 1}})
	apply(t, g, 1, b)
	apply(t, other, 1, b)
	require.NoError(t, g.Checkpoint())
	require.NoError(t, db.DropGroup(7))
	_, err = g.Apply(2, write.Append(nil, b))
	require.Error(t, err, "a dropped group refuses applies")
	g2, idx, err := db.OpenGroup(7)
	require.NoError(t, err)
	require.Zero(t, idx)
	require.Empty(t, selectAll(t, g2, "t", math.MinInt64, math.MaxInt64))
	require.Len(t, selectAll(t, other, "t", math.MinInt64, math.MaxInt64), 1)
	for _, kv := range dump(t, db) {
		if kv == fmt.Sprintf("000000070000000066=%02x", formatVersion) { // written by OpenGroup(7) above
			continue
		}
		require.False(t, strings.HasPrefix(kv, "00000007"), "key of the dropped group: %s", kv)
	}
}

// TestEvictReviveEvictReplay: a series evicted at entry 2, revived at 4 and
// evicted again at 6; a restart recovers the checkpoint at 3 and replays
// 4..6. The replay of 4 must see the eviction of 2 (not ignore it because
// the newest eviction record is from 6), or it accepts a sample the
// original run refused.
func TestEvictReviveEvictReplay(t *testing.T) {
	opts := testOptions(nil)
	opts.Partition = time.Hour
	opts.EvictIdle = 4 * time.Second
	x := labels.FromStrings("__name__", "x")
	y := labels.FromStrings("__name__", "y")
	entries := []*write.Batch{
		buildBatch(t, "t", x, []write.Sample{{T: 1000, V: 1}}, y, []write.Sample{{T: 1000, V: 1}}),
		buildBatch(t, "t", y, []write.Sample{{T: 10_000, V: 1}}), // x idle: evicted
		buildBatch(t, "t", y, []write.Sample{{T: 11_000, V: 1}}),
		buildBatch(t, "t", x, []write.Sample{{T: 500, V: 2}, {T: 12_000, V: 2}}), // 500 is out of order
		buildBatch(t, "t", y, []write.Sample{{T: 20_000, V: 1}}),
		buildBatch(t, "t", y, []write.Sample{{T: 30_000, V: 1}}), // x evicted again
	}
	run := func(restart bool) (*DB, [][]string) {
		opts.FS = vfs.NewMem()
		db, err := Open(opts)
		require.NoError(t, err)
		g, _, err := db.OpenGroup(7)
		require.NoError(t, err)
		var errs [][]string
		for i, b := range entries {
			e, err := g.ApplyBatch(uint64(i+1), b)
			require.NoError(t, err)
			errs = append(errs, errKinds(e))
			if restart && i+1 == 3 {
				require.NoError(t, g.Checkpoint())
			}
		}
		if restart {
			require.NoError(t, db.Close())
			db, err = Open(opts)
			require.NoError(t, err)
			var from uint64
			g, from, err = db.OpenGroup(7)
			require.NoError(t, err)
			require.Equal(t, uint64(3), from)
			for i := from; i < uint64(len(entries)); i++ {
				e, err := g.ApplyBatch(i+1, entries[i])
				require.NoError(t, err)
				require.Equal(t, errs[i], errKinds(e), "replay of entry %d", i+1)
			}
		}
		require.NoError(t, g.Checkpoint())
		return db, errs
	}
	ref, errs := run(false)
	defer ref.Close()
	require.Equal(t, []string{"0:1:out-of-order"}, errs[3])
	db, _ := run(true)
	defer db.Close()
	requireSameDump(t, dump(t, ref), dump(t, db))
}

// TestFormatCheck: a group written in another on-disk format, or before
// the format key existed, is refused with ErrFormat instead of misread.
func TestFormatCheck(t *testing.T) {
	fs := vfs.NewMem()
	db, g := openTest(t, testOptions(fs))
	apply(t, g, 1, buildBatch(t, "t", labels.FromStrings("a", "b"), []write.Sample{{T: 1, V: 1}}))
	require.NoError(t, g.Checkpoint())
	for _, tc := range []struct {
		name  string
		value []byte // nil: delete the key
	}{
		{"other version", []byte{1}},
		{"no format key", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := groupKey(nil, 9, kindFormat)
			g9, _, err := db.OpenGroup(9)
			require.NoError(t, err)
			apply(t, g9, 1, buildBatch(t, "t", labels.FromStrings("a", "b"), []write.Sample{{T: 1, V: 1}}))
			require.NoError(t, g9.Checkpoint())
			if tc.value == nil {
				require.NoError(t, db.pdb.Delete(key, pebble.NoSync))
			} else {
				require.NoError(t, db.pdb.Set(key, tc.value, pebble.NoSync))
			}
			db.mu.Lock()
			delete(db.mu.groups, 9) // forget it, as a restart would
			db.mu.Unlock()
			_, _, err = db.OpenGroup(9)
			require.ErrorIs(t, err, ErrFormat)
			require.NoError(t, db.DropGroup(9))
		})
	}
	for _, from := range []byte{2, 3} {
		t.Run(fmt.Sprintf("version %d upgraded", from), func(t *testing.T) {
			// Version 2 groups (sealed histogram chunks in Prometheus's
			// encodings) and 3 open; their 'o' values (version 1: no
			// version or flags byte) are rewritten to version 2 with the
			// appended flag set, with the format byte.
			key := groupKey(nil, 9, kindFormat)
			g9, _, err := db.OpenGroup(9)
			require.NoError(t, err)
			x, y := labels.FromStrings("a", "b"), labels.FromStrings("a", "c")
			apply(t, g9, 1, buildBatch(t, "t", x, []write.Sample{{T: 1, V: 1}}, y, []write.Sample{{T: 1, V: 2}, {T: 2, V: 3}}))
			apply(t, g9, 2, buildBatch(t, "u", x, []write.Sample{{T: 1, V: 4}}))
			require.NoError(t, g9.Checkpoint())
			want := map[string][]seriesSamples{}
			for _, tenant := range []string{"t", "u"} {
				want[tenant] = selectAll(t, g9, tenant, math.MinInt64, math.MaxInt64)
			}
			// Write the open chunks as a binary of format 3 did.
			opens := map[string][]byte{}
			it, err := db.pdb.NewIter(nil)
			require.NoError(t, err)
			for it.First(); it.Valid(); it.Next() {
				k := it.Key()
				if len(k) == prefixLen+8 && binary.BigEndian.Uint32(k) == 9 && k[prefixLen-1] == kindOpen {
					v := it.Value()
					require.Equal(t, openVersion, v[0])
					opens[string(k)] = append([]byte(nil), v[2:]...)
				}
			}
			require.NoError(t, it.Close())
			require.Len(t, opens, 3)
			for k, v := range opens {
				require.NoError(t, db.pdb.Set([]byte(k), v, pebble.NoSync))
			}
			require.NoError(t, db.pdb.Set(key, []byte{from}, pebble.NoSync))
			// A snapshot of the old group (a leader still on the old
			// binary) restored here is upgraded alike.
			var snap bytes.Buffer
			require.NoError(t, g9.Snapshot(&snap))
			g10, _, err := db.OpenGroup(10)
			require.NoError(t, err)
			require.NoError(t, g10.Restore(bytes.NewReader(snap.Bytes())))
			db.mu.Lock()
			delete(db.mu.groups, 9)
			db.mu.Unlock()
			g9, _, err = db.OpenGroup(9)
			require.NoError(t, err)
			v, closer, err := db.pdb.Get(key)
			require.NoError(t, err)
			require.Equal(t, []byte{formatVersion}, v)
			require.NoError(t, closer.Close())
			for k, old := range opens {
				v, closer, err := db.pdb.Get([]byte(k))
				require.NoError(t, err)
				require.Equal(t, append([]byte{openVersion, openAppended}, old...), v)
				require.NoError(t, closer.Close())
				k10 := append(binary.BigEndian.AppendUint32(nil, 10), k[4:]...)
				v, closer, err = db.pdb.Get(k10)
				require.NoError(t, err, "restored group 10")
				require.Equal(t, append([]byte{openVersion, openAppended}, old...), v, "restored group 10")
				require.NoError(t, closer.Close())
			}
			v, closer, err = db.pdb.Get(groupKey(nil, 10, kindFormat))
			require.NoError(t, err)
			require.Equal(t, []byte{formatVersion}, v, "restored group 10")
			require.NoError(t, closer.Close())
			for _, tenant := range []string{"t", "u"} {
				require.Equal(t, want[tenant], selectAll(t, g9, tenant, math.MinInt64, math.MaxInt64))
				require.Equal(t, want[tenant], selectAll(t, g10, tenant, math.MinInt64, math.MaxInt64), "restored group 10")
				g9.mu.Lock()
				tn := g9.mu.tenants[tenant]
				g9.mu.Unlock()
				tn.mu.Lock()
				for _, s := range tn.mu.byHash {
					for ; s != nil; s = s.next {
						require.True(t, s.appended, "series %d of %s: an old record reads as appended", s.id, tenant)
					}
				}
				tn.mu.Unlock()
			}
			require.NoError(t, db.DropGroup(9))
			require.NoError(t, db.DropGroup(10))
		})
	}
}

// TestMergeRunsAcrossRestarts: sealed chunks merge in runs of MergeChunks,
// and a replica that checkpoints and restarts mid-run (or replays entries
// whose merges already reached Pebble) stores the same bytes as one that
// never stopped.
func TestMergeRunsAcrossRestarts(t *testing.T) {
	opts := testOptions(nil)
	opts.ChunkSamples, opts.MergeChunks, opts.Partition = 2, 3, time.Hour
	var batches []*write.Batch
	for i := range 40 {
		smp := []write.Sample{{T: int64(i) * 1000, V: float64(i % 3)}}
		if i%7 == 0 { // some entries seal twice
			smp = append(smp, write.Sample{T: int64(i)*1000 + 500, V: 1})
		}
		batches = append(batches, buildBatch(t, "t",
			labels.FromStrings("__name__", "a"), smp,
			labels.FromStrings("__name__", "b"), []write.Sample{{T: int64(i) * 1000, V: 2}}))
	}
	opts.FS = vfs.NewMem()
	refDB, ref := openTest(t, opts)
	for i, b := range batches {
		apply(t, ref, uint64(i+1), b)
	}
	require.NoError(t, ref.Checkpoint())
	want := dump(t, refDB)
	var chunks []string
	for _, kv := range want {
		if kv[16:18] == "63" { // kind 'c' after group and tenant
			chunks = append(chunks, kv)
		}
	}
	// Series a: 46 samples in 23 chunks of 2, 22 sealed: 7 runs of 3 and
	// one open run of 1. Series b: 40 samples, 19 sealed: 6 runs and 1.
	require.Len(t, chunks, 8+7, "merged chunk keys")

	for _, cp := range []int{3, 5, 10, 17} { // checkpoint after entry cp, then crash later
		t.Run(fmt.Sprint("checkpoint at ", cp), func(t *testing.T) {
			opts.FS = vfs.NewMem()
			db, err := Open(opts)
			require.NoError(t, err)
			g, _, err := db.OpenGroup(7)
			require.NoError(t, err)
			for i := range cp + 6 {
				apply(t, g, uint64(i+1), batches[i])
				if i+1 == cp {
					require.NoError(t, g.Checkpoint())
				}
			}
			require.NoError(t, db.Close()) // later applies reached Pebble, not the checkpoint
			db, err = Open(opts)
			require.NoError(t, err)
			defer db.Close()
			g, idx, err := db.OpenGroup(7)
			require.NoError(t, err)
			require.Equal(t, uint64(cp), idx)
			for i := idx; i < uint64(len(batches)); i++ {
				apply(t, g, i+1, batches[i])
			}
			require.NoError(t, g.Checkpoint())
			requireSameDump(t, want, dump(t, db))
			require.Equal(t, selectAll(t, ref, "t", math.MinInt64, math.MaxInt64), selectAll(t, g, "t", math.MinInt64, math.MaxInt64))
		})
	}
}
