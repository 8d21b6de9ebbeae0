package bench

import (
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/myelindb/myelin/bench/internal/chunkmeasure"
	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/tsdata"
)

// benchSamples caps every data set: a benchmark runs over the first series
// of the file up to this many samples in total (the last series
// truncated). The largest file has 8M samples; at 200k samples a
// `-benchtime 1x` run of all sub-benchmarks takes seconds, not minutes.
// chunkbench measures the full files.
const benchSamples = 200_000

// benchChunkSizes: Prometheus's 120-sample chunks and our sealed size.
var benchChunkSizes = []int{120, 1024}

// codecs returns fresh codecs (they hold buffers): the prom-xor baseline,
// then every chunkenc encoding.
func codecs() []chunkmeasure.Codec {
	cs := []chunkmeasure.Codec{chunkmeasure.PromXOR()}
	for _, enc := range chunkenc.Encodings {
		cs = append(cs, chunkmeasure.Ours(enc))
	}
	return cs
}

// dataset is one data file, loaded at most once per test binary.
type dataset struct {
	name, path string
	once       sync.Once
	set        []chunkmeasure.Series
	samples    int
	err        error
}

var errEnough = errors.New("bench: sample cap reached")

func (d *dataset) load() ([]chunkmeasure.Series, int, error) {
	d.once.Do(func() {
		err := tsdata.ReadFile(d.path, func(s *tsdata.Series) error {
			k := min(len(s.T), benchSamples-d.samples)
			d.set = append(d.set, chunkmeasure.Series{T: s.T[:k], V: s.V[:k]})
			d.samples += k
			if d.samples >= benchSamples {
				return errEnough
			}
			return nil
		})
		if errors.Is(err, errEnough) {
			err = nil
		}
		d.err = err
	})
	return d.set, d.samples, d.err
}

// datasets caches the file list; each dataset caches its series.
var datasets struct {
	once sync.Once
	list []*dataset
	err  error
}

// sharedDatasets returns the data sets of the shared data directory, or
// skips b if there is none.
func sharedDatasets(b *testing.B) []*dataset {
	dir := tsdata.RequireSharedDir(b)
	datasets.once.Do(func() {
		files, err := tsdata.Files(dir)
		for _, f := range files {
			datasets.list = append(datasets.list, &dataset{name: tsdata.Name(dir, f), path: f})
		}
		datasets.err = err
	})
	if datasets.err != nil {
		b.Fatal(datasets.err)
	}
	if len(datasets.list) == 0 {
		b.Skipf("no data files under %s", dir)
	}
	return datasets.list
}

// forEach runs fn as sub-benchmark <dataset>/<encoding>/<chunk size> for
// every data set, codec and chunk size.
func forEach(b *testing.B, fn func(b *testing.B, c chunkmeasure.Codec, set []chunkmeasure.Series, samples, chunkSamples int)) {
	for _, d := range sharedDatasets(b) {
		b.Run(d.name, func(b *testing.B) {
			set, samples, err := d.load()
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range codecs() {
				for _, size := range benchChunkSizes {
					b.Run(c.Name()+"/"+strconv.Itoa(size), func(b *testing.B) {
						fn(b, c, set, samples, size)
					})
				}
			}
		})
	}
}

// report adds the domain metrics of iters passes over samples samples
// that encode to nBytes bytes.
func report(b *testing.B, nBytes, samples, iters int) {
	total := float64(samples) * float64(iters)
	b.ReportMetric(float64(nBytes)/float64(samples), "bytes/sample")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/sample")
	b.ReportMetric(total/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkChunkEncode encodes a data set into chunks, each series cut into
// chunks of the given size, appending into a reused buffer.
func BenchmarkChunkEncode(b *testing.B) {
	forEach(b, func(b *testing.B, c chunkmeasure.Codec, set []chunkmeasure.Series, samples, chunkSamples int) {
		var cs chunkmeasure.Chunks
		if err := cs.Encode(c, set, chunkSamples); err != nil { // grows the buffers
			b.Fatal(err)
		}
		b.ReportAllocs()
		iters := 0
		for b.Loop() {
			if err := cs.Encode(c, set, chunkSamples); err != nil {
				b.Fatal(err)
			}
			iters++
		}
		report(b, len(cs.Data), samples, iters)
	})
}

// BenchmarkChunkDecode reads every sample of a data set's chunks through
// the encoding's reused iterator (Reset, Next, At). The chunks are checked
// against the input once before timing.
func BenchmarkChunkDecode(b *testing.B) {
	forEach(b, func(b *testing.B, c chunkmeasure.Codec, set []chunkmeasure.Series, samples, chunkSamples int) {
		var cs chunkmeasure.Chunks
		if err := cs.Encode(c, set, chunkSamples); err != nil {
			b.Fatal(err)
		}
		wantN, wantSum := chunkmeasure.Sum(set)
		if n, sum, err := cs.Scan(c); err != nil || n != wantN || sum != wantSum {
			b.Fatalf("decoded %d samples, checksum %x, error %v; want %d samples, checksum %x", n, sum, err, wantN, wantSum)
		}
		b.ReportAllocs()
		iters := 0
		for b.Loop() {
			if n, _, err := cs.Scan(c); err != nil || n != wantN {
				b.Fatalf("decoded %d samples, error %v; want %d", n, err, wantN)
			}
			iters++
		}
		report(b, len(cs.Data), samples, iters)
	})
}
