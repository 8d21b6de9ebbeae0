package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// rw2Response is what a remote-write answer says.
type rw2Response struct {
	code    int
	body    string
	written [3]string // X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written
}

// rw2Post sends a remote-write body with the given headers over HTTP.
func rw2Post(t *testing.T, url, tenant, contentType, encoding string, body []byte) rw2Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Encoding", encoding)
	req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := resp.Header
	return rw2Response{resp.StatusCode, string(b), [3]string{
		h.Get("X-Prometheus-Remote-Write-Samples-Written"),
		h.Get("X-Prometheus-Remote-Write-Histograms-Written"),
		h.Get("X-Prometheus-Remote-Write-Exemplars-Written"),
	}}
}

const rw2ContentType = "application/x-protobuf;proto=io.prometheus.write.v2.Request"

// TestRemoteWrite2 pushes remote write 2.0 requests, built with
// Prometheus's reference types, to a running node over HTTP, on each
// write endpoint: what is valid is stored and queryable, what is not is
// refused with a 400 that says why, the Written headers count exactly
// the samples and native histograms stored (0 exemplars: not stored
// yet), a histogram is rendered as Prometheus renders it, and
// content types and encodings other than remote write's get 415. Remote
// write 1.0 on the same node: unsorted labels are sorted and stored, a
// gzip Content-Encoding is a 415.
func TestRemoteWrite2(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newLogWatcher()
	done := make(chan error, 1)
	argv := []string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0"}
	goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
	addr := stderr.addr(t, done)
	waitReady(t, addr)
	base := "http://" + addr

	encode := func(build func(st *writev2.SymbolsTable) []writev2.TimeSeries) []byte {
		st := writev2.NewSymbolTable()
		ts := build(&st)
		b, err := (&writev2.Request{Symbols: st.Symbols(), Timeseries: ts}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return snappy.Encode(nil, b)
	}
	// series is a 2.0 series {__name__=name, job="rw2", extra...} with the
	// value v at 10 s, its labels symbolized in the order given (job
	// first: unsorted, as Go maps give them).
	series := func(st *writev2.SymbolsTable, name string, v float64, extra ...string) writev2.TimeSeries {
		lset := append([]string{"job", "rw2", "__name__", name}, extra...)
		s := writev2.TimeSeries{Samples: []writev2.Sample{{Value: v, Timestamp: 10_000}}}
		for i := 0; i < len(lset); i += 2 {
			s.LabelsRefs = append(s.LabelsRefs, st.Symbolize(lset[i]), st.Symbolize(lset[i+1]))
		}
		return s
	}
	hist := writev2.Histogram{Count: &writev2.Histogram_CountInt{CountInt: 1}, Sum: 1,
		PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 1}}, PositiveDeltas: []int64{1}, Timestamp: 10_000}

	for i, path := range []string{"/api/v1/push", "/api/v1/write", "/prometheus/api/v1/push", "/prometheus/api/v1/write"} {
		p := fmt.Sprintf("p%d_", i)
		for _, tc := range []struct {
			name    string
			body    []byte
			code    int
			msg     string
			written [3]string
			stored  []string // metric names that must be stored (value 1)
		}{
			{"samples", encode(func(st *writev2.SymbolsTable) []writev2.TimeSeries {
				return []writev2.TimeSeries{series(st, p+"a", 1), series(st, p+"b", 1, "zone", "z")}
			}), 204, "", [3]string{"2", "0", "0"}, []string{p + "a", p + "b"}},
			{"partial", encode(func(st *writev2.SymbolsTable) []writev2.TimeSeries {
				noName := series(st, p+"x", 1)
				noName.LabelsRefs = noName.LabelsRefs[:2]
				badRef := series(st, p+"y", 1)
				badRef.LabelsRefs[3] = 1000
				return []writev2.TimeSeries{series(st, p+"c", 1), noName, badRef, series(st, p+"d", 1, "b\xffad", "v")}
			}), 400, "3 series (3 samples) refused in total; 1 series (1 samples) were written", [3]string{"1", "0", "0"}, []string{p + "c"}},
			{"histograms", encode(func(st *writev2.SymbolsTable) []writev2.TimeSeries {
				h := series(st, p+"h", 1)
				h.Samples, h.Histograms = nil, []writev2.Histogram{hist}
				return []writev2.TimeSeries{h, series(st, p+"e", 1)}
			}), 204, "", [3]string{"1", "1", "0"}, []string{p + "e"}},
			{"exemplars", encode(func(st *writev2.SymbolsTable) []writev2.TimeSeries {
				s := series(st, p+"f", 1)
				s.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("abc")}, Value: 1, Timestamp: 10_000}}
				s.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("help")}
				return []writev2.TimeSeries{s}
			}), 400, "exemplars are not kept for this tenant", [3]string{"1", "0", "0"}, []string{p + "f"}},
			{"malformed", snappy.Encode(nil, []byte{0x2a, 0x09, 0x0a}), 400, "malformed protobuf at byte", [3]string{"0", "0", "0"}, nil},
		} {
			t.Run(path+" "+tc.name, func(t *testing.T) {
				r := rw2Post(t, base+path, "t", rw2ContentType, "snappy", tc.body)
				if r.code != tc.code || !strings.Contains(r.body, tc.msg) || r.written != tc.written {
					t.Fatalf("got %d %q written %v, want %d with %q, written %v", r.code, truncate([]byte(r.body)), r.written, tc.code, tc.msg, tc.written)
				}
				for _, name := range tc.stored {
					code, body := do(t, "GET", base+"/api/v1/query?query="+name+"&time=10", "t", nil)
					if code != 200 || !strings.Contains(body, `"value":[10,"1"]`) || !strings.Contains(body, `"job":"rw2"`) {
						t.Fatalf("%s not stored: %d %s", name, code, body)
					}
				}
				if tc.name == "histograms" {
					// Rendered as Prometheus renders a native histogram.
					want := `"histogram":[10,{"count":"1","sum":"1","buckets":[[0,"0.5","1","1"]]}]`
					code, body := do(t, "GET", base+"/api/v1/query?query="+p+"h&time=10", "t", nil)
					if code != 200 || !strings.Contains(body, want) {
						t.Fatalf("histogram %sh: %d %s, want %s", p, code, body, want)
					}
					want = `"histograms":[[10,{"count":"1","sum":"1","buckets":[[0,"0.5","1","1"]]}]]`
					code, body = do(t, "GET", base+"/api/v1/query_range?query="+p+"h&start=10&end=10&step=1", "t", nil)
					if code != 200 || !strings.Contains(body, want) {
						t.Fatalf("histogram %sh over a range: %d %s, want %s", p, code, body, want)
					}
				}
			})
		}
	}
	// Nothing refused was stored.
	if code, body := do(t, "GET", base+`/api/v1/series?match[]={job="rw2"}`, "t", nil); code != 200 ||
		strings.Contains(body, "_x") || strings.Contains(body, "_y") || strings.Contains(body, "_d") {
		t.Fatalf("refused series stored: %d %s", code, body)
	}

	// A staleness marker round-trips bit for bit through 2.0.
	stale := encode(func(st *writev2.SymbolsTable) []writev2.TimeSeries {
		s := series(st, "stale", 1)
		s.Samples = append(s.Samples, writev2.Sample{Value: math.Float64frombits(0x7ff0000000000002), Timestamp: 20_000})
		return []writev2.TimeSeries{s}
	})
	if r := rw2Post(t, base+"/api/v1/push", "t", rw2ContentType, "snappy", stale); r.code != 204 || r.written[0] != "2" {
		t.Fatalf("stale marker: %d %q %v", r.code, r.body, r.written)
	}
	if code, body := do(t, "GET", base+"/api/v1/query?query=stale&time=21", "t", nil); code != 200 || !strings.Contains(body, `"result":[]`) {
		t.Fatalf("the staleness marker did not end the series: %d %s", code, body)
	}

	// 415 for what is not remote write, with no Written headers.
	valid := encode(func(st *writev2.SymbolsTable) []writev2.TimeSeries {
		return []writev2.TimeSeries{series(st, "never", 1)}
	})
	for _, tc := range []struct{ contentType, encoding string }{
		{"application/json", "snappy"},
		{"image/png", "snappy"},
		{"application/x-protobuf;proto=io.prometheus.write.v3.Request", "snappy"},
		{rw2ContentType, "gzip"},
		{rw2ContentType, "deflate"},
		{"application/x-protobuf", "gzip"},
	} {
		r := rw2Post(t, base+"/api/v1/push", "t", tc.contentType, tc.encoding, valid)
		if r.code != http.StatusUnsupportedMediaType || r.written != [3]string{} {
			t.Errorf("%s, %s: %d %q written %v, want 415 without Written headers", tc.contentType, tc.encoding, r.code, r.body, r.written)
		}
	}
	if code, body := do(t, "GET", base+"/api/v1/series?match[]=never", "t", nil); code != 200 || strings.Contains(body, "never") {
		t.Fatalf("a 415 request was stored: %s", body)
	}

	// Remote write 1.0 on the same endpoint: unsorted labels are sorted
	// and stored, answered without Written headers.
	v1, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "job", Value: "rw1"}, {Name: "__name__", Value: "unsorted_v1"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: 10_000}},
	}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if r := rw2Post(t, base+"/api/v1/write", "t", "application/x-protobuf", "snappy", snappy.Encode(nil, v1)); r.code != 204 || r.written != [3]string{} {
		t.Fatalf("1.0 with unsorted labels: %d %q written %v", r.code, r.body, r.written)
	}
	if code, body := do(t, "GET", base+"/api/v1/query?query=unsorted_v1&time=10", "t", nil); code != 200 || !strings.Contains(body, `"job":"rw1"`) {
		t.Fatalf("unsorted 1.0 series not stored: %d %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
