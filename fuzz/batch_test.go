package fuzz

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/engine"
)

// FuzzBatchDecode feeds arbitrary bytes to engine.DecodeBatch, the decoder
// of Raft log entries (written by any node's server, read by every
// replica). It must not panic; an error must wrap engine.ErrCorruptBatch;
// a batch that decodes re-encodes to bytes that decode to the same batch.
func FuzzBatchDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2, 0, 0, 0})
	bb := engine.NewBatchBuilder("tenant-a")
	for i, lset := range []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "node", "instance", "a:9100"),
		labels.FromStrings("__name__", "up", "job", "node", "instance", "b:9100"),
		labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "idle"),
	} {
		if err := bb.Add(lset, []engine.Sample{
			{T: 1_700_000_000_000 + int64(i), V: 1},
			{T: 1_700_000_015_000, V: math.Float64frombits(0x7ff0000000000002)},
			{T: -5, V: math.Inf(-1)},
		}); err != nil {
			f.Fatal(err)
		}
	}
	seed := engine.AppendBatch(nil, bb.Batch())
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(engine.CompressBatch(nil, seed))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := engine.DecodeBatch(data)
		if err != nil {
			if !errors.Is(err, engine.ErrCorruptBatch) {
				t.Fatalf("error %v does not wrap ErrCorruptBatch", err)
			}
			return
		}
		for i := range b.Series {
			_, _ = b.Labels(i) // label sets are checked lazily: never panics
		}
		again := engine.AppendBatch(nil, &b)
		b2, err := engine.DecodeBatch(again)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if again2 := engine.AppendBatch(nil, &b2); !bytes.Equal(again, again2) {
			t.Fatalf("encode/decode is not stable:\n%x\n%x", again, again2)
		}
		if b.Tenant != b2.Tenant || len(b.Series) != len(b2.Series) || b.NumSamples() != b2.NumSamples() {
			t.Fatalf("batch changed in a round trip")
		}
	})
}
