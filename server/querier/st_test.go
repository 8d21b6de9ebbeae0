package querier

import (
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
)

// stSample is a float sample with a start timestamp.
type stSample struct {
	st, t int64
	f     float64
}

func (s stSample) T() int64                      { return s.t }
func (s stSample) ST() int64                     { return s.st }
func (s stSample) F() float64                    { return s.f }
func (s stSample) H() *histogram.Histogram       { return nil }
func (s stSample) FH() *histogram.FloatHistogram { return nil }
func (s stSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s stSample) Copy() chunks.Sample           { return s }

// stSeries: a counter whose start timestamp changes at a reset, with
// samples without one, over three wire chunks; and a series without any.
func stSeries(n int) []storage.Series {
	var with, without []chunks.Sample
	for i := range n {
		t := int64(i) * 15_000
		st := int64(1_000)
		switch {
		case i%50 == 7:
			st = 0
		case i >= n/2:
			st = int64(n/2)*15_000 - 10
		}
		with = append(with, stSample{st: st, t: t, f: float64(i)})
		without = append(without, fSample{t, float64(i)})
	}
	return []storage.Series{
		storage.NewListSeries(labels.FromStrings("__name__", "c_total", "job", "a"), with),
		storage.NewListSeries(labels.FromStrings("__name__", "c_total", "job", "b"), without),
	}
}

// TestWireStartTimestamps: response version 3 carries the samples' start
// timestamps in 'P' frames after the chunks that have any (golden), the
// client returns them through AtST, on Next and on Seek; a client of
// request version 3 gets version 2, without them.
func TestWireStartTimestamps(t *testing.T) {
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "c_total")}
	h := NewHandler(fakeLocal{&fakeQuerier{series: stSeries(300)}}, HandlerOptions{})
	sel := &request{group: 7, tenant: "t1", mint: 0, maxt: 1 << 40, matchers: ms}
	post := func(version byte) []byte {
		body := appendRequest(nil, PathSelect, sel)
		body[0] = version
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathSelect, strings.NewReader(string(body))))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		return rec.Body.Bytes()
	}
	body := post(RequestVersion)
	require.Equal(t, Version, body[0])
	path := filepath.Join("testdata", "select_response_st.hex")
	if *rewrite {
		require.NoError(t, os.WriteFile(path, []byte(hex.Dump(body)), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -rewrite to create it")
	require.Equal(t, string(want), hex.Dump(body))
	old := post(3)
	require.Equal(t, VersionHistograms, old[0])
	require.Less(t, len(old), len(body), "no 'P' frames for an earlier release's client")

	srv := httptest.NewServer(h)
	defer srv.Close()
	q := NewRemote(srv.Client(), srv.URL, 7, "t1", 0, 1<<40)
	defer q.Close()
	ss := q.Select(t.Context(), false, nil, ms...)
	src := stSeries(300)
	for i := 0; ss.Next(); i++ {
		got, exp := ss.At().Iterator(nil), src[i].Iterator(nil)
		for vt := exp.Next(); vt != chunkenc.ValNone; vt = exp.Next() {
			require.Equal(t, vt, got.Next())
			require.Equal(t, exp.AtT(), got.AtT())
			require.Equal(t, exp.AtST(), got.AtST(), "series %d sample at %d", i, exp.AtT())
		}
		require.Equal(t, chunkenc.ValNone, got.Next())
		require.NoError(t, got.Err())
		// Seek, into the second and third chunks.
		got, exp = ss.At().Iterator(got), src[i].Iterator(exp)
		for _, ts := range []int64{100 * 15_000, 100*15_000 + 1, 250 * 15_000} {
			require.Equal(t, exp.Seek(ts), got.Seek(ts))
			require.Equal(t, exp.AtT(), got.AtT())
			require.Equal(t, exp.AtST(), got.AtST(), "series %d after Seek(%d)", i, ts)
		}
		require.NoError(t, got.Err())
	}
	require.NoError(t, ss.Err())
}
