package chunkenc

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata/")

// goldenCase is a fixed input of the format-freeze test.
type goldenCase struct {
	name string
	ts   []int64
	vs   []float64
}

// splitmix is SplitMix64, a fixed generator for golden inputs: they must
// not change when a library's random source does.
type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (s *splitmix) intn(n int) int { return int(s.next() % uint64(n)) }

func regular(t0, step int64, n int) []int64 {
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = t0 + int64(i)*step
	}
	return ts
}

func constant(v float64, n int) []float64 {
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = v
	}
	return vs
}

const t2026 = 1795238701122 // a timestamp of the shared recording

var (
	stale   = math.Float64frombits(0x7ff0000000000002) // Prometheus's staleness marker
	negZero = math.Copysign(0, -1)
)

// goldenCases are the inputs of the golden files. Each one is there for a
// branch of the format (doc.go); TestGolden checks that together they take
// every branch in goldenBranches.
func goldenCases() []goldenCase {
	var cases []goldenCase
	add := func(name string, ts []int64, vs []float64) {
		cases = append(cases, goldenCase{name, ts, vs})
	}
	// One generator for all cases, in order: add new cases at the end, so
	// that the inputs of the others stay as they are.
	rng := splitmix(1)

	add("single", []int64{t2026}, []float64{42})
	add("single-negative-stale", []int64{-1}, []float64{stale})
	add("two", []int64{0, 1}, []float64{0.5, -0.5})
	add("regular-const", regular(t2026, 15000, 120), constant(1, 120))

	// A counter at a constant rate: its delta of delta is zero.
	vs := make([]float64, 120)
	for i := range vs {
		vs[i] = 1000 + 37*float64(i)
	}
	add("counter-constant-rate", regular(t2026, 15000, 120), vs)

	// A counter with varying small increments; 240 samples need a 2-byte
	// count.
	vs = make([]float64, 240)
	for i := 1; i < len(vs); i++ {
		vs[i] = vs[i-1] + float64(rng.intn(40))
	}
	add("counter-integers", regular(t2026, 1000, 240), vs)

	// A gauge with noise around a level it starts at: m_i - m_0 is smaller
	// than the deltas.
	vs = make([]float64, 120)
	vs[0] = 0.5
	for i := 1; i < len(vs); i++ {
		vs[i] = float64(48+rng.intn(5)) / 100
	}
	add("gauge-decimals", regular(t2026, 15000, 120), vs)

	// A gauge of 3-digit decimals with every kind of exception: the
	// staleness marker, another NaN, ±Inf, -0 and binary noise (a value
	// printed at full precision, not a decimal at 3 digits).
	vs = make([]float64, 200)
	for i := range vs {
		vs[i] = float64(120+rng.intn(30)) / 1000
	}
	vs[20], vs[21] = stale, stale
	vs[50] = math.Float64frombits(0x7ff8000000000001)
	vs[90], vs[91] = math.Inf(1), math.Inf(-1)
	vs[130] = negZero
	vs[170] = 0.20199999999999999
	add("decimal-exceptions", regular(t2026, 1000, 200), vs)

	// Memory in 4 KiB pages: the residuals' gcd is 4096.
	vs = make([]float64, 120)
	vs[0] = 8_000_000_000 - 8_000_000_000%4096
	for i := 1; i < len(vs); i++ {
		vs[i] = vs[i-1] + 4096*float64(rng.intn(200)-100)
	}
	add("memory-pages-gcd", regular(t2026, 15000, 120), vs)

	// A gauge that steps up now and then and has one-sample spikes: as
	// deltas a step is one residual, a spike a pair +x, -x.
	vs = make([]float64, 120)
	for i := range vs {
		vs[i] = float64(5 + i/30)
	}
	for _, i := range []int{10, 40, 52, 77, 100} {
		vs[i] += 2
	}
	vs[64] -= 3
	add("gauge-steps-spikes", regular(t2026, 15000, 120), vs)

	// A constant gauge that went stale twice: the exceptions repeat the
	// previous mantissa, so every residual is zero.
	vs = constant(3.5, 120)
	vs[30], vs[31], vs[90] = stale, stale, stale
	add("const-with-stale", regular(t2026, 15000, 120), vs)

	// A 15 s schedule with jitter around it, a missed scrape and a target
	// restart that moves the schedule: the grid model, re-anchored.
	ts := regular(t2026, 15000, 120)
	for _, i := range []int{5, 17, 33, 34, 70, 71, 72, 90} {
		ts[i] += int64(1 + rng.intn(4))
	}
	ts = append(ts[:50], ts[51:]...) // missed
	for i := 80; i < len(ts); i++ {
		ts[i] += 9_123 // restart, more than half an interval off
	}
	add("jitter-grid", ts, counterOf(&rng, len(ts)))

	// A 1 s scrape whose clock drifts against the interval (every 25th
	// interval is 1001 ms), and late scrapes (+x then -x): the delta model
	// with paired residuals.
	ts = make([]int64, 300)
	ts[0] = t2026
	for i := 1; i < len(ts); i++ {
		ts[i] = ts[i-1] + 1000
		if i%25 == 0 {
			ts[i]++
		}
	}
	for _, i := range []int{7, 33, 61, 90, 140, 161, 188, 230, 262, 291} {
		ts[i] += int64(2 + rng.intn(3))
	}
	add("jitter-delta-pairs", ts, constant(0, len(ts)))

	// Drift only: unpaired residuals, the runs kind.
	ts = make([]int64, 300)
	ts[0] = t2026
	for i := 1; i < len(ts); i++ {
		ts[i] = ts[i-1] + 1000
		if i%20 == 0 {
			ts[i] += int64(1 + rng.intn(2))
		}
	}
	add("jitter-delta-runs", ts, constant(1, len(ts)))

	// Jitter on every sample: Rice-coded residuals, and an hour without
	// samples that takes the Rice code's escape.
	ts = make([]int64, 120)
	ts[0] = t2026
	for i := 1; i < len(ts); i++ {
		ts[i] = ts[i-1] + 1000 + int64(rng.intn(11)) - 5
		if i == 60 {
			ts[i] += 3_600_000
		}
	}
	add("jitter-every-sample", ts, constant(1, len(ts)))

	// True doubles: the decimal model does not fit, Gorilla XOR.
	vs = make([]float64, 120)
	for i := range vs {
		vs[i] = 100 + float64(rng.next()>>11)/(1<<53)
	}
	add("true-doubles", regular(t2026, 15000, 120), vs)

	// Powers of two: integers, so decimals at e=0, but XOR is far cheaper
	// (only exponent bits change); the encoder writes decimals, measures
	// and rolls back.
	vs = make([]float64, 120)
	for i := range vs {
		vs[i] = float64(uint64(1) << rng.intn(52))
	}
	vs[70], vs[71] = 1<<52, 1<<52+1 // an XOR delta of 1: 63 leading zeros
	add("powers-of-two", regular(t2026, 15000, 120), vs)

	// Large integers, then 3-digit decimals: the cost picks 3 digits, at
	// which the integers' mantissas pass 2^53; that leaves too many
	// exceptions for the decimal model.
	vs = make([]float64, 120)
	for i := range vs {
		vs[i] = float64(rng.intn(1000)) / 1000
		if i < 20 {
			vs[i] = float64(1e14 + rng.intn(1e6))
		}
	}
	add("decimal-overflow", regular(t2026, 15000, 120), vs)

	// NaN payloads, the staleness marker, ±Inf and -0 as XOR values: a
	// sign flip with bit 0 set needs a 64-bit window.
	vs = []float64{
		math.Float64frombits(0x7ff8000000000001), stale, math.Float64frombits(0xfff0000000000001),
		math.Float64frombits(0x7fffffffffffffff), math.Inf(1), math.Inf(-1), negZero, 0,
		math.Float64frombits(0x7ff8000000000001), math.Float64frombits(0xfff8000000000000), stale, stale,
	}
	add("nan-inf-negzero", regular(t2026, 15000, len(vs)), vs)

	// XOR windows: unchanged values, a change inside the window, a delta
	// with more than 31 leading zeros (the 5-bit field caps at 31) and a
	// 64-bit window (a sign flip with bit 0 set).
	one := math.Float64frombits(0x3ff0000000000001)
	vs = []float64{1, 1, one, math.Float64frombits(0x3ff0000000000003), 1, -1, one, -1, -1, math.Float64frombits(0xbff0000000000004), 1, one}
	add("xor-windows", regular(t2026, 15000, len(vs)), vs)

	// Timestamps at the extremes of int64: gaps beyond MaxInt64 wrap, the
	// residuals need Rice codes wider than 64 bits and escapes.
	add("int64-extremes", []int64{math.MinInt64, -1, 0, math.MaxInt64}, []float64{1, 2, 3, 4})

	// A gap of 2^63 + 10 after t0 = MinInt64 makes a grid residual of
	// exactly MinInt64 (the one |r| that does not fit an int64), then a
	// late sample.
	add("grid-residual-minint64",
		[]int64{math.MinInt64, math.MinInt64 + 10, math.MinInt64 + 20, 30, 43, 50, 60, 70},
		[]float64{1, 1, 1, 2, 2, 2, 2, 2})

	// EncXOR's delta-of-delta buckets at both ends of each: 0, then
	// 2^13 and -(2^13-1) (14 bits), one past them (17 bits), and so on up
	// to the 64-bit escape.
	dods := []int64{0, 1 << 13, -(1<<13 - 1), 1<<13 + 1, -(1 << 13), 1 << 16, -(1<<16 - 1), 1<<16 + 1, -(1 << 16),
		1 << 19, -(1<<19 - 1), 1<<19 + 1, -(1 << 19), 1 << 40, -(1 << 40)}
	ts = []int64{-1_000_000_000_000, -1_000_000_000_000 + 1_000_000}
	for _, dod := range dods {
		n := len(ts)
		ts = append(ts, 2*ts[n-1]-ts[n-2]+dod)
	}
	add("dod-buckets", ts, constant(1, len(ts)))

	// Before 1970: negative timestamps on a 15 s schedule.
	add("negative-timestamps", regular(-86_400_000*365, 15000, 120), counterOf(&rng, 120))

	// The most samples a chunk holds (a 3-byte count): an up gauge, 1
	// with a few stretches of 0 and staleness.
	vs = constant(1, MaxSamples)
	for i := 1000; i < 1100; i++ {
		vs[i] = 0
	}
	for i := 40000; i < 40003; i++ {
		vs[i] = stale
	}
	vs[MaxSamples-1] = 0
	add("max-samples", regular(t2026, 1000, MaxSamples), vs)
	return cases
}

// counterOf is a counter with small random increments.
func counterOf(rng *splitmix, n int) []float64 {
	vs := make([]float64, n)
	vs[0] = float64(rng.intn(1000))
	for i := 1; i < n; i++ {
		vs[i] = vs[i-1] + float64(rng.intn(10))
	}
	return vs
}

// goldenBranches are the branches of each format that the golden cases
// must take together (the tags of layout). A case list that stops taking
// one fails TestGolden, so the freeze keeps covering the whole format.
var goldenBranches = map[Encoding][]string{
	EncPack: {
		"count:1B", "count:2B", "count:3B",
		"ts:single", "ts:negative-t0", "ts:delta", "ts:grid", "ts:grid-reanchor", "ts:grid-residual-minint64",
		"ts-ints:zero", "ts-ints:rice", "ts-ints:runs", "ts-ints:pairs", "ts-ints:pairs-paired",
		"ts-ints:rice-escape", "ts-ints:rice-wide",
		"val:const", "val:dec", "val:xor",
		"dec:e0", "dec:e>0", "dec:order-m_i-m_0", "dec:order-delta", "dec:order-delta-of-delta", "dec:gcd>1",
		"dec:exceptions", "exc:stale", "exc:nan(0x7ff8000000000001)", "exc:+inf", "exc:-inf", "exc:-0", "exc:finite",
		"val-ints:zero", "val-ints:rice", "val-ints:runs", "val-ints:pairs", "val-ints:pairs-paired",
		"val:xor-over-decimal", "xor:same", "xor:reuse", "xor:window", "xor:leading-capped", "xor:window-64",
	},
	EncXOR: {
		"ts:single", "ts:negative-t0",
		"dod:0", "dod:14", "dod:17", "dod:20", "dod:64",
		"dod:14-max", "dod:14-min", "dod:17-max", "dod:17-min", "dod:20-max", "dod:20-min",
		"xor:same", "xor:reuse", "xor:window", "xor:leading-capped", "xor:window-64",
	},
}

// TestGolden freezes the formats: every golden case, encoded, must be
// byte for byte the chunk in testdata/<encoding>.golden, and the chunks in
// those files must decode to their cases' samples bit for bit. A format
// change updates doc.go, the encoding byte (a new Encoding: chunks already
// written must still read) and these files together: rewrite them with
//
//	go test ./chunkenc -run TestGolden -rewrite
//
// and review the diff; the text above each chunk is its layout as doc.go
// reads it. An encoder that picks other parameters within the same format
// changes the files too; then the old chunks still decode, and the
// failure says so.
func TestGolden(t *testing.T) {
	cases := goldenCases()
	for _, enc := range Encodings {
		t.Run(enc.String(), func(t *testing.T) {
			path := filepath.Join("testdata", enc.String()+".golden")
			var text strings.Builder
			fmt.Fprintf(&text, "# %s chunks of chunkenc's golden cases (golden_test.go): per case its\n", enc)
			fmt.Fprintf(&text, "# layout as doc.go reads it, then `hexdump -C` of the chunk.\n")
			fmt.Fprintf(&text, "# Rewrite: go test ./chunkenc -run TestGolden -rewrite\n")
			taken := map[string]bool{}
			chunks := map[string][]byte{}
			var reused Encoder
			var it Iterator
			for _, tc := range cases {
				chunk, err := Encode(nil, enc, tc.ts, tc.vs)
				require.NoError(t, err, tc.name)
				chunks[tc.name] = chunk
				checkGoldenChunk(t, &reused, &it, enc, tc, chunk)
				l, err := describe(chunk)
				require.NoError(t, err, "%s: layout", tc.name)
				if enc == EncPack && l.tags["val:xor"] {
					// Why not decimals: the encoder's own judgement.
					var e Encoder
					if exp, ok := e.decimals(tc.vs); ok {
						l.tag("val:xor-over-decimal")
						l.line("        (the decimal model fits at e=%d but costs more)", exp)
					} else {
						l.line("        (the decimal model does not fit: more than 1/8 exceptions)")
					}
				}
				for tag := range l.tags {
					taken[tag] = true
				}
				fmt.Fprintf(&text, "\n== %s: %d samples, %d bytes\n", tc.name, len(tc.ts), len(chunk))
				for _, line := range l.lines {
					text.WriteString(line + "\n")
				}
				text.WriteString(hexdumpC(chunk))
			}
			checkGoldenFile(t, path, text.String(), cases, chunks)
			for _, b := range goldenBranches[enc] {
				if !taken[b] {
					t.Errorf("no golden case takes branch %q of %s; cases take %v", b, enc, sortedTags(taken))
				}
			}
			// The same chunks again from the reused encoder, in reverse
			// order: scratch space left by other chunks changes nothing.
			for i := len(cases) - 1; i >= 0; i-- {
				tc := cases[i]
				got, err := reused.Encode([]byte("prefix"), enc, tc.ts, tc.vs)
				require.NoError(t, err)
				require.Equal(t, "prefix", string(got[:6]))
				require.Equal(t, chunks[tc.name], got[6:], "%s: reused encoder, reverse order", tc.name)
			}
		})
	}
}

// checkGoldenFile compares text with the golden file at path (rewriting
// it first under -rewrite) and decodes every chunk the file held before:
// each must still give its case's samples, whatever the encoder now
// writes. chunks are the cases' chunks as encoded now.
func checkGoldenFile(t *testing.T, path, text string, cases []goldenCase, chunks map[string][]byte) {
	t.Helper()
	old, err := os.ReadFile(path)
	if err != nil && !(*rewrite && os.IsNotExist(err)) {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	oldChunks, err := parseGolden(string(old))
	require.NoError(t, err, "parse %s", path)
	for _, tc := range cases {
		chunk, ok := oldChunks[tc.name]
		if !ok {
			if !*rewrite {
				t.Errorf("%s has no case %q (-rewrite adds it)", path, tc.name)
			}
			continue
		}
		ts, vs, err := Decode(nil, nil, chunk)
		readable := err == nil && len(ts) == len(tc.ts)
		for i := 0; readable && i < len(ts); i++ {
			readable = ts[i] == tc.ts[i] && math.Float64bits(vs[i]) == math.Float64bits(tc.vs[i])
		}
		switch {
		case !readable && *rewrite:
			t.Logf("%s: %s: the old chunk does not decode to the case's samples any more (%v); rewritten anyway", path, tc.name, err)
		case !readable:
			t.Errorf("%s: %s: the chunk no longer decodes to its samples (%v): chunks already written in this encoding would read wrong; a format change needs a new Encoding", path, tc.name, err)
		case !bytes.Equal(chunk, chunks[tc.name]) && !*rewrite:
			t.Errorf("%s: %s: the encoder now writes other bytes; the old chunk still decodes, so the encoder's choices changed, not the format: review and -rewrite", path, tc.name)
		}
	}
	if *rewrite {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
		return
	}
	if text != string(old) {
		t.Errorf("%s changed; a format change updates doc.go, the encoding and this file together (-rewrite), and is reviewed in the diff:\n%s",
			path, firstDiff(string(old), text))
	}
}

// parseGolden returns the chunks of a golden file by case name. It reads
// the "== <name>: ..." header of each case and its hexdump, ignoring the
// layout lines between them.
func parseGolden(text string) (map[string][]byte, error) {
	chunks := map[string][]byte{}
	name := ""
	var dump []string
	flush := func() error {
		if name == "" {
			return nil
		}
		b, err := parseHexdumpC(dump)
		if err != nil {
			return fmt.Errorf("case %s: %w", name, err)
		}
		chunks[name] = b
		return nil
	}
	for _, line := range strings.Split(text, "\n") {
		if h, ok := strings.CutPrefix(line, "== "); ok {
			if err := flush(); err != nil {
				return nil, err
			}
			name, _, _ = strings.Cut(h, ":")
			dump = dump[:0]
			continue
		}
		if line == "*" || isHexOffset(line) {
			dump = append(dump, line)
		}
	}
	return chunks, flush()
}

// isHexOffset reports whether a line of a hexdump starts with an offset.
func isHexOffset(line string) bool {
	if len(line) < 8 || (len(line) > 8 && !strings.HasPrefix(line[8:], "  ")) {
		return false
	}
	_, err := hex.DecodeString(line[:8])
	return err == nil
}

// parseHexdumpC reads the lines hexdumpC wrote back into bytes.
func parseHexdumpC(lines []string) ([]byte, error) {
	var out, prev []byte
	starred := false
	for _, line := range lines {
		if line == "*" {
			starred = true
			continue
		}
		var off uint32
		if _, err := fmt.Sscanf(line[:8], "%08x", &off); err != nil {
			return nil, err
		}
		for starred && len(out) < int(off) {
			out = append(out, prev...)
		}
		starred = false
		if len(out) != int(off) {
			return nil, fmt.Errorf("offset %08x after %d bytes", off, len(out))
		}
		if len(line) == 8 {
			return out, nil // the length line ends the dump
		}
		hexPart, _, _ := strings.Cut(line[8:], "|")
		b, err := hex.DecodeString(strings.Join(strings.Fields(hexPart), ""))
		if err != nil {
			return nil, err
		}
		out, prev = append(out, b...), b
	}
	return nil, fmt.Errorf("no length line")
}

// checkGoldenChunk checks one golden chunk: it round-trips bit for bit
// through every reader, every encoder writes the same bytes, a recode from
// the head format gives them too, and for EncXOR the appendable chunk and
// Prometheus's XOR chunk agree.
func checkGoldenChunk(t *testing.T, reused *Encoder, it *Iterator, enc Encoding, tc goldenCase, chunk []byte) {
	t.Helper()
	checkChunk(t, it, chunk, tc.ts, tc.vs)
	got, err := reused.Encode(nil, enc, tc.ts, tc.vs)
	require.NoError(t, err)
	require.Equal(t, chunk, got, "%s: reused encoder", tc.name)
	var fresh Encoder
	got, err = fresh.Encode(nil, enc, tc.ts, tc.vs)
	require.NoError(t, err)
	require.Equal(t, chunk, got, "%s: fresh encoder", tc.name)

	head := NewXOR(nil)
	for i := range tc.ts {
		require.NoError(t, head.Append(tc.ts[i], tc.vs[i]))
	}
	got, err = reused.Recode(nil, enc, head.Bytes())
	require.NoError(t, err)
	require.Equal(t, chunk, got, "%s: recoded from the head chunk", tc.name)

	// Decoded samples encode to the same bytes (what a merge of one chunk
	// writes).
	ts, vs, err := Decode(nil, nil, chunk)
	require.NoError(t, err)
	got, err = reused.Encode(nil, enc, ts, vs)
	require.NoError(t, err)
	require.Equal(t, chunk, got, "%s: re-encoded from its decoded samples", tc.name)

	if enc == EncXOR {
		require.Equal(t, chunk, head.Bytes(), "%s: appended one by one", tc.name)
		require.Equal(t, promXOR(t, tc.ts, tc.vs), chunk[1:], "%s: Prometheus's XOR chunk", tc.name)
	}
}

// firstDiff shows the first differing line of two texts with a little
// context.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n want %q\n got  %q", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}

// hexdumpC formats b as `hexdump -C` does: 16 bytes a line, a run of
// identical lines shown once and then "*", and a last line with the
// length.
func hexdumpC(b []byte) string {
	var sb strings.Builder
	var prev []byte
	starred := false
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		if prev != nil && bytes.Equal(line, prev) {
			if !starred {
				sb.WriteString("*\n")
				starred = true
			}
			continue
		}
		prev, starred = line, false
		// hex.Dump of one line, with the offset of this one.
		fmt.Fprintf(&sb, "%08x%s", off, hex.Dump(line)[8:])
	}
	fmt.Fprintf(&sb, "%08x\n", len(b))
	return sb.String()
}

// TestMaxSamples: the max-samples golden case is the limit; one more
// sample is refused by every encoder and by the appendable chunk.
func TestMaxSamples(t *testing.T) {
	ts, vs := regular(0, 1, MaxSamples+1), constant(1, MaxSamples+1)
	for _, enc := range Encodings {
		_, err := Encode(nil, enc, ts, vs)
		require.ErrorIs(t, err, ErrFull, enc.String())
	}
	x := NewXOR(nil)
	for i := range MaxSamples {
		require.NoError(t, x.Append(ts[i], vs[i]))
	}
	require.ErrorIs(t, x.Append(ts[MaxSamples], 1), ErrFull)
	require.Equal(t, MaxSamples, x.NumSamples())
}
