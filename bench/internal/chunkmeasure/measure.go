package chunkmeasure

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"time"
)

// Series is the samples of one series. INVARIANT: len(T) == len(V) and T is
// strictly increasing.
type Series struct {
	T []int64
	V []float64
}

// Checksum folds samples into two sums, one of timestamps and one of value
// bits, so NaNs count by their bits. It is order-independent and cheap (two
// adds per sample, so it barely shows in decode timings); sample order is
// checked by the untimed per-sample comparison instead.
type Checksum struct {
	T, V uint64
}

// Add folds in one sample.
func (c *Checksum) Add(t int64, v float64) {
	c.T += uint64(t)
	c.V += math.Float64bits(v)
}

// Chunks is a set of encoded chunks stored back to back in one buffer.
type Chunks struct {
	Data []byte
	// Ends[i] is the offset in Data where chunk i ends; chunk i starts at
	// Ends[i-1], or 0 for i == 0.
	Ends []int
}

// Len returns the number of chunks.
func (cs *Chunks) Len() int { return len(cs.Ends) }

// At returns chunk i. It aliases Data: valid until the next Encode.
func (cs *Chunks) At(i int) []byte {
	start := 0
	if i > 0 {
		start = cs.Ends[i-1]
	}
	return cs.Data[start:cs.Ends[i]]
}

// Encode replaces the contents of cs with the chunks of set in codec c:
// every series cut into consecutive chunks of chunkSamples samples, the
// last one of a series possibly shorter. It reuses cs's buffers.
func (cs *Chunks) Encode(c Codec, set []Series, chunkSamples int) error {
	cs.Data, cs.Ends = cs.Data[:0], cs.Ends[:0]
	return cs.append(c, set, 0, chunkSamples)
}

// append adds the chunks of set, whose first series is number first of the
// whole set (for errors).
func (cs *Chunks) append(c Codec, set []Series, first, chunkSamples int) error {
	if chunkSamples <= 0 {
		panic("BUG: chunk size must be positive")
	}
	for si, s := range set {
		for lo := 0; lo < len(s.T); lo += chunkSamples {
			hi := min(lo+chunkSamples, len(s.T))
			var err error
			cs.Data, err = c.Encode(cs.Data, s.T[lo:hi], s.V[lo:hi])
			if err != nil {
				return fmt.Errorf("encode samples %d-%d of series %d with %s: %w", lo, hi-1, first+si, c.Name(), err)
			}
			cs.Ends = append(cs.Ends, len(cs.Data))
		}
	}
	return nil
}

// Scan reads every chunk of cs with c.Scan and returns the total sample
// count and Checksum. It stops at the first error.
func (cs *Chunks) Scan(c Codec) (n int, sum Checksum, err error) {
	return cs.scan(c, 0, cs.Len())
}

// scan is Scan of chunks lo to hi-1.
func (cs *Chunks) scan(c Codec, lo, hi int) (n int, sum Checksum, err error) {
	for i := lo; i < hi; i++ {
		cn, csum, err := c.Scan(cs.At(i))
		n += cn
		sum.T += csum.T
		sum.V += csum.V
		if err != nil {
			return n, sum, fmt.Errorf("scan chunk %d with %s: %w", i, c.Name(), err)
		}
	}
	return n, sum, nil
}

// Sum returns the number of samples in set and their Checksum.
func Sum(set []Series) (n int, sum Checksum) {
	for _, s := range set {
		for i, t := range s.T {
			sum.Add(t, s.V[i])
		}
		n += len(s.T)
	}
	return n, sum
}

// Options for Measure.
type Options struct {
	// ChunkSamples: samples per chunk. Zero means 120, Prometheus's target.
	ChunkSamples int
	// Reps: timed passes of encoding and of decoding; the fastest counts.
	// Zero means 3.
	Reps int
}

func (o Options) withDefaults() Options {
	if o.ChunkSamples == 0 {
		o.ChunkSamples = 120
	}
	if o.Reps == 0 {
		o.Reps = 3
	}
	return o
}

// Validate reports every problem of o at once.
func (o Options) Validate() error {
	var errs []string
	if o.ChunkSamples < 0 || o.ChunkSamples > math.MaxUint16 {
		errs = append(errs, fmt.Sprintf("chunk size %d not in 1..%d", o.ChunkSamples, math.MaxUint16))
	}
	if o.Reps < 0 {
		errs = append(errs, fmt.Sprintf("reps %d is negative", o.Reps))
	}
	if len(errs) > 0 {
		return fmt.Errorf("chunkmeasure: invalid options: %v", errs)
	}
	return nil
}

// Result is the measurement of one codec and chunk size on a set of series.
type Result struct {
	Samples int64
	Chunks  int64
	Bytes   int64 // sum of chunk lengths
	// Encode and Decode are the time to encode and to decode all chunks:
	// the sum over batches of series of the fastest of Reps passes.
	Encode, Decode time.Duration
	// Mismatches holds the first MaxMismatches differences found, at most
	// one per series; MismatchCount counts all of them.
	Mismatches    []Mismatch
	MismatchCount int
}

// MaxMismatches is the most Mismatches a Result keeps.
const MaxMismatches = 10

// Mismatch is a series that did not round-trip.
type Mismatch struct {
	Series int // index in the measured set; -1 for the whole set
	Sample int // index of the first wrong sample in the series; -1 if none applies
	Reason string
}

func (m Mismatch) String() string {
	return fmt.Sprintf("series %d sample %d: %s", m.Series, m.Sample, m.Reason)
}

// Add adds the sizes and times of o to r (for totals over data sets).
// Mismatches are not carried over.
func (r *Result) Add(o Result) {
	r.Samples += o.Samples
	r.Chunks += o.Chunks
	r.Bytes += o.Bytes
	r.Encode += o.Encode
	r.Decode += o.Decode
}

func (r *Result) mismatch(m Mismatch) {
	r.MismatchCount++
	if len(r.Mismatches) < MaxMismatches {
		r.Mismatches = append(r.Mismatches, m)
	}
}

// Measure encodes set with c, times encoding and decoding and checks the
// round trip, as the package doc describes. It returns an error only for
// invalid options or when c fails to encode; decoding problems are
// Mismatches. c's buffers are reused across calls.
func Measure(c Codec, set []Series, opts Options) (Result, error) {
	if err := opts.Validate(); err != nil {
		return Result{}, err
	}
	opts = opts.withDefaults()
	wantN, wantSum := Sum(set)
	res := Result{Samples: int64(wantN)}

	// Time batches of about batchSamples samples and sum each batch's
	// fastest pass, rather than taking the fastest pass over the whole set:
	// a burst of other load then spoils one batch of one pass, not a whole
	// pass. On a shared 2-CPU machine whole-set minimums of 3 passes
	// differed by up to 2x between runs.
	batches := cut(set, batchSamples)
	encTimes := make([]time.Duration, len(batches))
	decTimes := make([]time.Duration, len(batches))
	chunkEnds := make([]int, len(batches)) // chunk index where each batch ends

	// Collect the garbage of loading the data now, not during a timed pass.
	runtime.GC()
	var cs Chunks
	for rep := range opts.Reps {
		cs.Data, cs.Ends = cs.Data[:0], cs.Ends[:0]
		lo := 0
		for b, hi := range batches {
			start := time.Now()
			err := cs.append(c, set[lo:hi], lo, opts.ChunkSamples)
			d := time.Since(start)
			if err != nil {
				return Result{}, err
			}
			if rep == 0 || d < encTimes[b] {
				encTimes[b] = d
			}
			chunkEnds[b] = cs.Len()
			lo = hi
		}
	}
	res.Chunks = int64(cs.Len())
	res.Bytes = int64(len(cs.Data))

	var scanProblem string // what the timed pass got wrong, if anything
	for rep := range opts.Reps {
		var n int
		var sum Checksum
		var err error
		lo := 0
		for b, hi := range chunkEnds {
			start := time.Now()
			bn, bsum, berr := cs.scan(c, lo, hi)
			d := time.Since(start)
			if rep == 0 || d < decTimes[b] {
				decTimes[b] = d
			}
			n, sum.T, sum.V = n+bn, sum.T+bsum.T, sum.V+bsum.V
			err = cmp.Or(err, berr)
			lo = hi
		}
		if rep > 0 {
			continue // same input, same answer
		}
		switch {
		case err != nil:
			scanProblem = fmt.Sprintf("timed decode: %v", err)
		case n != wantN || sum != wantSum:
			scanProblem = fmt.Sprintf("timed decode read %d samples, checksum %x, want %d samples, checksum %x",
				n, sum, wantN, wantSum)
		}
	}
	for b := range batches {
		res.Encode += encTimes[b]
		res.Decode += decTimes[b]
	}

	verify(&res, c, &cs, set, opts.ChunkSamples)
	// A wrong timed pass matters on its own only if the untimed one was
	// right (a codec whose Scan and Decode disagree); otherwise the
	// per-sample mismatches say more.
	if scanProblem != "" && res.MismatchCount == 0 {
		res.mismatch(Mismatch{Series: -1, Sample: -1, Reason: scanProblem})
	}
	return res, nil
}

// batchSamples is the size of a timed batch: about 1 ms of work, so the
// 2 time.Now calls per batch (~50 ns) are noise.
const batchSamples = 1 << 16

// cut splits set into batches of whole series of at least n samples each
// (the last may have fewer) and returns the index where each batch ends.
func cut(set []Series, n int) []int {
	var ends []int
	size := 0
	for i, s := range set {
		size += len(s.T)
		if size >= n || i == len(set)-1 {
			ends = append(ends, i+1)
			size = 0
		}
	}
	return ends
}

// verify decodes the chunks of every series of set from cs and compares
// them with the series, recording the first difference of each.
func verify(res *Result, c Codec, cs *Chunks, set []Series, chunkSamples int) {
	var ts []int64
	var vs []float64
	first := 0 // first chunk of the series
	for si, s := range set {
		n := (len(s.T) + chunkSamples - 1) / chunkSamples
		ts, vs = ts[:0], vs[:0]
		var err error
		for ci := first; ci < first+n && err == nil; ci++ {
			ts, vs, err = c.Decode(ts, vs, cs.At(ci))
		}
		if m, ok := compare(s, ts, vs, err); !ok {
			m.Series = si
			res.mismatch(m)
		}
		first += n
	}
}

// compare checks decoded samples ts, vs (and the decode error) against s.
func compare(s Series, ts []int64, vs []float64, err error) (Mismatch, bool) {
	for i := range min(len(ts), len(s.T)) {
		if ts[i] != s.T[i] {
			return Mismatch{Sample: i, Reason: fmt.Sprintf("timestamp %d, want %d", ts[i], s.T[i])}, false
		}
		if got, want := math.Float64bits(vs[i]), math.Float64bits(s.V[i]); got != want {
			return Mismatch{Sample: i, Reason: fmt.Sprintf("value %v (bits %#016x), want %v (bits %#016x)",
				vs[i], got, s.V[i], want)}, false
		}
	}
	switch {
	case err != nil:
		return Mismatch{Sample: len(ts), Reason: fmt.Sprintf("decode: %v", err)}, false
	case len(ts) != len(s.T):
		return Mismatch{Sample: min(len(ts), len(s.T)), Reason: fmt.Sprintf("decoded %d samples, want %d", len(ts), len(s.T))}, false
	}
	return Mismatch{}, true
}
