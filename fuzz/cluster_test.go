package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// FuzzMetadataDecode feeds arbitrary bytes to cluster.DecodeMetadata, the
// decoder of the metadata group's checkpoints and of the snapshots a new
// member receives from the leader. It must not panic and fail only with
// cluster.ErrCorruptMeta; what decodes re-encodes stably.
func FuzzMetadataDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("mymt\x01"))
	s := ringEvents(f, []byte{0, 0, 0, 1, 2, 0, 1, 1})
	v := &cluster.View{State: s, Index: 42}
	f.Add(cluster.AppendMetadata(nil, v))
	empty, err := ring.NewState(ring.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cluster.AppendMetadata(nil, &cluster.View{State: empty}))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := cluster.DecodeMetadata(data)
		if err != nil {
			if !errors.Is(err, cluster.ErrCorruptMeta) {
				t.Fatalf("error %v does not match ErrCorruptMeta", err)
			}
			return
		}
		b1 := cluster.AppendMetadata(nil, v)
		v2, err := cluster.DecodeMetadata(b1)
		if err != nil {
			t.Fatalf("re-encoded metadata does not decode: %v", err)
		}
		if b2 := cluster.AppendMetadata(nil, v2); !bytes.Equal(b1, b2) {
			t.Fatalf("metadata does not re-encode stably")
		}
	})
}

// FuzzSeriesErrorsDecode feeds arbitrary bytes to
// engine.DecodeSeriesErrors, the decoder of the per-series refusals a
// group leader sends back to the node that forwarded a write. It must
// not panic and fail only with engine.ErrCorruptRefusals; what decodes
// re-encodes to refusals equal to it.
func FuzzSeriesErrorsDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Add(engine.AppendSeriesErrors(nil, []engine.SeriesError{
		{Series: 3, Rejected: 2, Err: fmt.Errorf("at 5: %w", engine.ErrOutOfOrder)},
		{Series: 4, Rejected: 1, Err: errors.New("other")},
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		errs, err := engine.DecodeSeriesErrors(data)
		if err != nil {
			if !errors.Is(err, engine.ErrCorruptRefusals) {
				t.Fatalf("error %v does not match ErrCorruptRefusals", err)
			}
			return
		}
		again, err := engine.DecodeSeriesErrors(engine.AppendSeriesErrors(nil, errs))
		if err != nil || len(again) != len(errs) {
			t.Fatalf("re-encoded refusals: %d, %v; want %d", len(again), err, len(errs))
		}
		for i := range errs {
			if again[i].Series != errs[i].Series || again[i].Rejected != errs[i].Rejected || again[i].Err.Error() != errs[i].Err.Error() {
				t.Fatalf("refusal %d: %+v, want %+v", i, again[i], errs[i])
			}
		}
	})
}
