package chunkenc

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/myelindb/myelin/internal/tsdata"
	"github.com/stretchr/testify/require"
)

// TestSharedData encodes every series of the shared data set with every
// encoding, cut into chunks of 120 and 1024 samples, checks the bit-exact
// round trip and guards the compression ratio against regressions.
// MYELIN_CHUNK_SIZES overrides the chunk sizes (comma-separated).
func TestSharedData(t *testing.T) {
	dir := tsdata.RequireSharedDir(t)
	files, err := tsdata.Files(dir)
	require.NoError(t, err)
	sizes := []int{120, 1024}
	if s := os.Getenv("MYELIN_CHUNK_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			require.NoError(t, err)
			sizes = append(sizes, n)
		}
	}
	type key struct {
		enc  Encoding
		size int
	}
	total := map[key]int{}
	samples := 0
	checkAll := os.Getenv("MYELIN_NOCHECK") == ""
	var e Encoder
	var it Iterator
	var buf []byte
	for _, path := range files {
		perFile := map[key]int{}
		n := 0
		err := tsdata.ReadFile(path, func(s *tsdata.Series) error {
			n += len(s.T)
			for _, size := range sizes {
				for off := 0; off < len(s.T); off += size {
					end := min(off+size, len(s.T))
					ts, vs := s.T[off:end], s.V[off:end]
					for _, enc := range Encodings {
						buf, err = e.Encode(buf[:0], enc, ts, vs)
						if err != nil {
							return fmt.Errorf("%s: %w", s, err)
						}
						perFile[key{enc, size}] += len(buf)
						if checkAll {
							if err := roundTrips(&it, buf, ts, vs); err != nil {
								return fmt.Errorf("%s: %s chunk at %d: %w", s, enc, off, err)
							}
						}
					}
				}
			}
			return nil
		})
		require.NoError(t, err)
		samples += n
		line := fmt.Sprintf("%-36s %9d", tsdata.Name(dir, path), n)
		for _, size := range sizes {
			x := perFile[key{EncXOR, size}]
			for _, enc := range Encodings {
				k := key{enc, size}
				total[k] += perFile[k]
				line += fmt.Sprintf("  %s/%d %.3f (%.3f)", enc, size, float64(perFile[k])/float64(n), float64(perFile[k])/float64(x))
			}
		}
		t.Log(line)
		t.Logf("  pack t bits/sample %.3f v bits/sample %.3f", float64(e.stats.tBits)/float64(n*len(sizes)), float64(e.stats.vBits)/float64(n*len(sizes)))
		e.stats.tBits, e.stats.vBits = 0, 0
	}
	line := fmt.Sprintf("%-36s %9d", "TOTAL", samples)
	for _, size := range sizes {
		for _, enc := range Encodings {
			k := key{enc, size}
			line += fmt.Sprintf("  %s/%d %.3f (%.3f)", enc, size, float64(total[k])/float64(samples), float64(total[k])/float64(total[key{EncXOR, 120}]))
		}
	}
	t.Log(line)
	if os.Getenv("MYELIN_CHUNK_SIZES") == "" {
		// Regression guards, against our XOR (Prometheus's bytes plus our
		// encoding byte) at Prometheus's 120 samples per chunk.
		base := float64(total[key{EncXOR, 120}])
		require.Less(t, float64(total[key{EncPack, 1024}])/base, 0.40, "pack at 1024 samples per chunk")
		require.Less(t, float64(total[key{EncPack, 120}])/base, 0.50, "pack at 120 samples per chunk")
	}
}

// roundTrips decodes chunk with it and compares it to the samples, bit for
// bit.
func roundTrips(it *Iterator, chunk []byte, ts []int64, vs []float64) error {
	it.Reset(chunk)
	i := 0
	for ; it.Next(); i++ {
		t, v := it.At()
		if i >= len(ts) {
			return fmt.Errorf("more than %d samples", len(ts))
		}
		if t != ts[i] || math.Float64bits(v) != math.Float64bits(vs[i]) {
			return fmt.Errorf("sample %d: got (%d, %x) want (%d, %x)", i, t, math.Float64bits(v), ts[i], math.Float64bits(vs[i]))
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	if i != len(ts) {
		return fmt.Errorf("got %d samples, want %d", i, len(ts))
	}
	return nil
}
