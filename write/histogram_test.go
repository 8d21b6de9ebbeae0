package write

import (
	"encoding/hex"
	"errors"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
)

// goldenHistograms are the fixed histogram samples of the version 5
// golden batch: an integer histogram with negative and positive buckets
// and every hint, a float one with a gauge hint, a custom-buckets (NHCB,
// schema -53) one, an empty one and a stale marker (StaleNaN sum).
func goldenHistograms() []Histogram {
	return []Histogram{
		{T: 1_700_000_000_000, H: &histogram.Histogram{
			CounterResetHint: histogram.CounterReset, Schema: 3, ZeroThreshold: 1e-128, ZeroCount: 2, Count: 12, Sum: 18.4,
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
			PositiveBuckets: []int64{1, 1, -1, 0},
			NegativeSpans:   []histogram.Span{{Offset: -3, Length: 1}},
			NegativeBuckets: []int64{4},
		}},
		{T: 1_700_000_015_000, FH: &histogram.FloatHistogram{
			CounterResetHint: histogram.GaugeType, Schema: -4, ZeroThreshold: 0.001, ZeroCount: 0.5, Count: 7.25, Sum: -3,
			PositiveSpans:   []histogram.Span{{Offset: 2, Length: 1}},
			PositiveBuckets: []float64{6.75},
		}},
		{T: 1_700_000_030_000, H: &histogram.Histogram{
			Schema: histogram.CustomBucketsSchema, Count: 5, Sum: 12.5,
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 3}},
			PositiveBuckets: []int64{2, -1, 1},
			CustomValues:    []float64{0.1, 1, math.Inf(1)},
		}},
		{T: 1_700_000_045_000, H: &histogram.Histogram{}},
		{T: -7, FH: &histogram.FloatHistogram{CounterResetHint: histogram.NotCounterReset, Sum: math.Float64frombits(value.StaleNaN)}},
	}
}

// goldenHistogramBatch is the limits golden batch with a histogram-only
// series and a series with both floats and histograms.
func goldenHistogramBatch(t testing.TB) *Batch {
	b := goldenLimitsBatch(t)
	hs := goldenHistograms()
	bb := NewBuilder(b.Tenant)
	for _, s := range b.Series {
		bb.AddEncoded(s.Labels, s.Samples)
	}
	require.NoError(t, bb.AddHistograms(labels.FromStrings("__name__", "rpc_duration_seconds", "job", "api"), nil, hs))
	require.NoError(t, bb.AddHistograms(labels.FromStrings("__name__", "mixed"), []Sample{{5, 1}}, hs[:1]))
	out := bb.Batch()
	out.Limits = b.Limits
	return out
}

// TestBatchHistogramsGolden freezes the version 5 encoding.
func TestBatchHistogramsGolden(t *testing.T) {
	b := goldenHistogramBatch(t)
	enc := Append(nil, b)
	require.Equal(t, VersionHistograms, enc[0])
	checkGolden(t, "batch_v5.golden", hex.Dump(enc))
	got, err := Decode(readGolden(t, "batch_v5.golden"))
	require.NoError(t, err)
	requireSameBatch(t, b, &got)
	if again := Append(nil, &got); string(again) != string(enc) {
		t.Fatalf("golden batch decodes to another batch:\n%s", hex.Dump(again))
	}
	// Compressed, as a node proposes it.
	var e Encoder
	got, err = Decode(e.Entry(b))
	require.NoError(t, err)
	requireSameBatch(t, b, &got)
}

// requireSameBatch compares two batches bit-exactly (NaN sums included).
func requireSameBatch(t *testing.T, want, got *Batch) {
	t.Helper()
	require.Equal(t, want.Tenant, got.Tenant)
	require.Equal(t, want.Limits, got.Limits)
	require.Len(t, got.Series, len(want.Series))
	for i := range want.Series {
		w, g := &want.Series[i], &got.Series[i]
		require.Equal(t, string(w.Labels), string(g.Labels), "series %d", i)
		require.Len(t, g.Samples, len(w.Samples), "series %d", i)
		for j := range w.Samples {
			require.Equal(t, w.Samples[j].T, g.Samples[j].T)
			require.Equal(t, math.Float64bits(w.Samples[j].V), math.Float64bits(g.Samples[j].V))
		}
		require.Equal(t, w.StartTimestamps(), g.StartTimestamps(), "series %d", i)
		require.Len(t, g.Histograms, len(w.Histograms), "series %d", i)
		for j := range w.Histograms {
			wh, gh := w.Histograms[j], g.Histograms[j]
			require.Equal(t, wh.T, gh.T)
			if wh.H != nil {
				require.NotNil(t, gh.H, "series %d histogram %d", i, j)
				require.Equal(t, math.Float64bits(wh.H.Sum), math.Float64bits(gh.H.Sum))
				x, y := *wh.H, *gh.H
				x.Sum, y.Sum = 0, 0
				require.Equal(t, x.String(), y.String())
				require.True(t, x.Equals(&y), "series %d histogram %d: %v != %v", i, j, x, y)
			} else {
				require.NotNil(t, gh.FH, "series %d histogram %d", i, j)
				require.Equal(t, math.Float64bits(wh.FH.Sum), math.Float64bits(gh.FH.Sum))
				x, y := *wh.FH, *gh.FH
				x.Sum, y.Sum = 0, 0
				require.True(t, x.Equals(&y), "series %d histogram %d: %v != %v", i, j, x, y)
			}
		}
	}
}

// TestFloatOnlyStaysVersion4: a batch without histograms is written as
// version 4, which a replica of the previous release decodes.
func TestFloatOnlyStaysVersion4(t *testing.T) {
	b := goldenLimitsBatch(t)
	require.Equal(t, Version, Append(nil, b)[0])
	b.Series[0].Histograms = []Histogram{}
	require.Equal(t, Version, Append(nil, b)[0], "an empty histogram slice is no histogram")
}

func TestHistogramEncodedSize(t *testing.T) {
	b := goldenHistogramBatch(t)
	enc := Append(nil, b)
	require.Equal(t, len(enc), encodedSize(b, true, false))
}

// TestHistogramCorrupt: every truncation of a version 5 batch is refused
// with a CorruptError, and so are bad kinds, hints and flags.
func TestHistogramCorrupt(t *testing.T) {
	enc := Append(nil, goldenHistogramBatch(t))
	for n := range len(enc) {
		_, err := Decode(enc[:n])
		require.Error(t, err, "truncated at %d", n)
		require.True(t, errors.Is(err, ErrCorrupt), "truncated at %d: %v", n, err)
	}
	one := buildHistBatch(t, Histogram{T: 1, H: &histogram.Histogram{Count: 1, ZeroCount: 1}})
	// version, tenant (1+1), limits (2), nseries, labels (1+4), nsamples,
	// nhist, tdelta: the kind is at 14, the hint at 15.
	require.Equal(t, kindHistogram, one[14])
	for _, tc := range []struct {
		name string
		off  int
		b    byte
		want string
	}{
		{"kind", 14, 3, "unknown histogram kind 3"},
		{"hint", 15, 4, "unknown counter reset hint 4"},
		{"flags", len(one) - 1, 1, "unknown series flags 0x1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := append([]byte(nil), one...)
			bad[tc.off] = tc.b
			_, err := Decode(bad)
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			require.Contains(t, ce.Reason, tc.want)
			require.Equal(t, tc.off, ce.Offset)
		})
	}
}

func buildHistBatch(t *testing.T, hs ...Histogram) []byte {
	t.Helper()
	bb := NewBuilder("t")
	require.NoError(t, bb.AddHistograms(labels.FromStrings("a", "b"), nil, hs))
	return Append(nil, bb.Batch())
}

// TestDecoderReuseHistograms: a Decoder reused for a float-only batch
// after a histogram batch returns no stale histograms.
func TestDecoderReuseHistograms(t *testing.T) {
	var d Decoder
	b, err := d.Decode(Append(nil, goldenHistogramBatch(t)))
	require.NoError(t, err)
	require.Equal(t, 6, b.NumHistograms())
	b, err = d.Decode(Append(nil, goldenLimitsBatch(t)))
	require.NoError(t, err)
	require.Zero(t, b.NumHistograms())
}
