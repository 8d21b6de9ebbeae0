package engine

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/histogram"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/invariants"
)

// seriesIterator iterates the samples of a series in [mint, maxt]: its
// sealed chunks from the snapshot, then its open chunk copy. On first use it
// copies the series' chunks in the range out of Pebble (one iterator, one
// seek per partition) so no Pebble iterator outlives a call.
//
// INVARIANT: emitted timestamps strictly increase. Chunks never overlap
// once a group has replayed its log, but between OpenGroup and the end of
// the replay Pebble may hold chunks sealed after the recovered open chunk
// started (see Recovery in doc.go); samples at or before the last emitted
// one are skipped, so such a read sees each sample once.
type seriesIterator struct {
	s      *series
	loaded bool
	chunks []storedChunk
	buf    []byte // backing of chunks[i].data
	ci     int    // index of the current chunk, -1 before the first
	cur    chunkenc.Iterator
	// hcur iterates the current chunk when it is a histogram chunk
	// (curHist): one of hits, for the chunk's encoding (histchunk.go).
	hcur    promchunk.Iterator
	hits    histIters
	curHist bool
	t       int64
	v       float64
	vt      promchunk.ValueType // of the current sample
	state   iterState
	err     error
	key     []byte
	st      stReader // the start timestamps, read at the first AtST
}

type storedChunk struct {
	mint, maxt int64
	off, end   int // data in buf
}

type iterState uint8

const (
	iterStart iterState = iota
	iterValid
	iterDone
)

func (it *seriesIterator) reset(s *series) {
	it.s = s
	it.loaded = false
	it.chunks = it.chunks[:0]
	it.buf = it.buf[:0]
	it.ci = -1
	it.state = iterStart
	it.err = nil
	it.cur.Reset(nil)
	it.curHist = false
	it.st.reset()
}

// open makes chunk i the current chunk.
func (it *seriesIterator) open(i int) bool {
	data := it.data(i)
	if !isHistChunk(data) {
		it.cur.Reset(data)
		it.curHist = false
		return true
	}
	hcur, err := it.hits.iterator(data)
	if err != nil {
		return it.fail(fmt.Errorf("series %d chunk at %d: %w", it.s.id, it.chunks[i].mint, err))
	}
	it.hcur = hcur
	it.curHist = true
	return true
}

// step moves to the next sample of the current chunk: its time and type,
// ValNone at the end of the chunk.
func (it *seriesIterator) step() (int64, promchunk.ValueType) {
	if it.curHist {
		vt := it.hcur.Next()
		if vt == promchunk.ValNone {
			return 0, vt
		}
		return it.hcur.AtT(), vt
	}
	if !it.cur.Next() {
		return 0, promchunk.ValNone
	}
	t, v := it.cur.At()
	it.v = v
	return t, promchunk.ValFloat
}

// curErr is the error of the current chunk's iterator.
func (it *seriesIterator) curErr() error {
	if it.curHist {
		return it.hcur.Err()
	}
	return it.cur.Err()
}

func (it *seriesIterator) load() bool {
	if it.loaded {
		return true
	}
	it.loaded = true
	s := it.s
	if s.headOnly {
		if invariants.Enabled {
			it.checkHeadOnly()
		}
		return it.loadHead()
	}
	lo := s.ks.chunkPart(nil, s.p0)
	hi := s.ks.chunkPart(nil, s.p1)
	hi = successor(hi)
	pit, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return it.fail(err)
	}
	var budgetErr error
	err = s.chunks(pit, &it.key, func(cmint, cmaxt int64, data []byte) (bool, error) {
		// Counted before it is held: a series past the query's chunk
		// budget stops at the chunk that crosses it.
		if s.budget != nil {
			if budgetErr = s.budget.AddChunkBytes(len(data)); budgetErr != nil {
				return false, nil
			}
		}
		off := len(it.buf)
		it.buf = append(it.buf, data...)
		it.chunks = append(it.chunks, storedChunk{mint: cmint, maxt: cmaxt, off: off, end: len(it.buf)})
		return true, nil
	})
	if err2 := pit.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return it.fail(fmt.Errorf("read chunks of series %d: %w", s.id, err))
	}
	if budgetErr != nil {
		return it.fail(budgetErr) // the limit's own text, for the user
	}
	return it.loadHead()
}

// checkHeadOnly panics if a series read from its open chunk alone has a
// sealed chunk in the select's range (invariants builds only).
func (it *seriesIterator) checkHeadOnly() {
	s := it.s
	pit, err := s.snap.NewIter(&pebble.IterOptions{
		LowerBound: s.ks.chunkPart(nil, s.p0), UpperBound: successor(s.ks.chunkPart(nil, s.p1)),
	})
	if err != nil {
		return
	}
	defer pit.Close()
	var key []byte
	_ = s.chunks(pit, &key, func(cmint, cmaxt int64, _ []byte) (bool, error) {
		panic(fmt.Sprintf("BUG: series %d read from its open chunk [%d, %d] alone has a sealed chunk [%d, %d] in [%d, %d]",
			s.id, s.head.mint, s.head.maxt, cmint, cmaxt, s.mint, s.maxt))
	})
}

// loadHead adds the open chunk copy, if it overlaps [mint, maxt], after
// the sealed chunks.
func (it *seriesIterator) loadHead() bool {
	s := it.s
	if s.hasHead && s.head.maxt >= s.mint && s.head.mint <= s.maxt {
		if s.budget != nil {
			if err := s.budget.AddChunkBytes(len(s.head.chunk)); err != nil {
				return it.fail(err)
			}
		}
		off := len(it.buf)
		it.buf = append(it.buf, s.head.chunk...)
		it.chunks = append(it.chunks, storedChunk{mint: s.head.mint, maxt: s.head.maxt, off: off, end: len(it.buf)})
	}
	return true
}

func (it *seriesIterator) fail(err error) bool {
	it.err = err
	it.state = iterDone
	return false
}

func (it *seriesIterator) data(i int) []byte {
	c := it.chunks[i]
	return it.buf[c.off:c.end]
}

// Next implements promchunk.Iterator.
func (it *seriesIterator) Next() promchunk.ValueType {
	if it.state == iterDone || !it.load() {
		return promchunk.ValNone
	}
	if it.ci < 0 && len(it.chunks) > 0 && it.chunks[0].mint < it.s.mint {
		// The first sample is the first at or after mint: the chunk
		// decoder skips to it in its own loop (an instant query's
		// select starts 5 minutes before the end of a chunk of up to
		// 30 minutes: most of the decoded samples are skipped). Seek
		// opens a chunk, so this runs once.
		return it.Seek(it.s.mint)
	}
	for {
		if it.ci >= 0 {
			if t, vt := it.step(); vt != promchunk.ValNone {
				if t < it.s.mint || (it.state == iterValid && t <= it.t) {
					continue
				}
				return it.at(t, vt)
			}
			if err := it.curErr(); err != nil {
				it.fail(fmt.Errorf("series %d chunk at %d: %w", it.s.id, it.chunks[it.ci].mint, err))
				return promchunk.ValNone
			}
		}
		it.ci++
		if it.ci >= len(it.chunks) {
			it.state = iterDone
			return promchunk.ValNone
		}
		if !it.open(it.ci) {
			return promchunk.ValNone
		}
	}
}

// at makes the sample the chunk iterator is on, at t of type vt, current.
func (it *seriesIterator) at(t int64, vt promchunk.ValueType) promchunk.ValueType {
	if t > it.s.maxt {
		it.state = iterDone
		return promchunk.ValNone
	}
	it.t, it.vt, it.state = t, vt, iterValid
	return vt
}

// millis is int64 under another name. Seek's parameter uses it because go
// vet's stdmethods check wants every Seek(int64, ...) to be io.Seeker's; the
// alias is the same type, so Seek still implements promchunk.Iterator.
type millis = int64

// Seek implements promchunk.Iterator: it moves to the first sample at or
// after t, never backwards.
func (it *seriesIterator) Seek(t millis) promchunk.ValueType {
	if it.state == iterDone {
		return promchunk.ValNone
	}
	if it.state == iterValid && it.t >= t {
		return it.vt
	}
	if !it.load() {
		return promchunk.ValNone
	}
	t = max(t, it.s.mint)
	if it.ci < 0 || it.chunks[it.ci].maxt < t {
		ci := it.ci + 1
		for ci < len(it.chunks) && it.chunks[ci].maxt < t {
			ci++
		}
		if ci >= len(it.chunks) {
			it.ci = len(it.chunks)
			it.state = iterDone
			return promchunk.ValNone
		}
		it.ci = ci
		if !it.open(ci) {
			return promchunk.ValNone
		}
	}
	if it.curHist {
		if vt := it.hcur.Seek(t); vt != promchunk.ValNone {
			if ct := it.hcur.AtT(); it.state != iterValid || ct > it.t {
				return it.at(ct, vt)
			}
			return it.Next()
		}
	} else if it.cur.Seek(t) {
		ct, v := it.cur.At()
		if it.state != iterValid || ct > it.t {
			it.v = v
			return it.at(ct, promchunk.ValFloat)
		}
		return it.Next()
	}
	if err := it.curErr(); err != nil {
		it.fail(fmt.Errorf("series %d chunk at %d: %w", it.s.id, it.chunks[it.ci].mint, err))
		return promchunk.ValNone
	}
	return it.Next()
}

// At implements promchunk.Iterator.
func (it *seriesIterator) At() (int64, float64) { return it.t, it.v }

// AtHistogram implements promchunk.Iterator: the current sample, of type
// ValHistogram, from the current chunk's iterator, into h if not nil.
func (it *seriesIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	if !it.curHist {
		panic("BUG: AtHistogram on a float sample")
	}
	return it.hcur.AtHistogram(h)
}

// AtFloatHistogram implements promchunk.Iterator: the current sample, a
// histogram of either type, into fh if not nil.
func (it *seriesIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	if !it.curHist {
		panic("BUG: AtFloatHistogram on a float sample")
	}
	return it.hcur.AtFloatHistogram(fh)
}

// AtT implements promchunk.Iterator.
func (it *seriesIterator) AtT() int64 { return it.t }

// AtST implements promchunk.Iterator: the current sample's start timestamp.
// The series' start timestamps are read at its first call (none for a
// tenant that never had any); a failed read is the iterator's error.
func (it *seriesIterator) AtST() int64 {
	if !it.s.hasST {
		// PromQL's iterators ask at every sample; most tenants never
		// sent one.
		return 0
	}
	st := it.st.at(it.s, it.t)
	if it.st.err != nil && it.err == nil {
		it.err = fmt.Errorf("read start timestamps of series %d: %w", it.s.id, it.st.err)
	}
	return st
}

// Err implements promchunk.Iterator.
func (it *seriesIterator) Err() error { return it.err }
