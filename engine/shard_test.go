package engine

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// TestSelectShard: a select with SelectHints' ShardIndex and ShardCount
// returns the series whose labels.StableHash modulo the count is the
// index, with all their samples; the shards of a count are disjoint and
// hold every series.
func TestSelectShard(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	bb := write.NewBuilder("t")
	for i := range 60 {
		l := labels.FromStrings("__name__", "m", "i", fmt.Sprint(i), "j", fmt.Sprint(i%4))
		require.NoError(t, bb.Add(l, []write.Sample{{T: 1, V: float64(i)}, {T: 2, V: 1}}))
	}
	apply(t, g, 1, bb.Batch())
	all := selectAll(t, g, "t", math.MinInt64, math.MaxInt64)
	require.Len(t, all, 60)
	q, err := g.Querier("t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	for _, n := range []uint64{1, 3, 7} {
		seen := map[string]bool{}
		for i := range n {
			ss := q.Select(context.Background(), true, &storage.SelectHints{Start: math.MinInt64, End: math.MaxInt64, ShardIndex: i, ShardCount: n},
				labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
			for ss.Next() {
				l := ss.At().Labels()
				require.Equal(t, i, labels.StableHash(l)%n, "%s in shard %d of %d", l, i, n)
				require.False(t, seen[l.String()])
				seen[l.String()] = true
				it := ss.At().Iterator(nil)
				k := 0
				for it.Next() != 0 {
					k++
				}
				require.Equal(t, 2, k)
			}
			require.NoError(t, ss.Err())
		}
		require.Len(t, seen, 60, "the %d shards hold every series", n)
	}
}
