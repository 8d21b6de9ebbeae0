package querier

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/write"
)

const t0 = int64(1_700_000_000_000)

// protocolData writes a few series of tenant t1 (and one of t2) to group 1
// of a new engine: hundreds of samples (several wire chunks), stale
// markers, other NaNs, signed zeros and infinities.
func protocolData(t testing.TB) localGroups {
	t.Helper()
	groups := openGroups(t, engine.Options{}, 1)
	g := groups[1]
	var a applier
	stale := math.Float64frombits(value.StaleNaN)
	otherNaN := math.Float64frombits(0x7ff8000000000bad)
	specials := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), 1e-300, -123.456, stale, otherNaN}
	type def struct {
		lset labels.Labels
		n    int
		f    func(i int) float64
	}
	defs := []def{
		{labels.FromStrings("__name__", "up", "job", "api", "instance", "a"), 300, func(i int) float64 {
			if i == 150 {
				return stale
			}
			return float64(i % 2)
		}},
		{labels.FromStrings("__name__", "up", "job", "api", "instance", "b"), 50, func(i int) float64 { return 1 }},
		{labels.FromStrings("__name__", "up", "job", "db", "instance", "c"), 130, func(i int) float64 { return float64(i % 3) }},
		{labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", "200"), 400, func(i int) float64 { return float64(i * 7) }},
		{labels.FromStrings("__name__", "temp", "job", "db", "zone", "eu-1"), 240, func(i int) float64 { return specials[i%len(specials)] }},
	}
	for i := range 400 {
		bb := write.NewBuilder(tenant)
		for _, d := range defs {
			if i < d.n {
				require.NoError(t, bb.Add(d.lset, []write.Sample{{T: t0 + int64(i)*15_000, V: d.f(i)}}))
			}
		}
		a.apply(t, g, bb.Batch())
	}
	bb := write.NewBuilder("t2")
	require.NoError(t, bb.Add(labels.FromStrings("__name__", "up", "job", "other"), []write.Sample{{T: t0, V: 1}}))
	a.apply(t, g, bb.Batch())
	return groups
}

func TestRemoteSelectMatchesLocal(t *testing.T) {
	groups := protocolData(t)
	srv := serve(t, groups)
	m := labels.MustNewMatcher
	end := t0 + 400*15_000
	for _, tc := range []struct {
		name       string
		mint, maxt int64
		sortSeries bool
		hints      *storage.SelectHints
		ms         []*labels.Matcher
	}{
		{"equal", t0, end, true, nil, []*labels.Matcher{m(labels.MatchEqual, "__name__", "up")}},
		{"not equal", t0, end, true, nil, []*labels.Matcher{m(labels.MatchEqual, "__name__", "up"), m(labels.MatchNotEqual, "job", "api")}},
		{"regexp", t0, end, true, nil, []*labels.Matcher{m(labels.MatchRegexp, "__name__", "up|temp")}},
		{"not regexp", t0, end, false, nil, []*labels.Matcher{m(labels.MatchRegexp, "__name__", ".+"), m(labels.MatchNotRegexp, "job", "a.*")}},
		{"empty value", t0, end, true, nil, []*labels.Matcher{m(labels.MatchRegexp, "job", ".+"), m(labels.MatchEqual, "zone", "")}},
		{"all four", t0, end, true, nil, []*labels.Matcher{
			m(labels.MatchEqual, "job", "api"), m(labels.MatchNotEqual, "instance", "b"),
			m(labels.MatchRegexp, "__name__", "up|http_.*"), m(labels.MatchNotRegexp, "code", "5.."),
		}},
		{"no match", t0, end, true, nil, []*labels.Matcher{m(labels.MatchEqual, "job", "nope")}},
		{"specials", t0, end, true, nil, []*labels.Matcher{m(labels.MatchEqual, "__name__", "temp")}},
		{"narrow range", t0 + 1_000_000, t0 + 2_000_000, true, nil, []*labels.Matcher{m(labels.MatchRegexp, "job", ".+")}},
		{"hints narrow", t0, end, true, &storage.SelectHints{Start: t0 + 3_000_000, End: t0 + 3_100_000, Step: 15_000, Func: "rate", Range: 300_000},
			[]*labels.Matcher{m(labels.MatchRegexp, "job", ".+")}},
		{"limit", t0, end, true, &storage.SelectHints{Limit: 2}, []*labels.Matcher{m(labels.MatchRegexp, "job", ".+")}},
		{"shard 0", t0, end, true, &storage.SelectHints{ShardCount: 2, ShardIndex: 0}, []*labels.Matcher{m(labels.MatchRegexp, "job", ".+")}},
		{"shard 1", t0, end, true, &storage.SelectHints{ShardCount: 2, ShardIndex: 1}, []*labels.Matcher{m(labels.MatchRegexp, "job", ".+")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lq, err := groups[1].Querier(tenant, tc.mint, tc.maxt)
			require.NoError(t, err)
			defer lq.Close()
			want, err := selectAll(t, lq, tc.sortSeries, tc.hints, tc.ms...)
			require.NoError(t, err)

			rq := NewRemote(srv.Client(), srv.URL, 1, tenant, tc.mint, tc.maxt)
			defer func() { require.NoError(t, rq.Close()) }()
			got, err := selectAll(t, rq, tc.sortSeries, tc.hints, tc.ms...)
			require.NoError(t, err)
			require.Equal(t, want, got)
			if tc.name == "specials" {
				require.NotEmpty(t, got)
				var bits []uint64
				for _, s := range got[0].Samples[:8] {
					bits = append(bits, s.V)
				}
				require.Contains(t, bits, value.StaleNaN)
				require.Contains(t, bits, uint64(0x7ff8000000000bad))
				require.Contains(t, bits, uint64(1)<<63) // -0
			}
		})
	}
}

func TestRemoteSeek(t *testing.T) {
	groups := protocolData(t)
	srv := serve(t, groups)
	rq := NewRemote(srv.Client(), srv.URL, 1, tenant, t0, t0+400*15_000)
	defer rq.Close()
	ss := rq.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "http_requests_total"))
	require.True(t, ss.Next())
	it := ss.At().Iterator(nil)
	for _, tc := range []struct {
		name string
		seek int64
		want int64 // 0: ValNone
	}{
		{"before first", t0 - 1, t0},
		{"backwards stays", t0 - 100, t0},
		{"between samples", t0 + 1, t0 + 15_000},
		{"into third chunk", t0 + 250*15_000, t0 + 250*15_000},
		{"last", t0 + 399*15_000, t0 + 399*15_000},
		{"past the end", t0 + 400*15_000, 0},
	} {
		vt := it.Seek(tc.seek)
		if tc.want == 0 {
			require.Equal(t, chunkenc.ValNone, vt, tc.name)
			continue
		}
		require.Equal(t, chunkenc.ValFloat, vt, tc.name)
		ts, v := it.At()
		require.Equal(t, tc.want, ts, tc.name)
		require.Equal(t, float64((ts-t0)/15_000*7), v, tc.name)
	}
	require.NoError(t, it.Err())
	require.False(t, ss.Next())
	require.NoError(t, ss.Err())
}

func TestRemoteSeriesFuncSendsNoChunks(t *testing.T) {
	groups := protocolData(t)
	var bodyBytes int64
	h := NewHandler(groups, HandlerOptions{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		bodyBytes = cw.n
	}))
	defer srv.Close()
	ms := labels.MustNewMatcher(labels.MatchRegexp, "job", ".+")
	rq := NewRemote(srv.Client(), srv.URL, 1, tenant, t0, t0+400*15_000)
	defer rq.Close()
	got, err := selectAll(t, rq, true, &storage.SelectHints{Func: "series", Start: t0, End: t0 + 400*15_000}, ms)
	require.NoError(t, err)
	require.Len(t, got, 5)
	for _, s := range got {
		require.Empty(t, s.Samples, s.Labels)
	}
	require.Less(t, bodyBytes, int64(400), "a labels-only answer carries no chunks")

	full, err := selectAll(t, rq, true, nil, ms)
	require.NoError(t, err)
	require.Len(t, full, 5)
	for i := range full {
		require.Equal(t, full[i].Labels, got[i].Labels)
	}
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.ResponseWriter.Write(p)
}

func (w *countingWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

func TestRemoteLabels(t *testing.T) {
	groups := protocolData(t)
	srv := serve(t, groups)
	m := labels.MustNewMatcher
	for _, tc := range []struct {
		name  string
		label string // "": label names
		limit int
		ms    []*labels.Matcher
	}{
		{"names", "", 0, nil},
		{"names limit", "", 2, nil},
		{"names matched", "", 0, []*labels.Matcher{m(labels.MatchEqual, "job", "db")}},
		{"values job", "job", 0, nil},
		{"values name", "__name__", 0, nil},
		{"values limit", "__name__", 1, nil},
		{"values matched", "instance", 0, []*labels.Matcher{m(labels.MatchNotRegexp, "instance", "b")}},
		{"values none", "nope", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			lq, err := groups[1].Querier(tenant, t0, t0+400*15_000)
			require.NoError(t, err)
			defer lq.Close()
			rq := NewRemote(srv.Client(), srv.URL, 1, tenant, t0, t0+400*15_000)
			defer rq.Close()
			hints := &storage.LabelHints{Limit: tc.limit}
			var want, got []string
			if tc.label == "" {
				want, _, err = lq.LabelNames(ctx, hints, tc.ms...)
				require.NoError(t, err)
				got, _, err = rq.LabelNames(ctx, hints, tc.ms...)
			} else {
				want, _, err = lq.LabelValues(ctx, tc.label, hints, tc.ms...)
				require.NoError(t, err)
				got, _, err = rq.LabelValues(ctx, tc.label, hints, tc.ms...)
			}
			require.NoError(t, err)
			if len(want) == 0 {
				require.Empty(t, got)
			} else {
				require.Equal(t, want, got)
			}
			if tc.limit > 0 {
				require.Len(t, got, tc.limit)
			}
		})
	}
}

// TestRemoteCutShort cuts a complete response at every byte: each prefix
// must fail, never read as a shorter answer.
func TestRemoteCutShort(t *testing.T) {
	groups := protocolData(t)
	h := NewHandler(groups, HandlerOptions{FlushBytes: 64})
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")}
	for _, tc := range []struct {
		name string
		call func(q storage.Querier) error
	}{
		{"select", func(q storage.Querier) error {
			_, err := readAll(t, q.Select(context.Background(), true, &storage.SelectHints{Start: t0, End: t0 + 10*15_000}, ms...))
			return err
		}},
		{"series", func(q storage.Querier) error {
			_, err := readAll(t, q.Select(context.Background(), true, &storage.SelectHints{Func: "series"}, ms...))
			return err
		}},
		{"values", func(q storage.Querier) error {
			_, _, err := q.LabelValues(context.Background(), "instance", nil)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var full []byte
			cut := -1
			client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				full = rec.Body.Bytes()
				body := full
				if cut >= 0 {
					body = full[:cut]
				}
				return &http.Response{StatusCode: rec.Code, Body: io.NopCloser(bytes.NewReader(body)), Header: rec.Header(), Request: r}, nil
			})}
			q := NewRemote(client, "http://node", 1, tenant, t0, t0+400*15_000)
			require.NoError(t, tc.call(q))
			n := len(full)
			require.Greater(t, n, 10)
			for cut = 0; cut < n; cut++ {
				err := tc.call(q)
				require.Error(t, err, "cut at %d of %d", cut, n)
				require.Contains(t, err.Error(), "group 1")
			}
			// Bytes after the trailer are refused too.
			cut = -1
			client.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader(append(rec.Body.Bytes(), 'S'))), Request: r}, nil
			})
			require.ErrorIs(t, tc.call(q), ErrCorrupt)
		})
	}
}

func TestRemoteNotLeader(t *testing.T) {
	groups := protocolData(t)
	srv := serve(t, groups)
	rq := NewRemote(srv.Client(), srv.URL, 9, tenant, t0, t0+1000)
	defer rq.Close()
	_, err := selectAll(t, rq, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	require.ErrorIs(t, err, ErrRemote)
	require.Contains(t, err.Error(), "status 503")
	require.Contains(t, err.Error(), "group 9")
	_, _, err = rq.LabelNames(context.Background(), nil)
	require.ErrorIs(t, err, ErrRemote)
	require.Contains(t, err.Error(), "group 9")

	// Through the fan-out: the error names the group.
	f := New(staticGroups{owners: []ring.GroupID{1, 9}, open: func(ctx context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
		return NewRemote(srv.Client(), srv.URL, g, tenant, mint, maxt), nil
	}}, Options{})
	q, err := f.Querier(tenant, t0, t0+1000)
	require.NoError(t, err)
	defer q.Close()
	_, err = selectAll(t, q, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	require.ErrorIs(t, err, ErrRemote)
	require.Contains(t, err.Error(), "select on group 9")
}

// fakeQuerier serves one select: the series of set, then err.
type fakeQuerier struct {
	storage.MockQuerier
	series []storage.Series
	err    error
	ws     annotations.Annotations
}

func (q *fakeQuerier) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	return &fakeSet{list: q.series, err: q.err, ws: q.ws}
}

type fakeSet struct {
	list []storage.Series
	cur  storage.Series
	err  error
	ws   annotations.Annotations
}

func (s *fakeSet) Next() bool {
	if len(s.list) == 0 {
		return false
	}
	s.cur, s.list = s.list[0], s.list[1:]
	return true
}
func (s *fakeSet) At() storage.Series                { return s.cur }
func (s *fakeSet) Err() error                        { return s.err }
func (s *fakeSet) Warnings() annotations.Annotations { return s.ws }

type fakeLocal struct{ q storage.Querier }

func (f fakeLocal) Querier(context.Context, ring.GroupID, string, int64, int64) (storage.Querier, error) {
	return f.q, nil
}

func TestRemoteMidStreamErrors(t *testing.T) {
	float := storage.NewListSeries(labels.FromStrings("__name__", "a"), nil)
	for _, tc := range []struct {
		name    string
		q       *fakeQuerier
		wantErr string // "" means success
		wantWs  []string
	}{
		{"error after a series", &fakeQuerier{series: []storage.Series{float}, err: errors.New("disk on fire")}, "disk on fire", nil},
		{"error before any series", &fakeQuerier{err: errors.New("no postings")}, "no postings", nil},
		{"warnings", &fakeQuerier{series: []storage.Series{float}, ws: warnings(errors.New("partial data"), annotations.NewPossibleNonCounterInfo("x", posrange.PositionRange{}))},
			"", []string{"partial data", "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"x\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, fakeLocal{tc.q})
			rq := NewRemote(srv.Client(), srv.URL, 4, tenant, 0, 100)
			defer rq.Close()
			ss := rq.Select(context.Background(), true, nil)
			_, err := readAll(t, ss)
			if tc.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.wantErr)
				require.Contains(t, err.Error(), "group 4")
				return
			}
			require.NoError(t, err)
			var ws []string
			for _, w := range ss.Warnings().AsErrors() {
				ws = append(ws, w.Error())
				if strings.Contains(w.Error(), "info") {
					require.ErrorIs(t, w, annotations.PromQLInfo)
				} else {
					require.ErrorIs(t, w, annotations.PromQLWarning)
				}
			}
			require.ElementsMatch(t, tc.wantWs, ws)
		})
	}
}

func TestRemoteCloseWhileStreaming(t *testing.T) {
	groups := protocolData(t)
	srv := serve(t, groups)
	rq := NewRemote(srv.Client(), srv.URL, 1, tenant, t0, t0+400*15_000)
	ss := rq.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "job", ".+"))
	require.True(t, ss.Next())
	require.NoError(t, rq.Close())
	require.NoError(t, rq.Close())
	for ss.Next() {
	}
	require.Error(t, ss.Err(), "a body closed mid-stream is an error")
	ss = rq.Select(context.Background(), true, nil)
	require.False(t, ss.Next())
	require.ErrorContains(t, ss.Err(), "closed")
}

func TestHandlerRejects(t *testing.T) {
	srv := serve(t, localGroups{})
	good := appendRequest(nil, PathLabels, &request{group: 1, tenant: "t"})
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   []byte
		want   int
	}{
		{"get", http.MethodGet, PathSelect, nil, http.StatusMethodNotAllowed},
		{"unknown path", http.MethodPost, "/internal/querier/nope", good, http.StatusNotFound},
		{"bad version", http.MethodPost, PathLabels, append([]byte{9}, good[1:]...), http.StatusBadRequest},
		{"truncated", http.MethodPost, PathLabels, good[:len(good)-1], http.StatusBadRequest},
		{"not leader", http.MethodPost, PathLabels, good, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(tc.body))
			require.NoError(t, err)
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			msg, _ := io.ReadAll(resp.Body)
			require.Equal(t, tc.want, resp.StatusCode, string(msg))
		})
	}
}

func warnings(errs ...error) annotations.Annotations {
	var ws annotations.Annotations
	for _, err := range errs {
		ws.Add(err)
	}
	return ws
}

// staticGroups is a Groups with fixed owners.
type staticGroups struct {
	owners []ring.GroupID
	open   func(ctx context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error)
}

func (s staticGroups) Owners(int64, int64) []ring.GroupID { return s.owners }
func (s staticGroups) Querier(ctx context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error) {
	return s.open(ctx, g, tenant, mint, maxt)
}

// TestRemoteCorruptNoPanic flips every byte of a response in turn: the
// client may fail or (for a flipped sample bit) read other values, but
// never panic.
func TestRemoteCorruptNoPanic(t *testing.T) {
	groups := protocolData(t)
	h := NewHandler(groups, HandlerOptions{})
	flip := -1
	var full []byte
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if full == nil { // the engine answers once; then the same bytes, corrupted
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			require.Equal(t, http.StatusOK, rec.Code)
			full = bytes.Clone(rec.Body.Bytes())
		}
		body := bytes.Clone(full)
		if flip >= 0 {
			body[flip] ^= 0xff
		}
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
	})}
	q := NewRemote(client, "http://node", 1, tenant, t0, t0+400*15_000)
	ms := labels.MustNewMatcher(labels.MatchRegexp, "job", "api|db")
	sel := func() {
		_, _ = readAllLoose(q.Select(context.Background(), true, &storage.SelectHints{Start: t0, End: t0 + 200*15_000}, ms))
	}
	sel()
	for flip = 0; flip < len(full); flip++ {
		sel()
	}
}

// readAllLoose is readAll without assertions.
func readAllLoose(ss storage.SeriesSet) (int, error) {
	n := 0
	var it chunkenc.Iterator
	for ss.Next() {
		it = ss.At().Iterator(it)
		for it.Next() != chunkenc.ValNone {
			n++
		}
		if err := it.Err(); err != nil {
			return n, err
		}
	}
	return n, ss.Err()
}

// TestRemoteAnswerTimeout: a node that accepts the request but does not
// answer (frozen, cut off) fails the call after the answer timeout, so
// the caller can try another; an answer that started in time streams on.
func TestRemoteAnswerTimeout(t *testing.T) {
	release := make(chan struct{})
	frozen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer frozen.Close()
	defer close(release)
	rq := NewRemote(frozen.Client(), frozen.URL, 1, tenant, t0, t0+1000).WithAnswerTimeout(50 * time.Millisecond)
	defer rq.Close()
	_, _, err := rq.LabelNames(context.Background(), nil)
	require.ErrorContains(t, err, "no answer within 50ms")

	groups := protocolData(t)
	h := NewHandler(groups, HandlerOptions{FlushBytes: 64}) // many writes
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &slowWriter{ResponseWriter: w, delay: 60 * time.Millisecond}
		h.ServeHTTP(sw, r)
		if sw.writes < 4 {
			t.Errorf("the stream took %d writes, want several past the answer timeout", sw.writes)
		}
	}))
	defer slow.Close()
	rq2 := NewRemote(slow.Client(), slow.URL, 1, tenant, t0, t0+1000).WithAnswerTimeout(150 * time.Millisecond)
	defer rq2.Close()
	_, err = selectAll(t, rq2, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	require.NoError(t, err)
}

// slowWriter flushes at once, then waits before every later write: the
// answer starts in time, the stream takes longer than the timeout's
// remainder would allow.
type slowWriter struct {
	http.ResponseWriter
	delay  time.Duration
	writes int
}

func (w *slowWriter) Write(b []byte) (int, error) {
	if w.writes > 0 {
		time.Sleep(w.delay)
	}
	w.writes++
	n, err := w.ResponseWriter.Write(b)
	w.ResponseWriter.(http.Flusher).Flush()
	return n, err
}

func (w *slowWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }
