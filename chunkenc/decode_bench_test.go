package chunkenc

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// counterChunk returns an EncPack chunk of n samples of a counter scraped
// every minute whose values have two decimals and grow by 0.5-1.5 times
// rate a scrape (bench/cmd/longquery's node_cpu_seconds_total): decimal
// values, delta order, one Rice stream.
func counterChunk(tb testing.TB, n int, rate float64) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	ts := make([]int64, n)
	vs := make([]float64, n)
	v := 12.34
	for i := range n {
		ts[i] = 1_700_000_000_000 + int64(i)*60_000
		v = math.Round((v+rate*(0.5+rng.Float64()))*100) / 100
		vs[i] = v
	}
	var e Encoder
	c, err := e.Encode(nil, EncPack, ts, vs)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// BenchmarkPackCounters decodes counter chunks of 960 samples (a merged
// run of the engine's sealed chunks) and of 30 (the mean of make
// bench-30d's store, whose backfill the head's eviction cut short)
// through the Iterator: whole, as a full read does, and the way PromQL
// reads a 30-day panel at a 30-minute step, rate over 5 minutes: a Seek
// every 30 samples and 5 samples read after it.
//
//	go test -run '^$' -bench PackCounters -count 10 ./chunkenc
func BenchmarkPackCounters(b *testing.B) {
	for _, n := range []int{960, 30} {
		for _, rate := range []float64{0.05, 5, 500} {
			benchPackCounters(b, n, rate)
		}
	}
}

func benchPackCounters(b *testing.B, n int, rate float64) {
	c := counterChunk(b, n, rate)
	b.Run("n="+strconv.Itoa(n)+"/rate="+ftoa(rate), func(b *testing.B) {
		b.Run("all", func(b *testing.B) {
			var it Iterator
			for b.Loop() {
				it.Reset(c)
				for it.Next() {
				}
				if it.Err() != nil {
					b.Fatal(it.Err())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
		})
		b.Run("window", func(b *testing.B) {
			var it Iterator
			for b.Loop() {
				it.Reset(c)
				for t := int64(1_700_000_000_000); it.Seek(t); t += 30 * 60_000 {
					for range 5 {
						if _, v := it.At(); v < 0 || !it.Next() {
							break
						}
					}
				}
				if it.Err() != nil {
					b.Fatal(it.Err())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
		})
	})
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
