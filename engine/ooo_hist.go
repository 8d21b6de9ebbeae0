package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/histogram"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/invariants"
	"github.com/myelindb/myelin/write"
)

// Out-of-order native histograms (docs/design.md, "Out-of-order
// window"): a histogram sample older than its series' newest one and
// within the window is written where it belongs at once, by the rules of
// float samples (ooo.go) and with the same replay argument:
//
//   - at or after the first sample of the open histogram chunk, into the
//     open chunk: its samples and the new one are appended again, in time
//     order, into new chunks of Prometheus's encoding, exactly as
//     Prometheus's head appends them in order (appendHistLocked): where its
//     appender cuts (a counter reset, a schema change) the earlier part is
//     sealed at its first sample's key, and the last part is the open
//     chunk. Memory only, but for those seals;
//   - before it, into the sealed chunk of its partition with the newest
//     first sample at or before it, decoded (either sealed encoding) and
//     re-encoded in chunkenc's histpack at the same key, which keeps any
//     sequence of histograms with each sample's own counter reset hint,
//     so a sealed chunk never splits; if the partition has no such chunk,
//     into a new chunk of that one sample at its own key. As for floats,
//     the chunk stays decoded while the next histograms of the batch
//     series go into it (oooHistChunk).
//
// Counter reset hints. A reader trusts CounterReset and NotCounterReset
// and compares with the previous sample otherwise (PromQL's
// DetectReset). A hint says how a sample relates to the one before it,
// and an insertion changes the one before two samples: the inserted one
// and the next. In the open chunk Prometheus's appender decides both, as
// it does for samples in order: it compares every sample it appends with
// the one before and cuts the chunk where it is a reset. In a sealed
// chunk both get UnknownCounterReset unless they are gauge histograms;
// Prometheus's equivalent is its query merge (storage/merge.go,
// chainSampleIterator), which makes the hint of every sample that does
// not follow its predecessor's chunk UnknownCounterReset. The next
// histogram is always in the same chunk or the first of a later one, and
// INVARIANT: the first sample of every histogram chunk reads as
// UnknownCounterReset or GaugeType. Prometheus's iterators read the
// first sample of a chunk so whatever its header says (the chunk before
// may have been written later, tsdb/chunkenc counterResetHint), sealing
// keeps the hints it reads, and an insertion never changes a chunk's
// first sample but to a new chunk of its own, marked.
//
// Replay: the argument of ooo.go holds unchanged. The chunk a sample
// goes into depends only on the keys at or before it in its partition;
// the open chunk is appended again in memory only, and where it is cut
// the earlier parts are sealed at keys at or after its first sample,
// like any later seal. A histogram equal to the stored one at its time
// (a retry, or a replayed insertion) changes nothing: a chunk holding it
// holds the marks its insertion made (one write), and marks are never
// undone in a sealed chunk.

// errOOOHistInFloat refuses an out-of-order histogram sample in the time
// range of a float chunk of its series.
var errOOOHistInFloat = fmt.Errorf("%w: a native histogram sample in the time range of the series' float samples", write.ErrOutOfOrder)

// errOOOHistKind refuses an out-of-order histogram sample in the time
// range of a chunk of the other kind of histograms: an integer histogram
// among float histograms, or the reverse. Rejected: converting the
// chunk (an integer chunk would become a float one for one sample).
var errOOOHistKind = fmt.Errorf("%w: an integer native histogram among float histograms of the series, or the reverse", write.ErrOutOfOrder)

// histSample is a histogram sample of a chunk being rewritten (one of h
// and fh set), owned by the rewrite.
type histSample struct {
	t  int64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (x histSample) hint() histogram.CounterResetHint {
	if x.fh != nil {
		return x.fh.CounterResetHint
	}
	return x.h.CounterResetHint
}

// markOOO makes the hint of x UnknownCounterReset unless it is a gauge
// histogram, and reports whether it changed.
func (x histSample) markOOO() bool {
	hint := x.hint()
	if hint == histogram.UnknownCounterReset || hint == histogram.GaugeType {
		return false
	}
	if x.fh != nil {
		x.fh.CounterResetHint = histogram.UnknownCounterReset
	} else {
		x.h.CounterResetHint = histogram.UnknownCounterReset
	}
	return true
}

func cmpHistSampleTime(x histSample, t int64) int {
	switch {
	case x.t < t:
		return -1
	case x.t > t:
		return 1
	}
	return 0
}

// oooHistScratch holds the buffers of out-of-order histogram inserts;
// part of applyScratch, guarded by Group.applyMu.
type oooHistScratch struct {
	enc  chunkenc.Encoder
	smps []histSample // of a sealed chunk, histograms reused
	open []histSample // of the open chunk, no histograms past its length
	ts   []int64
	hs   []chunkenc.Histogram
	fhs  []chunkenc.FloatHistogram
	hi   histIters
}

// readHistSamples appends copies of the samples of a histogram chunk
// iterator to dst, into the histograms dst holds past its length (its
// capacity) where there are some: a caller that reads chunk after chunk
// into the same slice allocates once. Histograms handed to Prometheus's
// appender must not be read into again (it keeps their spans): such a
// caller passes a slice without histograms past its length.
func readHistSamples(dst []histSample, it promchunk.Iterator) ([]histSample, error) {
	for {
		vt := it.Next()
		var x histSample
		if len(dst) < cap(dst) {
			x = dst[:len(dst)+1][len(dst)]
		}
		switch vt {
		case promchunk.ValNone:
			return dst, it.Err()
		case promchunk.ValHistogram:
			if x.h == nil {
				// Into a histogram: nil would share the iterator's spans.
				x.h = &histogram.Histogram{}
			}
			x.t, x.h = it.AtHistogram(x.h)
			x.fh = nil
		case promchunk.ValFloatHistogram:
			if x.fh == nil {
				x.fh = &histogram.FloatHistogram{}
			}
			x.t, x.fh = it.AtFloatHistogram(x.fh)
			x.h = nil
		default:
			return dst, fmt.Errorf("sample of type %v in a histogram chunk", vt)
		}
		dst = append(dst, x)
	}
}

// sameOrDuplicateHist is the answer to x at the time of the stored
// sample stored: none if they are the same histogram (a retry),
// write.ErrDuplicateSample otherwise, as at the newest sample.
func sameOrDuplicateHist(stored, x histSample) error {
	if sameHistogram(x.h, x.fh, stored.h, stored.fh) {
		return nil
	}
	return write.ErrDuplicateSample
}

// insertHistOOOLocked writes hs, a histogram sample accepted as out of
// order (older than the newest sample of s, within the window), where it
// belongs. It returns a refusal for a sample it cannot write, an error
// only for I/O. A histogram equal to the stored one at its time is
// accepted and changes nothing.
func (a *appender) insertHistOOOLocked(s *memSeries, hs *write.Histogram) (refusal, err error) {
	if err := a.flushOOOLocked(); err != nil {
		return nil, err
	}
	// A copy: the batch's histogram is the caller's, and Prometheus's
	// appender may change the spans of what it appends.
	x := histSample{t: hs.T}
	if hs.FH != nil {
		x.fh = hs.FH.Copy()
	} else {
		x.h = hs.H.Copy()
	}
	x.markOOO()
	if s.numSamples() > 0 && x.t >= s.mint {
		// Its cuts write chunks at and after s.mint.
		if err := a.flushOOOHistLocked(); err != nil {
			return nil, err
		}
		switch {
		case !s.histOpen():
			return errOOOHistInFloat, nil
		case s.hist.float != (x.fh != nil):
			return errOOOHistKind, nil
		}
		return a.insertHistHeadLocked(s, x)
	}
	return a.insertHistSealedLocked(s, x)
}

// histPiece is a chunk cut off while the open chunk is appended again.
type histPiece struct {
	c          promchunk.Chunk
	mint, maxt int64
}

// insertHistHeadLocked inserts x into the open histogram chunk of s (of
// its kind), after its first sample.
func (a *appender) insertHistHeadLocked(s *memSeries, x histSample) (refusal, err error) {
	sc := &a.scratch.ooh
	old := s.hist.c
	// Histograms of their own (sc.open holds none past its length): the
	// appender keeps the spans of the ones it appends.
	smps, err := readHistSamples(sc.open[:0], old.Iterator(nil))
	defer func() {
		clear(smps[:cap(smps)])
		sc.open = smps[:0]
	}()
	if err != nil {
		return nil, fmt.Errorf("open histogram chunk of series %d: %w", s.id, err)
	}
	i, found := slices.BinarySearchFunc(smps, x.t, cmpHistSampleTime)
	switch {
	case found:
		return sameOrDuplicateHist(smps[i], x), nil
	case len(smps) >= chunkenc.MaxSamples:
		return errOOOChunkFull, nil
	}
	smps = slices.Insert(smps, i, x)
	// The first sample's counter reset header is the chunk's to keep (a
	// NotCounterReset header reads back as a hint that appending does not
	// set again): the samples are appended again as read, and x with its
	// hint, as appendHistLocked appends them in order.
	header := old.Bytes()[2] & promchunk.CounterResetHeaderMask
	var nh histHead
	nh.start(s.hist.float)
	var pieces []histPiece
	mint := smps[0].t
	for j, smp := range smps {
		prevMaxt := nh.maxt
		cut, err := nh.append(smp.t, smp.h, smp.fh)
		if err != nil {
			return nil, fmt.Errorf("insert histogram at %d into the open chunk of series %d: %w", x.t, s.id, err)
		}
		if j == 0 {
			setCounterResetHeader(nh.c, header)
		}
		if cut != nil {
			pieces = append(pieces, histPiece{c: cut, mint: mint, maxt: prevMaxt})
			mint = smp.t
		}
	}
	// INVARIANT: the open chunk reopens to the same bytes after a
	// restart (histHead.load), as every chunk appended in order does,
	// which this one is. Checked under the invariants tag only: it costs
	// as much again as appending (BenchmarkApplyOutOfOrderHistograms,
	// open: 40% of the time).
	if invariants.Enabled {
		var chk histHead
		if err := chk.load(nh.appendBytes(nil)); err != nil {
			panic(fmt.Sprintf("BUG: series %d: open histogram chunk with an out-of-order sample at %d does not reopen: %v", s.id, x.t, err))
		}
	}
	for _, p := range pieces {
		if err := a.writeHistChunkLocked(s, p.c, p.mint, p.maxt); err != nil {
			return nil, err
		}
	}
	*s.hist = nh
	s.mint = mint
	a.t.appendedLocked(s)
	return nil, nil
}

// setCounterResetHeader sets the counter reset header of one of
// Prometheus's histogram chunks (the top bits of its third byte).
func setCounterResetHeader(c promchunk.Chunk, header byte) {
	b := c.Bytes()
	b[2] = b[2]&^promchunk.CounterResetHeaderMask | header&promchunk.CounterResetHeaderMask
}

// oooHistChunk is oooChunk (ooo.go) for histograms: the sealed chunk the
// last out-of-order histogram of a batch series went into, decoded (in
// oooHistScratch.smps), while the next histograms of the series go into
// it too: a backfill of n histograms into one chunk decodes and encodes
// it once, not n times. It takes the histograms in [mint, end), the ones
// insertHistSealedLocked would send to it. flushOOOHistLocked writes it
// before anything else reads or writes chunks of the series (an
// in-order histogram, the open chunk's insertions, the end of the batch
// series), so the entry writes what inserting them one by one would.
type oooHistChunk struct {
	s         *memSeries // nil: none
	key       []byte
	mint, end int64
	float     bool // of float histograms
	dirty     bool // holds histograms not written yet
	buckets   int  // bucket counts and custom values of its samples
}

// histBuckets is what x adds to a histpack chunk's bound on buckets
// (chunkenc.MaxHistogramBuckets): its bucket counts and custom values,
// the custom values counted for every sample (a chunk stores them once
// per run of one layout): a bound above the encoder's own, so the chunk
// written at the flush always encodes.
func histBuckets(x histSample) int {
	if x.fh != nil {
		return len(x.fh.PositiveBuckets) + len(x.fh.NegativeBuckets) + len(x.fh.CustomValues)
	}
	return len(x.h.PositiveBuckets) + len(x.h.NegativeBuckets) + len(x.h.CustomValues)
}

// insertHistSealedLocked inserts x, older than the open chunk of s (or s
// has none), into the sealed chunks of its partition, read through the
// apply batch, through a.oooh.
func (a *appender) insertHistSealedLocked(s *memSeries, x histSample) (refusal, err error) {
	c, sc := &a.oooh, &a.scratch.ooh
	if c.s != s || x.t < c.mint || x.t >= c.end {
		if err := a.flushOOOHistLocked(); err != nil {
			return nil, err
		}
		if r, err := a.loadOOOHistLocked(s, x); r != nil || err != nil {
			return r, err
		}
	}
	if c.float != (x.fh != nil) {
		return errOOOHistKind, nil
	}
	smps := sc.smps
	i, dup := slices.BinarySearchFunc(smps, x.t, cmpHistSampleTime)
	switch {
	case dup:
		return sameOrDuplicateHist(smps[i], x), nil
	case len(smps) >= chunkenc.MaxSamples:
		return errOOOChunkFull, nil
	case c.buckets+histBuckets(x) > chunkenc.MaxHistogramBuckets:
		return fmt.Errorf("%w: the chunk of its time range holds %d buckets, the most a chunk holds is %d", write.ErrOutOfOrder, c.buckets, chunkenc.MaxHistogramBuckets), nil
	}
	smps = slices.Insert(smps, i, x)
	sc.smps = smps
	if i+1 < len(smps) {
		smps[i+1].markOOO()
	}
	c.buckets += histBuckets(x)
	c.dirty = true
	return nil, nil
}

// loadOOOHistLocked makes a.oooh the chunk of s that x goes into: the one
// of its partition with the newest mint at or before x, or, if there is
// none, a new one at x (empty until x is inserted; the series' postings
// of the partition are written now). It returns a refusal if that chunk
// is a float chunk or of the other kind of histograms.
func (a *appender) loadOOOHistLocked(s *memSeries, x histSample) (refusal, err error) {
	c, sc, ks := &a.oooh, &a.scratch.ooh, a.t.ks
	p := partitionOf(x.t, a.g.db.partitionMs)
	if p < a.t.mu.retainPart {
		return write.ErrTooOld, nil
	}
	series := ks.chunkSeries(nil, p, s.id)
	it, err := a.pb.NewIter(&pebble.IterOptions{LowerBound: series, UpperBound: successor(series)})
	if err != nil {
		return nil, err
	}
	// x.t is below the series' newest sample: x.t+1 does not overflow.
	*c = oooHistChunk{s: s, key: c.key[:0], mint: x.t, end: partitionEnd(p, a.g.db.partitionMs), float: x.fh != nil}
	smps := sc.smps[:0]
	found := it.SeekLT(ks.chunkKey(nil, p, s.id, x.t+1))
	if found {
		c.key = append(c.key, it.Key()...)
		c.mint = readTime(c.key[len(c.key)-8:])
		v := it.Value()
		_, n := binary.Uvarint(v)
		switch {
		case n <= 0:
			err = fmt.Errorf("chunk %x: bad header", c.key)
		case !isHistChunk(v[n:]):
			refusal = errOOOHistInFloat
		default:
			c.float = isFloatHistChunk(v[n:])
			var hit promchunk.Iterator
			if hit, err = sc.hi.iterator(v[n:]); err == nil {
				smps, err = readHistSamples(smps, hit)
			}
		}
		if err == nil && refusal == nil && it.Next() {
			c.end = readTime(it.Key()[len(it.Key())-8:])
		}
	} else if it.First() {
		c.end = readTime(it.Key()[len(it.Key())-8:])
	}
	sc.smps = smps
	if err := errors.Join(err, it.Error(), it.Close()); err != nil {
		c.s = nil
		return nil, fmt.Errorf("out-of-order histogram of series %d at %d: %w", s.id, x.t, err)
	}
	if refusal != nil {
		c.s = nil
		return refusal, nil
	}
	for _, y := range smps {
		c.buckets += histBuckets(y)
	}
	if !found {
		// The series' first sample in this partition before its sealed
		// chunks there, if any: a chunk of its own.
		c.key = ks.chunkKey(c.key[:0], p, s.id, x.t)
		return nil, a.writePostings(s, p)
	}
	return nil, nil
}

// flushOOOHistLocked writes a.oooh if it holds histograms not written
// yet, and forgets it.
func (a *appender) flushOOOHistLocked() error {
	c := &a.oooh
	if c.s == nil {
		return nil
	}
	s, dirty := c.s, c.dirty
	c.s, c.dirty = nil, false
	if !dirty {
		return nil
	}
	r, err := a.writeHistSamplesLocked(s, c.key, a.scratch.ooh.smps)
	if r != nil {
		// Inserting checked the bound on buckets, which is above the
		// encoder's.
		panic(fmt.Sprintf("BUG: series %d: out-of-order histogram chunk at %d does not encode: %v", s.id, c.mint, r))
	}
	return err
}

// writeHistSamplesLocked writes the sealed histogram chunk of smps (sorted,
// one kind, the first at key's time) at key, in chunkenc's histpack. It
// returns a refusal when they do not fit one chunk (chunkenc.ErrFull: too
// many buckets).
func (a *appender) writeHistSamplesLocked(s *memSeries, key []byte, smps []histSample) (refusal, err error) {
	val := binary.AppendUvarint(a.scratch.val[:0], uint64(smps[len(smps)-1].t-smps[0].t))
	hdr := len(val)
	val, err = a.scratch.ooh.encode(val, smps)
	a.scratch.val = val
	if errors.Is(err, chunkenc.ErrFull) {
		return fmt.Errorf("%w: the chunk of its time range cannot take it: %v", write.ErrOutOfOrder, err), nil
	}
	if err != nil {
		return nil, fmt.Errorf("out-of-order histogram chunk of series %d at %d: %w", s.id, smps[0].t, err)
	}
	if invariants.Enabled {
		checkSealedHist(s.id, val[hdr:], smps)
	}
	return nil, a.pb.Set(key, val, nil)
}

// encode appends the histpack chunk of smps (sorted, one kind) to dst,
// the samples copied field for field, hints included.
func (sc *oooHistScratch) encode(dst []byte, smps []histSample) ([]byte, error) {
	if invariants.Enabled {
		if h := smps[0].hint(); h != histogram.UnknownCounterReset && h != histogram.GaugeType {
			panic(fmt.Sprintf("BUG: histogram chunk at %d starts with counter reset hint %d", smps[0].t, h))
		}
	}
	sc.ts = sc.ts[:0]
	for _, x := range smps {
		sc.ts = append(sc.ts, x.t)
	}
	if smps[0].fh != nil {
		sc.fhs = slices.Grow(sc.fhs[:0], len(smps))[:len(smps)]
		for i, x := range smps {
			fromPromFloatHistogram(&sc.fhs[i], x.fh)
		}
		return sc.enc.EncodeFloatHistograms(dst, sc.ts, sc.fhs)
	}
	sc.hs = slices.Grow(sc.hs[:0], len(smps))[:len(smps)]
	for i, x := range smps {
		fromPromHistogram(&sc.hs[i], x.h)
	}
	return sc.enc.EncodeHistograms(dst, sc.ts, sc.hs)
}

// histpackOutside is histOutside (delete_range.go) for a histpack chunk
// that Prometheus's appender cannot take whole: one that out-of-order
// histograms went into may hold a counter reset or a schema change
// between two samples, which histpack keeps and Prometheus's chunk
// cuts at. The samples outside [start, end] are kept as they are, in
// histpack, but for the hints of the first of them and of each one
// after a deleted sample: UnknownCounterReset unless gauge histograms,
// as an insertion marks its next (their predecessor changed). Without
// it the chunk would be kept whole, its deleted samples with it.
func histpackOutside(data []byte, start, end int64) (out []byte, first, last int64, kept int, err error) {
	var hi histIters
	it, err := hi.iterator(data)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	smps, err := readHistSamples(nil, it)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	keep, gap := smps[:0], true
	for _, x := range smps {
		if x.t >= start && x.t <= end {
			gap = true
			continue
		}
		if gap {
			x.markOOO()
			gap = false
		}
		keep = append(keep, x)
	}
	if len(keep) == 0 {
		return nil, 0, 0, 0, nil
	}
	var sc oooHistScratch
	if out, err = sc.encode(nil, keep); err != nil {
		return nil, 0, 0, 0, err
	}
	return out, keep[0].t, keep[len(keep)-1].t, len(keep), nil
}

// checkSealedHist panics unless chunk holds exactly smps, every field's
// bits compared.
func checkSealedHist(id uint64, chunk []byte, smps []histSample) {
	var hi histIters
	it, err := hi.iterator(chunk)
	if err == nil {
		var got []histSample
		if got, err = readHistSamples(nil, it); err == nil && len(got) != len(smps) {
			err = fmt.Errorf("%d samples, want %d", len(got), len(smps))
		}
		for i := 0; err == nil && i < len(got); i++ {
			if got[i].t != smps[i].t || histBits(got[i].h, got[i].fh) != histBits(smps[i].h, smps[i].fh) {
				err = fmt.Errorf("sample %d at %d: %s, want %s at %d", i, got[i].t, histBits(got[i].h, got[i].fh), histBits(smps[i].h, smps[i].fh), smps[i].t)
			}
		}
	}
	if err != nil {
		panic(fmt.Sprintf("BUG: out-of-order histogram chunk of series %d: %v", id, err))
	}
}

// isFloatHistChunk reports whether a stored histogram chunk holds float
// histograms, in either encoding.
func isFloatHistChunk(data []byte) bool {
	return len(data) > 0 && (data[0] == encPromFloatHistogram || data[0] == encFloatHistPack)
}
