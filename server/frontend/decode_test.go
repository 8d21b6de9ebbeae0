package frontend

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/cpuslot"
	"github.com/myelindb/myelin/server/tenant"
)

// apiAnswers are answers as the query API writes them (Prometheus's
// codec): every result type, histograms, stats, annotations, and
// strings that need escapes.
func apiAnswers(t testing.TB) map[string][]byte {
	h := tsdbutil.GenerateTestFloatHistogram(3)
	m := promql.Matrix{
		{Metric: labels.FromStrings("__name__", "m", "l", "a\"\\\u2028é<&>"), Floats: []promql.FPoint{{T: 1000, F: 1}, {T: 1500, F: math.NaN()}, {T: 2001, F: math.Inf(-1)}}},
		{Metric: labels.FromStrings("z", "1"), Histograms: []promql.HPoint{{T: 1000, H: h}}},
		{Metric: labels.FromStrings("b", "2"), Floats: []promql.FPoint{{T: -1, F: 1e-9}}, Histograms: []promql.HPoint{{T: 2000, H: h}}},
	}
	out := map[string][]byte{}
	for name, v := range map[string]parser.Value{
		"matrix":       m,
		"empty matrix": promql.Matrix{},
		"vector": promql.Vector{{Metric: labels.FromStrings("a", "b"), T: 1500, F: 2},
			{Metric: labels.EmptyLabels(), T: -1, F: math.NaN()}, {Metric: labels.FromStrings("h", "1"), T: 3, H: h}},
		"scalar": promql.Scalar{T: 1234, V: 1e-9},
		"string": promql.String{T: 1234, V: "x<y"},
	} {
		resp := &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: v.Type(), Result: v}}
		b, err := v1.JSONCodec{}.Encode(resp)
		require.NoError(t, err)
		out[name] = b
		resp.Warnings, resp.Infos = []string{"w <1>", "w2"}, []string{"i & 1"}
		b, err = v1.JSONCodec{}.Encode(resp)
		require.NoError(t, err)
		out[name+" annotated"] = b
	}
	out["stats"] = []byte(`{"status":"success","data":{"resultType":"vector","result":[],"stats":{"timings":{"evalTotalTime":0.5},"samples":{"totalQueryableSamples":7},"seriesFetched":3}}}`)
	out["stats null"] = []byte(`{"status":"success","data":{"resultType":"vector","result":[],"stats":null},"warnings":null}`)
	out["result first"] = []byte(` { "data" : { "result" : [ { "metric" : { "b":"1", "a":"2" }, "values" : [ [ 1.5 , "3" ] ] } ] , "resultType" : "matrix" } , "status" : "success" } `)
	out["null result"] = []byte(`{"status":"success","data":{"resultType":"matrix","result":null}}`)
	out["unknown fields"] = []byte(`{"status":"success","x":[1,{"y":null}],"data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2"],"extra":true}]}}`)
	return out
}

// TestDecodeLikeEncodingJSON: the streaming decoder reads every answer
// as the encoding/json one it replaced did, and refuses what it refused.
func TestDecodeLikeEncodingJSON(t *testing.T) {
	for name, body := range apiAnswers(t) {
		t.Run(name, func(t *testing.T) {
			want, err := decodeResultStd(body)
			require.NoError(t, err)
			got, err := decodeResult(body, nil)
			require.NoError(t, err)
			requireSameResult(t, want, got)
		})
	}
	for name, body := range map[string]string{
		"error status":    `{"status":"error","errorType":"bad_data","error":"x"}`,
		"no result type":  `{"status":"success","data":{"result":[]}}`,
		"unknown type":    `{"status":"success","data":{"resultType":"table","result":[]}}`,
		"value not str":   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,2]}]}}`,
		"bad float":       `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}`,
		"bad timestamp":   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.2345,"1"]}]}}`,
		"label not str":   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"1"]}]}}`,
		"point of one":    `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1]]}]}}`,
		"truncated":       `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]`,
		"not json":        `<html>`,
		"bad stats":       `{"status":"success","data":{"resultType":"vector","result":[],"stats":{"seriesFetched":"x"}}}`,
		"result not list": `{"status":"success","data":{"resultType":"matrix","result":{}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeResultStd([]byte(body))
			require.Error(t, err, "encoding/json")
			_, err = decodeResult([]byte(body), nil)
			require.Error(t, err)
		})
	}
	// encoding/json read the first two elements of a longer point.
	_, err := decodeResult([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1",2]]}]}}`), nil)
	require.Error(t, err)
}

// requireSameResult compares two answers, NaN values included.
func requireSameResult(t *testing.T, want, got *result) {
	t.Helper()
	require.Equal(t, want.resultType, got.resultType)
	require.Equal(t, string(want.raw), string(got.raw))
	require.Equal(t, want.warnings, got.warnings)
	require.Equal(t, want.infos, got.infos)
	require.Equal(t, want.stats, got.stats)
	require.Equal(t, len(want.series), len(got.series))
	require.Equal(t, want.series == nil, got.series == nil)
	for i, w := range want.series {
		g := got.series[i]
		require.Equal(t, string(w.metric), string(g.metric))
		require.True(t, labels.Equal(w.lbls, g.lbls), "%s != %s", w.lbls, g.lbls)
		require.Equal(t, w.floats == nil, g.floats == nil)
		require.Equal(t, len(w.floats), len(g.floats))
		for j, p := range w.floats {
			require.Equal(t, p.t, g.floats[j].t)
			require.Equal(t, math.Float64bits(p.v), math.Float64bits(g.floats[j].v))
		}
		require.Equal(t, len(w.hists), len(g.hists))
		for j, p := range w.hists {
			require.Equal(t, p.t, g.hists[j].t)
			require.Equal(t, string(p.raw), string(g.hists[j].raw))
		}
	}
}

// FuzzDecodeResult: the decoder never panics, and what it reads it
// writes back (result.encode) so that it reads the same again.
func FuzzDecodeResult(f *testing.F) {
	for _, b := range apiAnswers(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := decodeResult(body, nil)
		if err != nil {
			return
		}
		if res.resultType == "scalar" || res.resultType == "string" {
			return // kept as written, not re-encoded
		}
		again, err := decodeResult(res.encode(nil, true), nil)
		require.NoError(t, err)
		requireSameResult(t, res, again)
	})
}

// TestDecodeCheckpoints: decoding a large answer under a CPU slot looks
// at the slot as it goes: a lighter tenant waiting gets the slot in the
// middle, and a context that ends while the decoder waits for it again
// fails the decoding.
func TestDecodeCheckpoints(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"status":"success","data":{"resultType":"matrix","result":[`)
	for i := range 10 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"metric":{"i":"` + string(rune('a'+i)) + `"},"values":[`)
		for j := range cpuslot.TickEvery {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`[1,"1"]`)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}}`)
	body := []byte(b.String())
	s, err := cpuslot.New(cpuslot.Options{Slots: 1})
	require.NoError(t, err)

	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		heavy, _, err := s.Acquire(ctx, "heavy")
		require.NoError(t, err)
		time.Sleep(time.Second) // the heavy tenant held its slot a while
		lightDone := make(chan struct{})
		go func() {
			defer close(lightDone)
			light, _, err := s.Acquire(context.Background(), "light")
			if err != nil {
				t.Error(err)
				return
			}
			cancel() // the heavy query's client goes away while it waits
			light.Release()
		}()
		synctest.Wait() // light waits
		_, err = decodeResult(body, heavy)
		<-lightDone
		require.ErrorIs(t, err, context.Canceled)
		heavy.Release()
	})
}

// BenchmarkDecodeResult: a day of a heavy range query's piece (100
// series of 1,440 points), with encoding/json (the decoder before) and
// the streaming one.
func BenchmarkDecodeResult(b *testing.B) {
	m := promql.Matrix{}
	for i := range 100 {
		s := promql.Series{Metric: labels.FromStrings("instance", fmt.Sprintf("host-%d", i), "job", "job-1")}
		for j := range 1440 {
			s.Floats = append(s.Floats, promql.FPoint{T: 1700000000000 + int64(j)*60_000, F: float64(j*i) * 1.37})
		}
		m = append(m, s)
	}
	body, err := v1.JSONCodec{}.Encode(&v1.Response{Status: "success", Data: &v1.QueryData{ResultType: m.Type(), Result: m}})
	require.NoError(b, err)
	for _, d := range []struct {
		name   string
		decode func([]byte) (*result, error)
	}{
		{"encoding-json", decodeResultStd},
		{"stream", func(b []byte) (*result, error) { return decodeResult(b, nil) }},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := d.decode(body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/144000, "ns/point")
		})
	}
}

// TestCanceledWhileDecoding: a query whose client goes away while the
// decoding of its answer gave the CPU slot to a lighter tenant ends with
// 499, not with the API's answer passed on undecoded.
func TestCanceledWhileDecoding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Enough series for the decoder to check its slot, too few
		// points for the frontend's encoding to take one.
		var b strings.Builder
		b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
		for i := range 2 * cpuslot.TickEvery {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"metric":{"i":"%d"},"value":[1,"1"]}`, i)
		}
		b.WriteString(`]}}`)
		require.Less(t, 2*cpuslot.TickEvery, minSlotPoints)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var f *Frontend
		api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Second) // the heavy tenant's slot time
			// A light query waits for a slot as the answer is decoded; it
			// keeps the slot until the heavy query has answered.
			go func() {
				light, _, err := f.slots.Acquire(context.Background(), "light")
				if err != nil {
					t.Error(err)
					return
				}
				cancel() // the heavy query's client goes away
				<-done
				light.Release()
			}()
			time.Sleep(time.Millisecond) // less than the stall bound
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(b.String()))
		})
		f = newTestFrontend(t, api, Options{CPUSlots: 1})
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/v1/query?query=up&time=1", nil)
		r.Header.Set(tenant.Header, "heavy")
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		close(done)
		require.Equal(t, statusClientClosed, w.Code, w.Body.String()[:min(200, w.Body.Len())])
	})
}
