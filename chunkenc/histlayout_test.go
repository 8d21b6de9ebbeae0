package chunkenc

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// describeHist reads an EncHistPack or EncFloatHistPack chunk as doc.go
// describes it, independently of the decoder (it shares only the bit
// reader and the integer streams).
func describeHist(chunk []byte) (layout, error) {
	var l layout
	float := Encoding(chunk[0]) == EncFloatHistPack
	n, k := binary.Uvarint(chunk[1:])
	if k <= 0 || n == 0 || n > MaxSamples {
		return l, fmt.Errorf("bad sample count")
	}
	l.line("count: %d (%d-byte uvarint)", n, k)
	var r bitReader
	r.reset(chunk[1+k:])
	if err := describeTimes(&l, &r, int(n)); err != nil {
		return l, err
	}
	h0, ok := r.readBits(2)
	if !ok {
		return l, fmt.Errorf("truncated hint")
	}
	hints := fmt.Sprintf("hints: first %d", h0)
	if n > 1 {
		s, rs, err := readIntsLayout(&r, int(n-1))
		if err != nil {
			return l, fmt.Errorf("hints: %w", err)
		}
		if slices.ContainsFunc(rs, func(x int64) bool { return x != 0 }) {
			l.tag("hint:changes")
		}
		hints += ", changes: " + s.String()
	}
	l.line("%s", hints)

	// Layout runs.
	nr, ok := r.readUvarint()
	if !ok || nr == 0 || nr > n {
		return l, fmt.Errorf("bad run count")
	}
	type colKeyT struct {
		neg bool
		idx int64
	}
	presence := map[colKeyT]int{}
	start := -1
	var starts []int
	var runBuckets [][]colKeyT
	for i := range int(nr) {
		gap := uint64(0)
		if i > 0 {
			if gap, ok = r.readUvarint(); !ok {
				return l, fmt.Errorf("truncated run start")
			}
		}
		start += int(gap) + 1
		starts = append(starts, start)
		var hdr string
		same := false
		if i > 0 {
			bit, ok := r.readBit()
			if !ok {
				return l, fmt.Errorf("truncated same-header bit")
			}
			same = bit
		}
		if same {
			l.tag("layout:same-header")
			hdr = "same header"
		} else {
			if i > 0 {
				l.tag("layout:new-header")
			}
			schema, ok1 := r.readVarint()
			zt, ok2 := r.readBits(64)
			ncv, ok3 := r.readUvarint()
			if !ok1 || !ok2 || !ok3 {
				return l, fmt.Errorf("truncated header")
			}
			hdr = fmt.Sprintf("schema=%d zero threshold=%#016x custom values=%d", schema, zt, ncv)
			if ncv > 0 {
				l.tag("layout:custom-values")
				var cl layout
				if err := describeValues(&cl, &r, int(ncv), "custom values", "cv-"); err != nil {
					return l, err
				}
				for t := range cl.tags {
					l.tag("%s", t)
				}
				for _, line := range cl.lines {
					hdr += "; " + strings.TrimSpace(line)
				}
			}
		}
		var buckets []colKeyT
		var spans [2]string
		for sign := range 2 {
			ns, ok := r.readUvarint()
			if !ok {
				return l, fmt.Errorf("truncated span count")
			}
			idx := int64(0)
			var ss []string
			for range ns {
				o, ok1 := r.readVarint()
				ln, ok2 := r.readUvarint()
				if !ok1 || !ok2 {
					return l, fmt.Errorf("truncated span")
				}
				ss = append(ss, fmt.Sprintf("%d:%d", o, ln))
				idx += o
				for range ln {
					buckets = append(buckets, colKeyT{sign == 1, idx})
					idx++
				}
				if ln == 0 {
					l.tag("layout:empty-span")
				}
			}
			if sign == 1 && ns > 0 {
				l.tag("layout:negative")
			}
			spans[sign] = "[" + strings.Join(ss, " ") + "]"
		}
		runBuckets = append(runBuckets, buckets)
		l.line("run %d from sample %d: %s; spans +%s -%s", i, start, hdr, spans[0], spans[1])
		if start >= int(n) {
			return l, fmt.Errorf("run %d starts at %d of %d samples", i, start, n)
		}
	}
	if nr > 1 {
		l.tag("layout:runs>1")
	}
	for i, bs := range runBuckets {
		end := int(n)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		for _, b := range bs {
			presence[b] += end - starts[i]
		}
	}
	keys := make([]colKeyT, 0, len(presence))
	for k := range presence {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b colKeyT) int {
		if a.neg != b.neg {
			if a.neg {
				return 1
			}
			return -1
		}
		return int(min(max(a.idx-b.idx, -1), 1))
	})

	intCol := func(name string, m int) error {
		c0, ok := r.readVarint()
		if !ok {
			return fmt.Errorf("%s: truncated first value", name)
		}
		if m == 1 {
			l.tag("col:single")
			l.line("%s: %d", name, c0)
			return nil
		}
		order, ok := r.readBits(2)
		if !ok || order > colDoD {
			return fmt.Errorf("%s: bad order", name)
		}
		orders := [...]string{"abs", "delta", "delta-of-delta"}
		l.tag("col:order-%s", orders[order])
		s, _, err := readIntsLayout(&r, m-1)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for t := range s.tags {
			l.tag("col-%s", t)
		}
		l.line("%s: c0=%d order=%s residuals: %s", name, c0, orders[order], s)
		return nil
	}
	floatCol := func(name string, m int) error {
		return describeValues(&l, &r, m, name, "fcol-")
	}
	col := intCol
	if float {
		col = floatCol
	}
	if err := col("count", int(n)); err != nil {
		return l, err
	}
	if err := col("zero count", int(n)); err != nil {
		return l, err
	}
	if err := describeValues(&l, &r, int(n), "sum", "sum-"); err != nil {
		return l, err
	}
	for _, k := range keys {
		sign := "+"
		if k.neg {
			sign = "-"
		}
		if err := col(fmt.Sprintf("bucket %s%d (%d samples)", sign, k.idx, presence[k]), presence[k]); err != nil {
			return l, err
		}
	}
	return l, checkPadding(&r)
}
