package histmeasure

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/internal/histdata"
)

// TestCodecs: on the data set every codec keeps every sample, ours
// round-trip bit for bit, and the head rule cuts between 10 and 2048+
// byte chunks as Prometheus's does.
func TestCodecs(t *testing.T) {
	raw, err := histdata.ReadFile("../../../chunkenc/testdata/histograms.hd.gz")
	require.NoError(t, err)
	series := Load(raw)[:12]
	require.NoError(t, CheckRoundTrip(series, 120, 1024))
	for _, c := range []Codec{Prom(CutHead), Prom(120), Ours(120), Ours(1024)} {
		r, err := EncodeAll(c, series)
		require.NoError(t, err, c.Name())
		d, err := c.Decode()
		require.NoError(t, err, c.Name())
		require.Equal(t, r.Samples, d.Samples, c.Name())
		require.Positive(t, r.Bytes)
	}
	p := Prom(CutHead).(*prom)
	_, err = EncodeAll(p, series[:1])
	require.NoError(t, err)
	for i, ch := range p.chunks[:len(p.chunks)-1] {
		require.LessOrEqual(t, len(ch.Bytes()), 4096, "chunk %d", i)
	}
}
