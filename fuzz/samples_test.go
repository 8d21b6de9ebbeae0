package fuzz

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/myelindb/myelin/chunkenc"
)

func TestMaxSamples(t *testing.T) {
	if maxSamples != chunkenc.MaxSamples {
		t.Fatalf("maxSamples = %d, chunkenc.MaxSamples = %d", maxSamples, chunkenc.MaxSamples)
	}
}

// TestDeriveSamples checks that deriveSamples gives valid sequences for
// random inputs and that appendSamples inverts it.
func TestDeriveSamples(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 2000 {
		data := make([]byte, rng.IntN(300))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		ts, vs := deriveSamples(data)
		checkValid(t, data, ts, vs)
		checkInverse(t, ts, vs)
	}
}

func TestDeriveSamplesInverse(t *testing.T) {
	for _, tc := range []struct {
		name string
		ts   []int64
		vs   []float64
	}{
		{"one", []int64{5}, []float64{0}},
		{"extremes", []int64{math.MinInt64, math.MaxInt64}, []float64{1, 1}},
		{"huge gaps", []int64{math.MinInt64, -1, 0, math.MaxInt64 - 1, math.MaxInt64}, []float64{math.NaN(), math.Copysign(0, -1), 0, math.Inf(1), math.Inf(-1)}},
		{"regular", []int64{15000, 30000, 45000, 60000, 75001, 90000}, []float64{1, 1, 1, 2, 2, 0}},
		{"stale", []int64{-3, -2, -1}, []float64{math.Float64frombits(0x7ff0000000000002), 3, math.Float64frombits(0x7ff0000000000002)}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkInverse(t, tc.ts, tc.vs) })
	}
}

// TestDeriveSamplesLong checks the MaxSamples cap and a sequence that runs
// into MaxInt64.
func TestDeriveSamplesLong(t *testing.T) {
	data := make([]byte, maxSamples+10) // tsSame, vSame: one byte per sample
	ts, vs := deriveSamples(data)
	checkValid(t, data, ts, vs)
	if len(ts) != maxSamples {
		t.Fatalf("%d samples from %d zero bytes, want %d", len(ts), len(data), maxSamples)
	}
	ts, vs = deriveSamples([]byte{tsHuge, 0, tsOne, tsOne})
	checkValid(t, nil, ts, vs)
	if len(ts) != 1 || ts[0] != math.MaxInt64 {
		t.Fatalf("tsHuge by MaxInt64 then tsOne: got %v, want [MaxInt64]", ts)
	}
}

func checkValid(t *testing.T, data []byte, ts []int64, vs []float64) {
	t.Helper()
	if len(ts) != len(vs) || len(ts) > maxSamples {
		t.Fatalf("deriveSamples(%x): %d timestamps, %d values", data, len(ts), len(vs))
	}
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			t.Fatalf("deriveSamples(%x): sample %d at %d after %d", data, i, ts[i], ts[i-1])
		}
	}
}

func checkInverse(t *testing.T, ts []int64, vs []float64) {
	t.Helper()
	b := appendSamples(nil, ts, vs)
	gotT, gotV := deriveSamples(b)
	if msg := diffSamples(gotT, gotV, ts, vs); msg != "" {
		t.Fatalf("deriveSamples(appendSamples(%v, %v)): %s", ts, vs, msg)
	}
}
