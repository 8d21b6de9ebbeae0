package write

import (
	"encoding/hex"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBatchWindowGolden freezes the version 6 envelope, around a version
// 4 and a version 5 batch, and checks that the window survives the
// compressed form a node proposes.
func TestBatchWindowGolden(t *testing.T) {
	b4 := goldenLimitsBatch(t)
	b4.OutOfOrderWindowMs = (10 * time.Minute).Milliseconds()
	b5 := goldenHistogramBatch(t)
	b5.OutOfOrderWindowMs = 1
	var text []byte
	for _, tc := range []struct {
		name  string
		b     *Batch
		inner byte
	}{{"v6 of v4", b4, Version}, {"v6 of v5", b5, VersionHistograms}} {
		enc := Append(nil, tc.b)
		require.Equal(t, VersionWindow, enc[0], tc.name)
		require.Equal(t, tc.inner, enc[windowSize(tc.b.OutOfOrderWindowMs)], tc.name)
		text = append(text, "# "+tc.name+"\n"+hex.Dump(enc)...)
		got, err := Decode(enc)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.b.OutOfOrderWindowMs, got.OutOfOrderWindowMs, tc.name)
		requireSameBatch(t, tc.b, &got)
		var e Encoder
		got, err = Decode(e.Entry(tc.b))
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.b.OutOfOrderWindowMs, got.OutOfOrderWindowMs, tc.name)
		requireSameBatch(t, tc.b, &got)
	}
	checkGolden(t, "batch_v6.golden", string(text))
	// What was written stays readable.
	for i, sec := range splitSections(string(readFile(t, "batch_v6.golden"))) {
		want := []*Batch{b4, b5}[i]
		got, err := Decode(parseDump(t, sec))
		require.NoError(t, err)
		require.Equal(t, want.OutOfOrderWindowMs, got.OutOfOrderWindowMs)
		requireSameBatch(t, want, &got)
	}
}

// splitSections returns the dumps of a golden file of "# name" sections.
func splitSections(text string) []string {
	var out []string
	for _, sec := range strings.Split(text, "# ")[1:] {
		_, dump, _ := strings.Cut(sec, "\n")
		out = append(out, dump)
	}
	return out
}

// TestNoWindowNoEnvelope: a batch without a window (or a negative one) is
// written as before, so a tenant without a window writes what the
// previous release decodes; a window past the maximum is clamped.
func TestNoWindowNoEnvelope(t *testing.T) {
	b := goldenLimitsBatch(t)
	plain := Append(nil, b)
	require.Equal(t, Version, plain[0])
	b.OutOfOrderWindowMs = -5
	require.Equal(t, plain, Append(nil, b))
	b.OutOfOrderWindowMs = math.MaxInt64
	got, err := Decode(Append(nil, b))
	require.NoError(t, err)
	require.Equal(t, int64(MaxOutOfOrderWindow), got.OutOfOrderWindowMs)
	require.Equal(t, 10*time.Minute, (&Batch{OutOfOrderWindowMs: 600_000}).OutOfOrderWindow())
}

// TestWindowEncodedSize: Append grows its buffer once, to the exact size.
func TestWindowEncodedSize(t *testing.T) {
	for _, ms := range []int64{1, 127, 128, 600_000, MaxOutOfOrderWindow} {
		b := goldenHistogramBatch(t)
		b.OutOfOrderWindowMs = ms
		enc := Append(nil, b)
		require.Equal(t, len(enc), windowSize(ms)+encodedSize(b, true, false), "window %d", ms)
	}
}

// TestWindowCorrupt: a bad envelope is a CorruptError at its offset.
func TestWindowCorrupt(t *testing.T) {
	inner := Append(nil, goldenLimitsBatch(t))
	for _, tc := range []struct {
		name string
		src  []byte
		off  int
	}{
		{"zero window", append([]byte{6, 0}, inner...), 1},
		{"window too large", append([]byte{6, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, inner...), 1},
		{"truncated window", []byte{6, 0x80}, 1},
		{"no batch", []byte{6, 5}, 2},
		{"envelope in an envelope", append([]byte{6, 5, 6, 5}, inner...), 2},
		{"version 2 inside", []byte{6, 5, 2, 1, 't', 0}, 2},
		{"compressed inside", append([]byte{6, 5}, Compress(nil, inner)...), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.src)
			require.ErrorIs(t, err, ErrCorrupt)
			var ce *CorruptError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.off, ce.Offset, "%v", err)
		})
	}
}

// TestWindowAroundExemplars: a version 7 batch (exemplars, metadata) in
// an out-of-order window envelope round-trips whole, compressed or not,
// and Append's size is exact.
func TestWindowAroundExemplars(t *testing.T) {
	b := goldenExemplarBatch(t)
	b.OutOfOrderWindowMs = 600_000
	enc := Append(nil, b)
	require.Equal(t, VersionWindow, enc[0])
	require.Equal(t, len(enc), windowSize(b.OutOfOrderWindowMs)+encodedSize(b, b.NumHistograms() > 0, true))
	for _, src := range [][]byte{enc, Compress(nil, enc)} {
		got, err := Decode(src)
		require.NoError(t, err)
		require.Equal(t, b.OutOfOrderWindowMs, got.OutOfOrderWindowMs)
		require.Equal(t, b.MetaLimits, got.MetaLimits)
		require.Equal(t, b.NumExemplars(), got.NumExemplars())
		require.Equal(t, enc, Append(nil, &got))
	}
}
