package chunkmeasure

import (
	"errors"
	"fmt"

	promchunkenc "github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/chunkenc"
)

// Codec is one chunk encoding under measurement. A Codec keeps reusable
// buffers and iterators: it is not safe for concurrent use.
type Codec interface {
	// Name is the encoding column of a result row, e.g. "xor" or "prom-xor".
	Name() string
	// Encode appends one chunk holding the samples (ts[i], vs[i]) to dst
	// and returns the extended slice. ts and vs are only read.
	Encode(dst []byte, ts []int64, vs []float64) ([]byte, error)
	// Scan reads every sample of chunk through the encoding's iterator, as a
	// query does, and returns how many there were and the Checksum of them.
	// This is the timed decode.
	Scan(chunk []byte) (n int, sum Checksum, err error)
	// Decode appends the samples of chunk to ts and vs and returns the
	// extended slices. It is the untimed round-trip check.
	Decode(ts []int64, vs []float64, chunk []byte) ([]int64, []float64, error)
}

// Ours returns the Codec of a chunkenc encoding, named enc.String().
func Ours(enc chunkenc.Encoding) Codec { return &ours{enc: enc} }

type ours struct {
	enc chunkenc.Encoding
	e   chunkenc.Encoder // reused, as the engine reuses one per goroutine
	it  chunkenc.Iterator
}

func (c *ours) Name() string { return c.enc.String() }

func (c *ours) Encode(dst []byte, ts []int64, vs []float64) ([]byte, error) {
	return c.e.Encode(dst, c.enc, ts, vs)
}

func (c *ours) Scan(chunk []byte) (int, Checksum, error) {
	var sum Checksum
	n := 0
	c.it.Reset(chunk)
	for c.it.Next() {
		sum.Add(c.it.At())
		n++
	}
	return n, sum, c.it.Err()
}

func (c *ours) Decode(ts []int64, vs []float64, chunk []byte) ([]int64, []float64, error) {
	c.it.Reset(chunk)
	for c.it.Next() {
		t, v := c.it.At()
		ts = append(ts, t)
		vs = append(vs, v)
	}
	return ts, vs, c.it.Err()
}

// PromXORName is the name of the PromXOR codec.
const PromXORName = "prom-xor"

// PromXOR returns the baseline: Prometheus's tsdb/chunkenc XOR float chunk
// (module v0.314.0), named PromXORName. A chunk is exactly
// XORChunk.Bytes(): 2-byte big-endian sample count, then the bit stream
// padded to a byte.
//
// Encode reuses one chunk buffer and copies the bytes out, so the baseline
// times Prometheus's bit-level appender rather than the allocation of a
// fresh 128-byte chunk per 120 samples that NewXORChunk would add (our
// codecs append into a reused buffer too). Appender() still allocates the
// appender per chunk, as in Prometheus. Scan reuses the iterator through
// chunk.Iterator(it), as Prometheus's queriers do.
func PromXOR() Codec { return &promXOR{} }

type promXOR struct {
	enc     promchunkenc.XORChunk // chunk being encoded
	scratch []byte                // enc's stream, kept to reuse its capacity
	dec     promchunkenc.XORChunk // chunk being read
	it      promchunkenc.Iterator // reused by dec.Iterator
}

func (c *promXOR) Name() string { return PromXORName }

func (c *promXOR) Encode(dst []byte, ts []int64, vs []float64) ([]byte, error) {
	if len(ts) != len(vs) {
		return dst, fmt.Errorf("prom-xor: %d timestamps but %d values", len(ts), len(vs))
	}
	// The header holds the count in 16 bits; Append would wrap past it.
	if len(ts) == 0 || len(ts) > 1<<16-1 {
		return dst, fmt.Errorf("prom-xor: cannot encode %d samples in one chunk", len(ts))
	}
	c.enc.Reset(append(c.scratch[:0], 0, 0)) // empty chunk: zero sample count
	app, err := c.enc.Appender()
	if err != nil {
		return dst, fmt.Errorf("prom-xor: appender: %w", err)
	}
	for i, t := range ts {
		app.Append(0, t, vs[i])
	}
	b := c.enc.Bytes()
	c.scratch = b[:0]
	return append(dst, b...), nil
}

func (c *promXOR) Scan(chunk []byte) (int, Checksum, error) {
	var sum Checksum
	n := 0
	c.dec.Reset(chunk)
	c.it = c.dec.Iterator(c.it)
	for {
		switch c.it.Next() {
		case promchunkenc.ValFloat:
			sum.Add(c.it.At())
			n++
			continue
		case promchunkenc.ValNone:
		default:
			return n, sum, errNotFloat
		}
		return n, sum, c.it.Err()
	}
}

func (c *promXOR) Decode(ts []int64, vs []float64, chunk []byte) ([]int64, []float64, error) {
	c.dec.Reset(chunk)
	c.it = c.dec.Iterator(c.it)
	for {
		switch c.it.Next() {
		case promchunkenc.ValFloat:
			t, v := c.it.At()
			ts = append(ts, t)
			vs = append(vs, v)
			continue
		case promchunkenc.ValNone:
		default:
			return ts, vs, errNotFloat
		}
		return ts, vs, c.it.Err()
	}
}

var errNotFloat = errors.New("prom-xor: iterator returned a non-float sample")
