package chunkenc

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// promXOR encodes with Prometheus's own XOR chunk.
func promXOR(t testing.TB, ts []int64, vs []float64) []byte {
	c := promchunk.NewXORChunk()
	app, err := c.Appender()
	require.NoError(t, err)
	for i := range ts {
		app.Append(0, ts[i], vs[i])
	}
	return c.Bytes()
}

func randomSeries(rng *rand.Rand, n int) ([]int64, []float64) {
	ts := make([]int64, n)
	vs := make([]float64, n)
	t := rng.Int64N(1<<50) - 1<<49
	if rng.IntN(10) == 0 {
		t = math.MinInt64 + rng.Int64N(1000)
	}
	v := rng.Float64() * 1000
	specials := []float64{math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, math.Float64frombits(0x7ff0000000000002), math.NaN(), math.Float64frombits(0x7ff8000000000001), math.Float64frombits(0xfff0000000000123), math.MaxFloat64, math.SmallestNonzeroFloat64}
	for i := range n {
		switch rng.IntN(6) {
		case 0:
			t += 15000
		case 1:
			t += 15000 + rng.Int64N(20) - 10
		case 2:
			// A huge gap, as long as the rest still fits below MaxInt64.
			if gap := 1 + rng.Int64N(1<<rng.IntN(62)); t < math.MaxInt64-gap-int64(n)<<20 {
				t += gap
			} else {
				t++
			}
		default:
			t += 1000
		}
		switch rng.IntN(8) {
		case 0:
			v = specials[rng.IntN(len(specials))]
		case 1:
			v = math.Float64frombits(rng.Uint64())
		case 2:
			v = float64(rng.IntN(100))
		case 3:
			v += float64(rng.IntN(5))
		case 4:
			v = math.Round(rng.NormFloat64()*1e4) / 100
		}
		ts[i], vs[i] = t, v
	}
	return ts, vs
}

func TestXORMatchesPrometheus(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		n := 1 + rng.IntN(300)
		ts, vs := randomSeries(rng, n)
		want := promXOR(t, ts, vs)
		got, err := Encode(nil, EncXOR, ts, vs)
		require.NoError(t, err)
		require.Equal(t, byte(EncXOR), got[0])
		require.Equal(t, want, got[1:])

		// Streaming appends produce the same bytes at every step.
		x := NewXOR(nil)
		for i := range ts {
			require.NoError(t, x.Append(ts[i], vs[i]))
		}
		require.Equal(t, got, x.Bytes())
	}
}

func TestXORDecodesPrometheus(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		ts, vs := randomSeries(rng, 1+rng.IntN(300))
		chunk := append([]byte{byte(EncXOR)}, promXOR(t, ts, vs)...)
		gotT, gotV, err := Decode(nil, nil, chunk)
		require.NoError(t, err)
		require.Equal(t, ts, gotT)
		requireBitsEqual(t, vs, gotV)
	}
}

func requireBitsEqual(t testing.TB, want, got []float64) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		if math.Float64bits(want[i]) != math.Float64bits(got[i]) {
			t.Fatalf("value %d: got %x want %x", i, math.Float64bits(got[i]), math.Float64bits(want[i]))
		}
	}
}

// TestXORLoad: a chunk loaded with Load and appended to is byte for byte
// the chunk the same samples make when appended in one go, at every split.
func TestXORLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	type series struct {
		name string
		ts   []int64
		vs   []float64
	}
	cases := []series{
		{"constant then change", []int64{1, 2, 3, 4, 5}, []float64{1, 1, 1, 2, 2}},
		{"change at once", []int64{10, 20, 30}, []float64{1, 2, 3}},
		{"all equal", []int64{10, 20, 30, 40}, []float64{5, 5, 5, 5}},
		{"nan and stale", []int64{1000, 2000, 3000, 4000}, []float64{math.NaN(), 1, math.Float64frombits(0x7ff0000000000002), 1}},
		{"large gaps", []int64{math.MinInt64 + 1, 0, math.MaxInt64 - 1, math.MaxInt64}, []float64{1, -1, 0, 1e300}},
	}
	for i := range 50 {
		ts, vs := randomSeries(rng, 1+rng.IntN(130))
		cases = append(cases, series{fmt.Sprint("random ", i), ts, vs})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := NewXOR(nil)
			for i := range tc.ts {
				require.NoError(t, want.Append(tc.ts[i], tc.vs[i]))
			}
			for k := 0; k <= len(tc.ts); k++ {
				part := NewXOR(nil)
				for i := range k {
					require.NoError(t, part.Append(tc.ts[i], tc.vs[i]))
				}
				var got XOR
				require.NoError(t, got.Load(nil, part.Bytes()))
				require.Equal(t, part.Bytes(), got.Bytes(), "loaded bytes, split %d", k)
				for i := k; i < len(tc.ts); i++ {
					require.NoError(t, got.Append(tc.ts[i], tc.vs[i]))
				}
				require.Equal(t, want.Bytes(), got.Bytes(), "split at %d", k)
				lt, lv, ok := got.Last()
				wt, wv, _ := want.Last()
				require.True(t, ok)
				require.Equal(t, wt, lt)
				require.Equal(t, math.Float64bits(wv), math.Float64bits(lv))
			}
		})
	}
	var x XOR
	require.Error(t, x.Load(nil, []byte{byte(EncXOR), 0, 5}), "count beyond the data")
	// Found by engine's FuzzOpenRecord: another encoding byte was
	// adopted as an empty XOR chunk (a panic under the invariants tag).
	var ce *CorruptError
	require.ErrorAs(t, x.Load(nil, []byte{0x30, 0, 0, 0x30}), &ce, "not an XOR chunk")
	require.Equal(t, 0, ce.Offset)
}
