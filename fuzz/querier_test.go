package fuzz

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/server/querier"
)

// FuzzSelectResponse feeds arbitrary select response bodies (the remote
// querier protocol, server/querier/doc.go: a node's answer to another's
// select) to the client, querier.Remote: it must not panic, whatever the
// frames ('P' start timestamp frames among them; seeds in testdata,
// written by server/querier's TestWriteFuzzSeeds), and what it cannot
// read is an error.
func FuzzSelectResponse(f *testing.F) {
	f.Add([]byte{querier.Version, 'S', 0, 'C', 0, 0, 2, 0, 0, 'P', 1, 2, 'T', 0, 0, 0})
	f.Add([]byte{querier.Version, 'S', 0, 'P', 1, 2, 'T', 1, 0, 0})
	var body atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(*body.Load())
	}))
	defer srv.Close()
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "c_total")}
	f.Fuzz(func(t *testing.T, data []byte) {
		body.Store(&data)
		q := querier.NewRemote(srv.Client(), srv.URL, 7, "t1", 0, 1<<40)
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
