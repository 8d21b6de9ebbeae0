package fuzz

import (
	"encoding/binary"
	"math"
	"runtime"
	"testing"

	"github.com/myelindb/myelin/chunkenc"
)

// histAllocBound is the most a histogram chunk decode may allocate for an
// n-byte input: the block decoder materializes up to
// chunkenc.MaxHistogramBuckets bucket counts (8 bytes in its column buffer,
// 8 in the samples') and custom values, plus per-sample structs (~150
// bytes each for up to MaxSamples samples), plus what the input itself can
// describe (spans, columns: 256 bytes per input byte).
func histAllocBound(n int) uint64 {
	return uint64(256*n) + 40*chunkenc.MaxHistogramBuckets + 200*chunkenc.MaxSamples + 64<<10
}

// addHistogramSeeds adds valid histogram chunks of derived samples.
func addHistogramSeeds(f *testing.F) {
	for _, in := range [][]byte{
		{},
		{5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		{40, 0xff, 0x10, 0x22, 0x33, 0x81, 0x07, 0x99, 0, 0, 1, 2, 3},
	} {
		ts, hs := deriveHistograms(in)
		c, err := chunkenc.EncodeHistograms(nil, ts, hs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c)
		c, err = chunkenc.EncodeFloatHistograms(nil, ts, toFloatHistograms(hs, 7))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c)
		f.Add(c[:len(c)/2])
	}
	for _, e := range chunkenc.HistogramEncodings {
		f.Add([]byte{byte(e)})
		f.Add([]byte{byte(e), 1})
		f.Add([]byte{byte(e), 0xff, 0xff, 0x03, 0, 0, 0, 0})
	}
}

// FuzzHistogramDecode feeds arbitrary bytes to the histogram decoders
// (HistogramIterator: Reset, Next, Seek, At, AtFloat). Nothing panics; Next
// returns true at most MaxSamples times; errors from histogram encodings
// are *chunkenc.CorruptError inside the chunk; a decode allocates within
// histAllocBound; and what decodes re-encodes to the same samples.
func FuzzHistogramDecode(f *testing.F) {
	addHandSeeds(f)
	addHistogramSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var it chunkenc.HistogramIterator
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		it.Reset(data)
		runtime.ReadMemStats(&after)
		if got, limit := after.TotalAlloc-before.TotalAlloc, histAllocBound(len(data)); got > limit {
			t.Fatalf("decode of %d bytes allocated %d bytes, limit %d", len(data), got, limit)
		}
		enc, encErr := chunkenc.EncodingOf(data)
		var ts []int64
		var hs []chunkenc.Histogram
		var fhs []chunkenc.FloatHistogram
		for it.Next() {
			if len(ts) >= chunkenc.MaxSamples {
				t.Fatalf("Next returned true more than MaxSamples times")
			}
			tm, fh := it.AtFloat()
			ts = append(ts, tm)
			if enc == chunkenc.EncHistPack {
				_, h := it.At()
				hs = append(hs, cloneHistogram(h))
			} else {
				fhs = append(fhs, cloneFloatHistogram(fh))
			}
		}
		if it.Next() {
			t.Fatalf("Next returned true after returning false")
		}
		err := it.Err()
		checkCorrupt(t, "HistogramIterator", err, len(data))
		if (encErr != nil || !enc.IsHistogram()) && err == nil {
			t.Fatalf("a %v chunk (%v) read as histograms without error", enc, encErr)
		}
		for _, target := range []int64{math.MinInt64, 0, math.MaxInt64} {
			it.Reset(data)
			if it.Seek(target) {
				st, _ := it.AtFloat()
				if err == nil && st < target {
					t.Fatalf("Seek(%d) stopped at %d", target, st)
				}
			}
		}
		if err != nil || len(ts) == 0 {
			return
		}
		for i := 1; i < len(ts); i++ {
			if ts[i] <= ts[i-1] {
				t.Fatalf("decoded sample %d at %d after %d", i, ts[i], ts[i-1])
			}
		}
		var chunk []byte
		if enc == chunkenc.EncHistPack {
			chunk, err = chunkenc.EncodeHistograms(nil, ts, hs)
		} else {
			chunk, err = chunkenc.EncodeFloatHistograms(nil, ts, fhs)
		}
		if err != nil {
			t.Fatalf("re-encode %d decoded samples: %v", len(ts), err)
		}
		checkHistogramChunk(t, chunk, ts, hs, fhs)
	})
}

// FuzzHistogramRoundTrip derives valid histogram samples from the input
// (deriveHistograms) and checks that both encodings give them back bit for
// bit, through Next, Seek and AtFloat.
func FuzzHistogramRoundTrip(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{40, 0xff, 0x10, 0x22, 0x33, 0x81, 0x07, 0x99, 0, 0, 1, 2, 3, 0xf0, 0xf1, 0xf2, 0xf3})
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, hs := deriveHistograms(data)
		chunk, err := chunkenc.EncodeHistograms(nil, ts, hs)
		if err != nil {
			t.Fatalf("encode %d derived histograms: %v", len(hs), err)
		}
		checkHistogramChunk(t, chunk, ts, hs, nil)
		div := 1 + float64(len(data)%9)
		fhs := toFloatHistograms(hs, div)
		chunk, err = chunkenc.EncodeFloatHistograms(nil, ts, fhs)
		if err != nil {
			t.Fatalf("encode %d derived float histograms: %v", len(fhs), err)
		}
		checkHistogramChunk(t, chunk, ts, nil, fhs)
	})
}

// checkHistogramChunk decodes chunk and compares it with the samples (hs
// for an integer chunk, else fhs) bit for bit; Seek to every timestamp
// must land on it.
func checkHistogramChunk(t *testing.T, chunk []byte, ts []int64, hs []chunkenc.Histogram, fhs []chunkenc.FloatHistogram) {
	t.Helper()
	var it chunkenc.HistogramIterator
	it.Reset(chunk)
	i := 0
	for ; it.Next(); i++ {
		if i >= len(ts) {
			t.Fatalf("chunk holds more than %d samples", len(ts))
		}
		tm, fh := it.AtFloat()
		if tm != ts[i] {
			t.Fatalf("sample %d at %d, want %d", i, tm, ts[i])
		}
		if hs != nil {
			if _, h := it.At(); !chunkenc.EqualHistograms(h, &hs[i]) {
				t.Fatalf("sample %d: %+v, want %+v", i, *h, hs[i])
			}
		} else if !chunkenc.EqualFloatHistograms(fh, &fhs[i]) {
			t.Fatalf("sample %d: %+v, want %+v", i, *fh, fhs[i])
		}
	}
	if err := it.Err(); err != nil || i != len(ts) {
		t.Fatalf("decoded %d of %d samples: %v", i, len(ts), err)
	}
	for j, target := range ts {
		it.Reset(chunk)
		if !it.Seek(target) {
			t.Fatalf("Seek(%d) found nothing", target)
		}
		if tm, _ := it.AtFloat(); tm != ts[j] {
			t.Fatalf("Seek(%d) stopped at %d", target, tm)
		}
	}
}

// deriveHistograms maps any input to a valid sequence of integer
// histograms: the first byte sets the count (1..64); then each sample
// reads a mode byte (layout change, hint, special sum) and as many bytes
// as its fields need, repeating the input when it runs out.
func deriveHistograms(data []byte) ([]int64, []chunkenc.Histogram) {
	pos := 0
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[pos%len(data)]
		pos++
		return b
	}
	n := 1
	if len(data) > 0 {
		n = 1 + int(next())%64
	}
	ts := make([]int64, n)
	hs := make([]chunkenc.Histogram, n)
	t := int64(int8(next())) * 1000
	schema := int32(int8(next())) % 9
	var cv []float64
	pos0 := []chunkenc.Span{{Offset: int32(int8(next())), Length: uint32(next() % 5)}}
	var neg []chunkenc.Span
	for i := range n {
		mode := next()
		t += 1 + int64(next())*(1+int64(mode%3)*1000)
		ts[i] = t
		switch mode % 8 {
		case 0: // new layout
			pos0 = []chunkenc.Span{{Offset: int32(int8(next())), Length: uint32(next() % 6)}, {Offset: int32(next() % 4), Length: uint32(next() % 3)}}
		case 1: // custom buckets
			schema = -53
			cv = nil
			for range next() % 6 {
				cv = append(cv, float64(next())/4)
			}
		case 2:
			neg = []chunkenc.Span{{Offset: int32(int8(next())), Length: uint32(next()%3 + 1)}}
		case 3:
			schema = int32(int8(next())) % 9
			cv = nil
		}
		h := chunkenc.Histogram{
			CounterResetHint: chunkenc.CounterResetHint(mode >> 6),
			Schema:           schema,
			ZeroThreshold:    []float64{0, math.Ldexp(1, -128), 0.001, math.NaN()}[mode>>4&3],
			ZeroCount:        uint64(next()),
			Count:            uint64(next()) << (next() % 64),
			Sum:              float64(int8(next())) * 0.1,
			PositiveSpans:    pos0,
			NegativeSpans:    neg,
			CustomValues:     cv,
		}
		if mode&8 != 0 {
			var b [8]byte
			for j := range b {
				b[j] = next()
			}
			h.Sum = math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
		}
		for range spansLen(pos0) {
			h.PositiveBuckets = append(h.PositiveBuckets, int64(int8(next())))
		}
		for range spansLen(neg) {
			h.NegativeBuckets = append(h.NegativeBuckets, int64(int8(next()))<<(next()%56))
		}
		hs[i] = h
	}
	return ts, hs
}

func spansLen(ss []chunkenc.Span) int {
	n := 0
	for _, s := range ss {
		n += int(s.Length)
	}
	return n
}

// toFloatHistograms converts like Prometheus's ToFloat and divides counts
// by div (div 1: exact).
func toFloatHistograms(hs []chunkenc.Histogram, div float64) []chunkenc.FloatHistogram {
	out := make([]chunkenc.FloatHistogram, len(hs))
	for i, h := range hs {
		f := chunkenc.FloatHistogram{
			CounterResetHint: h.CounterResetHint, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
			ZeroCount: float64(h.ZeroCount) / div, Count: float64(h.Count) / div, Sum: h.Sum,
			PositiveSpans: h.PositiveSpans, NegativeSpans: h.NegativeSpans, CustomValues: h.CustomValues,
		}
		for _, x := range [2]struct {
			in  []int64
			out *[]float64
		}{{h.PositiveBuckets, &f.PositiveBuckets}, {h.NegativeBuckets, &f.NegativeBuckets}} {
			abs := int64(0)
			for _, d := range x.in {
				abs += d
				*x.out = append(*x.out, float64(abs)/div)
			}
		}
		out[i] = f
	}
	return out
}

func cloneHistogram(h *chunkenc.Histogram) chunkenc.Histogram {
	c := *h
	c.PositiveSpans = append([]chunkenc.Span(nil), h.PositiveSpans...)
	c.NegativeSpans = append([]chunkenc.Span(nil), h.NegativeSpans...)
	c.PositiveBuckets = append([]int64(nil), h.PositiveBuckets...)
	c.NegativeBuckets = append([]int64(nil), h.NegativeBuckets...)
	c.CustomValues = append([]float64(nil), h.CustomValues...)
	return c
}

func cloneFloatHistogram(h *chunkenc.FloatHistogram) chunkenc.FloatHistogram {
	c := *h
	c.PositiveSpans = append([]chunkenc.Span(nil), h.PositiveSpans...)
	c.NegativeSpans = append([]chunkenc.Span(nil), h.NegativeSpans...)
	c.PositiveBuckets = append([]float64(nil), h.PositiveBuckets...)
	c.NegativeBuckets = append([]float64(nil), h.NegativeBuckets...)
	c.CustomValues = append([]float64(nil), h.CustomValues...)
	return c
}
