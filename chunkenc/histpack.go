package chunkenc

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/myelindb/myelin/internal/invariants"
)

// The histogram block encodings, EncHistPack and EncFloatHistPack (format in
// doc.go). Both share the layout of a chunk: runs of samples with the same
// schema, zero threshold, custom values and spans, and one column per
// bucket index over the samples that have that bucket. The column is what
// makes the encodings small: a bucket's count changes slowly from one
// sample to the next and an idle bucket stays constant, which a column
// codes in its first value and 4 bits for the whole chunk, where
// Prometheus's streaming chunk pays at least 1 bit per bucket per sample.

// Sections of a histogram chunk, for Encoder.stats.
const (
	histSecTimes  = iota
	histSecLayout // hints and layouts
	histSecCounts // count and zero count
	histSecSum
	histSecBuckets
	histSections
)

// account adds the bits written since *mark to section sec and moves the
// mark.
func (e *Encoder) account(sec int, mark *int) {
	b := e.bitLen()
	e.stats.hist[sec] += b - *mark
	*mark = b
}

// histRun is a run of consecutive samples [start, end) with one layout.
type histRun struct {
	start, end int
	l          histLayout
	// ids[idOff:idOff+nb] are the columns of the run's buckets: positive
	// buckets in span order, then negative ones.
	idOff, nb int
	// Decoder only: where the run's spans and custom values sit in the
	// decoder's flat buffers while they are still growing.
	posOff, posN, negOff, negN, cvOff, cvN int
}

// colKey names a column: a bucket index of one sign.
type colKey struct {
	neg bool
	idx int64
}

func cmpColKey(a, b colKey) int {
	if a.neg != b.neg {
		if b.neg {
			return -1
		}
		return 1
	}
	switch {
	case a.idx < b.idx:
		return -1
	case a.idx > b.idx:
		return 1
	}
	return 0
}

// histCols maps the samples of a chunk to runs and columns. Encoder and
// decoder build it the same way (index), the encoder from the samples, the
// decoder from the layouts section.
//
// INVARIANT (after index): keys is sorted by cmpColKey without
// duplicates; colOff[c] is the sum of colLen of the columns before c;
// colLen[c] >= 1 is the number of samples having column c's bucket.
type histCols struct {
	runs   []histRun
	all    []colKey // the runs' buckets in run order
	keys   []colKey
	tmp    []colKey // scratch of merge
	sorted []colKey // scratch of index: a run's keys, sorted
	ids    []int32
	colLen []int
	colOff []int
	cur    []int
	total  int // sum of colLen: the chunk's bucket values
}

// merge adds the sorted keys rk to c.keys (sorted, without duplicates).
func (c *histCols) merge(rk []colKey) {
	// Fast path: every key already there (the run repeats known buckets).
	i, j := 0, 0
	for i < len(c.keys) && j < len(rk) {
		switch cmpColKey(c.keys[i], rk[j]) {
		case 0:
			i, j = i+1, j+1
		case -1:
			i++
		default:
			i = len(c.keys) // rk[j] is new
		}
	}
	if j == len(rk) {
		return
	}
	out := c.tmp[:0]
	i, j = 0, 0
	for i < len(c.keys) || j < len(rk) {
		switch {
		case j == len(rk) || (i < len(c.keys) && cmpColKey(c.keys[i], rk[j]) < 0):
			out = append(out, c.keys[i])
			i++
		case i == len(c.keys) || cmpColKey(c.keys[i], rk[j]) > 0:
			if len(out) == 0 || cmpColKey(out[len(out)-1], rk[j]) != 0 {
				out = append(out, rk[j])
			}
			j++
		default:
			out = append(out, c.keys[i])
			i, j = i+1, j+1
		}
	}
	c.keys, c.tmp = out, c.keys
}

// forEachBucket calls fn with the index of every bucket the spans hold,
// in order.
func forEachBucket(ss []Span, fn func(idx int64)) {
	idx := int64(0)
	for _, s := range ss {
		idx += int64(s.Offset)
		for range s.Length {
			fn(idx)
			idx++
		}
	}
}

// cut splits n samples into runs of equal layout.
func (c *histCols) cut(n int, lay func(i int) histLayout) {
	c.runs = c.runs[:0]
	for i := range n {
		l := lay(i)
		if k := len(c.runs); k > 0 && c.runs[k-1].l.equal(&l) {
			c.runs[k-1].end = i + 1
			continue
		}
		c.runs = append(c.runs, histRun{start: i, end: i + 1, l: l})
	}
}

// checkInvariants panics if c breaks its INVARIANT.
func (c *histCols) checkInvariants() {
	off := 0
	for i, k := range c.keys {
		if i > 0 && cmpColKey(c.keys[i-1], k) >= 0 {
			panic(fmt.Sprintf("BUG: histogram columns %+v then %+v", c.keys[i-1], k))
		}
		if c.colLen[i] < 1 || c.colOff[i] != off {
			panic(fmt.Sprintf("BUG: histogram column %d of %d values at %d, want at %d", i, c.colLen[i], c.colOff[i], off))
		}
		off += c.colLen[i]
	}
	if off != c.total {
		panic(fmt.Sprintf("BUG: histogram columns hold %d values, total %d", off, c.total))
	}
}

// plan cuts n samples into runs and indexes their columns, for an
// encoder.
func (c *histCols) plan(n int, lay func(i int) histLayout) error {
	c.cut(n, lay)
	if c.index() {
		if invariants.Enabled {
			c.checkInvariants()
		}
		return nil
	}
	// Find the repeated bucket for the error; a rare path, so a map.
	for _, run := range c.runs {
		seen := map[colKey]bool{}
		var dup colKey
		mark := func(k colKey) {
			if seen[k] {
				dup = k
			}
			seen[k] = true
		}
		forEachBucket(run.l.pos, func(idx int64) { mark(colKey{false, idx}) })
		forEachBucket(run.l.neg, func(idx int64) { mark(colKey{true, idx}) })
		if uint64(len(seen)) < run.l.buckets() {
			return fmt.Errorf("chunkenc: histogram %d: spans name bucket %d (negative: %v) twice", run.start, dup.idx, dup.neg)
		}
	}
	panic("BUG: histogram layout with a repeated bucket not found")
}

// index computes the columns of the runs. The caller has bounded the
// runs' buckets (at most MaxHistogramBuckets values in all). It reports
// false if a layout names one bucket index twice (spans that overlap,
// which Prometheus's validation refuses too): every bucket of a run is
// then a column of its own, which bounds the buckets a decoder accepts by
// the length of its input.
func (c *histCols) index() bool {
	c.all = c.all[:0]
	for r := range c.runs {
		run := &c.runs[r]
		forEachBucket(run.l.pos, func(idx int64) { c.all = append(c.all, colKey{false, idx}) })
		forEachBucket(run.l.neg, func(idx int64) { c.all = append(c.all, colKey{true, idx}) })
	}
	all := c.all
	c.ids = slices.Grow(c.ids[:0], len(all))[:len(all)]
	// The union of the runs' keys, merged run by run: a run's keys are
	// sorted whenever its spans' offsets after the first are not negative
	// (always, for Prometheus's histograms), and runs mostly repeat the
	// union. Sorting all keys instead cost a third of the decode time of
	// chunks whose layout changes with every sample (rate() output).
	c.keys = c.keys[:0]
	off := 0
	for r := range c.runs {
		nb := int(c.runs[r].l.buckets())
		rk := all[off : off+nb]
		off += nb
		if !slices.IsSortedFunc(rk, cmpColKey) {
			c.sorted = append(c.sorted[:0], rk...)
			slices.SortFunc(c.sorted, cmpColKey)
			rk = c.sorted
		}
		c.merge(rk)
	}
	c.colLen = slices.Grow(c.colLen[:0], len(c.keys))[:len(c.keys)]
	clear(c.colLen)
	// cur doubles as the last run (+1) that used each column, to find
	// repeated indices; it is cleared for the writers and readers below.
	c.cur = slices.Grow(c.cur[:0], len(c.keys))[:len(c.keys)]
	clear(c.cur)
	off = 0
	for r := range c.runs {
		run := &c.runs[r]
		run.idOff = off
		run.nb = int(run.l.buckets())
		for j := off; j < off+run.nb; j++ {
			id, found := slices.BinarySearchFunc(c.keys, all[j], cmpColKey)
			if invariants.Enabled && !found {
				panic(fmt.Sprintf("BUG: histogram column %+v missing", all[j]))
			}
			if c.cur[id] == r+1 {
				return false
			}
			c.cur[id] = r + 1
			c.ids[j] = int32(id)
			c.colLen[id] += run.end - run.start
		}
		off += run.nb
	}
	c.colOff = slices.Grow(c.colOff[:0], len(c.keys))[:len(c.keys)]
	c.total = 0
	for i, n := range c.colLen {
		c.colOff[i] = c.total
		c.total += n
	}
	clear(c.cur)
	return true
}

// histScratch is the Encoder's scratch space for histograms.
type histScratch struct {
	cols  histCols
	ivals []int64
	fvals []float64
	col   []int64   // count, zero count or hint column
	fcol  []float64 // sums, float counts
	rs    []int64   // residuals of an integer column
	// it reads RecodeHistograms' input; then, under the invariants build
	// tag, the encoder's own chunk (recode holds copies by then).
	it     HistogramIterator
	recode histRecoder
}

// EncodeHistograms appends an EncHistPack chunk of the samples (ts[i],
// hs[i]) to dst. Timestamps must be strictly increasing; 1 to MaxSamples
// samples of at most MaxHistogramBuckets buckets in all; the spans must
// hold as many buckets as there are counts. ts and hs are only read.
func EncodeHistograms(dst []byte, ts []int64, hs []Histogram) ([]byte, error) {
	var e Encoder
	return e.EncodeHistograms(dst, ts, hs)
}

// EncodeFloatHistograms is EncodeHistograms for float histograms, in
// EncFloatHistPack.
func EncodeFloatHistograms(dst []byte, ts []int64, hs []FloatHistogram) ([]byte, error) {
	var e Encoder
	return e.EncodeFloatHistograms(dst, ts, hs)
}

// EncodeHistograms is like the package-level EncodeHistograms with the
// Encoder's scratch space.
func (e *Encoder) EncodeHistograms(dst []byte, ts []int64, hs []Histogram) ([]byte, error) {
	lay := func(i int) histLayout { return layoutOfHistogram(&hs[i]) }
	if err := checkHistogramSamples(len(hs), ts,
		func(i int) CounterResetHint { return hs[i].CounterResetHint },
		func(i int) (int, int) { return len(hs[i].PositiveBuckets), len(hs[i].NegativeBuckets) },
		lay); err != nil {
		return dst, err
	}
	s := &e.hist
	if err := s.cols.plan(len(hs), lay); err != nil {
		return dst, err
	}
	start := len(dst)
	e.writeHistHeader(dst, EncHistPack, ts, len(hs), func(i int) CounterResetHint { return hs[i].CounterResetHint })
	c := &s.cols
	mark := e.bitLen()
	s.col = s.col[:0]
	for i := range hs {
		s.col = append(s.col, int64(hs[i].Count))
	}
	e.writeIntColumn(s.col)
	s.col = s.col[:0]
	for i := range hs {
		s.col = append(s.col, int64(hs[i].ZeroCount))
	}
	e.writeIntColumn(s.col)
	e.account(histSecCounts, &mark)
	s.fcol = s.fcol[:0]
	for i := range hs {
		s.fcol = append(s.fcol, hs[i].Sum)
	}
	e.writeValues(s.fcol)
	e.account(histSecSum, &mark)
	// Absolute bucket counts, column by column.
	s.ivals = slices.Grow(s.ivals[:0], c.total)[:c.total]
	put := func(id int32, v int64) {
		s.ivals[c.colOff[id]+c.cur[id]] = v
		c.cur[id]++
	}
	for _, run := range c.runs {
		ids := c.ids[run.idOff : run.idOff+run.nb]
		for i := run.start; i < run.end; i++ {
			h := &hs[i]
			abs := int64(0)
			for b, d := range h.PositiveBuckets {
				abs += d
				put(ids[b], abs)
			}
			abs = 0
			np := len(h.PositiveBuckets)
			for b, d := range h.NegativeBuckets {
				abs += d
				put(ids[np+b], abs)
			}
		}
	}
	for id := range c.keys {
		e.writeIntColumn(s.ivals[c.colOff[id] : c.colOff[id]+c.colLen[id]])
	}
	e.account(histSecBuckets, &mark)
	dst = e.w.b
	e.w.b = nil
	if invariants.Enabled {
		checkHistogramsDecode(&s.it, dst[start:], ts, hs)
	}
	return dst, nil
}

// EncodeFloatHistograms is like the package-level EncodeFloatHistograms
// with the Encoder's scratch space.
func (e *Encoder) EncodeFloatHistograms(dst []byte, ts []int64, hs []FloatHistogram) ([]byte, error) {
	lay := func(i int) histLayout { return layoutOfFloatHistogram(&hs[i]) }
	if err := checkHistogramSamples(len(hs), ts,
		func(i int) CounterResetHint { return hs[i].CounterResetHint },
		func(i int) (int, int) { return len(hs[i].PositiveBuckets), len(hs[i].NegativeBuckets) },
		lay); err != nil {
		return dst, err
	}
	s := &e.hist
	if err := s.cols.plan(len(hs), lay); err != nil {
		return dst, err
	}
	start := len(dst)
	e.writeHistHeader(dst, EncFloatHistPack, ts, len(hs), func(i int) CounterResetHint { return hs[i].CounterResetHint })
	c := &s.cols
	mark := e.bitLen()
	for f, field := range [...]func(h *FloatHistogram) float64{
		func(h *FloatHistogram) float64 { return h.Count },
		func(h *FloatHistogram) float64 { return h.ZeroCount },
		func(h *FloatHistogram) float64 { return h.Sum },
	} {
		s.fcol = s.fcol[:0]
		for i := range hs {
			s.fcol = append(s.fcol, field(&hs[i]))
		}
		e.writeValues(s.fcol)
		if f < 2 {
			e.account(histSecCounts, &mark)
		} else {
			e.account(histSecSum, &mark)
		}
	}
	s.fvals = slices.Grow(s.fvals[:0], c.total)[:c.total]
	for _, run := range c.runs {
		ids := c.ids[run.idOff : run.idOff+run.nb]
		for i := run.start; i < run.end; i++ {
			h := &hs[i]
			for b, v := range h.PositiveBuckets {
				id := ids[b]
				s.fvals[c.colOff[id]+c.cur[id]] = v
				c.cur[id]++
			}
			np := len(h.PositiveBuckets)
			for b, v := range h.NegativeBuckets {
				id := ids[np+b]
				s.fvals[c.colOff[id]+c.cur[id]] = v
				c.cur[id]++
			}
		}
	}
	for id := range c.keys {
		e.writeValues(s.fvals[c.colOff[id] : c.colOff[id]+c.colLen[id]])
	}
	e.account(histSecBuckets, &mark)
	dst = e.w.b
	e.w.b = nil
	if invariants.Enabled {
		checkFloatHistogramsDecode(&s.it, dst[start:], ts, hs)
	}
	return dst, nil
}

// writeHistHeader appends the encoding byte and sample count, and writes
// the timestamps, hints and layouts sections into e.w, which it starts on
// dst. e.hist.cols holds the plan of the samples.
func (e *Encoder) writeHistHeader(dst []byte, enc Encoding, ts []int64, n int, hint func(int) CounterResetHint) {
	dst = append(dst, byte(enc))
	dst = binary.AppendUvarint(dst, uint64(n))
	e.w = bitWriter{b: dst}
	mark := e.bitLen()
	e.writeTimestamps(ts)
	e.account(histSecTimes, &mark)
	// Hints: the first in 2 bits, then the differences.
	s := &e.hist
	e.w.writeBits(uint64(hint(0)), 2)
	if n > 1 {
		s.col = s.col[:0]
		for i := 1; i < n; i++ {
			s.col = append(s.col, int64(hint(i))-int64(hint(i-1)))
		}
		e.ints.writeInts(&e.w, s.col)
	}
	c := &s.cols
	e.w.writeUvarint(uint64(len(c.runs)))
	for r := range c.runs {
		run := &c.runs[r]
		if r > 0 {
			e.w.writeUvarint(uint64(run.start - c.runs[r-1].start - 1))
			same := run.l.sameHeader(&c.runs[r-1].l)
			e.w.writeBit(same)
			if same {
				e.writeSpans(run.l.pos)
				e.writeSpans(run.l.neg)
				continue
			}
		}
		e.w.writeVarint(int64(run.l.schema))
		e.w.writeBits(run.l.zt, 64)
		// Custom values are bucket bounds people choose (0.005, 0.01,
		// 0.025, ...): EncPack's values section codes them as decimals in
		// a few bits each instead of 64 (1.7 instead of 3.5 bits per
		// sample for the layouts of 120-sample NHCB chunks).
		e.w.writeUvarint(uint64(len(run.l.cv)))
		if len(run.l.cv) > 0 {
			e.writeValues(run.l.cv)
		}
		e.writeSpans(run.l.pos)
		e.writeSpans(run.l.neg)
	}
	e.account(histSecLayout, &mark)
}

func (e *Encoder) writeSpans(ss []Span) {
	e.w.writeUvarint(uint64(len(ss)))
	for _, s := range ss {
		e.w.writeVarint(int64(s.Offset))
		e.w.writeUvarint(uint64(s.Length))
	}
}

// Orders of an integer column.
const (
	colAbs   = 0 // r_i = c_i - c_0
	colDelta = 1 // r_i = c_i - c_{i-1}
	colDoD   = 2 // r_i = (c_i - c_{i-1}) - (c_{i-1} - c_{i-2}), r_1 a delta
)

// writeIntColumn writes m >= 1 integers: varint c_0, then for m >= 2 a
// 2-bit order and the m-1 residuals as an integer stream. Arithmetic
// wraps, so any int64 (and any uint64 taken as int64) round-trips.
//
// The order is chosen by the total significant bits of the residuals, as
// EncPack chooses the order of decimal mantissas: delta suits a counter
// with bursts, delta-of-delta a steady rate, abs a gauge around a level.
func (e *Encoder) writeIntColumn(cs []int64) {
	e.w.writeVarint(cs[0])
	if len(cs) == 1 {
		return
	}
	var cost [3]int
	for i := 1; i < len(cs); i++ {
		d := cs[i] - cs[i-1]
		cost[colAbs] += bits.Len64(zigzag(cs[i] - cs[0]))
		cost[colDelta] += bits.Len64(zigzag(d))
		if i >= 2 {
			d -= cs[i-1] - cs[i-2]
		}
		cost[colDoD] += bits.Len64(zigzag(d))
	}
	order := colDelta
	if cost[colAbs] < cost[order] {
		order = colAbs
	}
	if cost[colDoD] < cost[order] {
		order = colDoD
	}
	e.w.writeBits(uint64(order), 2)
	s := &e.hist
	s.rs = s.rs[:0]
	for i := 1; i < len(cs); i++ {
		var r int64
		switch order {
		case colAbs:
			r = cs[i] - cs[0]
		case colDelta:
			r = cs[i] - cs[i-1]
		default:
			r = cs[i] - cs[i-1]
			if i >= 2 {
				r -= cs[i-1] - cs[i-2]
			}
		}
		s.rs = append(s.rs, r)
	}
	e.ints.writeInts(&e.w, s.rs)
}

// histNumSamples returns the sample count of a histogram chunk.
func histNumSamples(chunk []byte) (int, error) {
	n, k := binary.Uvarint(chunk[1:])
	if k <= 0 || n == 0 || n > MaxSamples {
		return 0, corrupt(Encoding(chunk[0]), 1, "bad sample count")
	}
	return int(n), nil
}

// histDecoder holds the scratch space of the histogram decoders.
type histDecoder struct {
	pd    packDecoder
	cols  histCols
	spans []Span
	cv    []float64
	col   []int64
	ivals []int64
	fvals []float64
	hints []CounterResetHint
}

// remainingBits is how many bits of input are left.
func (d *histDecoder) remainingBits() int { return 8*len(d.pd.r.src) + int(d.pd.r.n) }

// decodeHeader reads the sample count, timestamps, hints and layouts into
// ts (appended) and d.hints, d.cols. It returns the sample count.
func (d *histDecoder) decodeHeader(ts []int64, chunk []byte) ([]int64, int, string) {
	n, err := histNumSamples(chunk)
	if err != nil {
		return ts, 0, "bad sample count"
	}
	_, k := binary.Uvarint(chunk[1:])
	r := &d.pd.r
	r.reset(chunk[1+k:])
	n0 := len(ts)
	ts = grow(ts, n)
	if reason := d.pd.decodeTimestamps(ts[n0:]); reason != "" {
		return ts[:n0], 0, reason
	}
	h0, ok := r.readBits(2)
	if !ok {
		return ts[:n0], 0, "truncated counter reset hint"
	}
	d.hints = grow(d.hints[:0], n)
	d.hints[0] = CounterResetHint(h0)
	if n > 1 {
		d.col = grow(d.col[:0], n-1)
		if !readInts(r, d.col) {
			return ts[:n0], 0, "bad counter reset hints"
		}
		h := int64(h0)
		for i, x := range d.col {
			h += x
			if h < 0 || h > int64(GaugeType) {
				return ts[:n0], 0, "bad counter reset hint"
			}
			d.hints[i+1] = CounterResetHint(h)
		}
	}
	if reason := d.decodeLayouts(n); reason != "" {
		return ts[:n0], 0, reason
	}
	return ts, n, ""
}

func (d *histDecoder) decodeLayouts(n int) string {
	r := &d.pd.r
	c := &d.cols
	nr, ok := r.readUvarint()
	if !ok || nr == 0 || nr > uint64(n) {
		return "bad layout run count"
	}
	c.runs = c.runs[:0]
	d.spans, d.cv = d.spans[:0], d.cv[:0]
	total := uint64(0)
	for i := range int(nr) {
		run := histRun{start: 0, end: n}
		if i > 0 {
			prev := &c.runs[i-1]
			gap, ok := r.readUvarint()
			if !ok || gap >= uint64(n-prev.start-1) {
				return "bad layout run start"
			}
			run.start = prev.start + int(gap) + 1
			prev.end = run.start
			same, ok := r.readBit()
			if !ok {
				return "truncated layout"
			}
			if same {
				run.l.schema, run.l.zt = prev.l.schema, prev.l.zt
				run.cvOff, run.cvN = prev.cvOff, prev.cvN
				if reason := d.readSpans(&run); reason != "" {
					return reason
				}
				c.runs = append(c.runs, run)
				continue
			}
		}
		schema, ok1 := r.readVarint()
		zt, ok2 := r.readBits(64)
		ncv, ok3 := r.readUvarint()
		if !ok1 || !ok2 || !ok3 || schema != int64(int32(schema)) {
			return "bad layout header"
		}
		// A constant values section holds any number of values in 66
		// bits: the count is bounded by the chunk-wide limit instead.
		if ncv > MaxHistogramBuckets-uint64(len(d.cv)) {
			return "too many custom values"
		}
		run.l.schema, run.l.zt = int32(schema), zt
		run.cvOff, run.cvN = len(d.cv), int(ncv)
		if ncv > 0 {
			d.cv = grow(d.cv, int(ncv))
			if reason := d.pd.decodeValues(d.cv[run.cvOff:]); reason != "" {
				return "custom values: " + reason
			}
		}
		if reason := d.readSpans(&run); reason != "" {
			return reason
		}
		c.runs = append(c.runs, run)
	}
	// Bound the buckets before index materializes them.
	for i := range c.runs {
		run := &c.runs[i]
		nb := uint64(0)
		for _, s := range d.spans[run.posOff : run.posOff+run.posN] {
			nb += uint64(s.Length)
		}
		for _, s := range d.spans[run.negOff : run.negOff+run.negN] {
			nb += uint64(s.Length)
		}
		// The buckets of a run are distinct columns (index checks), and
		// every column takes at least 8 bits of what is left.
		if nb > MaxHistogramBuckets || nb > uint64(d.remainingBits()/8) {
			return "too many buckets"
		}
		total += nb * uint64(run.end-run.start)
		if total > MaxHistogramBuckets {
			return "too many buckets"
		}
	}
	// The flat buffers are complete: slice them.
	for i := range c.runs {
		run := &c.runs[i]
		run.l.pos = d.spans[run.posOff : run.posOff+run.posN : run.posOff+run.posN]
		run.l.neg = d.spans[run.negOff : run.negOff+run.negN : run.negOff+run.negN]
		run.l.cv = d.cv[run.cvOff : run.cvOff+run.cvN : run.cvOff+run.cvN]
	}
	if !c.index() {
		return "bucket index repeated in a layout"
	}
	return ""
}

func (d *histDecoder) readSpans(run *histRun) string {
	for sign := range 2 {
		r := &d.pd.r
		ns, ok := r.readUvarint()
		// A span is at least two bytes: a count beyond the input is
		// corrupt, not a reason to allocate.
		if !ok || ns > uint64(d.remainingBits()/16) {
			return "bad span count"
		}
		off := len(d.spans)
		for range ns {
			o, ok1 := r.readVarint()
			l, ok2 := r.readUvarint()
			if !ok1 || !ok2 || o != int64(int32(o)) || l > math.MaxUint32 {
				return "bad span"
			}
			d.spans = append(d.spans, Span{int32(o), uint32(l)})
		}
		if sign == 0 {
			run.posOff, run.posN = off, int(ns)
		} else {
			run.negOff, run.negN = off, int(ns)
		}
	}
	return ""
}

// readIntColumn fills dst (len >= 1) with a column written by
// writeIntColumn.
func (d *histDecoder) readIntColumn(dst []int64) bool {
	r := &d.pd.r
	c0, ok := r.readVarint()
	if !ok {
		return false
	}
	dst[0] = c0
	if len(dst) == 1 {
		return true
	}
	order, ok := r.readBits(2)
	if !ok || order > colDoD || !readInts(r, dst[1:]) {
		return false
	}
	switch order {
	case colAbs:
		for i := 1; i < len(dst); i++ {
			dst[i] += c0
		}
	case colDelta:
		for i := 1; i < len(dst); i++ {
			dst[i] += dst[i-1]
		}
	default:
		var delta int64
		for i := 1; i < len(dst); i++ {
			delta += dst[i]
			dst[i] = dst[i-1] + delta
		}
	}
	return true
}

// decodeHistograms decodes an EncHistPack chunk into ts (appended) and hs
// (resized to the sample count). The samples' slices point into bufs and
// d's buffers, which stay valid until the next decode with the same d and
// bufs. On error ts has its input length.
func (d *histDecoder) decodeHistograms(ts []int64, hs []Histogram, bufs *[]int64, chunk []byte) ([]int64, []Histogram, error) {
	n0 := len(ts)
	ts, n, reason := d.decodeHeader(ts, chunk)
	fail := func(reason string) ([]int64, []Histogram, error) {
		return ts[:n0], hs[:0], corrupt(EncHistPack, d.pd.offset(chunk), reason)
	}
	if reason != "" {
		return fail(reason)
	}
	hs = grow(hs[:0], n)
	d.col = grow(d.col[:0], n)
	if !d.readIntColumn(d.col) {
		return fail("bad count column")
	}
	for i, v := range d.col {
		hs[i] = Histogram{CounterResetHint: d.hints[i], Count: uint64(v)}
	}
	if !d.readIntColumn(d.col) {
		return fail("bad zero count column")
	}
	for i, v := range d.col {
		hs[i].ZeroCount = uint64(v)
	}
	d.fvals = grow(d.fvals[:0], n)
	if reason := d.pd.decodeValues(d.fvals); reason != "" {
		return fail("sums: " + reason)
	}
	for i, v := range d.fvals {
		hs[i].Sum = v
	}
	c := &d.cols
	d.ivals = grow(d.ivals[:0], c.total)
	for id := range c.keys {
		if !d.readIntColumn(d.ivals[c.colOff[id] : c.colOff[id]+c.colLen[id]]) {
			return fail(fmt.Sprintf("bad bucket column %d", id))
		}
	}
	out := grow((*bufs)[:0], c.total)
	*bufs = out
	off := 0
	for _, run := range c.runs {
		ids := c.ids[run.idOff : run.idOff+run.nb]
		np := int(spansLen(run.l.pos))
		for i := run.start; i < run.end; i++ {
			h := &hs[i]
			h.Schema, h.ZeroThreshold = run.l.schema, math.Float64frombits(run.l.zt)
			h.PositiveSpans, h.NegativeSpans, h.CustomValues = run.l.pos, run.l.neg, run.l.cv
			prev := int64(0)
			for b, id := range ids {
				if b == np {
					prev = 0
				}
				v := d.ivals[c.colOff[id]+c.cur[id]]
				c.cur[id]++
				out[off+b] = v - prev
				prev = v
			}
			h.PositiveBuckets = out[off : off+np : off+np]
			h.NegativeBuckets = out[off+np : off+run.nb : off+run.nb]
			off += run.nb
		}
	}
	return ts, hs, nil
}

// decodeFloatHistograms is decodeHistograms for EncFloatHistPack.
func (d *histDecoder) decodeFloatHistograms(ts []int64, hs []FloatHistogram, bufs *[]float64, chunk []byte) ([]int64, []FloatHistogram, error) {
	n0 := len(ts)
	ts, n, reason := d.decodeHeader(ts, chunk)
	fail := func(reason string) ([]int64, []FloatHistogram, error) {
		return ts[:n0], hs[:0], corrupt(EncFloatHistPack, d.pd.offset(chunk), reason)
	}
	if reason != "" {
		return fail(reason)
	}
	hs = grow(hs[:0], n)
	for i := range hs {
		hs[i] = FloatHistogram{CounterResetHint: d.hints[i]}
	}
	d.fvals = grow(d.fvals[:0], n)
	for f, name := range [...]string{"count", "zero count", "sum"} {
		if reason := d.pd.decodeValues(d.fvals); reason != "" {
			return fail(name + ": " + reason)
		}
		for i, v := range d.fvals {
			switch f {
			case 0:
				hs[i].Count = v
			case 1:
				hs[i].ZeroCount = v
			default:
				hs[i].Sum = v
			}
		}
	}
	c := &d.cols
	vals := grow(d.fvals[:0], c.total)
	d.fvals = vals
	for id := range c.keys {
		if reason := d.pd.decodeValues(vals[c.colOff[id] : c.colOff[id]+c.colLen[id]]); reason != "" {
			return fail(fmt.Sprintf("bucket column %d: %s", id, reason))
		}
	}
	out := grow((*bufs)[:0], c.total)
	*bufs = out
	off := 0
	for _, run := range c.runs {
		ids := c.ids[run.idOff : run.idOff+run.nb]
		np := int(spansLen(run.l.pos))
		for i := run.start; i < run.end; i++ {
			h := &hs[i]
			h.Schema, h.ZeroThreshold = run.l.schema, math.Float64frombits(run.l.zt)
			h.PositiveSpans, h.NegativeSpans, h.CustomValues = run.l.pos, run.l.neg, run.l.cv
			for b, id := range ids {
				out[off+b] = vals[c.colOff[id]+c.cur[id]]
				c.cur[id]++
			}
			h.PositiveBuckets = out[off : off+np : off+np]
			h.NegativeBuckets = out[off+np : off+run.nb : off+run.nb]
			off += run.nb
		}
	}
	return ts, hs, nil
}

// RecodeHistograms decodes histogram chunks of one encoding, which must
// hold increasing timestamps across them (consecutive chunks of one
// series), and appends one chunk of all their samples in that encoding to
// dst: it merges small sealed chunks into a larger block, as Recode does
// for floats. The samples must fit in one chunk (MaxSamples,
// MaxHistogramBuckets).
func (e *Encoder) RecodeHistograms(dst []byte, chunks ...[]byte) ([]byte, error) {
	s := &e.hist
	r := &s.recode
	r.reset()
	if len(chunks) == 0 {
		return dst, ErrEmpty
	}
	var enc Encoding
	for i, c := range chunks {
		s.it.Reset(c)
		if i == 0 {
			enc = s.it.Encoding()
		} else if s.it.Encoding() != enc && s.it.Err() == nil {
			return dst, fmt.Errorf("recode chunk %d: a %s chunk after %s chunks", i, s.it.Encoding(), enc)
		}
		n0 := len(r.ts)
		for s.it.Next() {
			if enc == EncHistPack {
				t, h := s.it.At()
				r.addHistogram(t, h)
			} else {
				t, h := s.it.AtFloat()
				r.addFloatHistogram(t, h)
			}
		}
		if err := s.it.Err(); err != nil {
			return dst, fmt.Errorf("recode chunk %d: %w", i, err)
		}
		if n0 > 0 && n0 < len(r.ts) && r.ts[n0] <= r.ts[n0-1] {
			return dst, fmt.Errorf("recode chunk %d: starts at %d, not after %d: %w", i, r.ts[n0], r.ts[n0-1], ErrOutOfOrder)
		}
	}
	if enc == EncHistPack {
		return e.EncodeHistograms(dst, r.ts, r.histograms())
	}
	return e.EncodeFloatHistograms(dst, r.ts, r.floatHistograms())
}

// histRecoder collects decoded samples for RecodeHistograms. Their slices
// are copied into flat buffers (the iterator's are reused per chunk) and
// sliced once all are in, since the buffers move as they grow.
type histRecoder struct {
	ts    []int64
	hs    []Histogram
	fhs   []FloatHistogram
	offs  []histOffsets
	spans []Span
	ints  []int64
	flts  []float64 // float buckets and custom values
}

// histOffsets locates a sample's slices in the flat buffers: starts and
// lengths of positive and negative spans, buckets and custom values.
type histOffsets struct {
	ps, pn, ns, nn, pb, npb, nb, nnb, cv, ncv int
}

func (r *histRecoder) reset() {
	r.ts, r.hs, r.fhs, r.offs = r.ts[:0], r.hs[:0], r.fhs[:0], r.offs[:0]
	r.spans, r.ints, r.flts = r.spans[:0], r.ints[:0], r.flts[:0]
}

func (r *histRecoder) addSpansAndCV(pos, neg []Span, cv []float64) histOffsets {
	var o histOffsets
	o.ps, o.pn = len(r.spans), len(pos)
	r.spans = append(r.spans, pos...)
	o.ns, o.nn = len(r.spans), len(neg)
	r.spans = append(r.spans, neg...)
	o.cv, o.ncv = len(r.flts), len(cv)
	r.flts = append(r.flts, cv...)
	return o
}

func (r *histRecoder) addHistogram(t int64, h *Histogram) {
	o := r.addSpansAndCV(h.PositiveSpans, h.NegativeSpans, h.CustomValues)
	o.pb, o.npb = len(r.ints), len(h.PositiveBuckets)
	r.ints = append(r.ints, h.PositiveBuckets...)
	o.nb, o.nnb = len(r.ints), len(h.NegativeBuckets)
	r.ints = append(r.ints, h.NegativeBuckets...)
	r.ts, r.hs, r.offs = append(r.ts, t), append(r.hs, *h), append(r.offs, o)
}

func (r *histRecoder) addFloatHistogram(t int64, h *FloatHistogram) {
	o := r.addSpansAndCV(h.PositiveSpans, h.NegativeSpans, h.CustomValues)
	o.pb, o.npb = len(r.flts), len(h.PositiveBuckets)
	r.flts = append(r.flts, h.PositiveBuckets...)
	o.nb, o.nnb = len(r.flts), len(h.NegativeBuckets)
	r.flts = append(r.flts, h.NegativeBuckets...)
	r.ts, r.fhs, r.offs = append(r.ts, t), append(r.fhs, *h), append(r.offs, o)
}

func (r *histRecoder) histograms() []Histogram {
	for i, o := range r.offs {
		h := &r.hs[i]
		h.PositiveSpans, h.NegativeSpans = r.spans[o.ps:o.ps+o.pn], r.spans[o.ns:o.ns+o.nn]
		h.PositiveBuckets, h.NegativeBuckets = r.ints[o.pb:o.pb+o.npb], r.ints[o.nb:o.nb+o.nnb]
		h.CustomValues = r.flts[o.cv : o.cv+o.ncv]
	}
	return r.hs
}

func (r *histRecoder) floatHistograms() []FloatHistogram {
	for i, o := range r.offs {
		h := &r.fhs[i]
		h.PositiveSpans, h.NegativeSpans = r.spans[o.ps:o.ps+o.pn], r.spans[o.ns:o.ns+o.nn]
		h.PositiveBuckets, h.NegativeBuckets = r.flts[o.pb:o.pb+o.npb], r.flts[o.nb:o.nb+o.nnb]
		h.CustomValues = r.flts[o.cv : o.cv+o.ncv]
	}
	return r.fhs
}
