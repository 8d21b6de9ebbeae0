package querier

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/write"
)

// exemplarData writes series with exemplars (a StaleNaN value, labels
// with UTF-8, one without labels) and metadata of tenant t1 to group 1.
func exemplarData(t testing.TB) localGroups {
	t.Helper()
	groups := openGroups(t, engine.Options{}, 1)
	var a applier
	for i := range 5 {
		bb := write.NewBuilder(tenant)
		for _, job := range []string{"api", "db"} {
			require.NoError(t, bb.Add(labels.FromStrings("__name__", "req_total", "job", job), []write.Sample{{T: t0 + int64(i)*1000, V: float64(i)}}))
		}
		require.NoError(t, bb.Add(labels.FromStrings("__name__", "req_total", "job", "api"), nil))
		require.NoError(t, bb.Add(labels.FromStrings("__name__", "req_total"), nil))
		b := bb.Batch()
		v := float64(i)
		if i == 2 {
			v = math.Float64frombits(value.StaleNaN)
		}
		lbls := write.AppendLabel(nil, "trace_id", fmt.Sprint("tr→", i))
		if i == 3 {
			lbls = nil
		}
		b.Series[2].Meta = &write.SeriesMeta{Exemplars: []write.Exemplar{{T: t0 + int64(i)*1000, V: v, Labels: lbls}}}
		b.Series[3].Meta = &write.SeriesMeta{Metadata: &write.Metadata{Family: "req_total", Type: 1, Unit: "requests", Help: fmt.Sprint("Requests ", i%2)}}
		b.MetaLimits.MaxExemplars = 100
		a.apply(t, groups[1], b)
	}
	return groups
}

// TestRemoteExemplarsAndMetadata: a remote read of a group's exemplars
// and metadata answers what the local querier does, bit for bit.
func TestRemoteExemplarsAndMetadata(t *testing.T) {
	groups := exemplarData(t)
	srv := serve(t, groups)
	ctx := context.Background()
	m := labels.MustNewMatcher
	for _, tc := range []struct {
		name       string
		mint, maxt int64
		sets       [][]*labels.Matcher
	}{
		{"all", t0, t0 + 10_000, nil},
		{"matched", t0, t0 + 10_000, [][]*labels.Matcher{{m(labels.MatchEqual, "job", "api")}}},
		{"two sets", t0, t0 + 10_000, [][]*labels.Matcher{{m(labels.MatchEqual, "job", "nope")}, {m(labels.MatchRegexp, "__name__", "req.*"), m(labels.MatchNotEqual, "job", "db")}}},
		{"no match", t0, t0 + 10_000, [][]*labels.Matcher{{m(labels.MatchEqual, "job", "db")}}},
		{"narrow", t0 + 1000, t0 + 2500, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lq, err := groups[1].Querier(tenant, tc.mint, tc.maxt)
			require.NoError(t, err)
			defer lq.Close()
			want, err := lq.(exemplarSelecter).SelectExemplars(ctx, tc.mint, tc.maxt, tc.sets...)
			require.NoError(t, err)
			rq := NewRemote(srv.Client(), srv.URL, 1, tenant, tc.mint, tc.maxt)
			defer rq.Close()
			got, err := rq.SelectExemplars(ctx, tc.mint, tc.maxt, tc.sets...)
			require.NoError(t, err)
			require.Equal(t, exemplarStrings(want), exemplarStrings(got))
			if tc.name == "all" {
				require.Len(t, got, 1)
				require.Len(t, got[0].Exemplars, 5)
				require.Equal(t, value.StaleNaN, math.Float64bits(got[0].Exemplars[2].Value))
			}
		})
	}
	for _, metric := range []string{"", "req_total", "nope"} {
		lq, err := groups[1].Querier(tenant, 0, 0)
		require.NoError(t, err)
		want, err := lq.(metadataLister).Metadata(ctx, metric)
		require.NoError(t, err)
		require.NoError(t, lq.Close())
		rq := NewRemote(srv.Client(), srv.URL, 1, tenant, 0, 0)
		got, err := rq.Metadata(ctx, metric)
		require.NoError(t, err)
		require.NoError(t, rq.Close())
		require.Equal(t, want, got)
		if metric != "nope" {
			require.Equal(t, []write.Metadata{{Family: "req_total", Type: 1, Unit: "requests", Help: "Requests 0"},
				{Family: "req_total", Type: 1, Unit: "requests", Help: "Requests 1"}}, got)
		}
	}
	// Another tenant's are not there.
	rq := NewRemote(srv.Client(), srv.URL, 1, "t2", t0, t0+10_000)
	defer rq.Close()
	got, err := rq.SelectExemplars(ctx, t0, t0+10_000)
	require.NoError(t, err)
	require.Empty(t, got)
}

// exemplarStrings renders results with the value's bits, so NaNs compare.
func exemplarStrings(res []exemplar.QueryResult) []string {
	var out []string
	for _, r := range res {
		for _, e := range r.Exemplars {
			out = append(out, fmt.Sprintf("%s %d %x %s", r.SeriesLabels, e.Ts, math.Float64bits(e.Value), e.Labels))
		}
	}
	return out
}

// TestMergeExemplars: a series' exemplars from several groups become one
// list in time order, each exemplar once.
func TestMergeExemplars(t *testing.T) {
	s := func(name string, ts ...int64) exemplar.QueryResult {
		r := exemplar.QueryResult{SeriesLabels: labels.FromStrings("__name__", name)}
		for _, x := range ts {
			r.Exemplars = append(r.Exemplars, exemplar.Exemplar{Ts: x, Value: float64(x), HasTs: true, Labels: labels.EmptyLabels()})
		}
		return r
	}
	got := mergeExemplars([][]exemplar.QueryResult{{s("b", 1, 3), s("c", 1)}, {s("a", 2)}, {s("b", 2, 3, 4)}})
	require.Equal(t, []string{
		`{__name__="a"} 2 4000000000000000 {}`,
		`{__name__="b"} 1 3ff0000000000000 {}`, `{__name__="b"} 2 4000000000000000 {}`,
		`{__name__="b"} 3 4008000000000000 {}`, `{__name__="b"} 4 4010000000000000 {}`,
		`{__name__="c"} 1 3ff0000000000000 {}`,
	}, exemplarStrings(got))
}
