package write

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
)

// buildBatch builds a batch of tenant from label set, samples pairs.
func buildBatch(t testing.TB, tenant string, series ...any) *Batch {
	t.Helper()
	bb := NewBuilder(tenant)
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
			enc := Append([]byte("prefix"), tc.b)
			require.Equal(t, "prefix", string(enc[:6]))
			got, err := Decode(enc[6:])
			require.NoError(t, err)
			require.Equal(t, tc.b.Tenant, got.Tenant)
			require.Len(t, got.Series, len(tc.b.Series))
			require.Equal(t, tc.b.NumSamples(), got.NumSamples())
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
			require.Equal(t, enc[6:], Append(nil, &got), "re-encoding is identical")
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := Append(nil, buildBatch(t, "t", labels.FromStrings("a", "b", "c", "d"), []Sample{{1, 1}}))
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
		{"series count exceeds input", []byte{2, 1, 't', 2, 4, 'a', 0xff}, 4},
		{"huge series count", []byte{2, 1, 't', 0xff, 0xff, 0xff, 0xff, 0x0f}, 8},
		{"label set exceeds input", []byte{2, 1, 't', 1, 9, 'a', 0xff, 'b', 0xff, 0}, 5},
		{"no labels", []byte{2, 1, 't', 1, 0, 0, 0, 0, 0, 0}, 5},
		{"truncated value", valid[:len(valid)-1], len(valid) - 9},
		{"trailing byte", append(append([]byte(nil), valid...), 0), len(valid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			require.ErrorIs(t, err, ErrCorrupt)
			var ce *CorruptError
			require.True(t, errors.As(err, &ce))
			require.Equal(t, tc.offset, ce.Offset, "offset; err %v", err)
		})
	}
}

// TestDecodeTruncations decodes every prefix and random corruptions of a
// valid batch: errors, never panics.
func TestDecodeTruncations(t *testing.T) {
	b := buildBatch(t, "tenant",
		labels.FromStrings("__name__", "up", "job", "a"), []Sample{{1000, 1}, {2000, 0}},
		labels.FromStrings("__name__", "x", "z", "y"), []Sample{{1500, 2}},
	)
	enc := Append(nil, b)
	for i := range enc {
		_, err := Decode(enc[:i])
		require.ErrorIs(t, err, ErrCorrupt, "prefix of %d bytes", i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		c := append([]byte(nil), enc...)
		c[rng.IntN(len(c))] = byte(rng.Uint32())
		_, _ = Decode(c) // must not panic
	}
}

func TestBuilderRejectsInvalidLabels(t *testing.T) {
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
			bb := NewBuilder("t")
			err := bb.Add(tc.lset, nil)
			require.ErrorIs(t, err, ErrInvalidLabels)
			require.Empty(t, bb.Batch().Series, "nothing added")
		})
	}
}

func TestBuilderAddEncodedMatchesAdd(t *testing.T) {
	lsets := []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "a"),
		labels.FromStrings("__name__", "up", "job", "b", "zone", "a"),
	}
	samples := []Sample{{T: 1, V: 2}}
	viaAdd, viaBytes := NewBuilder("t"), NewBuilder("t")
	for _, ls := range lsets {
		require.NoError(t, viaAdd.Add(ls, samples))
		var enc []byte
		ls.Range(func(l labels.Label) { enc = AppendLabel(enc, l.Name, l.Value) })
		viaBytes.AddEncoded(enc, samples)
	}
	require.Equal(t, Append(nil, viaAdd.Batch()), Append(nil, viaBytes.Batch()))
}

func TestBuilderReset(t *testing.T) {
	bb := NewBuilder("a")
	require.NoError(t, bb.Add(labels.FromStrings("x", "1"), []Sample{{1, 1}}))
	first := Append(nil, bb.Batch())
	bb.Reset("b")
	require.Empty(t, bb.Batch().Series)
	require.NoError(t, bb.Add(labels.FromStrings("y", "2"), []Sample{{2, 2}}))
	got := bb.Batch()
	require.Equal(t, "b", got.Tenant)
	require.Len(t, got.Series, 1)
	require.Equal(t, "y\xff2\xff", string(got.Series[0].Labels))
	bb.Reset("a")
	require.NoError(t, bb.Add(labels.FromStrings("x", "1"), []Sample{{1, 1}}))
	require.Equal(t, first, Append(nil, bb.Batch()), "a reset builder builds the same batch")
}

func TestEncodedSizeIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 200 {
		bb := NewBuilder(fmt.Sprint("tenant-", i))
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
		enc := Append(nil, b)
		require.Equal(t, len(enc), encodedSize(b, false, false))
		require.LessOrEqual(t, cap(enc), len(enc)*5/4+64, "grown once to the size (plus the allocator's size class)")
	}
}

func TestCompressed(t *testing.T) {
	b := buildBatch(t, "tenant-2",
		labels.FromStrings("__name__", "up", "job", "a"), []Sample{{1, 0}, {2, math.Inf(1)}},
		labels.FromStrings("__name__", "up", "job", "b"), []Sample{{-5, math.Float64frombits(value.StaleNaN)}},
	)
	enc := Append(nil, b)
	c := Compress([]byte("x"), enc)
	require.Equal(t, "x", string(c[:1]))
	require.Equal(t, VersionS2, c[1])
	got, err := Decode(c[1:])
	require.NoError(t, err)
	require.Equal(t, enc, Append(nil, &got), "decodes to the same batch")

	// A Decoder reuses its buffers across both versions.
	var d Decoder
	for _, in := range [][]byte{c[1:], enc, c[1:]} {
		got, err := d.Decode(in)
		require.NoError(t, err)
		require.Equal(t, enc, Append(nil, got))
	}

	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"bad s2", []byte{VersionS2, 0x05, 0xff, 0xff}},
		{"empty s2", []byte{VersionS2}},
		{"huge decoded length", append([]byte{VersionS2}, binary.AppendUvarint(nil, 1<<40)...)},
		{"compressed v3", Compress(nil, Compress(nil, enc))},
		{"truncated", c[1 : len(c)-3]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

// TestDecoderReuse: a Decoder's batch is valid until its next Decode, and
// a smaller batch after a larger one decodes exactly (no stale series or
// samples).
func TestDecoderReuse(t *testing.T) {
	big := buildBatch(t, "t",
		labels.FromStrings("a", "1"), []Sample{{1, 1}, {2, 2}, {3, 3}},
		labels.FromStrings("a", "2"), []Sample{{1, 1}},
		labels.FromStrings("a", "3"), []Sample{{1, 1}},
	)
	small := buildBatch(t, "u", labels.FromStrings("b", "1"), []Sample{{9, 9}})
	empty := buildBatch(t, "v")
	var d Decoder
	for _, b := range []*Batch{big, small, empty, big} {
		want := Append(nil, b)
		got, err := d.Decode(Compress(nil, want))
		require.NoError(t, err)
		require.Equal(t, want, Append(nil, got))
		require.Equal(t, b.NumSamples(), got.NumSamples())
	}
}

func TestEncoder(t *testing.T) {
	b := buildBatch(t, "t", labels.FromStrings("__name__", "up", "job", "a"), []Sample{{1, 1}, {2, 2}},
		labels.FromStrings("__name__", "up", "job", "b"), []Sample{{1, 3}})
	var e Encoder
	want := append([]byte{VersionS2Prefix}, s2.Encode(nil, appendBatch(nil, b, true))...)
	e1 := e.Entry(b)
	e2 := e.Entry(b)
	require.Equal(t, want, e1)
	require.Equal(t, want, e2)
	e1[0] = 0
	require.Equal(t, want, e2, "entries do not share memory")
	got, err := Decode(e2)
	require.NoError(t, err)
	require.Equal(t, Append(nil, b), Append(nil, &got))

	// Plain: the encoding before version 9, byte for byte what the
	// releases before it wrote (Append, then S2), which they decode.
	plain := Encoder{Plain: true}
	e3 := plain.Entry(b)
	require.Equal(t, append([]byte{VersionS2}, s2.Encode(nil, Append(nil, b))...), e3)
	got, err = Decode(e3)
	require.NoError(t, err)
	require.Equal(t, Append(nil, b), Append(nil, &got))
}

// TestPrefixedLabels: the label sets of a VersionS2Prefix batch come back
// byte for byte whatever they share (nothing, a part, all, a whole label
// set that the next one extends), across Decoder reuse and with the
// other sections (histograms, exemplars, windows, start timestamps).
func TestPrefixedLabels(t *testing.T) {
	lsets := []labels.Labels{
		labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "idle"),
		labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "user"),
		labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "user"), // all shared
		labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "user", "x", "y"),
		labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0"), // a prefix of the one before
		labels.FromStrings("a", "\x00→"),                                     // nothing shared
		labels.FromStrings("a", "\x00→", "b", "1"),
	}
	var series []any
	for i, l := range lsets {
		series = append(series, l, []Sample{{int64(1000 + i), float64(i)}})
	}
	plain := buildBatch(t, "tenant", series...)
	window := buildBatch(t, "tenant", series...)
	window.OutOfOrderWindowMs = 60_000
	window.Series[1].SetStartTimestamps([]int64{500})
	var d Decoder
	var e Encoder
	for _, b := range []*Batch{plain, goldenHistogramBatch(t), goldenExemplarBatch(t), window, buildBatch(t, "t"), plain} {
		entry := e.Entry(b)
		require.Equal(t, VersionS2Prefix, entry[0])
		got, err := d.Decode(entry)
		require.NoError(t, err)
		require.Equal(t, Append(nil, b), Append(nil, got), "decodes to the same batch")
		for i := range b.Series {
			require.Equal(t, string(b.Series[i].Labels), string(got.Series[i].Labels), "series %d", i)
		}
	}
	content := appendBatch(nil, plain, true)
	require.Less(t, len(content), len(Append(nil, plain)), "prefix coding makes the batch smaller")
}

// TestPrefixedLabelsBound: a batch whose label sets would decode to more
// than maxLabelExpansion times its content is refused, and the Encoder
// writes such a batch as VersionS2, which has no such bound.
func TestPrefixedLabelsBound(t *testing.T) {
	long := labels.FromStrings("__name__", strings.Repeat("n", 2000))
	var series []any
	for i := range 1000 {
		series = append(series, long, []Sample{{int64(i), 0}})
	}
	b := buildBatch(t, "t", series...)
	content := appendBatch(nil, b, true)
	require.Greater(t, labelBytes(b), maxLabelExpansion*len(content), "the test batch is past the bound")
	_, err := Decode(append([]byte{VersionS2Prefix}, s2.Encode(nil, content)...))
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "label sets of")
	var e Encoder
	entry := e.Entry(b)
	require.Equal(t, VersionS2, entry[0])
	got, err := Decode(entry)
	require.NoError(t, err)
	require.Equal(t, Append(nil, b), Append(nil, &got))
}

// TestPrefixedLabelsCorrupt: a shared length past the previous label set,
// an empty label set, and every truncation and random corruption of a
// prefixed batch are errors with offsets, never panics.
func TestPrefixedLabelsCorrupt(t *testing.T) {
	s2of := func(content []byte) []byte { return append([]byte{VersionS2Prefix}, s2.Encode(nil, content)...) }
	for _, tc := range []struct {
		name    string
		content []byte
		offset  int
		reason  string
	}{
		{"first shares", []byte{4, 1, 't', 0, 0, 1, 1, 1, 'a', 0}, 6, "shares 1 bytes of the previous label set of 0"},
		{"shares past the previous", []byte{4, 1, 't', 0, 0, 2, 0, 2, 'a', 0xff, 0, 3, 0, 0}, 11, "shares 3 bytes"},
		{"empty label set", []byte{4, 1, 't', 0, 0, 1, 0, 0, 0}, 8, "has no labels"},
		{"suffix past the input", []byte{4, 1, 't', 0, 0, 1, 0, 9, 'a'}, 8, "exceeds remaining"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(s2of(tc.content))
			var ce *CorruptError
			require.True(t, errors.As(err, &ce), "err %v", err)
			require.Equal(t, tc.offset, ce.Offset, "offset; err %v", err)
			require.ErrorContains(t, err, tc.reason)
		})
	}
	b := buildBatch(t, "tenant",
		labels.FromStrings("__name__", "up", "job", "a"), []Sample{{1000, 1}, {2000, 0}},
		labels.FromStrings("__name__", "up", "job", "b"), []Sample{{1500, 2}},
	)
	content := appendBatch(nil, b, true)
	for i := range content {
		_, err := Decode(s2of(content[:i]))
		require.ErrorIs(t, err, ErrCorrupt, "prefix of %d bytes", i)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		c := append([]byte(nil), content...)
		c[rng.IntN(len(c))] = byte(rng.Uint32())
		_, _ = Decode(s2of(c)) // must not panic
	}
}

func TestSharedPrefix(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 0}, {"abc", "abd", 2}, {"abc", "abc", 3}, {"abc", "abcdef", 3},
		{"0123456789abcdef", "0123456789abcdef", 16}, {"0123456789abcdefX", "0123456789abcdefY", 16},
		{"01234567x", "01234567y", 8}, {"0123456x", "0123456y", 7}, {"x1234567", "y1234567", 0},
	} {
		require.Equal(t, tc.want, sharedPrefix([]byte(tc.a), []byte(tc.b)), "%q %q", tc.a, tc.b)
		require.Equal(t, tc.want, sharedPrefix([]byte(tc.b), []byte(tc.a)), "%q %q", tc.b, tc.a)
	}
}
