package chunkenc

import (
	"errors"
	"fmt"
	"math"
)

// Encoding names the format of a chunk. It is the first byte of every chunk.
type Encoding uint8

// The encodings. Values are part of the on-disk format: never renumber.
const (
	// EncXOR is Gorilla XOR as in Prometheus: the bytes after the encoding
	// byte are exactly a Prometheus tsdb/chunkenc XOR chunk. Appendable; the
	// head keeps open chunks in it.
	EncXOR Encoding = 1
	// EncPack is Myelin's sealed-chunk encoding: timestamps and values are
	// modelled per chunk (interval + jitter, decimal scaling, deltas) and
	// packed with per-chunk parameters. Write-once: built from all samples
	// of the chunk at seal time.
	EncPack Encoding = 2
	// EncHistPack is Myelin's sealed-chunk encoding of integer native
	// histograms: per-chunk layout runs and one integer column per bucket.
	// Write-once, like EncPack.
	EncHistPack Encoding = 3
	// EncFloatHistPack is EncHistPack for float native histograms: the
	// columns are coded as EncPack codes values.
	EncFloatHistPack Encoding = 4
)

func (e Encoding) String() string {
	switch e {
	case EncXOR:
		return "xor"
	case EncPack:
		return "pack"
	case EncHistPack:
		return "histpack"
	case EncFloatHistPack:
		return "floathistpack"
	}
	return fmt.Sprintf("encoding(%d)", uint8(e))
}

// Encodings lists every encoding of float samples, in numeric order.
var Encodings = []Encoding{EncXOR, EncPack}

// HistogramEncodings lists every encoding of histogram samples, in numeric
// order: EncHistPack holds Histograms, EncFloatHistPack FloatHistograms.
var HistogramEncodings = []Encoding{EncHistPack, EncFloatHistPack}

// IsHistogram reports whether chunks of e hold histogram samples (read with
// a HistogramIterator) rather than float samples (read with an Iterator).
func (e Encoding) IsHistogram() bool { return e == EncHistPack || e == EncFloatHistPack }

// ParseEncoding returns the float encoding with the given String name.
func ParseEncoding(name string) (Encoding, error) {
	for _, e := range Encodings {
		if e.String() == name {
			return e, nil
		}
	}
	return 0, fmt.Errorf("chunkenc: unknown encoding %q", name)
}

var (
	// ErrOutOfOrder is returned when a timestamp is not greater than the
	// previous one in the chunk.
	ErrOutOfOrder = errors.New("chunkenc: timestamps not strictly increasing")
	// ErrFull is returned when a chunk cannot take more samples.
	ErrFull = errors.New("chunkenc: chunk full")
	// ErrEmpty is returned when encoding a chunk of no samples.
	ErrEmpty = errors.New("chunkenc: empty chunk")
)

// CorruptError reports a chunk that cannot be decoded.
type CorruptError struct {
	Enc    Encoding
	Offset int // byte offset in the chunk where decoding failed, -1 if unknown
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("chunkenc: corrupt %s chunk at byte %d: %s", e.Enc, e.Offset, e.Reason)
}

func corrupt(enc Encoding, off int, reason string) error {
	return &CorruptError{Enc: enc, Offset: off, Reason: reason}
}

// MaxSamples is the most samples one chunk holds, in any encoding (the
// XOR header stores the count in 16 bits).
const MaxSamples = 1<<16 - 1

// EncodingOf returns the encoding of a chunk.
func EncodingOf(chunk []byte) (Encoding, error) {
	if len(chunk) == 0 {
		return 0, corrupt(0, 0, "no encoding byte")
	}
	e := Encoding(chunk[0])
	switch e {
	case EncXOR, EncPack, EncHistPack, EncFloatHistPack:
		return e, nil
	}
	return e, corrupt(e, 0, "unknown encoding")
}

// NumSamples returns the number of samples in a chunk without decoding it.
func NumSamples(chunk []byte) (int, error) {
	enc, err := EncodingOf(chunk)
	if err != nil {
		return 0, err
	}
	switch enc {
	case EncXOR:
		return xorNumSamples(chunk)
	case EncPack:
		return packNumSamples(chunk)
	case EncHistPack, EncFloatHistPack:
		return histNumSamples(chunk)
	}
	panic("BUG: unhandled encoding")
}

// checkSamples validates input of an encoder: equal lengths, 1..MaxSamples
// samples, strictly increasing timestamps.
func checkSamples(ts []int64, vs []float64) error {
	if len(ts) != len(vs) {
		return fmt.Errorf("chunkenc: %d timestamps but %d values", len(ts), len(vs))
	}
	if len(ts) == 0 {
		return ErrEmpty
	}
	if len(ts) > MaxSamples {
		return fmt.Errorf("chunkenc: %d samples: %w", len(ts), ErrFull)
	}
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			return fmt.Errorf("chunkenc: sample %d at %d after %d: %w", i, ts[i], ts[i-1], ErrOutOfOrder)
		}
	}
	return nil
}

// Encode appends a sealed chunk of the samples (ts[i], vs[i]) in encoding
// enc to dst and returns the extended slice. Timestamps must be strictly
// increasing; 1 to MaxSamples samples. ts and vs are only read.
func Encode(dst []byte, enc Encoding, ts []int64, vs []float64) ([]byte, error) {
	if err := checkSamples(ts, vs); err != nil {
		return dst, err
	}
	switch enc {
	case EncXOR:
		return appendXOR(dst, ts, vs), nil
	case EncPack:
		return appendPack(dst, ts, vs), nil
	}
	return dst, errUnknownEncoding(enc)
}

// checkDecodes panics unless chunk, just encoded from (ts, vs), decodes to
// exactly those samples, bit for bit. It runs after every encode under the
// invariants build tag: a full decode, too slow for production, and the
// one check that catches any writer and reader drifting apart. It decodes
// with it, reusing its buffers (an Encoder passes its own, so a warm
// Encoder still allocates nothing).
func checkDecodes(it *Iterator, chunk []byte, ts []int64, vs []float64) {
	it.Reset(chunk)
	i := 0
	for ; it.Next(); i++ {
		t, v := it.At()
		if i >= len(ts) || t != ts[i] || math.Float64bits(v) != math.Float64bits(vs[i]) {
			panic(fmt.Sprintf("BUG: %s chunk of %d samples decodes to (%d, %#x) at sample %d", it.enc, len(ts), t, math.Float64bits(v), i))
		}
	}
	if err := it.Err(); err != nil || i != len(ts) {
		panic(fmt.Sprintf("BUG: %s chunk of %d samples decodes to %d: %v", it.enc, len(ts), i, err))
	}
}

func errUnknownEncoding(enc Encoding) error {
	return fmt.Errorf("chunkenc: cannot encode %s", enc)
}

// Decode appends the samples of chunk to ts and vs and returns the extended
// slices. On error the slices are returned as they were passed in.
func Decode(ts []int64, vs []float64, chunk []byte) ([]int64, []float64, error) {
	if enc, err := EncodingOf(chunk); err == nil && enc == EncPack {
		// A block decodes straight into the caller's slices; going through
		// an Iterator would decode into its buffers and copy.
		var d packDecoder
		return d.decode(ts, vs, chunk)
	}
	var it Iterator
	it.Reset(chunk)
	n0 := len(ts)
	for it.Next() {
		t, v := it.At()
		ts = append(ts, t)
		vs = append(vs, v)
	}
	if err := it.Err(); err != nil {
		return ts[:n0], vs[:n0], err
	}
	return ts, vs, nil
}
