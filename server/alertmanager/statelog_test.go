package alertmanager

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata/")

// goldenLog is a fixed state log: its version byte and two records.
func goldenLog() []byte {
	b := []byte{StateLogVersion}
	b = AppendStateRecord(b, KindSilences, []byte("silence part"))
	return AppendStateRecord(b, KindNflog, []byte{})
}

// TestStateLogGolden freezes the state log's bytes: a change of the
// format must change StateLogVersion, the doc and this file together.
func TestStateLogGolden(t *testing.T) {
	path := filepath.Join("testdata", "statelog-v1.golden")
	got := goldenLog()
	if *rewrite {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("state log bytes\n got %x\nwant %x", got, want)
	}
	recs, err := DecodeStateLog(path, want, false)
	if err != nil || len(recs) != 2 || recs[0].Kind != KindSilences || string(recs[0].Payload) != "silence part" || recs[1].Kind != KindNflog || len(recs[1].Payload) != 0 {
		t.Fatalf("decode golden: %+v, %v", recs, err)
	}
}

func TestDecodeStateLog(t *testing.T) {
	full := goldenLog()
	first := len(AppendStateRecord([]byte{StateLogVersion}, KindSilences, []byte("silence part")))
	flip := func(i int) []byte { b := bytes.Clone(full); b[i] ^= 1; return b }
	for _, tc := range []struct {
		name    string
		in      []byte
		last    bool
		recs    int
		corrupt bool
	}{
		{"whole", full, false, 2, false},
		{"empty newest file", nil, true, 0, false},
		{"empty older file", nil, false, 0, true},
		{"torn tail of the newest file is dropped", full[:len(full)-2], true, 1, false},
		{"torn tail of an older file is corrupt", full[:len(full)-2], false, 0, true},
		{"cut after the first record", full[:first], true, 1, false},
		{"bad checksum", flip(first - 1), true, 0, true},
		{"bad payload", flip(5), true, 0, true},
		{"unknown kind", flip(first), true, 0, true},
		{"unknown version", flip(0), true, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := DecodeStateLog("f", tc.in, tc.last)
			if _, ok := errors.AsType[*CorruptError](err); ok != tc.corrupt || (err != nil && !tc.corrupt) {
				t.Fatalf("err %v, want corrupt %v", err, tc.corrupt)
			}
			if len(recs) != tc.recs {
				t.Fatalf("%d records, want %d", len(recs), tc.recs)
			}
		})
	}
}

// TestStateLogRotate: records appended survive in the files, rotate
// starts a new generation, dropThrough removes the covered ones.
func TestStateLogRotate(t *testing.T) {
	dir := t.TempDir()
	l, err := openStateLog(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.append(KindSilences, []byte("a"))
	gen, err := l.rotate()
	if err != nil || gen != 1 {
		t.Fatalf("rotate: %d %v", gen, err)
	}
	l.append(KindNflog, []byte("b"))
	recs, gens, err := readLogs(dir)
	if err != nil || len(gens) != 2 || len(recs) != 2 || string(recs[0].Payload) != "a" || string(recs[1].Payload) != "b" {
		t.Fatalf("read: %+v %v %v", recs, gens, err)
	}
	if err := l.dropThrough(gen); err != nil {
		t.Fatal(err)
	}
	recs, gens, err = readLogs(dir)
	if err != nil || len(gens) != 1 || gens[0] != 2 || len(recs) != 1 {
		t.Fatalf("after drop: %+v %v %v", recs, gens, err)
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	l.append(KindNflog, []byte("dropped after close"))
}
