package server

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"
)

func TestMemoryReleaser(t *testing.T) {
	m := &memoryReleaser{minCost: 100, interval: 5 * time.Second}
	t0 := time.Unix(1000, 0)
	for _, step := range []struct {
		name  string
		after time.Duration
		peak  int
		want  bool
	}{
		{"light", 0, 99, false},
		{"heavy", 0, 100, true},
		{"heavy-too-soon", time.Second, 1000, false},
		{"light-still-too-soon", 4 * time.Second, 1, false},
		{"light-does-the-pending-release", 5 * time.Second, 1, true},
		{"nothing-pending", 20 * time.Second, 1, false},
		{"heavy-again", 21 * time.Second, 100, true},
	} {
		require.Equal(t, step.want, m.done(t0.Add(step.after), step.peak), step.name)
	}
}

// After a query that held many samples, the API returns the freed memory
// to the OS; after light ones it does not.
func TestQueryAPIFreesMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api, err := NewQueryAPI(genStorage{series: 10}, QueryOptions{FreeMemorySamples: 10 * 101})
		require.NoError(t, err)
		freed := 0
		api.freeMemory = func() { freed++ }
		query := func(steps int) {
			code, resp := call(t, api, "GET", "/api/v1/query_range", "", url.Values{
				"query": {"sum(x)"}, "start": {"0"}, "end": {strconv.Itoa((steps - 1) * 15)}, "step": {"15"}})
			require.Equal(t, 200, code, resp.Error)
		}
		query(100) // 10 series x 100 steps: light
		require.Equal(t, 0, freed)
		query(101)
		require.Equal(t, 1, freed)
		query(101) // too soon: pending
		require.Equal(t, 1, freed)
		time.Sleep(freeMemoryInterval)
		query(1)
		require.Equal(t, 2, freed)
	})
}

// BenchmarkQueryMemory runs a range query whose evaluation holds
// series*11,000 samples (sum(x) over 11,000 steps: the selector's points
// for every step, then the sum) and reports the memory the process keeps
// once it has answered, with and without returning it to the OS
// (memoryReleaser):
//
//	go test -run '^$' -bench QueryMemory -benchtime 1x ./server/
//
// retained-MB is what the Go runtime holds from the OS (runtime/metrics:
// all memory classes minus released heap), rss-MB the process's resident
// set (Linux), peak-samples the engine's count. A benchmark of its own
// process: run it alone; GOMEMLIMIT=512MiB in the environment shows what a
// soft memory limit does instead.
func BenchmarkQueryMemory(b *testing.B) {
	for _, series := range []int{1000, 4500} {
		for _, free := range []bool{false, true} {
			b.Run(fmt.Sprintf("series=%d/free=%v", series, free), func(b *testing.B) {
				minSamples := 1 << 62
				if free {
					minSamples = DefaultFreeMemorySamples
				}
				api, err := NewQueryAPI(genStorage{series: series}, QueryOptions{FreeMemorySamples: minSamples})
				require.NoError(b, err)
				var freeTime time.Duration
				api.freeMemory = func() {
					start := time.Now()
					freeMemory()
					freeTime += time.Since(start)
				}
				form := url.Values{"query": {"sum(x)"}, "start": {"0"}, "end": {strconv.Itoa(10_999 * 15)}, "step": {"15"}, "stats": {"true"}}
				freeMemory()
				before := processMemory()
				var resp apiResponse
				for b.Loop() {
					var code int
					code, resp = call(b, api, "GET", "/api/v1/query_range", "", form)
					require.Equal(b, 200, code, resp.Error)
				}
				after := processMemory()
				_, peak, _ := strings.Cut(string(resp.Data), `"peakSamples":`)
				peak, _, _ = strings.Cut(peak, "}")
				n, _ := strconv.Atoi(peak)
				b.ReportMetric(float64(n), "peak-samples")
				b.ReportMetric(before.retainedMB, "retained-before-MB")
				b.ReportMetric(after.retainedMB, "retained-MB")
				if after.rssMB > 0 {
					b.ReportMetric(after.rssMB, "rss-MB")
				}
				b.ReportMetric(float64(freeTime.Microseconds())/1000/float64(b.N), "free-ms/op")
			})
			runtime.GC()
		}
	}
}

type memory struct{ retainedMB, rssMB float64 }

func processMemory() memory {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	m := memory{retainedMB: float64(s[0].Value.Uint64()-s[1].Value.Uint64()) / (1 << 20)}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.Atoi(f[1])
			m.rssMB = float64(pages*os.Getpagesize()) / (1 << 20)
		}
	}
	return m
}

// genStorage has series x{i="0"}, x{i="1"}, ... with a sample every 15 s
// from time 0 (65,535 of them, 11 days), all read from one shared chunk, so that the
// memory a query takes is the query's alone.
type genStorage struct{ series int }

const genStepMs = 15_000

var genChunk = func() chunkenc.Chunk {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		panic(err)
	}
	for i := range int64(1<<16 - 1) {
		app.Append(0, i*genStepMs, float64(i%100))
	}
	return c
}()

func (g genStorage) Querier(string, int64, int64) (storage.Querier, error) { return g, nil }

func (g genStorage) Select(_ context.Context, _ bool, _ *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
	ss := make([]storage.Series, g.series)
	for i := range ss {
		ss[i] = &storage.SeriesEntry{
			Lset:             labels.FromStrings("__name__", "x", "i", strconv.Itoa(i)),
			SampleIteratorFn: genChunk.Iterator,
		}
	}
	return &listSeriesSet{list: ss}
}

func (genStorage) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (genStorage) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (genStorage) Close() error { return nil }

type listSeriesSet struct {
	list []storage.Series
	cur  storage.Series
}

func (s *listSeriesSet) Next() bool {
	if len(s.list) == 0 {
		return false
	}
	s.cur, s.list = s.list[0], s.list[1:]
	return true
}

func (s *listSeriesSet) At() storage.Series              { return s.cur }
func (*listSeriesSet) Err() error                        { return nil }
func (*listSeriesSet) Warnings() annotations.Annotations { return nil }
