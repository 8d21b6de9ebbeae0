package frontend

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// refDecode decodes a matrix or vector answer the slow, generic way: the
// reference that seriesScanner must match.
func refDecode(t *testing.T, body string) []series {
	out, err := refDecodeErr(body)
	require.NoError(t, err)
	return out
}

func refDecodeErr(body string) ([]series, error) {
	var resp struct {
		Data struct {
			Result []struct {
				Metric     map[string]string    `json:"metric"`
				Values     [][2]json.RawMessage `json:"values"`
				Histograms [][2]json.RawMessage `json:"histograms"`
				Value      *[2]json.RawMessage  `json:"value"`
				Histogram  *[2]json.RawMessage  `json:"histogram"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return nil, err
	}
	var out []series
	for _, rs := range resp.Data.Result {
		s := series{lbls: labels.FromMap(rs.Metric), floats: []fpoint{}}
		if rs.Value != nil {
			rs.Values = append(rs.Values, *rs.Value)
		}
		if rs.Histogram != nil {
			rs.Histograms = append(rs.Histograms, *rs.Histogram)
		}
		for _, p := range rs.Values {
			ts, err := parseTimestamp(p[0])
			if err != nil {
				return nil, err
			}
			var vs string
			if err := json.Unmarshal(p[1], &vs); err != nil {
				return nil, err
			}
			v, err := strconv.ParseFloat(vs, 64)
			if err != nil {
				return nil, err
			}
			s.floats = append(s.floats, fpoint{t: ts, v: v})
		}
		for _, p := range rs.Histograms {
			ts, err := parseTimestamp(p[0])
			if err != nil {
				return nil, err
			}
			s.hists = append(s.hists, hpoint{t: ts, raw: p[1]})
		}
		out = append(out, s)
	}
	return out, nil
}

// TestDecodeResultShapes: the one-pass scanner reads what the generic
// decode reads, whatever the white space, escapes, key order, unknown
// keys, histogram objects with brackets in strings, and empty lists.
func TestDecodeResultShapes(t *testing.T) {
	for _, body := range []string{
		string(matrixBody(3, 4)),
		`{"status":"success","data":{"resultType":"matrix","result":[]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[ ]}}`,
		"{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[\n {\"values\" : [ [ 1.5 , \"2\" ] , [2,\"NaN\"] ] , \"metric\":{\"a\":\"x],\\\"y\\\\\",\"b\":\"\\u00e9\\n\"}, \"extra\": {\"k\":[1,{\"z\":\"]}\"}]} }\n]}}",
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.123,"+Inf"]},{"metric":{"h":"1"},"histogram":[1700000000,{"count":"3","sum":"2.5","buckets":[[0,"-0.5","0.5","1"],[1,"0.5","]1[","2"]]}]}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"m"},"values":[[1,"1"]],"histograms":[[2,{"count":"1","sum":"\"q\""}],[3,{}]]}]},"warnings":["w,]"],"infos":["i"]}`,
		`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[-1.5,"-0"]}]}}`,
	} {
		r, err := decodeResult([]byte(body), nil)
		require.NoError(t, err, body)
		want := refDecode(t, body)
		require.Len(t, r.series, len(want), body)
		for i := range want {
			require.Equal(t, want[i].lbls, r.series[i].lbls, body)
			require.Equal(t, len(want[i].floats), len(r.series[i].floats), body)
			for j, p := range want[i].floats {
				q := r.series[i].floats[j]
				require.True(t, p.t == q.t && math.Float64bits(p.v) == math.Float64bits(q.v), "%v != %v: %s", p, q, body)
			}
			require.Equal(t, len(want[i].hists), len(r.series[i].hists), body)
			for j := range want[i].hists {
				require.Equal(t, want[i].hists[j].t, r.series[i].hists[j].t)
				require.JSONEq(t, string(want[i].hists[j].raw), string(r.series[i].hists[j].raw))
			}
			var m map[string]string
			require.NoError(t, json.Unmarshal(r.series[i].metric, &m), "the metric is kept as written")
		}
	}
	// Scalars and strings stay raw; shapes that are not the API's fail.
	r, err := decodeResult([]byte(`{"status":"success","data":{"resultType":"scalar","result":[1, "2"]}}`), nil)
	require.NoError(t, err)
	require.JSONEq(t, `[1, "2"]`, string(r.raw))
	for _, bad := range []string{
		`{"status":"success","data":{"resultType":"matrix","result":[1,"2"]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[["x","1"]]}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"one"]]}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1]]}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":{}}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":1}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}`,
	} {
		_, err := decodeResult([]byte(bad), nil)
		require.Error(t, err, bad)
	}
}

// FuzzDecodeResult: whatever the body, decodeResult does not panic, and
// when it and the generic decode both read a matrix or vector, they read
// the same series and points (the scanner may refuse what the generic
// decode tolerates: a point with more than two elements, say).
func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte(matrixBody(2, 3)))
	f.Add([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1,"2"]}]}}`))
	f.Add([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"histograms":[[2,{"count":"1"}]]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeResult(b, nil)
		if err != nil || (r.resultType != "matrix" && r.resultType != "vector") {
			return
		}
		// encoding/json matches keys case-insensitively and merges a
		// repeated object key into one map; Prometheus writes neither, and
		// the scanner reads keys as written, once.
		lower := bytes.ToLower(b)
		for _, k := range []string{`"metric"`, `"values"`, `"value"`, `"histograms"`, `"histogram"`} {
			if bytes.Count(lower, []byte(k)) != bytes.Count(b, []byte(k)) || bytes.Count(b, []byte(k)) > len(r.series) {
				return
			}
		}
		want, err := refDecodeErr(string(b))
		if err != nil {
			return
		}
		if len(want) != len(r.series) {
			t.Fatalf("%d series, want %d", len(r.series), len(want))
		}
		for i := range want {
			if !labels.Equal(want[i].lbls, r.series[i].lbls) || len(want[i].floats) != len(r.series[i].floats) || len(want[i].hists) != len(r.series[i].hists) {
				t.Fatalf("series %d: %v %d %d, want %v %d %d", i, r.series[i].lbls, len(r.series[i].floats), len(r.series[i].hists),
					want[i].lbls, len(want[i].floats), len(want[i].hists))
			}
			for j, p := range want[i].floats {
				if q := r.series[i].floats[j]; p.t != q.t || math.Float64bits(p.v) != math.Float64bits(q.v) {
					t.Fatalf("series %d point %d: %v, want %v", i, j, q, p)
				}
			}
		}
	})
}
