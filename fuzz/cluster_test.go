package fuzz

import (
	"bytes"
	"errors"
	"testing"

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
