package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/write"
)

// Native histogram ingest: Myelin's engine against Prometheus's tsdb,
// same histograms, same run (issue 16 item 2). The series are latency
// histograms of request handlers: integer counters at schema 3, each
// scrape adding a log-normal number of observations (median 100) drawn
// from a log-normal latency distribution of the handler, so buckets
// appear as the tails fill; a reset now and then. Both stores are on
// real directories; Prometheus's as its server opens it (openPromWith).
//
//	go test -run '^$' -bench 'HistogramApply|HistogramDisk' -benchtime 1x ./bench/
//
// HistogramApply reports the time per histogram sample of appending
// -histogram.scrapes scrapes of -histogram.series series (Myelin: one
// ApplyBatch of 2000 series; Prometheus: an appender committed every 2000
// series, as for floats); HistogramDisk the bytes per sample at rest
// after 24 h at 15 s (Myelin: raw keys and values as Group.Snapshot
// streams them; Prometheus: its blocks after compaction). Myelin stores
// Prometheus's own histogram chunk encoding (engine/histchunk.go), so the
// difference at rest is the keys, the chunk cutting and the container.

// histWorkload is a fixed-seed set of histogram series.
type histWorkload struct {
	lsets   []labels.Labels
	buckets []map[int32]uint64 // absolute count per bucket index
	count   []uint64
	sum     []float64
	mu      []float64 // log of each handler's median latency
	rng     *rand.Rand
}

func newHistWorkload(n int) *histWorkload {
	w := &histWorkload{rng: rand.New(rand.NewPCG(16, 2))}
	for i := range n {
		w.lsets = append(w.lsets, labels.FromStrings("__name__", "http_request_duration_seconds",
			"handler", fmt.Sprintf("/api/v1/h%d", i%50), "instance", fmt.Sprintf("host-%d:9090", i/50), "job", "api"))
		w.mu = append(w.mu, math.Log(0.005+0.2*w.rng.Float64()))
		w.buckets = append(w.buckets, map[int32]uint64{})
		w.count = append(w.count, 0)
		w.sum = append(w.sum, 0)
	}
	return w
}

// next advances series i by one scrape and returns its histogram.
func (w *histWorkload) next(i int) *histogram.Histogram {
	if w.rng.IntN(2000) == 0 { // a restart: the counters reset
		clear(w.buckets[i])
		w.count[i], w.sum[i] = 0, 0
	}
	n := int(math.Exp(math.Log(100) + 0.5*w.rng.NormFloat64()))
	for range n {
		v := math.Exp(w.mu[i] + 0.8*w.rng.NormFloat64())
		w.buckets[i][int32(math.Ceil(math.Log2(v)*8))]++ // schema 3: 8 buckets per power of 2
		w.count[i]++
		w.sum[i] += v
	}
	idx := make([]int32, 0, len(w.buckets[i]))
	for k := range w.buckets[i] {
		idx = append(idx, k)
	}
	slices.Sort(idx)
	h := &histogram.Histogram{Schema: 3, ZeroThreshold: 1e-128, Count: w.count[i], Sum: w.sum[i]}
	prevIdx, prevCount := int32(0), int64(0)
	for j, k := range idx {
		switch {
		case j == 0:
			h.PositiveSpans = append(h.PositiveSpans, histogram.Span{Offset: k, Length: 1})
		case k == prevIdx+1:
			h.PositiveSpans[len(h.PositiveSpans)-1].Length++
		default:
			h.PositiveSpans = append(h.PositiveSpans, histogram.Span{Offset: k - prevIdx - 1, Length: 1})
		}
		c := int64(w.buckets[i][k])
		h.PositiveBuckets = append(h.PositiveBuckets, c-prevCount)
		prevIdx, prevCount = k, c
	}
	return h
}

var (
	histogramSeries  = 2000
	histogramScrapes = 120
)

// histStore is one of the two stores under test.
type histStore interface {
	appendScrape(ts int64, hs []*histogram.Histogram) error
	settle() error
	atRest(dir string) (int64, error)
	close() error
}

type myelinHist struct {
	db    *engine.DB
	g     *engine.Group
	lsets []labels.Labels
	index uint64
}

func (s *myelinHist) appendScrape(ts int64, hs []*histogram.Histogram) error {
	for lo := 0; lo < len(hs); lo += batchSeries {
		bb := write.NewBuilder(benchTenant)
		for i := lo; i < min(lo+batchSeries, len(hs)); i++ {
			if err := bb.AddHistograms(s.lsets[i], nil, []write.Histogram{{T: ts, H: hs[i]}}); err != nil {
				return err
			}
		}
		s.index++
		refused, err := s.g.ApplyBatch(s.index, bb.Batch())
		if err != nil {
			return err
		}
		if len(refused) > 0 {
			return fmt.Errorf("%d series refused, first: %v", len(refused), refused[0].Err)
		}
	}
	return nil
}

func (s *myelinHist) settle() error { return errors.Join(s.g.Checkpoint(), s.db.Compact()) }

func (s *myelinHist) atRest(string) (int64, error) {
	var cw countingWriter
	err := s.g.Snapshot(&cw)
	return cw.n, err
}

func (s *myelinHist) close() error { return s.db.Close() }

type promHist struct {
	db    *tsdb.DB
	lsets []labels.Labels
}

func (s *promHist) appendScrape(ts int64, hs []*histogram.Histogram) error {
	ctx := context.Background()
	app := s.db.Appender(ctx)
	for i, h := range hs {
		if _, err := app.AppendHistogram(0, s.lsets[i], ts, h, nil); err != nil {
			return errors.Join(err, app.Rollback())
		}
		if (i+1)%batchSeries == 0 {
			if err := app.Commit(); err != nil {
				return err
			}
			app = s.db.Appender(ctx)
		}
	}
	return app.Commit()
}

func (s *promHist) settle() error { return s.db.Compact(context.Background()) }

func (s *promHist) atRest(string) (int64, error) {
	var n int64
	for _, blk := range s.db.Blocks() {
		m, err := dirBytes(blk.Dir(), "")
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

func (s *promHist) close() error { return s.db.Close() }

func openHist(b *testing.B, kind, dir string, lsets []labels.Labels) histStore {
	if kind == "myelin" {
		db, err := engine.Open(engine.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		g, _, err := db.OpenGroup(1)
		if err != nil {
			b.Fatal(err)
		}
		return &myelinHist{db: db, g: g, lsets: lsets}
	}
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0
	opts.MaxBlockDuration = (36 * time.Hour).Milliseconds()
	db, err := tsdb.Open(dir, slog.New(slog.DiscardHandler), nil, opts, nil)
	if err != nil {
		b.Fatal(err)
	}
	return &promHist{db: db, lsets: lsets}
}

// BenchmarkHistogramApply: time per histogram sample appended.
func BenchmarkHistogramApply(b *testing.B) {
	for _, kind := range []string{"myelin", "prometheus"} {
		b.Run(kind, func(b *testing.B) {
			samples := 0
			for b.Loop() {
				b.StopTimer()
				w := newHistWorkload(histogramSeries)
				st := openHist(b, kind, b.TempDir(), w.lsets)
				hs := make([]*histogram.Histogram, histogramSeries)
				for k := range histogramScrapes {
					for i := range hs {
						hs[i] = w.next(i)
					}
					b.StartTimer()
					if err := st.appendScrape(t0Hist+int64(k)*15_000, hs); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					samples += len(hs)
				}
				if err := st.close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/histogram")
		})
	}
}

// BenchmarkHistogramDisk: bytes per histogram sample at rest after 24 h
// of 200 series at 15 s.
func BenchmarkHistogramDisk(b *testing.B) {
	const series, scrapes = 200, 24 * 3600 / 15
	for _, kind := range []string{"myelin", "prometheus"} {
		b.Run(kind, func(b *testing.B) {
			var bytes int64
			for b.Loop() {
				w := newHistWorkload(series)
				dir := b.TempDir()
				st := openHist(b, kind, dir, w.lsets)
				hs := make([]*histogram.Histogram, series)
				for k := range scrapes {
					for i := range hs {
						hs[i] = w.next(i)
					}
					if err := st.appendScrape(t0Hist+int64(k)*15_000, hs); err != nil {
						b.Fatal(err)
					}
				}
				if err := st.settle(); err != nil {
					b.Fatal(err)
				}
				n, err := st.atRest(dir)
				if err != nil {
					b.Fatal(err)
				}
				bytes = n
				if err := st.close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bytes)/float64(series*scrapes), "bytes/histogram")
		})
	}
}

// t0Hist is the first scrape: old enough that Prometheus compacts the
// whole day into blocks.
const t0Hist = int64(1_700_000_000_000) / 3_600_000 * 3_600_000
