// Package histmeasure measures histogram chunk encodings on the
// native-histogram data set (internal/histdata): Prometheus's
// tsdb/chunkenc HistogramChunk and FloatHistogramChunk (module v0.314.0)
// against chunkenc's EncHistPack and EncFloatHistPack, in bytes per
// sample and encode and decode time. bench/histogram_bench_test.go and
// bench/cmd/histbench drive it.
//
// Method. A codec encodes each series cut into chunks and reports the
// bytes of all chunks: Prometheus's chunk is Chunk.Bytes() (its 3-byte
// header included, the on-disk length, encoding byte and CRC not, as the
// float baseline of chunkmeasure counts), ours the whole chunk (encoding
// byte included). Prometheus's chunks are cut three ways:
//
//   - prom@N: every N samples (N = 120, the float head's target, and our
//     sealed size), and when the appender itself starts a new chunk
//     (counter reset, schema change);
//   - prom-head: by Prometheus's head rule for histogram chunks (a target
//     of 1024 bytes: an end time predicted at a quarter of it, a cut at
//     the predicted time or at 2048 bytes, at least 10 samples, and at
//     every 2-hour range boundary), as tsdb/head_append.go does.
//
// Ours are cut every N samples. Decoding reads every sample in full
// (Prometheus: AtHistogram into a reused histogram, as queriers do; ours:
// At) and folds the count, sum and every bucket into a checksum, so both
// sides materialize the same numbers.
package histmeasure

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	promchunkenc "github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/bench/internal/histconv"
	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/histdata"
)

// Series is one series of the data set with its samples in both models.
type Series struct {
	*histdata.Series
	// Prometheus's form of H or FH, converted once.
	PH  []*histogram.Histogram
	PFH []*histogram.FloatHistogram
}

// Load converts the data set's series for measurement.
func Load(in []histdata.Series) []Series {
	out := make([]Series, len(in))
	for i := range in {
		s := Series{Series: &in[i]}
		for j := range s.H {
			s.PH = append(s.PH, histconv.To(&s.H[j]))
		}
		for j := range s.FH {
			s.PFH = append(s.PFH, histconv.ToFloat(&s.FH[j]))
		}
		out[i] = s
	}
	return out
}

// Result is what one codec made of some series.
type Result struct {
	Samples, Chunks, Bytes int
	Sum                    uint64 // decode checksum
}

// BytesPerSample returns Bytes/Samples.
func (r Result) BytesPerSample() float64 { return float64(r.Bytes) / float64(r.Samples) }

// Add adds o to r.
func (r *Result) Add(o Result) {
	r.Samples += o.Samples
	r.Chunks += o.Chunks
	r.Bytes += o.Bytes
	r.Sum ^= o.Sum
}

// Codec encodes and decodes the chunks of one series at a time. A Codec
// keeps buffers: not safe for concurrent use.
type Codec interface {
	Name() string
	// Reset drops the chunks kept so far.
	Reset()
	// Encode cuts s into chunks and keeps them for Decode; it returns the
	// sample, chunk and byte counts of s.
	Encode(s *Series) (Result, error)
	// Decode reads every sample of the chunks kept since Reset and
	// returns the sample count and checksum.
	Decode() (Result, error)
}

// Cut rules of Prometheus's chunks.
const (
	CutHead = 0 // Prometheus's head rule for histogram chunks
)

// Prom returns Prometheus's codec, cutting every samples samples or by the
// head rule if samples is CutHead.
func Prom(samples int) Codec { return &prom{samples: samples} }

// Ours returns chunkenc's codec at samples samples per chunk.
func Ours(samples int) Codec { return &ours{samples: samples} }

type prom struct {
	samples int
	chunks  []promchunkenc.Chunk
	it      promchunkenc.Iterator
	h       histogram.Histogram
	fh      histogram.FloatHistogram
}

func (c *prom) Name() string {
	if c.samples == CutHead {
		return "prom-head"
	}
	return fmt.Sprintf("prom@%d", c.samples)
}

// headCutter is Prometheus's rule for cutting histogram head chunks
// (tsdb/head_append.go, memSeries.histogramsAppendPreprocessor).
type headCutter struct {
	minTime, maxTime, nextAt int64
	computed                 bool
}

const chunkRange = 2 * 3600 * 1000 // Prometheus's default block range

func rangeForTimestamp(t, width int64) int64 { return (t/width)*width + width }

func (h *headCutter) start(t int64) {
	h.minTime, h.maxTime = t, t
	h.nextAt = rangeForTimestamp(t, chunkRange)
	h.computed = false
}

// cut reports whether a sample at t starts a new chunk after chk.
func (h *headCutter) cut(chk promchunkenc.Chunk, t int64) bool {
	numSamples, numBytes := chk.NumSamples(), len(chk.Bytes())
	nextRange := h.nextAt
	if h.computed {
		nextRange = rangeForTimestamp(h.minTime, chunkRange)
	}
	target := promchunkenc.TargetBytesPerHistogramChunk
	if !h.computed && numBytes >= target/4 {
		ratio := float64(target) / float64(numBytes)
		n := float64(h.nextAt-h.minTime) / (float64(h.maxTime-h.minTime+1) * ratio)
		if n > 1 {
			h.nextAt = int64(float64(h.minTime) + float64(h.nextAt-h.minTime)/math.Floor(n))
		}
		h.computed = true
	}
	return (t >= h.nextAt || numBytes >= target*2) && (numSamples >= promchunkenc.MinSamplesPerHistogramChunk || t >= nextRange)
}

func (c *prom) Reset() { c.chunks = c.chunks[:0] }

func (c *prom) Encode(s *Series) (Result, error) {
	first := len(c.chunks)
	var chk promchunkenc.Chunk
	var app promchunkenc.Appender
	var hc headCutter
	float := s.Kind == histdata.KindFloat
	newChunk := func(t int64) error {
		if float {
			chk = promchunkenc.NewFloatHistogramChunk()
		} else {
			chk = promchunkenc.NewHistogramChunk()
		}
		c.chunks = append(c.chunks, chk)
		hc.start(t)
		var err error
		app, err = chk.Appender()
		return err
	}
	for i, t := range s.T {
		cut := chk == nil
		if !cut {
			if c.samples == CutHead {
				cut = hc.cut(chk, t)
			} else {
				cut = chk.NumSamples() >= c.samples
			}
		}
		prev := app
		if cut {
			if err := newChunk(t); err != nil {
				return Result{}, err
			}
		}
		var (
			nc      promchunkenc.Chunk
			recoded bool
			err     error
		)
		if float {
			h := *s.PFH[i] // the appender may replace the spans and buckets
			nc, recoded, app, err = app.AppendFloatHistogram(prev, 0, t, &h, false)
		} else {
			h := *s.PH[i]
			nc, recoded, app, err = app.AppendHistogram(prev, 0, t, &h, false)
		}
		if err != nil {
			return Result{}, fmt.Errorf("%s: sample %d: %w", s.Labels, i, err)
		}
		if nc != nil {
			if recoded {
				c.chunks[len(c.chunks)-1] = nc
			} else {
				c.chunks = append(c.chunks, nc)
				hc.start(t)
			}
			chk = nc
		}
		hc.maxTime = t
	}
	r := Result{Samples: len(s.T), Chunks: len(c.chunks) - first}
	for _, ch := range c.chunks[first:] {
		r.Bytes += len(ch.Bytes())
	}
	return r, nil
}

func (c *prom) Decode() (Result, error) {
	var r Result
	for _, ch := range c.chunks {
		c.it = ch.Iterator(c.it)
		for vt := c.it.Next(); vt != promchunkenc.ValNone; vt = c.it.Next() {
			r.Samples++
			switch vt {
			case promchunkenc.ValHistogram:
				_, h := c.it.AtHistogram(&c.h)
				r.Sum = sumHistogram(r.Sum, h.Count, h.Sum, h.PositiveBuckets, h.NegativeBuckets)
			case promchunkenc.ValFloatHistogram:
				_, h := c.it.AtFloatHistogram(&c.fh)
				r.Sum = sumFloatHistogram(r.Sum, h.Count, h.Sum, h.PositiveBuckets, h.NegativeBuckets)
			default:
				return r, fmt.Errorf("prometheus chunk yields value type %v", vt)
			}
		}
		if err := c.it.Err(); err != nil {
			return r, err
		}
	}
	return r, nil
}

func sumHistogram(acc, count uint64, sum float64, pos, neg []int64) uint64 {
	acc = acc*31 + count
	acc = acc*31 + math.Float64bits(sum)
	for _, b := range pos {
		acc = acc*31 + uint64(b)
	}
	for _, b := range neg {
		acc = acc*31 + uint64(b)
	}
	return acc
}

func sumFloatHistogram(acc uint64, count, sum float64, pos, neg []float64) uint64 {
	acc = acc*31 + math.Float64bits(count)
	acc = acc*31 + math.Float64bits(sum)
	for _, b := range pos {
		acc = acc*31 + math.Float64bits(b)
	}
	for _, b := range neg {
		acc = acc*31 + math.Float64bits(b)
	}
	return acc
}

type ours struct {
	samples int
	e       chunkenc.Encoder
	buf     []byte
	ends    []int // end offsets of the chunks in buf
	it      chunkenc.HistogramIterator
}

func (c *ours) Name() string { return fmt.Sprintf("ours@%d", c.samples) }

func (c *ours) Reset() { c.buf, c.ends = c.buf[:0], c.ends[:0] }

func (c *ours) Encode(s *Series) (Result, error) {
	b0, n0 := len(c.buf), len(c.ends)
	var err error
	for off := 0; off < len(s.T); off += c.samples {
		end := min(off+c.samples, len(s.T))
		if s.Kind == histdata.KindFloat {
			c.buf, err = c.e.EncodeFloatHistograms(c.buf, s.T[off:end], s.FH[off:end])
		} else {
			c.buf, err = c.e.EncodeHistograms(c.buf, s.T[off:end], s.H[off:end])
		}
		if err != nil {
			return Result{}, fmt.Errorf("%s: chunk at %d: %w", s.Labels, off, err)
		}
		c.ends = append(c.ends, len(c.buf))
	}
	return Result{Samples: len(s.T), Chunks: len(c.ends) - n0, Bytes: len(c.buf) - b0}, nil
}

func (c *ours) Decode() (Result, error) {
	var r Result
	start := 0
	for _, end := range c.ends {
		c.it.Reset(c.buf[start:end])
		start = end
		float := c.it.Encoding() == chunkenc.EncFloatHistPack
		for c.it.Next() {
			r.Samples++
			if float {
				_, h := c.it.AtFloat()
				r.Sum = sumFloatHistogram(r.Sum, h.Count, h.Sum, h.PositiveBuckets, h.NegativeBuckets)
			} else {
				_, h := c.it.At()
				r.Sum = sumHistogram(r.Sum, h.Count, h.Sum, h.PositiveBuckets, h.NegativeBuckets)
			}
		}
		if err := c.it.Err(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// Chunks returns the chunks of the last Encode (for round-trip checks).
func (c *ours) Chunks() [][]byte {
	var out [][]byte
	start := 0
	for _, end := range c.ends {
		out = append(out, c.buf[start:end])
		start = end
	}
	return out
}

// CheckRoundTrip encodes every series with our encodings at each chunk
// size and checks that every sample decodes bit for bit.
func CheckRoundTrip(series []Series, sizes ...int) error {
	var it chunkenc.HistogramIterator
	for _, size := range sizes {
		c := &ours{samples: size}
		for si := range series {
			s := &series[si]
			c.Reset()
			if _, err := c.Encode(s); err != nil {
				return err
			}
			i := 0
			for ci, chunk := range c.Chunks() {
				it.Reset(chunk)
				for it.Next() {
					var ok bool
					var t int64
					if s.Kind == histdata.KindFloat {
						var h *chunkenc.FloatHistogram
						t, h = it.AtFloat()
						ok = i < len(s.FH) && chunkenc.EqualFloatHistograms(h, &s.FH[i])
					} else {
						var h *chunkenc.Histogram
						t, h = it.At()
						ok = i < len(s.H) && chunkenc.EqualHistograms(h, &s.H[i])
					}
					if !ok || t != s.T[i] {
						return fmt.Errorf("%s: chunk %d of %d samples: sample %d does not round-trip", s.Labels, ci, size, i)
					}
					i++
				}
				if err := it.Err(); err != nil {
					return fmt.Errorf("%s: chunk %d of %d samples: %w", s.Labels, ci, size, err)
				}
			}
			if i != len(s.T) {
				return fmt.Errorf("%s: %d of %d samples decoded at %d per chunk", s.Labels, i, len(s.T), size)
			}
		}
	}
	return nil
}

// EncodeAll resets c and encodes every series; the result sums them.
func EncodeAll(c Codec, series []Series) (Result, error) {
	c.Reset()
	var r Result
	for i := range series {
		x, err := c.Encode(&series[i])
		if err != nil {
			return r, err
		}
		r.Add(x)
	}
	return r, nil
}
