package chunkenc

import (
	"encoding/binary"
	"math/bits"
)

// Rice codes with an escape. A value u is written as q = u>>k one-bits, a
// zero bit and the low k bits of u, when q < riceEscape. Larger values
// (outliers that would cost a long unary run) are written as riceEscape
// one-bits, 6 bits holding bitlen(u)-1 and then bitlen(u) bits of u, so no
// value costs more than riceEscape+6+64 bits.
const riceEscape = 24

func zigzag(x int64) uint64   { return uint64(x<<1) ^ uint64(x>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func (w *bitWriter) writeRice(u uint64, k uint8) {
	q := u >> k
	if q < riceEscape {
		// q ones, a zero, k low bits: at most 23+1+k bits.
		if q+1+uint64(k) <= 64 {
			w.writeBits((1<<q-1)<<(k+1)|u&(1<<k-1), uint8(q)+1+k)
			return
		}
		w.writeBits(1<<q-1, uint8(q))
		w.writeBit(false)
		w.writeBits(u, k)
		return
	}
	w.writeBits(1<<riceEscape-1, riceEscape)
	n := uint8(bits.Len64(u))
	w.writeBits(uint64(n-1), 6)
	w.writeBits(u, n)
}

func (r *bitReader) readRice(k uint8) (uint64, bool) {
	if r.n < 57 {
		r.refill()
	}
	q := uint8(bits.LeadingZeros64(^r.buf))
	if q < riceEscape && q+1+k <= r.n {
		r.buf <<= q + 1
		r.n -= q + 1
		u := uint64(q) << k
		if k > 0 {
			u |= r.buf >> (64 - k)
			r.buf <<= k
			r.n -= k
		}
		return u, true
	}
	// Slow path: near the end of the input, escapes and wide k.
	q = 0
	for q < riceEscape {
		bit, ok := r.readBit()
		if !ok {
			return 0, false
		}
		if !bit {
			lo, ok := r.readBits(k)
			return uint64(q)<<k | lo, ok
		}
		q++
	}
	n, ok := r.readBits(6)
	if !ok {
		return 0, false
	}
	return r.readBits(uint8(n) + 1)
}

// writeUvarint writes u in the byte-wise uvarint format into the bit stream.
func (w *bitWriter) writeUvarint(u uint64) {
	for u >= 0x80 {
		w.writeBits(u&0x7f|0x80, 8)
		u >>= 7
	}
	w.writeBits(u, 8)
}

func (r *bitReader) readUvarint() (uint64, bool) {
	// Fast path: a varint within the buffered bits, read from them in
	// place (a pack chunk's header has about four, of up to 6 bytes; on a
	// store of short chunks the header was a third of their decoding).
	// Anything else, from the same state, byte by byte.
	if r.n < 57 {
		r.refill()
	}
	buf, n := r.buf, r.n
	var u uint64
	for i := 0; n >= 8 && i < 9; i++ {
		c := buf >> 56
		buf <<= 8
		n -= 8
		u |= (c & 0x7f) << (7 * i)
		if c < 0x80 {
			r.buf, r.n = buf, n
			return u, true
		}
	}
	return r.readUvarintBytes()
}

// readUvarintBytes is readUvarint a byte at a time.
func (r *bitReader) readUvarintBytes() (uint64, bool) {
	var u uint64
	for i := 0; i < 10; i++ {
		c, ok := r.readByte()
		if !ok || (i == 9 && c > 1) {
			return 0, false
		}
		u |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return u, true
		}
	}
	return 0, false
}

func (w *bitWriter) writeVarint(x int64) { w.writeUvarint(zigzag(x)) }

func (r *bitReader) readVarint() (int64, bool) {
	u, ok := r.readUvarint()
	return unzigzag(u), ok
}

// readRices fills dst with len(dst) zigzagged Rice(k) codes, decoded: the
// ints stream kind rice, the bulk of a pack chunk's decoding. It is
// readRice in one loop over the reader's state held in locals (readRice
// is too large to inline, and its calls and the stores of buf and n
// through r were half the decoder's time: 2x faster on counters, see
// BenchmarkReadRices); codes near the end of the input, escapes and wide
// k go through readRice.
func (r *bitReader) readRices(dst []int64, k uint8) bool {
	buf, n, src := r.buf, r.n, r.src
	for i := range dst {
		if n < 57 && len(src) >= 8 {
			buf |= binary.BigEndian.Uint64(src) >> n
			w := (64 - n) >> 3
			n += w << 3
			src = src[w:]
		}
		q := uint8(bits.LeadingZeros64(^buf))
		if q < riceEscape && q+1+k <= n {
			buf <<= q + 1
			// A shift by 64 or more gives 0 in Go: k == 0 needs no branch.
			u := uint64(q)<<k | buf>>(64-k)
			buf <<= k
			n -= q + 1 + k
			dst[i] = unzigzag(u)
			continue
		}
		r.buf, r.n, r.src = buf, n, src
		u, ok := r.readRice(k)
		if !ok {
			return false
		}
		dst[i] = unzigzag(u)
		buf, n, src = r.buf, r.n, r.src
	}
	r.buf, r.n, r.src = buf, n, src
	return true
}
