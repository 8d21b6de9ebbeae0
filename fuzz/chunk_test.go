package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/myelindb/myelin/chunkenc"
)

// addHandSeeds adds the inputs every target starts from, besides the files
// in testdata/fuzz/<Target>/.
func addHandSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	for _, e := range chunkenc.Encodings {
		f.Add([]byte{byte(e)})
		f.Add([]byte{byte(e), 0, 1}) // claims one sample, has none
		f.Add([]byte{byte(e), 0xff, 0xff, 0xff, 0xff})
	}
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Add(bytes.Repeat([]byte{0x00}, 64))
	// A valid one-sample and a valid three-sample XOR chunk.
	f.Add(mustEncode(f, chunkenc.EncXOR, []int64{1000}, []float64{1}))
	f.Add(mustEncode(f, chunkenc.EncXOR, []int64{-5, 10, 15}, []float64{math.NaN(), math.Inf(-1), 0.5}))
}

func mustEncode(tb testing.TB, enc chunkenc.Encoding, ts []int64, vs []float64) []byte {
	tb.Helper()
	b, err := chunkenc.Encode(nil, enc, ts, vs)
	if err != nil {
		tb.Fatalf("encode %d samples as %s: %v", len(ts), enc, err)
	}
	return b
}

// decodeOut holds Decode's output buffers, allocated once so the
// allocation check of FuzzChunkDecode measures only the decoder itself.
// INVARIANT: used by one goroutine at a time (fuzz targets in this package
// do not call t.Parallel).
var decodeOut = struct {
	ts []int64
	vs []float64
}{make([]int64, 0, chunkenc.MaxSamples), make([]float64, 0, chunkenc.MaxSamples)}

// Allocation bound of one Decode of an arbitrary n-byte input that returns
// k samples (into preallocated output):
//
//	allocPerByte*n + allocPerSample*k + allocSlack
//
// allocPerByte: an XOR-like bit stream spends at least 2 bits per sample
// (one for the timestamp, one for the value), so n bytes hold at most 4n
// samples of 16 bytes each; a block decoder that grows its buffers by append
// allocates about twice the final size, and may copy the input: 4*16*2 = 128
// bytes per input byte, doubled for margin. allocPerSample covers encodings
// denser than 2 bits per sample (a constant series may take almost nothing):
// a decoder may spend what it returns, 16 bytes per sample, three times over.
// A block decoder may size its output by the chunk's own sample count
// before decoding (a constant, regular chunk holds 65535 samples in a few
// bytes, so the count cannot be checked against the length first); k is
// therefore the larger of the samples returned and the count that
// NumSamples reads, which is at most MaxSamples: a corrupt count costs at
// most 1 MiB, never more. allocSlack covers the Iterator, an error value
// and runtime noise.
// The rejected alternative, testing.AllocsPerRun, counts allocations rather
// than bytes and so misses one huge make.
const (
	allocPerByte   = 256
	allocPerSample = 48
	allocSlack     = 64 << 10
)

// FuzzChunkDecode feeds arbitrary bytes to every decoding entry point:
// NumSamples, Decode, Iterator.Next and Iterator.Seek. None may panic; the
// iterator stops within MaxSamples+1 calls of Next; Decode allocates within
// the bound above; errors are *chunkenc.CorruptError; and a chunk that
// decodes re-encodes, in every encoding, to the same samples.
func FuzzChunkDecode(f *testing.F) {
	addHandSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		n, nErr := chunkenc.NumSamples(data)
		if nErr == nil && (n < 0 || n > chunkenc.MaxSamples) {
			t.Fatalf("NumSamples = %d, outside [0, %d]", n, chunkenc.MaxSamples)
		}
		checkCorrupt(t, "NumSamples", nErr, len(data))

		// Next to the end.
		var it chunkenc.Iterator
		it.Reset(data)
		nextOK := 0
		for it.Next() {
			nextOK++
			if nextOK > chunkenc.MaxSamples {
				t.Fatalf("Next returned true %d times, more than MaxSamples", nextOK)
			}
			it.At()
		}
		if it.Next() {
			t.Fatalf("Next returned true after returning false")
		}
		itErr := it.Err()
		checkCorrupt(t, "Iterator", itErr, len(data))

		// XOR.Load (the engine's restart path) fails exactly where the
		// iterator does, and a loaded chunk takes appends.
		if enc, err := chunkenc.EncodingOf(data); err == nil && enc == chunkenc.EncXOR {
			var x chunkenc.XOR
			lErr := x.Load(nil, data)
			if (lErr == nil) != (itErr == nil) {
				t.Fatalf("XOR.Load error %v, Iterator error %v", lErr, itErr)
			}
			if lErr == nil && x.NumSamples() != nextOK {
				t.Fatalf("XOR.Load: %d samples, Iterator %d", x.NumSamples(), nextOK)
			}
			if lt, _, ok := x.Last(); lErr == nil && ok && lt < math.MaxInt64 {
				_ = x.Append(lt+1, 1)
			}
		}

		// Decode, with an allocation check.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ts, vs, err := chunkenc.Decode(decodeOut.ts[:0], decodeOut.vs[:0], data)
		runtime.ReadMemStats(&after)
		claimed, _ := chunkenc.NumSamples(data)
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(allocPerByte*len(data)+allocPerSample*max(len(ts), nextOK, claimed)+allocSlack); got > limit {
			t.Fatalf("Decode of %d bytes (%d samples, err %v) allocated %d bytes, limit %d", len(data), len(ts), err, got, limit)
		}
		checkCorrupt(t, "Decode", err, len(data))
		if (err == nil) != (itErr == nil) {
			t.Fatalf("Decode error %v but Iterator error %v", err, itErr)
		}
		if err != nil {
			if len(ts) != 0 || len(vs) != 0 {
				t.Fatalf("Decode failed (%v) but returned %d samples", err, len(ts))
			}
		} else {
			if len(ts) != nextOK || len(vs) != len(ts) {
				t.Fatalf("Decode returned %d timestamps and %d values, Iterator %d samples", len(ts), len(vs), nextOK)
			}
			if nErr != nil || n != len(ts) {
				t.Fatalf("Decode returned %d samples but NumSamples = %d, %v", len(ts), n, nErr)
			}
		}

		// Seek to timestamps taken from the decoded samples, and to the
		// extremes; Seek must never move backwards.
		targets := []int64{math.MinInt64, 0, math.MaxInt64}
		if len(ts) > 0 {
			targets = append(targets, ts[0], ts[len(ts)/2], ts[len(ts)-1])
		}
		for _, target := range targets {
			it.Reset(data)
			if it.Seek(target) {
				st, _ := it.At()
				if err == nil && st < target {
					t.Fatalf("Seek(%d) stopped at %d", target, st)
				}
				if !it.Seek(math.MinInt64) {
					t.Fatalf("Seek(MinInt64) after Seek(%d) returned false", target)
				}
				if st2, _ := it.At(); st2 != st {
					t.Fatalf("Seek(MinInt64) moved from %d to %d", st, st2)
				}
			}
			for i := 0; it.Next(); i++ {
				if i >= chunkenc.MaxSamples {
					t.Fatalf("Next after Seek(%d) did not stop", target)
				}
			}
		}

		if err != nil || len(ts) == 0 {
			return
		}
		// Decoded samples must be encodable: strictly increasing timestamps.
		for i := 1; i < len(ts); i++ {
			if ts[i] <= ts[i-1] {
				t.Fatalf("decoded sample %d at %d after %d: the decoder accepted timestamps that are not strictly increasing", i, ts[i], ts[i-1])
			}
		}
		for _, enc := range chunkenc.Encodings {
			chunk, err := chunkenc.Encode(nil, enc, ts, vs)
			if err != nil {
				t.Fatalf("re-encode %d decoded samples as %s: %v", len(ts), enc, err)
			}
			gotT, gotV, err := chunkenc.Decode(nil, nil, chunk)
			if err != nil {
				t.Fatalf("decode re-encoded %s chunk: %v", enc, err)
			}
			if msg := diffSamples(gotT, gotV, ts, vs); msg != "" {
				t.Fatalf("re-encoded %s chunk: %s", enc, msg)
			}
		}
	})
}

// checkCorrupt fails t unless err is nil or a *chunkenc.CorruptError with an
// offset inside the chunk (or -1).
func checkCorrupt(t *testing.T, op string, err error, chunkLen int) {
	t.Helper()
	if err == nil {
		return
	}
	var ce *chunkenc.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: error %v (%T) is not a *chunkenc.CorruptError", op, err, err)
	}
	if ce.Offset < -1 || ce.Offset > chunkLen {
		t.Fatalf("%s: %v: offset %d outside the %d-byte chunk", op, err, ce.Offset, chunkLen)
	}
}

// FuzzChunkRoundTrip derives a valid sample sequence from the input (see
// deriveSamples), encodes it in every encoding and checks that Decode, the
// Iterator (Next and Seek) and, for EncXOR, the appendable chunk agree with
// it bit for bit.
func FuzzChunkRoundTrip(f *testing.F) {
	addHandSeeds(f)
	addSampleSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, vs := deriveSamples(data)
		if len(ts) == 0 {
			for _, enc := range chunkenc.Encodings {
				if _, err := chunkenc.Encode(nil, enc, nil, nil); !errors.Is(err, chunkenc.ErrEmpty) {
					t.Fatalf("Encode of no samples as %s: error %v, want ErrEmpty", enc, err)
				}
			}
			return
		}
		for _, enc := range chunkenc.Encodings {
			checkRoundTrip(t, enc, ts, vs)
		}
		checkAppender(t, ts, vs)
	})
}

// addSampleSeeds adds hand-written sample sequences, as inputs of
// deriveSamples.
func addSampleSeeds(f *testing.F) {
	for _, s := range []struct {
		ts []int64
		vs []float64
	}{
		{[]int64{0}, []float64{0}},
		{[]int64{math.MinInt64, math.MaxInt64}, []float64{math.Inf(1), math.Inf(-1)}},
		{[]int64{math.MinInt64, -1, 0, 1, math.MaxInt64}, []float64{math.Copysign(0, -1), 0, math.Float64frombits(0x7ff0000000000002), 12.34, math.NaN()}},
		{[]int64{1000, 16000, 31000, 46001, 60999, 76000}, []float64{1, 1, 2, 2, 3, 1e300}},
	} {
		f.Add(appendSamples(nil, s.ts, s.vs))
	}
	// Every mode byte alone, followed by 0xff argument bytes.
	for m := range 256 {
		f.Add(append([]byte{byte(m)}, bytes.Repeat([]byte{0xff}, 16)...))
	}
}

// checkRoundTrip encodes (ts, vs) as enc and checks every way of reading it.
func checkRoundTrip(t *testing.T, enc chunkenc.Encoding, ts []int64, vs []float64) {
	t.Helper()
	prefix := []byte("prefix")
	out, err := chunkenc.Encode(prefix[:len(prefix):len(prefix)], enc, ts, vs)
	if err != nil {
		t.Fatalf("encode %d samples as %s: %v", len(ts), enc, err)
	}
	if string(out[:len(prefix)]) != "prefix" {
		t.Fatalf("Encode as %s overwrote dst: %q", enc, out[:len(prefix)])
	}
	chunk := out[len(prefix):]
	if alone := mustEncode(t, enc, ts, vs); !bytes.Equal(alone, chunk) {
		t.Fatalf("Encode as %s after a prefix differs from Encode into nil", enc)
	}
	if got, err := chunkenc.EncodingOf(chunk); err != nil || got != enc {
		t.Fatalf("EncodingOf(%s chunk) = %v, %v", enc, got, err)
	}
	if n, err := chunkenc.NumSamples(chunk); err != nil || n != len(ts) {
		t.Fatalf("NumSamples(%s chunk) = %d, %v; want %d", enc, n, err, len(ts))
	}

	gotT, gotV, err := chunkenc.Decode([]int64{7}, []float64{7}, chunk)
	if err != nil {
		t.Fatalf("decode %s chunk of %d samples: %v", enc, len(ts), err)
	}
	if gotT[0] != 7 || gotV[0] != 7 {
		t.Fatalf("Decode of %s chunk overwrote the slices' prefix", enc)
	}
	if msg := diffSamples(gotT[1:], gotV[1:], ts, vs); msg != "" {
		t.Fatalf("Decode of %s chunk: %s", enc, msg)
	}

	var it chunkenc.Iterator
	it.Reset(chunk)
	i := 0
	for ; it.Next(); i++ {
		if i >= len(ts) {
			t.Fatalf("%s Iterator: more than %d samples", enc, len(ts))
		}
		if at, av := it.At(); at != ts[i] || !sameFloat(av, vs[i]) {
			t.Fatalf("%s Iterator: sample %d = (%d, %v), want (%d, %v)", enc, i, at, av, ts[i], vs[i])
		}
	}
	if err := it.Err(); err != nil || i != len(ts) {
		t.Fatalf("%s Iterator: %d of %d samples, err %v", enc, i, len(ts), err)
	}

	checkSeek(t, enc, chunk, ts, vs)
}

// seekTargets returns timestamps around the samples: the extremes, the first,
// middle and last samples and their neighbours.
func seekTargets(ts []int64) []int64 {
	var out []int64
	add := func(t int64, d int64) {
		if (d > 0 && t <= math.MaxInt64-d) || (d < 0 && t >= math.MinInt64-d) || d == 0 {
			out = append(out, t+d)
		}
	}
	for _, i := range []int{0, len(ts) / 3, len(ts) / 2, len(ts) - 1} {
		add(ts[i], -1)
		add(ts[i], 0)
		add(ts[i], 1)
	}
	return append(out, math.MinInt64, math.MaxInt64)
}

// checkSeek checks Seek against a linear scan of (ts, vs), from a fresh
// iterator per target and along one iterator with targets in order.
func checkSeek(t *testing.T, enc chunkenc.Encoding, chunk []byte, ts []int64, vs []float64) {
	t.Helper()
	var it chunkenc.Iterator
	firstAtOrAfter := func(target int64) int {
		for j, x := range ts {
			if x >= target {
				return j
			}
		}
		return len(ts)
	}
	check := func(what string, got bool, want int) {
		t.Helper()
		if got != (want < len(ts)) {
			t.Fatalf("%s %s: returned %v, want %v", enc, what, got, want < len(ts))
		}
		if !got {
			return
		}
		if at, av := it.At(); at != ts[want] || !sameFloat(av, vs[want]) {
			t.Fatalf("%s %s: at (%d, %v), want sample %d (%d, %v)", enc, what, at, av, want, ts[want], vs[want])
		}
	}
	targets := seekTargets(ts)
	for _, target := range targets {
		it.Reset(chunk)
		j := firstAtOrAfter(target)
		check(fmt.Sprintf("Seek(%d)", target), it.Seek(target), j)
		if j < len(ts) {
			check(fmt.Sprintf("Next after Seek(%d)", target), it.Next(), j+1)
		}
	}

	// One iterator: Next once, then Seek through the targets in increasing
	// order, with a backwards Seek after each (which must not move).
	it.Reset(chunk)
	check("first Next", it.Next(), 0)
	cur := 0
	for _, target := range sortedUnique(targets) {
		if want := max(cur, firstAtOrAfter(target)); want < len(ts) {
			check(fmt.Sprintf("Seek(%d) from sample %d", target, cur), it.Seek(target), want)
			cur = want
			check(fmt.Sprintf("backwards Seek(MinInt64) at sample %d", cur), it.Seek(math.MinInt64), cur)
			continue
		}
		// The last Seek runs off the end. What Seek returns after that is
		// not specified (see the report on Seek after exhaustion), so stop.
		check(fmt.Sprintf("Seek(%d) past the end", target), it.Seek(target), len(ts))
		break
	}
}

func sortedUnique(xs []int64) []int64 {
	out := append([]int64(nil), xs...)
	for i := 1; i < len(out); i++ { // insertion sort: a dozen elements
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	k := 0
	for i, x := range out {
		if i == 0 || x != out[k-1] {
			out[k] = x
			k++
		}
	}
	return out[:k]
}

// checkAppender appends (ts, vs) to a chunkenc.XOR one sample at a time and
// checks it against Encode(EncXOR): the bytes at the end, and that the
// chunk's bytes decode after the first samples and halfway.
func checkAppender(t *testing.T, ts []int64, vs []float64) {
	t.Helper()
	want := mustEncode(t, chunkenc.EncXOR, ts, vs)
	x := chunkenc.NewXOR(bytes.Repeat([]byte{0xa5}, 16)) // a dirty buffer to reuse
	for i := range ts {
		if err := x.Append(ts[i], vs[i]); err != nil {
			t.Fatalf("XOR.Append sample %d (%d, %v): %v", i, ts[i], vs[i], err)
		}
		if i < 3 || i == len(ts)/2 {
			gotT, gotV, err := chunkenc.Decode(nil, nil, x.Bytes())
			if err != nil {
				t.Fatalf("decode XOR head chunk after %d samples: %v", i+1, err)
			}
			if msg := diffSamples(gotT, gotV, ts[:i+1], vs[:i+1]); msg != "" {
				t.Fatalf("XOR head chunk after %d samples: %s", i+1, msg)
			}
		}
	}
	if !bytes.Equal(x.Bytes(), want) {
		t.Fatalf("XOR.Append of %d samples gave %d bytes %x, Encode(EncXOR) %d bytes %x", len(ts), len(x.Bytes()), x.Bytes(), len(want), want)
	}
	if x.NumSamples() != len(ts) {
		t.Fatalf("XOR.NumSamples = %d, want %d", x.NumSamples(), len(ts))
	}
	last := len(ts) - 1
	if lt, lv, ok := x.Last(); !ok || lt != ts[last] || !sameFloat(lv, vs[last]) {
		t.Fatalf("XOR.Last = (%d, %v, %v), want (%d, %v, true)", lt, lv, ok, ts[last], vs[last])
	}
	if err := x.Append(ts[last], 0); !errors.Is(err, chunkenc.ErrOutOfOrder) {
		t.Fatalf("XOR.Append at the last timestamp: error %v, want ErrOutOfOrder", err)
	}
	if len(ts) == chunkenc.MaxSamples && ts[last] < math.MaxInt64 {
		if err := x.Append(ts[last]+1, 0); !errors.Is(err, chunkenc.ErrFull) {
			t.Fatalf("XOR.Append to a full chunk: error %v, want ErrFull", err)
		}
	}
	if !bytes.Equal(x.Bytes(), want) {
		t.Fatalf("rejected XOR.Append changed the chunk")
	}
}

// sameFloat compares floats bit for bit: NaN payloads and -0 count.
func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// diffSamples describes the first difference between two sample sequences,
// "" if they are equal bit for bit.
func diffSamples(gotT []int64, gotV []float64, wantT []int64, wantV []float64) string {
	if len(gotT) != len(wantT) || len(gotV) != len(wantV) {
		return fmt.Sprintf("got %d/%d timestamps/values, want %d", len(gotT), len(gotV), len(wantT))
	}
	for i := range wantT {
		if gotT[i] != wantT[i] || !sameFloat(gotV[i], wantV[i]) {
			return fmt.Sprintf("sample %d = (%d, %v [%#x]), want (%d, %v [%#x])", i,
				gotT[i], gotV[i], math.Float64bits(gotV[i]), wantT[i], wantV[i], math.Float64bits(wantV[i]))
		}
	}
	return ""
}
