package chunkmeasure

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRowJSONFields pins the field names of `chunkbench -json`.
func TestRowJSONFields(t *testing.T) {
	r := NewRow("recorded/node_1s", "pack", 1024,
		Result{Samples: 1000, Bytes: 500, Encode: 10 * time.Microsecond, Decode: 5 * time.Microsecond}, 1000)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, []Row{r}); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d objects, want 1", len(got))
	}
	var keys []string
	for k := range got[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"bytes", "bytes_per_sample", "chunk_samples", "dataset", "decode_ns_per_sample",
		"encode_ns_per_sample", "encoding", "ratio_to_xor", "samples"}
	if !slices.Equal(keys, want) {
		t.Errorf("fields %v, want %v", keys, want)
	}
	wantVals := map[string]any{
		"dataset": "recorded/node_1s", "encoding": "pack", "chunk_samples": 1024.0,
		"samples": 1000.0, "bytes": 500.0, "bytes_per_sample": 0.5, "ratio_to_xor": 0.5,
		"encode_ns_per_sample": 10.0, "decode_ns_per_sample": 5.0,
	}
	for k, v := range wantVals {
		if got[0][k] != v {
			t.Errorf("%s = %v, want %v", k, got[0][k], v)
		}
	}
}

func TestWriteJSONEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(buf.String()); got != "[]" {
		t.Errorf("got %q, want []", got)
	}
}

func TestNewRowNoBaseline(t *testing.T) {
	r := NewRow("d", "xor", 120, Result{}, 0)
	if r.BytesPerSample != 0 || r.RatioToXOR != 0 || r.EncodeNsPerSample != 0 {
		t.Errorf("row %+v: want zero ratios for no samples and no baseline", r)
	}
}

func TestWriteTable(t *testing.T) {
	rows := []Row{
		NewRow("a", PromXORName, 120, Result{Samples: 10, Bytes: 12}, 12),
		NewRow("a", "xor", 120, Result{Samples: 10, Bytes: 13}, 12),
		NewRow(OverallDataset, PromXORName, 120, Result{Samples: 10, Bytes: 12}, 12),
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 5 || lines[3] != "" || !strings.HasPrefix(lines[0], "dataset") {
		t.Fatalf("table:\n%s", buf.String())
	}
	if !strings.Contains(lines[2], "1.083") {
		t.Errorf("row %q lacks ratio 1.083", lines[2])
	}
}
