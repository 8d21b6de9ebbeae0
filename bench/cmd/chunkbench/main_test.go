package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/myelindb/myelin/bench/internal/chunkmeasure"
	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/tsdata"
)

// writeData writes two small data sets, a/one.tsv and b/two.tsv.
func writeData(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i, name := range []string{"a/one.tsv", "b/two.tsv"} {
		var buf bytes.Buffer
		for j := range 3 {
			s := &tsdata.Series{Labels: tsdata.Labels{{Name: "__name__", Value: "m"}, {Name: "i", Value: string(rune('a' + j))}}}
			for k := range 300 * (i + 1) {
				s.T = append(s.T, 1_700_000_000_000+int64(k)*1000)
				v := float64(k * j)
				if k == 7 {
					v = math.Float64frombits(0x7ff0000000000002)
				}
				s.V = append(s.V, v)
			}
			if err := tsdata.WriteLine(&buf, s); err != nil {
				t.Fatal(err)
			}
		}
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRunJSON(t *testing.T) {
	dir := writeData(t)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-data", dir, "-json", "-reps", "1", "-chunk-sizes", "100,1000"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	var rows []chunkmeasure.Row
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("%v in output:\n%s", err, stdout.String())
	}
	perSet := 1 + 2*len(chunkenc.Encodings)
	if len(rows) != 3*perSet {
		t.Fatalf("%d rows, want %d", len(rows), 3*perSet)
	}
	for i, want := range []struct {
		dataset string
		samples int64
	}{{"a/one", 900}, {"b/two", 1800}, {chunkmeasure.OverallDataset, 2700}} {
		r := rows[i*perSet]
		if r.Dataset != want.dataset || r.Encoding != chunkmeasure.PromXORName || r.ChunkSamples != 120 ||
			r.Samples != want.samples || r.RatioToXOR != 1 {
			t.Errorf("row %d: %+v, want the prom-xor baseline of %s with %d samples", i*perSet, r, want.dataset, want.samples)
		}
	}
	if r := rows[perSet-1]; r.Encoding != chunkenc.Encodings[len(chunkenc.Encodings)-1].String() || r.ChunkSamples != 1000 {
		t.Errorf("last row of a data set: %+v", r)
	}
}

func TestRunFlags(t *testing.T) {
	dir := writeData(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"one encoding", []string{"-encodings", "xor", "-reps", "1"}, 0, ""},
		{"unknown encoding", []string{"-encodings", "nope"}, 2, "unknown encoding"},
		{"bad chunk size", []string{"-chunk-sizes", "120,0"}, 2, "-chunk-sizes"},
		{"bad reps", []string{"-reps", "0"}, 2, "-reps"},
		{"no files", []string{"-data", t.TempDir()}, 1, "no data files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"-data", dir}, tc.args...)
			if code := run(args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
		})
	}
}
