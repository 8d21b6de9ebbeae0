package promqlhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/internal/tsdata"
	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// TestPromQLScriptsRemoteWrite runs Prometheus's PromQL test scripts,
// native histograms included, with every load pushed into Myelin by
// remote write: the script's appends of a load become one remote-write
// request (1.0's prometheus.WriteRequest, or 2.0's Request, both built
// with Prometheus's own prompb types), POSTed to the server's write
// handler, which decodes, validates and applies it to a real engine
// group. The script's evals run Prometheus's PromQL engine over that
// group's storage.Queryable.
//
// The evals do not go through the query API's JSON: Prometheus's JSON
// renders a histogram as its non-empty buckets' bounds, without its
// schema, its empty buckets or its counter reset hint, which
// promqltest's comparison checks exactly (compareNativeHistogram). The
// query API is Prometheus's own web/api/v1 code, and TestPromQLScriptsHTTP
// checks it over HTTP on the float parts.
//
// Start timestamps (the loads' @st lines) go in 2.0's start_timestamp
// fields, stored and read back through AtST, with the test engine's
// UseStartTimestamps; 1.0 cannot carry them, so with 1.0 the parts with
// @st loads are skipped. `make promql-rw` runs it.
func TestPromQLScriptsRemoteWrite(t *testing.T) {
	data := tsdata.RequireSharedDir(t)
	dir := filepath.Join(filepath.Dir(data), "promqltest-testdata")
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.test"))
	require.NoError(t, err)
	if len(files) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("no PromQL test scripts in %s", dir)
		}
		t.Skipf("no PromQL test scripts in %s", dir)
	}
	eng := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	for _, proto := range []string{"rw1", "rw2"} {
		t.Run(proto, func(t *testing.T) {
			ran, skipped, hist := 0, 0, 0
			for _, f := range files {
				content, err := os.ReadFile(f)
				require.NoError(t, err)
				for i, part := range splitScriptParts(string(content)) {
					if proto == "rw1" && (strings.Contains(part, "}@st") || strings.Contains(part, "@st ")) {
						skipped++ // remote write 1.0 has no start timestamps
						continue
					}
					ran++
					if strings.Contains(part, "{{") || strings.Contains(part, "load_with_nhcb") {
						hist++
					}
					t.Run(fmt.Sprintf("%s/part%d", filepath.Base(f), i), func(t *testing.T) {
						promqltest.RunTestWithStorage(t, part, eng, func(t testing.TB) storage.Storage {
							return newRWStorage(t, proto == "rw2")
						})
					})
				}
			}
			t.Logf("%s: ran %d script parts (%d with native histograms), skipped %d (start timestamps, which 1.0 cannot carry)", proto, ran, hist, skipped)
		})
	}
}

// rwStorage is a storage.Storage whose appends are remote-write requests
// to the server's write handler over one engine group.
type rwStorage struct {
	db    *engine.DB
	g     *engine.Group
	h     http.Handler
	v2    bool
	index atomic.Uint64
}

const rwTenant = "promqltest"

func newRWStorage(t testing.TB, v2 bool) *rwStorage {
	db, err := engine.Open(engine.Options{Dir: "db", FS: vfs.NewMem()})
	require.NoError(t, err)
	g, _, err := db.OpenGroup(1)
	require.NoError(t, err)
	s := &rwStorage{db: db, g: g, v2: v2}
	// Scripts load samples from 1970 on and far into the future: the
	// clock is past all of them, so no sample is "too far in the future".
	now := time.Unix(1<<36, 0)
	h, err := server.NewWriteHandler(s, server.WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
	require.NoError(t, err)
	s.h = h
	return s
}

// Write implements server.Writer: the group stands in for a Raft group.
func (s *rwStorage) Write(_ context.Context, b *write.Batch) ([]write.Refusal, error) {
	return s.g.Apply(s.index.Add(1), write.Append(nil, b))
}

func (s *rwStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	return s.g.Querier(rwTenant, mint, maxt)
}

func (s *rwStorage) ChunkQuerier(int64, int64) (storage.ChunkQuerier, error) {
	return nil, errors.New("chunk querier not supported")
}

func (s *rwStorage) Appender(context.Context) storage.Appender { return &rwAppender{s: s} }

func (s *rwStorage) AppenderV2(context.Context) storage.AppenderV2 {
	return &rwAppenderV2{rwAppender{s: s}}
}

func (s *rwStorage) StartTime() (int64, error) { return math.MinInt64, nil }
func (s *rwStorage) Close() error              { return s.db.Close() }

// rwSample is one appended sample: a float (h and fh nil) or a histogram.
type rwSample struct {
	st int64 // start timestamp, 0 for none (2.0 only)
	t  int64
	v  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

// rwAppender collects a load's samples per series, in append order.
type rwAppender struct {
	s      *rwStorage
	order  []labels.Labels
	series map[string][]rwSample
}

func (a *rwAppender) add(l labels.Labels, smp rwSample) {
	if a.series == nil {
		a.series = map[string][]rwSample{}
	}
	k := l.String()
	if _, ok := a.series[k]; !ok {
		a.order = append(a.order, l)
	}
	a.series[k] = append(a.series[k], smp)
}

func (a *rwAppender) Append(_ storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	a.add(l, rwSample{t: t, v: v})
	return 0, nil
}

func (a *rwAppender) AppendHistogram(_ storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	a.add(l, rwSample{t: t, h: h, fh: fh})
	return 0, nil
}

// Commit sends the load as one remote-write request; anything but a 204
// fails it with the handler's answer.
func (a *rwAppender) Commit() error {
	if len(a.order) == 0 {
		return nil
	}
	var body []byte
	var err error
	if a.s.v2 {
		body, err = a.requestV2()
	} else {
		body, err = a.requestV1()
	}
	if err != nil {
		return err
	}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(snappy.Encode(nil, body)))
	r.Header.Set("Content-Encoding", "snappy")
	if a.s.v2 {
		r.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
	} else {
		r.Header.Set("Content-Type", "application/x-protobuf")
	}
	r.Header.Set(tenant.Header, rwTenant)
	w := httptest.NewRecorder()
	a.s.h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent {
		b, _ := io.ReadAll(w.Body)
		return fmt.Errorf("remote write: HTTP %d: %s", w.Code, bytes.TrimSpace(b))
	}
	return nil
}

// requestV1 is the load as a prometheus.WriteRequest: each series with
// its samples and its histograms (prompb's FromIntHistogram and
// FromFloatHistogram, as Prometheus's queue manager sends them).
func (a *rwAppender) requestV1() ([]byte, error) {
	var req prompb.WriteRequest
	for _, l := range a.order {
		ts := prompb.TimeSeries{}
		l.Range(func(lb labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: lb.Name, Value: lb.Value}) })
		for _, smp := range a.series[l.String()] {
			switch {
			case smp.h != nil:
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(smp.t, smp.h))
			case smp.fh != nil:
				ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(smp.t, smp.fh))
			default:
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: smp.t, Value: smp.v})
			}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req.Marshal()
}

// requestV2 is the load as an io.prometheus.write.v2.Request.
func (a *rwAppender) requestV2() ([]byte, error) {
	st := writev2.NewSymbolTable()
	req := writev2.Request{}
	for _, l := range a.order {
		ts := writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(l, nil)}
		for _, smp := range a.series[l.String()] {
			switch {
			case smp.h != nil:
				ts.Histograms = append(ts.Histograms, writev2.FromIntHistogram(smp.st, smp.t, smp.h))
			case smp.fh != nil:
				ts.Histograms = append(ts.Histograms, writev2.FromFloatHistogram(smp.st, smp.t, smp.fh))
			default:
				ts.Samples = append(ts.Samples, writev2.Sample{Timestamp: smp.t, Value: smp.v, StartTimestamp: smp.st})
			}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	return req.Marshal()
}

func (a *rwAppender) Rollback() error                   { return nil }
func (a *rwAppender) SetOptions(*storage.AppendOptions) {}
func (a *rwAppender) AppendExemplar(storage.SeriesRef, labels.Labels, exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, errors.New("exemplars not supported")
}
func (a *rwAppender) AppendHistogramSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, errors.New("start timestamps not supported")
}
func (a *rwAppender) UpdateMetadata(storage.SeriesRef, labels.Labels, metadata.Metadata) (storage.SeriesRef, error) {
	return 0, nil
}
func (a *rwAppender) AppendSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64) (storage.SeriesRef, error) {
	return 0, errors.New("start timestamps not supported")
}

type rwAppenderV2 struct{ a rwAppender }

func (a *rwAppenderV2) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	if st != 0 && !a.a.s.v2 {
		return 0, errors.New("remote write 1.0 cannot carry start timestamps")
	}
	a.a.add(ls, rwSample{st: st, t: t, v: v, h: h, fh: fh})
	return 0, nil
}

func (a *rwAppenderV2) Commit() error   { return a.a.Commit() }
func (a *rwAppenderV2) Rollback() error { return a.a.Rollback() }
