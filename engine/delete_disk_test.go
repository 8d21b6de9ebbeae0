package engine

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// sstContains reports whether a live table file of the store (obsolete
// ones are deleted in the background) holds needle in its bytes. Pebble
// compresses blocks with Snappy, which keeps the first occurrence of a
// string in a block as a literal.
func sstContains(t *testing.T, db *DB, fs vfs.FS, needle string) bool {
	t.Helper()
	levels, err := db.pdb.SSTables()
	require.NoError(t, err)
	for _, level := range levels {
		for _, info := range level {
			f, err := fs.Open(fs.PathJoin("db", fmt.Sprintf("%s.sst", info.BackingSSTNum)))
			require.NoError(t, err)
			b, err := io.ReadAll(f)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			if bytes.Contains(b, []byte(needle)) {
				return true
			}
		}
	}
	return false
}

// TestDeletedDataLeavesDisk: after a series deletion and a tenant
// deletion, once Pebble has compacted the range, no table file holds a
// byte of their labels; before the deletion they did (so the check can
// fail).
func TestDeletedDataLeavesDisk(t *testing.T) {
	fs := vfs.NewMem()
	db, g := openTest(t, testOptions(fs))
	bb := write.NewBuilder("acme")
	require.NoError(t, bb.Add(labels.FromStrings("__name__", "qzv8w", "job", "x"), samplesAt(0, 100, 200, 300, 400, 500)))
	require.NoError(t, bb.Add(labels.FromStrings("__name__", "kpt3x", "job", "x"), samplesAt(0, 100, 200, 300, 400, 500)))
	apply(t, g, 1, bb.Batch())
	bb = write.NewBuilder("gone-tenant")
	require.NoError(t, bb.Add(labels.FromStrings("__name__", "tnx9y", "job", "x"), samplesAt(0, 100, 200, 300, 400, 500)))
	apply(t, g, 2, bb.Batch())
	require.NoError(t, g.Checkpoint())
	require.NoError(t, db.pdb.Flush())
	for _, s := range []string{"qzv8w", "kpt3x", "tnx9y", "gone-tenant"} {
		require.True(t, sstContains(t, db, fs, s), "%s not on disk before the deletion", s)
	}

	n, err := g.ApplyDelete(3, "acme", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "qzv8w")})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.NoError(t, g.ApplyDeleteTenant(4, "gone-tenant"))
	require.NoError(t, g.Checkpoint())
	require.NoError(t, db.pdb.Flush())
	require.NoError(t, db.pdb.Compact(t.Context(), []byte{0}, bytes.Repeat([]byte{0xff}, 16), true))
	for _, s := range []string{"qzv8w", "tnx9y", "gone-tenant"} {
		require.False(t, sstContains(t, db, fs, s), "%s still on disk after the deletion and a compaction", s)
	}
	require.True(t, sstContains(t, db, fs, "kpt3x"))
	require.Len(t, selectAll(t, g, "acme", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")), 1)
	require.Empty(t, selectAll(t, g, "gone-tenant", math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")))
}
