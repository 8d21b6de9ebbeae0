package engine

import (
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

func buildBatch(t testing.TB, tenant string, series ...any) *write.Batch {
	t.Helper()
	bb := write.NewBuilder(tenant)
	for i := 0; i+1 < len(series); i += 2 {
		require.NoError(t, bb.Add(series[i].(labels.Labels), series[i+1].([]write.Sample)))
	}
	return bb.Batch()
}

// TestApplyRefusesInvalidLabels: write.Decode leaves label sets to Apply,
// which refuses the samples of a series with invalid labels and applies
// the rest of the batch.
func TestApplyRefusesInvalidLabels(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	b := buildBatch(t, "t", labels.FromStrings("a", "b"), []write.Sample{{T: 1, V: 1}})
	b.Series = append(b.Series,
		write.Series{Labels: []byte("b\xff1\xffa\xff1\xff"), Samples: []write.Sample{{T: 1, V: 1}, {T: 2, V: 2}}},
		write.Series{Labels: []byte("c\xffd\xff"), Samples: []write.Sample{{T: 1, V: 1}}})
	errs, err := g.Apply(1, write.Append(nil, b))
	require.NoError(t, err)
	require.Len(t, errs, 1)
	require.Equal(t, 1, errs[0].Series)
	require.Equal(t, 2, errs[0].Rejected)
	require.ErrorIs(t, errs[0].Err, write.ErrInvalidLabels)
	require.Len(t, selectAll(t, g, "t", math.MinInt64, math.MaxInt64), 2)
}
