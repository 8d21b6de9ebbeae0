package bench

import (
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/myelindb/myelin/bench/internal/histmeasure"
	"github.com/myelindb/myelin/internal/histdata"
)

// histDataPaths are the native-histogram data set: converted from the
// shared data (make histdata) and recorded from a real Prometheus 3 (make
// histdata-record).
var histDataPaths = []string{"../chunkenc/testdata/histograms.hd.gz", "../chunkenc/testdata/histograms-recorded.hd.gz"}

var histData struct {
	once   sync.Once
	byKind map[string][]histmeasure.Series
	kinds  []string
	err    error
}

// histSeries returns the data set's series by kind (nhcb, exp,
// nhcb:rate1m, exp:rate1m), loaded once.
func histSeries(b *testing.B) ([]string, map[string][]histmeasure.Series) {
	histData.once.Do(func() {
		var raw []histdata.Series
		for _, path := range histDataPaths {
			ss, err := histdata.ReadFile(path)
			if err != nil {
				histData.err = err
				return
			}
			raw = append(raw, ss...)
		}
		histData.byKind = map[string][]histmeasure.Series{}
		for _, s := range histmeasure.Load(raw) {
			k := s.Labels[strings.Index(s.Labels, `kind="`)+6:]
			k = k[:strings.IndexByte(k, '"')]
			if k == "recorded" && s.Kind == histdata.KindFloat {
				k = "recorded:float" // recording-rule output
			}
			histData.byKind[k] = append(histData.byKind[k], s)
		}
		for k := range histData.byKind {
			histData.kinds = append(histData.kinds, k)
		}
		sort.Strings(histData.kinds)
	})
	if histData.err != nil {
		b.Fatal(histData.err)
	}
	return histData.kinds, histData.byKind
}

// histCodecs: Prometheus's chunks cut by its head rule, at 120 and at 1024
// samples, and ours at 120 and 1024.
func histCodecs() []histmeasure.Codec {
	return []histmeasure.Codec{
		histmeasure.Prom(histmeasure.CutHead), histmeasure.Prom(120), histmeasure.Prom(1024),
		histmeasure.Ours(120), histmeasure.Ours(1024),
	}
}

func forEachHist(b *testing.B, fn func(b *testing.B, c histmeasure.Codec, series []histmeasure.Series)) {
	kinds, byKind := histSeries(b)
	for _, k := range kinds {
		b.Run(strings.ReplaceAll(k, ":", "_"), func(b *testing.B) {
			for _, c := range histCodecs() {
				b.Run(c.Name(), func(b *testing.B) { fn(b, c, byKind[k]) })
			}
		})
	}
}

// BenchmarkHistogramChunkEncode encodes every series of a kind of the
// native-histogram data set into chunks; bytes/sample is the size at rest.
func BenchmarkHistogramChunkEncode(b *testing.B) {
	forEachHist(b, func(b *testing.B, c histmeasure.Codec, series []histmeasure.Series) {
		r, err := histmeasure.EncodeAll(c, series) // grows the buffers
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		iters := 0
		for b.Loop() {
			if _, err := histmeasure.EncodeAll(c, series); err != nil {
				b.Fatal(err)
			}
			iters++
		}
		report(b, r.Bytes, r.Samples, iters)
	})
}

// BenchmarkHistogramChunkDecode reads every sample of the chunks in full
// (counts, sum, every bucket).
func BenchmarkHistogramChunkDecode(b *testing.B) {
	forEachHist(b, func(b *testing.B, c histmeasure.Codec, series []histmeasure.Series) {
		if err := histmeasure.CheckRoundTrip(series, 120); err != nil {
			b.Fatal(err)
		}
		r, err := histmeasure.EncodeAll(c, series)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		iters := 0
		for b.Loop() {
			d, err := c.Decode()
			if err != nil || d.Samples != r.Samples {
				b.Fatalf("decoded %d of %d samples: %v", d.Samples, r.Samples, err)
			}
			iters++
		}
		report(b, r.Bytes, r.Samples, iters)
	})
}
