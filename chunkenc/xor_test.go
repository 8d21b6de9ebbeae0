package chunkenc

import (
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
