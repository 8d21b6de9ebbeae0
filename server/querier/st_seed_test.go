package querier

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// TestWriteFuzzSeeds writes responses of the handler, start timestamp
// frames among them, as seeds of fuzz/FuzzSelectResponse (with
// -rewrite).
func TestWriteFuzzSeeds(t *testing.T) {
	if !*rewrite {
		t.Skip("run with -rewrite to write fuzz/testdata/fuzz/FuzzSelectResponse")
	}
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "c_total")}
	dir := filepath.Join("..", "..", "fuzz", "testdata", "fuzz", "FuzzSelectResponse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, series := range [][]int{{130}, {3}} {
		h := NewHandler(fakeLocal{&fakeQuerier{series: stSeries(series[0])}}, HandlerOptions{})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathSelect,
			strings.NewReader(string(appendRequest(nil, PathSelect, &request{group: 7, tenant: "t1", maxt: 1 << 40, matchers: ms})))))
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", rec.Body.Bytes())
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("st-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
