package engine

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// exBatch is a batch of tenant with, per series name, one sample at ts
// and a batch series of its exemplars (value, trace id) at ts, as the
// server builds them, with the exemplar limit max.
func exBatch(t testing.TB, tenant string, max int, ts int64, series ...string) *write.Batch {
	t.Helper()
	bb := write.NewBuilder(tenant)
	for _, name := range series {
		require.NoError(t, bb.Add(labels.FromStrings("__name__", name, "job", "api"), []write.Sample{{T: ts, V: 1}}))
	}
	for _, name := range series {
		require.NoError(t, bb.Add(labels.FromStrings("__name__", name, "job", "api"), nil))
	}
	b := bb.Batch()
	for i := range series {
		s := &b.Series[len(series)+i]
		s.Meta = &write.SeriesMeta{Exemplars: []write.Exemplar{{T: ts, V: float64(ts), Labels: write.AppendLabel(nil, "trace_id", fmt.Sprint(series[i], ts))}}}
	}
	b.MetaLimits.MaxExemplars = max
	return b
}

// exemplarsOf returns the group's exemplars of tenant in [mint, maxt] as
// "series@t=v{labels}" strings.
func exemplarsOf(t testing.TB, g *Group, tenant string, mint, maxt int64, sets ...[]*labels.Matcher) []string {
	t.Helper()
	q, err := g.Querier(tenant, mint, maxt)
	require.NoError(t, err)
	defer q.Close()
	res, err := q.(*querier).SelectExemplars(context.Background(), mint, maxt, sets...)
	require.NoError(t, err)
	return formatExemplars(res)
}

func formatExemplars(res []exemplar.QueryResult) []string {
	var out []string
	for _, r := range res {
		for _, e := range r.Exemplars {
			out = append(out, fmt.Sprintf("%s@%d=%g%s", r.SeriesLabels.Get("__name__"), e.Ts, e.Value, e.Labels))
		}
	}
	return out
}

func TestExemplarsApplyAndSelect(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	require.Empty(t, apply(t, g, 1, exBatch(t, "t", 10, 1000, "a", "b")))
	require.Empty(t, apply(t, g, 2, exBatch(t, "t", 10, 1100, "a")))
	require.Equal(t, []string{
		`a@1000=1000{trace_id="a1000"}`, `a@1100=1100{trace_id="a1100"}`, `b@1000=1000{trace_id="b1000"}`,
	}, exemplarsOf(t, g, "t", 0, 2000))
	require.Equal(t, []string{`a@1100=1100{trace_id="a1100"}`}, exemplarsOf(t, g, "t", 1050, 2000))
	require.Equal(t, []string{`b@1000=1000{trace_id="b1000"}`},
		exemplarsOf(t, g, "t", 0, 2000, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "b")}))
	require.Empty(t, exemplarsOf(t, g, "other", 0, 2000), "tenants do not see each other's exemplars")

	// A retry of the newest is accepted and not stored twice; an older
	// one is out of order.
	retry := exBatch(t, "t", 10, 1100, "a")
	require.Empty(t, apply(t, g, 3, retry))
	old := exBatch(t, "t", 10, 1200, "a")
	old.Series[1].Meta.Exemplars = append(old.Series[1].Meta.Exemplars, write.Exemplar{T: 1150, V: 1})
	refused := apply(t, g, 4, old)
	require.Len(t, refused, 1)
	require.Equal(t, 1, refused[0].Series)
	require.Equal(t, 1, refused[0].Rejected)
	require.ErrorIs(t, refused[0].Err, ErrOutOfOrderExemplar)
	require.Len(t, exemplarsOf(t, g, "t", 0, 2000), 4)

	// Exemplars of a series without samples, or with exemplars disabled.
	orphan := write.NewBuilder("t")
	require.NoError(t, orphan.Add(labels.FromStrings("__name__", "none"), nil))
	ob := orphan.Batch()
	ob.Series[0].Meta = &write.SeriesMeta{Exemplars: []write.Exemplar{{T: 5, V: 1}, {T: 6, V: 2}}}
	ob.MetaLimits.MaxExemplars = 10
	refused = apply(t, g, 5, ob)
	require.Len(t, refused, 1)
	require.Equal(t, 2, refused[0].Rejected)
	require.ErrorIs(t, refused[0].Err, ErrExemplarNoSeries)
	refused = apply(t, g, 6, exBatch(t, "t", 0, 1300, "a"))
	require.Len(t, refused, 1)
	require.ErrorIs(t, refused[0].Err, ErrExemplarsDisabled)
}

// TestExemplarBufferWraps: a full buffer drops its oldest exemplars, and
// an entry with another size resizes it keeping the newest.
func TestExemplarBufferWraps(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	for i := range 5 {
		apply(t, g, uint64(i+1), exBatch(t, "t", 3, int64(1000+i), "a", "b"))
	}
	require.Equal(t, []string{`a@1004=1004{trace_id="a1004"}`, `b@1003=1003{trace_id="b1003"}`, `b@1004=1004{trace_id="b1004"}`},
		exemplarsOf(t, g, "t", 0, 2000))
	apply(t, g, 6, exBatch(t, "t", 2, 1005, "b"))
	require.Equal(t, []string{`b@1004=1004{trace_id="b1004"}`, `b@1005=1005{trace_id="b1005"}`}, exemplarsOf(t, g, "t", 0, 2000))
	es := g.mu.tenants["t"].mu.exemplars
	require.Len(t, es.series, 1, "series a left the index with its last exemplar")
	apply(t, g, 7, exBatch(t, "t", 4, 1006, "a"))
	require.Len(t, exemplarsOf(t, g, "t", 0, 2000), 3)
}

// TestExemplarsRestartAndSnapshot: exemplars and metadata survive a
// restart (checkpoint plus replay of the entries after it) and a
// snapshot, and replicas that checkpoint at different times hold the
// same bytes.
func TestExemplarsRestartAndSnapshot(t *testing.T) {
	var batches []*write.Batch
	for i := range 40 {
		b := exBatch(t, "t", 25, int64(1000+i*10), "a", "b", "c")
		if i%7 == 0 {
			// Metadata only, as the server sends it: its own series.
			bb := write.NewBuilder("t")
			require.NoError(t, bb.Add(labels.FromStrings("__name__", "a"), nil))
			mb := bb.Batch()
			b.Series = append(b.Series, mb.Series[0])
			b.Series[len(b.Series)-1].Meta = &write.SeriesMeta{Metadata: &write.Metadata{Family: "a", Type: 1, Help: fmt.Sprint("help ", i%2)}}
		}
		batches = append(batches, b)
	}
	opts := testOptions(nil)
	var dumps [][]string
	var want []string
	for replica := range 2 {
		opts.FS = vfs.NewMem()
		db, g := openTest(t, opts)
		for i, b := range batches {
			require.Empty(t, apply(t, g, uint64(i+1), b))
			if replica == 0 && i%9 == 0 {
				require.NoError(t, g.Checkpoint())
			}
		}
		require.NoError(t, g.Checkpoint())
		dumps = append(dumps, dump(t, db))
		want = exemplarsOf(t, g, "t", math.MinInt64, math.MaxInt64)
	}
	requireSameDump(t, dumps[0], dumps[1])
	require.Len(t, want, 25)

	// Restart: a checkpoint at 20, entries up to 30, a crash; replay.
	fs := vfs.NewMem()
	opts.FS = fs
	db, err := Open(opts)
	require.NoError(t, err)
	g, _, err := db.OpenGroup(7)
	require.NoError(t, err)
	for i := range 30 {
		apply(t, g, uint64(i+1), batches[i])
		if i == 19 {
			require.NoError(t, g.Checkpoint())
		}
	}
	require.NoError(t, db.Close())
	db, err = Open(opts)
	require.NoError(t, err)
	defer db.Close()
	g, idx, err := db.OpenGroup(7)
	require.NoError(t, err)
	require.Equal(t, uint64(20), idx)
	for i := idx; i < uint64(len(batches)); i++ {
		require.Empty(t, apply(t, g, i+1, batches[i]), "entry %d", i+1)
	}
	require.Equal(t, want, exemplarsOf(t, g, "t", math.MinInt64, math.MaxInt64))
	require.NoError(t, g.Checkpoint())
	requireSameDump(t, dumps[0], dump(t, db))

	// Snapshot into another store.
	var buf bytes.Buffer
	require.NoError(t, g.Snapshot(&buf))
	opts.FS = vfs.NewMem()
	_, dst := openTest(t, opts)
	require.NoError(t, dst.Restore(bytes.NewReader(buf.Bytes())))
	require.Equal(t, want, exemplarsOf(t, dst, "t", math.MinInt64, math.MaxInt64))
	q, err := dst.Querier("t", 0, 0)
	require.NoError(t, err)
	md, err := q.(*querier).Metadata(context.Background(), "")
	require.NoError(t, err)
	require.Equal(t, []write.Metadata{{Family: "a", Type: 1, Help: "help 0"}, {Family: "a", Type: 1, Help: "help 1"}}, md)
}

func TestMetadataLimits(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	idx := uint64(0)
	put := func(ts int64, lim write.MetaLimits, ms ...write.Metadata) []write.Refusal {
		bb := write.NewBuilder("t")
		require.NoError(t, bb.Add(labels.FromStrings("__name__", "clock"), []write.Sample{{T: ts, V: 1}}))
		for _, m := range ms {
			require.NoError(t, bb.Add(labels.FromStrings("__name__", m.Family), nil))
		}
		b := bb.Batch()
		for i := range ms {
			b.Series[i+1].Meta = &write.SeriesMeta{Metadata: &ms[i]}
		}
		b.MetaLimits = lim
		idx++
		return apply(t, g, idx, b)
	}
	list := func(metric string) []write.Metadata {
		q, err := g.Querier("t", 0, 0)
		require.NoError(t, err)
		defer q.Close()
		md, err := q.(*querier).Metadata(context.Background(), metric)
		require.NoError(t, err)
		return md
	}
	lim := write.MetaLimits{MaxMetadata: 2, MaxMetadataPerMetric: 2}
	require.Empty(t, put(1000, lim, write.Metadata{Family: "a", Type: 1, Help: "A"}, write.Metadata{Family: "b", Type: 2, Help: "B"}))
	refused := put(2000, lim, write.Metadata{Family: "c", Type: 2, Help: "C"}, write.Metadata{Family: "a", Type: 1, Help: "A"})
	require.Len(t, refused, 1)
	require.Equal(t, 1, refused[0].Series)
	require.ErrorIs(t, refused[0].Err, ErrMetadataLimit)
	require.Empty(t, put(3000, lim, write.Metadata{Family: "a", Type: 1, Help: "A2"}))
	refused = put(4000, lim, write.Metadata{Family: "a", Type: 1, Help: "A3"})
	require.Len(t, refused, 1)
	require.True(t, errors.Is(refused[0].Err, ErrMetadataPerMetricLimit))
	require.Equal(t, []write.Metadata{{Family: "a", Type: 1, Help: "A"}, {Family: "a", Type: 1, Help: "A2"}}, list("a"))
	require.Len(t, list(""), 3)
	// Ten minutes of sample time later, what was not seen again is gone
	// and makes room.
	require.Empty(t, put(2001+metadataRetain, lim, write.Metadata{Family: "a", Type: 1, Help: "A2"}))
	require.Equal(t, []write.Metadata{{Family: "a", Type: 1, Help: "A2"}}, list(""))
	require.Empty(t, put(2002+metadataRetain, lim, write.Metadata{Family: "c", Type: 2, Help: "C"}))
	require.Len(t, list(""), 2)
}

// TestExemplarPagesGolden freezes the stored form of exemplars and
// metadata ('m' 'E' and 'm' 'M' pages, version 1): fixed entries
// (exemplars with and without labels, a StaleNaN value, a buffer that
// wrapped, metadata of two families), checkpointed, every page key and
// value compared with testdata/exemplar_pages.golden (-rewrite). A format
// change bumps the page version, updates exemplars.go and doc.go, and
// rewrites it; and what was stored stays readable: the golden pages
// load back to the same exemplars.
func TestExemplarPagesGolden(t *testing.T) {
	db, g := openTest(t, testOptions(vfs.NewMem()))
	for i := range 6 {
		b := exBatch(t, "acme", 4, int64(1000+i*100), "a", "b")
		b.Series[2].Meta.Exemplars[0].Labels = nil // a's exemplars without labels
		if i == 5 {
			b.Series[3].Meta.Exemplars[0].V = math.Float64frombits(value.StaleNaN)
		}
		bb := write.NewBuilder("acme")
		require.NoError(t, bb.Add(labels.FromStrings("__name__", "a"), nil))
		require.NoError(t, bb.Add(labels.FromStrings("__name__", "b_seconds"), nil))
		mb := bb.Batch()
		mb.Series[0].Meta = &write.SeriesMeta{Metadata: &write.Metadata{Family: "a", Type: 2, Help: "Gauge α."}}
		mb.Series[1].Meta = &write.SeriesMeta{Metadata: &write.Metadata{Family: "b_seconds", Type: 3, Unit: "seconds", Help: fmt.Sprint("v", i%2)}}
		b.Series = append(b.Series, mb.Series...)
		require.Empty(t, apply(t, g, uint64(i+1), b))
	}
	require.NoError(t, g.Checkpoint())
	want := exemplarsOf(t, g, "acme", math.MinInt64, math.MaxInt64)
	require.Len(t, want, 4)

	var text strings.Builder
	it, err := db.pdb.NewIter(nil)
	require.NoError(t, err)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) > prefixLen && k[8] == kindMeta && (k[9] == metaExemplars || k[9] == metaMetadata) {
			fmt.Fprintf(&text, "%x %c %x\n%s", k[:9], k[9], k[10:], hex.Dump(it.Value()))
		}
	}
	require.NoError(t, errors.Join(it.Error(), it.Close()))
	path := filepath.Join("testdata", "exemplar_pages.golden")
	if *rewrite {
		require.NoError(t, os.WriteFile(path, []byte(text.String()), 0o644))
	}
	golden, err := os.ReadFile(path)
	require.NoError(t, err, "run with -rewrite to create it")
	if text.String() != string(golden) {
		t.Errorf("the stored exemplar or metadata pages changed (bump their version, update doc.go, -rewrite):\n%s", lineDiff(string(golden), text.String()))
	}

	// The golden pages load back.
	es := &exemplarStore{series: map[string]*exSeries{}}
	ms := &metaStore{families: map[string][]metaEntry{}}
	var kind byte
	var dump strings.Builder
	flush := func() {
		if dump.Len() == 0 {
			return
		}
		var v []byte
		for line := range strings.Lines(dump.String()) {
			hexPart, _, _ := strings.Cut(line[10:], "  |")
			for f := range strings.FieldsSeq(hexPart) {
				b, err := hex.DecodeString(f)
				require.NoError(t, err)
				v = append(v, b...)
			}
		}
		if kind == metaExemplars {
			require.NoError(t, loadExemplarPage(es, v))
		} else {
			require.NoError(t, loadMetadataPage(ms, v))
		}
		dump.Reset()
	}
	for line := range strings.Lines(string(golden)) {
		if f := strings.Fields(line); len(f) == 3 && len(f[0]) == 18 {
			flush()
			kind = f[1][0]
			continue
		}
		dump.WriteString(line)
	}
	flush()
	require.Equal(t, want, formatExemplars(es.selectExemplars(math.MinInt64, math.MaxInt64, nil)))
	require.Equal(t, []write.Metadata{{Family: "a", Type: 2, Help: "Gauge α."},
		{Family: "b_seconds", Type: 3, Unit: "seconds", Help: "v0"}, {Family: "b_seconds", Type: 3, Unit: "seconds", Help: "v1"}},
		ms.list("", 1500))
}
