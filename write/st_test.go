package write

import (
	"encoding/hex"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// withSTs gives every series of b start timestamps: a counter's
// (constant), an OTel delta's (the previous sample's time), none (0), and
// negative and far values.
func withSTs(b *Batch) *Batch {
	for i := range b.Series {
		s := &b.Series[i]
		n := len(s.Samples) + len(s.Histograms)
		if i%3 == 2 {
			continue // a series without any, beside those with
		}
		sts := make([]int64, n)
		for j := range sts {
			switch {
			case i%3 == 0:
				sts[j] = 1_700_000_000_000
			case j == 0:
				sts[j] = math.MinInt64 + 1
			case j == 1:
				sts[j] = 0 // unknown
			default:
				sts[j] = int64(j-1) * 15_000
			}
		}
		s.SetStartTimestamps(sts)
	}
	return b
}

// TestBatchSTGolden freezes the version 8 envelope around a version 4
// and a version 5 batch, and inside a version 6 envelope.
func TestBatchSTGolden(t *testing.T) {
	b4 := withSTs(goldenLimitsBatch(t))
	b5 := withSTs(goldenHistogramBatch(t))
	b6 := withSTs(goldenHistogramBatch(t))
	b6.OutOfOrderWindowMs = 60_000
	var text []byte
	cases := []struct {
		name  string
		b     *Batch
		first byte
	}{{"v8 of v4", b4, VersionST}, {"v8 of v5", b5, VersionST}, {"v6 of v8 of v5", b6, VersionWindow}}
	for _, tc := range cases {
		require.True(t, tc.b.HasStartTimestamps(), tc.name)
		enc := Append(nil, tc.b)
		require.Equal(t, tc.first, enc[0], tc.name)
		require.Len(t, enc, windowSize(tc.b.OutOfOrderWindowMs)+stsSize(tc.b)+encodedSize(tc.b, tc.b.hasHistograms(), false), tc.name)
		text = append(text, "# "+tc.name+"\n"+hex.Dump(enc)...)
		got, err := Decode(enc)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.b.OutOfOrderWindowMs, got.OutOfOrderWindowMs)
		requireSameBatch(t, tc.b, &got)
		var e Encoder
		got, err = Decode(e.Entry(tc.b))
		require.NoError(t, err, tc.name)
		requireSameBatch(t, tc.b, &got)
	}
	checkGolden(t, "batch_v8.golden", string(text))
	for i, sec := range splitSections(string(readFile(t, "batch_v8.golden"))) {
		got, err := Decode(parseDump(t, sec))
		require.NoError(t, err)
		requireSameBatch(t, cases[i].b, &got)
	}
}

// TestNoSTsNoEnvelope: a batch without start timestamps (nil, or empty
// slices) is written byte for byte as before, so replicas of the previous
// release decode it.
func TestNoSTsNoEnvelope(t *testing.T) {
	b := goldenHistogramBatch(t)
	plain := Append(nil, b)
	require.Equal(t, VersionHistograms, plain[0])
	require.Equal(t, hex.Dump(plain), hex.Dump(readGolden(t, "batch_v5.golden")))
	b.Series[0].Meta = &SeriesMeta{StartTimestamps: []int64{}}
	require.Equal(t, plain, Append(nil, b))
	got, err := Decode(plain)
	require.NoError(t, err)
	for _, s := range got.Series {
		require.Nil(t, s.StartTimestamps())
	}
}

// TestSTDecoderReuse: a Decoder that decoded a batch with start
// timestamps gives none to the series of the next batch without.
func TestSTDecoderReuse(t *testing.T) {
	var d Decoder
	b, err := d.Decode(Append(nil, withSTs(goldenLimitsBatch(t))))
	require.NoError(t, err)
	require.NotNil(t, b.Series[0].StartTimestamps())
	b, err = d.Decode(Append(nil, goldenLimitsBatch(t)))
	require.NoError(t, err)
	for _, s := range b.Series {
		require.Nil(t, s.StartTimestamps())
	}
}

// TestSTCorrupt: truncations and counts that do not match the batch are
// refused with a CorruptError, never a panic.
func TestSTCorrupt(t *testing.T) {
	enc := Append(nil, withSTs(goldenHistogramBatch(t)))
	for n := range len(enc) {
		_, err := Decode(enc[:n])
		require.Error(t, err, "truncated to %d bytes", n)
		require.True(t, errors.Is(err, ErrCorrupt), "truncated to %d: %v", n, err)
	}
	b := withSTs(goldenLimitsBatch(t))
	b.Series[0].Meta.StartTimestamps = b.Series[0].Meta.StartTimestamps[1:] // one short
	_, err := Decode(Append(nil, b))
	require.ErrorContains(t, err, "start timestamps for")
	require.True(t, errors.Is(err, ErrCorrupt))
	// An envelope around an envelope, or around a version 2 batch.
	for _, inner := range []byte{VersionST, VersionWindow, VersionNoLimits, VersionS2} {
		_, err := Decode([]byte{VersionST, 0, inner, 0})
		require.ErrorContains(t, err, "batch after start timestamps")
	}
}
