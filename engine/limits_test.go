package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// headSeries returns the tenant's series with samples in the head, as
// Stats reports them.
func headSeries(g *Group, tenant string) int {
	for _, ts := range g.Stats() {
		if ts.Tenant == tenant {
			return ts.HeadSeries
		}
	}
	return 0
}

// TestSeriesLimits: the limits an entry carries refuse series the head
// does not hold when they would go past them; series it holds keep
// being written; a series evicted leaves the count, and counts again
// when it comes back.
func TestSeriesLimits(t *testing.T) {
	opts := testOptions(vfs.NewMem())
	opts.Partition = time.Hour
	opts.EvictIdle = 4 * time.Second
	_, g := openTest(t, opts)
	m := func(name, id string) labels.Labels { return labels.FromStrings("__name__", name, "id", id) }
	smp := func(ts ...int64) []write.Sample {
		var out []write.Sample
		for _, t := range ts {
			out = append(out, write.Sample{T: t, V: 1})
		}
		return out
	}
	lim := func(b *write.Batch, perUser, perMetric int) *write.Batch {
		b.Limits = write.SeriesLimits{MaxSeries: perUser, MaxSeriesPerMetric: perMetric}
		return b
	}
	steps := []struct {
		name  string
		b     *write.Batch
		want  []string // errKinds
		heads int
	}{
		{"third series refused whole", lim(buildBatch(t, "t", m("a", "1"), smp(1000, 1001), m("a", "2"), smp(1000), m("a", "3"), smp(1000, 1001, 1002)), 2, 0),
			[]string{"2:3:series-limit"}, 2},
		{"held series accepted, the third still refused", lim(buildBatch(t, "t", m("a", "1"), smp(1100), m("a", "3"), smp(1100)), 2, 0),
			[]string{"1:1:series-limit"}, 2},
		{"a raised limit admits it", lim(buildBatch(t, "t", m("a", "3"), smp(1200)), 3, 0), nil, 3},
		{"no limit", buildBatch(t, "t", m("b", "1"), smp(1300)), nil, 4},
		{"per metric", lim(buildBatch(t, "t", m("b", "2"), smp(1400), m("c", "1"), smp(1400), m("c", "2"), smp(1400)), 0, 1),
			[]string{"0:1:metric-limit", "2:1:metric-limit"}, 5},
		{"a lowered limit keeps the held series", lim(buildBatch(t, "t", m("a", "1"), smp(1500), m("a", "2"), smp(1500), m("d", "1"), smp(1500)), 1, 1),
			[]string{"2:1:series-limit"}, 5},
		{"refused samples before the refusal count once", lim(buildBatch(t, "t", m("e", "1"), smp(1600, 1700)), 5, 0),
			[]string{"0:2:series-limit"}, 5},
		// The first scan since the others were written keeps them (a
		// series written since the previous scan is not idle); a:1 goes
		// on alone.
		{"written since the last scan: kept", lim(buildBatch(t, "t", m("a", "1"), smp(6_000)), 5, 0), nil, 5},
		// Only a:1 writes for 10 s of sample time: the others are evicted.
		{"eviction frees the count", lim(buildBatch(t, "t", m("a", "1"), smp(11_600)), 5, 0), nil, 1},
		{"new series after eviction", lim(buildBatch(t, "t", m("f", "1"), smp(11_700)), 2, 0), nil, 2},
		{"a revived series counts again", lim(buildBatch(t, "t", m("a", "2"), smp(11_800)), 2, 0), []string{"0:1:series-limit"}, 2},
		{"revived under the limit", lim(buildBatch(t, "t", m("a", "2"), smp(11_900)), 3, 0), nil, 3},
	}
	for i, s := range steps {
		got := errKinds(apply(t, g, uint64(i+1), s.b))
		require.Equal(t, s.want, got, "%s", s.name)
		require.Equal(t, s.heads, headSeries(g, "t"), "%s: head series", s.name)
	}
	// The refusal names the limit and the count.
	errs := apply(t, g, 100, lim(buildBatch(t, "t", m("g", "1"), smp(12_000)), 3, 0))
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0].Err, write.ErrSeriesLimit)
	require.Contains(t, errs[0].Err.Error(), "3 series of the tenant in this group, the group's share of the limit is 3")
	errs = apply(t, g, 101, lim(buildBatch(t, "t", m("a", "9"), smp(12_000)), 0, 2))
	require.Len(t, errs, 1)
	require.Contains(t, errs[0].Err.Error(), `2 series of metric "a" in this group, the group's share of the limit is 2`)
	// Another tenant has its own count.
	require.Empty(t, apply(t, g, 102, lim(buildBatch(t, "u", m("a", "1"), smp(1)), 1, 0)))
}

// TestSeriesLimitsDeterministic: replicas that restart at different
// points (recovering a checkpoint and replaying the log after it) refuse
// exactly the series a replica that never restarted refuses, and hold
// the same data and counts, whatever the limits of each entry.
func TestSeriesLimitsDeterministic(t *testing.T) {
	seed := seedFromEnv(t)
	rng := newRand(seed)
	batches := randomBatches(t, seed, 120)
	for _, b := range batches {
		b.Limits = write.SeriesLimits{MaxSeries: rng.IntN(16), MaxSeriesPerMetric: rng.IntN(8)}
	}
	opts := testOptions(nil)
	run := func(restartAt map[int]bool, checkpointAt map[int]bool) (*DB, *Group, [][]string) {
		opts.FS = vfs.NewMem()
		db, err := Open(opts)
		require.NoError(t, err)
		g, _, err := db.OpenGroup(7)
		require.NoError(t, err)
		outcomes := make([][]string, len(batches))
		for i := 0; i < len(batches); i++ {
			outcomes[i] = errKinds(apply(t, g, uint64(i+1), batches[i]))
			if checkpointAt[i] {
				require.NoError(t, g.Checkpoint())
			}
			if restartAt[i] {
				require.NoError(t, db.Close())
				db, err = Open(opts)
				require.NoError(t, err)
				var from uint64
				g, from, err = db.OpenGroup(7)
				require.NoError(t, err)
				// Replay from the checkpoint: the same refusals again.
				for j := int(from); j <= i; j++ {
					require.Equal(t, outcomes[j], errKinds(apply(t, g, uint64(j+1), batches[j])), "replay of entry %d (seed %d)", j+1, seed)
				}
			}
		}
		require.NoError(t, g.Checkpoint())
		return db, g, outcomes
	}
	refDB, ref, want := run(nil, map[int]bool{60: true})
	defer refDB.Close()
	limited := 0
	for _, o := range want {
		for _, k := range o {
			if len(k) > 6 && (k[len(k)-6:] == "-limit") {
				limited++
			}
		}
	}
	require.NotZero(t, limited, "no entry hit a limit (seed %d)", seed)
	for _, tc := range []struct {
		name                 string
		restart, checkpoints map[int]bool
	}{
		{"restart without checkpoint", map[int]bool{50: true}, nil},
		{"restarts after checkpoints", map[int]bool{40: true, 90: true}, map[int]bool{20: true, 70: true, 85: true}},
		{"checkpoint every entry", map[int]bool{30: true, 100: true}, everyIndex(len(batches))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, g, got := run(tc.restart, tc.checkpoints)
			defer db.Close()
			require.Equal(t, want, got, "refusals (seed %d)", seed)
			requireSameDump(t, dump(t, refDB), dump(t, db))
			require.Equal(t, ref.Stats(), g.Stats())
			for _, tenant := range []string{"alpha", "beta"} {
				require.Equal(t, selectAll(t, ref, tenant, math.MinInt64, math.MaxInt64), selectAll(t, g, tenant, math.MinInt64, math.MaxInt64))
			}
		})
	}
}

func everyIndex(n int) map[int]bool {
	m := map[int]bool{}
	for i := range n {
		m[i] = true
	}
	return m
}

// BenchmarkMetricName: the metric name of a node_exporter label set,
// read once per series that enters or leaves the head.
func BenchmarkMetricName(b *testing.B) {
	enc := write.AppendLabel(nil, "__name__", "node_cpu_seconds_total")
	for _, kv := range [][2]string{{"cpu", "3"}, {"instance", "host-042.example.org:9100"}, {"job", "node"}, {"mode", "idle"}} {
		enc = write.AppendLabel(enc, kv[0], kv[1])
	}
	s := string(enc)
	for b.Loop() {
		if metricName(s) != "node_cpu_seconds_total" {
			b.Fatal(fmt.Sprint(metricName(s)))
		}
	}
}

// testBudget is a ReadBudget with fixed limits that records what it was
// asked.
type testBudget struct {
	maxSeries, maxBytes int
	selects             []int
	bytes               int
}

var errTestBudget = errors.New("test budget exceeded")

func (b *testBudget) CheckSelect(n int) error {
	b.selects = append(b.selects, n)
	if n > b.maxSeries {
		return fmt.Errorf("%w: %d series", errTestBudget, n)
	}
	return nil
}

func (b *testBudget) AddChunkBytes(n int) error {
	b.bytes += n
	if b.bytes > b.maxBytes {
		return fmt.Errorf("%w: %d bytes", errTestBudget, b.bytes)
	}
	return nil
}

// TestReadBudget: a select asks the budget before it holds the series
// the index matched (a hint's limit counts), series iterators count each
// chunk before holding it, and a refusal is the budget's error as it is.
func TestReadBudget(t *testing.T) {
	opts := testOptions(vfs.NewMem())
	opts.Partition = time.Hour
	_, g := openTest(t, opts)
	var args []any
	for i := range 10 {
		var smp []write.Sample
		for ts := int64(0); ts < 3*3600_000; ts += 15_000 {
			smp = append(smp, write.Sample{T: ts, V: float64(i)})
		}
		args = append(args, labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), smp)
	}
	require.Empty(t, apply(t, g, 1, buildBatch(t, "t", args...)))
	ctx := context.Background()
	read := func(b *testBudget, hints *storage.SelectHints) (series int, err error) {
		q, err := g.QuerierWithBudget("t", math.MinInt64, math.MaxInt64, b)
		require.NoError(t, err)
		defer q.Close()
		ss := q.Select(ctx, false, hints, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
		for ss.Next() {
			it := ss.At().Iterator(nil)
			for it.Next() != 0 {
			}
			if err := it.Err(); err != nil {
				return series, err
			}
			series++
		}
		return series, ss.Err()
	}
	// Within the budget: everything, every byte counted once.
	b := &testBudget{maxSeries: 10, maxBytes: 1 << 30}
	n, err := read(b, nil)
	require.NoError(t, err)
	require.Equal(t, 10, n)
	require.Equal(t, []int{10}, b.selects)
	total := b.bytes
	require.Positive(t, total)
	// Too many series: refused before any chunk is read, with the
	// budget's own text.
	b = &testBudget{maxSeries: 9, maxBytes: 1 << 30}
	_, err = read(b, nil)
	require.ErrorIs(t, err, errTestBudget)
	require.Equal(t, "test budget exceeded: 10 series", err.Error())
	require.Zero(t, b.bytes)
	// A hint's limit is what the select holds.
	b = &testBudget{maxSeries: 3, maxBytes: 1 << 30}
	n, err = read(b, &storage.SelectHints{Start: math.MinInt64, End: math.MaxInt64, Limit: 3})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	// Chunk bytes: the iterator that crosses the budget fails, having
	// counted at most one chunk past it.
	b = &testBudget{maxSeries: 10, maxBytes: total / 2}
	n, err = read(b, nil)
	require.ErrorIs(t, err, errTestBudget)
	require.True(t, strings.HasPrefix(err.Error(), "test budget exceeded: "), err.Error())
	require.Less(t, n, 10)
	require.Less(t, b.bytes, total)
}
