package querier

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// FuzzSelectResponse feeds arbitrary select response bodies to the
// client (Remote): it must not panic, whatever the frames ('P' start
// timestamp frames among them), and a series' iterator reports what it
// cannot read as an error.
func FuzzSelectResponse(f *testing.F) {
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "c_total")}
	h := NewHandler(fakeLocal{&fakeQuerier{series: stSeries(130)}}, HandlerOptions{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathSelect,
		strings.NewReader(string(appendRequest(nil, PathSelect, &request{group: 7, tenant: "t1", maxt: 1 << 40, matchers: ms})))))
	seed := rec.Body.Bytes()
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{Version, 'S', 0, 'C', 0, 0, 2, 0, 0, 'P', 1, 2, 'T', 0, 0, 0})
	var body atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(*body.Load())
	}))
	defer srv.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		body.Store(&data)
		q := NewRemote(srv.Client(), srv.URL, 7, "t1", 0, 1<<40)
		defer q.Close()
		ss := q.Select(t.Context(), false, nil, ms...)
		var it chunkenc.Iterator
		for ss.Next() {
			it = ss.At().Iterator(it)
			for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
				_ = it.AtT()
				_ = it.AtST()
			}
			_ = it.Err()
			it = ss.At().Iterator(it)
			if it.Seek(60_000) != chunkenc.ValNone {
				_ = it.AtST()
			}
		}
		_ = ss.Err()
	})
}
