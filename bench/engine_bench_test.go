package bench

// Engine benchmarks: Myelin's engine against Prometheus's own tsdb
// (imported as a library), same data, same run. Every benchmark has a
// myelin and a prometheus sub-benchmark so the ratios can be read off one
// `go test -bench` output.
//
// Data: the label sets of the shared data's recorded/*_15s files, scaled up
// by rewriting the instance label (see workload). Sizes are flags, so the
// default run is small:
//
//	go test -run '^$' -bench Engine -benchtime 1x ./bench/
//
// and the 1M-series run is manual (a few GB of RAM; about 20 minutes on 2
// cores, extrapolated from 100k series taking 1 minute):
//
//	go test -run '^$' -bench 'EngineApply|EngineHeadBytes' -benchtime 1x -timeout 0 ./bench/ \
//		-args -engine.series=1000000 -engine.scrapes=240
//
// -engine.select-series and -engine.select-days set the data set of
// BenchmarkEngineSelect and BenchmarkEngineDisk (1000 series x 24h); with
// 30 days the selects add a 30-day window:
//
//	go test -run '^$' -bench EngineSelect -benchtime 3x -timeout 0 ./bench/ \
//		-args -engine.select-series=1000 -engine.select-days=30
//
// BenchmarkEngineRestart reopens a store of -engine.series series (its
// comment has the 1M run).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/internal/tsdata"
	"github.com/myelindb/myelin/write"
)

var (
	engineSeries = flag.Int("engine.series", 10_000,
		"active series of BenchmarkEngineApply and BenchmarkEngineHeadBytes")
	engineScrapes = flag.Int("engine.scrapes", 240,
		"scrapes (15s apart) of every series appended by BenchmarkEngineApply and BenchmarkEngineHeadBytes; 240 is 1h")
	engineSelectSeries = flag.Int("engine.select-series", 1000,
		"series of the data set of BenchmarkEngineSelect and BenchmarkEngineDisk")
	engineSelectDays = flag.Int("engine.select-days", 1,
		"days of the data set of BenchmarkEngineSelect and BenchmarkEngineDisk; 30 adds 30-day selects")
)

const (
	// benchTenant is Myelin's tenant; Prometheus has none.
	benchTenant = "bench"
	// batchSeries: series per write batch (one sample each, a scrape is
	// split in batches of this many), about what a distributor forwards
	// per remote-write request. Prometheus commits its appender as often.
	batchSeries = 2000
	// scrapeMs is the scrape interval.
	scrapeMs = 15_000
	// baseMs is the time of the first scrape: the start of the recording,
	// fixed so every run stores the same bytes.
	baseMs = int64(1_795_238_700_000)
	// dayScrapes is 24h of scrapes.
	dayScrapes = 24 * 3600 * 1000 / scrapeMs
)

// source is one recorded series: its labels with the instance rewritten per
// copy, and the values it replays.
type source struct {
	lset tsdata.Labels
	port string // of the recorded instance ("" if it has none)
	v    []float64
}

var sources struct {
	once sync.Once
	list []source
	err  error
}

// maxSourceValues bounds the values kept per source series: a day of
// scrapes, more than any benchmark replays before cycling.
const maxSourceValues = dayScrapes

// loadSources reads the recorded 15s series of the shared data once.
func loadSources(b *testing.B) []source {
	dir := tsdata.RequireSharedDir(b)
	sources.once.Do(func() {
		files, err := tsdata.Files(filepath.Join(dir, "recorded"))
		if err != nil {
			sources.err = err
			return
		}
		seen := map[string]bool{}
		for _, f := range files {
			if !strings.HasSuffix(f, "_15s.tsv.gz") {
				continue
			}
			err := tsdata.ReadFile(f, func(s *tsdata.Series) error {
				if len(s.V) == 0 {
					return nil
				}
				src := source{lset: s.Labels, v: s.V[:min(len(s.V), maxSourceValues)]}
				if inst := s.Labels.Get("instance"); inst != "" {
					_, src.port, _ = strings.Cut(inst, ":")
				}
				// The copies are distinct only if the sources are
				// distinct once the instance is reduced to its port.
				key := withInstance(src.lset, src.port).String()
				if seen[key] {
					return fmt.Errorf("series %s: not distinct once the instance host is rewritten", s)
				}
				seen[key] = true
				sources.list = append(sources.list, src)
				return nil
			})
			if err != nil {
				sources.err = err
				return
			}
		}
		if len(sources.list) == 0 {
			sources.err = errors.New("no recorded/*_15s.tsv.gz series")
		}
	})
	if sources.err != nil {
		b.Fatalf("load shared data: %v", sources.err)
	}
	return sources.list
}

// withInstance returns ls with the instance label set to inst (added if
// missing), sorted by name.
func withInstance(ls tsdata.Labels, inst string) labels.Labels {
	sb := labels.NewScratchBuilder(len(ls) + 1)
	found := false
	for _, l := range ls {
		if l.Name == "instance" {
			sb.Add(l.Name, inst)
			found = true
			continue
		}
		sb.Add(l.Name, l.Value)
	}
	if !found {
		sb.Add("instance", inst)
	}
	sb.Sort()
	return sb.Labels()
}

// workload is n series: series i replays source i%len(src) as instance
// copy i/len(src), so every copy of the recorded targets looks like another
// host with the same exporters.
type workload struct {
	src []source
	n   int
}

func newWorkload(b *testing.B, n int) workload {
	return workload{src: loadSources(b), n: n}
}

// copyOf returns the source and the instance copy of series i.
func (w workload) copyOf(i int) (*source, int) {
	return &w.src[i%len(w.src)], i / len(w.src)
}

// labels returns freshly built label sets of all series.
func (w workload) labels() []labels.Labels {
	ls := make([]labels.Labels, w.n)
	for i := range ls {
		s, c := w.copyOf(i)
		inst := fmt.Sprintf("10.%d.%d.%d", c>>16&255, c>>8&255, c&255)
		if s.port != "" {
			inst += ":" + s.port
		}
		ls[i] = withInstance(s.lset, inst)
	}
	return ls
}

// fill sets scrape[i] to the k-th sample of series i: the recorded values
// cycled, every 15s, each instance copy shifted by a fixed offset within the
// interval so copies do not all share timestamps.
func (w workload) fill(scrape []write.Sample, k int) {
	for i := range scrape {
		s, c := w.copyOf(i)
		scrape[i] = write.Sample{
			T: baseMs + int64(k)*scrapeMs + int64(c*7919%scrapeMs),
			V: s.v[k%len(s.v)],
		}
	}
}

// store is one of the two engines under test, holding one scrape's worth of
// samples (the slice passed to open) to append.
type store interface {
	// appendScrape appends the current scrape of every series.
	appendScrape() error
	// settle makes the store what it is in steady state: Myelin
	// checkpoints, Prometheus compacts its head into blocks.
	settle() error
	querier(mint, maxt int64) (storage.Querier, error)
	// dropWorkload forgets the label sets and batches the store was
	// opened with, so a heap measurement counts only what the store keeps.
	dropWorkload()
	close() error
}

type storeKind struct {
	name string
	open func(dir string, lsets []labels.Labels, scrape []write.Sample) (store, error)
}

var storeKinds = []storeKind{
	{"myelin", openMyelin},
	{"prometheus", openProm},
}

type myelinStore struct {
	db      *engine.DB
	g       *engine.Group
	index   uint64
	batches []*write.Batch
}

// openMyelin opens a store in dir and builds the write batches of a scrape
// once: they point into scrape, so refilling scrape refills them.
func openMyelin(dir string, lsets []labels.Labels, scrape []write.Sample) (store, error) {
	db, err := engine.Open(engine.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	g, from, err := db.OpenGroup(1)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	s := &myelinStore{db: db, g: g, index: from}
	for lo := 0; lo < len(lsets); lo += batchSeries {
		bb := write.NewBuilder(benchTenant)
		for i := lo; i < min(lo+batchSeries, len(lsets)); i++ {
			if err := bb.Add(lsets[i], scrape[i:i+1:i+1]); err != nil {
				return nil, errors.Join(err, db.Close())
			}
		}
		s.batches = append(s.batches, bb.Batch())
	}
	return s, nil
}

func (s *myelinStore) appendScrape() error {
	for _, b := range s.batches {
		s.index++
		errs, err := s.g.ApplyBatch(s.index, b)
		if err != nil {
			return err
		}
		if len(errs) > 0 {
			return fmt.Errorf("apply entry %d: %d refused series, first: %v", s.index, len(errs), errs[0])
		}
	}
	return nil
}

// settle checkpoints, as a node does, and compacts Pebble into its bottom
// level, where a long-running store keeps nearly all its data: without it
// the disk measurement would count the recent data in Pebble's WAL and L0
// instead (as Prometheus's settle compacts its head into blocks).
func (s *myelinStore) settle() error {
	return errors.Join(s.g.Checkpoint(), s.db.Compact())
}

func (s *myelinStore) querier(mint, maxt int64) (storage.Querier, error) {
	return s.g.Querier(benchTenant, mint, maxt)
}

func (s *myelinStore) dropWorkload() { s.batches = nil }

func (s *myelinStore) close() error { return s.db.Close() }

type promStore struct {
	db     *tsdb.DB
	lsets  []labels.Labels
	scrape []write.Sample
}

// openProm opens a tsdb as a Prometheus server with default flags opens
// it (see openPromWith).
func openProm(dir string, lsets []labels.Labels, scrape []write.Sample) (store, error) {
	return openPromWith(dir, lsets, scrape, nil)
}

// openPromWith is openProm with options changed by set (if not nil).
//
// The options are those of a Prometheus server started with its defaults
// except retention, which keeps everything as Myelin's store does: the
// library's DefaultOptions delete data past 15 days (a 30-day select
// read half the samples) and never compact blocks past 2h, where the
// server compacts up to a tenth of its retention (36h at 15 days).
func openPromWith(dir string, lsets []labels.Labels, scrape []write.Sample, set func(*tsdb.Options)) (store, error) {
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0
	opts.MaxBlockDuration = (36 * time.Hour).Milliseconds()
	if set != nil {
		set(opts)
	}
	db, err := tsdb.Open(dir, slog.New(slog.DiscardHandler), nil, opts, nil)
	if err != nil {
		return nil, err
	}
	return &promStore{db: db, lsets: lsets, scrape: scrape}, nil
}

// appendScrape appends like a scrape loop without its series cache (ref
// 0, a lookup by labels, as Myelin's apply does), committing every
// batchSeries samples.
func (s *promStore) appendScrape() error {
	ctx := context.Background()
	app := s.db.Appender(ctx)
	for i, ls := range s.lsets {
		if _, err := app.Append(0, ls, s.scrape[i].T, s.scrape[i].V); err != nil {
			return errors.Join(fmt.Errorf("append %s: %w", ls, err), app.Rollback())
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

func (s *promStore) settle() error { return s.db.Compact(context.Background()) }

func (s *promStore) querier(mint, maxt int64) (storage.Querier, error) {
	return s.db.Querier(mint, maxt)
}

func (s *promStore) dropWorkload() { s.lsets = nil }

func (s *promStore) close() error { return s.db.Close() }

// blocks returns the directories of the persisted blocks and the number of
// samples in them.
func (s *promStore) blocks() (dirs []string, samples int64) {
	for _, blk := range s.db.Blocks() {
		dirs = append(dirs, blk.Dir())
		samples += int64(blk.Meta().Stats.NumSamples)
	}
	return dirs, samples
}

// ingest appends scrapes [0, n) of w, each scrape filled outside the timer.
func ingest(b *testing.B, st store, w workload, scrape []write.Sample, n int) {
	for k := range n {
		b.StopTimer()
		w.fill(scrape, k)
		b.StartTimer()
		if err := st.appendScrape(); err != nil {
			b.Fatalf("scrape %d: %v", k, err)
		}
	}
}

// BenchmarkEngineApply: appending -engine.scrapes scrapes of
// -engine.series series to a fresh store on disk. ns/sample and samples/s
// are the ratios to read; label sets and batches are built outside the
// timer.
func BenchmarkEngineApply(b *testing.B) {
	w := newWorkload(b, *engineSeries)
	lsets := w.labels()
	scrape := make([]write.Sample, w.n)
	for _, kind := range storeKinds {
		b.Run(kind.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				st, err := kind.open(b.TempDir(), lsets, scrape)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				ingest(b, st, w, scrape, *engineScrapes)
				b.StopTimer()
				if err := st.close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			samples := float64(w.n) * float64(*engineScrapes) * float64(b.N)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/samples, "ns/sample")
			b.ReportMetric(samples/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkEngineHeadBytes: Go heap held per active series after
// -engine.scrapes scrapes of -engine.series series (HeapAlloc after GC,
// before opening vs after filling, the store open). Label sets are built
// inside the window, so the copies the store keeps are counted. Off-heap
// memory is not counted: Pebble's memtable (C memory when cgo is on) and
// Prometheus's mmapped head chunks.
func BenchmarkEngineHeadBytes(b *testing.B) {
	w := newWorkload(b, *engineSeries)
	scrape := make([]write.Sample, w.n)
	for _, kind := range storeKinds {
		b.Run(kind.name, func(b *testing.B) {
			var perSeries float64
			for b.Loop() {
				dir := b.TempDir()
				before := heapAlloc()
				lsets := w.labels()
				st, err := kind.open(dir, lsets, scrape)
				if err != nil {
					b.Fatal(err)
				}
				ingest(b, st, w, scrape, *engineScrapes)
				lsets = nil
				st.dropWorkload()
				runtime.KeepAlive(lsets)
				after := heapAlloc()
				perSeries = (float64(after) - float64(before)) / float64(w.n)
				if err := st.close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(perSeries, "head-bytes/series")
		})
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// dayStore is a store holding 24h of -engine.select-series series, settled.
type dayStore struct {
	st      store
	lsets   []labels.Labels
	samples int
	maxtMs  int64 // at or after the newest sample
}

// openDay ingests -engine.select-days days (24h by default) into a new
// store in dir and settles it.
func openDay(b *testing.B, kind storeKind, dir string) *dayStore {
	scrapes := *engineSelectDays * dayScrapes
	w := newWorkload(b, *engineSelectSeries)
	lsets := w.labels()
	scrape := make([]write.Sample, w.n)
	st, err := kind.open(dir, lsets, scrape)
	if err != nil {
		b.Fatal(err)
	}
	ingest(b, st, w, scrape, scrapes)
	if err := st.settle(); err != nil {
		b.Fatal(errors.Join(err, st.close()))
	}
	return &dayStore{
		st: st, lsets: lsets, samples: w.n * scrapes,
		maxtMs: baseMs + int64(scrapes)*scrapeMs - 1,
	}
}

// BenchmarkEngineSelect: Select over the last 1h and the whole 24h of a
// settled store (Prometheus: compacted blocks plus head; Myelin: after a
// checkpoint), iterating every sample, for one series (all its labels as
// equality matchers) and for all -engine.select-series series
// (__name__=~".+").
func BenchmarkEngineSelect(b *testing.B) {
	for _, kind := range storeKinds {
		b.Run(kind.name, func(b *testing.B) {
			d := openDay(b, kind, b.TempDir())
			defer func() {
				if err := d.st.close(); err != nil {
					b.Error(err)
				}
			}()
			var one []*labels.Matcher
			d.lsets[0].Range(func(l labels.Label) {
				one = append(one, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
			})
			all := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")}
			sets := []struct {
				name   string
				ms     []*labels.Matcher
				series int
			}{
				{"1series", one, 1},
				{strconv.Itoa(len(d.lsets)) + "series", all, len(d.lsets)},
			}
			for _, set := range sets {
				wins := []time.Duration{time.Hour, 24 * time.Hour}
				if *engineSelectDays >= 30 {
					wins = append(wins, 30*24*time.Hour)
				}
				for _, win := range wins {
					name := set.name + "/" + strings.TrimSuffix(win.String(), "0m0s")
					b.Run(name, func(b *testing.B) {
						benchSelect(b, d.st, d.maxtMs-win.Milliseconds()+1, d.maxtMs, set.ms, set.series)
					})
				}
			}
		})
	}
}

// benchSelect selects ms over [mint, maxt] and iterates every sample. One
// untimed select first warms both stores' caches the same way, so a
// -benchtime 1x run measures a warm select.
func benchSelect(b *testing.B, st store, mint, maxt int64, ms []*labels.Matcher, wantSeries int) {
	var it promchunk.Iterator
	samples, err := selectAll(st, mint, maxt, ms, wantSeries, &it)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := selectAll(st, mint, maxt, ms, wantSeries, &it); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(samples)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(samples), "samples/op")
}

// selectAll runs one select and returns the number of samples it read.
func selectAll(st store, mint, maxt int64, ms []*labels.Matcher, wantSeries int, it *promchunk.Iterator) (int, error) {
	q, err := st.querier(mint, maxt)
	if err != nil {
		return 0, err
	}
	ss := q.Select(context.Background(), false, nil, ms...)
	series, samples := 0, 0
	for ss.Next() {
		series++
		*it = ss.At().Iterator(*it)
		for (*it).Next() != promchunk.ValNone {
			if t, _ := (*it).At(); t < mint || t > maxt {
				return 0, errors.Join(fmt.Errorf("sample at %d outside [%d, %d]", t, mint, maxt), q.Close())
			}
			samples++
		}
		if err := (*it).Err(); err != nil {
			return 0, errors.Join(err, q.Close())
		}
	}
	if err := errors.Join(ss.Err(), q.Close()); err != nil {
		return 0, err
	}
	if series != wantSeries {
		return 0, fmt.Errorf("selected %d series, want %d", series, wantSeries)
	}
	return samples, nil
}

// BenchmarkEngineDisk: the store's directory after ingesting 24h of
// -engine.select-series series, settling (checkpoint and compaction /
// head compaction into blocks) and closing, per sample
// ("disk-bytes/sample"). ns/op is the ingest plus settle plus close. The
// steady-state cost is "data-bytes/sample": Prometheus's block directories
// per sample in them (its directory also holds the WAL and head chunks of
// the last 1-3h), Myelin's SSTs per sample (its directory also holds
// Pebble's WAL files: the live one and a few recycled ones, a constant of
// up to about two memtables, not a cost per sample).
//
// The replayed values repeat every len(recording) scrapes (about 2h), a
// repetition Pebble's block compression (Snappy) partly finds and real
// data would not have, so Myelin's SSTs also get "raw-bytes/sample": every
// key and value of the group as streamed by Group.Snapshot, uncompressed,
// the conservative figure.
func BenchmarkEngineDisk(b *testing.B) {
	for _, kind := range storeKinds {
		b.Run(kind.name, func(b *testing.B) {
			var bytes, samples, dataBytes, dataSamples, rawBytes int64
			for b.Loop() {
				dir := b.TempDir()
				d := openDay(b, kind, dir)
				var dataDirs []string
				if ps, ok := d.st.(*promStore); ok {
					dataDirs, dataSamples = ps.blocks()
				} else {
					dataDirs, dataSamples = []string{dir}, int64(d.samples)
					var cw countingWriter
					if err := d.st.(*myelinStore).g.Snapshot(&cw); err != nil {
						b.Fatal(err)
					}
					rawBytes = cw.n
				}
				if err := d.st.close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				n, err := dirBytes(dir, "")
				if err != nil {
					b.Fatal(err)
				}
				bytes, samples, dataBytes = n, int64(d.samples), 0
				suffix := ""
				if kind.name == "myelin" {
					suffix = ".sst"
				}
				for _, dd := range dataDirs {
					n, err := dirBytes(dd, suffix)
					if err != nil {
						b.Fatal(err)
					}
					dataBytes += n
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(bytes)/float64(samples), "disk-bytes/sample")
			if dataSamples > 0 {
				b.ReportMetric(float64(dataBytes)/float64(dataSamples), "data-bytes/sample")
			}
			if rawBytes > 0 {
				b.ReportMetric(float64(rawBytes)/float64(samples), "raw-bytes/sample")
			}
		})
	}
}

// countingWriter counts the bytes written to it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// dirBytes is the total size of the regular files under dir whose name
// ends in suffix.
func dirBytes(dir, suffix string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(path, suffix) {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}

// BenchmarkEngineRestart: reopening a store that holds -engine.series
// active series after -engine.scrapes scrapes, until it can answer
// queries ("restart-s"; ns/op is the same). Myelin is closed after a
// checkpoint, as a node shuts down (Raft then replays nothing); its
// restart loads the open chunks written at the checkpoint. Prometheus is
// closed as it shuts down by default, and replays its WAL into the head
// on open ("prometheus"); "prometheus-snapshot" closes with
// EnableMemorySnapshotOnShutdown, its fastest restart (head chunks
// snapshotted on shutdown, no WAL replay).
//
//	go test -run '^$' -bench EngineRestart -benchtime 3x -timeout 0 ./bench/ -args -engine.series=1000000
func BenchmarkEngineRestart(b *testing.B) {
	w := newWorkload(b, *engineSeries)
	lsets := w.labels()
	scrape := make([]write.Sample, w.n)
	promSnapshot := func(dir string, lsets []labels.Labels, scrape []write.Sample) (store, error) {
		return openPromWith(dir, lsets, scrape, func(o *tsdb.Options) { o.EnableMemorySnapshotOnShutdown = true })
	}
	for _, kind := range append(storeKinds[:len(storeKinds):len(storeKinds)], storeKind{"prometheus-snapshot", promSnapshot}) {
		b.Run(kind.name, func(b *testing.B) {
			dir := b.TempDir()
			st, err := kind.open(dir, lsets, scrape)
			if err != nil {
				b.Fatal(err)
			}
			ingest(b, st, w, scrape, *engineScrapes)
			if ms, ok := st.(*myelinStore); ok {
				if err := ms.settle(); err != nil {
					b.Fatal(err)
				}
			}
			if err := st.close(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				st, err := kind.open(dir, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := checkSeries(st, w.n); err != nil {
					b.Fatal(errors.Join(err, st.close()))
				}
				if err := st.close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "restart-s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(w.n), "ns/series")
		})
	}
}

// checkSeries checks that the store, reopened, has all n series.
func checkSeries(st store, n int) error {
	q, err := st.querier(baseMs, baseMs+int64(*engineScrapes)*scrapeMs)
	if err != nil {
		return err
	}
	vals, _, err := q.LabelValues(context.Background(), "instance", nil)
	if err != nil {
		return errors.Join(err, q.Close())
	}
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	got := 0
	for ss.Next() {
		got++
	}
	if err := errors.Join(ss.Err(), q.Close()); err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("reopened store has %d series (%d instances), want %d", got, len(vals), n)
	}
	return nil
}

// BenchmarkEngineRecent: the reads of dashboards and alerts over the last
// 5 minutes of -engine.series active series (10 minutes ingested, all of
// it in both heads): a select of every series iterating its samples (what
// count({__name__=~".+"}) reads), of one metric and of one series; the
// series API's select of one metric (Func "series"); label names and the
// values of instance. Every sub-benchmark checks that both stores answer
// the same number of series or values.
//
//	go test -run '^$' -bench EngineRecent -benchtime 20x ./bench/
//	go test -run '^$' -bench EngineRecent -benchtime 5x -timeout 0 ./bench/ -args -engine.series=1000000
func BenchmarkEngineRecent(b *testing.B) {
	const scrapes = 40
	w := newWorkload(b, *engineSeries)
	lsets := w.labels()
	scrape := make([]write.Sample, w.n)
	maxt := baseMs + (scrapes-1)*scrapeMs
	mint := maxt - 5*60*1000
	metric := lsets[0].Get(model.MetricNameLabel)
	var one []*labels.Matcher
	lsets[0].Range(func(l labels.Label) {
		one = append(one, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
	})
	ofMetric := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, metric)}
	all := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")}
	want := map[string]int{} // sub-benchmark -> answer size, from the first store
	check := func(b *testing.B, name string, n int) {
		if w, ok := want[name]; ok && w != n {
			b.Fatalf("%s: %d answers, the other store gave %d", name, n, w)
		}
		want[name] = n
	}
	for _, kind := range storeKinds {
		b.Run(kind.name, func(b *testing.B) {
			st, err := kind.open(b.TempDir(), lsets, scrape)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := st.close(); err != nil {
					b.Error(err)
				}
			}()
			ingest(b, st, w, scrape, scrapes)
			sel := func(name string, hints *storage.SelectHints, ms []*labels.Matcher) {
				b.Run(name, func(b *testing.B) {
					var it promchunk.Iterator
					n := 0
					for b.Loop() {
						q, err := st.querier(mint, maxt)
						if err != nil {
							b.Fatal(err)
						}
						ss := q.Select(context.Background(), false, hints, ms...)
						n = 0
						for ss.Next() {
							n++
							if hints == nil {
								it = ss.At().Iterator(it)
								for it.Next() != promchunk.ValNone {
								}
							}
						}
						if err := errors.Join(ss.Err(), q.Close()); err != nil {
							b.Fatal(err)
						}
					}
					check(b, name, n)
				})
			}
			sel("select-all", nil, all)
			sel("select-metric", nil, ofMetric)
			sel("select-1series", nil, one)
			sel("series-api-metric", &storage.SelectHints{Start: mint, End: maxt, Func: "series"}, ofMetric)
			lbl := func(name string, f func(q storage.Querier) ([]string, error)) {
				b.Run(name, func(b *testing.B) {
					n := 0
					for b.Loop() {
						q, err := st.querier(mint, maxt)
						if err != nil {
							b.Fatal(err)
						}
						vs, err := f(q)
						if err := errors.Join(err, q.Close()); err != nil {
							b.Fatal(err)
						}
						n = len(vs)
					}
					check(b, name, n)
				})
			}
			lbl("label-names", func(q storage.Querier) ([]string, error) {
				vs, _, err := q.LabelNames(context.Background(), nil)
				return vs, err
			})
			lbl("label-values-instance", func(q storage.Querier) ([]string, error) {
				vs, _, err := q.LabelValues(context.Background(), "instance", nil)
				return vs, err
			})
		})
	}
}
