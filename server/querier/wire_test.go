package querier

import (
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata/")

func TestRequestRoundTrip(t *testing.T) {
	m := labels.MustNewMatcher
	ms := []*labels.Matcher{
		m(labels.MatchEqual, "__name__", "up"), m(labels.MatchNotEqual, "job", ""),
		m(labels.MatchRegexp, "instance", "host-[0-9]+"), m(labels.MatchNotRegexp, "zone", "eu-.*"),
	}
	for _, tc := range []struct {
		name string
		path string
		req  request
	}{
		{"select bare", PathSelect, request{group: 1, tenant: "t", mint: -5, maxt: math.MaxInt64}},
		{"select sorted", PathSelect, request{group: math.MaxUint32, tenant: "tenant-a", mint: math.MinInt64, maxt: 7, matchers: ms, sortSeries: true}},
		{"select hints", PathSelect, request{group: 3, tenant: "t", mint: 1, maxt: 2, matchers: ms[:1], hints: &storage.SelectHints{
			Start: -1, End: 99, Limit: 10, Step: 15_000, Func: "rate", Grouping: []string{"job", "le"}, By: true,
			Range: 300_000, ShardCount: 4, ShardIndex: 3, DisableTrimming: true,
		}}},
		{"select series", PathSelect, request{group: 3, tenant: "t", hints: &storage.SelectHints{Func: "series"}}},
		{"labels", PathLabels, request{group: 2, tenant: "t", mint: 1, maxt: 2, matchers: ms, limit: 5}},
		{"values", PathValues, request{group: 2, tenant: "t", mint: 1, maxt: 2, name: "job", limit: 0}},
		{"values empty name", PathValues, request{group: 2, tenant: "", name: ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := appendRequest(nil, tc.path, &tc.req)
			got, err := decodeRequest(tc.path, enc)
			require.NoError(t, err)
			require.Equal(t, requestString(&tc.req), requestString(got))
			require.Equal(t, tc.req.hints, got.hints)
			// Every proper prefix fails, and so does a trailing byte.
			for n := range len(enc) {
				_, err := decodeRequest(tc.path, enc[:n])
				require.ErrorIs(t, err, ErrCorrupt, "prefix of %d bytes", n)
			}
			_, err = decodeRequest(tc.path, append(enc, 0))
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func requestString(r *request) string {
	var ms []string
	for _, m := range r.matchers {
		ms = append(ms, m.String())
	}
	return fmt.Sprintf("group=%d tenant=%q mint=%d maxt=%d matchers=%q sort=%v name=%q limit=%d",
		r.group, r.tenant, r.mint, r.maxt, ms, r.sortSeries, r.name, r.limit)
}

func TestDecodeRequestRejects(t *testing.T) {
	good := appendRequest(nil, PathSelect, &request{group: 1, tenant: "t"})
	for _, tc := range []struct {
		name string
		path string
		body []byte
		want string
	}{
		{"empty", PathSelect, nil, "version: truncated"},
		{"version", PathSelect, append([]byte{RequestVersion + 1}, good[1:]...), "version 5"},
		{"bad regexp", PathLabels, appendRequest(nil, PathLabels, &request{matchers: []*labels.Matcher{{Type: labels.MatchRegexp, Name: "a", Value: "("}}}), "matcher 0"},
		{"matcher type", PathLabels, func() []byte {
			b := appendRequest(nil, PathLabels, &request{matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "a", "b")}})
			b[1+1+1+1+1+1] = 7 // version, group, tenant len, mint, maxt, count
			return b
		}(), "matcher type 7"},
		{"huge count", PathLabels, []byte{Version, 1, 0, 0, 0, 0xff, 0xff, 0x03}, "count"},
		{"bool", PathSelect, append(appendRequest(nil, PathSelect, &request{})[:6], flagHints, 0, 0, 0, 0, 0, 0, 2), "not a bool"},
		{"unknown path", "/x", good, "unknown path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeRequest(tc.path, tc.body)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestWireGolden freezes the wire format: a request and a response of
// each kind, byte for byte. Run with -rewrite after a deliberate format
// change (which bumps Version and updates doc.go).
func TestWireGolden(t *testing.T) {
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"), labels.MustNewMatcher(labels.MatchNotRegexp, "job", "d.*")}
	stale := math.Float64frombits(value.StaleNaN)
	series := []storage.Series{
		storage.NewListSeries(labels.FromStrings("__name__", "up", "job", "api"), []chunks.Sample{
			fSample{1000, 1}, fSample{16000, 0}, fSample{31000, stale},
		}),
		storage.NewListSeries(labels.FromStrings("__name__", "up", "job", "db"), nil),
	}
	var ws annotations.Annotations
	ws.Add(annotations.NewPossibleNonCounterInfo("up", posrange.PositionRange{}))
	fq := &fakeQuerier{series: series, ws: ws}
	h := NewHandler(fakeLocal{fq}, HandlerOptions{})
	respond := func(path string, req *request, version byte) []byte {
		rec := httptest.NewRecorder()
		body := appendRequest(nil, path, req)
		body[0] = version
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body))))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		return rec.Body.Bytes()
	}
	sel := &request{group: 7, tenant: "t1", mint: 0, maxt: 60_000, matchers: ms, sortSeries: true,
		hints: &storage.SelectHints{Start: 0, End: 60_000, Step: 15_000, Func: "rate", Range: 60_000}, maxSeries: 100_000}
	for _, tc := range []struct {
		file string
		data []byte
	}{
		{"select_request", appendRequest(nil, PathSelect, sel)},
		{"select_response", respond(PathSelect, sel, RequestVersion)},
		{"select_response_v1", respond(PathSelect, sel, 2)}, // frozen: what an earlier release's client reads
		{"select_response_v2", respond(PathSelect, sel, 3)}, // frozen: what an earlier release's client reads
		{"values_request", appendRequest(nil, PathValues, &request{group: 7, tenant: "t1", maxt: 60_000, name: "job", limit: 2})},
		{"labels_response", appendTrailer(appendStringFrame(appendStringFrame([]byte{Version}, "__name__"), "job"), &trailer{count: 2})},
		{"error_trailer", appendTrailer([]byte{Version}, &trailer{count: 1, err: "select on group 7: disk on fire"})},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file+".hex")
			got := hex.Dump(tc.data)
			if *rewrite && !strings.HasSuffix(tc.file, "_v1") && !strings.HasSuffix(tc.file, "_v2") { // frozen: what an earlier release's client reads
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run with -rewrite to create it")
			require.Equal(t, string(want), got)
		})
	}
}

// TestWireV1Requests: requests of version 1 (before the series limit)
// and 2 (before histograms), from nodes of earlier releases, still
// decode, version 1 without a limit. Their golden files are frozen. The
// handler answers a version 2 select with response version 1, byte for
// byte as before (select_response_v1.hex, frozen).
func TestWireV1Requests(t *testing.T) {
	for _, tc := range []struct {
		file, path string
		check      func(t *testing.T, r *request)
	}{
		{"select_request_v1", PathSelect, func(t *testing.T, r *request) {
			require.True(t, r.sortSeries)
			require.Equal(t, "rate", r.hints.Func)
			require.Len(t, r.matchers, 2)
			require.Zero(t, r.maxSeries)
		}},
		{"select_request_v2", PathSelect, func(t *testing.T, r *request) {
			require.True(t, r.sortSeries)
			require.Equal(t, 100_000, r.maxSeries)
		}},
		{"values_request_v1", PathValues, func(t *testing.T, r *request) {
			require.Equal(t, "job", r.name)
			require.Equal(t, 2, r.limit)
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			dump, err := os.ReadFile(filepath.Join("testdata", tc.file+".hex"))
			require.NoError(t, err)
			var body []byte
			for line := range strings.Lines(string(dump)) {
				hexPart, _, _ := strings.Cut(line, "  |")
				fields := strings.Fields(hexPart)
				if len(fields) < 2 {
					continue
				}
				b, err := hex.DecodeString(strings.Join(fields[1:], ""))
				require.NoError(t, err)
				body = append(body, b...)
			}
			require.Equal(t, strings.TrimSuffix(tc.file[len(tc.file)-2:], ""), fmt.Sprintf("v%d", body[0]))
			r, err := decodeRequest(tc.path, body)
			require.NoError(t, err)
			require.EqualValues(t, 7, r.group)
			require.Equal(t, "t1", r.tenant)
			tc.check(t, r)
		})
	}
}

// fSample is a float chunks.Sample.
type fSample struct {
	t int64
	f float64
}

func (s fSample) T() int64                      { return s.t }
func (s fSample) ST() int64                     { return 0 }
func (s fSample) F() float64                    { return s.f }
func (s fSample) H() *histogram.Histogram       { return nil }
func (s fSample) FH() *histogram.FloatHistogram { return nil }
func (s fSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fSample) Copy() chunks.Sample           { return s }

// hSample is a histogram chunks.Sample.
type hSample struct {
	t  int64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s hSample) T() int64                      { return s.t }
func (s hSample) ST() int64                     { return 0 }
func (s hSample) F() float64                    { return 0 }
func (s hSample) H() *histogram.Histogram       { return s.h }
func (s hSample) FH() *histogram.FloatHistogram { return s.fh }
func (s hSample) Copy() chunks.Sample           { return s }
func (s hSample) Type() chunkenc.ValueType {
	if s.h != nil {
		return chunkenc.ValHistogram
	}
	return chunkenc.ValFloatHistogram
}

// mixedHistogramSeries is a series that switches between floats, integer
// histograms (with a counter reset and a new bucket) and float
// histograms, and ends with a histogram stale marker.
func mixedHistogramSeries() storage.Series {
	h := func(count uint64, buckets ...int64) *histogram.Histogram {
		return &histogram.Histogram{Schema: 1, Count: count, Sum: float64(count) * 1.5,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: uint32(len(buckets))}}, PositiveBuckets: buckets}
	}
	return storage.NewListSeries(labels.FromStrings("__name__", "rpc_seconds", "job", "api"), []chunks.Sample{
		fSample{1000, 1},
		hSample{t: 2000, h: h(3, 1, 1)},
		hSample{t: 3000, h: h(6, 2, 2)},
		hSample{t: 4000, h: h(11, 2, 2, 1)}, // a new bucket: recoded
		hSample{t: 5000, h: h(2, 1, 0)},     // a counter reset: a new chunk
		hSample{t: 6000, fh: &histogram.FloatHistogram{CounterResetHint: histogram.GaugeType, Count: 2.5, Sum: 1,
			PositiveSpans: []histogram.Span{{Offset: -1, Length: 1}}, PositiveBuckets: []float64{2.5}}},
		hSample{t: 7000, fh: &histogram.FloatHistogram{Sum: math.Float64frombits(value.StaleNaN)}},
	})
}

// TestWireHistograms freezes a select response with native histogram
// chunks ('H' frames), and reads it back through the client: every
// sample, of each type, as the series had it. A client of an earlier
// release (request version 2) gets response version 1, unchanged
// (select_response_v1.hex, frozen), and an error for histograms.
func TestWireHistograms(t *testing.T) {
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "rpc_seconds")}
	fq := &fakeQuerier{series: []storage.Series{mixedHistogramSeries()}}
	h := NewHandler(fakeLocal{fq}, HandlerOptions{})
	sel := &request{group: 7, tenant: "t1", mint: 0, maxt: 60_000, matchers: ms}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathSelect, strings.NewReader(string(appendRequest(nil, PathSelect, sel)))))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	body := rec.Body.Bytes()
	require.Equal(t, Version, body[0])
	path := filepath.Join("testdata", "select_response_histograms.hex")
	if *rewrite {
		require.NoError(t, os.WriteFile(path, []byte(hex.Dump(body)), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -rewrite to create it")
	require.Equal(t, string(want), hex.Dump(body))

	// The client reads back what the series holds.
	srv := httptest.NewServer(h)
	defer srv.Close()
	q := NewRemote(srv.Client(), srv.URL, 7, "t1", 0, 60_000)
	defer q.Close()
	ss := q.Select(t.Context(), false, nil, ms...)
	require.True(t, ss.Next(), "%v", ss.Err())
	got := sampleStrings(t, ss.At().Iterator(nil))
	require.False(t, ss.Next())
	require.NoError(t, ss.Err())
	require.Equal(t, sampleStrings(t, mixedHistogramSeries().Iterator(nil)), got)

	// An earlier release's client.
	old := appendRequest(nil, PathSelect, sel)
	old[0] = 2
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathSelect, strings.NewReader(string(old))))
	require.Equal(t, VersionFloats, rec.Body.Bytes()[0])
	require.Contains(t, rec.Body.String(), "reads float samples only")
}

// sampleStrings renders every sample of it, histograms compacted and
// without their counter reset hints past the first of a chunk (where the
// wire cuts chunks differs from the source).
func sampleStrings(t *testing.T, it chunkenc.Iterator) []string {
	var out []string
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		switch vt {
		case chunkenc.ValFloat:
			ts, v := it.At()
			out = append(out, fmt.Sprintf("%d %x", ts, math.Float64bits(v)))
		case chunkenc.ValHistogram:
			ts, h := it.AtHistogram(nil)
			out = append(out, fmt.Sprintf("%d h %s", ts, h.Copy().Compact(0))) // a copy: Compact changes the spans the iterator shares
		case chunkenc.ValFloatHistogram:
			ts, fh := it.AtFloatHistogram(nil)
			out = append(out, fmt.Sprintf("%d fh %s sum=%x", ts, fh.Copy().Compact(0), math.Float64bits(fh.Sum)))
		}
	}
	require.NoError(t, it.Err())
	return out
}
