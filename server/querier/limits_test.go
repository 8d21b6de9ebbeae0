package querier

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/limits"
)

// TestRemoteReadLimits: a remote select carries the query's series
// limit, and the node that serves it refuses a select matching more
// before it loads them (422, the limit's text, a QueryLimitError on the
// client); the client counts the chunk bytes it receives and stops past
// the limit.
func TestRemoteReadLimits(t *testing.T) {
	srv := serve(t, protocolData(t))
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up") // 3 series of t1
	sel := func(b *limits.QueryBudget) (int, error) {
		rq := NewRemote(srv.Client(), srv.URL, 1, tenant, t0, t0+400*15_000)
		defer rq.Close()
		return readAllLoose(rq.Select(limits.WithQueryBudget(context.Background(), b), true, nil, up))
	}
	n, err := sel(limits.NewQueryBudget(3, 0))
	require.NoError(t, err)
	require.Equal(t, 300+50+130, n) // the samples of the three
	_, err = sel(limits.NewQueryBudget(2, 0))
	require.ErrorIs(t, err, limits.ErrQueryLimit)
	var qle *limits.QueryLimitError
	require.True(t, errors.As(err, &qle))
	require.Equal(t, limits.SeriesPerQueryError(2).Error(), qle.Error())

	_, err = sel(limits.NewQueryBudget(0, 1<<20))
	require.NoError(t, err)
	_, err = sel(limits.NewQueryBudget(0, 100))
	require.ErrorIs(t, err, limits.ErrQueryLimit)
	require.True(t, errors.As(err, &qle))
	require.Equal(t, limits.ChunkBytesPerQueryError(100).Error(), qle.Error())
}
