package engine

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/write"
)

// TestSealedHistogramChunks: sealed histogram chunks are stored in
// chunkenc's EncHistPack / EncFloatHistPack, and read back bit for bit
// what Prometheus's own chunk of the same samples reads (every field,
// hints included); the same store with its sealed chunks in Prometheus's
// encodings, as a store of format 2 holds them, reads the same samples.
func TestSealedHistogramChunks(t *testing.T) {
	for _, kind := range []string{"counter", "nhcb", "gauge"} {
		t.Run(kind, func(t *testing.T) {
			fs := vfs.NewMem()
			opts := testOptions(fs)
			opts.Partition = time.Hour
			opts.ChunkSamples = 120 // testOptions' tiny chunks would be mostly headers
			db, err := Open(opts)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, db.Close()) })
			g, _, err := db.OpenGroup(7)
			require.NoError(t, err)

			// One series: every sealed chunk of the group is its.
			lset := labels.FromStrings("__name__", "h_"+kind)
			rng := newRand(11)
			var (
				ts    []int64
				hs    []*histogram.Histogram
				fhs   []*histogram.FloatHistogram
				state *histogram.Histogram
			)
			const n = 600
			start := int64(1_700_000_000_000)
			for i := range n {
				t0 := start + int64(i)*15_000
				var wh write.Histogram
				if kind == "gauge" {
					fh := &histogram.FloatHistogram{CounterResetHint: histogram.GaugeType, Schema: 0, ZeroThreshold: 0.001,
						PositiveSpans: []histogram.Span{{Offset: int32(rng.IntN(2)), Length: 3}}}
					for range 3 {
						c := float64(rng.IntN(50)) / 4
						fh.PositiveBuckets = append(fh.PositiveBuckets, c)
						fh.Count += c
					}
					fh.Sum = fh.Count * 1.7
					if i == 100 {
						fh.Sum = math.NaN()
					}
					fhs = append(fhs, fh)
					wh = write.Histogram{T: t0, FH: fh.Copy()}
				} else {
					state = nextCounterHistogram(rng, state, kind == "nhcb", i%170 == 169, i == 300)
					hs = append(hs, state.Copy())
					wh = write.Histogram{T: t0, H: state.Copy()}
				}
				ts = append(ts, t0)
				bb := write.NewBuilder("t")
				require.NoError(t, bb.AddHistograms(lset, nil, []write.Histogram{wh}))
				require.Empty(t, apply(t, g, uint64(i+1), bb.Batch()))
			}
			before := selectAll(t, g, "t", math.MinInt64, math.MaxInt64)
			require.Len(t, before, 1)
			require.Len(t, before[0].hists, n)
			// A query whose range starts inside a chunk (sampleIn, Seek).
			mid := ts[n/2] + 1
			require.Equal(t, before[0].hists[n/2+1:], selectAll(t, g, "t", mid, math.MaxInt64)[0].hists)

			// Every sealed chunk is ours, and reads what Prometheus's chunk
			// of its samples reads.
			lo := appendPrefix(nil, g.id, 1, kindChunk)
			it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: successor(lo)})
			require.NoError(t, err)
			type rewrite struct{ key, val []byte }
			var (
				olds              []rewrite
				packBytes, promBy int
				sealed            int
			)
			for it.First(); it.Valid(); it.Next() {
				k, v := it.Key(), it.Value()
				mint := readTime(k[len(k)-8:])
				d, m := binary.Uvarint(v)
				require.Greater(t, m, 0)
				maxt := mint + int64(d)
				chunk := v[m:]
				want := encHistPack
				if kind == "gauge" {
					want = encFloatHistPack
				}
				require.Equal(t, want, chunk[0], "chunk at %d: encoding", mint)

				var hh histHead
				hh.start(kind == "gauge")
				for i, t0 := range ts {
					if t0 < mint || t0 > maxt {
						continue
					}
					var cut any
					if kind == "gauge" {
						cut, err = hh.append(t0, nil, fhs[i].Copy())
					} else {
						cut, err = hh.append(t0, hs[i].Copy(), nil)
					}
					require.NoError(t, err)
					require.Nil(t, cut, "chunk at %d: Prometheus's appender cuts it", mint)
				}
				require.NoError(t, sameHistChunks(hh.c.Iterator(nil), chunk), "chunk at %d", mint)
				sealed++
				packBytes += len(chunk)
				promBy += 1 + len(hh.c.Bytes())
				val := binary.AppendUvarint(nil, uint64(maxt-mint))
				olds = append(olds, rewrite{append([]byte(nil), k...), hh.appendBytes(val)})
			}
			require.NoError(t, it.Close())
			require.Greater(t, sealed, 3)
			t.Logf("%d sealed chunks: %d bytes, %d in Prometheus's encoding (%.2fx)", sealed, packBytes, promBy, float64(packBytes)/float64(promBy))

			// A store whose sealed chunks are Prometheus's reads the same.
			for _, r := range olds {
				require.NoError(t, db.pdb.Set(r.key, r.val, pebble.NoSync))
			}
			after := selectAll(t, g, "t", math.MinInt64, math.MaxInt64)
			require.Equal(t, before, after)
			require.Equal(t, before[0].hists[n/2+1:], selectAll(t, g, "t", mid, math.MaxInt64)[0].hists)
		})
	}
}

// TestPackHistIteratorSharesNoCustomValues: reading into a histogram
// whose custom values are shared with another (Prometheus's CopyTo shares
// them, as PromQL's buffers do) leaves that other one alone.
func TestPackHistIteratorSharesNoCustomValues(t *testing.T) {
	h := func(cv ...float64) *histogram.Histogram {
		return &histogram.Histogram{Schema: histogram.CustomBucketsSchema, CustomValues: cv,
			PositiveSpans: []histogram.Span{{Length: 2}}, PositiveBuckets: []int64{1, 1}, Count: 3, Sum: 1}
	}
	in := []*histogram.Histogram{h(0.1, 0.5), h(0.2, 0.7)}
	chs := make([]chunkenc.Histogram, len(in))
	for i := range in {
		fromPromHistogram(&chs[i], in[i])
	}
	chunk, err := chunkenc.EncodeHistograms(nil, []int64{1, 2}, chs)
	require.NoError(t, err)
	var hi histIters
	it, err := hi.iterator(chunk)
	require.NoError(t, err)
	require.Equal(t, promchunk.ValHistogram, it.Next())
	_, first := it.AtFloatHistogram(nil)
	held := append([]float64(nil), first.CustomValues...) // Copy would share them
	dst := &histogram.FloatHistogram{}
	first.CopyTo(dst) // dst shares first's custom values
	require.Equal(t, promchunk.ValHistogram, it.Next())
	_, second := it.AtFloatHistogram(dst)
	require.Equal(t, []float64{0.2, 0.7}, second.CustomValues)
	require.Equal(t, held, first.CustomValues, "the first sample's custom values were overwritten")
	require.NoError(t, it.Err())
}

// BenchmarkSealHist: the CPU sealing adds per histogram sample (reading
// Prometheus's chunk, encoding chunkenc's), against appending the sample
// to the open chunk in the first place, in the same run.
func BenchmarkSealHist(b *testing.B) {
	rng := newRand(3)
	var state *histogram.Histogram
	var hs []*histogram.Histogram
	for range 120 {
		state = nextCounterHistogram(rng, state, false, false, false)
		hs = append(hs, state.Copy())
	}
	var hh histHead
	appendAll := func() {
		hh.start(false)
		for i, h := range hs {
			if _, err := hh.append(int64(i)*15_000, h.Copy(), nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	appendAll()
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			appendAll()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(hs)), "ns/histogram")
	})
	b.Run("seal", func(b *testing.B) {
		b.ReportAllocs()
		var hsl histSealer
		var dst []byte
		for b.Loop() {
			var err error
			if dst, err = sealHist(dst[:0], &hsl, hh.c); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(hs)), "ns/histogram")
		b.ReportMetric(float64(len(dst))/float64(len(hs)), "bytes/histogram")
		b.ReportMetric(float64(1+len(hh.c.Bytes()))/float64(len(hs)), "prom-bytes/histogram")
	})
}
