// Package histdata reads and writes the native-histogram data set
// (chunkenc/testdata/histograms.hd.gz), the input of the histogram chunk
// encoding tests and benchmarks. bench/cmd/histdata builds the file from
// the classic histograms of the shared data (see README, "Native histogram
// data set"); this package only knows the file format.
//
// # Format: histdata v1
//
// A gzip stream of:
//
//	"myelin-histdata v1\n"
//	per series:
//	  uvarint len, the labels as Prometheus prints them ({a="b", ...})
//	  byte    kind: 0 integer histograms, 1 float histograms
//	  uvarint n, the sample count
//	  n samples:
//	    varint  timestamp in ms, as a delta to the previous one (the first
//	            absolute)
//	    byte    bit 0: same layout as the previous sample (always 0 for
//	            the first); bits 1-2 the counter reset hint
//	    layout, unless the same:
//	      varint schema, 8 bytes zero threshold, uvarint count + 8 bytes
//	      per custom value, positive then negative spans (uvarint count,
//	      per span varint offset, uvarint length)
//	    counts: zero count, count, then the positive and negative buckets.
//	      Integer: each a varint difference to the same field of the
//	      previous sample when the layout is the same, else the value
//	      (buckets as Histogram holds them, deltas within the sample).
//	      Float: each a uvarint of its bits XOR those of the same field of
//	      the previous sample when the layout is the same, else the bits.
//	    8 bytes sum (float bits XOR the previous sum's bits)
//
// Fixed-width fields are little-endian. The previous-sample differences
// only make gzip's job easy: every field is exact, floats bit for bit.
package histdata

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/myelindb/myelin/chunkenc"
)

const magic = "myelin-histdata v1\n"

// Kinds of series.
const (
	KindInt   = 0
	KindFloat = 1
)

// Series is one histogram series: H for KindInt, FH for KindFloat.
type Series struct {
	Labels string
	Kind   byte
	T      []int64
	H      []chunkenc.Histogram
	FH     []chunkenc.FloatHistogram
}

// Len returns the number of samples.
func (s *Series) Len() int { return len(s.T) }

// Write writes the series as a histdata v1 file to w.
func Write(w io.Writer, series []Series) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(zw)
	var b []byte
	b = append(b, magic...)
	for si := range series {
		s := &series[si]
		b = binary.AppendUvarint(b, uint64(len(s.Labels)))
		b = append(b, s.Labels...)
		b = append(b, s.Kind)
		b = binary.AppendUvarint(b, uint64(len(s.T)))
		prevT := int64(0)
		for i, t := range s.T {
			b = binary.AppendVarint(b, t-prevT)
			prevT = t
			var cur, prev *chunkenc.FloatHistogram
			var hcur, hprev *chunkenc.Histogram
			if s.Kind == KindInt {
				hcur = &s.H[i]
				if i > 0 {
					hprev = &s.H[i-1]
				}
				cur = &chunkenc.FloatHistogram{CounterResetHint: hcur.CounterResetHint, Schema: hcur.Schema, ZeroThreshold: hcur.ZeroThreshold,
					PositiveSpans: hcur.PositiveSpans, NegativeSpans: hcur.NegativeSpans, CustomValues: hcur.CustomValues, Sum: hcur.Sum}
				if hprev != nil {
					prev = &chunkenc.FloatHistogram{Schema: hprev.Schema, ZeroThreshold: hprev.ZeroThreshold,
						PositiveSpans: hprev.PositiveSpans, NegativeSpans: hprev.NegativeSpans, CustomValues: hprev.CustomValues, Sum: hprev.Sum}
				}
			} else {
				cur = &s.FH[i]
				if i > 0 {
					prev = &s.FH[i-1]
				}
			}
			same := prev != nil && sameLayout(cur, prev)
			flag := byte(cur.CounterResetHint) << 1
			if same {
				flag |= 1
			}
			b = append(b, flag)
			if !same {
				b = binary.AppendVarint(b, int64(cur.Schema))
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(cur.ZeroThreshold))
				b = binary.AppendUvarint(b, uint64(len(cur.CustomValues)))
				for _, v := range cur.CustomValues {
					b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
				}
				b = appendSpans(b, cur.PositiveSpans)
				b = appendSpans(b, cur.NegativeSpans)
			}
			if s.Kind == KindInt {
				ints := func(h *chunkenc.Histogram) []int64 {
					return append(append([]int64{int64(h.ZeroCount), int64(h.Count)}, h.PositiveBuckets...), h.NegativeBuckets...)
				}
				c := ints(hcur)
				var p []int64
				if same {
					p = ints(hprev)
				}
				for j, v := range c {
					if same {
						v -= p[j]
					}
					b = binary.AppendVarint(b, v)
				}
			} else {
				floats := func(h *chunkenc.FloatHistogram) []float64 {
					return append(append([]float64{h.ZeroCount, h.Count}, h.PositiveBuckets...), h.NegativeBuckets...)
				}
				c := floats(cur)
				var p []float64
				if same {
					p = floats(prev)
				}
				for j, v := range c {
					u := math.Float64bits(v)
					if same {
						u ^= math.Float64bits(p[j])
					}
					b = binary.AppendUvarint(b, u)
				}
			}
			ps := uint64(0)
			if prev != nil {
				ps = math.Float64bits(prev.Sum)
			}
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(cur.Sum)^ps)
			if len(b) > 1<<16 {
				if _, err := bw.Write(b); err != nil {
					return err
				}
				b = b[:0]
			}
		}
	}
	if _, err := bw.Write(b); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

func sameLayout(a, b *chunkenc.FloatHistogram) bool {
	if a.Schema != b.Schema || math.Float64bits(a.ZeroThreshold) != math.Float64bits(b.ZeroThreshold) ||
		len(a.CustomValues) != len(b.CustomValues) || len(a.PositiveSpans) != len(b.PositiveSpans) || len(a.NegativeSpans) != len(b.NegativeSpans) {
		return false
	}
	for i := range a.CustomValues {
		if math.Float64bits(a.CustomValues[i]) != math.Float64bits(b.CustomValues[i]) {
			return false
		}
	}
	for i := range a.PositiveSpans {
		if a.PositiveSpans[i] != b.PositiveSpans[i] {
			return false
		}
	}
	for i := range a.NegativeSpans {
		if a.NegativeSpans[i] != b.NegativeSpans[i] {
			return false
		}
	}
	return true
}

func appendSpans(b []byte, ss []chunkenc.Span) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = binary.AppendVarint(b, int64(s.Offset))
		b = binary.AppendUvarint(b, uint64(s.Length))
	}
	return b
}

// ReadFile reads a histdata v1 file.
func ReadFile(path string) (_ []Series, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	series, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return series, nil
}

// Read reads a histdata v1 stream.
func Read(r io.Reader) ([]Series, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	if len(data) < len(magic) || string(data[:len(magic)]) != magic {
		return nil, errors.New("histdata: not a histdata v1 file")
	}
	d := decoder{b: data[len(magic):]}
	var series []Series
	for len(d.b) > 0 && d.err == nil {
		var s Series
		s.Labels = string(d.bytes(int(d.uvarint())))
		s.Kind = d.byte()
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			return nil, errors.New("histdata: bad sample count")
		}
		t := int64(0)
		for i := 0; i < int(n) && d.err == nil; i++ {
			t += d.varint()
			s.T = append(s.T, t)
			flag := d.byte()
			same := flag&1 == 1 && i > 0
			var l chunkenc.FloatHistogram
			if same {
				if s.Kind == KindInt {
					p := &s.H[i-1]
					l = chunkenc.FloatHistogram{Schema: p.Schema, ZeroThreshold: p.ZeroThreshold, CustomValues: p.CustomValues, PositiveSpans: p.PositiveSpans, NegativeSpans: p.NegativeSpans}
				} else {
					l = s.FH[i-1]
				}
			} else {
				l.Schema = int32(d.varint())
				l.ZeroThreshold = math.Float64frombits(d.uint64())
				ncv := d.uvarint()
				if ncv > uint64(len(d.b)) {
					return nil, errors.New("histdata: bad custom value count")
				}
				l.CustomValues = nil
				for range ncv {
					l.CustomValues = append(l.CustomValues, math.Float64frombits(d.uint64()))
				}
				l.PositiveSpans = d.spans()
				l.NegativeSpans = d.spans()
			}
			np, nn := spansLen(l.PositiveSpans), spansLen(l.NegativeSpans)
			if np+nn > uint64(len(d.b)) {
				return nil, errors.New("histdata: bad span lengths")
			}
			hint := chunkenc.CounterResetHint(flag >> 1 & 3)
			prevSum := uint64(0)
			if s.Kind == KindInt {
				h := chunkenc.Histogram{CounterResetHint: hint, Schema: l.Schema, ZeroThreshold: l.ZeroThreshold,
					CustomValues: l.CustomValues, PositiveSpans: l.PositiveSpans, NegativeSpans: l.NegativeSpans}
				vals := make([]int64, 2+np+nn)
				for j := range vals {
					vals[j] = d.varint()
				}
				if i > 0 {
					p := &s.H[i-1]
					prevSum = math.Float64bits(p.Sum)
					if same {
						prevVals := append(append([]int64{int64(p.ZeroCount), int64(p.Count)}, p.PositiveBuckets...), p.NegativeBuckets...)
						for j := range vals {
							vals[j] += prevVals[j]
						}
					}
				}
				h.ZeroCount, h.Count = uint64(vals[0]), uint64(vals[1])
				h.PositiveBuckets = vals[2 : 2+np : 2+np]
				h.NegativeBuckets = vals[2+np:]
				h.Sum = math.Float64frombits(d.uint64() ^ prevSum)
				s.H = append(s.H, h)
			} else {
				h := l
				h.CounterResetHint = hint
				vals := make([]uint64, 2+np+nn)
				for j := range vals {
					vals[j] = d.uvarint()
				}
				if i > 0 {
					p := &s.FH[i-1]
					prevSum = math.Float64bits(p.Sum)
					if same {
						prevVals := append(append([]float64{p.ZeroCount, p.Count}, p.PositiveBuckets...), p.NegativeBuckets...)
						for j := range vals {
							vals[j] ^= math.Float64bits(prevVals[j])
						}
					}
				}
				fs := make([]float64, len(vals))
				for j, u := range vals {
					fs[j] = math.Float64frombits(u)
				}
				h.ZeroCount, h.Count = fs[0], fs[1]
				h.PositiveBuckets = fs[2 : 2+np : 2+np]
				h.NegativeBuckets = fs[2+np:]
				h.Sum = math.Float64frombits(d.uint64() ^ prevSum)
				s.FH = append(s.FH, h)
			}
		}
		if d.err != nil {
			break
		}
		if s.Kind > KindFloat {
			return nil, fmt.Errorf("histdata: series %s: kind %d", s.Labels, s.Kind)
		}
		series = append(series, s)
	}
	if d.err != nil {
		return nil, d.err
	}
	return series, nil
}

func spansLen(ss []chunkenc.Span) uint64 {
	n := uint64(0)
	for _, s := range ss {
		n += uint64(s.Length)
	}
	return n
}

// decoder reads the fields; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("histdata: truncated file")

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	u, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[k:]
	return u
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = errTruncated
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) byte() byte {
	b := d.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) uint64() uint64 {
	b := d.bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (d *decoder) spans() []chunkenc.Span {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	var ss []chunkenc.Span
	for range n {
		ss = append(ss, chunkenc.Span{Offset: int32(d.varint()), Length: uint32(d.uvarint())})
	}
	return ss
}
