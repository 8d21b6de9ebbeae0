package chunkenc

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadRices compares readRices, the decoder's bulk loop, with
// readRice code by code: random values of every width (escapes
// included) for every k, and the same streams truncated at every byte
// near the end, where the fast path must hand over to readRice.
func TestReadRices(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	for k := range uint8(64) {
		for range 20 {
			want := make([]int64, 1+rng.IntN(300))
			for i := range want {
				switch rng.IntN(4) {
				case 0: // an outlier: the escape for small k
					want[i] = rng.Int64() >> rng.IntN(64)
				default: // near 2^k, the code's usual size
					want[i] = int64(rng.Uint64()>>(64-max(k, 1))) - 1<<max(k, 1)>>1
				}
			}
			var w bitWriter
			w.writeBits(uint64(rng.IntN(8)), uint8(rng.IntN(8))) // any alignment
			start := w.bitLen()
			for _, v := range want {
				w.writeRice(zigzag(v), k)
			}
			for cut := len(w.b); cut >= max(len(w.b)-10, 0); cut-- {
				var a, b bitReader
				a.reset(w.b[:cut])
				b.reset(w.b[:cut])
				_, _ = a.readBits(uint8(start))
				_, _ = b.readBits(uint8(start))
				got := make([]int64, len(want))
				okBulk := a.readRices(got, k)
				okOne := true
				ref := make([]int64, len(want))
				for i := range ref {
					u, ok := b.readRice(k)
					if !ok {
						okOne = false
						break
					}
					ref[i] = unzigzag(u)
				}
				require.Equal(t, okOne, okBulk, "k %d, cut %d of %d", k, cut, len(w.b))
				if okOne {
					require.Equal(t, ref, got, "k %d, cut %d", k, cut)
					require.Equal(t, want, got, "k %d, cut %d", k, cut)
					require.Equal(t, b, a, "reader state after the codes, k %d, cut %d", k, cut)
				}
			}
		}
	}
}

// bitLen is the number of bits written.
func (w *bitWriter) bitLen() int { return 8*len(w.b) - int(w.free) }

// TestIteratorKeptMantissas reuses one Iterator over chunks of every
// values mode in turn, so a chunk read after one whose mantissas were
// kept (decimal, no exceptions; converted at At) is read right, and the
// reverse; each is checked sample by sample, bit for bit, by Next, At
// and Seek.
func TestIteratorKeptMantissas(t *testing.T) {
	stale := math.Float64frombits(0x7ff0000000000002)
	ts := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = 1_700_000_000_000 + int64(i)*60_000
		}
		return out
	}
	counter := func(n int, exp float64) []float64 {
		out := make([]float64, n)
		v := 1.0
		for i := range out {
			v += float64(i%7) / exp
			out[i] = math.Round(v*exp) / exp
		}
		return out
	}
	withException := counter(300, 100)
	withException[17] = stale
	for _, tc := range []struct {
		name string
		vs   []float64
		kept bool
	}{
		{"decimal-e2", counter(960, 100), true},
		{"decimal-exception", withException, false},
		{"decimal-e0", counter(500, 1), true},
		{"const", make([]float64, 120), false},
		{"decimal-e3-negative", func() []float64 {
			vs := counter(200, 1000)
			for i := range vs {
				vs[i] = -vs[i]
			}
			return vs
		}(), true},
		{"xor", func() []float64 {
			rng := rand.New(rand.NewPCG(3, 4))
			vs := make([]float64, 300)
			for i := range vs {
				vs[i] = rng.Float64()
			}
			return vs
		}(), false},
		{"one-sample-const", []float64{0.25}, false},
		{"decimal-two-samples", []float64{0.25, 0.5}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunk, err := Encode(nil, EncPack, ts(len(tc.vs)), tc.vs)
			require.NoError(t, err)
			var it Iterator
			for _, c := range [][]byte{chunk, mustEncode(t, EncXOR, ts(3), []float64{1, 2, 3}), chunk} {
				it.Reset(c)
				require.NoError(t, it.Err())
			}
			require.Equal(t, tc.kept, it.pd.mantissasKept)
			checkChunk(t, &it, chunk, ts(len(tc.vs)), tc.vs)
		})
	}
}

func mustEncode(t *testing.T, enc Encoding, ts []int64, vs []float64) []byte {
	c, err := Encode(nil, enc, ts, vs)
	require.NoError(t, err)
	return c
}

// TestReadUvarint compares readUvarint's fast path with the byte loop:
// values of every length at every bit alignment, the stream cut at every
// byte, and bytes that are no valid varint (11 bytes of continuation, a
// 10th byte above 1).
func TestReadUvarint(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 13))
	for range 3000 {
		var w bitWriter
		lead := uint8(rng.IntN(64))
		w.writeBits(rng.Uint64(), lead)
		var want []uint64
		for range 1 + rng.IntN(4) {
			u := rng.Uint64() >> rng.IntN(64)
			want = append(want, u)
			w.writeUvarint(u)
		}
		if rng.IntN(4) == 0 { // garbage: continuation bytes, or a big 10th byte
			for i := range 9 + rng.IntN(3) {
				w.writeBits(0x80|uint64(rng.IntN(128)), 8)
				if i == 8 && rng.IntN(2) == 0 {
					w.writeBits(uint64(2+rng.IntN(126)), 8)
					break
				}
			}
		}
		for cut := len(w.b); cut >= max(len(w.b)-12, 0); cut-- {
			var a, b bitReader
			a.reset(w.b[:cut])
			b.reset(w.b[:cut])
			_, _ = a.readBits(lead)
			_, _ = b.readBits(lead)
			for {
				ua, oka := a.readUvarint()
				ub, okb := b.readUvarintBytes()
				require.Equal(t, okb, oka, "cut %d of %d, lead %d", cut, len(w.b), lead)
				if !oka {
					break
				}
				require.Equal(t, ub, ua)
				require.Equal(t, restBits(b), restBits(a), "bits left, cut %d", cut)
			}
			if cut == len(w.b) {
				var r bitReader
				r.reset(w.b)
				_, _ = r.readBits(lead)
				for _, u := range want {
					got, ok := r.readUvarint()
					require.True(t, ok)
					require.Equal(t, u, got)
				}
			}
		}
	}
}

// restBits returns the bits r has left (r is a copy: the caller's reader
// does not move). Readers that buffer differently compare equal if they
// would read the same.
func restBits(r bitReader) []bool {
	var out []bool
	for {
		bit, ok := r.readBit()
		if !ok {
			return out
		}
		out = append(out, bit)
	}
}
