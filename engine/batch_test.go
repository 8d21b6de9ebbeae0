package engine

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
)

func buildBatch(t testing.TB, tenant string, series ...any) *Batch {
	t.Helper()
	bb := NewBatchBuilder(tenant)
	for i := 0; i+1 < len(series); i += 2 {
		require.NoError(t, bb.Add(series[i].(labels.Labels), series[i+1].([]Sample)))
	}
	return bb.Batch()
}

func TestBatchRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    *Batch
	}{
		{"no series", buildBatch(t, "t1")},
		{"one sample", buildBatch(t, "t1", labels.FromStrings("__name__", "up"), []Sample{{1000, 1}})},
		{"no samples", buildBatch(t, "t1", labels.FromStrings("__name__", "up"), []Sample(nil))},
		{"shared symbols", buildBatch(t, "tenant-2",
			labels.FromStrings("__name__", "up", "job", "a"), []Sample{{1, 0}, {2, math.Inf(1)}},
			labels.FromStrings("__name__", "up", "job", "b"), []Sample{{-5, math.Float64frombits(value.StaleNaN)}, {-9, 3}},
		)},
		{"extreme timestamps", buildBatch(t, "x",
			labels.FromStrings("a", "\x00b"), []Sample{{math.MinInt64, 1}, {math.MaxInt64, 2}, {0, math.NaN()}},
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := AppendBatch([]byte("prefix"), tc.b)
			require.Equal(t, "prefix", string(enc[:6]))
			got, err := DecodeBatch(enc[6:])
			require.NoError(t, err)
			require.Equal(t, tc.b.Tenant, got.Tenant)
			require.Equal(t, tc.b.Symbols, got.Symbols)
			require.Len(t, got.Series, len(tc.b.Series))
			for i := range got.Series {
				require.Equal(t, tc.b.Labels(i), got.Labels(i))
				require.Len(t, got.Series[i].Samples, len(tc.b.Series[i].Samples))
				for j, s := range got.Series[i].Samples {
					w := tc.b.Series[i].Samples[j]
					require.Equal(t, w.T, s.T)
					require.Equal(t, math.Float64bits(w.V), math.Float64bits(s.V), "value bits")
				}
			}
			require.Equal(t, enc[6:], AppendBatch(nil, &got), "re-encoding is identical")
		})
	}
}

// TestBatchGolden freezes the format: a change here needs a BatchVersion
// bump and a doc.go update.
func TestBatchGolden(t *testing.T) {
	b := buildBatch(t, "t",
		labels.FromStrings("__name__", "up", "job", "a"), []Sample{{1000, 1}, {2000, 0}},
		labels.FromStrings("__name__", "up"), []Sample{{1500, 2}},
	)
	const want = "01" + "0174" + // version, tenant "t"
		"04" + "085f5f6e616d655f5f" + "027570" + "036a6f62" + "0161" + // symbols
		"02" + // two series
		"02" + "00" + "01" + "02" + "03" + "02" + // labels: __name__=up job=a; 2 samples
		"d00f" + "000000000000f03f" + "d00f" + "0000000000000000" +
		"01" + "00" + "01" + "01" + "b817" + "0000000000000040"
	require.Equal(t, want, hex.EncodeToString(AppendBatch(nil, b)))
}

func TestDecodeBatchErrors(t *testing.T) {
	valid := AppendBatch(nil, buildBatch(t, "t", labels.FromStrings("a", "b", "c", "d"), []Sample{{1, 1}}))
	for _, tc := range []struct {
		name   string
		in     []byte
		offset int
	}{
		{"empty", nil, 0},
		{"bad version", []byte{2}, 0},
		{"no tenant length", []byte{1}, 1},
		{"empty tenant", []byte{1, 0}, 2},
		{"tenant too long", []byte{1, 5, 'a'}, 2},
		{"symbol count too big", []byte{1, 1, 't', 0x7f}, 4},
		{"huge symbol count", []byte{1, 1, 't', 0xff, 0xff, 0xff, 0xff, 0x0f}, 8},
		{"symbol ref out of range", []byte{1, 1, 't', 1, 1, 'a', 1, 1, 0, 1, 0}, 10},
		{"series count exceeds input", []byte{1, 1, 't', 1, 1, 'a', 1, 1, 0}, 7},
		{"empty value", []byte{1, 1, 't', 2, 1, 'a', 0, 1, 1, 0, 1, 0}, 11},
		{"unsorted names", []byte{1, 1, 't', 2, 1, 'b', 1, 'a', 1, 2, 0, 0, 1, 1, 0}, 13},
		{"no labels", []byte{1, 1, 't', 0, 1, 0, 0, 0, 0}, 6},
		{"truncated value", valid[:len(valid)-1], len(valid) - 9},
		{"trailing byte", append(append([]byte(nil), valid...), 0), len(valid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBatch(tc.in)
			require.ErrorIs(t, err, ErrCorruptBatch)
			var ce *CorruptBatchError
			require.True(t, errors.As(err, &ce))
			require.Equal(t, tc.offset, ce.Offset, "offset; err %v", err)
		})
	}
}

// TestDecodeBatchTruncations decodes every prefix and random corruptions of
// a valid batch: errors, never panics.
func TestDecodeBatchTruncations(t *testing.T) {
	b := buildBatch(t, "tenant",
		labels.FromStrings("__name__", "up", "job", "a"), []Sample{{1000, 1}, {2000, 0}},
		labels.FromStrings("__name__", "x", "z", "y"), []Sample{{1500, 2}},
	)
	enc := AppendBatch(nil, b)
	for i := range enc {
		_, err := DecodeBatch(enc[:i])
		require.Error(t, err, "prefix of %d bytes", i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		c := append([]byte(nil), enc...)
		c[rng.IntN(len(c))] = byte(rng.Uint32())
		_, _ = DecodeBatch(c) // must not panic
	}
}

func TestBatchBuilderRejectsInvalidLabels(t *testing.T) {
	for _, tc := range []struct {
		name string
		lset labels.Labels
	}{
		{"empty", labels.EmptyLabels()},
		{"empty value", labels.FromStrings("a", "")},
		{"empty name", labels.FromStrings("", "x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NewBatchBuilder("t").Add(tc.lset, nil)
			require.ErrorIs(t, err, ErrInvalidLabels)
		})
	}
}

func TestPartitions(t *testing.T) {
	for _, tc := range []struct {
		t, width int64
		part     int64 // relative to 2^31
		end      int64
	}{
		{0, 1000, 0, 1000},
		{999, 1000, 0, 1000},
		{1000, 1000, 1, 2000},
		{-1, 1000, -1, 0},
		{-1000, 1000, -1, 0},
		{-1001, 1000, -2, -1000},
		{math.MaxInt64, 1, math.MaxUint32 - 1<<31, math.MaxInt64},
		{math.MinInt64, 1, -1 << 31, -(1 << 31) + 1},
		{math.MaxInt64, 86_400_000, 1<<31 - 1, math.MaxInt64}, // clamped
	} {
		t.Run(fmt.Sprint(tc.t, "/", tc.width), func(t *testing.T) {
			p := partitionOf(tc.t, tc.width)
			require.Equal(t, tc.part, int64(p)-1<<31)
			require.Equal(t, tc.end, partitionEnd(p, tc.width))
		})
	}
}

func TestBatchBuilderAddLabelsMatchesAdd(t *testing.T) {
	lsets := []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "a"),
		labels.FromStrings("__name__", "up", "job", "b", "zone", "a"),
	}
	samples := []Sample{{T: 1, V: 2}}
	viaAdd, viaBytes := NewBatchBuilder("t"), NewBatchBuilder("t")
	for _, ls := range lsets {
		require.NoError(t, viaAdd.Add(ls, samples))
		var pairs [][2][]byte
		ls.Range(func(l labels.Label) { pairs = append(pairs, [2][]byte{[]byte(l.Name), []byte(l.Value)}) })
		require.NoError(t, viaBytes.AddLabels(len(pairs), func(i int) ([]byte, []byte) { return pairs[i][0], pairs[i][1] }, samples))
	}
	require.Equal(t, AppendBatch(nil, viaAdd.Batch()), AppendBatch(nil, viaBytes.Batch()))

	bad := NewBatchBuilder("t")
	for _, pairs := range [][][2]string{
		nil,
		{{"b", "1"}, {"a", "1"}},
		{{"a", "1"}, {"a", "2"}},
		{{"a", ""}},
		{{"", "x"}},
	} {
		err := bad.AddLabels(len(pairs), func(i int) ([]byte, []byte) { return []byte(pairs[i][0]), []byte(pairs[i][1]) }, samples)
		require.ErrorIs(t, err, ErrInvalidLabels, "%v", pairs)
	}
}
