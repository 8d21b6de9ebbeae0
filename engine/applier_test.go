package engine

import (
	"bytes"
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// TestApplierOutcome: the outcome of an entry is nil when every sample was
// applied, the refusals when some were not, and the decoding error for an
// entry that does not decode; each counts as applied and the outcome
// decodes to what Group.Apply reports.
func TestApplierOutcome(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	a := NewApplier(g, 0)
	up := labels.FromStrings("__name__", "up")
	entry := func(b *write.Batch) []byte { return write.Compress(nil, write.Append(nil, b)) }

	out, err := a.Apply(1, entry(buildBatch(t, "t", up, []write.Sample{{T: 10, V: 1}, {T: 20, V: 2}})))
	require.NoError(t, err)
	require.Nil(t, out, "everything applied: no outcome")

	b := buildBatch(t, "t", labels.FromStrings("__name__", "other"), []write.Sample{{T: 5, V: 1}}, up, []write.Sample{{T: 15, V: 3}, {T: 20, V: 4}, {T: 30, V: 5}})
	b.Series = append(b.Series, write.Series{Labels: []byte("b\xff1\xffa\xff1\xff"), Samples: []write.Sample{{T: 1, V: 1}}})
	e := entry(b)
	out, err = a.Apply(2, e)
	require.NoError(t, err)
	o, err := write.DecodeOutcome(out)
	require.NoError(t, err)
	require.NoError(t, o.Err)
	require.Len(t, o.Refused, 2)
	require.Equal(t, 1, o.Refused[0].Series)
	require.Equal(t, 2, o.Refused[0].Rejected)
	require.ErrorIs(t, o.Refused[0].Err, write.ErrOutOfOrder)
	require.Equal(t, "sample 0 at 15: write: out-of-order sample", o.Refused[0].Err.Error())
	require.Equal(t, 2, o.Refused[1].Series)
	require.ErrorIs(t, o.Refused[1].Err, write.ErrInvalidLabels)
	before := bytes.Clone(out)
	clear(e)
	require.Equal(t, before, out, "the outcome does not alias the entry")

	out, err = a.Apply(3, []byte{write.Version, 0})
	require.NoError(t, err, "a corrupt entry is refused, not a failure")
	o, err = write.DecodeOutcome(out)
	require.NoError(t, err)
	require.ErrorIs(t, o.Err, write.ErrCorrupt)
	require.Empty(t, o.Refused)
	require.Equal(t, uint64(3), g.AppliedIndex(), "the corrupt entry counts as applied")

	out, err = a.Apply(3, entry(buildBatch(t, "t", up, []write.Sample{{T: 40, V: 1}})))
	require.NoError(t, err)
	require.Nil(t, out, "a replayed index is ignored")
}

// TestApplierCheckpoint: Checkpoint returns the applied index, and a
// reopened group recovers to it, which the new applier reports.
func TestApplierCheckpoint(t *testing.T) {
	opts := testOptions(vfs.NewMem())
	db, err := Open(opts)
	require.NoError(t, err)
	g, from, err := db.OpenGroup(3)
	require.NoError(t, err)
	a := NewApplier(g, from)
	require.Equal(t, uint64(0), a.CheckpointIndex())
	for i, b := range randomBatches(t, 1, 20) {
		_, err := a.Apply(uint64(i+1), write.Append(nil, b))
		require.NoError(t, err)
	}
	idx, err := a.Checkpoint()
	require.NoError(t, err)
	require.Equal(t, uint64(20), idx)
	require.NoError(t, db.Close())

	db, err = Open(opts)
	require.NoError(t, err)
	defer db.Close()
	g, from, err = db.OpenGroup(3)
	require.NoError(t, err)
	require.Equal(t, uint64(20), NewApplier(g, from).CheckpointIndex())
}

// TestApplierSnapshotRestore: Restore returns the index Snapshot
// reported, and the restored group answers like the source.
func TestApplierSnapshotRestore(t *testing.T) {
	_, src := openTest(t, testOptions(vfs.NewMem()))
	_, dst := openTest(t, testOptions(vfs.NewMem()))
	as, ad := NewApplier(src, 0), NewApplier(dst, 0)
	batches := randomBatches(t, 2, 30)
	for i, b := range batches {
		_, err := as.Apply(uint64(i+1), write.Append(nil, b))
		require.NoError(t, err)
	}
	var buf bytes.Buffer
	idx, err := as.Snapshot(&buf)
	require.NoError(t, err)
	require.Equal(t, uint64(len(batches)), idx)
	got, err := ad.Restore(&buf)
	require.NoError(t, err)
	require.Equal(t, idx, got)
	for _, tenant := range []string{"alpha", "beta"} {
		require.Equal(t, selectAll(t, src, tenant, math.MinInt64, math.MaxInt64), selectAll(t, dst, tenant, math.MinInt64, math.MaxInt64))
	}
	_, err = ad.Restore(bytes.NewReader([]byte{9}))
	require.ErrorIs(t, err, ErrCorruptSnapshot)
}

// TestApplierFailure: an I/O failure (here a closed store) is an error,
// not an outcome.
func TestApplierFailure(t *testing.T) {
	db, err := Open(testOptions(vfs.NewMem()))
	require.NoError(t, err)
	g, _, err := db.OpenGroup(1)
	require.NoError(t, err)
	a := NewApplier(g, 0)
	require.NoError(t, db.Close())
	out, err := a.Apply(1, write.Append(nil, buildBatch(t, "t", labels.FromStrings("a", "b"), []write.Sample{{T: 1, V: 1}})))
	require.ErrorIs(t, err, ErrClosed)
	require.Nil(t, out)
	_, err = a.Apply(2, []byte{0xee})
	require.ErrorIs(t, err, ErrClosed, "a corrupt entry on a closed store is still a failure")
	_, err = a.Checkpoint()
	require.ErrorIs(t, err, ErrClosed)
}
