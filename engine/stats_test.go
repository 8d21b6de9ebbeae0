package engine

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

func TestStats(t *testing.T) {
	db, g := openTest(t, testOptions(vfs.NewMem()))
	require.Empty(t, g.Stats())
	for i, tenant := range []string{"b", "a"} {
		bb := write.NewBuilder(tenant)
		for j := range 3 + i {
			require.NoError(t, bb.Add(labels.FromStrings("__name__", "m", "j", string(rune('a'+j))), []write.Sample{{T: 1000, V: 1}, {T: 2000 + int64(i), V: 2}}))
		}
		errs, err := g.ApplyBatch(uint64(i+1), bb.Batch())
		require.NoError(t, err)
		require.Empty(t, errs)
	}
	require.Equal(t, []TenantStats{{Tenant: "a", HeadSeries: 4, MaxTime: 2001}, {Tenant: "b", HeadSeries: 3, MaxTime: 2000}}, g.Stats())
	require.Positive(t, db.PebbleMetrics().DiskSpaceUsage())
}
