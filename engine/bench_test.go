package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/write"
)

// benchLabels returns n realistic label sets: 10 labels, ~180 bytes.
func benchLabels(n int) []labels.Labels {
	out := make([]labels.Labels, n)
	for i := range out {
		out[i] = labels.FromStrings(
			"__name__", fmt.Sprintf("node_metric_%d_total", i%200),
			"cluster", "prod-eu-west-1",
			"env", "production",
			"instance", fmt.Sprintf("10.%d.%d.%d:9100", i/65536%256, i/256%256, i%256),
			"job", "node-exporter",
			"mode", []string{"user", "system", "idle", "iowait"}[i%4],
			"namespace", "monitoring",
			"pod", fmt.Sprintf("node-exporter-%05d", i/200),
			"region", "eu-west-1",
			"service", "node-exporter",
		)
	}
	return out
}

// benchBatches returns rounds batches of one 15s scrape of every series,
// split in batches of per series (as a remote-write sender would).
func benchBatches(b *testing.B, lsets []labels.Labels, rounds, per int) [][]byte {
	var out [][]byte
	for r := range rounds {
		ts := int64(1_700_000_000_000) + int64(r)*15000
		for lo := 0; lo < len(lsets); lo += per {
			bb := write.NewBuilder("bench")
			for i := lo; i < min(lo+per, len(lsets)); i++ {
				require.NoError(b, bb.Add(lsets[i], []write.Sample{{T: ts, V: float64(r*i%1000) * 1.5}}))
			}
			out = append(out, write.Append(nil, bb.Batch()))
		}
	}
	return out
}

// BenchmarkApply measures steady-state apply throughput with 10k active
// series (created before the timer starts), one sample per series per
// scrape, 1000 series per batch, decode included.
func BenchmarkApply(b *testing.B) {
	for _, enc := range []chunkenc.Encoding{chunkenc.EncXOR, chunkenc.EncPack} {
		b.Run(enc.String(), func(b *testing.B) {
			const nSeries, rounds, per = 10_000, 60, 1000
			batches := benchBatches(b, benchLabels(nSeries), rounds, per)
			first := nSeries / per // batches of the first scrape create the series
			b.ReportAllocs()
			samples := 0
			for b.Loop() {
				b.StopTimer()
				opts := Options{Dir: "db", FS: vfs.NewMem(), SealEncoding: enc}
				db, g := openApplied(b, opts, batches[:first])
				b.StartTimer()
				for i, e := range batches[first:] {
					if _, err := g.Apply(uint64(first+i+1), e); err != nil {
						b.Fatal(err)
					}
				}
				samples += nSeries * (rounds - 1)
				b.StopTimer()
				require.NoError(b, db.Close())
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/sample")
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkApplyScrape is the apply path of the make bench load: 50,000
// series scraped every 15 s, 2,000 samples per entry, entries in the
// form a node proposes (write.Encoder), decode included. The head of
// 50,000 series does not fit the CPU caches, as in a node (BenchmarkApply's
// 10,000 mostly do), so the series lookup costs what it costs in
// production. rounds=24 appends to open chunks only; rounds=240 seals
// every series' chunk twice (120 samples each), as 2 h of the make bench
// load seals it four times. cpu-ns/sample is the process's CPU time.
//
//	go test -run '^$' -bench ApplyScrape -count 10 ./engine
func BenchmarkApplyScrape(b *testing.B) {
	const nSeries, per = 50_000, 2000
	lsets := benchLabels(nSeries)
	for _, rounds := range []int{24, 240} {
		b.Run(fmt.Sprintf("rounds=%d", rounds), func(b *testing.B) {
			var enc write.Encoder
			var entries [][]byte
			for r := range rounds {
				ts := int64(1_700_000_000_000) + int64(r)*15000
				for lo := 0; lo < nSeries; lo += per {
					bb := write.NewBuilder("bench")
					for i := lo; i < min(lo+per, nSeries); i++ {
						require.NoError(b, bb.Add(lsets[i], []write.Sample{{T: ts, V: float64(r*i%1000) * 1.5}}))
					}
					entries = append(entries, enc.Entry(bb.Batch()))
				}
			}
			first := nSeries / per // entries of the first scrape create the series
			b.ReportAllocs()
			samples := 0
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				db, g := openApplied(b, Options{Dir: "db", FS: vfs.NewMem()}, entries[:first])
				b.StartTimer()
				cpu0 := processCPU()
				for i, e := range entries[first:] {
					if _, err := g.Apply(uint64(first+i+1), e); err != nil {
						b.Fatal(err)
					}
				}
				cpu += processCPU() - cpu0
				samples += len(entries[first:]) * per
				b.StopTimer()
				require.NoError(b, db.Close())
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/sample")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(samples), "cpu-ns/sample")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkHeadBytesPerSeries measures heap bytes per active series: 100k
// series with 30 samples each (a quarter of a 120-sample chunk... plus the
// labels and index entries), measured with runtime.MemStats after a GC.
func BenchmarkHeadBytesPerSeries(b *testing.B) {
	const nSeries = 100_000
	for _, samplesPer := range []int{1, 30, 119} {
		b.Run(fmt.Sprintf("samples=%d", samplesPer), func(b *testing.B) {
			lsets := benchLabels(nSeries)
			for b.Loop() {
				// A real directory: an in-memory FS would count the
				// flushed sstables as heap.
				db, err := Open(Options{Dir: b.TempDir()})
				require.NoError(b, err)
				g, _, err := db.OpenGroup(1)
				require.NoError(b, err)
				var ms0, ms1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms0)
				idx := uint64(0)
				for s := range samplesPer {
					ts := int64(1_700_000_000_000) + int64(s)*15000
					for lo := 0; lo < nSeries; lo += 5000 {
						bb := write.NewBuilder("bench")
						for i := lo; i < lo+5000; i++ {
							require.NoError(b, bb.Add(lsets[i], []write.Sample{{T: ts, V: float64(i*s%977) * 0.25}}))
						}
						idx++
						_, err := g.ApplyBatch(idx, bb.Batch())
						require.NoError(b, err)
					}
				}
				// Pebble's memtable holds the new series and postings keys;
				// flush so the measurement is the head alone.
				require.NoError(b, db.pdb.Flush())
				runtime.GC()
				runtime.ReadMemStats(&ms1)
				b.ReportMetric(float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/nSeries, "heap-bytes/series")
				runtime.KeepAlive(g)
				require.NoError(b, db.Close())
			}
		})
	}
}

// scrapedGroup returns a group (in memory, closed at the end of the
// benchmark) holding rounds 15 s scrapes of n series of benchLabels from
// t0, a day boundary, in batches of up to 2,000 series.
func scrapedGroup(b *testing.B, n, rounds int) (*Group, int64) {
	return scrapedGroupIn(b, Options{Dir: "db", FS: vfs.NewMem()}, n, rounds)
}

// scrapedGroupIn is scrapedGroup in a database of opts.
func scrapedGroupIn(b *testing.B, opts Options, n, rounds int) (*Group, int64) {
	lsets := benchLabels(n)
	db, err := Open(opts)
	require.NoError(b, err)
	b.Cleanup(func() { db.Close() })
	g, _, err := db.OpenGroup(1)
	require.NoError(b, err)
	t0 := int64(1_700_000_000_000) / 86_400_000 * 86_400_000
	index := uint64(0)
	for r := range rounds {
		for lo := 0; lo < n; lo += 2000 {
			bb := write.NewBuilder("bench")
			for i := lo; i < min(lo+2000, n); i++ {
				require.NoError(b, bb.Add(lsets[i], []write.Sample{{T: t0 + int64(r)*15000, V: float64((r * i) % 1000)}}))
			}
			index++
			_, err := g.ApplyBatch(index, bb.Batch())
			require.NoError(b, err)
		}
	}
	return g, t0
}

// BenchmarkSelect selects and fully iterates 1 and 1000 series over 4h of
// 15s samples (960 per series, 8 sealed chunks and the open one).
func BenchmarkSelect(b *testing.B) {
	const nSeries, rounds = 1000, 960
	g, t0 := scrapedGroup(b, nSeries, rounds)
	for _, tc := range []struct {
		name string
		ms   []*labels.Matcher
	}{
		{"1-series", []*labels.Matcher{
			labels.MustNewMatcher(labels.MatchEqual, "__name__", "node_metric_7_total"),
			labels.MustNewMatcher(labels.MatchEqual, "instance", "10.0.0.7:9100"),
		}},
		{"1000-series", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "node-exporter")}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			samples := 0
			for b.Loop() {
				q, err := g.Querier("bench", t0, t0+rounds*15000)
				require.NoError(b, err)
				ss := q.Select(context.Background(), false, nil, tc.ms...)
				var it promchunk.Iterator
				for ss.Next() {
					it = ss.At().Iterator(it)
					for it.Next() != promchunk.ValNone {
						samples++
					}
				}
				require.NoError(b, ss.Err())
				require.NoError(b, q.Close())
			}
			b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkApplyCheckpoint measures what checkpoints cost the apply path:
// 50k series scraped every 15 s, 2,000 samples per entry (the make bench
// load), with a checkpoint every -every samples, on a real directory
// (a checkpoint is a flush). every=never is the floor; 16M is the
// former policy (8,192 entries of 2,000 samples); 3.8M is what 64 MiB of
// log held under the make bench load (~35 KB per entry). ns/sample
// includes the checkpoints; cpu-ns/sample is the process's CPU time (user
// and system, Pebble's background flushes and compactions included), the
// figure to compare on a shared machine, where wall time moved 3x
// between identical runs.
//
//	go test -run '^$' -bench ApplyCheckpoint -benchtime 3x -count 5 ./engine
func BenchmarkApplyCheckpoint(b *testing.B) {
	const nSeries, per = 50_000, 2000
	const rounds = 400 // 20 M samples
	lsets := benchLabels(nSeries)
	batches := benchBatches(b, lsets, rounds, per)
	first := nSeries / per
	for _, tc := range []struct {
		name  string
		every int // samples between checkpoints; 0: none
	}{{"never", 0}, {"16M", 16 << 20}, {"3.8M", 3_800_000}, {"1M", 1 << 20}} {
		b.Run("every="+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			samples, checkpoints := 0, 0
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				db, g := openApplied(b, Options{Dir: b.TempDir()}, batches[:first])
				b.StartTimer()
				cpu0 := processCPU()
				since := 0
				for i, e := range batches[first:] {
					if _, err := g.Apply(uint64(first+i+1), e); err != nil {
						b.Fatal(err)
					}
					since += per
					if tc.every > 0 && since >= tc.every {
						if err := g.Checkpoint(); err != nil {
							b.Fatal(err)
						}
						since = 0
						checkpoints++
					}
				}
				samples += len(batches[first:]) * per
				cpu += processCPU() - cpu0
				b.StopTimer()
				require.NoError(b, db.Close())
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/sample")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(samples), "cpu-ns/sample")
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(checkpoints)/float64(b.N), "checkpoints/op")
		})
	}
}

// openApplied opens a store with opts and its group 1, and applies
// entries as the log's first indexes: the series that a benchmark's timed
// part then appends to.
func openApplied(b *testing.B, opts Options, entries [][]byte) (*DB, *Group) {
	db, err := Open(opts)
	require.NoError(b, err)
	g, _, err := db.OpenGroup(1)
	require.NoError(b, err)
	for i, e := range entries {
		_, err := g.Apply(uint64(i+1), e)
		require.NoError(b, err)
	}
	return db, g
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSelectRecent is the read path of dashboards and alerts: a
// select over the last 5 minutes of 50,000 active series scraped every
// 15 s (all of them in the head), for every series (count({__name__=~".+"})),
// one metric (250 series) and one series, and the label APIs over the
// same window. It reads the samples of the window, as an instant query's
// lookback does.
//
//	go test -run '^$' -bench SelectRecent -count 5 ./engine
func BenchmarkSelectRecent(b *testing.B) {
	const nSeries, rounds = 50_000, 40
	g, t0 := scrapedGroup(b, nSeries, rounds)
	require.NoError(b, g.Checkpoint())
	maxt := t0 + (rounds-1)*15000
	mint := maxt - 5*60*1000
	for _, tc := range []struct {
		name   string
		ms     []*labels.Matcher
		series int
	}{
		{"all", []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}, nSeries},
		{"metric", []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "node_metric_7_total")}, nSeries / 200},
		{"1series", []*labels.Matcher{
			labels.MustNewMatcher(labels.MatchEqual, "__name__", "node_metric_7_total"),
			labels.MustNewMatcher(labels.MatchEqual, "instance", "10.0.0.7:9100"),
		}, 1},
	} {
		b.Run("select/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				q, err := g.Querier("bench", mint, maxt)
				require.NoError(b, err)
				ss := q.Select(context.Background(), false, nil, tc.ms...)
				var it promchunk.Iterator
				n := 0
				for ss.Next() {
					n++
					it = ss.At().Iterator(it)
					for it.Next() != promchunk.ValNone {
					}
				}
				require.NoError(b, ss.Err())
				require.NoError(b, q.Close())
				require.Equal(b, tc.series, n)
			}
		})
	}
	b.Run("label-values/instance", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			q, err := g.Querier("bench", mint, maxt)
			require.NoError(b, err)
			vs, _, err := q.LabelValues(context.Background(), "instance", nil)
			require.NoError(b, err)
			require.Len(b, vs, nSeries)
			require.NoError(b, q.Close())
		}
	})
	b.Run("label-values/instance-of-metric", func(b *testing.B) {
		b.ReportAllocs()
		m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "node_metric_7_total")
		for b.Loop() {
			q, err := g.Querier("bench", mint, maxt)
			require.NoError(b, err)
			vs, _, err := q.LabelValues(context.Background(), "instance", nil, m)
			require.NoError(b, err)
			require.NotEmpty(b, vs)
			require.NoError(b, q.Close())
		}
	})
}

// BenchmarkDayPieces runs the 30-day panel's day pieces in process:
// `sum by (instance) (rate(node_cpu_seconds_total[5m]))` at a 30-minute
// step, one range query per day as the query frontend splits it, over
// counters scraped every minute (bench/cmd/longquery's shape: 10 series
// per instance, values of two decimals). It is the engine's part of
// `make bench-30d` (chunk decoding, the select's reads) without HTTP:
// each piece reads its own day and the last 5 minutes of the day before.
//
//	go test -run '^$' -bench DayPieces -count 10 ./engine
func BenchmarkDayPieces(b *testing.B) {
	const instances, days = 30, 4
	const scrapeMs, dayMs = 60_000, 86_400_000
	db, err := Open(Options{Dir: "db", FS: vfs.NewMem()})
	require.NoError(b, err)
	b.Cleanup(func() { db.Close() })
	g, _, err := db.OpenGroup(1)
	require.NoError(b, err)
	var lsets []labels.Labels
	var vs, rates []float64
	rng := rand.New(rand.NewPCG(1, 2))
	for inst := range instances {
		for cpu := range 2 {
			for _, mode := range []string{"idle", "iowait", "system", "user", "softirq"} {
				lsets = append(lsets, labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", strconv.Itoa(cpu),
					"instance", fmt.Sprintf("host-%d:9100", inst), "job", "node", "mode", mode))
				vs = append(vs, math.Round(rng.Float64()*1e4)/100)
				rates = append(rates, math.Round(rng.ExpFloat64()*500)/100)
			}
		}
	}
	t0 := int64(1_700_000_000_000) / dayMs * dayMs
	const perBatch = 60 // an hour of scrapes per series and batch
	index := uint64(0)
	samples := make([]write.Sample, perBatch)
	for r := 0; r < days*dayMs/scrapeMs; r += perBatch {
		bb := write.NewBuilder("bench")
		for i, l := range lsets {
			for j := range samples {
				vs[i] = math.Round((vs[i]+rates[i]*(0.5+rng.Float64()))*100) / 100
				samples[j] = write.Sample{T: t0 + int64(r+j)*scrapeMs, V: vs[i]}
			}
			require.NoError(b, bb.Add(l, samples))
		}
		index++
		_, err := g.ApplyBatch(index, bb.Batch())
		require.NoError(b, err)
	}
	require.NoError(b, g.Checkpoint())
	require.NoError(b, db.pdb.Flush())

	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 5e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	ctx := context.Background()
	const q = `sum by (instance) (rate(node_cpu_seconds_total[5m]))`
	run := func() string {
		var out strings.Builder
		for d := 1; d < days; d++ {
			start := t0 + int64(d)*dayMs + 7001
			qry, err := eng.NewRangeQuery(ctx, g.Queryable("bench"), nil, q,
				time.UnixMilli(start), time.UnixMilli(start+dayMs-30*60_000), 30*time.Minute)
			require.NoError(b, err)
			res := qry.Exec(ctx)
			require.NoError(b, res.Err)
			out.WriteString(res.Value.String())
			qry.Close()
		}
		return out.String()
	}
	want := run()
	require.Equal(b, instances, strings.Count(want, "instance=")/(days-1))
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(days-1)*len(lsets)), "ns/series-day")
}

// BenchmarkCheckpoint is one checkpoint of 50,000 dirty series of 40
// samples (their open chunks, ~90 bytes each) on a real directory (an
// in-memory one would count the flushed tables as heap); B/op is the
// transient a checkpoint adds to the heap, its batch most of it (see
// checkpointBytesLocked).
//
//	go test -run '^$' -bench '^BenchmarkCheckpoint$' -count 5 ./engine
func BenchmarkCheckpoint(b *testing.B) {
	const nSeries, rounds = 50_000, 40
	g, t0 := scrapedGroupIn(b, Options{Dir: b.TempDir()}, nSeries, rounds)
	lsets := benchLabels(nSeries)
	index := g.AppliedIndex()
	b.ReportAllocs()
	for r := 0; b.Loop(); r++ {
		b.StopTimer()
		for lo := 0; lo < nSeries; lo += 2000 {
			bb := write.NewBuilder("bench")
			for i := lo; i < min(lo+2000, nSeries); i++ {
				require.NoError(b, bb.Add(lsets[i], []write.Sample{{T: t0 + int64(rounds+r)*15000, V: float64(r * i % 1000)}}))
			}
			index++
			_, err := g.ApplyBatch(index, bb.Batch())
			require.NoError(b, err)
		}
		b.StartTimer()
		require.NoError(b, g.Checkpoint())
	}
}
