package chunkenc

import (
	"encoding/binary"
	"fmt"
)

// bitWriter appends bits, most significant first, to a byte slice. After
// every call the slice holds all bits written so far (the last byte padded
// with zero bits), so a head chunk's bytes are always readable.
//
// INVARIANT: free <= 7, free == 0 if b is empty, and the free low bits of
// the last byte are zero: the writer ORs bits into them (XOR.Load clears
// them for that reason).
type bitWriter struct {
	b    []byte
	free uint8 // unused low bits of the last byte of b, 0..7
}

// checkInvariants panics if w breaks its INVARIANT.
func (w *bitWriter) checkInvariants() {
	if w.free > 7 || (len(w.b) == 0 && w.free != 0) {
		panic(fmt.Sprintf("BUG: bit writer has %d free bits in %d bytes", w.free, len(w.b)))
	}
	if w.free > 0 && w.b[len(w.b)-1]&(1<<w.free-1) != 0 {
		panic(fmt.Sprintf("BUG: bit writer's %d free bits in %#02x are not zero", w.free, w.b[len(w.b)-1]))
	}
}

func (w *bitWriter) writeBit(bit bool) {
	if w.free == 0 {
		w.b = append(w.b, 0)
		w.free = 8
	}
	w.free--
	if bit {
		w.b[len(w.b)-1] |= 1 << w.free
	}
}

// writeBits writes the low n bits of u, 0 <= n <= 64.
func (w *bitWriter) writeBits(u uint64, n uint8) {
	if n < 64 {
		u &= 1<<n - 1
	}
	for n > 0 {
		if w.free == 0 {
			if n >= 8 {
				// Fast path: whole bytes while aligned.
				n -= 8
				w.b = append(w.b, byte(u>>n))
				continue
			}
			w.b = append(w.b, 0)
			w.free = 8
		}
		if n <= w.free {
			w.free -= n
			w.b[len(w.b)-1] |= byte(u << w.free)
			return
		}
		n -= w.free
		w.b[len(w.b)-1] |= byte(u >> n)
		w.free = 0
	}
}

// bitReader reads bits, most significant first. It keeps up to 64 bits
// buffered in buf (MSB-aligned); reading past the end of the input fails
// instead of producing zero bits.
type bitReader struct {
	src []byte // bytes not yet loaded into buf
	buf uint64 // valid bits are the top n
	n   uint8
}

func (r *bitReader) reset(src []byte) {
	r.src, r.buf, r.n = src, 0, 0
}

// refill loads whole bytes until buf holds more than 56 bits or the input
// ends.
func (r *bitReader) refill() {
	if len(r.src) >= 8 {
		v := binary.BigEndian.Uint64(r.src)
		k := (64 - r.n) >> 3 // whole bytes that fit
		r.buf |= v >> r.n
		r.n += k << 3
		r.src = r.src[k:]
		// Bits of the next byte may sit below n; they are the very bits the
		// next refill ORs in at the same place, so they do no harm.
		return
	}
	for r.n <= 56 && len(r.src) > 0 {
		r.buf |= uint64(r.src[0]) << (56 - r.n)
		r.n += 8
		r.src = r.src[1:]
	}
}

func (r *bitReader) readBit() (bool, bool) {
	if r.n == 0 {
		r.refill()
		if r.n == 0 {
			return false, false
		}
	}
	bit := r.buf&(1<<63) != 0
	r.buf <<= 1
	r.n--
	return bit, true
}

// readBits reads n bits, 0 <= n <= 64.
func (r *bitReader) readBits(n uint8) (uint64, bool) {
	if n == 0 {
		return 0, true
	}
	if n <= r.n {
		v := r.buf >> (64 - n)
		r.buf <<= n
		r.n -= n
		return v, true
	}
	// Take what is buffered, then refill for the rest.
	have := r.n
	v := uint64(0)
	if have > 0 {
		v = r.buf >> (64 - have)
	}
	r.buf, r.n = 0, 0
	r.refill()
	rest := n - have
	if rest > r.n {
		return 0, false
	}
	v = v<<rest | r.buf>>(64-rest)
	if rest == 64 {
		r.buf = 0
	} else {
		r.buf <<= rest
	}
	r.n -= rest
	return v, true
}

// readByte reads 8 bits.
func (r *bitReader) readByte() (byte, bool) {
	v, ok := r.readBits(8)
	return byte(v), ok
}
