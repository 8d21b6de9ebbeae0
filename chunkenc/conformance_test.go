package chunkenc

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// Every encoding must pass this suite.

func TestConformanceRandom(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, enc := range Encodings {
		t.Run(enc.String(), func(t *testing.T) {
			var e Encoder
			var it Iterator
			for range 500 {
				ts, vs := randomSeries(rng, 1+rng.IntN(2000))
				chunk, err := e.Encode(nil, enc, ts, vs)
				require.NoError(t, err)
				checkChunk(t, &it, chunk, ts, vs)
			}
		})
	}
}

func TestConformanceEdges(t *testing.T) {
	negZero := math.Copysign(0, -1)
	stale := math.Float64frombits(0x7ff0000000000002)
	for _, tc := range []struct {
		name string
		ts   []int64
		vs   []float64
	}{
		{"one", []int64{5}, []float64{1}},
		{"one-neg-zero", []int64{-5}, []float64{negZero}},
		{"two", []int64{1, 2}, []float64{1, 2}},
		{"int64-extremes", []int64{math.MinInt64, -1, 0, math.MaxInt64}, []float64{1, 2, 3, 4}},
		{"huge-gaps", []int64{math.MinInt64 + 1, math.MaxInt64 - 1}, []float64{stale, stale}},
		{"decimals-then-stale", []int64{1000, 2000, 3000, 4000}, []float64{0.1, 0.25, 1e-17, stale}},
		{"neg-zero-in-decimals", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, []float64{1, 2, 3, negZero, 5, 6, 7, 8, 9, 10}},
		{"nan-payloads", []int64{1, 2, 3}, []float64{math.Float64frombits(0x7ff8000000000001), math.Float64frombits(0xfff0000000000001), math.Float64frombits(0x7fffffffffffffff)}},
		{"big-integers", []int64{1, 2, 3, 4}, []float64{1 << 53, 1<<53 + 2, 1 << 62, math.MaxFloat64}},
		{"subnormals", []int64{1, 2, 3}, []float64{math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 1e-310}},
		{"max-decimal-mantissa", []int64{1, 2, 3}, []float64{(1<<53 - 1) / 1e17, -(1<<53 - 1) / 1e17, 9007199254740991}},
		{"const", []int64{10, 20, 30, 40}, []float64{7, 7, 7, 7}},
		{"const-nan", []int64{10, 20, 30}, []float64{math.NaN(), math.NaN(), math.NaN()}},
	} {
		for _, enc := range Encodings {
			t.Run(tc.name+"/"+enc.String(), func(t *testing.T) {
				chunk, err := Encode(nil, enc, tc.ts, tc.vs)
				require.NoError(t, err)
				var it Iterator
				checkChunk(t, &it, chunk, tc.ts, tc.vs)
			})
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, enc := range Encodings {
		_, err := Encode(nil, enc, nil, nil)
		require.ErrorIs(t, err, ErrEmpty)
		_, err = Encode(nil, enc, []int64{2, 2}, []float64{1, 1})
		require.ErrorIs(t, err, ErrOutOfOrder)
		_, err = Encode(nil, enc, []int64{1}, []float64{1, 2})
		require.Error(t, err)
	}
}

// checkChunk verifies NumSamples, Decode, Iterator and Seek against the
// samples the chunk was built from.
func checkChunk(t *testing.T, it *Iterator, chunk []byte, ts []int64, vs []float64) {
	t.Helper()
	n, err := NumSamples(chunk)
	require.NoError(t, err)
	require.Equal(t, len(ts), n)

	prefix := []int64{42}
	gotT, gotV, err := Decode(prefix, []float64{42}, chunk)
	require.NoError(t, err)
	require.Equal(t, ts, gotT[1:])
	requireBitsEqual(t, vs, gotV[1:])

	it.Reset(chunk)
	i := 0
	for it.Next() {
		tt, v := it.At()
		require.Equal(t, ts[i], tt, "sample %d", i)
		require.Equal(t, math.Float64bits(vs[i]), math.Float64bits(v), "sample %d", i)
		i++
	}
	require.NoError(t, it.Err())
	require.Equal(t, len(ts), i)
	require.False(t, it.Next())

	// Seek to every 7th timestamp, to one past it, and past the end.
	it.Reset(chunk)
	for j := 0; j < len(ts); j += 7 {
		require.True(t, it.Seek(ts[j]))
		tt, _ := it.At()
		require.Equal(t, ts[j], tt)
		if ts[j] < math.MaxInt64 {
			ok := it.Seek(ts[j] + 1)
			require.Equal(t, j+1 < len(ts), ok)
			if ok {
				tt, _ = it.At()
				require.Equal(t, ts[j+1], tt)
			}
		}
	}
	require.NoError(t, it.Err())
	if ts[len(ts)-1] < math.MaxInt64 {
		require.False(t, it.Seek(ts[len(ts)-1]+1))
	}
}

func TestRecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	ts, vs := randomSeries(rng, 3000)
	var e Encoder
	// A head chunk and two sealed chunks of consecutive samples.
	head := NewXOR(nil)
	for i := range 1000 {
		require.NoError(t, head.Append(ts[i], vs[i]))
	}
	c1, err := Encode(nil, EncPack, ts[1000:2000], vs[1000:2000])
	require.NoError(t, err)
	c2, err := Encode(nil, EncXOR, ts[2000:], vs[2000:])
	require.NoError(t, err)
	for _, enc := range Encodings {
		merged, err := e.Recode(nil, enc, head.Bytes(), c1, c2)
		require.NoError(t, err)
		var it Iterator
		checkChunk(t, &it, merged, ts, vs)
	}
	_, err = e.Recode(nil, EncPack, c1, head.Bytes())
	require.ErrorIs(t, err, ErrOutOfOrder)
	_, err = e.Recode(nil, EncPack, []byte{byte(EncPack), 5})
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
}

func TestXORSize(t *testing.T) {
	// The head keeps one XOR per active series: keep it small.
	require.LessOrEqual(t, unsafe.Sizeof(XOR{}), uintptr(72))
}

func TestNoAllocsWhenWarm(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	ts, vs := randomSeries(rng, 1024)
	for _, enc := range Encodings {
		t.Run(enc.String(), func(t *testing.T) {
			var e Encoder
			var it Iterator
			buf, err := e.Encode(nil, enc, ts, vs)
			require.NoError(t, err)
			chunk := append([]byte(nil), buf...)
			it.Reset(chunk)
			for it.Next() {
			}
			encAllocs := testing.AllocsPerRun(20, func() {
				buf, _ = e.Encode(buf[:0], enc, ts, vs)
			})
			require.Zero(t, encAllocs, "Encode allocations")
			decAllocs := testing.AllocsPerRun(20, func() {
				it.Reset(chunk)
				for it.Next() {
					it.At()
				}
				it.Reset(chunk)
				it.Seek(ts[500])
			})
			require.Zero(t, decAllocs, "Iterator allocations")
			x := NewXOR(make([]byte, 0, 4096))
			appAllocs := testing.AllocsPerRun(1, func() {
				x.Reset(x.Bytes()[:0])
				for i := range 200 {
					_ = x.Append(ts[i], vs[i])
				}
			})
			require.Zero(t, appAllocs, "XOR appends within capacity")
		})
	}
}
