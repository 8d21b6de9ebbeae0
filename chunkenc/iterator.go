package chunkenc

// Iterator reads the samples of a chunk of any encoding. The zero value is
// an exhausted iterator; Reset points it at a chunk. An Iterator allocates
// nothing per sample and, once its buffers have grown, nothing per Reset:
// reuse one per goroutine.
//
// Protocol:
//  1. Reset(chunk).
//  2. Next() until it returns false; At() returns the current sample.
//     Seek(t) may be called instead of or between Next calls.
//  3. Err() once at the end: nil means the chunk was read completely.
//
// The chunk must not be modified while the iterator uses it.
type Iterator struct {
	enc Encoding
	err error
	xor xorIter
	pd  packDecoder
	// Block encodings decode the whole chunk into these on Reset (a
	// decimal chunk's values into pd's mantissas: see packDecoder).
	ts  []int64
	vs  []float64
	pos int // index of the current sample in ts/vs, -1 before the first
	// done is set once Next or Seek ran off the end: an exhausted iterator
	// stays exhausted, whatever the encoding.
	done bool
}

// Reset makes the iterator read chunk from its first sample.
func (it *Iterator) Reset(chunk []byte) {
	it.err, it.done = nil, false
	it.ts, it.vs, it.pos = it.ts[:0], it.vs[:0], -1
	it.pd.mantissasKept = false
	it.enc, it.err = EncodingOf(chunk)
	if it.err != nil {
		return
	}
	switch it.enc {
	case EncXOR:
		it.err = it.xor.reset(chunk)
	case EncPack:
		it.pd.keepMantissas = true
		it.ts, it.vs, it.err = it.pd.decode(it.ts, it.vs, chunk)
	default:
		// Not a float chunk: to a float reader, as corrupt as any
		// unknown encoding.
		it.err = corrupt(it.enc, 0, "holds histograms: read it with a HistogramIterator")
	}
}

// Next advances to the next sample and reports whether there is one.
func (it *Iterator) Next() bool {
	if it.err != nil || it.done {
		return false
	}
	if it.enc == EncXOR {
		ok, err := it.xor.next()
		it.err, it.done = err, !ok
		return ok
	}
	if it.pos+1 >= len(it.ts) {
		it.pos, it.done = len(it.ts), true
		return false
	}
	it.pos++
	return true
}

// Seek advances to the first sample with timestamp >= t and reports whether
// there is one. It never moves backwards: if the current sample is already
// at or after t, it stays.
func (it *Iterator) Seek(t millis) bool {
	if it.err != nil || it.done {
		return false
	}
	if it.enc == EncXOR {
		if it.xor.i > 0 && it.xor.t >= t {
			return true
		}
		for {
			ok, err := it.xor.next()
			if !ok {
				it.err, it.done = err, true
				return false
			}
			if it.xor.t >= t {
				return true
			}
		}
	}
	if it.pos >= 0 && it.pos < len(it.ts) && it.ts[it.pos] >= t {
		return true
	}
	// Binary search in the decoded block.
	lo, hi := max(it.pos, 0), len(it.ts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if it.ts[m] < t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	it.pos, it.done = lo, lo >= len(it.ts)
	return !it.done
}

// At returns the current sample. Only valid after Next or Seek returned
// true.
func (it *Iterator) At() (int64, float64) {
	if it.enc == EncXOR {
		return it.xor.t, it.xor.v
	}
	if it.pd.mantissasKept {
		return it.ts[it.pos], it.pd.value(it.pos)
	}
	return it.ts[it.pos], it.vs[it.pos]
}

// Err returns the first decoding error, nil if none.
func (it *Iterator) Err() error { return it.err }

// millis is int64 (milliseconds) under another name. Seek's parameter uses
// it because go vet's stdmethods check takes every Seek(int64, ...) for
// io.Seeker; the alias is the same type, so callers pass an int64.
type millis = int64
