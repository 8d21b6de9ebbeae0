package write

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata/")

// goldenBatch is the fixed input of the batch format tests: label sets
// with a NUL byte and UTF-8, a series without samples, unsorted and
// extreme timestamps, and values whose bits must survive (StaleNaN, a NaN
// payload, -0, ±Inf).
func goldenBatch(t testing.TB) *Batch {
	return buildBatch(t, "tenant-ü",
		labels.FromStrings("__name__", "up", "instance", "a:9100", "job", "node"),
		[]Sample{{1_700_000_000_000, 1}, {1_700_000_015_000, 0}, {1_700_000_030_000, math.Float64frombits(value.StaleNaN)}},
		labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "idle", "x", "\x00→"),
		[]Sample{{-5, math.Copysign(0, -1)}, {-9, math.Inf(1)}, {math.MaxInt64, math.Inf(-1)}, {math.MinInt64, math.Float64frombits(0x7ff8_0000_dead_beef)}},
		labels.FromStrings("__name__", "empty"),
		[]Sample(nil),
	)
}

// goldenLimitsBatch is goldenBatch with series limits: the form a node
// proposes since version 4.
func goldenLimitsBatch(t testing.TB) *Batch {
	b := goldenBatch(t)
	b.Limits = SeriesLimits{MaxSeries: 50_546, MaxSeriesPerMetric: 127}
	return b
}

// goldenOutcomes are the fixed inputs of the outcome format test: every
// cause code, and a whole-entry error. v1 are those of version 1 (no
// limit refusals).
func goldenOutcomes() []struct {
	name string
	o    Outcome
	v1   bool
} {
	return []struct {
		name string
		o    Outcome
		v1   bool
	}{
		{"refusals", Outcome{Refused: []Refusal{
			{Series: 0, Rejected: 3, Err: fmt.Errorf("sample 0 at 5: %w", ErrOutOfOrder)},
			{Series: 1, Rejected: 1, Err: fmt.Errorf("sample 2 at 100: %w", ErrDuplicateSample)},
			{Series: 7, Rejected: 2, Err: fmt.Errorf("sample 1 at -3: %w", ErrTooOld)},
			{Series: 300, Rejected: 1000, Err: fmt.Errorf("empty label name: %w", ErrInvalidLabels)},
			{Series: 301, Rejected: 1, Err: errors.New("something else")},
			{Series: 302, Rejected: 1},
		}}, true},
		{"entry refused", Outcome{Err: fmt.Errorf("apply entry 42: %w", &CorruptError{Offset: 3, Reason: "empty tenant"})}, true},
		{"limits", Outcome{Refused: []Refusal{
			{Series: 2, Rejected: 4, Err: fmt.Errorf("%w: 50546 series in the group, its limit", ErrSeriesLimit)},
			{Series: 5, Rejected: 1, Err: fmt.Errorf("%w: 127 series of up in the group, its limit", ErrMetricSeriesLimit)},
		}}, false},
	}
}

// TestBatchGolden freezes the version 4 encoding: a change here needs a
// new Version, a doc.go update and -rewrite, together.
func TestBatchGolden(t *testing.T) {
	b := goldenLimitsBatch(t)
	enc := Append(nil, b)
	checkGolden(t, "batch_v4.golden", hex.Dump(enc))
	// What was written stays readable.
	got, err := Decode(readGolden(t, "batch_v4.golden"))
	if err != nil {
		t.Fatalf("golden batch does not decode: %v", err)
	}
	if got.Limits != b.Limits {
		t.Fatalf("golden batch has limits %+v, want %+v", got.Limits, b.Limits)
	}
	if again := Append(nil, &got); string(again) != string(enc) {
		t.Fatalf("golden batch decodes to another batch:\n%s", hex.Dump(again))
	}
}

// TestBatchV2Golden: batches of version 2, without limits, written
// before version 4 and still in Raft logs, decode to the same batch with
// zero limits. The golden files of version 2 and of its compressed form
// (version 3 of version 2) are frozen: never rewritten.
func TestBatchV2Golden(t *testing.T) {
	want := Append(nil, goldenBatch(t))
	for _, name := range []string{"batch_v2.golden", "batch_v3.golden"} {
		src := readGolden(t, name)
		if name == "batch_v2.golden" && src[0] != VersionNoLimits {
			t.Fatalf("%s starts with version %d", name, src[0])
		}
		got, err := Decode(src)
		if err != nil {
			t.Fatalf("%s does not decode: %v", name, err)
		}
		if got.Limits != (SeriesLimits{}) {
			t.Fatalf("%s: limits %+v, want none", name, got.Limits)
		}
		if string(Append(nil, &got)) != string(want) {
			t.Fatalf("%s decodes to another batch", name)
		}
	}
}

// TestBatchS2Golden: the compressed form nodes proposed before version 9
// (version 3 of version 4), still in Raft logs, decodes to the batch;
// Compress writes it. The golden file is frozen: never rewritten.
func TestBatchS2Golden(t *testing.T) {
	b := goldenLimitsBatch(t)
	got, err := Decode(readGolden(t, "batch_v3_of_v4.golden"))
	if err != nil {
		t.Fatalf("golden batch does not decode: %v", err)
	}
	if string(Append(nil, &got)) != string(Append(nil, b)) {
		t.Fatalf("golden batch decodes to another batch")
	}
	if c := Compress(nil, Append(nil, b)); c[0] != VersionS2 {
		t.Fatalf("Compress writes version %d", c[0])
	}
}

// TestBatchPrefixGolden freezes the form a node proposes (version 9:
// prefix-coded label sets, S2-compressed), and its content before
// compression, which is ours alone. The compressed bytes are those of the
// s2 library's encoder; if only it changed, the golden bytes still decode
// to the batch (checked first) and -rewrite is right. A change of the
// layout needs a new version.
func TestBatchPrefixGolden(t *testing.T) {
	const name = "batch_v9.golden"
	b := goldenLimitsBatch(t)
	checkGolden(t, "batch_v9_content.golden", hex.Dump(appendBatch(nil, b, true)))
	if _, err := os.Stat(filepath.Join("testdata", name)); err == nil || !*rewrite {
		got, err := Decode(readGolden(t, name))
		if err != nil {
			t.Fatalf("golden batch does not decode: %v", err)
		}
		if string(Append(nil, &got)) != string(Append(nil, b)) {
			t.Fatalf("golden batch decodes to another batch")
		}
	}
	var e Encoder
	entry := e.Entry(b)
	if entry[0] != VersionS2Prefix {
		t.Fatalf("Encoder writes version %d", entry[0])
	}
	checkGolden(t, name, hex.Dump(entry))
}

// TestOutcomeGolden freezes the version 2 outcome encoding, and checks
// that version 1's golden outcomes (frozen, never rewritten) still
// decode.
func TestOutcomeGolden(t *testing.T) {
	var text strings.Builder
	for _, tc := range goldenOutcomes() {
		fmt.Fprintf(&text, "# %s\n%s", tc.name, hex.Dump(AppendOutcome(nil, tc.o)))
	}
	checkGolden(t, "outcome_v2.golden", text.String())
	for _, file := range []string{"outcome_v1.golden", "outcome_v2.golden"} {
		sections := strings.Split(string(readFile(t, file)), "# ")[1:]
		i := 0
		for _, tc := range goldenOutcomes() {
			if file == "outcome_v1.golden" && !tc.v1 {
				continue
			}
			name, dump, _ := strings.Cut(sections[i], "\n")
			i++
			if name != tc.name {
				t.Fatalf("%s: section %d is %q, want %q", file, i, name, tc.name)
			}
			got, err := DecodeOutcome(parseDump(t, dump))
			if err != nil {
				t.Fatalf("%s: %s: golden outcome does not decode: %v", file, tc.name, err)
			}
			if !sameOutcome(got, tc.o) {
				t.Fatalf("%s: %s: golden outcome decodes to %+v, want %+v", file, tc.name, got, tc.o)
			}
		}
	}
}

// checkGolden compares text with testdata/name, first writing it there
// with -rewrite.
func checkGolden(t *testing.T, name, text string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *rewrite {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := readFile(t, name); text != string(want) {
		t.Errorf("%s: encoding changed (a format change needs a new version, a doc.go update and -rewrite):\n%s\nwant:\n%s", name, text, want)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	return b
}

// readGolden returns the bytes of a golden file holding one hex.Dump.
func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	return parseDump(t, string(readFile(t, name)))
}

// parseDump is the inverse of hex.Dump.
func parseDump(t *testing.T, dump string) []byte {
	t.Helper()
	var out []byte
	for line := range strings.Lines(dump) {
		hexPart, _, _ := strings.Cut(line, "  |")
		fields := strings.Fields(hexPart)
		if len(fields) == 0 {
			continue
		}
		b, err := hex.DecodeString(strings.Join(fields[1:], ""))
		if err != nil {
			t.Fatalf("golden line %q: %v", line, err)
		}
		out = append(out, b...)
	}
	return out
}
