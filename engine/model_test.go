package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/write"
)

type randSource interface{ IntN(int) int }

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// seedFromEnv returns $ENGINE_SEED or a fresh seed, and logs it.
func seedFromEnv(t testing.TB) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ENGINE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		seed = v
	}
	t.Logf("seed %d (rerun with ENGINE_SEED=%d)", seed, seed)
	return seed
}

// model is the naive oracle: every sample of every series in slices, and
// the rules of Apply written the obvious way.
type model struct {
	retentionMs, partitionMs int64
	tenants                  map[string]*modelTenant
	ooo                      int // out-of-order samples accepted
	oooHist                  int // out-of-order histograms accepted
}

type modelTenant struct {
	maxT   int64
	series map[string]*modelSeries
}

type modelSeries struct {
	lset    labels.Labels
	samples []write.Sample
	hists   []write.Histogram
}

// last returns the newest sample of s: a float (h nil) or a histogram.
func (s *modelSeries) last() (t int64, v float64, h *write.Histogram, ok bool) {
	var ft, ht int64 = math.MinInt64, math.MinInt64
	if len(s.samples) > 0 {
		ft = s.samples[len(s.samples)-1].T
	}
	if len(s.hists) > 0 {
		ht = s.hists[len(s.hists)-1].T
	}
	switch {
	case len(s.samples) == 0 && len(s.hists) == 0:
		return 0, 0, nil, false
	case ht > ft || len(s.samples) == 0:
		return ht, 0, &s.hists[len(s.hists)-1], true
	}
	return ft, s.samples[len(s.samples)-1].V, nil, true
}

// histString renders a histogram sample as selectAll does, without the
// counter reset hint (which depends on where chunks are cut).
func histString(t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) string {
	if h != nil {
		h = h.Copy()
		h.CounterResetHint = 0
		return fmt.Sprintf("%d h %s", t, h.Compact(0))
	}
	fh = fh.Copy()
	fh.CounterResetHint = 0
	return fmt.Sprintf("%d fh %s", t, fh.Compact(0))
}

func newModel(opts Options) *model {
	return &model{retentionMs: opts.Retention.Milliseconds(), partitionMs: opts.Partition.Milliseconds(), tenants: map[string]*modelTenant{}}
}

func (m *model) apply(b *write.Batch) []string {
	mt := m.tenants[b.Tenant]
	if mt == nil {
		mt = &modelTenant{maxT: math.MinInt64, series: map[string]*modelSeries{}}
		m.tenants[b.Tenant] = mt
	}
	var errs []string
	for i := range b.Series {
		lset, err := b.Labels(i)
		if err != nil {
			panic(err) // the model test builds valid batches
		}
		s := mt.series[lset.String()]
		rejected, first := 0, ""
		for _, smp := range b.Series[i].Samples {
			var kind string
			var lastH *write.Histogram
			switch {
			case m.retentionMs > 0 && mt.maxT != math.MinInt64 && smp.T < mt.maxT-m.retentionMs:
				kind = "too-old"
			case s != nil:
				lt, lv, lh, ok := s.last()
				lastH = lh
				if !ok {
					break
				}
				if smp.T < lt && b.OutOfOrderWindowMs > 0 && mt.maxT-smp.T <= b.OutOfOrderWindowMs {
					kind = m.insertOOO(s, smp)
					if kind == "" {
						continue
					}
				} else if smp.T < lt {
					kind = "out-of-order"
				} else if smp.T == lt {
					if lh == nil && math.Float64bits(smp.V) == math.Float64bits(lv) {
						continue
					}
					kind = "duplicate"
				}
			}
			if kind != "" {
				if rejected == 0 {
					first = kind
				}
				rejected++
				continue
			}
			if s == nil {
				s = &modelSeries{lset: lset}
				mt.series[lset.String()] = s
			}
			switch {
			case lastH != nil && value.IsStaleNaN(smp.V) && lastH.FH != nil:
				s.hists = append(s.hists, write.Histogram{T: smp.T, FH: &histogram.FloatHistogram{Sum: smp.V}})
			case lastH != nil && value.IsStaleNaN(smp.V):
				s.hists = append(s.hists, write.Histogram{T: smp.T, H: &histogram.Histogram{Sum: smp.V}})
			default:
				s.samples = append(s.samples, smp)
			}
			mt.maxT = max(mt.maxT, smp.T)
		}
		for _, hs := range b.Series[i].Histograms {
			var kind string
			switch {
			case m.retentionMs > 0 && mt.maxT != math.MinInt64 && hs.T < mt.maxT-m.retentionMs:
				kind = "too-old"
			case s != nil:
				lt, _, lh, ok := s.last()
				if !ok {
					break
				}
				if hs.T < lt && b.OutOfOrderWindowMs > 0 && mt.maxT-hs.T <= b.OutOfOrderWindowMs {
					kind = m.insertOOOHist(s, hs)
					if kind == "" {
						continue
					}
				} else if hs.T < lt {
					kind = "out-of-order"
				} else if hs.T == lt {
					if lh != nil && histString(0, hs.H, hs.FH) == histString(0, lh.H, lh.FH) {
						continue
					}
					kind = "duplicate"
				}
			}
			if kind != "" {
				if rejected == 0 {
					first = kind
				}
				rejected++
				continue
			}
			if s == nil {
				s = &modelSeries{lset: lset}
				mt.series[lset.String()] = s
			}
			s.hists = append(s.hists, hs)
			mt.maxT = max(mt.maxT, hs.T)
		}
		if rejected > 0 {
			errs = append(errs, fmt.Sprintf("%d:%d:%s", i, rejected, first))
		}
	}
	return errs
}

// insertOOO is the model of an out-of-order float sample within the
// window: refused if the newest sample at or before it in its partition
// is a histogram (the engine keeps a chunk to one kind); otherwise an
// equal float is a retry, another value at its time a duplicate, and a
// new time is inserted in order.
func (m *model) insertOOO(s *modelSeries, smp write.Sample) string {
	i, found := slices.BinarySearchFunc(s.samples, smp.T, func(x write.Sample, t int64) int { return cmp.Compare(x.T, t) })
	if found {
		if math.Float64bits(s.samples[i].V) == math.Float64bits(smp.V) {
			return ""
		}
		return "duplicate"
	}
	p := partitionOf(smp.T, m.partitionMs)
	prevF, prevH := int64(math.MinInt64), int64(math.MinInt64)
	if i > 0 && partitionOf(s.samples[i-1].T, m.partitionMs) == p {
		prevF = s.samples[i-1].T
	}
	for _, h := range s.hists {
		if h.T <= smp.T && partitionOf(h.T, m.partitionMs) == p {
			prevH = max(prevH, h.T)
		}
	}
	if prevH > prevF {
		return "out-of-order"
	}
	s.samples = slices.Insert(s.samples, i, smp)
	m.ooo++
	return ""
}

// insertOOOHist is the model of an out-of-order histogram within the
// window: refused if the newest sample at or before it in its partition
// is a float or a histogram of the other kind (integer or float counts:
// its chunk is of that kind); otherwise an equal histogram is a retry,
// another one at its time a duplicate, and a new time is inserted in
// order.
func (m *model) insertOOOHist(s *modelSeries, hs write.Histogram) string {
	i, found := slices.BinarySearchFunc(s.hists, hs.T, func(x write.Histogram, t int64) int { return cmp.Compare(x.T, t) })
	if found {
		switch {
		case (s.hists[i].FH != nil) != (hs.FH != nil):
			return "out-of-order"
		case sameHistogram(s.hists[i].H, s.hists[i].FH, hs.H, hs.FH):
			return ""
		}
		return "duplicate"
	}
	p := partitionOf(hs.T, m.partitionMs)
	prevF, prevH := int64(math.MinInt64), int64(math.MinInt64)
	j, _ := slices.BinarySearchFunc(s.samples, hs.T+1, func(x write.Sample, t int64) int { return cmp.Compare(x.T, t) })
	if j > 0 && partitionOf(s.samples[j-1].T, m.partitionMs) == p {
		prevF = s.samples[j-1].T
	}
	if i > 0 && partitionOf(s.hists[i-1].T, m.partitionMs) == p {
		prevH = s.hists[i-1].T
	}
	if prevF > prevH || prevH > math.MinInt64 && (s.hists[i-1].FH != nil) != (hs.FH != nil) {
		return "out-of-order"
	}
	s.hists = slices.Insert(s.hists, i, hs)
	m.oooHist++
	return ""
}

func errKinds(errs []write.Refusal) []string {
	var out []string
	for _, e := range errs {
		kind := "?"
		switch {
		case errors.Is(e.Err, write.ErrTooOld):
			kind = "too-old"
		case errors.Is(e.Err, write.ErrOutOfOrder):
			kind = "out-of-order"
		case errors.Is(e.Err, write.ErrDuplicateSample):
			kind = "duplicate"
		case errors.Is(e.Err, write.ErrSeriesLimit):
			kind = "series-limit"
		case errors.Is(e.Err, write.ErrMetricSeriesLimit):
			kind = "metric-limit"
		}
		out = append(out, fmt.Sprintf("%d:%d:%s", e.Series, e.Rejected, kind))
	}
	return out
}

func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (m *model) selectSeries(tenant string, mint, maxt int64, ms []*labels.Matcher) []seriesSamples {
	mt := m.tenants[tenant]
	if mt == nil {
		return nil
	}
	var out []seriesSamples
	var lsets []labels.Labels
	rp := retainPartition(mt.maxT, m.retentionMs, m.partitionMs)
	for _, s := range mt.series {
		if !matchesAll(s.lset, ms) {
			continue
		}
		var smp []write.Sample
		for _, x := range s.samples {
			if x.T >= mint && x.T <= maxt && partitionOf(x.T, m.partitionMs) >= rp {
				smp = append(smp, x)
			}
		}
		var hs []string
		for _, x := range s.hists {
			if x.T >= mint && x.T <= maxt && partitionOf(x.T, m.partitionMs) >= rp {
				hs = append(hs, histString(x.T, x.H, x.FH))
			}
		}
		if len(smp) > 0 || len(hs) > 0 {
			out = append(out, seriesSamples{s.lset.String(), smp, hs})
			lsets = append(lsets, s.lset)
		}
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return labels.Compare(lsets[a], lsets[b]) })
	sorted := make([]seriesSamples, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	if len(sorted) == 0 {
		return nil
	}
	return sorted
}

// labelQuery answers label names (name == "") or values with the engine's
// documented granularity: series with a sample in a partition that overlaps
// [mint, maxt].
// seriesLabels answers a series query from q (the select of Prometheus's
// series API), closes q and returns the label sets as strings, in select
// order.
func seriesLabels(t *testing.T, q storage.Querier, ms []*labels.Matcher) []string {
	t.Helper()
	defer q.Close()
	ss := q.Select(context.Background(), true, &storage.SelectHints{Func: "series"}, ms...)
	var out []string
	for ss.Next() {
		out = append(out, ss.At().Labels().String())
	}
	require.NoError(t, ss.Err())
	return out
}

// checkLabels checks the answer got of a label query (name "": label
// names) against the model: it holds the labels of every series with a
// sample in [mint, maxt], and at most those of the series with a sample
// in the partitions of [mint, maxt] (the postings in Pebble answer
// exactly that; the head index less when series of the first partition
// left it).
func checkLabels(t *testing.T, mdl *model, tenant string, mint, maxt int64, name string, ms []*labels.Matcher, got []string, msgAndArgs ...any) {
	t.Helper()
	lower := mdl.labelQuery(tenant, mint, maxt, name, ms, false)
	upper := mdl.labelQuery(tenant, mint, maxt, name, ms, true)
	require.Subset(t, got, lower, msgAndArgs...)
	require.Subset(t, upper, got, msgAndArgs...)
	require.True(t, slices.IsSorted(got), msgAndArgs...)
}

// labelQuery answers a label query (name "": label names) over the series
// with a sample in [mint, maxt], or with parts in the partitions of that
// range.
func (m *model) labelQuery(tenant string, mint, maxt int64, name string, ms []*labels.Matcher, parts bool) []string {
	set := map[string]bool{}
	for _, lset := range m.seriesIn(tenant, mint, maxt, ms, parts) {
		lset.Range(func(l labels.Label) {
			if name == "" {
				set[l.Name] = true
			} else if l.Name == name {
				set[l.Value] = true
			}
		})
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// seriesIn returns the label sets of the series matching ms with a sample
// (float or histogram) in [mint, maxt], or (parts) in the partitions of
// that range.
func (m *model) seriesIn(tenant string, mint, maxt int64, ms []*labels.Matcher, parts bool) []labels.Labels {
	mt := m.tenants[tenant]
	if mt == nil {
		return nil
	}
	p0, p1 := partitionOf(mint, m.partitionMs), partitionOf(maxt, m.partitionMs)
	p0 = max(p0, retainPartition(mt.maxT, m.retentionMs, m.partitionMs))
	var out []labels.Labels
	for _, s := range mt.series {
		if !matchesAll(s.lset, ms) {
			continue
		}
		in := func(t int64) bool {
			p := partitionOf(t, m.partitionMs)
			return parts && p >= p0 && p <= p1 || !parts && p >= p0 && t >= mint && t <= maxt
		}
		found := slices.ContainsFunc(s.samples, func(x write.Sample) bool { return in(x.T) })
		if !found {
			found = slices.ContainsFunc(s.hists, func(x write.Histogram) bool { return in(x.T) })
		}
		if found {
			out = append(out, s.lset)
		}
	}
	return out
}

func randomMatchers(rng *rand.Rand) []*labels.Matcher {
	names := []string{"__name__", "job", "instance", "zone", "nope"}
	values := []string{"up", "api", "db", "api.*", "api|db", "", ".+", ".*a.*", "host-1", "host-[12]", "db|", "\x00odd", "mem_bytes|up"}
	var ms []*labels.Matcher
	for range 1 + rng.IntN(2) {
		mt := labels.MatchType(rng.IntN(4))
		ms = append(ms, labels.MustNewMatcher(mt, names[rng.IntN(len(names))], values[rng.IntN(len(values))]))
	}
	return ms
}

func randomRange(rng *rand.Rand, maxTs int64) (int64, int64) {
	if rng.IntN(8) == 0 {
		return math.MinInt64, math.MaxInt64
	}
	if rng.IntN(2) == 0 { // recent: what retention keeps
		mint := maxTs - int64(rng.IntN(4000))
		return mint, mint + int64(rng.IntN(4000))
	}
	mint := int64(rng.IntN(int(maxTs+2000))) - 1000
	if rng.IntN(3) == 0 {
		return mint / 2, mint/2 + int64(rng.IntN(int(maxTs+1)))
	}
	return mint, mint + int64(rng.IntN(5000))
}

func TestModel(t *testing.T) {
	for _, tc := range []struct {
		enc       chunkenc.Encoding
		retention time.Duration
		windowMs  int64
	}{
		{chunkenc.EncXOR, 2 * time.Second, 0}, {chunkenc.EncPack, 2 * time.Second, 0}, {chunkenc.EncPack, 0, 0},
		// Out-of-order windows: shorter than a partition (1s) and the
		// retention, and longer than both.
		{chunkenc.EncXOR, 2 * time.Second, 700}, {chunkenc.EncPack, 0, 2500},
	} {
		t.Run(fmt.Sprintf("%s/retention=%v/window=%dms", tc.enc, tc.retention, tc.windowMs), func(t *testing.T) {
			seed := seedFromEnv(t)
			runModelWindow(t, seed, tc.enc, tc.retention, 150, tc.windowMs)
		})
	}
}

// withWindow gives three in four batches the window windowMs and moves
// one float sample and one histogram in four back by up to twice the
// window, so that about half of the moved ones are in it.
func withWindow(seed uint64, batches []*write.Batch, windowMs int64) {
	rng, rngH := newRand(seed+2), newRand(seed+3)
	for _, b := range batches {
		if rng.IntN(4) > 0 {
			b.OutOfOrderWindowMs = windowMs
		}
		for i := range b.Series {
			for j := range b.Series[i].Samples {
				if rng.IntN(4) == 0 {
					b.Series[i].Samples[j].T = max(0, b.Series[i].Samples[j].T-int64(rng.IntN(int(2*windowMs))))
				}
			}
			// Histograms from a source of their own: float seeds
			// replay as before.
			for j := range b.Series[i].Histograms {
				if rngH.IntN(4) == 0 {
					b.Series[i].Histograms[j].T = max(0, b.Series[i].Histograms[j].T-int64(rngH.IntN(int(2*windowMs))))
				}
			}
		}
	}
}

// TestModelSeeds replays seeds that once broke an invariant.
//   - 1796649564549889816 (xor, retention 2s): a chunk sealed after a run
//     whose earlier chunks were not in the merge was keyed at the run's
//     mint, before its first sample ("sealed chunk of series 54: 1
//     samples, key says [105387, 105603]").
func TestModelSeeds(t *testing.T) {
	for _, seed := range []uint64{1796649564549889816} {
		runModel(t, seed, chunkenc.EncXOR, 2*time.Second, 150)
	}
}

func runModel(t *testing.T, seed uint64, enc chunkenc.Encoding, retention time.Duration, steps int) {
	runModelWindow(t, seed, enc, retention, steps, 0)
}

// runModelWindow is runModel with batches that carry an out-of-order
// window (withWindow), none if windowMs is 0.
func runModelWindow(t *testing.T, seed uint64, enc chunkenc.Encoding, retention time.Duration, steps int, windowMs int64) {
	rng := newRand(seed + 1)
	opts := testOptions(vfs.NewMem())
	opts.SealEncoding = enc
	opts.ChunkSamples = 2 + rng.IntN(6)
	opts.Retention = retention
	// Ghosts from none (at once out of the head index) to longer than
	// the retention.
	opts.IndexGhosts = time.Duration(1+seed%8) * time.Second // not from rng: seeds replay as before
	fs := opts.FS
	batches := randomBatches(t, seed, steps)
	if windowMs > 0 {
		withWindow(seed, batches, windowMs)
	}
	mdl := newModel(opts)

	db, err := Open(opts)
	require.NoError(t, err)
	g, _, err := db.OpenGroup(3)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()

	var maxTs int64
	var nonEmpty, selects, restarts, rejections int
	wantErrs := make([][]string, len(batches))
	check := func(step int) {
		ctx := context.Background()
		for range 4 {
			tenant := []string{"alpha", "beta", "alpha", "beta", "gamma"}[rng.IntN(5)]
			mint, maxt := randomRange(rng, maxTs)
			ms := randomMatchers(rng)
			want := mdl.selectSeries(tenant, mint, maxt, ms)
			got := selectAll(t, g, tenant, mint, maxt, ms...)
			require.Equal(t, want, got, "step %d select %s %v [%d,%d]", step, tenant, ms, mint, maxt)
			require.Equal(t, want, selectFrom(t, pebbleQuerier(t, g, tenant, mint, maxt), ms...), "step %d select from Pebble %s %v [%d,%d]", step, tenant, ms, mint, maxt)
			// The series API's select (labels only) lists the same series.
			var wantLabels []string
			for _, s := range want {
				wantLabels = append(wantLabels, s.lset)
			}
			sq, err := g.Querier(tenant, mint, maxt)
			require.NoError(t, err)
			require.Equal(t, wantLabels, seriesLabels(t, sq, ms), "step %d series %s %v [%d,%d]", step, tenant, ms, mint, maxt)
			selects++
			if len(got) > 0 {
				nonEmpty++
			}

			q, err := g.Querier(tenant, mint, maxt)
			require.NoError(t, err)
			var lms []*labels.Matcher
			if rng.IntN(2) == 0 {
				lms = ms
			}
			names, _, err := q.LabelNames(ctx, nil, lms...)
			require.NoError(t, err)
			checkLabels(t, mdl, tenant, mint, maxt, "", lms, names, "step %d label names %v", step, lms)
			pq := pebbleQuerier(t, g, tenant, mint, maxt)
			pnames, _, err := pq.LabelNames(ctx, nil, lms...)
			require.NoError(t, err)
			require.Equal(t, mdl.labelQuery(tenant, mint, maxt, "", lms, true), nilIfEmpty(pnames), "step %d label names from Pebble %v", step, lms)
			name := []string{"job", "instance", "zone", "__name__"}[rng.IntN(4)]
			vals, _, err := q.LabelValues(ctx, name, nil, lms...)
			require.NoError(t, err)
			checkLabels(t, mdl, tenant, mint, maxt, name, lms, vals, "step %d label values %s %v", step, name, lms)
			pvals, _, err := pq.LabelValues(ctx, name, nil, lms...)
			require.NoError(t, err)
			require.Equal(t, mdl.labelQuery(tenant, mint, maxt, name, lms, true), nilIfEmpty(pvals), "step %d label values from Pebble %s %v", step, name, lms)
			require.NoError(t, pq.Close())
			require.NoError(t, q.Close())
		}
	}
	for i, b := range batches {
		idx := uint64(i + 1)
		wantErrs[i] = mdl.apply(b)
		for _, s := range b.Series {
			for _, x := range s.Samples {
				maxTs = max(maxTs, x.T)
			}
		}
		errs, err := g.Apply(idx, write.Append(nil, b))
		require.NoError(t, err)
		require.Equal(t, wantErrs[i], errKinds(errs), "step %d errors", i)
		rejections += len(errs)
		if rng.IntN(5) == 0 {
			check(i)
		}
		switch rng.IntN(25) {
		case 0:
			require.NoError(t, g.Checkpoint())
		case 1: // restart, maybe after a checkpoint; replay from the recovered index
			if rng.IntN(2) == 0 {
				require.NoError(t, g.Checkpoint())
			}
			restarts++
			require.NoError(t, db.Close())
			db, err = Open(opts)
			require.NoError(t, err)
			var from uint64
			g, from, err = db.OpenGroup(3)
			require.NoError(t, err)
			for j := from; j < idx; j++ {
				errs, err := g.Apply(j+1, write.Append(nil, batches[j]))
				require.NoError(t, err)
				require.Equal(t, wantErrs[j], errKinds(errs), "replay of %d after restart at %d", j+1, idx)
			}
			check(i)
		}
	}
	check(len(batches))
	require.NoError(t, g.Checkpoint())
	t.Logf("chunk samples %d: %d selects (%d non-empty), %d restarts, %d series with rejections, %d out-of-order samples and %d histograms accepted",
		opts.ChunkSamples, selects, nonEmpty, restarts, rejections, mdl.ooo, mdl.oooHist)

	// A replica that never restarted holds the same bytes.
	opts.FS = vfs.NewMem()
	db2, err := Open(opts)
	require.NoError(t, err)
	defer db2.Close()
	g2, _, err := db2.OpenGroup(3)
	require.NoError(t, err)
	for i, b := range batches {
		_, err := g2.Apply(uint64(i+1), write.Append(nil, b))
		require.NoError(t, err)
	}
	require.NoError(t, g2.Checkpoint())
	d := dump(t, db)
	requireSameDump(t, dump(t, db2), d)
	evicted := 0
	for _, kv := range d {
		if kv[2*(prefixLen-1):2*prefixLen] == fmt.Sprintf("%x", kindEvicted) {
			evicted++
		}
	}
	t.Logf("%d series evicted at least once", evicted)
	_ = fs
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
