package engine

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// TestCheckpointBytes checks the capacity given to the checkpoint batch
// against the records the checkpoint writes: openLen is the length of
// every open record (float chunks with and without a merge run, integer
// and float histogram chunks), and the bound holds the batch of two
// tenants' open records, newest sample times and checkpoint index with
// at most the uvarint slack and the small records' room to spare.
func TestCheckpointBytes(t *testing.T) {
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem()})
	require.NoError(t, err)
	defer db.Close()
	g, _, err := db.OpenGroup(1)
	require.NoError(t, err)
	const t0 = int64(1_700_000_000_000)
	index := uint64(0)
	for round := range 300 { // 300 samples: some float series cut chunks (a merge run)
		for _, tenant := range []string{"acme", "beta"} {
			bb := write.NewBuilder(tenant)
			ts := t0 + int64(round)*15_000
			for i := range 20 {
				lset := labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
				if i < 5 && round%(i+1) != 0 {
					continue // fewer samples: open chunks of several sizes
				}
				require.NoError(t, bb.Add(lset, []write.Sample{{T: ts, V: float64(round * i)}}))
			}
			h := &histogram.Histogram{Count: 2 * uint64(round), Sum: float64(round), Schema: 0,
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{int64(round), 0}}
			require.NoError(t, bb.AddHistograms(labels.FromStrings("__name__", "h"), nil, []write.Histogram{{T: ts, H: h}}))
			fh := h.ToFloat(nil)
			require.NoError(t, bb.AddHistograms(labels.FromStrings("__name__", "fh"), nil, []write.Histogram{{T: ts, FH: fh}}))
			index++
			require.Empty(t, apply(t, g, index, bb.Batch()))
		}
	}

	g.mu.Lock()
	var ts []*tenant
	for _, tn := range g.mu.tenants {
		ts = append(ts, tn)
	}
	g.mu.Unlock()
	for _, tn := range ts {
		tn.mu.Lock()
	}
	bound := checkpointBytesLocked(ts)
	pb := db.pdb.NewBatch()
	var kinds [3]int // float without a run, float with one, histogram
	n := 0
	for _, tn := range ts {
		for _, s := range tn.mu.dirty {
			val := appendOpen(nil, s)
			require.Equal(t, len(val), openLen(s), "series %d", s.id)
			switch {
			case s.histOpen():
				kinds[2]++
			case s.run > 0:
				kinds[1]++
			default:
				kinds[0]++
			}
			require.NoError(t, pb.Set(tn.ks.openKey(nil, s.id), val, nil))
			n++
		}
		require.NoError(t, pb.Set(tn.ks.metaKey(nil, metaMaxTime), appendTime(nil, tn.mu.maxT), nil))
	}
	require.NoError(t, pb.Set(groupKey(nil, g.id, kindCheckpoint), binary.BigEndian.AppendUint64(nil, index), nil))
	for _, tn := range ts {
		tn.mu.Unlock()
	}
	for i, k := range kinds {
		require.Positive(t, k, "kind %d of open record", i)
	}
	require.LessOrEqual(t, int(pb.Len()), bound)
	require.LessOrEqual(t, bound-int(pb.Len()), n*(2*binary.MaxVarintLen32-2)+4<<10)
	require.NoError(t, pb.Close())
	require.NoError(t, g.Checkpoint())
}
