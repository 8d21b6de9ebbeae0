package frontend

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSplitStats(t *testing.T) {
	for _, tc := range []struct {
		name, body, rest, stats string
		ok                      bool
	}{
		{"last", `{"status":"success","data":{"resultType":"vector","result":[],"stats":{"timings":{"a":1},"seriesFetched":3}}}`,
			`{"status":"success","data":{"resultType":"vector","result":[]}}`, `{"timings":{"a":1},"seriesFetched":3}`, true},
		{"first", `{"data":{"stats":{"x":[1,{"y":"}"}]},"result":[]},"status":"success"}`,
			`{"data":{"result":[]},"status":"success"}`, `{"x":[1,{"y":"}"}]}`, true},
		{"middle, with warnings after", `{"status":"success","data":{"resultType":"matrix","stats":null,"result":[{"metric":{"a":"b\"}]"},"values":[[1,"2"]]}]},"warnings":["w"]}`,
			`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b\"}]"},"values":[[1,"2"]]}]},"warnings":["w"]}`, `null`, true},
		{"spaces", "{ \"data\" : { \"result\" : [ ] , \"stats\" : { } } }", "{ \"data\" : { \"result\" : [ ] } }", "{ }", true},
		{"escaped key", `{"data":{"result":"stats\\","stats":1}}`, `{"data":{"result":"stats\\"}}`, `1`, true},
		{"no stats", `{"status":"success","data":{"resultType":"vector","result":[]}}`, "", "", false},
		{"data not an object", `{"status":"success","data":[1]}`, "", "", false},
		{"no data", `{"status":"error","error":"data"}`, "", "", false},
		{"cut short", `{"data":{"result":[1,2`, "", "", false},
		{"not JSON", `oops`, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest, stats, ok := splitStats([]byte(tc.body))
			require.Equal(t, tc.ok, ok)
			if !ok {
				require.Equal(t, tc.body, string(rest), "nothing cut")
				return
			}
			require.Equal(t, tc.rest, string(rest))
			require.Equal(t, tc.stats, string(stats))
		})
	}
}

// TestPassThrough: an instant query and a range query computed whole are
// the API's answer as it wrote it, its stats cut out unless asked for
// (their timings differ from run to run: compared without them).
func TestPassThrough(t *testing.T) {
	api := newFakeAPI(t)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	shardingData(t, api, base)
	lim := DefaultLimits
	lim.CacheResults = false
	f := newTestFrontend(t, api, Options{Defaults: lim})
	for _, form := range []url.Values{
		{"query": {"mem_bytes"}, "time": {formatTime(base.Add(time.Hour).UnixMilli())}},
		rangeForm("rate(req_total[5m])", base, base.Add(time.Hour), time.Minute),
	} {
		path := "/api/v1/query_range"
		if form.Get("step") == "" {
			path = "/api/v1/query"
		}
		for _, stats := range []string{"", "true", "all"} {
			form.Del("stats")
			if stats != "" {
				form.Set("stats", stats)
			}
			_, want := get(t, api, path, "t1", form)
			code, got := get(t, f, path, "t1", form)
			require.Equal(t, 200, code, got)
			if stats == "" {
				require.Equal(t, want, got, path)
				continue
			}
			wantRest, _, ok := splitStats([]byte(want))
			require.True(t, ok)
			gotRest, gotStats, ok := splitStats([]byte(got))
			require.True(t, ok, "stats asked for are there")
			require.Equal(t, string(wantRest), string(gotRest), "%s stats=%s", path, stats)
			require.Contains(t, string(gotStats), `"seriesFetched"`)
		}
	}
}
