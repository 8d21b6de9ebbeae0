package chunkenc

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// histGoldenCase is a fixed input of the histogram golden files.
type histGoldenCase struct {
	name string
	ts   []int64
	hs   []Histogram
}

// counterHistograms returns n scrapes of a counter histogram with the
// given spans: bucket b grows by up to rates[b] per scrape (splitmix, so
// the cases never change), scrapes 15 s apart with a few ms of jitter.
func counterHistograms(rng *splitmix, n int, schema int32, cv []float64, pos []Span, rates []int) ([]int64, []Histogram) {
	ts := make([]int64, n)
	hs := make([]Histogram, n)
	abs := make([]int64, len(rates))
	sum := 0.0
	count := uint64(0)
	for i := range n {
		ts[i] = 1795238701122 + int64(i)*15000 + int64(rng.intn(3)) - 1
		prev := int64(0)
		h := Histogram{Schema: schema, ZeroThreshold: math.Ldexp(1, -128), CustomValues: cv, PositiveSpans: pos, CounterResetHint: NotCounterReset}
		if i == 0 {
			h.CounterResetHint = UnknownCounterReset
		}
		for b := range abs {
			inc := int64(rng.intn(rates[b] + 1))
			abs[b] += inc
			count += uint64(inc)
			sum += float64(inc) * 0.0123
			h.PositiveBuckets = append(h.PositiveBuckets, abs[b]-prev)
			prev = abs[b]
		}
		h.Count, h.Sum = count, sum
		hs[i] = h
	}
	return ts, hs
}

func histGoldenCases() []histGoldenCase {
	rng := splitmix(1)
	var cases []histGoldenCase
	add := func(name string, ts []int64, hs []Histogram) {
		cases = append(cases, histGoldenCase{name, ts, hs})
	}
	nhcbCV := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	ts, hs := counterHistograms(&rng, 1, -53, nhcbCV, []Span{{0, 12}}, []int{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9})
	add("single-nhcb", ts, hs)
	ts, hs = counterHistograms(&rng, 120, -53, nhcbCV, []Span{{0, 5}, {2, 2}}, []int{50, 20, 8, 1, 0, 0, 0})
	add("nhcb-counter", ts, hs)
	ts, hs = counterHistograms(&rng, 120, 3, nil, []Span{{-12, 6}, {1, 4}}, []int{0, 2, 7, 30, 30, 7, 2, 1, 0, 0})
	add("exp-counter", ts, hs)

	// A bucket appears, the counter resets, negative buckets, a gauge.
	ts, hs = counterHistograms(&rng, 40, 0, nil, []Span{{0, 3}}, []int{4, 4, 4})
	for i := 20; i < 40; i++ {
		h := &hs[i]
		h.PositiveSpans = []Span{{0, 3}, {2, 1}}
		h.PositiveBuckets = append(append([]int64(nil), h.PositiveBuckets...), int64(i)-h.PositiveBuckets[0]-h.PositiveBuckets[1]-h.PositiveBuckets[2])
		h.NegativeSpans = []Span{{-1, 2}}
		h.NegativeBuckets = []int64{int64(i), -1}
	}
	for i := range hs {
		hs[i].Sum = float64(i) * 0.25 // decimal sums
	}
	hs[30].CounterResetHint = CounterReset
	hs[35].CounterResetHint = GaugeType
	add("layout-change", ts, hs)

	// Layouts back and forth: runs with and without a new header.
	ts = regular(0, 1000, 6)
	hs = []Histogram{
		{Schema: -53, CustomValues: []float64{1, 2}, PositiveSpans: []Span{{0, 2}}, PositiveBuckets: []int64{1, 1}},
		{Schema: -53, CustomValues: []float64{1, 2}, PositiveSpans: []Span{{0, 3}}, PositiveBuckets: []int64{1, 1, 1}},
		{Schema: -53, CustomValues: []float64{1, 2.5}, PositiveSpans: []Span{{0, 3}}, PositiveBuckets: []int64{2, 1, 1}},
		{Schema: 2, PositiveSpans: []Span{{3, 0}, {-1, 1}}, PositiveBuckets: []int64{7}},
		{Schema: 2, ZeroThreshold: 0.001, ZeroCount: 5, Count: 5},
		{Schema: 2, ZeroThreshold: 0.001, ZeroCount: 6, Count: 6},
	}
	add("back-and-forth", ts, hs)

	// Every special float where the format has one: stale and NaN sums,
	// odd zero thresholds and custom values, extreme counts and indices.
	ts = []int64{math.MinInt64, -1, 0, math.MaxInt64}
	hs = []Histogram{
		{Sum: math.Float64frombits(0x7ff0000000000002)},
		{Schema: -53, ZeroThreshold: math.Float64frombits(0x7ff8000000000001), CustomValues: []float64{math.Copysign(0, -1), math.Inf(1), math.NaN()},
			Count: math.MaxUint64, Sum: math.Inf(-1), PositiveSpans: []Span{{math.MinInt32, 1}}, PositiveBuckets: []int64{math.MinInt64}},
		{Schema: math.MaxInt32, Sum: math.Copysign(0, -1), PositiveSpans: []Span{{math.MaxInt32, 2}}, PositiveBuckets: []int64{math.MaxInt64, 1}},
		{Schema: math.MinInt32, Sum: math.Float64frombits(0x7ff0000000000002), CounterResetHint: GaugeType},
	}
	add("special", ts, hs)
	return cases
}

// histFloatCase derives a float case: counts divided by div as a
// rate() would make them (div 1 keeps them integral and the sum as is).
func histFloatCase(tc histGoldenCase, div float64) []FloatHistogram {
	out := make([]FloatHistogram, len(tc.hs))
	for i, h := range tc.hs {
		d := func(v float64) float64 {
			if div == 1 {
				return v
			}
			return v / div
		}
		f := FloatHistogram{CounterResetHint: h.CounterResetHint, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
			ZeroCount: d(float64(h.ZeroCount)), Count: d(float64(h.Count)), Sum: d(h.Sum),
			PositiveSpans: h.PositiveSpans, NegativeSpans: h.NegativeSpans, CustomValues: h.CustomValues}
		for _, bs := range [2]struct {
			in  []int64
			out *[]float64
		}{{h.PositiveBuckets, &f.PositiveBuckets}, {h.NegativeBuckets, &f.NegativeBuckets}} {
			abs := int64(0)
			for _, x := range bs.in {
				abs += x
				*bs.out = append(*bs.out, d(float64(abs)))
			}
		}
		out[i] = f
	}
	return out
}

// histGoldenBranches are the branches of the histogram formats (doc.go)
// that some golden case must take: TestHistogramGolden fails when none
// does any more.
var histGoldenBranches = map[Encoding][]string{
	EncHistPack: {
		"hint:changes", "layout:runs>1", "layout:same-header", "layout:new-header", "layout:custom-values",
		"layout:empty-span", "layout:negative", "cv-val:dec", "cv-val:xor",
		"col:single", "col:order-abs", "col:order-delta", "col:order-delta-of-delta",
		"sum-val:const", "sum-val:dec", "sum-val:xor",
	},
	EncFloatHistPack: {
		"hint:changes", "layout:runs>1", "layout:same-header", "layout:new-header", "layout:custom-values",
		"layout:negative", "fcol-val:const", "fcol-val:dec", "fcol-val:xor", "sum-val:xor",
	},
}

// TestHistogramGolden freezes the histogram formats as TestGolden freezes
// the float ones: testdata/histpack.golden and floathistpack.golden hold
// each case's layout and bytes (rewrite: go test ./chunkenc -run
// 'TestGolden|TestHistogramGolden' -rewrite).
func TestHistogramGolden(t *testing.T) {
	cases := histGoldenCases()
	for _, enc := range HistogramEncodings {
		t.Run(enc.String(), func(t *testing.T) {
			path := filepath.Join("testdata", enc.String()+".golden")
			var text strings.Builder
			fmt.Fprintf(&text, "# %s chunks of chunkenc's histogram golden cases (histgolden_test.go):\n", enc)
			fmt.Fprintf(&text, "# per case its layout as doc.go reads it, then `hexdump -C` of the chunk.\n")
			fmt.Fprintf(&text, "# Rewrite: go test ./chunkenc -run TestHistogramGolden -rewrite\n")
			taken := map[string]bool{}
			chunks := map[string][]byte{}
			type variant struct {
				name string
				fhs  []FloatHistogram
				tc   histGoldenCase
			}
			var vs []variant
			for _, tc := range cases {
				if enc == EncHistPack {
					vs = append(vs, variant{tc.name, nil, tc})
					continue
				}
				vs = append(vs, variant{tc.name, histFloatCase(tc, 1), tc}, variant{tc.name + "-rate", histFloatCase(tc, 60), tc})
			}
			var reused Encoder
			encode := func(e *Encoder, dst []byte, v variant) ([]byte, error) {
				if v.fhs != nil {
					return e.EncodeFloatHistograms(dst, v.tc.ts, v.fhs)
				}
				return e.EncodeHistograms(dst, v.tc.ts, v.tc.hs)
			}
			var it HistogramIterator
			decodes := func(chunk []byte, v variant) bool {
				it.Reset(chunk)
				i := 0
				for ; it.Next(); i++ {
					if i >= len(v.tc.ts) {
						return false
					}
					t, fh := it.AtFloat()
					ok := t == v.tc.ts[i]
					if v.fhs != nil {
						ok = ok && EqualFloatHistograms(fh, &v.fhs[i])
					} else {
						_, h := it.At()
						ok = ok && EqualHistograms(h, &v.tc.hs[i])
					}
					if !ok {
						return false
					}
				}
				return it.Err() == nil && i == len(v.tc.ts)
			}
			for _, v := range vs {
				var e Encoder
				chunk, err := encode(&e, nil, v)
				require.NoError(t, err, v.name)
				require.True(t, decodes(chunk, v), "%s: round trip", v.name)
				chunks[v.name] = chunk
				l, err := describe(chunk)
				require.NoError(t, err, "%s: layout", v.name)
				for tag := range l.tags {
					taken[tag] = true
				}
				fmt.Fprintf(&text, "\n== %s: %d samples, %d bytes\n", v.name, len(v.tc.ts), len(chunk))
				for _, line := range l.lines {
					text.WriteString(line + "\n")
				}
				text.WriteString(hexdumpC(chunk))
			}
			// The golden file: same text, and its old chunks still decode.
			old, err := readGolden(path)
			if err != nil && !*rewrite {
				t.Fatalf("%v (run with -rewrite to create it)", err)
			}
			oldChunks, err := parseGolden(old)
			require.NoError(t, err)
			for _, v := range vs {
				chunk, ok := oldChunks[v.name]
				switch {
				case !ok && !*rewrite:
					t.Errorf("%s has no case %q (-rewrite adds it)", path, v.name)
				case !ok:
				case !decodes(chunk, v) && !*rewrite:
					t.Errorf("%s: %s: the chunk no longer decodes to its samples: chunks already written would read wrong; a format change needs a new Encoding", path, v.name)
				case !bytes.Equal(chunk, chunks[v.name]) && !*rewrite:
					t.Errorf("%s: %s: the encoder now writes other bytes; the old chunk still decodes, so the encoder's choices changed, not the format: review and -rewrite", path, v.name)
				}
			}
			writeOrCompareGolden(t, path, old, text.String())
			for _, b := range histGoldenBranches[enc] {
				if !taken[b] {
					t.Errorf("no golden case takes branch %q of %s; cases take %v", b, enc, sortedTags(taken))
				}
			}
			// A reused encoder, in reverse order, writes the same bytes.
			for i := len(vs) - 1; i >= 0; i-- {
				got, err := encode(&reused, []byte("prefix"), vs[i])
				require.NoError(t, err)
				require.Equal(t, chunks[vs[i].name], got[6:], "%s: reused encoder, reverse order", vs[i].name)
			}
		})
	}
}

func readGolden(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// writeOrCompareGolden rewrites the golden file under -rewrite, else
// compares it with text.
func writeOrCompareGolden(t *testing.T, path, old, text string) {
	t.Helper()
	if *rewrite {
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
		return
	}
	if text != old {
		t.Errorf("%s changed; a format change updates doc.go, the encoding and this file together (-rewrite), and is reviewed in the diff:\n%s",
			path, firstDiff(old, text))
	}
}
