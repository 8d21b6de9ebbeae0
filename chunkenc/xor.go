package chunkenc

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/myelindb/myelin/internal/invariants"
)

// XOR is an appendable chunk in the EncXOR encoding. The zero value is not
// usable; create one with NewXOR or Reset.
//
// Memory: the struct is 72 bytes plus the chunk bytes (about 1.1 bytes per
// sample on real data); it is what the head keeps per active series.
//
// The fields are the writer's state, what the next sample is coded
// against; checkInvariants checks them after every append under the
// invariants build tag.
type XOR struct {
	w   bitWriter // w.b[hdr] is the encoding byte, w.b[hdr+1:hdr+3] the count
	hdr int
	// INVARIANT: with n >= 1 samples, t and v are the last sample's; with
	// n >= 2, tDelta is t minus the timestamp before it (wrapping uint64),
	// never 0: timestamps strictly increase.
	t      int64   // last timestamp
	tDelta uint64  // last timestamp delta
	v      float64 // last value
	// INVARIANT: leading is 0xff (trailing 0) until a value differs from
	// the one before it; from then on it is the window of the last new
	// window code: leading <= 31 (its field is 5 bits) and leading +
	// trailing < 64 (the window holds at least one bit).
	leading  uint8 // leading zeros of the current XOR window; 0xff: none yet
	trailing uint8
	// n mirrors the count in the header, so asking for it does not touch
	// the chunk's bytes (the head asks for every series on every apply).
	// INVARIANT: n == the header's count <= MaxSamples.
	n uint16
}

// checkInvariants panics if x breaks an INVARIANT of XOR. It reads a few
// fields and the header; it runs after every append under the invariants
// build tag.
func (x *XOR) checkInvariants() {
	x.w.checkInvariants()
	if len(x.w.b) < x.hdr+xorHeaderLen || x.w.b[x.hdr] != byte(EncXOR) {
		panic(fmt.Sprintf("BUG: XOR chunk of %d bytes has no header at %d", len(x.w.b), x.hdr))
	}
	if c := binary.BigEndian.Uint16(x.w.b[x.hdr+1:]); c != x.n {
		panic(fmt.Sprintf("BUG: XOR chunk header counts %d samples, the appender %d", c, x.n))
	}
	if x.n >= 2 && x.tDelta == 0 {
		panic(fmt.Sprintf("BUG: XOR chunk of %d samples has a zero timestamp delta", x.n))
	}
	if x.leading == 0xff && x.trailing != 0 || x.leading != 0xff && (x.leading > 31 || x.leading+x.trailing >= 64) {
		panic(fmt.Sprintf("BUG: XOR window with %d leading and %d trailing zeros", x.leading, x.trailing))
	}
}

const xorHeaderLen = 3 // encoding byte + uint16 sample count

// NewXOR returns an empty XOR chunk that appends into buf[:0] (which may be
// nil).
func NewXOR(buf []byte) *XOR {
	var x XOR
	x.Reset(buf)
	return &x
}

// Reset empties the chunk, reusing buf[:0] for its bytes.
func (x *XOR) Reset(buf []byte) {
	*x = XOR{w: bitWriter{b: append(buf[:0], byte(EncXOR), 0, 0)}, leading: 0xff}
}

// Load makes x the appendable form of the EncXOR chunk, copied into
// buf[:0]: later appends continue it byte for byte as if its samples had
// been appended to x. It decodes the chunk once to recover the appender's
// state; re-appending the decoded samples cost 40% more when the engine
// restores its open chunks at start.
func (x *XOR) Load(buf, chunk []byte) error {
	if len(chunk) > 0 && chunk[0] != byte(EncXOR) {
		// The decoders dispatch on this byte; Load is handed the bytes
		// directly (a stored open chunk), so it checks it itself.
		return corrupt(EncXOR, 0, fmt.Sprintf("encoding byte %d, not EncXOR", chunk[0]))
	}
	var it xorIter
	if err := it.reset(chunk); err != nil {
		return err
	}
	window := false // whether the writer has chosen an XOR window yet
	prev := uint64(0)
	for {
		ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		u := math.Float64bits(it.v)
		// The writer's first non-zero XOR after the first sample opens
		// a window; until then its leading is 0xff.
		window = window || (it.i > 1 && u != prev)
		prev = u
	}
	payload := len(chunk) - xorHeaderLen
	used := payload*8 - len(it.r.src)*8 - int(it.r.n) // bits read
	nbytes := (used + 7) / 8
	*x = XOR{
		w:        bitWriter{b: append(buf[:0], chunk[:xorHeaderLen+nbytes]...), free: uint8(nbytes*8 - used)},
		t:        it.t,
		tDelta:   it.tDelta,
		v:        it.v,
		leading:  it.leading,
		trailing: it.trailing,
		n:        uint16(it.total),
	}
	if !window {
		// The state of a writer that has not opened a window. A chunk of
		// another writer may have opened one for a value that did not
		// change (a window code of zero bits); ours never does, and what
		// it appends reads the same either way (a new window code).
		x.leading, x.trailing = 0xff, 0
	}
	// The writer ORs bits into the last byte: clear what follows the
	// last bit read (zero in every chunk we wrote).
	if x.w.free > 0 {
		x.w.b[len(x.w.b)-1] &^= 1<<x.w.free - 1
	}
	if invariants.Enabled {
		x.checkInvariants()
	}
	return nil
}

// NumSamples returns the number of samples appended.
func (x *XOR) NumSamples() int { return int(x.n) }

// Bytes returns the chunk's encoded bytes, a valid EncXOR chunk. The slice
// aliases the chunk's buffer: it is valid until the next Append or Reset.
func (x *XOR) Bytes() []byte { return x.w.b[x.hdr:] }

// Last returns the newest sample; ok is false if the chunk is empty.
func (x *XOR) Last() (t int64, v float64, ok bool) {
	return x.t, x.v, x.NumSamples() > 0
}

// Append adds a sample. The timestamp must be greater than the last one.
func (x *XOR) Append(t int64, v float64) error {
	n := x.NumSamples()
	if n >= MaxSamples {
		return ErrFull
	}
	if n > 0 && t <= x.t {
		return ErrOutOfOrder
	}
	x.append(n, t, v)
	return nil
}

// append writes sample number n without checks: Append and appendXOR
// have made them.
func (x *XOR) append(n int, t int64, v float64) {
	if invariants.Enabled && (n != int(x.n) || n >= MaxSamples || n > 0 && t <= x.t) {
		panic(fmt.Sprintf("BUG: XOR append of sample %d at %d to %d samples ending at %d", n, t, x.n, x.t))
	}
	var buf [binary.MaxVarintLen64]byte
	switch n {
	case 0:
		for _, c := range buf[:binary.PutVarint(buf[:], t)] {
			x.w.writeBits(uint64(c), 8)
		}
		x.w.writeBits(math.Float64bits(v), 64)
	case 1:
		x.tDelta = uint64(t - x.t)
		for _, c := range buf[:binary.PutUvarint(buf[:], x.tDelta)] {
			x.w.writeBits(uint64(c), 8)
		}
		x.writeValue(v)
	default:
		delta := uint64(t - x.t)
		dod := int64(delta - x.tDelta)
		x.tDelta = delta
		switch {
		case dod == 0:
			x.w.writeBit(false)
		case fitsDoD(dod, 14):
			x.w.writeBits(0b10, 2)
			x.w.writeBits(uint64(dod), 14)
		case fitsDoD(dod, 17):
			x.w.writeBits(0b110, 3)
			x.w.writeBits(uint64(dod), 17)
		case fitsDoD(dod, 20):
			x.w.writeBits(0b1110, 4)
			x.w.writeBits(uint64(dod), 20)
		default:
			x.w.writeBits(0b1111, 4)
			x.w.writeBits(uint64(dod), 64)
		}
		x.writeValue(v)
	}
	x.t, x.v = t, v
	x.n = uint16(n + 1)
	binary.BigEndian.PutUint16(x.w.b[x.hdr+1:], x.n)
	if invariants.Enabled {
		x.checkInvariants()
	}
}

// fitsDoD reports whether dod is in the range Prometheus stores in an
// nbits-wide bucket: [-(2^(nbits-1)-1), 2^(nbits-1)]. The asymmetric range
// is Prometheus's; we keep it to stay byte-compatible.
func fitsDoD(dod int64, nbits uint8) bool {
	return -(int64(1)<<(nbits-1)-1) <= dod && dod <= int64(1)<<(nbits-1)
}

func (x *XOR) writeValue(v float64) {
	writeXORValue(&x.w, math.Float64bits(v)^math.Float64bits(x.v), &x.leading, &x.trailing)
}

// writeXORValue writes the XOR delta of a value against the previous one,
// reusing the window (leading, trailing) when it fits. leading 0xff means no
// window yet.
func writeXORValue(w *bitWriter, delta uint64, leading, trailing *uint8) {
	if delta == 0 {
		w.writeBit(false)
		return
	}
	w.writeBit(true)
	l := uint8(bits.LeadingZeros64(delta))
	t := uint8(bits.TrailingZeros64(delta))
	if l >= 32 { // the field is 5 bits wide
		l = 31
	}
	if *leading != 0xff && l >= *leading && t >= *trailing {
		w.writeBit(false)
		w.writeBits(delta>>*trailing, 64-*leading-*trailing)
		return
	}
	*leading, *trailing = l, t
	w.writeBit(true)
	w.writeBits(uint64(l), 5)
	sig := 64 - l - t // 64 is written as 0 in 6 bits
	w.writeBits(uint64(sig), 6)
	w.writeBits(delta>>t, sig)
}

// xorValueBits is the number of bits writeXORValue writes, updating the
// window the same way.
func xorValueBits(delta uint64, leading, trailing *uint8) int {
	if delta == 0 {
		return 1
	}
	l := uint8(bits.LeadingZeros64(delta))
	t := uint8(bits.TrailingZeros64(delta))
	if l >= 32 {
		l = 31
	}
	if *leading != 0xff && l >= *leading && t >= *trailing {
		return 2 + int(64-*leading-*trailing)
	}
	*leading, *trailing = l, t
	return 2 + 5 + 6 + int(64-l-t)
}

// readXORValue reads what writeXORValue wrote and returns the new value
// bits.
func readXORValue(r *bitReader, prev uint64, leading, trailing *uint8) (uint64, bool) {
	if r.n == 0 {
		r.refill()
	}
	if r.n > 0 && r.buf>>63 == 0 { // fast path: unchanged value
		r.buf <<= 1
		r.n--
		return prev, true
	}
	bit, ok := r.readBit()
	if !ok {
		return 0, false
	}
	if !bit {
		return prev, true
	}
	bit, ok = r.readBit()
	if !ok {
		return 0, false
	}
	if bit {
		l, ok1 := r.readBits(5)
		s, ok2 := r.readBits(6)
		if !ok1 || !ok2 {
			return 0, false
		}
		if s == 0 {
			s = 64
		}
		if l+s > 64 {
			return 0, false
		}
		*leading, *trailing = uint8(l), uint8(64-l-s)
	}
	u, ok := r.readBits(64 - *leading - *trailing)
	if !ok {
		return 0, false
	}
	return prev ^ u<<*trailing, true
}

// appendXOR encodes checked samples as one EncXOR chunk appended to dst.
func appendXOR(dst []byte, ts []int64, vs []float64) []byte {
	x := XOR{w: bitWriter{b: append(dst, byte(EncXOR), 0, 0)}, hdr: len(dst), leading: 0xff}
	for i := range ts {
		x.append(i, ts[i], vs[i])
	}
	if invariants.Enabled {
		var it Iterator // decoding XOR needs no buffers: no allocation
		checkDecodes(&it, x.w.b[len(dst):], ts, vs)
	}
	return x.w.b
}

func xorNumSamples(chunk []byte) (int, error) {
	if len(chunk) < xorHeaderLen {
		return 0, corrupt(EncXOR, len(chunk), "short header")
	}
	return int(binary.BigEndian.Uint16(chunk[1:])), nil
}

// xorIter decodes an EncXOR chunk one sample at a time.
type xorIter struct {
	r        bitReader
	chunk    []byte
	total    int // samples in the chunk
	i        int // samples read
	t        int64
	tDelta   uint64
	v        float64
	leading  uint8
	trailing uint8
}

func (it *xorIter) reset(chunk []byte) error {
	n, err := xorNumSamples(chunk)
	if err != nil {
		return err
	}
	*it = xorIter{chunk: chunk, total: n}
	it.r.reset(chunk[xorHeaderLen:])
	return nil
}

func (it *xorIter) offset() int { return len(it.chunk) - len(it.r.src) - int(it.r.n)/8 }

func (it *xorIter) fail(reason string) error { return corrupt(EncXOR, it.offset(), reason) }

// next decodes the next sample. It returns false at the end (err nil) or on
// corruption (err set).
func (it *xorIter) next() (bool, error) {
	if it.i >= it.total {
		return false, nil
	}
	switch it.i {
	case 0:
		t, err := it.readVarint(true)
		if err != nil {
			return false, err
		}
		v, ok := it.r.readBits(64)
		if !ok {
			return false, it.fail("truncated first value")
		}
		it.t, it.v = t, math.Float64frombits(v)
	case 1:
		d, err := it.readVarint(false)
		if err != nil {
			return false, err
		}
		t := it.t + d // wraps for gaps beyond MaxInt64, as the writer did
		if t <= it.t {
			return false, it.fail("timestamp not after the previous one")
		}
		it.tDelta = uint64(d)
		it.t = t
		if err := it.readValue(); err != nil {
			return false, err
		}
	default:
		var dod int64
		var nb uint8
		if it.r.n < 4 {
			it.r.refill()
		}
		if it.r.n >= 4 {
			// Fast path: the prefix 0, 10, 110, 1110 or 1111 from the buffer.
			nb = min(uint8(bits.LeadingZeros64(^it.r.buf)), 4)
			used := min(nb+1, 4)
			it.r.buf <<= used
			it.r.n -= used
		} else {
			for nb = 0; nb < 4; nb++ {
				bit, ok := it.r.readBit()
				if !ok {
					return false, it.fail("truncated timestamp")
				}
				if !bit {
					break
				}
			}
		}
		if nb > 0 {
			width := [...]uint8{0, 14, 17, 20, 64}[nb]
			u, ok := it.r.readBits(width)
			if !ok {
				return false, it.fail("truncated timestamp")
			}
			if width < 64 && u > 1<<(width-1) { // sign-extend, Prometheus's asymmetric range
				u -= 1 << width
			}
			dod = int64(u)
		}
		it.tDelta = uint64(int64(it.tDelta) + dod)
		t := it.t + int64(it.tDelta)
		if t <= it.t {
			return false, it.fail("timestamp not after the previous one")
		}
		it.t = t
		if err := it.readValue(); err != nil {
			return false, err
		}
	}
	it.i++
	return true, nil
}

// readVarint reads a (u)varint written bytewise into the bit stream.
func (it *xorIter) readVarint(signed bool) (int64, error) {
	var u uint64
	for i := 0; ; i++ {
		c, ok := it.r.readByte()
		if !ok {
			return 0, it.fail("truncated varint")
		}
		if i == 9 && c > 1 {
			return 0, it.fail("varint overflows 64 bits")
		}
		u |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			break
		}
	}
	if signed {
		return int64(u>>1) ^ -int64(u&1), nil
	}
	return int64(u), nil
}

func (it *xorIter) readValue() error {
	u, ok := readXORValue(&it.r, math.Float64bits(it.v), &it.leading, &it.trailing)
	if !ok {
		return it.fail("truncated or invalid value")
	}
	it.v = math.Float64frombits(u)
	return nil
}
