package chunkenc

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/myelindb/myelin/internal/invariants"
)

// Value modes of an EncPack chunk.
const (
	valConst = 0 // every value has the same bits
	valDec   = 1 // scaled decimals: v = m / 10^e, m integer, |m| < 2^53
	valXOR   = 2 // Gorilla XOR of the value bits
)

// maxDecExp is the largest decimal exponent valDec uses; 10^e is exact in a
// float64 up to e = 22, and beyond 17 digits a double has no decimal form
// worth keeping.
const maxDecExp = 17

// maxDecMantissa bounds |m|: integers up to 2^53 are exact in a float64, so
// float64(m)/10^e is a single correctly rounded division.
const maxDecMantissa = 1 << 53

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17}

// decMantissa returns m with float64(m)/10^e == v bit for bit, if there is
// one with |m| < 2^53.
func decMantissa(v float64, e uint8) (int64, bool) {
	if e == 0 {
		// Integers: no rounding, no division. The range check also rejects
		// NaN and ±Inf; -0 passes here and is caught by the callers.
		if v > -maxDecMantissa && v < maxDecMantissa && v == math.Trunc(v) {
			return int64(v), true
		}
		return 0, false
	}
	m := math.Round(v * pow10[e])
	if !(m > -maxDecMantissa && m < maxDecMantissa) {
		return 0, false
	}
	if math.Float64bits(m/pow10[e]) != math.Float64bits(v) {
		return 0, false
	}
	return int64(m), true
}

// Encoder encodes sealed chunks, reusing its scratch space across calls.
// The zero value is ready to use. Not safe for concurrent use.
type Encoder struct {
	w    bitWriter
	ints intCoder
	rs   []int64 // residuals
	gs   []int64 // grid residuals of timestamps
	// ms are the decimal mantissas. INVARIANT (after decimals): |m| <
	// 2^53 for every m, an exception's slot repeating the mantissa before
	// it; so residuals of any order stay below 2^55 and their gcd fits an
	// int64.
	ms  []int64
	xs  []uint8 // smallest decimal exponent of each value
	exc []int   // positions of values outside the decimal model, increasing
	// orderBits scores the residual orders of ms (see decimals).
	orderBits [3]int

	// Recode's decoded samples and its reader, which checkDecodes reuses
	// under the invariants build tag once Recode has read its chunks.
	it Iterator
	ts []int64
	vs []float64

	// hist is the scratch space of the histogram encoders.
	hist histScratch

	// stats are counters for tests and tuning: bits spent on timestamps
	// and on values.
	stats struct {
		tBits, vBits int
		// hist: bits of the histogram sections, in histSection order.
		hist [histSections]int
	}
}

// Encode is like the package-level Encode with the Encoder's scratch space.
func (e *Encoder) Encode(dst []byte, enc Encoding, ts []int64, vs []float64) ([]byte, error) {
	if err := checkSamples(ts, vs); err != nil {
		return dst, err
	}
	switch enc {
	case EncXOR:
		return appendXOR(dst, ts, vs), nil
	case EncPack:
		return e.appendPack(dst, ts, vs), nil
	}
	return dst, errUnknownEncoding(enc)
}

func appendPack(dst []byte, ts []int64, vs []float64) []byte {
	var e Encoder
	return e.appendPack(dst, ts, vs)
}

func (e *Encoder) appendPack(dst []byte, ts []int64, vs []float64) []byte {
	start := len(dst)
	dst = append(dst, byte(EncPack))
	dst = binary.AppendUvarint(dst, uint64(len(ts)))
	e.w = bitWriter{b: dst}
	b0 := e.bitLen()
	e.writeTimestamps(ts)
	b1 := e.bitLen()
	e.writeValues(vs)
	e.stats.tBits += b1 - b0
	e.stats.vBits += e.bitLen() - b1
	if invariants.Enabled {
		e.w.checkInvariants()
		checkDecodes(&e.it, e.w.b[start:], ts, vs)
	}
	dst = e.w.b
	e.w.b = nil
	return dst
}

// writeTimestamps: varint t0, uvarint d, 1 bit model, then the residuals.
// Arithmetic wraps, so any strictly increasing int64 sequence round-trips.
//
// Two models of where sample i should be, picked per chunk by exact size:
//
//	tsDelta  t_{i-1} + d. Suits clocks that drift against the interval
//	         (the 1 s scrapes in the shared data: 10 % nonzero residuals
//	         against 30 % for the grid).
//	tsGrid   g_{i-1} + d, where the grid point g_i = t_i if |r_i| > d/2 (a
//	         missed scrape or a restart re-anchors the grid) and g_{i-1} + d
//	         otherwise. Suits a fixed schedule with jitter around it: a
//	         late scrape is one residual, not two (the 15 s scrapes: 7 %
//	         nonzero against 12 %).
func (e *Encoder) writeTimestamps(ts []int64) {
	e.w.writeVarint(ts[0])
	if len(ts) == 1 {
		return
	}
	// INVARIANT: d >= 1. Timestamps strictly increase, so every gap, taken
	// as a wrapping uint64, is nonzero, and d is one of them.
	d := majorityDelta(ts)
	if invariants.Enabled && d == 0 {
		panic("BUG: pack interval 0")
	}
	e.w.writeUvarint(d)
	// Both models' residuals in one pass; the one with fewer nonzero
	// residuals wins (planning both exactly cost a third of the encoder's
	// time for a 0.1 % smaller result).
	e.rs, e.gs = e.rs[:0], e.gs[:0]
	nzDelta, nzGrid := 0, 0
	g := ts[0]
	for i := 1; i < len(ts); i++ {
		r := int64(uint64(ts[i]-ts[i-1]) - d)
		e.rs = append(e.rs, r)
		g += int64(d)
		rg := ts[i] - g
		e.gs = append(e.gs, rg)
		if reanchor(rg, d) {
			g = ts[i]
		}
		if r != 0 {
			nzDelta++
		}
		if rg != 0 {
			nzGrid++
		}
	}
	if nzGrid < nzDelta {
		e.w.writeBits(tsGrid, 1)
		e.ints.writeInts(&e.w, e.gs)
		return
	}
	e.w.writeBits(tsDelta, 1)
	e.ints.writeInts(&e.w, e.rs)
}

// Timestamp models.
const (
	tsDelta = 0
	tsGrid  = 1
)

// reanchor reports whether a grid residual moves the grid to the sample.
func reanchor(r int64, d uint64) bool {
	return uint64(max(r, -r)) > d/2 || r == math.MinInt64
}

// majorityDelta returns the delta that occurs in more than half of the
// timestamp gaps if there is one (Boyer-Moore vote), else a frequent one.
func majorityDelta(ts []int64) uint64 {
	var cand uint64
	count := 0
	for i := 1; i < len(ts); i++ {
		d := uint64(ts[i] - ts[i-1])
		switch {
		case count == 0:
			cand, count = d, 1
		case d == cand:
			count++
		default:
			count--
		}
	}
	return cand
}

func (e *Encoder) writeValues(vs []float64) {
	first := math.Float64bits(vs[0])
	same := true
	for _, v := range vs[1:] {
		if math.Float64bits(v) != first {
			same = false
			break
		}
	}
	if same {
		e.w.writeBits(valConst, 2)
		e.w.writeBits(first, 64)
		return
	}
	// Try the decimal model; fall back to XOR when it does not fit or costs
	// more.
	if exp, ok := e.decimals(vs); ok {
		mark := len(e.w.b)
		free := e.w.free
		lastByte := byte(0)
		if mark > 0 {
			lastByte = e.w.b[mark-1]
		}
		start := e.bitLen()
		e.writeDec(vs, exp)
		decBits := e.bitLen() - start
		// Decimal wins by far on most monitoring data; only chunks that
		// cost more than 16 bits per value are worth an XOR dry run.
		if decBits <= 16*len(vs) || decBits <= xorValuesBits(vs) {
			return
		}
		// Roll back and write XOR instead.
		e.w.b = e.w.b[:mark]
		e.w.free = free
		if mark > 0 {
			e.w.b[mark-1] = lastByte
		}
		if invariants.Enabled && e.bitLen() != start {
			panic(fmt.Sprintf("BUG: pack rollback to bit %d reached bit %d", start, e.bitLen()))
		}
	}
	e.w.writeBits(valXOR, 2)
	e.w.writeBits(first, 64)
	var leading, trailing uint8 = 0xff, 0
	prev := first
	for _, v := range vs[1:] {
		u := math.Float64bits(v)
		writeXORValue(&e.w, u^prev, &leading, &trailing)
		prev = u
	}
}

func (e *Encoder) bitLen() int { return 8*len(e.w.b) - int(e.w.free) }

// xorValuesBits is what the valXOR mode would cost.
func xorValuesBits(vs []float64) int {
	n := 2 + 64
	var leading, trailing uint8 = 0xff, 0
	prev := math.Float64bits(vs[0])
	for _, v := range vs[1:] {
		u := math.Float64bits(v)
		n += xorValueBits(u^prev, &leading, &trailing)
		prev = u
	}
	return n
}

// decimals picks the decimal exponent for the values, filling e.ms with
// the mantissas and e.exc with the positions of exceptions: values that are
// not decimals at that exponent (NaN, ±Inf, -0, too many digits). It
// reports false if more than 1/8 of the values would be exceptions.
//
// The exponent is chosen by cost, not as the largest one any value needs:
// one value like 0.20199999999999999 among 0.132, 0.134, ... (binary noise
// printed at full precision) would otherwise force 17 digits on all of
// them. Each extra digit costs about log2(10) bits per sample; an exception
// costs about 72 bits.
func (e *Encoder) decimals(vs []float64) (uint8, bool) {
	const none = maxDecExp + 1
	var need [none + 1]int // need[x]: values whose smallest exponent is x
	e.ms, e.xs = e.ms[:0], e.xs[:0]
	exp := uint8(0)
	for _, v := range vs {
		x, m := uint8(none), int64(0)
		if !(v == 0 && math.Signbit(v)) {
			// Start at the previous value's exponent: neighbours usually
			// share it. Step down while the value still fits, then up until
			// it does. NaN and ±Inf fit nowhere.
			x = exp
			for x > 0 {
				mm, ok := decMantissa(v, x-1)
				if !ok {
					break
				}
				x, m = x-1, mm
			}
			for ; x <= maxDecExp; x++ {
				mm, ok := decMantissa(v, x)
				if ok {
					m = mm
					break
				}
			}
			if x <= maxDecExp {
				exp = x
			}
		}
		need[x]++
		e.xs = append(e.xs, x)
		e.ms = append(e.ms, m)
	}
	// cost(x) = n*x*log2(10) + 72*(values needing more than x), in tenths
	// of bits.
	n := len(vs)
	bestX, bestCost := 0, -1
	above := n
	for x := 0; x <= maxDecExp; x++ {
		above -= need[x]
		cost := n*x*33 + 720*above
		if bestCost < 0 || cost < bestCost {
			bestX, bestCost = x, cost
		}
	}
	if above = n - need[0]; bestX > 0 {
		above = 0
		for x := bestX + 1; x <= none; x++ {
			above += need[x]
		}
	}
	if above > n/8 {
		return 0, false
	}
	// Rescale the mantissas to the chosen exponent: m/10^x and
	// m*10^(e-x)/10^e are the same rational, so the same double.
	exp = uint8(bestX)
	e.exc = e.exc[:0]
	prevM := int64(0)
	for i, x := range e.xs {
		m := e.ms[i]
		ok := x <= exp
		if ok && x < exp {
			m, ok = scaleMantissa(m, exp-x)
		}
		if !ok {
			e.exc = append(e.exc, i)
			m = prevM
		}
		e.ms[i] = m
		prevM = m
	}
	if len(e.exc) > n/8 {
		return 0, false
	}
	// Score the orders (0: m_i - m_0, 1: delta, 2: delta-of-delta) by the
	// total significant bits of their residuals, a proxy for the coded
	// size, for writeDec.
	ms := e.ms
	e.orderBits = [3]int{}
	for i := 1; i < len(ms); i++ {
		d := ms[i] - ms[i-1]
		e.orderBits[0] += bits.Len64(zigzag(ms[i] - ms[0]))
		e.orderBits[1] += bits.Len64(zigzag(d))
		if i >= 2 {
			d -= ms[i-1] - ms[i-2]
		}
		e.orderBits[2] += bits.Len64(zigzag(d))
	}
	return exp, true
}

// scaleMantissa returns m*10^k if its magnitude stays below 2^53.
func scaleMantissa(m int64, k uint8) (int64, bool) {
	p := int64(pow10[k])
	if m > maxDecMantissa/p || m < -maxDecMantissa/p {
		return 0, false
	}
	return m * p, true
}

// writeDec writes the valDec mode: 5 bits exponent, the exceptions
// (uvarint count, then per exception a uvarint gap to the previous
// exception and the 64 value bits), 2 bits order (0 m_i - m_0, 1 delta, 2
// delta-of-delta), varint m0, uvarint gcd of the residuals, and the integer
// stream of residuals divided by the gcd.
//
// INVARIANT: exp <= maxDecExp (the field is 5 bits); at most n/8
// exceptions, at increasing positions (decimals refuses more); order is
// 0..2; the gcd g is >= 1 and divides every residual exactly.
func (e *Encoder) writeDec(vs []float64, exp uint8) {
	if invariants.Enabled && (exp > maxDecExp || len(e.exc) > len(vs)/8 || len(e.ms) != len(vs)) {
		panic(fmt.Sprintf("BUG: pack decimals of %d values at e=%d with %d mantissas and %d exceptions", len(vs), exp, len(e.ms), len(e.exc)))
	}
	e.w.writeBits(valDec, 2)
	e.w.writeBits(uint64(exp), 5)
	e.w.writeUvarint(uint64(len(e.exc)))
	prev := -1
	for _, i := range e.exc {
		if invariants.Enabled && i <= prev {
			panic(fmt.Sprintf("BUG: pack exception at %d after %d", i, prev))
		}
		e.w.writeUvarint(uint64(i - prev - 1))
		e.w.writeBits(math.Float64bits(vs[i]), 64)
		prev = i
	}
	ms := e.ms
	cost := e.orderBits
	order := 1
	if cost[0] < cost[order] {
		order = 0
	}
	if cost[2] < cost[order] {
		order = 2
	}
	e.w.writeBits(uint64(order), 2)
	e.w.writeVarint(ms[0])
	e.rs = e.rs[:0]
	var g uint64
	for i := 1; i < len(ms); i++ {
		var r int64
		switch order {
		case 0:
			r = ms[i] - ms[0]
		case 1:
			r = ms[i] - ms[i-1]
		default:
			r = ms[i] - ms[i-1]
			if i >= 2 {
				r -= ms[i-1] - ms[i-2]
			}
		}
		e.rs = append(e.rs, r)
		if g != 1 { // most chunks reach 1 early; Euclid is not free
			g = gcd(g, uint64(max(r, -r)))
		}
	}
	if g == 0 {
		g = 1
	}
	e.w.writeUvarint(g)
	if g > 1 {
		for i := range e.rs {
			if invariants.Enabled && e.rs[i]%int64(g) != 0 {
				panic(fmt.Sprintf("BUG: pack gcd %d does not divide residual %d", g, e.rs[i]))
			}
			e.rs[i] /= int64(g)
		}
	}
	e.ints.writeInts(&e.w, e.rs)
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func packNumSamples(chunk []byte) (int, error) {
	n, k := binary.Uvarint(chunk[1:])
	if k <= 0 || n == 0 || n > MaxSamples {
		return 0, corrupt(EncPack, 1, "bad sample count")
	}
	return int(n), nil
}

// packDecoder holds the scratch space of the EncPack decoder.
type packDecoder struct {
	r   bitReader
	ms  []int64
	exc []decException
	// keepMantissas is set by the Iterator: a decimal values section
	// without exceptions is left as mantissas in ms (mantissasKept), and
	// value converts the samples that are read. The conversion, a float
	// division per sample, was a sixth of a counter chunk's decoding,
	// and a 30-day panel at a 30-minute step reads 5 samples of every
	// 30 (BenchmarkPackCounters).
	keepMantissas bool
	// mantissasKept: the last decode left the values in ms, at exponent
	// exp, instead of in vs.
	mantissasKept bool
	exp           uint8
}

// value is the value of sample i of a chunk whose mantissas were kept:
// the expression decodeDec would have stored, bit for bit.
func (d *packDecoder) value(i int) float64 {
	if d.exp == 0 {
		return float64(d.ms[i])
	}
	return float64(d.ms[i]) / pow10[d.exp]
}

// decException is a value outside the decimal model, stored raw.
type decException struct {
	pos  int
	bits uint64
}

// decode appends the samples of an EncPack chunk to ts and vs. On error
// the returned slices have their input lengths.
func (d *packDecoder) decode(ts []int64, vs []float64, chunk []byte) ([]int64, []float64, error) {
	n, err := packNumSamples(chunk)
	if err != nil {
		return ts, vs, err
	}
	_, k := binary.Uvarint(chunk[1:])
	d.r.reset(chunk[1+k:])
	// The sample count is at most MaxSamples, so a corrupt header makes us
	// allocate at most 16*MaxSamples bytes (1 MiB) before failing. The count
	// cannot be checked against the input length: a constant, regular chunk
	// holds 65535 samples in a few bytes.
	n0 := len(ts)
	ts = grow(ts, n)
	vs = grow(vs, n)
	d.mantissasKept = false
	if reason := d.decodeTimestamps(ts[n0:]); reason != "" {
		return ts[:n0], vs[:n0], corrupt(EncPack, d.offset(chunk), reason)
	}
	if reason := d.decodeValues(vs[n0:]); reason != "" {
		return ts[:n0], vs[:n0], corrupt(EncPack, d.offset(chunk), reason)
	}
	return ts, vs, nil
}

func (d *packDecoder) offset(chunk []byte) int {
	return len(chunk) - len(d.r.src) - int(d.r.n)/8
}

// grow extends s by n elements (contents unspecified).
func grow[T any](s []T, n int) []T {
	if cap(s)-len(s) < n {
		ns := make([]T, len(s), len(s)+n)
		copy(ns, s)
		s = ns
	}
	return s[:len(s)+n]
}

func (d *packDecoder) decodeTimestamps(ts []int64) string {
	t0, ok := d.r.readVarint()
	if !ok {
		return "truncated first timestamp"
	}
	ts[0] = t0
	if len(ts) == 1 {
		return ""
	}
	delta, ok := d.r.readUvarint()
	if !ok {
		return "truncated interval"
	}
	model, ok := d.r.readBits(1)
	if !ok {
		return "truncated timestamp model"
	}
	if !readInts(&d.r, ts[1:]) {
		return "bad timestamp residuals"
	}
	// Encoders only write increasing timestamps; anything else is
	// corruption that would break Seek and the engine's merges.
	if model == tsDelta {
		for i := 1; i < len(ts); i++ {
			ts[i] = ts[i-1] + int64(delta+uint64(ts[i]))
			if ts[i] <= ts[i-1] {
				return "timestamps not increasing"
			}
		}
		return ""
	}
	g := t0
	for i := 1; i < len(ts); i++ {
		g += int64(delta)
		r := ts[i]
		ts[i] = g + r
		if reanchor(r, delta) {
			g = ts[i]
		}
		if ts[i] <= ts[i-1] {
			return "timestamps not increasing"
		}
	}
	return ""
}

func (d *packDecoder) decodeValues(vs []float64) string {
	mode, ok := d.r.readBits(2)
	if !ok {
		return "truncated value mode"
	}
	switch mode {
	case valConst:
		u, ok := d.r.readBits(64)
		if !ok {
			return "truncated constant"
		}
		v := math.Float64frombits(u)
		for i := range vs {
			vs[i] = v
		}
		return ""
	case valXOR:
		u, ok := d.r.readBits(64)
		if !ok {
			return "truncated first value"
		}
		vs[0] = math.Float64frombits(u)
		var leading, trailing uint8
		for i := 1; i < len(vs); i++ {
			u, ok = readXORValue(&d.r, u, &leading, &trailing)
			if !ok {
				return "truncated or invalid XOR value"
			}
			vs[i] = math.Float64frombits(u)
		}
		return ""
	case valDec:
		return d.decodeDec(vs)
	}
	return "unknown value mode"
}

func (d *packDecoder) decodeDec(vs []float64) string {
	exp, ok := d.r.readBits(5)
	if !ok || exp > maxDecExp {
		return "bad decimal exponent"
	}
	nexc, ok := d.r.readUvarint()
	if !ok || nexc > uint64(len(vs)) {
		return "bad exception count"
	}
	// Exceptions come first in the stream but are applied last.
	d.ms = grow(d.ms[:0], len(vs))
	ms := d.ms
	d.exc = d.exc[:0]
	pos := -1
	for range nexc {
		gap, ok := d.r.readUvarint()
		if !ok || gap >= uint64(len(vs)-pos-1) {
			return "bad exception position"
		}
		pos += int(gap) + 1
		u, ok := d.r.readBits(64)
		if !ok {
			return "truncated exception"
		}
		d.exc = append(d.exc, decException{pos, u})
	}
	order, ok := d.r.readBits(2)
	if !ok || order > 2 {
		return "bad order"
	}
	m0, ok := d.r.readVarint()
	if !ok {
		return "truncated first mantissa"
	}
	g, ok := d.r.readUvarint()
	if !ok || g == 0 {
		return "bad gcd"
	}
	ms[0] = m0
	if !readInts(&d.r, ms[1:]) {
		return "bad value residuals"
	}
	// Integrate. Arithmetic wraps on corrupt input; results are then
	// garbage but never a crash.
	gi := int64(g)
	switch order {
	case 0:
		for i := 1; i < len(ms); i++ {
			ms[i] = m0 + ms[i]*gi
		}
	case 1:
		for i := 1; i < len(ms); i++ {
			ms[i] = ms[i-1] + ms[i]*gi
		}
	default:
		var delta int64
		for i := 1; i < len(ms); i++ {
			delta += ms[i] * gi
			ms[i] = ms[i-1] + delta
		}
	}
	if d.keepMantissas && len(d.exc) == 0 {
		d.mantissasKept, d.exp = true, uint8(exp)
		return ""
	}
	p := pow10[exp]
	if exp == 0 {
		for i, m := range ms {
			vs[i] = float64(m)
		}
	} else {
		for i, m := range ms {
			vs[i] = float64(m) / p
		}
	}
	for _, x := range d.exc {
		vs[x.pos] = math.Float64frombits(x.bits)
	}
	return ""
}

// Recode decodes chunks, which must hold increasing timestamps across them
// (e.g. consecutive chunks of one series), and appends one chunk of all
// their samples in encoding enc to dst. It seals a head chunk
// (Recode(dst, EncPack, head.Bytes())) and merges small sealed chunks into
// a larger block for cold data. The samples must fit in one chunk
// (MaxSamples).
func (e *Encoder) Recode(dst []byte, enc Encoding, chunks ...[]byte) ([]byte, error) {
	e.ts, e.vs = e.ts[:0], e.vs[:0]
	for i, c := range chunks {
		var err error
		n0 := len(e.ts)
		e.it.Reset(c)
		for e.it.Next() {
			t, v := e.it.At()
			e.ts = append(e.ts, t)
			e.vs = append(e.vs, v)
		}
		if err = e.it.Err(); err != nil {
			return dst, fmt.Errorf("recode chunk %d: %w", i, err)
		}
		if n0 > 0 && n0 < len(e.ts) && e.ts[n0] <= e.ts[n0-1] {
			return dst, fmt.Errorf("recode chunk %d: starts at %d, not after %d: %w", i, e.ts[n0], e.ts[n0-1], ErrOutOfOrder)
		}
	}
	return e.Encode(dst, enc, e.ts, e.vs)
}
