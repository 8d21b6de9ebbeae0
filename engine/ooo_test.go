package engine

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/write"
)

// smps builds samples from time, value pairs.
func smps(tv ...float64) []write.Sample {
	var out []write.Sample
	for i := 0; i+1 < len(tv); i += 2 {
		out = append(out, write.Sample{T: int64(tv[i]), V: tv[i+1]})
	}
	return out
}

// TestOutOfOrderWindow: the rules of the window, one case each, checked
// through both read paths and again after a restart.
func TestOutOfOrderWindow(t *testing.T) {
	up, other := labels.FromStrings("__name__", "up"), labels.FromStrings("__name__", "other")
	every100 := func(from, to int64) []write.Sample {
		var out []write.Sample
		for ts := from; ts <= to; ts += 100 {
			out = append(out, write.Sample{T: ts, V: float64(ts)})
		}
		return out
	}
	with := func(s []write.Sample, add ...write.Sample) []write.Sample {
		out := append(slices.Clone(s), add...)
		slices.SortFunc(out, func(a, b write.Sample) int { return int(a.T - b.T) })
		return out
	}
	for _, tc := range []struct {
		name     string
		windowMs int64
		first    []write.Sample // applied first, in order
		other    []write.Sample // of another series of the tenant, with first
		then     []write.Sample
		refused  string // text of the first refusal of then, "" for none
		sentinel error
		rejected int
		want     []write.Sample
	}{
		{"no window", 0, smps(1000, 1, 2000, 2), nil, smps(1500, 3), "sample 0 at 1500: write: out-of-order sample", write.ErrOutOfOrder, 1, smps(1000, 1, 2000, 2)},
		{"into the open chunk", 1000, smps(1000, 1, 2000, 2), nil, smps(1500, 3, 1200, 4), "", nil, 0, smps(1000, 1, 1200, 4, 1500, 3, 2000, 2)},
		{"beyond the window", 600_000, smps(0, 1, 700_000, 2), nil, smps(50_000, 3),
			"sample 0 at 50000: write: out-of-order sample: the sample has been rejected because another sample with a more recent timestamp " +
				"has already been ingested and this sample is beyond the out-of-order time window of 10m (err-mimir-sample-timestamp-too-old)",
			write.ErrOutOfOrder, 1, smps(0, 1, 700_000, 2)},
		{"the window's edge", 1000, smps(0, 0, 2000, 2), nil, smps(1000, 1, 999, 9), "sample 1 at 999", write.ErrOutOfOrder, 1, smps(0, 0, 1000, 1, 2000, 2)},
		{"duplicate", 1000, smps(1000, 1, 2000, 2), nil, smps(1000, 5), "sample 0 at 1000: write: duplicate sample for timestamp", write.ErrDuplicateSample, 1, smps(1000, 1, 2000, 2)},
		{"retry", 1000, smps(1000, 1, 2000, 2), nil, smps(1000, 1), "", nil, 0, smps(1000, 1, 2000, 2)},
		{"duplicate in a sealed chunk", 5000, every100(100, 900), nil, smps(200, 7), "duplicate sample for timestamp", write.ErrDuplicateSample, 1, every100(100, 900)},
		{"into sealed chunks", 5000, every100(100, 900), nil, smps(150, 1.5, 50, 0.5, 350, 3.5, 120, 1.2), "", nil, 0,
			with(every100(100, 900), smps(50, 0.5, 120, 1.2, 150, 1.5, 350, 3.5)...)},
		{"into an earlier partition", 5000, every100(500, 2500), nil, smps(450, 4.5, 1050, 10.5, 999, 9.99), "", nil, 0,
			with(every100(500, 2500), smps(450, 4.5, 999, 9.99, 1050, 10.5)...)},
		{"a backfill in one batch", 5000, every100(100, 2000), nil,
			append(smps(1050, 10.5, 150, 1.5, 250, 2.5, 950, 9.5, 50, 0.5, 60, 0.6, 1150, 11.5, 1250, 1), smps(250, 2.5, 350, 3.5)...), "", nil, 0,
			with(every100(100, 2000), smps(50, 0.5, 60, 0.6, 150, 1.5, 250, 2.5, 350, 3.5, 950, 9.5, 1050, 10.5, 1150, 11.5, 1250, 1)...)},
		{"a duplicate in a backfill", 5000, every100(100, 2000), nil, smps(150, 1.5, 250, 2.5, 150, 7, 350, 3.5), "sample 2 at 150: write: duplicate sample for timestamp",
			write.ErrDuplicateSample, 1, with(every100(100, 2000), smps(150, 1.5, 250, 2.5, 350, 3.5)...)},
		{"into a partition without samples", 5000, smps(100, 1, 2100, 21, 2200, 22), nil, smps(1500, 15, 1400, 14, 1600, 16), "", nil, 0,
			smps(100, 1, 1400, 14, 1500, 15, 1600, 16, 2100, 21, 2200, 22)},
		{"the window is from the tenant's newest", 5000, smps(1000, 1, 8000, 2), smps(10_000, 1), smps(4000, 3, 5500, 4), "sample 0 at 4000",
			write.ErrOutOfOrder, 1, smps(1000, 1, 5500, 4, 8000, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(vfs.NewMem())
			db, err := Open(opts)
			require.NoError(t, err)
			defer func() { require.NoError(t, db.Close()) }()
			g, _, err := db.OpenGroup(7)
			require.NoError(t, err)
			b := buildBatch(t, "t", up, tc.first)
			if tc.other != nil {
				b = buildBatch(t, "t", up, tc.first, other, tc.other)
			}
			require.Empty(t, apply(t, g, 1, b))
			b = buildBatch(t, "t", up, tc.then)
			b.OutOfOrderWindowMs = tc.windowMs
			errs := apply(t, g, 2, b)
			if tc.refused == "" {
				require.Empty(t, errs)
			} else {
				require.Len(t, errs, 1)
				require.Contains(t, errs[0].Err.Error(), tc.refused)
				require.ErrorIs(t, errs[0].Err, tc.sentinel, "%v", errs[0].Err)
				require.Equal(t, tc.rejected, errs[0].Rejected)
			}
			check := func(what string) {
				want := []seriesSamples{{up.String(), tc.want, nil}}
				require.Equal(t, want, selectAll(t, g, "t", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")), what)
				require.Equal(t, want, selectFrom(t, pebbleQuerier(t, g, "t", math.MinInt64, math.MaxInt64), labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")), what)
				requireNoOverlap(t, db)
			}
			check("after apply")
			require.NoError(t, g.Checkpoint())
			require.NoError(t, db.Close())
			db, err = Open(opts)
			require.NoError(t, err)
			g, _, err = db.OpenGroup(7)
			require.NoError(t, err)
			check("after a restart")
		})
	}
}

// TestOutOfOrderEvicted: a series evicted from the head (its open chunk
// sealed, its newest sample in an 'e' record) takes out-of-order samples
// within the window into its sealed chunks without coming back into the
// head count, the same on a replica that restarted in between.
func TestOutOfOrderEvicted(t *testing.T) {
	for _, restart := range []bool{false, true} {
		opts := testOptions(vfs.NewMem())
		db, err := Open(opts)
		require.NoError(t, err)
		g, _, err := db.OpenGroup(7)
		require.NoError(t, err)
		up, other := labels.FromStrings("__name__", "up"), labels.FromStrings("__name__", "other")
		require.Empty(t, apply(t, g, 1, buildBatch(t, "t", up, smps(1000, 1, 1500, 1.5, 2000, 2), other, smps(2000, 2))))
		// The scan after entry 1 keeps up (just written), the next one
		// evicts it.
		require.Empty(t, apply(t, g, 2, buildBatch(t, "t", other, smps(6000, 6))))
		require.Equal(t, 1, g.Stats()[0].HeadSeries, "up is evicted (EvictIdle 3s)")
		if restart {
			require.NoError(t, g.Checkpoint())
			require.NoError(t, db.Close())
			db, err = Open(opts)
			require.NoError(t, err)
			g, _, err = db.OpenGroup(7)
			require.NoError(t, err)
		}
		b := buildBatch(t, "t", up, smps(1250, 1.25, 1500, 1.5, 1500, 9, 900, 0.9))
		b.OutOfOrderWindowMs = 5500
		errs := apply(t, g, 3, b)
		require.Len(t, errs, 1)
		require.Equal(t, 1, errs[0].Rejected)
		require.ErrorIs(t, errs[0].Err, write.ErrDuplicateSample)
		require.Equal(t, 1, g.Stats()[0].HeadSeries)
		want := []seriesSamples{{up.String(), smps(900, 0.9, 1000, 1, 1250, 1.25, 1500, 1.5, 2000, 2), nil}}
		require.Equal(t, want, selectAll(t, g, "t", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")))
		require.Equal(t, want, selectFrom(t, pebbleQuerier(t, g, "t", math.MinInt64, math.MaxInt64), labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")))
		requireNoOverlap(t, db)
		// An in-order sample brings it back.
		require.Empty(t, apply(t, g, 4, buildBatch(t, "t", up, smps(6100, 61))))
		require.Equal(t, 2, g.Stats()[0].HeadSeries)
		require.NoError(t, db.Close())
	}
}

// requireNoOverlap checks the INVARIANT of ooo.go on every stored chunk:
// the chunks of a series in a partition decode to samples in key order,
// each from its key's mint to its value's maxt, and never overlap.
func requireNoOverlap(t testing.TB, db *DB) {
	t.Helper()
	it, err := db.pdb.NewIter(nil)
	require.NoError(t, err)
	defer it.Close()
	var prevSeries []byte
	prevMaxt := int64(math.MinInt64)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != prefixLen+4+8+8 || k[prefixLen-1] != kindChunk {
			continue
		}
		series, mint := k[:len(k)-8], readTime(k[len(k)-8:])
		d, n := binary.Uvarint(it.Value())
		require.Positive(t, n)
		maxt := mint + int64(d)
		if string(series) == string(prevSeries) {
			require.Greater(t, mint, prevMaxt, "chunk %x overlaps the one before", k)
		}
		prevSeries, prevMaxt = append(prevSeries[:0], series...), maxt
		var ts []int64
		if data := it.Value()[n:]; isHistChunk(data) {
			var hi histIters
			hit, err := hi.iterator(data)
			require.NoError(t, err)
			smps, err := readHistSamples(nil, hit)
			require.NoError(t, err)
			for _, x := range smps {
				ts = append(ts, x.t)
			}
		} else {
			var err error
			ts, _, err = chunkenc.Decode(nil, nil, data)
			require.NoError(t, err)
		}
		require.Equal(t, mint, ts[0], "chunk %x", k)
		require.Equal(t, maxt, ts[len(ts)-1], "chunk %x", k)
		require.True(t, slices.IsSorted(ts))
	}
	require.NoError(t, it.Error())
}

// TestOutOfOrderDense: a few series, most samples out of order within
// the window, small chunks and partitions, against a brute-force map of
// every accepted sample; with checkpoints and restarts that replay from
// the checkpoint over a store that holds what later entries wrote, and a
// replica that never restarted holding the same bytes at the end.
func TestOutOfOrderDense(t *testing.T) {
	seed := seedFromEnv(t)
	rng := newRand(seed)
	const windowMs = 1500
	opts := testOptions(vfs.NewMem())
	opts.ChunkSamples = 3
	opts.MergeChunks = 3
	names := []string{"a", "b", "c"}
	var batches []*write.Batch
	ts := int64(0)
	for range 300 {
		bb := write.NewBuilder("t")
		for _, name := range names {
			var s []write.Sample
			for range rng.IntN(4) {
				ts += int64(rng.IntN(40))
				st := ts
				if rng.IntN(3) > 0 {
					st -= int64(rng.IntN(2 * windowMs)) // half in the window
				}
				s = append(s, write.Sample{T: max(0, st), V: float64(rng.IntN(3))})
			}
			require.NoError(t, bb.Add(labels.FromStrings("__name__", name), s))
		}
		b := bb.Batch()
		b.OutOfOrderWindowMs = windowMs
		batches = append(batches, b)
	}
	// The brute force: accepted samples by series and time.
	want := map[string]map[int64]float64{}
	maxT := int64(math.MinInt64)
	newest := map[string]int64{}
	wantRefused := make([]int, len(batches))
	for i, b := range batches {
		for j := range b.Series {
			name := names[j]
			if want[name] == nil {
				want[name] = map[int64]float64{}
			}
			for _, smp := range b.Series[j].Samples {
				last, ok := newest[name]
				// Beyond the window is refused before the duplicate check,
				// as Prometheus's appender does.
				switch v, dup := want[name][smp.T]; {
				case ok && smp.T < last && maxT-smp.T > windowMs:
					wantRefused[i]++
				case dup && math.Float64bits(v) == math.Float64bits(smp.V):
				case dup:
					wantRefused[i]++
				default:
					want[name][smp.T] = smp.V
					maxT, newest[name] = max(maxT, smp.T), max(last, smp.T)
					if !ok {
						newest[name] = smp.T
					}
				}
			}
		}
	}

	db, err := Open(opts)
	require.NoError(t, err)
	g, _, err := db.OpenGroup(7)
	require.NoError(t, err)
	accepted := 0
	for i, b := range batches {
		errs := apply(t, g, uint64(i+1), b)
		refused := 0
		for _, e := range errs {
			refused += e.Rejected
		}
		if wantRefused[i] != refused {
			for j := range b.Series {
				t.Logf("series %s: %v", names[j], b.Series[j].Samples)
			}
		}
		require.Equal(t, wantRefused[i], refused, "batch %d: %v", i, errs)
		accepted += b.NumSamples() - refused
		switch rng.IntN(20) {
		case 0:
			require.NoError(t, g.Checkpoint())
		case 1:
			if rng.IntN(2) == 0 {
				require.NoError(t, g.Checkpoint())
			}
			require.NoError(t, db.Close())
			db, err = Open(opts)
			require.NoError(t, err)
			var from uint64
			g, from, err = db.OpenGroup(7)
			require.NoError(t, err)
			for j := from; j <= uint64(i); j++ {
				apply(t, g, j+1, batches[j])
			}
		}
	}
	var wantSel []seriesSamples
	for _, name := range names {
		var s []write.Sample
		for ts, v := range want[name] {
			s = append(s, write.Sample{T: ts, V: v})
		}
		slices.SortFunc(s, func(a, b write.Sample) int { return int(a.T - b.T) })
		wantSel = append(wantSel, seriesSamples{labels.FromStrings("__name__", name).String(), s, nil})
	}
	require.Equal(t, wantSel, selectAll(t, g, "t", math.MinInt64, math.MaxInt64))
	require.Equal(t, wantSel, selectFrom(t, pebbleQuerier(t, g, "t", math.MinInt64, math.MaxInt64)))
	requireNoOverlap(t, db)
	require.NoError(t, g.Checkpoint())

	opts2 := opts
	opts2.FS = vfs.NewMem()
	db2, g2 := openTest(t, opts2)
	for i, b := range batches {
		apply(t, g2, uint64(i+1), b)
	}
	require.NoError(t, g2.Checkpoint())
	requireSameDump(t, dump(t, db2), dump(t, db))
	require.NoError(t, db.Close())
	t.Logf("%d samples accepted of %d", accepted, func() int {
		n := 0
		for _, b := range batches {
			n += b.NumSamples()
		}
		return n
	}())
}

// BenchmarkApplyOutOfOrder measures the cost of an out-of-order sample:
// 1000 series with 250 samples every 15s (two sealed chunks of 120 and
// ten samples in the open one), then batches of one sample per series,
// 7.5s after a scrape: in the open chunk, in the newest sealed chunk, or
// in order (the baseline of the same run); and the same eight samples of
// each series into its sealed chunk in one batch (a backfill). The
// window is 1h.
func BenchmarkApplyOutOfOrder(b *testing.B) {
	const nSeries, rounds, per = 1000, 250, 1000
	lsets := benchLabels(nSeries)
	setup := benchBatches(b, lsets, rounds, per)
	// Batches of every series with a sample of each round, 7.5s after
	// it: a batch per round, or one batch of all rounds (a backfill).
	at := func(rs []int, burst bool) [][]byte {
		sample := func(i, r int) write.Sample {
			return write.Sample{T: int64(1_700_000_000_000) + int64(r)*15000 + 7500, V: float64(r*i%1000) * 1.5}
		}
		var out [][]byte
		emit := func(rs []int) {
			bb := write.NewBuilder("bench")
			for i, lset := range lsets {
				var smp []write.Sample
				for _, r := range rs {
					smp = append(smp, sample(i, r))
				}
				require.NoError(b, bb.Add(lset, smp))
			}
			batch := bb.Batch()
			batch.OutOfOrderWindowMs = time.Hour.Milliseconds()
			out = append(out, write.Append(nil, batch))
		}
		if burst {
			emit(rs)
			return out
		}
		for _, r := range rs {
			emit([]int{r})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		rounds []int
		burst  bool
	}{
		{"in-order", []int{249, 250, 251, 252, 253, 254, 255, 256}, false},
		{"open", []int{240, 241, 242, 243, 244, 245, 246, 247}, false},
		{"sealed", []int{200, 201, 202, 203, 204, 205, 206, 207}, false},
		{"sealed-burst", []int{200, 201, 202, 203, 204, 205, 206, 207}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			batches := at(tc.rounds, tc.burst)
			b.ReportAllocs()
			samples := 0
			for b.Loop() {
				b.StopTimer()
				db, err := Open(Options{Dir: "db", FS: vfs.NewMem()})
				require.NoError(b, err)
				g, _, err := db.OpenGroup(1)
				require.NoError(b, err)
				for i, e := range setup {
					_, err := g.Apply(uint64(i+1), e)
					require.NoError(b, err)
				}
				b.StartTimer()
				for i, e := range batches {
					errs, err := g.Apply(uint64(len(setup)+i+1), e)
					if err != nil || len(errs) > 0 {
						b.Fatal(err, errs)
					}
				}
				samples += nSeries * len(tc.rounds)
				b.StopTimer()
				require.NoError(b, db.Close())
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/sample")
			b.ReportMetric(0, "ns/op")
		})
	}
}
