package querier

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/write"
)

const tenant = "t1"

// localGroups serves the groups of one engine; any other group is not
// led here.
type localGroups map[ring.GroupID]*engine.Group

func (l localGroups) Querier(ctx context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
	eg, ok := l[g]
	if !ok {
		return nil, fmt.Errorf("group %d: not led here", g)
	}
	// As Verified does: the engine counts its reads against the query's
	// budget.
	var rb engine.ReadBudget
	if b := limits.QueryBudgetFrom(ctx); b != nil {
		rb = b
	}
	return eg.QuerierWithBudget(tenant, mint, maxt, rb)
}

// openGroups opens an engine in a temporary directory with the groups
// ids.
func openGroups(t testing.TB, opts engine.Options, ids ...ring.GroupID) localGroups {
	t.Helper()
	opts.Dir = t.TempDir()
	db, err := engine.Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	out := localGroups{}
	for _, id := range ids {
		g, _, err := db.OpenGroup(uint32(id))
		require.NoError(t, err)
		out[id] = g
	}
	return out
}

// applier applies batches to groups with increasing indexes.
type applier struct {
	index map[*engine.Group]uint64
}

func (a *applier) apply(t testing.TB, g *engine.Group, b *write.Batch) {
	t.Helper()
	if len(b.Series) == 0 {
		return
	}
	if a.index == nil {
		a.index = map[*engine.Group]uint64{}
	}
	a.index[g]++
	refused, err := g.ApplyBatch(a.index[g], b)
	require.NoError(t, err)
	require.Empty(t, refused)
}

// serve starts an httptest server of the remote protocol over local.
func serve(t testing.TB, local LocalGroups) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(local, HandlerOptions{}))
	t.Cleanup(srv.Close)
	return srv
}

// sample is one float sample, compared by value bits.
type sample struct {
	T int64
	V uint64 // math.Float64bits
}

type seriesData struct {
	Labels  string
	Samples []sample
}

// readAll drains a series set, iterating every series after the set is
// exhausted (as PromQL does), and returns the series in order.
func readAll(t testing.TB, ss storage.SeriesSet) ([]seriesData, error) {
	t.Helper()
	var list []storage.Series
	for ss.Next() {
		list = append(list, ss.At())
	}
	if err := ss.Err(); err != nil {
		return nil, err
	}
	out := make([]seriesData, 0, len(list))
	var it chunkenc.Iterator
	for _, s := range list {
		d := seriesData{Labels: s.Labels().String()}
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			require.Equal(t, chunkenc.ValFloat, vt)
			ts, v := it.At()
			require.Equal(t, ts, it.AtT())
			d.Samples = append(d.Samples, sample{ts, math.Float64bits(v)})
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// selectAll opens a querier from qa over [mint, maxt] and reads a select.
func selectAll(t testing.TB, q storage.Querier, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) ([]seriesData, error) {
	t.Helper()
	return readAll(t, q.Select(context.Background(), sortSeries, hints, ms...))
}

// roundTripFunc is an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
