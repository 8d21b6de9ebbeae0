package fuzz

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/raftgroup/ring"
)

var writeGoldenSeeds = flag.Bool("write-golden-seeds", false,
	"rewrite the golden-* files in testdata/fuzz/ from the golden files of chunkenc and raftgroup/cluster")

// goldenPrefix starts the name of every file TestWriteGoldenSeeds writes;
// it deletes only those.
const goldenPrefix = "golden-"

// maxGoldenSeed skips golden chunks larger than this (the 16 KB XOR chunk
// of 65535 samples): the fuzzer mutates small inputs faster, and the
// shared-data seeds already hold chunks of 1024 samples.
const maxGoldenSeed = 4 << 10

// TestWriteGoldenSeeds rewrites the golden-* seeds when run with
// -write-golden-seeds; otherwise it is skipped. The golden files are the
// format-freeze inputs of chunkenc (testdata/{xor,pack}.golden) and of the
// metadata checkpoint (raftgroup/cluster/testdata/meta.golden); together
// they take every branch of those formats, so they are good inputs to
// mutate. It writes:
//
//   - FuzzChunkDecode: every golden chunk, and every pack chunk cut by its
//     last byte (the decoder's truncated-stream paths at each branch);
//   - FuzzChunkRoundTrip: the golden cases' samples (appendSamples);
//   - FuzzMetadataDecode: the golden checkpoint, whole and cut by a byte;
//   - FuzzRingDecode: the ring state inside it.
func TestWriteGoldenSeeds(t *testing.T) {
	if !*writeGoldenSeeds {
		t.Skip("run with -write-golden-seeds to rewrite testdata/fuzz/*/" + goldenPrefix + "*")
	}
	corpora := map[string]map[string][]byte{
		"FuzzChunkDecode":    {},
		"FuzzChunkRoundTrip": {},
		"FuzzMetadataDecode": {},
		"FuzzRingDecode":     {},
	}
	for _, enc := range chunkenc.Encodings {
		dumps, err := readGoldenDumps(filepath.Join("..", "chunkenc", "testdata", enc.String()+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dumps {
			if len(d.b) > maxGoldenSeed {
				continue
			}
			corpora["FuzzChunkDecode"][fmt.Sprintf("%s%s-%s", goldenPrefix, enc, d.name)] = d.b
			if enc != chunkenc.EncPack {
				continue
			}
			corpora["FuzzChunkDecode"][fmt.Sprintf("%s%s-%s-truncated", goldenPrefix, enc, d.name)] = d.b[:len(d.b)-1]
			ts, vs, err := chunkenc.Decode(nil, nil, d.b)
			if err != nil {
				t.Fatalf("golden %s chunk %s: %v", enc, d.name, err)
			}
			if in := appendSamples(nil, ts, vs); len(in) <= maxGoldenSeed {
				corpora["FuzzChunkRoundTrip"][goldenPrefix+d.name] = in
			}
		}
	}
	dumps, err := readGoldenDumps(filepath.Join("..", "raftgroup", "cluster", "testdata", "meta.golden"))
	if err != nil {
		t.Fatal(err)
	}
	meta := dumps[0].b
	v, err := cluster.DecodeMetadata(meta)
	if err != nil {
		t.Fatalf("golden metadata: %v", err)
	}
	corpora["FuzzMetadataDecode"][goldenPrefix+"meta"] = meta
	corpora["FuzzMetadataDecode"][goldenPrefix+"meta-truncated"] = meta[:len(meta)-1]
	corpora["FuzzRingDecode"][goldenPrefix+"meta-state"] = ring.AppendState(nil, v.State)

	for target, files := range corpora {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		old, err := filepath.Glob(filepath.Join(dir, goldenPrefix+"*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range old {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), corpusFile(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: %d golden seeds", target, len(files))
	}
}

// goldenDump is one hexdump of a golden file.
type goldenDump struct {
	name string
	b    []byte
}

// readGoldenDumps reads the hexdumps of a golden file: chunkenc's, one
// per "== <case>: ..." section in `hexdump -C` form ("*" for repeated
// lines, a last line with the length), or cluster's, a single hex.Dump.
// Other lines are skipped.
func readGoldenDumps(path string) ([]goldenDump, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var dumps []goldenDump
	var cur *goldenDump
	var prev []byte
	starred := false
	for i, line := range strings.Split(string(text), "\n") {
		if h, ok := strings.CutPrefix(line, "== "); ok {
			name, _, _ := strings.Cut(h, ":")
			dumps = append(dumps, goldenDump{name: name})
			cur, prev, starred = &dumps[len(dumps)-1], nil, false
			continue
		}
		if line == "*" {
			starred = true
			continue
		}
		if len(line) < 8 || (len(line) > 8 && !strings.HasPrefix(line[8:], "  ")) {
			continue
		}
		o, err := hex.DecodeString(line[:8])
		if err != nil {
			continue // not a dump line ("count: 1" is 8 bytes too)
		}
		off := int(o[0])<<24 | int(o[1])<<16 | int(o[2])<<8 | int(o[3])
		if cur == nil {
			dumps = append(dumps, goldenDump{name: filepath.Base(path)})
			cur = &dumps[len(dumps)-1]
		}
		for starred && len(cur.b) < off {
			cur.b = append(cur.b, prev...)
		}
		starred = false
		if len(cur.b) != off {
			return nil, fmt.Errorf("%s:%d: offset %08x after %d bytes", path, i+1, off, len(cur.b))
		}
		if len(line) == 8 {
			continue // the length line of hexdump -C
		}
		hexPart, _, _ := strings.Cut(line[8:], "|")
		b, err := hex.DecodeString(strings.Join(strings.Fields(hexPart), ""))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		cur.b, prev = append(cur.b, b...), b
	}
	if len(dumps) == 0 {
		return nil, fmt.Errorf("%s: no hexdump", path)
	}
	return dumps, nil
}
