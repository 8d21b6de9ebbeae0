package write

import (
	"encoding/hex"
	"errors"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
)

// goldenExemplarBatch is the fixed input of the version 7 tests: a float
// series with exemplars (one without labels, a StaleNaN value, unsorted
// times), a histogram series with exemplars and metadata, and a
// metadata-only series with an empty unit and UTF-8 help.
func goldenExemplarBatch(t testing.TB) *Batch {
	bb := NewBuilder("tenant-ü")
	require.NoError(t, bb.Add(labels.FromStrings("__name__", "http_requests_total", "job", "api"), []Sample{{1_700_000_000_000, 3}}))
	trace := AppendLabel(AppendLabel(nil, "span_id", "00f067aa0ba902b7"), "trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")
	require.NoError(t, bb.AddHistograms(labels.FromStrings("__name__", "rpc_duration_seconds", "job", "api"), nil, goldenHistograms()[:1]))
	require.NoError(t, bb.Add(labels.FromStrings("__name__", "process_cpu_seconds_total"), nil))
	b := bb.Batch()
	b.Series[0].Meta = &SeriesMeta{Exemplars: []Exemplar{
		{T: 1_700_000_000_000, V: 3, Labels: trace},
		{T: 1_699_999_999_000, V: math.Float64frombits(value.StaleNaN)},
		{T: math.MinInt64, V: math.Inf(-1), Labels: AppendLabel(nil, "a", "\x00→")},
	}}
	b.Series[1].Meta = &SeriesMeta{Exemplars: []Exemplar{{T: 10, V: 0.25, Labels: trace}},
		Metadata: &Metadata{Family: "rpc_duration_seconds", Type: 3, Unit: "seconds", Help: "RPC latency."}}
	b.Series[2].Meta = &SeriesMeta{Metadata: &Metadata{Family: "process_cpu_seconds_total", Type: 1, Help: "Total CPU time — ü."}}
	b.Limits = SeriesLimits{MaxSeries: 50_546, MaxSeriesPerMetric: 127}
	b.MetaLimits = MetaLimits{MaxExemplars: 100_000, MaxMetadata: 3_000, MaxMetadataPerMetric: 10}
	return b
}

// requireSameMeta compares the exemplars, metadata and their limits.
func requireSameMeta(t *testing.T, want, got *Batch) {
	t.Helper()
	requireSameBatch(t, want, got)
	require.Equal(t, want.MetaLimits, got.MetaLimits)
	for i := range want.Series {
		w, g := &want.Series[i], &got.Series[i]
		require.Len(t, g.Exemplars(), len(w.Exemplars()), "series %d", i)
		for j := range w.Exemplars() {
			we, ge := w.Exemplars()[j], g.Exemplars()[j]
			require.Equal(t, we.T, ge.T)
			require.Equal(t, math.Float64bits(we.V), math.Float64bits(ge.V))
			require.Equal(t, string(we.Labels), string(ge.Labels))
		}
		require.Equal(t, w.Metadata(), g.Metadata(), "series %d", i)
	}
}

// TestBatchExemplarsGolden freezes the version 7 encoding.
func TestBatchExemplarsGolden(t *testing.T) {
	b := goldenExemplarBatch(t)
	enc := Append(nil, b)
	require.Equal(t, VersionExemplars, enc[0])
	require.Len(t, enc, encodedSize(b, true, true))
	checkGolden(t, "batch_v7.golden", hex.Dump(enc))
	got, err := Decode(readGolden(t, "batch_v7.golden"))
	require.NoError(t, err)
	requireSameMeta(t, b, &got)
	if again := Append(nil, &got); string(again) != string(enc) {
		t.Fatalf("golden batch decodes to another batch:\n%s", hex.Dump(again))
	}
	var e Encoder
	got, err = Decode(e.Entry(b))
	require.NoError(t, err)
	requireSameMeta(t, b, &got)
	require.Equal(t, 4, got.NumExemplars())
}

// TestNoMetaKeepsVersion: exemplar and metadata limits alone do not make
// a batch version 7; a batch without exemplars and metadata keeps the
// version an earlier release decodes.
func TestNoMetaKeepsVersion(t *testing.T) {
	b := goldenLimitsBatch(t)
	b.MetaLimits = MetaLimits{MaxExemplars: 5}
	require.Equal(t, Version, Append(nil, b)[0])
	b.Series[0].Meta = &SeriesMeta{Exemplars: []Exemplar{}}
	require.Equal(t, Version, Append(nil, b)[0], "an empty exemplar slice is no exemplar")
	h := goldenHistogramBatch(t)
	require.Equal(t, VersionHistograms, Append(nil, h)[0])
}

// TestExemplarsCorrupt: every truncation of a version 7 batch, an unknown
// flag, a flag without its section, an unknown metric type and an empty
// family are refused with a CorruptError, never a panic.
func TestExemplarsCorrupt(t *testing.T) {
	enc := Append(nil, goldenExemplarBatch(t))
	for n := range len(enc) {
		_, err := Decode(enc[:n])
		require.Error(t, err, "truncated to %d bytes", n)
		require.True(t, errors.Is(err, ErrCorrupt), "truncated to %d bytes: %v", n, err)
	}
	// The third series (metadata only) ends the batch: flags byte,
	// type, family, unit, help.
	m := goldenExemplarBatch(t).Series[2].Metadata()
	tail := 1 + 1 + 1 + len(m.Family) + 1 + len(m.Unit) + 1 + len(m.Help)
	flagsAt := len(enc) - tail
	require.Equal(t, flagMetadata, enc[flagsAt])
	for _, tc := range []struct {
		name string
		edit func([]byte)
	}{
		{"unknown flag", func(b []byte) { b[flagsAt] |= 1 << 5 }},
		{"exemplar flag without exemplars", func(b []byte) { b[flagsAt] = flagExemplars | flagMetadata }},
		{"unknown metric type", func(b []byte) { b[flagsAt+1] = 8 }},
		{"empty family", func(b []byte) { b[flagsAt+2] = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), enc...)
			tc.edit(b)
			_, err := Decode(b)
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
	// Version 5 refuses the flags version 7 defines.
	h := Append(nil, goldenHistogramBatch(t))
	h[len(h)-1] = flagExemplars
	_, err := Decode(h)
	require.ErrorIs(t, err, ErrCorrupt)
}
