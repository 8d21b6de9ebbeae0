package engine

import (
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/invariants"
)

// This file is the one seam between the engine and the encoding of
// native histogram chunks (doc.go, "Native histograms"). The open
// histogram chunk is Prometheus's tsdb/chunkenc HistogramChunk or
// FloatHistogramChunk (appendable), stored behind an encoding byte of its
// own (0x40, 0x41); a sealed one is re-encoded (sealHist) into chunkenc's
// EncHistPack or EncFloatHistPack (3, 4: chunkenc's own encoding bytes).
// Sealed chunks of stores written before that stay in Prometheus's
// encoding and still read: histIters dispatches on the byte. histHead is
// the open chunk, histIters and lastHistogram read; nothing else in the
// engine knows the formats.

// Encoding bytes of histogram chunks: the first byte of a stored
// histogram chunk ('c' value after its maxt, 'o' value after its marker,
// a query's head copy). 0x40 and 0x41 are followed by the bytes of
// Prometheus's chunk; chunkenc's encodings are small numbers
// (chunkenc.Encoding: 1 and 2 for floats, 3 and 4 for histograms), far
// below them, so the two never collide.
const (
	encPromHistogram      byte = 0x40 // Prometheus's HistogramChunk (integer counts): open chunks, and sealed ones of earlier stores
	encPromFloatHistogram byte = 0x41 // Prometheus's FloatHistogramChunk
	encHistPack           byte = byte(chunkenc.EncHistPack)
	encFloatHistPack      byte = byte(chunkenc.EncFloatHistPack)
)

// Cutting histogram chunks: a histogram sample may be hundreds of bytes,
// so a chunk is also cut at histChunkBytes once it holds
// histChunkMinSamples, Prometheus's TargetBytesPerHistogramChunk and
// MinSamplesPerHistogramChunk. Both depend only on the samples, so
// replicas cut at the same samples.
const (
	histChunkBytes      = promchunk.TargetBytesPerHistogramChunk
	histChunkMinSamples = promchunk.MinSamplesPerHistogramChunk
)

// isHistChunk reports whether a stored chunk (with its encoding byte) is
// a histogram chunk, in either encoding.
func isHistChunk(data []byte) bool {
	return isPromHistChunk(data) || len(data) > 0 && (data[0] == encHistPack || data[0] == encFloatHistPack)
}

// isPromHistChunk reports whether a stored chunk is one of Prometheus's
// histogram chunks: always the open chunk, and sealed chunks of stores
// written before sealHist.
func isPromHistChunk(data []byte) bool {
	return len(data) > 0 && (data[0] == encPromHistogram || data[0] == encPromFloatHistogram)
}

// histChunkOf returns Prometheus's chunk for stored bytes (encoding byte
// first, 0x40 or 0x41). The chunk aliases data.
func histChunkOf(data []byte) (promchunk.Chunk, error) {
	if !isPromHistChunk(data) {
		return nil, fmt.Errorf("not one of Prometheus's histogram chunks")
	}
	if len(data) < 3 { // Prometheus's chunks start with a 2-byte sample count
		return nil, fmt.Errorf("histogram chunk of %d bytes", len(data))
	}
	enc := promchunk.EncHistogram
	if data[0] == encPromFloatHistogram {
		enc = promchunk.EncFloatHistogram
	}
	return promchunk.FromData(enc, data[1:])
}

// histHead is the open histogram chunk of a series: one of
// Prometheus's appendable histogram chunks. Not safe for concurrent use
// (the tenant's lock guards it).
type histHead struct {
	c     promchunk.Chunk // nil when empty
	app   promchunk.Appender
	float bool  // c is a FloatHistogramChunk
	maxt  int64 // time of the newest sample
}

// numSamples is the number of samples of the open chunk.
func (hh *histHead) numSamples() int {
	if hh == nil || hh.c == nil {
		return 0
	}
	return hh.c.NumSamples()
}

// size is the chunk's length in bytes.
func (hh *histHead) size() int { return len(hh.c.Bytes()) }

// storedLen is len(hh.appendBytes(nil)).
func (hh *histHead) storedLen() int { return 1 + hh.size() }

// appendBytes appends the stored form of the open chunk: its encoding
// byte and Prometheus's bytes.
func (hh *histHead) appendBytes(dst []byte) []byte {
	enc := encPromHistogram
	if hh.float {
		enc = encPromFloatHistogram
	}
	return append(append(dst, enc), hh.c.Bytes()...)
}

// reset empties the open chunk.
func (hh *histHead) reset() { *hh = histHead{} }

// start makes the open chunk a new, empty chunk of the given kind.
func (hh *histHead) start(float bool) {
	if float {
		hh.c = promchunk.NewFloatHistogramChunk()
	} else {
		hh.c = promchunk.NewHistogramChunk()
	}
	app, err := hh.c.Appender()
	if err != nil {
		panic(fmt.Sprintf("BUG: appender of an empty histogram chunk: %v", err))
	}
	hh.app, hh.float = app, float
}

// load makes data (a stored histogram chunk) the open chunk, to append
// to. Prometheus's chunk cannot resume appending from its bytes (its bit
// stream does not know how many bits of the last byte are used:
// Prometheus never reopens a chunk, it replays its WAL into a new one),
// so load appends the samples again into a new chunk and sets the
// counter reset header of the original. The result must be the same
// bytes, or replicas that restarted would store other chunks than those
// that did not: load checks it and fails otherwise (the samples of a
// chunk re-encode to it: a chunk's layout changes are recodes, which
// re-encode its samples with the new layout, as re-appending them does).
func (hh *histHead) load(data []byte) error {
	src, err := histChunkOf(data)
	if err != nil {
		return err
	}
	hh.start(data[0] == encPromFloatHistogram)
	it := src.Iterator(nil)
	for vt := it.Next(); vt != promchunk.ValNone; vt = it.Next() {
		var nc promchunk.Chunk
		switch {
		case vt == promchunk.ValHistogram && !hh.float:
			// Copied out of the iterator (nil would share its spans and
			// buckets, which an appender may change).
			t, h := it.AtHistogram(&histogram.Histogram{})
			nc, _, hh.app, err = hh.app.AppendHistogram(nil, 0, t, h, true)
			hh.maxt = t
		case vt == promchunk.ValFloatHistogram && hh.float:
			t, fh := it.AtFloatHistogram(&histogram.FloatHistogram{})
			nc, _, hh.app, err = hh.app.AppendFloatHistogram(nil, 0, t, fh, true)
			hh.maxt = t
		default:
			return fmt.Errorf("sample of type %v in a histogram chunk of encoding %#x", vt, data[0])
		}
		if err != nil {
			return fmt.Errorf("re-encode open histogram chunk: %w", err)
		}
		if nc != nil {
			return fmt.Errorf("re-encode open histogram chunk: the appender cut it")
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	b := hh.c.Bytes()
	if len(b) > 2 && len(data) > 3 {
		b[2] = data[3] // the counter reset header: 2 bytes of sample count, then it
	}
	if string(b) != string(data[1:]) {
		return fmt.Errorf("open histogram chunk of %d samples does not re-encode to its %d bytes", hh.c.NumSamples(), len(data)-1)
	}
	return nil
}

// append appends a histogram sample (one of h and fh set) after the
// newest one, to a non-empty chunk of its kind. Prometheus's appender
// recodes the chunk in place when the sample adds buckets; when it cannot
// (a counter reset, a schema or zero threshold change) it starts a new
// chunk holding the sample: then cut is the old chunk, which the caller
// seals. prev is never passed: a chunk's bytes must depend only on its
// samples, the same on a replica that restarted (whose appender of the
// previous chunk is gone) as on one that did not. The histogram may be
// changed (Prometheus's appender adjusts its spans): pass a copy the
// caller does not need.
func (hh *histHead) append(t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (cut promchunk.Chunk, err error) {
	var (
		nc      promchunk.Chunk
		recoded bool
		app     promchunk.Appender
	)
	if fh != nil {
		nc, recoded, app, err = hh.app.AppendFloatHistogram(nil, 0, t, fh, false)
	} else {
		nc, recoded, app, err = hh.app.AppendHistogram(nil, 0, t, h, false)
	}
	if err != nil {
		return nil, err
	}
	hh.app, hh.maxt = app, t
	if nc == nil {
		return nil, nil
	}
	old := hh.c
	hh.c = nc
	if recoded {
		return nil, nil
	}
	return old, nil
}

// sealHist appends the stored form of a sealed histogram chunk c:
// chunkenc's EncHistPack or EncFloatHistPack (0.63x of Prometheus's bytes
// on the histogram data set; docs/design.md, "Histogram chunk encoding").
// The samples are Prometheus's iterator's, field for field, so readers
// see the same histograms as from c; the bytes depend only on them, the
// same on every replica. Under the invariants tag the result is read back
// and compared with c sample for sample.
func sealHist(dst []byte, hs *histSealer, c promchunk.Chunk) ([]byte, error) {
	start := len(dst)
	dst, err := hs.seal(dst, c)
	if err != nil {
		return dst[:start], fmt.Errorf("seal histogram chunk: %w", err)
	}
	if invariants.Enabled {
		if err := sameHistChunks(c.Iterator(nil), dst[start:]); err != nil {
			panic(fmt.Sprintf("BUG: sealed histogram chunk: %v", err))
		}
	}
	return dst, nil
}

// histIters holds a reader's iterators of both encodings of sealed
// histogram chunks, for reuse. The zero value is ready to use.
type histIters struct {
	prom promchunk.Iterator
	pack packHistIterator
}

// iterator returns an iterator of the stored histogram chunk data (its
// encoding byte first), reusing the one of its encoding; it is valid
// until the next call. data must outlive the iterator.
func (hi *histIters) iterator(data []byte) (promchunk.Iterator, error) {
	if len(data) > 0 && (data[0] == encHistPack || data[0] == encFloatHistPack) {
		hi.pack.reset(data)
		return &hi.pack, nil
	}
	c, err := histChunkOf(data)
	if err != nil {
		return nil, err
	}
	hi.prom = c.Iterator(hi.prom)
	return hi.prom, nil
}

// lastHistogram returns the newest sample of a stored histogram chunk.
func lastHistogram(data []byte) (lastSample, error) {
	var hi histIters
	it, err := hi.iterator(data)
	if err != nil {
		return lastSample{}, err
	}
	var l lastSample
	for {
		switch it.Next() {
		case promchunk.ValHistogram:
			l.t, l.h = it.AtHistogram(&histogram.Histogram{}) // a copy: nil shares the iterator's spans
			l.fh = nil
			continue
		case promchunk.ValFloatHistogram:
			l.t, l.fh = it.AtFloatHistogram(&histogram.FloatHistogram{})
			l.h = nil
			continue
		case promchunk.ValNone:
		default:
			return lastSample{}, fmt.Errorf("float sample in a histogram chunk")
		}
		break
	}
	if err := it.Err(); err != nil {
		return lastSample{}, err
	}
	if l.h == nil && l.fh == nil {
		return lastSample{}, fmt.Errorf("empty histogram chunk")
	}
	return l, nil
}

// singleHistogramChunk returns the stored form of a chunk holding only l,
// a histogram sample: how an eviction record keeps a histogram series'
// newest sample.
func singleHistogramChunk(dst []byte, l lastSample) ([]byte, error) {
	var hh histHead
	hh.start(l.fh != nil)
	var err error
	if l.fh != nil {
		_, err = hh.append(l.t, nil, l.fh.Copy())
	} else {
		_, err = hh.append(l.t, l.h.Copy(), nil)
	}
	if err != nil {
		return nil, err
	}
	return hh.appendBytes(dst), nil
}

// lastSample is the newest sample of a series: a float (v), or a
// histogram (h or fh set).
type lastSample struct {
	t  int64
	v  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

// isHist reports whether l is a histogram sample.
func (l lastSample) isHist() bool { return l.h != nil || l.fh != nil }

// sameHistogram reports whether two histogram samples are equal as
// Prometheus's append checks a duplicate (histogram.Equals), after
// compacting both: a chunk stores a histogram with the empty buckets of
// its layout, so the newest sample read back from a chunk (after a
// restart) and the one the sender sent differ only in empty buckets.
func sameHistogram(h1 *histogram.Histogram, fh1 *histogram.FloatHistogram, h2 *histogram.Histogram, fh2 *histogram.FloatHistogram) bool {
	switch {
	case h1 != nil && h2 != nil:
		return h1.Copy().Compact(0).Equals(h2.Copy().Compact(0))
	case fh1 != nil && fh2 != nil:
		return fh1.Copy().Compact(0).Equals(fh2.Copy().Compact(0))
	}
	return false
}

// firstHistogramTime returns the time of the first sample of a stored
// histogram chunk.
func firstHistogramTime(data []byte) (int64, error) {
	var hi histIters
	it, err := hi.iterator(data)
	if err != nil {
		return 0, err
	}
	if it.Next() == promchunk.ValNone {
		if err := it.Err(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("empty histogram chunk")
	}
	return it.AtT(), nil
}

// sameHistChunks reports how the samples of a histogram chunk (want, an
// iterator) and a stored histogram chunk (data) differ, nil if they are
// the same bit for bit: times, types and every field of every histogram
// (sums and thresholds by their bits).
func sameHistChunks(want promchunk.Iterator, data []byte) error {
	var hi histIters
	got, err := hi.iterator(data)
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		wvt, gvt := want.Next(), got.Next()
		if wvt != gvt {
			return fmt.Errorf("sample %d: type %v, want %v", i, gvt, wvt)
		}
		if wvt == promchunk.ValNone {
			break
		}
		if want.AtT() != got.AtT() {
			return fmt.Errorf("sample %d: time %d, want %d", i, got.AtT(), want.AtT())
		}
		var w, g string
		if wvt == promchunk.ValHistogram {
			_, wh := want.AtHistogram(nil)
			_, gh := got.AtHistogram(nil)
			w, g = histBits(wh, nil), histBits(gh, nil)
		} else {
			_, wh := want.AtFloatHistogram(nil)
			_, gh := got.AtFloatHistogram(nil)
			w, g = histBits(nil, wh), histBits(nil, gh)
		}
		if w != g {
			return fmt.Errorf("sample %d at %d: %s, want %s", i, want.AtT(), g, w)
		}
	}
	return errors.Join(want.Err(), got.Err())
}

// histBits renders every field of a histogram (one of h and fh set),
// floats by their bits and nil slices as empty ones, for comparisons.
func histBits(h *histogram.Histogram, fh *histogram.FloatHistogram) string {
	bits := func(fs []float64) []uint64 {
		out := make([]uint64, len(fs))
		for i, f := range fs {
			out[i] = math.Float64bits(f)
		}
		return out
	}
	if h != nil {
		return fmt.Sprintf("int{hint %d schema %d zt %x zc %d count %d sum %x pos %v %v neg %v %v cv %v}",
			h.CounterResetHint, h.Schema, math.Float64bits(h.ZeroThreshold), h.ZeroCount, h.Count, math.Float64bits(h.Sum),
			h.PositiveSpans, h.PositiveBuckets, h.NegativeSpans, h.NegativeBuckets, bits(h.CustomValues))
	}
	return fmt.Sprintf("float{hint %d schema %d zt %x zc %x count %x sum %x pos %v %v neg %v %v cv %v}",
		fh.CounterResetHint, fh.Schema, math.Float64bits(fh.ZeroThreshold), math.Float64bits(fh.ZeroCount),
		math.Float64bits(fh.Count), math.Float64bits(fh.Sum),
		fh.PositiveSpans, bits(fh.PositiveBuckets), fh.NegativeSpans, bits(fh.NegativeBuckets), bits(fh.CustomValues))
}
