package chunkenc

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
)

// layout is a chunk read section by section as doc.go describes the
// format: what each section holds and which branch of the format it
// takes. The golden files print it above each chunk's bytes, so a
// reviewer sees what a diff changes, and TestGolden checks that every
// documented branch is taken by some golden case (tags).
type layout struct {
	lines []string
	tags  map[string]bool // branches taken, e.g. "ts:grid", "ints:pairs"
}

func (l *layout) tag(format string, args ...any) {
	if l.tags == nil {
		l.tags = map[string]bool{}
	}
	l.tags[fmt.Sprintf(format, args...)] = true
}

func (l *layout) line(format string, args ...any) {
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// describe reads chunk's layout. It fails on anything the format does not
// allow, including bytes or nonzero padding bits after the last field.
func describe(chunk []byte) (layout, error) {
	enc, err := EncodingOf(chunk)
	if err != nil {
		return layout{}, err
	}
	switch enc {
	case EncXOR:
		return describeXOR(chunk)
	case EncPack:
		return describePack(chunk)
	case EncHistPack, EncFloatHistPack:
		return describeHist(chunk)
	}
	return layout{}, fmt.Errorf("no layout for %s", enc)
}

func describePack(chunk []byte) (layout, error) {
	var l layout
	n, k := binary.Uvarint(chunk[1:])
	if k <= 0 || n == 0 || n > MaxSamples {
		return l, fmt.Errorf("bad sample count")
	}
	l.tag("count:%dB", k)
	l.line("count: %d (%d-byte uvarint)", n, k)
	var r bitReader
	r.reset(chunk[1+k:])

	if err := describeTimes(&l, &r, int(n)); err != nil {
		return l, err
	}
	if err := describeValues(&l, &r, int(n), "values", ""); err != nil {
		return l, err
	}
	return l, checkPadding(&r)
}

// describeTimes reads a timestamps section of n samples.
func describeTimes(l *layout, r *bitReader, n int) error {
	t0, ok := r.readVarint()
	if !ok {
		return fmt.Errorf("truncated t0")
	}
	if t0 < 0 {
		l.tag("ts:negative-t0")
	}
	if n == 1 {
		l.tag("ts:single")
		l.line("timestamps: t0=%d", t0)
	} else {
		d, ok1 := r.readUvarint()
		model, ok2 := r.readBits(1)
		if !ok1 || !ok2 {
			return fmt.Errorf("truncated timestamp header")
		}
		s, rs, err := readIntsLayout(r, int(n-1))
		if err != nil {
			return fmt.Errorf("timestamp residuals: %w", err)
		}
		name := "delta"
		extra := ""
		if model == tsGrid {
			name = "grid"
			anchors := 0
			for _, x := range rs {
				if reanchor(x, d) {
					anchors++
				}
				if x == math.MinInt64 {
					l.tag("ts:grid-residual-minint64")
				}
			}
			if anchors > 0 {
				l.tag("ts:grid-reanchor")
				extra = fmt.Sprintf(", %d re-anchors", anchors)
			}
		}
		l.tag("ts:%s", name)
		for tag := range s.tags {
			l.tag("ts-%s", tag)
		}
		l.line("timestamps: t0=%d d=%d model=%s residuals: %s%s", t0, d, name, s, extra)
	}

	return nil
}

// describeValues reads a values section of n values (EncPack's, also in
// the histogram encodings); name heads its line, prefix its tags.
func describeValues(l *layout, r *bitReader, n int, name, prefix string) error {
	mode, ok := r.readBits(2)
	if !ok {
		return fmt.Errorf("truncated value mode")
	}
	switch mode {
	case valConst:
		u, ok := r.readBits(64)
		if !ok {
			return fmt.Errorf("truncated constant")
		}
		l.tag("%sval:const", prefix)
		l.line("%s: const %#016x", name, u)
	case valXOR:
		u, ok := r.readBits(64)
		if !ok {
			return fmt.Errorf("truncated first value")
		}
		var c xorCounts
		var leading, trailing uint8
		for i := 1; i < n; i++ {
			if u, ok = c.read(r, u, &leading, &trailing); !ok {
				return fmt.Errorf("value %d: truncated or invalid XOR value", i)
			}
		}
		l.tag("%sval:xor", prefix)
		for tag := range c.tags() {
			l.tag("%s%s", prefix, tag)
		}
		l.line("%s: xor, first %#016x, %s", name, u, c)
	case valDec:
		if err := describeDec(l, r, n, name, prefix); err != nil {
			return err
		}
	default:
		return fmt.Errorf("value mode %d", mode)
	}
	return nil
}

func describeDec(l *layout, r *bitReader, n int, name, prefix string) error {
	exp, ok1 := r.readBits(5)
	nexc, ok2 := r.readUvarint()
	if !ok1 || !ok2 || exp > maxDecExp || nexc > uint64(n) {
		return fmt.Errorf("bad decimal header")
	}
	l.tag("%sval:dec", prefix)
	if exp == 0 {
		l.tag("%sdec:e0", prefix)
	} else {
		l.tag("%sdec:e>0", prefix)
	}
	var excs []string
	pos := -1
	for range nexc {
		gap, ok1 := r.readUvarint()
		u, ok2 := r.readBits(64)
		if !ok1 || !ok2 {
			return fmt.Errorf("truncated exception")
		}
		pos += int(gap) + 1
		kind := valueKind(u)
		l.tag("%sexc:%s", prefix, kind)
		excs = append(excs, fmt.Sprintf("%d:%s", pos, kind))
	}
	if nexc > 0 {
		l.tag("%sdec:exceptions", prefix)
	}
	order, ok1 := r.readBits(2)
	m0, ok2 := r.readVarint()
	g, ok3 := r.readUvarint()
	if !ok1 || !ok2 || !ok3 || order > 2 || g == 0 {
		return fmt.Errorf("bad decimal parameters")
	}
	orders := [...]string{"m_i-m_0", "delta", "delta-of-delta"}
	l.tag("%sdec:order-%s", prefix, orders[order])
	if g > 1 {
		l.tag("%sdec:gcd>1", prefix)
	}
	s, _, err := readIntsLayout(r, n-1)
	if err != nil {
		return fmt.Errorf("value residuals: %w", err)
	}
	for tag := range s.tags {
		l.tag("%sval-%s", prefix, tag)
	}
	l.line("%s: decimal e=%d, %d exceptions %v", name, exp, nexc, excs)
	l.line("        order=%s m0=%d gcd=%d residuals: %s", orders[order], m0, g, s)
	return nil
}

// valueKind names the special values a chunk stores raw.
func valueKind(u uint64) string {
	v := math.Float64frombits(u)
	switch {
	case u == 0x7ff0000000000002:
		return "stale"
	case math.IsNaN(v):
		return fmt.Sprintf("nan(%#016x)", u)
	case math.IsInf(v, 1):
		return "+inf"
	case math.IsInf(v, -1):
		return "-inf"
	case v == 0 && math.Signbit(v):
		return "-0"
	}
	return "finite"
}

// checkPadding: after the last field only the zero bits of the last byte
// may remain.
func checkPadding(r *bitReader) error {
	if len(r.src) > 0 || r.n >= 8 {
		return fmt.Errorf("%d bytes and %d bits after the last field", len(r.src), r.n)
	}
	if r.n > 0 && r.buf>>(64-r.n) != 0 {
		return fmt.Errorf("nonzero padding bits")
	}
	return nil
}

// intsLayout is an integer stream's kind, parameters and how many Rice
// codes took the escape.
type intsLayout struct {
	desc string
	tags map[string]bool
}

func (s intsLayout) String() string { return s.desc }

// readIntsLayout reads an integer stream of m residuals with readInts,
// having peeked at its kind and parameters, and returns them with the
// residuals.
func readIntsLayout(r *bitReader, m int) (intsLayout, []int64, error) {
	peek := *r
	kind, _ := peek.readBits(2)
	var k, kg, kv uint64
	var c uint64
	switch kind {
	case intsRice:
		k, _ = peek.readBits(6)
	case intsRuns, intsPairs:
		c, _ = peek.readUvarint()
		kg, _ = peek.readBits(6)
		kv, _ = peek.readBits(6)
	}
	rs := make([]int64, m)
	if !readInts(r, rs) {
		return intsLayout{}, nil, fmt.Errorf("bad integer stream")
	}
	s := intsLayout{tags: map[string]bool{}}
	escapes, wide := 0, 0
	code := func(u uint64, k uint64) {
		if u>>k >= riceEscape {
			escapes++
		} else if u>>k+1+k > 64 {
			wide++ // written in two parts (writeRice)
		}
	}
	switch kind {
	case intsZero:
		s.desc = "zero"
	case intsRice:
		for _, x := range rs {
			code(zigzag(x), k)
		}
		s.desc = fmt.Sprintf("rice k=%d", k)
	default:
		name := "runs"
		if kind == intsPairs {
			name = "pairs"
		}
		gap := uint64(0)
		paired := 0
		for i := 0; i < len(rs); i++ {
			if rs[i] == 0 {
				gap++
				continue
			}
			code(gap, kg)
			code(zigzag(rs[i])-1, kv)
			gap = 0
			if kind == intsPairs && i+1 < len(rs) && rs[i+1] == -rs[i] {
				paired++
				i++
			}
		}
		s.desc = fmt.Sprintf("%s records=%d kg=%d kv=%d", name, c, kg, kv)
		if kind == intsPairs {
			s.desc += fmt.Sprintf(" paired=%d", paired)
			if paired > 0 {
				s.tags["ints:pairs-paired"] = true
			}
		}
	}
	s.tags["ints:"+strings.Fields(s.desc)[0]] = true
	if escapes > 0 {
		s.desc += fmt.Sprintf(", %d escaped", escapes)
		s.tags["ints:rice-escape"] = true
	}
	if wide > 0 {
		s.tags["ints:rice-wide"] = true
	}
	if nz := m - countZeros(rs); kind != intsZero {
		s.desc += fmt.Sprintf(" (%d of %d nonzero)", nz, m)
	}
	return s, rs, nil
}

func countZeros(rs []int64) int {
	n := 0
	for _, x := range rs {
		if x == 0 {
			n++
		}
	}
	return n
}

// xorCounts counts the value codes of a Gorilla XOR stream. read is a
// second reader of that stream, written from doc.go, not readXORValue.
type xorCounts struct {
	same, reuse, window int
	capped              int // new windows whose delta has more than 31 leading zeros
	sig64               int // new windows of 64 bits (length written as 0)
}

func (c *xorCounts) read(r *bitReader, prev uint64, leading, trailing *uint8) (uint64, bool) {
	changed, ok := r.readBit()
	if !ok {
		return 0, false
	}
	if !changed {
		c.same++
		return prev, true
	}
	newWindow, ok := r.readBit()
	if !ok {
		return 0, false
	}
	if newWindow {
		l, ok1 := r.readBits(5)
		s, ok2 := r.readBits(6)
		if !ok1 || !ok2 {
			return 0, false
		}
		if s == 0 {
			s = 64
			c.sig64++
		}
		if l+s > 64 {
			return 0, false
		}
		*leading, *trailing = uint8(l), uint8(64-l-s)
		u, ok := r.readBits(uint8(s))
		if !ok {
			return 0, false
		}
		if l == 31 && u>>(s-1) == 0 {
			c.capped++
		}
		c.window++
		return prev ^ u<<*trailing, true
	}
	c.reuse++
	u, ok := r.readBits(64 - *leading - *trailing)
	return prev ^ u<<*trailing, ok
}

func (c xorCounts) String() string {
	return fmt.Sprintf("%d same, %d in the window, %d new windows (%d capped at 31 leading zeros, %d of 64 bits)",
		c.same, c.reuse, c.window, c.capped, c.sig64)
}

func (c xorCounts) tags() map[string]bool {
	t := map[string]bool{}
	for name, n := range map[string]int{"xor:same": c.same, "xor:reuse": c.reuse, "xor:window": c.window,
		"xor:leading-capped": c.capped, "xor:window-64": c.sig64} {
		if n > 0 {
			t[name] = true
		}
	}
	return t
}

// dodBuckets are the widths of EncXOR's delta-of-delta codes by prefix
// length.
var dodBuckets = [...]uint8{0, 14, 17, 20, 64}

func describeXOR(chunk []byte) (layout, error) {
	var l layout
	n, err := xorNumSamples(chunk)
	if err != nil {
		return l, err
	}
	l.line("count: %d", n)
	if n == 0 {
		return l, checkPaddingBytes(chunk[xorHeaderLen:])
	}
	var r bitReader
	r.reset(chunk[xorHeaderLen:])
	t0, ok1 := r.readVarint()
	v0, ok2 := r.readBits(64)
	if !ok1 || !ok2 {
		return l, fmt.Errorf("truncated first sample")
	}
	if t0 < 0 {
		l.tag("ts:negative-t0")
	}
	if n == 1 {
		l.tag("ts:single")
		l.line("sample 0: t=%d v=%#016x", t0, v0)
		return l, checkPadding(&r)
	}
	d1, ok := r.readUvarint()
	if !ok {
		return l, fmt.Errorf("truncated first delta")
	}
	l.line("sample 0: t=%d v=%#016x; first delta %d", t0, v0, d1)
	var c xorCounts
	var leading, trailing uint8
	u := v0
	if u, ok = c.read(&r, u, &leading, &trailing); !ok {
		return l, fmt.Errorf("value 1: truncated or invalid")
	}
	var perBucket [len(dodBuckets)]int
	var edges []string
	for i := 2; i < n; i++ {
		b := 0
		for b < 4 {
			bit, ok := r.readBit()
			if !ok {
				return l, fmt.Errorf("sample %d: truncated timestamp", i)
			}
			if !bit {
				break
			}
			b++
		}
		perBucket[b]++
		if w := dodBuckets[b]; w > 0 {
			x, ok := r.readBits(w)
			if !ok {
				return l, fmt.Errorf("sample %d: truncated delta of delta", i)
			}
			if w < 64 {
				// The n-bit bucket holds [-(2^(n-1)-1), 2^(n-1)].
				hi := uint64(1) << (w - 1)
				switch {
				case x == hi:
					l.tag("dod:%d-max", w)
					edges = append(edges, fmt.Sprintf("%d:+2^%d", i, w-1))
				case x == 1<<w-hi+1:
					l.tag("dod:%d-min", w)
					edges = append(edges, fmt.Sprintf("%d:-(2^%d-1)", i, w-1))
				}
			}
		}
		if u, ok = c.read(&r, u, &leading, &trailing); !ok {
			return l, fmt.Errorf("value %d: truncated or invalid", i)
		}
	}
	var parts []string
	for b, cnt := range perBucket {
		if cnt > 0 {
			l.tag("dod:%d", dodBuckets[b])
			parts = append(parts, fmt.Sprintf("%d×%d-bit", cnt, dodBuckets[b]))
		}
	}
	if len(parts) > 0 {
		line := "delta of delta: " + strings.Join(parts, " ")
		if len(edges) > 0 {
			line += fmt.Sprintf("; bucket edges at %v", edges)
		}
		l.line("%s", line)
	}
	for tag := range c.tags() {
		l.tag("%s", tag)
	}
	l.line("values: %s", c)
	return l, checkPadding(&r)
}

func checkPaddingBytes(b []byte) error {
	if len(b) > 0 {
		return fmt.Errorf("%d bytes after the header of an empty chunk", len(b))
	}
	return nil
}

// sortedTags lists a tag set in order, for messages.
func sortedTags(tags map[string]bool) []string {
	var out []string
	for t := range tags {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
