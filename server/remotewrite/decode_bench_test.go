package remotewrite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/myelindb/myelin/internal/tsdata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// nodeRequest returns a node_exporter-like WriteRequest of n series with
// one sample each, as a Prometheus remote-write shard sends them: the
// series of recorded/node_15s from the shared data (real names, labels and
// values), repeated for as many node_exporter instances as needed
// (instance label "10.0.<i>.1:9100"), one scrape timestamp per instance.
// Without the shared data it builds synthetic series of the same shape.
func nodeRequest(tb testing.TB, n int) *prompb.WriteRequest {
	tb.Helper()
	var series []*tsdata.Series
	if dir := tsdata.SharedDir(); dir != "" {
		err := tsdata.ReadFile(filepath.Join(dir, "recorded", "node_15s.tsv.gz"), func(s *tsdata.Series) error {
			series = append(series, s)
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	} else {
		tb.Log("no shared data: synthetic node_exporter series")
		for i := range 1000 {
			series = append(series, &tsdata.Series{
				Labels: tsdata.Labels{{Name: "__name__", Value: "node_cpu_seconds_total"}, {Name: "cpu", Value: fmt.Sprint(i / 8)},
					{Name: "instance", Value: "127.0.0.1:9100"}, {Name: "job", Value: "node"}, {Name: "mode", Value: fmt.Sprint("mode", i%8)}},
				T: []int64{1795238701122}, V: []float64{float64(i) * 1234.56},
			})
		}
	}
	req := &prompb.WriteRequest{}
	for inst := 0; len(req.Timeseries) < n; inst++ {
		for _, s := range series {
			if len(req.Timeseries) == n {
				break
			}
			k := len(s.T) / 2 // a sample from the middle of the recording
			ts := prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: s.T[k] + int64(inst), Value: s.V[k]}}}
			for _, l := range s.Labels {
				if l.Name == "instance" {
					l.Value = fmt.Sprintf("10.0.%d.1:9100", inst)
				}
				ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
	}
	return req
}

// BenchmarkDecode compares, on one snappy-compressed request of 2000
// node_exporter series x 1 sample: the baseline (snappy.Decode into a
// fresh buffer + prompb.WriteRequest.Unmarshal, as Prometheus's receiver
// does) and ours (Decoder.Decode into a warm Request).
func BenchmarkDecode(b *testing.B) {
	const nSamples = 2000
	req := nodeRequest(b, nSamples)
	body, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	compressed := snappy.Encode(nil, body)
	b.Logf("request: %d series, %d bytes protobuf, %d bytes snappy", len(req.Timeseries), len(body), len(compressed))
	// report adds the domain units. CPU-s/Msample is process CPU time
	// (getrusage) per million samples, the unit of the figures
	// (baseline 1.7 measured on an idle machine); it stays meaningful when
	// other processes share the cores, which wall-clock ns/sample does not.
	report := func(b *testing.B, cpu0 time.Duration) {
		cpu := processCPU() - cpu0
		ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / nSamples
		b.ReportMetric(ns, "ns/sample")
		b.ReportMetric(1e9/ns, "samples/s")
		if cpu > 0 {
			b.ReportMetric(cpu.Seconds()*1e6/float64(b.N*nSamples), "CPU-s/Msample")
		}
	}
	b.Run("impl=prompb", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(compressed)))
		cpu0 := processCPU()
		for b.Loop() {
			buf, err := snappy.Decode(nil, compressed)
			if err != nil {
				b.Fatal(err)
			}
			var wr prompb.WriteRequest
			if err := wr.Unmarshal(buf); err != nil {
				b.Fatal(err)
			}
		}
		report(b, cpu0)
	})
	b.Run("impl=remotewrite", func(b *testing.B) {
		d, err := NewDecoder(Options{})
		if err != nil {
			b.Fatal(err)
		}
		var r Request
		b.ReportAllocs()
		b.SetBytes(int64(len(compressed)))
		cpu0 := processCPU()
		for b.Loop() {
			if err := d.Decode(&r, compressed); err != nil {
				b.Fatal(err)
			}
		}
		report(b, cpu0)
	})
	b.Run("impl=remotewrite/unmarshal-only", func(b *testing.B) {
		var r Request
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		cpu0 := processCPU()
		for b.Loop() {
			if err := r.Unmarshal(body); err != nil {
				b.Fatal(err)
			}
		}
		report(b, cpu0)
	})
	b.Run("impl=remotewrite/validate", func(b *testing.B) {
		d, err := NewDecoder(Options{})
		if err != nil {
			b.Fatal(err)
		}
		var r Request
		lim := Limits{}
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			if err := d.Decode(&r, compressed); err != nil {
				b.Fatal(err)
			}
			for _, s := range r.Series {
				if err := lim.ValidateLabels(s.Labels); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b, cpu0)
	})
}

// BenchmarkDecodeV2 measures remote write 2.0 decoding against 1.0 on the
// same load, in one run: the 2000 node_exporter series x 1 sample of
// BenchmarkDecode, as a 1.0 WriteRequest and as a 2.0 Request (one
// symbols table, as Prometheus's sender builds it). Each sub-benchmark
// decodes a snappy body into a warm Request (Decoder.Decode,
// Decoder.DecodeV2): the same outputs, every series' Samples, Key and
// Hash (op=decode). CPU-s/Msample is the figure to compare
// (docs/design.md, "Remote write 2.0"). op=validate adds
// Limits.CheckSeries of every series, through Request.LabelsOf;
// op=writev2 is the reference, the gogo-generated writev2.Request
// (snappy.Decode + Unmarshal, as Prometheus's receiver does).
//
//	go test -run '^$' -bench 'BenchmarkDecodeV2' -count 10 ./server/remotewrite/
func BenchmarkDecodeV2(b *testing.B) {
	const nSamples = 2000
	req1 := nodeRequest(b, nSamples)
	body1, err := req1.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	req2 := toV2(req1)
	body2, err := req2.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	comp1, comp2 := snappy.Encode(nil, body1), snappy.Encode(nil, body2)
	b.Logf("1.0: %d bytes protobuf, %d snappy; 2.0: %d bytes protobuf (%d symbols), %d snappy",
		len(body1), len(comp1), len(body2), len(req2.Symbols), len(comp2))
	report := func(b *testing.B, cpu0 time.Duration) {
		cpu := processCPU() - cpu0
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/nSamples, "ns/sample")
		if cpu > 0 {
			b.ReportMetric(cpu.Seconds()*1e6/float64(b.N*nSamples), "CPU-s/Msample")
		}
	}
	d, err := NewDecoder(Options{})
	if err != nil {
		b.Fatal(err)
	}
	lim := Limits{}
	for _, bc := range []struct {
		name     string
		body     []byte
		decode   func(*Request, []byte) error
		validate bool
	}{
		{"proto=1.0/op=decode", comp1, d.Decode, false},
		{"proto=2.0/op=decode", comp2, d.DecodeV2, false},
		{"proto=1.0/op=validate", comp1, d.Decode, true},
		{"proto=2.0/op=validate", comp2, d.DecodeV2, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var r Request
			var labels []Label
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			cpu0 := processCPU()
			for b.Loop() {
				if err := bc.decode(&r, bc.body); err != nil {
					b.Fatal(err)
				}
				if !bc.validate {
					continue
				}
				for i := range r.Series {
					s := &r.Series[i]
					labels = r.LabelsOf(s, labels)
					if err := lim.CheckSeries(s, labels); err != nil {
						b.Fatal(err)
					}
				}
			}
			report(b, cpu0)
		})
	}
	b.Run("proto=2.0/op=writev2", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(comp2)))
		cpu0 := processCPU()
		for b.Loop() {
			buf, err := snappy.Decode(nil, comp2)
			if err != nil {
				b.Fatal(err)
			}
			var wr writev2.Request
			if err := wr.Unmarshal(buf); err != nil {
				b.Fatal(err)
			}
		}
		report(b, cpu0)
	})
}
