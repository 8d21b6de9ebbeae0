package engine

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
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
			require.Len(t, got.Series, len(tc.b.Series))
			for i := range got.Series {
				want, err := tc.b.Labels(i)
				require.NoError(t, err)
				gotLabels, err := got.Labels(i)
				require.NoError(t, err)
				require.Equal(t, want, gotLabels)
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
	const want = "02" + "0174" + // version, tenant "t"
		"02" + // two series
		"12" + "5f5f6e616d655f5fff" + "7570ff" + "6a6f62ff" + "61ff" + // __name__=up job=a
		"02" + "d00f" + "000000000000f03f" + "d00f" + "0000000000000000" + // 2 samples
		"0c" + "5f5f6e616d655f5fff" + "7570ff" +
		"01" + "b817" + "0000000000000040"
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
		{"bad version", []byte{1}, 0},
		{"no tenant length", []byte{2}, 1},
		{"empty tenant", []byte{2, 0}, 2},
		{"tenant too long", []byte{2, 5, 'a'}, 2},
		{"series count exceeds input", []byte{2, 1, 't', 1, 4, 'a', 0xff, 'b', 0xff}, 4},
		{"huge series count", []byte{2, 1, 't', 0xff, 0xff, 0xff, 0xff, 0x0f}, 8},
		{"label set exceeds input", []byte{2, 1, 't', 1, 9, 'a', 0xff, 'b', 0xff, 0}, 5},
		{"no labels", []byte{2, 1, 't', 1, 0, 0, 0, 0, 0, 0}, 5},
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
		{"separator in value", labels.FromStrings("a", "b\xffc")},
		{"separator in name", labels.FromStrings("a\xff", "b")},
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

func TestBatchBuilderAddEncodedMatchesAdd(t *testing.T) {
	lsets := []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "a"),
		labels.FromStrings("__name__", "up", "job", "b", "zone", "a"),
	}
	samples := []Sample{{T: 1, V: 2}}
	viaAdd, viaBytes := NewBatchBuilder("t"), NewBatchBuilder("t")
	for _, ls := range lsets {
		require.NoError(t, viaAdd.Add(ls, samples))
		var enc []byte
		ls.Range(func(l labels.Label) { enc = AppendLabel(enc, l.Name, l.Value) })
		viaBytes.AddEncoded(enc, samples)
	}
	require.Equal(t, AppendBatch(nil, viaAdd.Batch()), AppendBatch(nil, viaBytes.Batch()))
}

func TestCheckLabels(t *testing.T) {
	for _, tc := range []struct {
		name string
		enc  string
		ok   bool
	}{
		{"one label", "a\xffb\xff", true},
		{"two labels", "a\xff1\xffb\xff2\xff", true},
		{"empty", "", false},
		{"empty value", "a\xff\xff", false},
		{"empty name", "\xffa\xff", false},
		{"unterminated name", "a", false},
		{"unterminated value", "a\xffb", false},
		{"unsorted names", "b\xff1\xffa\xff1\xff", false},
		{"duplicate names", "a\xff1\xffa\xff2\xff", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckLabels([]byte(tc.enc))
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrInvalidLabels)
			}
		})
	}
}

// TestApplyRefusesInvalidLabels: DecodeBatch leaves label sets to Apply,
// which refuses the samples of a series with invalid labels and applies
// the rest of the batch.
func TestApplyRefusesInvalidLabels(t *testing.T) {
	_, g := openTest(t, testOptions(vfs.NewMem()))
	b := buildBatch(t, "t", labels.FromStrings("a", "b"), []Sample{{1, 1}})
	b.Series = append(b.Series,
		BatchSeries{Labels: []byte("b\xff1\xffa\xff1\xff"), Samples: []Sample{{1, 1}, {2, 2}}},
		BatchSeries{Labels: []byte("c\xffd\xff"), Samples: []Sample{{1, 1}}})
	errs, err := g.Apply(1, AppendBatch(nil, b))
	require.NoError(t, err)
	require.Len(t, errs, 1)
	require.Equal(t, 1, errs[0].Series)
	require.Equal(t, 2, errs[0].Rejected)
	require.ErrorIs(t, errs[0].Err, ErrInvalidLabels)
	require.Len(t, selectAll(t, g, "t", math.MinInt64, math.MaxInt64), 2)
}

func TestBatchSizeIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 200 {
		bb := NewBatchBuilder(fmt.Sprint("tenant-", i))
		for j := range rng.IntN(20) {
			var smp []Sample
			for range rng.IntN(10) {
				var ts int64
				switch rng.IntN(3) {
				case 0:
					ts = rng.Int64()
				case 1:
					ts = -rng.Int64()
				default:
					ts = rng.Int64N(1 << uint(rng.IntN(62)))
				}
				smp = append(smp, Sample{ts, rng.Float64()})
			}
			require.NoError(t, bb.Add(labels.FromStrings("__name__", fmt.Sprint("m", j), "x", strings.Repeat("v", 1+rng.IntN(300))), smp))
		}
		b := bb.Batch()
		enc := AppendBatch(nil, b)
		require.Equal(t, len(enc), batchSize(b))
		require.LessOrEqual(t, cap(enc), len(enc)*5/4+64, "grown once to the size (plus the allocator's size class)")
	}
}

func TestCompressedBatch(t *testing.T) {
	b := buildBatch(t, "tenant-2",
		labels.FromStrings("__name__", "up", "job", "a"), []Sample{{1, 0}, {2, math.Inf(1)}},
		labels.FromStrings("__name__", "up", "job", "b"), []Sample{{-5, math.Float64frombits(value.StaleNaN)}},
	)
	enc := AppendBatch(nil, b)
	c := CompressBatch([]byte("x"), enc)
	require.Equal(t, "x", string(c[:1]))
	require.Equal(t, BatchVersionS2, c[1])
	got, err := DecodeBatch(c[1:])
	require.NoError(t, err)
	require.Equal(t, enc, AppendBatch(nil, &got), "decodes to the same batch")

	// The group's decoder reuses its buffer across both versions.
	var d batchDecoder
	for _, in := range [][]byte{c[1:], enc, c[1:]} {
		got, err := d.decode(in)
		require.NoError(t, err)
		require.Equal(t, enc, AppendBatch(nil, got))
	}

	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"bad s2", []byte{BatchVersionS2, 0x05, 0xff, 0xff}},
		{"empty s2", []byte{BatchVersionS2}},
		{"huge decoded length", append([]byte{BatchVersionS2}, binary.AppendUvarint(nil, 1<<40)...)},
		{"compressed v3", CompressBatch(nil, CompressBatch(nil, enc))},
		{"truncated", c[1 : len(c)-3]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBatch(tc.in)
			require.ErrorIs(t, err, ErrCorruptBatch)
		})
	}
}
