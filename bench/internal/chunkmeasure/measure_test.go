package chunkmeasure

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/myelindb/myelin/chunkenc"
)

const staleNaN = 0x7ff0000000000002

// synthetic returns a small fixed set of series with the shapes of real
// data: regular and jittered intervals, counters, gauges, constants,
// staleness markers, ordinary NaN, ±Inf, -0 and a single-sample series.
func synthetic() []Series {
	rng := rand.New(rand.NewPCG(1, 2))
	var set []Series
	add := func(n int, dt func() int64, v func(i int) float64) {
		s := Series{T: make([]int64, n), V: make([]float64, n)}
		t := int64(1795238701122)
		for i := range n {
			s.T[i], s.V[i] = t, v(i)
			t += dt()
		}
		set = append(set, s)
	}
	regular := func() int64 { return 15000 }
	jitter := func() int64 { return 1000 + rng.Int64N(7) - 3 }
	add(1, regular, func(int) float64 { return 1 })
	add(240, regular, func(int) float64 { return 0 }) // exactly two 120-sample chunks
	add(1000, jitter, func(i int) float64 { return float64(i * 3) })
	add(700, jitter, func(int) float64 { return rng.NormFloat64() * 1e3 })
	add(300, regular, func(i int) float64 {
		switch i % 50 {
		case 10:
			return math.Float64frombits(staleNaN)
		case 20:
			return math.NaN()
		case 30:
			return math.Inf(1)
		case 31:
			return math.Inf(-1)
		case 40:
			return math.Copysign(0, -1)
		}
		return math.Round(rng.Float64()*1e4) / 100
	})
	add(2100, func() int64 { return 1 + rng.Int64N(1e6) }, func(int) float64 { return rng.Float64() })
	return set
}

func codecs() []Codec {
	cs := []Codec{PromXOR()}
	for _, enc := range chunkenc.Encodings {
		cs = append(cs, Ours(enc))
	}
	return cs
}

func TestMeasureRoundTrip(t *testing.T) {
	set := synthetic()
	wantN, _ := Sum(set)
	for _, c := range codecs() {
		for _, size := range []int{1, 7, 120, 1024} {
			t.Run(c.Name()+"/"+strconv.Itoa(size), func(t *testing.T) {
				r, err := Measure(c, set, Options{ChunkSamples: size, Reps: 2})
				if err != nil {
					t.Fatal(err)
				}
				if r.MismatchCount != 0 {
					t.Fatalf("%d mismatches: %v", r.MismatchCount, r.Mismatches)
				}
				if r.Samples != int64(wantN) {
					t.Errorf("samples %d, want %d", r.Samples, wantN)
				}
				if want := int64(chunksOf(set, size)); r.Chunks != want {
					t.Errorf("chunks %d, want %d", r.Chunks, want)
				}
				if r.Bytes <= 0 || r.Encode <= 0 || r.Decode <= 0 {
					t.Errorf("bytes %d, encode %v, decode %v: want all positive", r.Bytes, r.Encode, r.Decode)
				}
			})
		}
	}
}

func chunksOf(set []Series, size int) int {
	n := 0
	for _, s := range set {
		n += (len(s.T) + size - 1) / size
	}
	return n
}

// TestPromXORMatchesOurXOR checks the baseline against chunkenc's claim
// that an EncXOR chunk is the encoding byte followed by exactly a
// Prometheus XOR chunk, so ratio_to_xor of "xor" is 1 + 1/samples-per-chunk.
func TestPromXORMatchesOurXOR(t *testing.T) {
	var prom, ours Chunks
	set := synthetic()
	if err := prom.Encode(PromXOR(), set, 120); err != nil {
		t.Fatal(err)
	}
	if err := ours.Encode(Ours(chunkenc.EncXOR), set, 120); err != nil {
		t.Fatal(err)
	}
	if prom.Len() != ours.Len() {
		t.Fatalf("%d prom-xor chunks, %d xor chunks", prom.Len(), ours.Len())
	}
	for i := range prom.Len() {
		if p, o := prom.At(i), ours.At(i); o[0] != byte(chunkenc.EncXOR) || !bytes.Equal(p, o[1:]) {
			t.Fatalf("chunk %d: prom-xor %x, xor %x", i, p, o)
		}
	}
}

// broken wraps a codec and damages samples in one of several ways.
type broken struct {
	Codec
	bad      *int64 // points into the input: the sample of this timestamp is damaged
	how      string // flip-value, shift-time, drop, nan-payload or fail
	scanOnly bool   // damage only the timed decode
}

func (b *broken) Encode(dst []byte, ts []int64, vs []float64) ([]byte, error) {
	i := -1
	for j := range ts {
		if &ts[j] == b.bad {
			i = j
		}
	}
	if i < 0 || b.scanOnly {
		return b.Codec.Encode(dst, ts, vs)
	}
	switch b.how {
	case "flip-value":
		vs = slices.Clone(vs)
		vs[i] = math.Float64frombits(math.Float64bits(vs[i]) ^ 1)
	case "shift-time":
		ts = slices.Clone(ts)
		ts[i]++
	case "drop":
		ts, vs = ts[:i], vs[:i]
	case "nan-payload":
		vs = slices.Clone(vs)
		vs[i] = math.NaN() // a different NaN than the input's staleness marker
	case "fail":
		return dst, errors.New("broken codec")
	}
	return b.Codec.Encode(dst, ts, vs)
}

func (b *broken) Scan(chunk []byte) (int, Checksum, error) {
	n, sum, err := b.Codec.Scan(chunk)
	if b.scanOnly {
		sum.V ^= 1
	}
	return n, sum, err
}

func TestMeasureDetectsBrokenCodec(t *testing.T) {
	set := synthetic()
	for _, tc := range []struct {
		name       string
		series     int // series and sample to damage
		sample     int
		how        string
		scanOnly   bool
		wantSeries int // -1: whole-set mismatch
		wantSample int
		wantReason string
	}{
		{"flip value bit", 3, 17, "flip-value", false, 3, 17, "value"},
		{"shift timestamp", 2, 999, "shift-time", false, 2, 999, "timestamp"},
		{"drop samples", 5, 1500, "drop", false, 5, 1500, "timestamp"},
		{"drop tail", 5, 2050, "drop", false, 5, 2050, "decoded 2050 samples, want 2100"},
		{"staleness marker becomes NaN", 4, 10, "nan-payload", false, 4, 10, "0x7ff0000000000002"},
		{"only timed decode wrong", 1, 0, "none", true, -1, -1, "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &broken{Codec: Ours(chunkenc.EncXOR), bad: &set[tc.series].T[tc.sample], how: tc.how, scanOnly: tc.scanOnly}
			r, err := Measure(c, set, Options{ChunkSamples: 120, Reps: 1})
			if err != nil {
				t.Fatal(err)
			}
			if r.MismatchCount != 1 || len(r.Mismatches) != 1 {
				t.Fatalf("%d mismatches %v, want 1", r.MismatchCount, r.Mismatches)
			}
			m := r.Mismatches[0]
			if m.Series != tc.wantSeries || m.Sample != tc.wantSample || !strings.Contains(m.Reason, tc.wantReason) {
				t.Errorf("mismatch %v, want series %d sample %d reason containing %q", m, tc.wantSeries, tc.wantSample, tc.wantReason)
			}
		})
	}
}

func TestMeasureEncodeError(t *testing.T) {
	set := synthetic()
	c := &broken{Codec: PromXOR(), bad: &set[2].T[500], how: "fail"}
	_, err := Measure(c, set, Options{})
	if err == nil || !strings.Contains(err.Error(), "series 2") {
		t.Fatalf("err %v, want an encode error naming series 2", err)
	}
}

func TestMeasureCapsMismatches(t *testing.T) {
	set := synthetic()
	for range 3 { // 6 series per copy: 24 series, all broken
		set = append(set, set...)
	}
	r, err := Measure(&dropLast{Ours(chunkenc.EncXOR)}, set, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.MismatchCount != len(set) || len(r.Mismatches) != MaxMismatches {
		t.Errorf("%d mismatches, %d kept; want %d, %d kept", r.MismatchCount, len(r.Mismatches), len(set), MaxMismatches)
	}
}

// dropLast loses the last sample of every chunk on untimed decode.
type dropLast struct{ Codec }

func (d *dropLast) Decode(ts []int64, vs []float64, chunk []byte) ([]int64, []float64, error) {
	ts, vs, err := d.Codec.Decode(ts, vs, chunk)
	return ts[:len(ts)-1], vs[:len(vs)-1], err
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"zero", Options{}, true},
		{"max chunk", Options{ChunkSamples: math.MaxUint16, Reps: 1}, true},
		{"chunk too big", Options{ChunkSamples: math.MaxUint16 + 1}, false},
		{"negative chunk", Options{ChunkSamples: -1}, false},
		{"negative reps", Options{Reps: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.opts.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestCut(t *testing.T) {
	mk := func(lens ...int) []Series {
		var set []Series
		for _, n := range lens {
			set = append(set, Series{T: make([]int64, n), V: make([]float64, n)})
		}
		return set
	}
	for _, tc := range []struct {
		name string
		set  []Series
		n    int
		want []int
	}{
		{"empty", nil, 10, nil},
		{"one small", mk(3), 10, []int{1}},
		{"exact", mk(5, 5, 5, 5), 10, []int{2, 4}},
		{"remainder", mk(6, 6, 6), 10, []int{2, 3}},
		{"big series alone", mk(30, 1, 1), 10, []int{1, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cut(tc.set, tc.n); !slices.Equal(got, tc.want) {
				t.Errorf("cut = %v, want %v", got, tc.want)
			}
		})
	}
}
