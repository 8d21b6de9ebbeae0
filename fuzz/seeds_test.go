package fuzz

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/tsdata"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite the seed-* files in testdata/fuzz/ from the shared data")

// seedPrefix starts the name of every file TestWriteSeeds writes; it
// deletes only those, so crashers (named by hash by the go tool) stay.
const seedPrefix = "seed-"

// Windows cut from real series for seeds: Prometheus's usual 120 samples per
// chunk, and the 1024 a sealed chunk may reach.
const (
	smallWindow = 120
	largeWindow = 1024
)

// TestWriteSeeds rewrites the seed corpora from the shared data when run
// with -write-seeds (see doc.go); otherwise it is skipped. Output is
// deterministic: the same data gives the same files.
func TestWriteSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to rewrite testdata/fuzz/*/" + seedPrefix + "*")
	}
	dir := tsdata.RequireSharedDir(t)
	files, err := tsdata.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no data files in %s", dir)
	}
	corpora := map[string]map[string][]byte{ // target -> file name -> input
		"FuzzChunkDecode":     {},
		"FuzzChunkRoundTrip":  {},
		"FuzzXORvsPrometheus": {},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for fi, path := range files {
		name := strings.ReplaceAll(tsdata.Name(dir, path), "/", "_")
		small, large, err := pickWindows(path)
		if err != nil {
			t.Fatal(err)
		}
		if small == nil {
			t.Logf("%s: no series of %d samples; skipped", name, smallWindow)
			continue
		}
		wins := []window{*small}
		if large != nil {
			wins = append(wins, *large)
		}
		for _, w := range wins {
			for _, enc := range chunkenc.Encodings {
				chunk := mustEncode(t, enc, w.ts, w.vs)
				corpora["FuzzChunkDecode"][fmt.Sprintf("%s%s-%s-%d", seedPrefix, name, enc, len(w.ts))] = chunk
			}
		}
		// Damaged chunks: one truncated, one with a flipped bit, of the
		// small window, alternating encodings between files.
		enc := chunkenc.Encodings[fi%len(chunkenc.Encodings)]
		chunk := mustEncode(t, enc, small.ts, small.vs)
		cut := 1 + rng.IntN(len(chunk)-1)
		corpora["FuzzChunkDecode"][fmt.Sprintf("%s%s-%s-%d-truncated-%d", seedPrefix, name, enc, smallWindow, cut)] = chunk[:cut]
		flipped := append([]byte(nil), chunk...)
		bit := 8 + rng.IntN(8*(len(chunk)-1)) // keep the encoding byte
		flipped[bit/8] ^= 1 << (bit % 8)
		corpora["FuzzChunkDecode"][fmt.Sprintf("%s%s-%s-%d-bitflip-%d", seedPrefix, name, enc, smallWindow, bit)] = flipped

		// Round-trip targets: the windows as deriveSamples inputs. The large
		// window only for every third file, to keep the corpus small.
		corpora["FuzzChunkRoundTrip"][fmt.Sprintf("%s%s-%d", seedPrefix, name, smallWindow)] = appendSamples(nil, small.ts, small.vs)
		corpora["FuzzXORvsPrometheus"][fmt.Sprintf("%s%s-%d", seedPrefix, name, smallWindow)] = appendSamples(nil, small.ts, small.vs)
		if large != nil && fi%3 == 0 {
			corpora["FuzzChunkRoundTrip"][fmt.Sprintf("%s%s-%d", seedPrefix, name, len(large.ts))] = appendSamples(nil, large.ts, large.vs)
		}
	}
	for target, files := range corpora {
		if err := writeCorpus(filepath.Join("testdata", "fuzz", target), files); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d seeds", target, len(files))
	}
}

type window struct {
	ts []int64
	vs []float64
}

// pickWindows returns a smallWindow-sample window of one series of the file
// and a window of up to largeWindow samples (at least 2*smallWindow) of
// another (nil if there is none): 15 s data holds at most 480 per series. The
// series are the ones a third and two thirds of the way through the file
// among those long enough; windows start a quarter of the way into the
// series, past start-up effects.
func pickWindows(path string) (small, large *window, err error) {
	var smalls, larges []window
	err = tsdata.ReadFile(path, func(s *tsdata.Series) error {
		if w, ok := cut(s, smallWindow); ok {
			smalls = append(smalls, w)
		}
		if w, ok := cut(s, min(largeWindow, len(s.T))); ok && len(w.ts) >= 2*smallWindow {
			larges = append(larges, w)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(smalls) > 0 {
		small = &smalls[len(smalls)/3]
	}
	if len(larges) > 0 {
		large = &larges[2*len(larges)/3]
	}
	return small, large, nil
}

func cut(s *tsdata.Series, n int) (window, bool) {
	if len(s.T) < n {
		return window{}, false
	}
	start := min(len(s.T)/4, len(s.T)-n)
	return window{ts: s.T[start : start+n], vs: s.V[start : start+n]}, true
}

// writeCorpus replaces the seed-* files of dir with files, in the go tool's
// corpus file format.
func writeCorpus(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, seedPrefix+"*"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), corpusFile(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// corpusFile returns data as a corpus file of a fuzz target taking one
// []byte, as the go tool writes it (testing/internal/fuzz marshalCorpusFile).
func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}
