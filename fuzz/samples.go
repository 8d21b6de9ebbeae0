package fuzz

import (
	"encoding/binary"
	"math"
)

// maxSamples mirrors chunkenc.MaxSamples; the non-test code of this package
// does not import chunkenc (see doc.go). TestMaxSamples checks they agree.
const maxSamples = 1<<16 - 1

// Timestamp modes: bits 0-2 of a sample's mode byte. "delta" is added to the
// previous timestamp (0 before the first sample); a sum past math.MaxInt64 is
// clamped to it, and once a sample sits at math.MaxInt64 the sequence ends.
const (
	tsSame    = iota // delta = previous delta (15000 before the second sample)
	tsJitter         // delta = previous delta + int8(next byte), at least 1
	tsVarint         // delta = 1 + uvarint (up to 10 bytes): any gap
	tsSeconds        // delta = 1000 * (1 + next byte)
	tsRaw            // t = int64 of the next 8 bytes, big-endian; if not after the previous sample, previous + 1
	tsHuge           // delta = (MaxInt64 - previous) >> (next byte % 64), at least 1: gaps near the int64 limit
	tsOne            // delta = 1
	tsEdge           // delta-of-delta at an XOR bucket edge: see dodEdges
	numTSModes
)

// dodEdges are the boundaries of Prometheus's XOR delta-of-delta buckets
// (14, 17, 20 and 64 bits; the range of an n-bit bucket is
// [-(2^(n-1)-1), 2^(n-1)]); tsEdge adds one of them plus -1, 0 or +1.
var dodEdges = [...]int64{1 << 13, -(1<<13 - 1), 1 << 16, -(1<<16 - 1), 1 << 19, -(1<<19 - 1), 1 << 31, -(1 << 31)}

// Value modes: bits 3-6 of a sample's mode byte (bit 7 is ignored). "prev"
// is the previous value, 0 before the first sample.
const (
	vSame      = iota // prev
	vRaw              // float64 bits of the next 8 bytes, big-endian
	vSmallInt         // float64(int8(next byte))
	vCounter          // prev + next byte
	vDecimal          // int16 of the next 2 bytes / 100, e.g. 12.34
	vNaN              // a NaN with a payload and sign from the next 2 bytes
	vStale            // the Prometheus staleness marker 0x7ff0000000000002
	vPosInf           // +Inf
	vNegInf           // -Inf
	vNegZero          // -0
	vZero             // +0
	vDrift            // prev * (1 + int8(next byte)/1000): a noisy gauge
	vFloat32          // a float32 from the next 4 bytes
	vSpecial          // specials[next byte % len(specials)]
	vFlipBit          // prev with bit (next byte % 64) flipped
	vFlipRange        // prev with a run of bits flipped: width 1+(b1%64), shift b2%64
	numValueModes
)

var specials = [...]float64{
	math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64,
	1, -1, 0.1, 1e-300, 1e300, 1 << 53, 1<<53 + 2, math.Pi, 0.5, 100, 1e9,
	math.Float64frombits(0x0010000000000000), // smallest normal
	math.Float64frombits(0x000fffffffffffff), // largest subnormal
	math.Float64frombits(0x7ff8000000000001), // quiet NaN, payload 1
	math.Float64frombits(0xfff0000000000123), // negative signalling NaN
}

// byteReader hands out the bytes of a fuzz input; past the end it yields
// zeros (ok false), so every input derives to some sequence.
type byteReader struct{ b []byte }

func (r *byteReader) next() (byte, bool) {
	if len(r.b) == 0 {
		return 0, false
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, true
}

func (r *byteReader) u64(n int) uint64 {
	var u uint64
	for range n {
		c, _ := r.next()
		u = u<<8 | uint64(c)
	}
	return u
}

// uvarint reads up to 10 bytes of a little-endian base-128 varint; bits past
// 64 are dropped. It reads canonical varints (binary.AppendUvarint) exactly.
func (r *byteReader) uvarint() uint64 {
	var u uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		c, ok := r.next()
		u |= uint64(c&0x7f) << (7 * i)
		if !ok || c < 0x80 {
			break
		}
	}
	return u
}

// deriveSamples maps any byte string to a valid sample sequence: 0 to
// maxSamples samples with strictly increasing timestamps. Each sample
// consumes one mode byte (timestamp mode in bits 0-2, value mode in bits 3-6)
// and then the argument bytes of its timestamp mode and of its value mode.
// The sequence ends when the input does (a mode byte is missing) or when a
// timestamp reaches math.MaxInt64. appendSamples is an inverse.
func deriveSamples(data []byte) (ts []int64, vs []float64) {
	r := byteReader{b: data}
	var prevT int64
	var prevV float64
	lastDelta := uint64(15000)
	for len(ts) < maxSamples {
		m, ok := r.next()
		if !ok {
			break
		}
		first := len(ts) == 0
		if !first && prevT == math.MaxInt64 {
			break
		}
		// room is how far prevT may advance; the uint64 subtraction is exact
		// for every int64 prevT.
		room := uint64(math.MaxInt64) - uint64(prevT)
		var delta uint64 // >= 1 for every mode but tsRaw
		raw, isRaw := int64(0), false
		switch m & 7 {
		case tsSame:
			delta = lastDelta
		case tsJitter:
			c, _ := r.next()
			delta = atLeastOne(int64(lastDelta) + int64(int8(c)))
		case tsVarint:
			delta = 1 + r.uvarint()
			if delta == 0 { // 1 + MaxUint64
				delta = room
			}
		case tsSeconds:
			c, _ := r.next()
			delta = 1000 * (1 + uint64(c))
		case tsRaw:
			raw, isRaw = int64(r.u64(8)), true
		case tsHuge:
			c, _ := r.next()
			delta = max(room>>(c%64), 1)
		case tsOne:
			delta = 1
		case tsEdge:
			c, _ := r.next()
			e := dodEdges[int(c)%len(dodEdges)] + int64(c/uint8(len(dodEdges)))%3 - 1
			delta = atLeastOne(int64(lastDelta) + e)
		}
		var t int64
		switch {
		case isRaw && (first || raw > prevT):
			t = raw
		case isRaw:
			t = prevT + 1 // prevT < MaxInt64 here
		default:
			t = int64(uint64(prevT) + min(delta, room))
		}
		if !first {
			lastDelta = uint64(t) - uint64(prevT)
		}
		v := deriveValue(&r, (m>>3)%numValueModes, prevV)
		ts = append(ts, t)
		vs = append(vs, v)
		prevT, prevV = t, v
	}
	return ts, vs
}

// atLeastOne returns d as a timestamp delta, 1 if d < 1.
func atLeastOne(d int64) uint64 { return uint64(max(d, 1)) }

func deriveValue(r *byteReader, mode byte, prev float64) float64 {
	switch mode {
	case vSame:
		return prev
	case vRaw:
		return math.Float64frombits(r.u64(8))
	case vSmallInt:
		c, _ := r.next()
		return float64(int8(c))
	case vCounter:
		c, _ := r.next()
		return prev + float64(c)
	case vDecimal:
		return float64(int16(r.u64(2))) / 100
	case vNaN:
		u := r.u64(2)
		return math.Float64frombits(u>>15<<63 | 0x7ff0000000000000 | (u&0x7fff)<<37 | 1)
	case vStale:
		return math.Float64frombits(0x7ff0000000000002)
	case vPosInf:
		return math.Inf(1)
	case vNegInf:
		return math.Inf(-1)
	case vNegZero:
		return math.Copysign(0, -1)
	case vZero:
		return 0
	case vDrift:
		c, _ := r.next()
		return prev * (1 + float64(int8(c))/1000)
	case vFloat32:
		return float64(math.Float32frombits(uint32(r.u64(4))))
	case vSpecial:
		c, _ := r.next()
		return specials[int(c)%len(specials)]
	case vFlipBit:
		c, _ := r.next()
		return math.Float64frombits(math.Float64bits(prev) ^ 1<<(c%64))
	case vFlipRange:
		w, _ := r.next()
		s, _ := r.next()
		mask := uint64(math.MaxUint64) >> (63 - w%64) // 1 to 64 ones
		return math.Float64frombits(math.Float64bits(prev) ^ mask<<(s%64))
	}
	panic("BUG: value mode out of range")
}

// appendSamples appends to dst an input that deriveSamples maps to exactly
// (ts, vs), bit for bit. ts must be strictly increasing and hold at most
// maxSamples samples. It uses three modes only: tsRaw for the first
// timestamp, then tsSame or tsVarint; vSame or vRaw for values (about 2 bytes
// per sample on a regular series with repeated values, up to 11 otherwise).
func appendSamples(dst []byte, ts []int64, vs []float64) []byte {
	lastDelta := uint64(15000)
	var prevV float64
	for i, t := range ts {
		var tsMode byte
		var arg []byte
		switch {
		case i == 0:
			tsMode = tsRaw
			arg = binary.BigEndian.AppendUint64(nil, uint64(t))
		default:
			delta := uint64(t) - uint64(ts[i-1])
			if delta == lastDelta {
				tsMode = tsSame
			} else {
				tsMode = tsVarint
				arg = binary.AppendUvarint(nil, delta-1)
			}
			lastDelta = delta
		}
		vMode := byte(vSame)
		if math.Float64bits(vs[i]) != math.Float64bits(prevV) {
			vMode = vRaw
		}
		dst = append(dst, tsMode|vMode<<3)
		dst = append(dst, arg...)
		if vMode == vRaw {
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(vs[i]))
		}
		prevV = vs[i]
	}
	return dst
}
