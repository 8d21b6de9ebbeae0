package engine

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// ch is an integer counter histogram sample of count c (one bucket).
func ch(ts int64, c uint64) write.Histogram {
	return write.Histogram{T: ts, H: &histogram.Histogram{Count: c, Sum: float64(c), ZeroThreshold: 0.001,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(c)}}}
}

// chs builds counter histograms from time, count pairs.
func chs(tc ...int64) []write.Histogram {
	var out []write.Histogram
	for i := 0; i+1 < len(tc); i += 2 {
		out = append(out, ch(tc[i], uint64(tc[i+1])))
	}
	return out
}

// fhist is a float gauge histogram sample.
func fhist(ts int64, c float64) write.Histogram {
	return write.Histogram{T: ts, FH: &histogram.FloatHistogram{CounterResetHint: histogram.GaugeType, Count: c, Sum: c, ZeroThreshold: 0.001,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []float64{c}}}
}

// histHints returns "time:hint" of every histogram sample of the series
// named name, as a reader sees them, through the head's or Pebble's read
// path.
func histHints(t testing.TB, g *Group, name string, pebbleOnly bool) []string {
	t.Helper()
	qr := pebbleQuerier(t, g, "t", math.MinInt64, math.MaxInt64)
	if !pebbleOnly {
		var err error
		qr, err = g.Querier("t", math.MinInt64, math.MaxInt64)
		require.NoError(t, err)
	}
	defer qr.Close()
	ss := qr.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	var out []string
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for vt := it.Next(); vt != promchunk.ValNone; vt = it.Next() {
			switch vt {
			case promchunk.ValHistogram:
				ts, h := it.AtHistogram(nil)
				out = append(out, fmt.Sprintf("%d:%d", ts, h.CounterResetHint))
			case promchunk.ValFloatHistogram:
				ts, h := it.AtFloatHistogram(nil)
				out = append(out, fmt.Sprintf("%d:%d", ts, h.CounterResetHint))
			}
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return out
}

// TestOutOfOrderHistogramWindow: the rules of the window for native
// histograms, one case each, through both read paths and again after a
// restart, with the counter reset hints a reader gets (0 unknown, 1
// reset, 2 not a reset, 3 gauge).
func TestOutOfOrderHistogramWindow(t *testing.T) {
	lat := labels.FromStrings("__name__", "lat")
	every100 := func(from, to int64) []write.Histogram {
		var out []write.Histogram
		for ts := from; ts <= to; ts += 100 {
			out = append(out, ch(ts, uint64(ts)))
		}
		return out
	}
	with := func(hs []write.Histogram, add ...write.Histogram) []write.Histogram {
		out := append(slices.Clone(hs), add...)
		slices.SortFunc(out, func(a, b write.Histogram) int { return int(a.T - b.T) })
		return out
	}
	for _, tc := range []struct {
		name      string
		first     []write.Histogram // applied first, in order
		firstF    []write.Sample    // floats of the series, before first
		then      []write.Histogram
		thenF     []write.Sample
		refused   string // text of the first refusal of then, "" for none
		sentinel  error
		rejected  int
		want      []write.Histogram
		wantF     []write.Sample
		wantHints []string // nil: not checked
	}{
		{name: "into the open chunk", first: chs(100, 1, 200, 2, 400, 4), then: chs(300, 3),
			want: chs(100, 1, 200, 2, 300, 3, 400, 4), wantHints: []string{"100:0", "200:2", "300:2", "400:2"}},
		{name: "a counter reset into the open chunk", first: chs(100, 1, 200, 2, 300, 5), then: chs(250, 1),
			want: chs(100, 1, 200, 2, 250, 1, 300, 5), wantHints: []string{"100:0", "200:2", "250:0", "300:2"}},
		{name: "an explicit reset hint is not kept", first: chs(100, 1, 200, 2, 300, 5),
			then: []write.Histogram{func() write.Histogram { h := ch(250, 3); h.H.CounterResetHint = histogram.CounterReset; return h }()},
			want: chs(100, 1, 200, 2, 250, 3, 300, 5), wantHints: []string{"100:0", "200:2", "250:2", "300:2"}},
		{name: "into a sealed chunk", first: every100(100, 900), then: chs(250, 250, 450, 450),
			want:      with(every100(100, 900), chs(250, 250, 450, 450)...),
			wantHints: []string{"100:0", "200:2", "250:0", "300:0", "400:2", "450:0", "500:0", "600:2", "700:2", "800:2", "900:0"}},
		{name: "a reset into a sealed chunk", first: every100(100, 900), then: chs(150, 1),
			want:      with(every100(100, 900), chs(150, 1)...),
			wantHints: []string{"100:0", "150:0", "200:0", "300:2", "400:2", "500:0", "600:2", "700:2", "800:2", "900:0"}},
		{name: "before the open chunk", first: chs(100, 100, 200, 200, 300, 1), then: chs(250, 250),
			want: chs(100, 100, 200, 200, 250, 250, 300, 1), wantHints: []string{"100:0", "200:2", "250:0", "300:0"}},
		{name: "into an earlier partition", first: every100(1500, 2500), then: chs(450, 450, 999, 999, 1050, 1050),
			want: with(every100(1500, 2500), chs(450, 450, 999, 999, 1050, 1050)...)},
		{name: "duplicate in the open chunk", first: chs(100, 1, 200, 2, 400, 4), then: chs(200, 3), refused: "histogram 0 at 200: write: duplicate sample for timestamp",
			sentinel: write.ErrDuplicateSample, rejected: 1, want: chs(100, 1, 200, 2, 400, 4)},
		{name: "retry in the open chunk", first: chs(100, 1, 200, 2, 400, 4), then: chs(200, 2), want: chs(100, 1, 200, 2, 400, 4)},
		{name: "duplicate in a sealed chunk", first: every100(100, 900), then: chs(200, 7), refused: "histogram 0 at 200: write: duplicate sample for timestamp",
			sentinel: write.ErrDuplicateSample, rejected: 1, want: every100(100, 900)},
		{name: "retry in a sealed chunk", first: every100(100, 900), then: chs(200, 200), want: every100(100, 900)},
		{name: "beyond the window", first: chs(0, 1, 7000, 2), then: chs(1000, 1),
			refused: "histogram 0 at 1000: write: out-of-order sample: the sample has been rejected because another sample with a more recent timestamp " +
				"has already been ingested and this sample is beyond the out-of-order time window of 5s", sentinel: write.ErrOutOfOrder, rejected: 1,
			want: chs(0, 1, 7000, 2)},
		{name: "a float histogram among integer ones", first: every100(100, 900), then: []write.Histogram{fhist(250, 1)},
			refused:  "histogram 0 at 250: write: out-of-order sample: an integer native histogram among float histograms of the series, or the reverse",
			sentinel: write.ErrOutOfOrder, rejected: 1, want: every100(100, 900)},
		{name: "a histogram among floats", firstF: smps(100, 1, 200, 2, 300, 3), first: chs(400, 4), then: chs(250, 1),
			refused:  "histogram 0 at 250: write: out-of-order sample: a native histogram sample in the time range of the series' float samples",
			sentinel: write.ErrOutOfOrder, rejected: 1, want: chs(400, 4), wantF: smps(100, 1, 200, 2, 300, 3)},
		{name: "a histogram among open floats", firstF: smps(100, 1, 200, 2, 300, 3), then: chs(250, 1),
			refused:  "histogram 0 at 250: write: out-of-order sample: a native histogram sample in the time range of the series' float samples",
			sentinel: write.ErrOutOfOrder, rejected: 1, wantF: smps(100, 1, 200, 2, 300, 3)},
		{name: "a float among histograms", first: every100(100, 900), thenF: smps(250, 1),
			refused:  "sample 0 at 250: write: out-of-order sample: a float sample in the time range of the series' native histograms",
			sentinel: write.ErrOutOfOrder, rejected: 1, want: every100(100, 900)},
		{name: "gauge histograms", first: []write.Histogram{fhist(100, 1), fhist(200, 5), fhist(300, 2), fhist(400, 1), fhist(500, 3), fhist(600, 1)},
			then:      []write.Histogram{fhist(250, 9), fhist(450, 0)},
			want:      []write.Histogram{fhist(100, 1), fhist(200, 5), fhist(250, 9), fhist(300, 2), fhist(400, 1), fhist(450, 0), fhist(500, 3), fhist(600, 1)},
			wantHints: []string{"100:3", "200:3", "250:3", "300:3", "400:3", "450:3", "500:3", "600:3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(vfs.NewMem())
			db, err := Open(opts)
			require.NoError(t, err)
			defer func() { require.NoError(t, db.Close()) }()
			g, _, err := db.OpenGroup(7)
			require.NoError(t, err)
			bb := write.NewBuilder("t")
			require.NoError(t, bb.AddHistograms(lat, tc.firstF, tc.first))
			require.Empty(t, apply(t, g, 1, bb.Batch()))
			bb.Reset("t")
			require.NoError(t, bb.AddHistograms(lat, tc.thenF, tc.then))
			b := bb.Batch()
			b.OutOfOrderWindowMs = 5000
			errs := apply(t, g, 2, b)
			if tc.refused == "" {
				require.Empty(t, errs)
			} else {
				require.Len(t, errs, 1)
				require.Contains(t, errs[0].Err.Error(), tc.refused)
				require.ErrorIs(t, errs[0].Err, tc.sentinel, "%v", errs[0].Err)
				require.Equal(t, tc.rejected, errs[0].Rejected)
			}
			var want []string
			for _, h := range tc.want {
				want = append(want, histString(h.T, h.H, h.FH))
			}
			check := func(what string) {
				m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "lat")
				wantSel := []seriesSamples{{lat.String(), tc.wantF, want}}
				require.Equal(t, wantSel, selectAll(t, g, "t", math.MinInt64, math.MaxInt64, m), what)
				require.Equal(t, wantSel, selectFrom(t, pebbleQuerier(t, g, "t", math.MinInt64, math.MaxInt64), m), what)
				if tc.wantHints != nil {
					require.Equal(t, tc.wantHints, histHints(t, g, "lat", false), what)
					require.Equal(t, tc.wantHints, histHints(t, g, "lat", true), what)
				}
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

// randHist returns a small random histogram of series kind: "int"
// (exponential, integer counts), "float" (float counts, counter) or
// "nhcb" (custom buckets). Counts are small, so that most pairs of
// samples are counter resets and layouts change often (recoded and cut
// chunks); one in twenty is a stale marker.
func randHist(rng randSource, kind string) (*histogram.Histogram, *histogram.FloatHistogram) {
	if rng.IntN(20) == 0 {
		stale := math.Float64frombits(0x7ff0000000000002) // value.StaleNaN
		if kind == "float" {
			return nil, &histogram.FloatHistogram{Sum: stale}
		}
		return &histogram.Histogram{Sum: stale}, nil
	}
	n := 1 + rng.IntN(3)
	h := &histogram.Histogram{Schema: int32(rng.IntN(2)), ZeroThreshold: 0.001, ZeroCount: uint64(rng.IntN(2)),
		PositiveSpans: []histogram.Span{{Offset: int32(rng.IntN(3)), Length: uint32(n)}}}
	if kind == "nhcb" {
		h.Schema, h.ZeroThreshold, h.ZeroCount = histogram.CustomBucketsSchema, 0, 0
		h.CustomValues = []float64{0.1, 0.5, 1, 5, 10}
		h.PositiveSpans[0].Offset = int32(rng.IntN(2))
	}
	prev := int64(0)
	h.Count = h.ZeroCount
	for range n {
		c := int64(rng.IntN(4))
		h.PositiveBuckets = append(h.PositiveBuckets, c-prev)
		prev = c
		h.Count += uint64(c)
	}
	h.Sum = float64(h.Count) * 0.25
	if kind == "float" {
		return nil, h.ToFloat(nil)
	}
	return h, nil
}

// TestOutOfOrderHistogramsDense: TestOutOfOrderDense with native
// histograms, integer, float and custom-bucket series, most of them out
// of order within the window: small chunks and partitions, a brute-force
// map of every accepted histogram, checkpoints and restarts that replay
// from the checkpoint over a store holding what later entries wrote, and
// a replica that never restarted holding the same bytes at the end.
func TestOutOfOrderHistogramsDense(t *testing.T) {
	seed := seedFromEnv(t)
	rng := newRand(seed)
	const windowMs = 1500
	opts := testOptions(vfs.NewMem())
	opts.ChunkSamples = 3
	names := []string{"int", "float", "nhcb"}
	var batches []*write.Batch
	ts := int64(0)
	for range 300 {
		bb := write.NewBuilder("t")
		for _, name := range names {
			var hs []write.Histogram
			for range rng.IntN(4) {
				ts += int64(rng.IntN(40))
				st := ts
				if rng.IntN(3) > 0 {
					st -= int64(rng.IntN(2 * windowMs)) // half in the window
				}
				h, fh := randHist(rng, name)
				hs = append(hs, write.Histogram{T: max(0, st), H: h, FH: fh})
				if rng.IntN(8) == 0 { // the same again: a retry, or a duplicate
					h, fh := randHist(rng, name)
					if rng.IntN(2) == 0 {
						h, fh = hs[len(hs)-1].H, hs[len(hs)-1].FH
					}
					hs = append(hs, write.Histogram{T: max(0, st), H: h, FH: fh})
				}
			}
			require.NoError(t, bb.AddHistograms(labels.FromStrings("__name__", name), nil, hs))
		}
		b := bb.Batch()
		b.OutOfOrderWindowMs = windowMs
		batches = append(batches, b)
	}
	// The brute force: accepted histograms by series and time, rendered
	// as selectAll renders them.
	want := map[string]map[int64]write.Histogram{}
	maxT := int64(math.MinInt64)
	newest := map[string]int64{}
	wantRefused := make([]int, len(batches))
	for i, b := range batches {
		for j := range b.Series {
			name := names[j]
			if want[name] == nil {
				want[name] = map[int64]write.Histogram{}
			}
			for _, hs := range b.Series[j].Histograms {
				last, ok := newest[name]
				switch v, dup := want[name][hs.T]; {
				case ok && hs.T < last && maxT-hs.T > windowMs:
					wantRefused[i]++
				case dup && sameHistogram(v.H, v.FH, hs.H, hs.FH):
				case dup:
					wantRefused[i]++
				default:
					want[name][hs.T] = hs
					maxT, newest[name] = max(maxT, hs.T), max(last, hs.T)
					if !ok {
						newest[name] = hs.T
					}
				}
			}
		}
	}

	db, err := Open(opts)
	require.NoError(t, err)
	g, _, err := db.OpenGroup(7)
	require.NoError(t, err)
	accepted, restarts := 0, 0
	for i, b := range batches {
		errs := apply(t, g, uint64(i+1), b)
		refused := 0
		for _, e := range errs {
			refused += e.Rejected
		}
		require.Equal(t, wantRefused[i], refused, "batch %d: %v", i, errs)
		accepted += b.NumHistograms() - refused
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
			restarts++
		}
	}
	var wantSel []seriesSamples
	for _, name := range names {
		var hs []string
		for _, ts := range slices.Sorted(maps.Keys(want[name])) {
			hs = append(hs, histString(ts, want[name][ts].H, want[name][ts].FH))
		}
		wantSel = append(wantSel, seriesSamples{labels.FromStrings("__name__", name).String(), nil, hs})
	}
	slices.SortFunc(wantSel, func(a, b seriesSamples) int { return strings.Compare(a.lset, b.lset) })
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
	total := 0
	for _, b := range batches {
		total += b.NumHistograms()
	}
	t.Logf("%d histograms accepted of %d, %d restarts", accepted, total, restarts)
}

// TestOutOfOrderHistogramPromQL: PromQL over native histograms written
// out of order (a third of them up to 30 scrapes late, within a 10m
// window) answers as Prometheus's TSDB holding the same samples written
// in order: counter histograms, integer and float, whose buckets grow,
// reset, change schema or go back to an earlier sample's counts,
// custom-bucket ones, float gauge histograms, partitions and a restart
// replaying from a checkpoint. rate, increase and resets read the
// counter reset hints, so they check that the hints of inserted
// histograms and of the ones after them let PromQL find every reset and
// no other (without the mark of the next histogram in a sealed chunk
// this test fails).
func TestOutOfOrderHistogramPromQL(t *testing.T) {
	ctx := context.Background()
	prom := teststorage.New(t)
	opts := testOptions(vfs.NewMem())
	opts.ChunkSamples = 30
	opts.Partition = 20 * time.Minute
	opts.EvictIdle = time.Hour
	db, err := Open(opts)
	require.NoError(t, err)
	g, _, err := db.OpenGroup(7)
	require.NoError(t, err)

	const step, n, maxDelay = 15_000, 2 * 3600 * 1000 / 15_000, 30
	start := int64(1_700_000_000_000)/3600000*3600000 + 600_000
	rng := newRand(seedFromEnv(t))
	type hseries struct {
		lset        labels.Labels
		kind        string
		state, prev *histogram.Histogram
	}
	var ss []*hseries
	for inst := range 3 {
		l := func(name string) labels.Labels {
			return labels.FromStrings("__name__", name, "instance", fmt.Sprintf("host-%d", inst))
		}
		ss = append(ss, &hseries{lset: l("rpc_seconds"), kind: "counter"}, &hseries{lset: l("req_seconds"), kind: "nhcb"},
			&hseries{lset: l("queue_bytes"), kind: "gauge"}, &hseries{lset: l("frpc_seconds"), kind: "float"})
	}
	// Every sample, in order into Prometheus, and by the step it is
	// delivered at into the engine.
	app := prom.Appender(ctx)
	late := map[int][][]write.Histogram{} // delivery step -> per series
	for i := range n {
		ts := start + int64(i)*step
		for j, s := range ss {
			var hs write.Histogram
			if s.kind == "gauge" {
				h := &histogram.FloatHistogram{CounterResetHint: histogram.GaugeType, ZeroThreshold: 0.001,
					PositiveSpans: []histogram.Span{{Offset: int32(rng.IntN(2)), Length: 3}}}
				for range 3 {
					c := float64(rng.IntN(50))
					h.PositiveBuckets = append(h.PositiveBuckets, c)
					h.Count += c
				}
				h.Sum = h.Count * 1.5
				hs = write.Histogram{T: ts, FH: h}
				_, err = app.AppendHistogram(0, s.lset, ts, nil, h.Copy())
			} else {
				prev := s.state
				if s.prev != nil && rng.IntN(20) == 0 {
					// A reset that the sample before the previous one does
					// not show: the counts go back to it and grow from
					// there. Delivered late, the previous one is inserted
					// between two histograms its appender saw as no reset.
					prev = s.prev
				}
				s.prev = s.state
				s.state = nextCounterHistogram(rng, prev, s.kind == "nhcb", rng.IntN(60) == 0, i == n/3 && j == 0)
				if s.kind == "float" { // float counts, a counter
					hs = write.Histogram{T: ts, FH: s.state.ToFloat(nil)}
					_, err = app.AppendHistogram(0, s.lset, ts, nil, s.state.ToFloat(nil))
				} else {
					hs = write.Histogram{T: ts, H: s.state.Copy()}
					_, err = app.AppendHistogram(0, s.lset, ts, s.state.Copy(), nil)
				}
			}
			require.NoError(t, err)
			d := i
			if rng.IntN(3) == 0 {
				d += rng.IntN(maxDelay + 1)
			}
			if late[d] == nil {
				late[d] = make([][]write.Histogram, len(ss))
			}
			late[d][j] = append(late[d][j], hs)
		}
	}
	require.NoError(t, app.Commit())
	var log []*write.Batch // the Raft log, for the replay after the restart
	for d := range n + maxDelay + 1 {
		if late[d] == nil {
			continue
		}
		bb := write.NewBuilder("t")
		for j, s := range ss {
			if len(late[d][j]) > 0 {
				require.NoError(t, bb.AddHistograms(s.lset, nil, late[d][j]))
			}
		}
		b := bb.Batch()
		b.OutOfOrderWindowMs = (10 * time.Minute).Milliseconds()
		log = append(log, b)
		require.Empty(t, apply(t, g, uint64(len(log)), b))
		switch len(log) {
		case n / 2:
			require.NoError(t, g.Checkpoint())
		case n/2 + 60: // restart: replay from the checkpoint
			require.NoError(t, db.Close())
			db, err = Open(opts)
			require.NoError(t, err)
			var from uint64
			g, from, err = db.OpenGroup(7)
			require.NoError(t, err)
			require.Less(t, from, uint64(len(log)))
			for k := from + 1; k <= uint64(len(log)); k++ {
				require.Empty(t, apply(t, g, k, log[k-1]))
			}
		}
	}
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	requireNoOverlap(t, db)

	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e8, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qStart, qEnd := time.UnixMilli(start), time.UnixMilli(start+int64(n)*step)
	for _, q := range []string{
		`rpc_seconds`,
		`req_seconds`,
		`queue_bytes`,
		`rate(rpc_seconds[5m])`,
		`frpc_seconds`,
		`rate(frpc_seconds[5m])`,
		`resets(frpc_seconds[30m])`,
		`increase(req_seconds[10m])`,
		`resets(rpc_seconds[30m])`,
		`resets(req_seconds[30m])`,
		`histogram_quantile(0.9, sum(rate(rpc_seconds[5m])))`,
		`histogram_quantile(0.5, rate(req_seconds[10m]))`,
		`histogram_count(increase(rpc_seconds[10m]))`,
		`histogram_sum(queue_bytes)`,
		`avg_over_time(queue_bytes[10m])`,
	} {
		t.Run(q, func(t *testing.T) {
			run := func(qa storage.Queryable) string {
				qry, err := eng.NewRangeQuery(ctx, qa, nil, q, qStart, qEnd, time.Minute)
				require.NoError(t, err)
				defer qry.Close()
				res := qry.Exec(ctx)
				require.NoError(t, res.Err)
				return res.Value.String() + fmt.Sprint(res.Warnings)
			}
			want := run(prom)
			require.NotEmpty(t, want)
			require.Equal(t, want, run(g.Queryable("t")))
		})
	}
}

// benchHist is the histogram of series i at round r: schema 3, 20
// buckets whose counts grow every round (a latency histogram of a busy
// handler), as an integer counter.
func benchHist(i, r int) *histogram.Histogram {
	h := &histogram.Histogram{Schema: 3, ZeroThreshold: 1e-128, PositiveSpans: []histogram.Span{{Offset: int32(i % 7), Length: 20}}}
	prev := int64(0)
	for k := range 20 {
		c := int64(r*(1+(i+k)%5) + k)
		h.PositiveBuckets = append(h.PositiveBuckets, c-prev)
		prev = c
		h.Count += uint64(c)
	}
	h.Sum = float64(h.Count) * 0.042
	return h
}

// BenchmarkApplyOutOfOrderHistograms is BenchmarkApplyOutOfOrder for
// native histograms: 1000 series with 250 histograms every 15s (two
// sealed chunks of 98, cut at 1 KiB of Prometheus's encoding, and 54
// histograms in the open one), then batches of one histogram per
// series, 7.5s after a scrape: in the open chunk (appended again), in
// the newest sealed chunk (decoded and re-encoded in histpack), or in
// order (the baseline of the same run); and the same eight histograms
// of each series into its sealed chunk in one batch (a backfill: the
// chunk stays decoded across them, appender.oooh). The window is 1h.
func BenchmarkApplyOutOfOrderHistograms(b *testing.B) {
	const nSeries, rounds = 1000, 250
	lsets := benchLabels(nSeries)
	batch := func(rs []int, offset int64) []byte {
		bb := write.NewBuilder("bench")
		for i, lset := range lsets {
			var hs []write.Histogram
			for _, r := range rs {
				hs = append(hs, write.Histogram{T: int64(1_700_000_000_000) + int64(r)*15000 + offset, H: benchHist(i, r)})
			}
			require.NoError(b, bb.AddHistograms(lset, nil, hs))
		}
		wb := bb.Batch()
		wb.OutOfOrderWindowMs = time.Hour.Milliseconds()
		return write.Append(nil, wb)
	}
	var setup [][]byte
	for r := range rounds {
		setup = append(setup, batch([]int{r}, 0))
	}
	at := func(rs []int, burst bool) [][]byte {
		if burst {
			return [][]byte{batch(rs, 7500)}
		}
		var out [][]byte
		for _, r := range rs {
			out = append(out, batch([]int{r}, 7500))
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
		{"sealed", []int{150, 151, 152, 153, 154, 155, 156, 157}, false},
		{"sealed-burst", []int{150, 151, 152, 153, 154, 155, 156, 157}, true},
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
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/histogram")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestOutOfOrderHistogramRangeDeletion: a range deletion over a sealed
// chunk that an out-of-order histogram put a counter reset into (which
// Prometheus's appender cannot take whole) deletes the samples in the
// range, keeps the others, and marks the one after the deleted ones:
// the same after a restart and on a replica.
func TestOutOfOrderHistogramRangeDeletion(t *testing.T) {
	lat := labels.FromStrings("__name__", "lat")
	var logs [][]byte
	bb := write.NewBuilder("t")
	require.NoError(t, bb.AddHistograms(lat, nil, chs(100, 10, 200, 20, 300, 30, 400, 40, 500, 50, 600, 60, 700, 70)))
	logs = append(logs, write.Append(nil, bb.Batch()))
	bb.Reset("t")
	// A reset into the sealed chunk [100, 400], which the deletion of
	// 200 keeps.
	require.NoError(t, bb.AddHistograms(lat, nil, chs(250, 1)))
	b := bb.Batch()
	b.OutOfOrderWindowMs = 5000
	logs = append(logs, write.Append(nil, b), delEntry("t", 150, 200, "lat"))
	var dumps [][]string
	for _, restart := range []bool{false, true} {
		opts := testOptions(vfs.NewMem())
		db, err := Open(opts)
		require.NoError(t, err)
		g, _, err := db.OpenGroup(7)
		require.NoError(t, err)
		for i, e := range logs {
			errs, err := g.Apply(uint64(i+1), e)
			require.NoError(t, err)
			require.Empty(t, errs)
			if restart && i == 0 {
				require.NoError(t, g.Checkpoint())
				require.NoError(t, db.Close())
				db, err = Open(opts)
				require.NoError(t, err)
				g, _, err = db.OpenGroup(7)
				require.NoError(t, err)
			}
		}
		var want []string
		for _, h := range chs(100, 10, 250, 1, 300, 30, 400, 40, 500, 50, 600, 60, 700, 70) {
			want = append(want, histString(h.T, h.H, h.FH))
		}
		m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "lat")
		require.Equal(t, []seriesSamples{{lat.String(), nil, want}}, selectAll(t, g, "t", math.MinInt64, math.MaxInt64, m))
		require.Equal(t, []string{"100:0", "250:0", "300:0", "400:2", "500:0", "600:2", "700:2"}, histHints(t, g, "lat", true))
		requireNoOverlap(t, db)
		require.NoError(t, g.Checkpoint())
		dumps = append(dumps, dump(t, db))
		require.NoError(t, db.Close())
	}
	requireSameDump(t, dumps[0], dumps[1])
}

// TestOutOfOrderHistogramEvicted: a histogram series evicted from the
// head (its open chunk sealed, its newest histogram in an 'e' record)
// takes out-of-order histograms within the window into its sealed
// chunks without coming back into the head count, the same on a replica
// that restarted in between; an in-order one brings it back.
func TestOutOfOrderHistogramEvicted(t *testing.T) {
	for _, restart := range []bool{false, true} {
		opts := testOptions(vfs.NewMem())
		db, err := Open(opts)
		require.NoError(t, err)
		g, _, err := db.OpenGroup(7)
		require.NoError(t, err)
		lat, other := labels.FromStrings("__name__", "lat"), labels.FromStrings("__name__", "other")
		bb := write.NewBuilder("t")
		require.NoError(t, bb.AddHistograms(lat, nil, chs(1000, 10, 1500, 15, 2000, 20)))
		require.NoError(t, bb.Add(other, smps(2000, 2)))
		require.Empty(t, apply(t, g, 1, bb.Batch()))
		// The scan after entry 1 keeps lat (just written), the next one
		// evicts it.
		require.Empty(t, apply(t, g, 2, buildBatch(t, "t", other, smps(6000, 6))))
		require.Equal(t, 1, g.Stats()[0].HeadSeries, "lat is evicted (EvictIdle 3s)")
		if restart {
			require.NoError(t, g.Checkpoint())
			require.NoError(t, db.Close())
			db, err = Open(opts)
			require.NoError(t, err)
			g, _, err = db.OpenGroup(7)
			require.NoError(t, err)
		}
		bb.Reset("t")
		require.NoError(t, bb.AddHistograms(lat, nil, chs(1250, 12, 1500, 15, 1500, 16, 900, 9, 1750, 1)))
		b := bb.Batch()
		b.OutOfOrderWindowMs = 5500
		errs := apply(t, g, 3, b)
		require.Len(t, errs, 1)
		require.Equal(t, 1, errs[0].Rejected)
		require.ErrorIs(t, errs[0].Err, write.ErrDuplicateSample)
		require.Equal(t, 1, g.Stats()[0].HeadSeries)
		var want []string
		for _, h := range chs(900, 9, 1000, 10, 1250, 12, 1500, 15, 1750, 1, 2000, 20) {
			want = append(want, histString(h.T, h.H, h.FH))
		}
		m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "lat")
		require.Equal(t, []seriesSamples{{lat.String(), nil, want}}, selectAll(t, g, "t", math.MinInt64, math.MaxInt64, m))
		require.Equal(t, []seriesSamples{{lat.String(), nil, want}}, selectFrom(t, pebbleQuerier(t, g, "t", math.MinInt64, math.MaxInt64), m))
		// 900 starts a chunk of its own (partition 0); in partition 1 the
		// inserted ones and the one after each are unknown.
		require.Equal(t, []string{"900:0", "1000:0", "1250:0", "1500:0", "1750:0", "2000:0"}, histHints(t, g, "lat", true))
		requireNoOverlap(t, db)
		bb.Reset("t")
		require.NoError(t, bb.AddHistograms(lat, nil, chs(6100, 61)))
		require.Empty(t, apply(t, g, 4, bb.Batch()))
		require.Equal(t, 2, g.Stats()[0].HeadSeries)
		require.NoError(t, db.Close())
	}
}
