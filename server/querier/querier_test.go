package querier

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/write"
)

// writeSeries applies series → samples to g, one batch per call.
func writeSeries(t testing.TB, a *applier, g *engine.Group, series map[string][]int64) {
	t.Helper()
	bb := write.NewBuilder(tenant)
	for name, ts := range series {
		var samples []write.Sample
		for _, x := range ts {
			samples = append(samples, write.Sample{T: x, V: float64(x)})
		}
		require.NoError(t, bb.Add(labels.FromStrings("__name__", name), samples))
	}
	a.apply(t, g, bb.Batch())
}

func TestFanoutMerge(t *testing.T) {
	for _, tc := range []struct {
		name       string
		groups     []map[string][]int64 // data of groups 1, 2, ...
		sortSeries bool
		limit      int
		want       []seriesData
	}{
		{"one group", []map[string][]int64{{"a": {1, 2}}}, false, 0,
			[]seriesData{{`{__name__="a"}`, []sample{{1, bits(1)}, {2, bits(2)}}}}},
		{"disjoint series", []map[string][]int64{{"b": {1}}, {"a": {2}, "c": {3}}}, false, 0,
			[]seriesData{{`{__name__="a"}`, []sample{{2, bits(2)}}}, {`{__name__="b"}`, []sample{{1, bits(1)}}}, {`{__name__="c"}`, []sample{{3, bits(3)}}}}},
		{"moved series", []map[string][]int64{{"a": {1, 2, 3}}, {"a": {4, 5}}}, true, 0,
			[]seriesData{{`{__name__="a"}`, []sample{{1, bits(1)}, {2, bits(2)}, {3, bits(3)}, {4, bits(4)}, {5, bits(5)}}}}},
		{"overlap and duplicates", []map[string][]int64{{"a": {1, 2, 3, 4}}, {"a": {3, 4, 5}}, {"a": {2, 6}}}, false, 0,
			[]seriesData{{`{__name__="a"}`, []sample{{1, bits(1)}, {2, bits(2)}, {3, bits(3)}, {4, bits(4)}, {5, bits(5)}, {6, bits(6)}}}}},
		{"empty group", []map[string][]int64{{}, {"a": {1}}}, true, 0,
			[]seriesData{{`{__name__="a"}`, []sample{{1, bits(1)}}}}},
		{"limit", []map[string][]int64{{"a": {1}, "c": {1}}, {"b": {1}, "a": {2}}}, true, 2,
			[]seriesData{{`{__name__="a"}`, []sample{{1, bits(1)}, {2, bits(2)}}}, {`{__name__="b"}`, []sample{{1, bits(1)}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ids []ring.GroupID
			for i := range tc.groups {
				ids = append(ids, ring.GroupID(i+1))
			}
			groups := openGroups(t, engine.Options{}, ids...)
			var a applier
			for i, data := range tc.groups {
				if len(data) > 0 {
					writeSeries(t, &a, groups[ring.GroupID(i+1)], data)
				}
			}
			f := New(staticGroups{owners: ids, open: func(_ context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
				return groups.Querier(context.Background(), g, tenant, mint, maxt)
			}}, Options{})
			q, err := f.Querier(tenant, 0, 100)
			require.NoError(t, err)
			defer func() { require.NoError(t, q.Close()) }()
			got, err := selectAll(t, q, tc.sortSeries, &storage.SelectHints{Limit: tc.limit}, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func bits(v float64) uint64 { return math.Float64bits(v) }

// countingGroups wraps groups: it counts opens, closes and the opens in
// flight.
type countingGroups struct {
	Groups
	opens, closes   atomic.Int64
	inFlight, peak  atomic.Int64
	gate            chan struct{} // nil: no wait
	failOpen        ring.GroupID  // 0: none
	failLabelsGroup ring.GroupID
}

func (c *countingGroups) Querier(ctx context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if c.gate != nil {
		<-c.gate
	}
	if g == c.failOpen {
		return nil, errors.New("raft: no quorum")
	}
	c.opens.Add(1)
	q, err := c.Groups.Querier(ctx, g, tenant, mint, maxt)
	if err != nil {
		return nil, err
	}
	return &countingQuerier{Querier: q, c: c, g: g}, nil
}

type countingQuerier struct {
	storage.Querier
	c *countingGroups
	g ring.GroupID
}

func (q *countingQuerier) Close() error {
	q.c.closes.Add(1)
	return q.Querier.Close()
}

func (q *countingQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if q.g == q.c.failLabelsGroup {
		return nil, nil, errors.New("index corrupt")
	}
	names, ws, err := q.Querier.LabelNames(ctx, hints, ms...)
	var w annotations.Annotations
	w.Add(fmt.Errorf("warning from group %d", q.g))
	return names, w.Merge(ws), err
}

// sixGroups has series a, b, c in groups 1..6, each group with one more.
func sixGroups(t *testing.T) (localGroups, []ring.GroupID) {
	ids := []ring.GroupID{1, 2, 3, 4, 5, 6}
	groups := openGroups(t, engine.Options{}, ids...)
	var a applier
	for i, id := range ids {
		data := map[string][]int64{"common": {int64(i)}}
		data[string(rune('a'+i))] = []int64{1}
		writeSeries(t, &a, groups[id], data)
	}
	return groups, ids
}

func TestFanoutOpensLazilyOnceAndBounded(t *testing.T) {
	groups, ids := sixGroups(t)
	c := &countingGroups{Groups: staticGroups{owners: ids, open: groups.Querier}, gate: make(chan struct{})}
	f := New(c, Options{MaxConcurrency: 2})
	q, err := f.Querier(tenant, 0, 100)
	require.NoError(t, err)
	require.Zero(t, c.opens.Load(), "Querier opens nothing")

	var wg sync.WaitGroup
	var got []seriesData
	wg.Go(func() {
		got, err = selectAll(t, q, false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	})
	for range ids {
		c.gate <- struct{}{}
	}
	wg.Wait()
	require.NoError(t, err)
	require.Len(t, got, 7)
	require.Equal(t, `{__name__="common"}`, got[3].Labels)
	require.Len(t, got[3].Samples, 6, "common merged from six groups")
	require.LessOrEqual(t, c.peak.Load(), int64(2))

	close(c.gate) // no more waiting
	names, ws, err := q.LabelValues(context.Background(), "__name__", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c", "common", "d", "e", "f"}, names)
	require.Empty(t, ws)
	require.Equal(t, int64(6), c.opens.Load(), "each group opened once")

	require.NoError(t, q.Close())
	require.NoError(t, q.Close())
	require.Equal(t, int64(6), c.closes.Load())
	ss := q.Select(context.Background(), false, nil)
	require.False(t, ss.Next())
	require.ErrorContains(t, ss.Err(), "closed")
}

func TestFanoutLabels(t *testing.T) {
	groups, ids := sixGroups(t)
	c := &countingGroups{Groups: staticGroups{owners: ids, open: groups.Querier}}
	f := New(c, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		label string
		limit int
		ms    []*labels.Matcher
		want  []string
	}{
		{"names", "", 0, nil, []string{"__name__"}},
		{"values", "__name__", 0, nil, []string{"a", "b", "c", "common", "d", "e", "f"}},
		{"values limit", "__name__", 3, nil, []string{"a", "b", "c"}},
		{"values matched", "__name__", 0, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", "[ace].*")}, []string{"a", "c", "common", "e"}},
		{"values none", "job", 0, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := f.Querier(tenant, 0, 100)
			require.NoError(t, err)
			defer q.Close()
			var got []string
			var ws annotations.Annotations
			if tc.label == "" {
				got, ws, err = q.LabelNames(ctx, &storage.LabelHints{Limit: tc.limit}, tc.ms...)
				require.Len(t, ws, 6, "every group's warning")
			} else {
				got, _, err = q.LabelValues(ctx, tc.label, &storage.LabelHints{Limit: tc.limit}, tc.ms...)
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestFanoutErrorsNameTheGroup(t *testing.T) {
	groups, ids := sixGroups(t)
	for _, tc := range []struct {
		name string
		c    *countingGroups
		call func(q storage.Querier) error
		want string
	}{
		{"open on select", &countingGroups{failOpen: 4}, func(q storage.Querier) error {
			_, err := selectAll(t, q, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "a"))
			return err
		}, "open querier of group 4: raft: no quorum"},
		{"open on labels", &countingGroups{failOpen: 2}, func(q storage.Querier) error {
			_, _, err := q.LabelValues(context.Background(), "__name__", nil)
			return err
		}, "open querier of group 2: raft: no quorum"},
		{"label names", &countingGroups{failLabelsGroup: 5}, func(q storage.Querier) error {
			_, _, err := q.LabelNames(context.Background(), nil)
			return err
		}, "label names on group 5: index corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Groups = staticGroups{owners: ids, open: groups.Querier}
			q, err := New(tc.c, Options{}).Querier(tenant, 0, 100)
			require.NoError(t, err)
			err = tc.call(q)
			require.ErrorContains(t, err, tc.want)
			require.NoError(t, q.Close())
			require.Equal(t, tc.c.opens.Load(), tc.c.closes.Load(), "every opened querier closed")
		})
	}
}

func TestFanoutNoOwners(t *testing.T) {
	q, err := New(staticGroups{}, Options{}).Querier(tenant, 0, 100)
	require.NoError(t, err)
	require.False(t, q.Select(context.Background(), true, nil).Next())
	names, _, err := q.LabelNames(context.Background(), nil)
	require.NoError(t, err)
	require.Empty(t, names)
	require.NoError(t, q.Close())
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"zero", Options{}.Validate()},
		{"negative concurrency", Options{MaxConcurrency: -1}.Validate()},
		{"handler zero", HandlerOptions{}.Validate()},
		{"handler negative", HandlerOptions{FlushBytes: -1, MaxRequestBytes: -1}.Validate()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.name {
			case "zero", "handler zero":
				require.NoError(t, tc.err)
			case "handler negative":
				require.ErrorContains(t, tc.err, "flush bytes")
				require.ErrorContains(t, tc.err, "max request bytes")
			default:
				require.Error(t, tc.err)
			}
		})
	}
}
