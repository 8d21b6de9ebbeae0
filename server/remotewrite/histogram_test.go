package remotewrite

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// randHistogram returns a prompb histogram with random choices of every
// oneof, packed and empty fields, negative offsets and any reset hint.
func randHistogram(rng *rand.Rand) prompb.Histogram {
	h := prompb.Histogram{Sum: rng.NormFloat64(), Schema: int32(rng.IntN(70)) - 60, ZeroThreshold: rng.Float64(),
		ResetHint: prompb.Histogram_ResetHint(rng.IntN(6)), Timestamp: rng.Int64() - rng.Int64()}
	if rng.IntN(2) == 0 {
		h.Count = &prompb.Histogram_CountInt{CountInt: rng.Uint64()}
	} else {
		h.Count = &prompb.Histogram_CountFloat{CountFloat: rng.Float64() * 100}
	}
	switch rng.IntN(3) {
	case 0:
		h.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: rng.Uint64N(100)}
	case 1:
		h.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: rng.Float64()}
	}
	spans := func() []prompb.BucketSpan {
		var s []prompb.BucketSpan
		for range rng.IntN(4) {
			s = append(s, prompb.BucketSpan{Offset: rng.Int32N(20) - 10, Length: rng.Uint32N(5)})
		}
		return s
	}
	h.PositiveSpans, h.NegativeSpans = spans(), spans()
	for range rng.IntN(6) {
		h.PositiveDeltas = append(h.PositiveDeltas, rng.Int64N(100)-50)
	}
	for range rng.IntN(6) {
		h.NegativeDeltas = append(h.NegativeDeltas, rng.Int64N(100)-50)
	}
	for range rng.IntN(6) {
		h.PositiveCounts = append(h.PositiveCounts, rng.Float64())
	}
	for range rng.IntN(6) {
		h.NegativeCounts = append(h.NegativeCounts, rng.Float64())
	}
	for range rng.IntN(4) {
		h.CustomValues = append(h.CustomValues, rng.NormFloat64())
	}
	return h
}

// wantHist is prompb's conversion, the hint clamped as Histogram does.
func wantHist(hp prompb.Histogram) write.Histogram {
	if hp.ResetHint > prompb.Histogram_GAUGE {
		hp.ResetHint = prompb.Histogram_UNKNOWN
	}
	if hp.IsFloatHistogram() {
		return write.Histogram{T: hp.Timestamp, FH: hp.ToFloatHistogram()}
	}
	return write.Histogram{T: hp.Timestamp, H: hp.ToIntHistogram()}
}

func requireSameHist(t *testing.T, want, got write.Histogram, msg string) {
	t.Helper()
	require.Equal(t, want.T, got.T, msg)
	nz := func(s []histogram.Span) []histogram.Span {
		if len(s) == 0 {
			return nil
		}
		return s
	}
	nzf := func(s []float64) []float64 {
		if len(s) == 0 {
			return nil
		}
		return s
	}
	if want.H != nil {
		require.NotNil(t, got.H, msg)
		w, g := *want.H, *got.H
		require.Equal(t, math.Float64bits(w.Sum), math.Float64bits(g.Sum), msg)
		w.Sum, g.Sum = 0, 0
		w.PositiveSpans, w.NegativeSpans, w.CustomValues = nz(w.PositiveSpans), nz(w.NegativeSpans), nzf(w.CustomValues)
		g.PositiveSpans, g.NegativeSpans, g.CustomValues = nz(g.PositiveSpans), nz(g.NegativeSpans), nzf(g.CustomValues)
		if len(w.PositiveBuckets) == 0 {
			w.PositiveBuckets = nil
		}
		if len(w.NegativeBuckets) == 0 {
			w.NegativeBuckets = nil
		}
		require.Equal(t, w, g, msg)
		return
	}
	require.NotNil(t, got.FH, msg)
	w, g := *want.FH, *got.FH
	require.Equal(t, math.Float64bits(w.Sum), math.Float64bits(g.Sum), msg)
	w.Sum, g.Sum = 0, 0
	w.PositiveSpans, w.NegativeSpans, w.CustomValues = nz(w.PositiveSpans), nz(w.NegativeSpans), nzf(w.CustomValues)
	g.PositiveSpans, g.NegativeSpans, g.CustomValues = nz(g.PositiveSpans), nz(g.NegativeSpans), nzf(g.CustomValues)
	w.PositiveBuckets, w.NegativeBuckets = nzf(w.PositiveBuckets), nzf(w.NegativeBuckets)
	require.Equal(t, w, g, msg)
}

// TestHistogramMatchesPrompb: every histogram of random 1.0 and 2.0
// requests decodes to what prompb's ToIntHistogram / ToFloatHistogram
// build from the same bytes.
func TestHistogramMatchesPrompb(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	var r Request
	for range 300 {
		var want []prompb.Histogram
		req := prompb.WriteRequest{}
		req2 := writev2.Request{Symbols: []string{"", "__name__", "h"}}
		for range 1 + rng.IntN(3) {
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "h"}}}
			ts2 := writev2.TimeSeries{LabelsRefs: []uint32{1, 2}}
			for range 1 + rng.IntN(3) {
				hp := randHistogram(rng)
				ts.Histograms = append(ts.Histograms, hp)
				ts2.Histograms = append(ts2.Histograms, toV2Histogram(hp))
				want = append(want, hp)
			}
			req.Timeseries = append(req.Timeseries, ts)
			req2.Timeseries = append(req2.Timeseries, ts2)
		}
		body, err := req.Marshal()
		require.NoError(t, err)
		require.NoError(t, r.Unmarshal(body))
		require.Len(t, r.Histograms, len(want))
		for j := range want {
			got, err := r.Histogram(j)
			require.NoError(t, err)
			requireSameHist(t, wantHist(want[j]), got, "1.0")
		}
		body, err = req2.Marshal()
		require.NoError(t, err)
		require.NoError(t, r.UnmarshalV2(body))
		require.Len(t, r.Histograms, len(want))
		for j := range want {
			got, err := r.Histogram(j)
			require.NoError(t, err)
			requireSameHist(t, wantHist(want[j]), got, "2.0")
		}
	}
}

func toV2Histogram(hp prompb.Histogram) writev2.Histogram {
	h := writev2.Histogram{Sum: hp.Sum, Schema: hp.Schema, ZeroThreshold: hp.ZeroThreshold,
		ResetHint: writev2.Histogram_ResetHint(hp.ResetHint), Timestamp: hp.Timestamp, StartTimestamp: 42,
		PositiveDeltas: hp.PositiveDeltas, NegativeDeltas: hp.NegativeDeltas, PositiveCounts: hp.PositiveCounts,
		NegativeCounts: hp.NegativeCounts, CustomValues: hp.CustomValues}
	switch c := hp.Count.(type) {
	case *prompb.Histogram_CountInt:
		h.Count = &writev2.Histogram_CountInt{CountInt: c.CountInt}
	case *prompb.Histogram_CountFloat:
		h.Count = &writev2.Histogram_CountFloat{CountFloat: c.CountFloat}
	}
	switch c := hp.ZeroCount.(type) {
	case *prompb.Histogram_ZeroCountInt:
		h.ZeroCount = &writev2.Histogram_ZeroCountInt{ZeroCountInt: c.ZeroCountInt}
	case *prompb.Histogram_ZeroCountFloat:
		h.ZeroCount = &writev2.Histogram_ZeroCountFloat{ZeroCountFloat: c.ZeroCountFloat}
	}
	for _, s := range hp.PositiveSpans {
		h.PositiveSpans = append(h.PositiveSpans, writev2.BucketSpan{Offset: s.Offset, Length: s.Length})
	}
	for _, s := range hp.NegativeSpans {
		h.NegativeSpans = append(h.NegativeSpans, writev2.BucketSpan{Offset: s.Offset, Length: s.Length})
	}
	return h
}

// TestHistogramUnpacked: repeated scalars sent one per field (proto3
// parsers must read them) decode as packed ones do.
func TestHistogramUnpacked(t *testing.T) {
	// count_int 3, schema 0, positive_spans {0, 2}, positive_deltas 1, 0
	// one per field, sum 2.
	hmsg := concat(pvarint(nil, 1, 3), pbytes(nil, 11, concat(pvarint(nil, 1, 0), pvarint(nil, 2, 2))),
		pvarint(nil, 12, 2), pvarint(nil, 12, 0), pdouble(nil, 3, 2), pvarint(nil, 6, 1), pvarint(nil, 15, 1000))
	body := wrap(concat(pbytes(nil, 1, plabel("__name__", "h")), pbytes(nil, 4, hmsg)))
	var r Request
	require.NoError(t, r.Unmarshal(body))
	got, err := r.Histogram(0)
	require.NoError(t, err)
	want := &histogram.Histogram{Count: 3, ZeroCount: 1, Sum: 2, PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 0}}
	require.Equal(t, int64(1000), got.T)
	require.Equal(t, want, got.H)
	var l Limits
	require.NoError(t, l.ValidateHistogram(nil, 0, &got, time.UnixMilli(1000)))
}

// TestValidateHistogram: Prometheus's validation errors, named with the
// series and the histogram; a schema finer than 8 is reduced first.
func TestValidateHistogram(t *testing.T) {
	ls := []Label{{Name: []byte("__name__"), Value: []byte("h")}}
	now := time.UnixMilli(1_000_000)
	for _, tc := range []struct {
		name string
		h    write.Histogram
		want string // "" valid
	}{
		{"valid", write.Histogram{T: 1, H: &histogram.Histogram{Count: 2, PositiveSpans: []histogram.Span{{Length: 2}}, PositiveBuckets: []int64{1, 0}}}, ""},
		{"bucket count mismatch", write.Histogram{T: 1, H: &histogram.Histogram{Count: 2, PositiveSpans: []histogram.Span{{Length: 3}}, PositiveBuckets: []int64{1, 0}}},
			`invalid native histogram (histogram 0 at 1 ms: positive side: spans need 3 buckets, have 2 buckets: histogram spans specify different number of buckets than provided) in series {__name__="h"}`},
		{"negative bucket", write.Histogram{T: 1, H: &histogram.Histogram{Count: 2, PositiveSpans: []histogram.Span{{Length: 2}}, PositiveBuckets: []int64{1, -2}}},
			"histogram has a bucket whose observation count is negative"},
		{"negative float count", write.Histogram{T: 1, FH: &histogram.FloatHistogram{Count: -1}}, "histogram's observation count is negative"},
		{"count mismatch", write.Histogram{T: 1, H: &histogram.Histogram{Count: 5, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{1}}},
			"histogram's observation count should equal the number of observations found in the buckets"},
		{"unknown schema", write.Histogram{T: 1, H: &histogram.Histogram{Schema: 60}}, "histogram has an invalid schema"},
		{"custom bounds not increasing", write.Histogram{T: 1, H: &histogram.Histogram{Schema: -53, Count: 1, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{1}, CustomValues: []float64{2, 1}}},
			"histogram custom bounds must be in strictly increasing order"},
		{"future", write.Histogram{T: 1_000_000 + 11*60_000, H: &histogram.Histogram{}}, "histogram 0 at 1660000 ms is 11m0s ahead of now"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l Limits
			err := l.ValidateHistogram(ls, 0, &tc.h, now)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, `in series {__name__="h"}`)
		})
	}
	// Schema 12 is reduced to 8 (buckets merged), then valid.
	h := write.Histogram{T: 1, H: &histogram.Histogram{Schema: 12, Count: 2, PositiveSpans: []histogram.Span{{Offset: 1, Length: 2}}, PositiveBuckets: []int64{1, 0}}}
	var l Limits
	require.NoError(t, l.ValidateHistogram(ls, 0, &h, now))
	require.Equal(t, int32(8), h.H.Schema)
	require.Equal(t, []int64{2}, h.H.PositiveBuckets)
}
