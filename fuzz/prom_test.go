package fuzz

import (
	"bytes"
	"testing"

	"github.com/myelindb/myelin/chunkenc"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"
)

// FuzzXORvsPrometheus checks EncXOR against Prometheus's XOR chunk, which it
// promises to equal byte for byte after the encoding byte. The input is used
// twice:
//
//  1. As samples (deriveSamples): our EncXOR bytes after the encoding byte
//     equal Prometheus's XOR chunk bytes, and Prometheus's iterator reads our
//     bytes back bit-exact.
//  2. As a chunk body (the input after an EncXOR byte): if our decoder
//     accepts it, Prometheus's must too, with the same samples. The converse
//     need not hold: we reject value windows wider than 64 bits, which
//     Prometheus reads as garbage.
func FuzzXORvsPrometheus(f *testing.F) {
	addHandSeeds(f)
	addSampleSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if ts, vs := deriveSamples(data); len(ts) > 0 {
			ours := mustEncode(t, chunkenc.EncXOR, ts, vs)
			theirs := promXOR(t, ts, vs)
			if !bytes.Equal(ours[1:], theirs) {
				t.Fatalf("EncXOR of %d samples differs from Prometheus:\nours   %x\ntheirs %x", len(ts), ours[1:], theirs)
			}
			gotT, gotV, err := promDecode(ours[1:])
			if err != nil {
				t.Fatalf("Prometheus cannot read our EncXOR chunk of %d samples: %v", len(ts), err)
			}
			if msg := diffSamples(gotT, gotV, ts, vs); msg != "" {
				t.Fatalf("Prometheus reading our EncXOR chunk: %s", msg)
			}
		}

		chunk := append([]byte{byte(chunkenc.EncXOR)}, data...)
		ts, vs, err := chunkenc.Decode(nil, nil, chunk)
		if err != nil {
			return
		}
		gotT, gotV, err := promDecode(data)
		if err != nil {
			t.Fatalf("we decode %d samples from %x, Prometheus fails: %v", len(ts), chunk, err)
		}
		if msg := diffSamples(gotT, gotV, ts, vs); msg != "" {
			t.Fatalf("decoding %x: Prometheus vs ours: %s", chunk, msg)
		}
	})
}

// promXOR encodes with Prometheus's XOR chunk.
func promXOR(tb testing.TB, ts []int64, vs []float64) []byte {
	tb.Helper()
	c := promchunk.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		tb.Fatalf("Prometheus XOR appender: %v", err)
	}
	for i := range ts {
		app.Append(0, ts[i], vs[i])
	}
	return c.Bytes()
}

// promDecode reads a Prometheus XOR chunk (no encoding byte). b must hold
// the 2-byte sample count: Prometheus's iterator does not check.
func promDecode(b []byte) ([]int64, []float64, error) {
	c, err := promchunk.FromData(promchunk.EncXOR, b)
	if err != nil {
		return nil, nil, err
	}
	var ts []int64
	var vs []float64
	it := c.Iterator(nil)
	for it.Next() == promchunk.ValFloat {
		t, v := it.At()
		ts = append(ts, t)
		vs = append(vs, v)
	}
	return ts, vs, it.Err()
}
