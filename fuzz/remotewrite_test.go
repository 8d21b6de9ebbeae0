package fuzz

// Fuzz targets of the remote-write decoder (package server/remotewrite)
// against Prometheus's gogo-generated prompb.WriteRequest.Unmarshal:
//
//   - FuzzRemoteWriteDecode: arbitrary bytes as an uncompressed
//     WriteRequest. Nothing panics; an error is a *remotewrite.ProtoError
//     with an offset inside the input. If we accept, prompb accepts and
//     decodes the same series, labels (sorted by name, as Prometheus 3
//     sorts them), samples (bit for bit), exemplar,
//     histogram and metadata counts, and xxhash of Series.Key is
//     labels.StableHash.
//     If prompb accepts and we reject, the reason must be one of the
//     deliberate deviations of remotewrite's doc.go (ReasonOverflow,
//     ReasonFieldNumber, ReasonPacked) or the memory bound (ErrTooLarge).
//     The same bytes, snappy-compressed,
//     decode through Decoder.Decode to the same result.
//   - FuzzRemoteWriteSnappy: arbitrary bytes as the compressed HTTP body.
//     Nothing panics; the buffer allocated is at most 22x the body (a
//     snappy bomb cannot make us allocate); every body that the strict
//     snappy decoder accepts within the limits is not rejected as
//     ErrSnappy; and a body that decodes agrees with Unmarshal of the
//     decompressed bytes.
//
// Seeds: testdata/fuzz/FuzzRemoteWrite*/seed-* are small requests of real
// series from the shared data (plus damaged variants), written by
//
//	go test ./fuzz -run TestWriteRemoteWriteSeeds -write-seeds
//
// Fuzz one target with
//
//	go test -run '^$' -fuzz '^FuzzRemoteWriteDecode$' -fuzztime 60s ./fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/snappy"
	"github.com/myelindb/myelin/internal/tsdata"
	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/write"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// rwLimit keeps fuzzing memory small; the checks do not depend on it.
const rwLimit = 4 << 20

func FuzzRemoteWriteDecode(f *testing.F) {
	for _, s := range rwHandSeeds(f) {
		f.Add(s)
	}
	d, err := remotewrite.NewDecoder(remotewrite.Options{MaxCompressedBytes: rwLimit, MaxDecompressedBytes: rwLimit})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r remotewrite.Request
		err := r.Unmarshal(data)
		// Counts are bounded by the input before anything is allocated:
		// a fresh Request holds at most the decoded elements' budget (10
		// bytes per body byte + 1 MiB) and keys no longer than the body,
		// with room for the allocator's size classes.
		if rb := r.RetainedBytes(); rb > 12*len(data)+2<<20 {
			t.Fatalf("%d bytes of buffers for a %d-byte body", rb, len(data))
		}
		var want prompb.WriteRequest
		perr := want.Unmarshal(data)
		switch {
		case err == nil && perr != nil:
			t.Fatalf("we accept %x, prompb rejects it: %v", data, perr)
		case errors.Is(err, remotewrite.ErrTooLarge):
			// The memory bound of Unmarshal (10 bytes per body byte + 1
			// MiB): a documented deviation, unreachable for real requests.
			return
		case err != nil:
			var pe *remotewrite.ProtoError
			if !errors.As(err, &pe) || !errors.Is(err, remotewrite.ErrMalformed) {
				t.Fatalf("error %v (%T) is not a *ProtoError", err, err)
			}
			if pe.Offset < 0 || pe.Offset > len(data) || pe.Field == "" {
				t.Fatalf("error %v: offset %d of %d bytes, field %q", err, pe.Offset, len(data), pe.Field)
			}
			if perr == nil && !stricterOnPurpose(pe.Reason) {
				t.Fatalf("prompb accepts %x, we reject it: %v", data, err)
			}
		default:
			if err := rwCompare(&want, &r); err != nil {
				t.Fatalf("decoding %x: %v", data, err)
			}
			// Every histogram builds what prompb's conversion builds.
			var hs []prompb.Histogram
			for _, ts := range want.Timeseries {
				hs = append(hs, ts.Histograms...)
			}
			if err := histCompare(hs, &r); err != nil {
				t.Fatalf("decoding %x: %v", data, err)
			}
			// Every exemplar the server takes is prompb's: value,
			// timestamp, labels sorted with empty values dropped.
			i := 0
			for _, ts := range want.Timeseries {
				for _, we := range ts.Exemplars {
					ge, _, err := r.Exemplar(i, false, nil)
					i++
					if err != nil {
						if !errors.Is(err, remotewrite.ErrInvalidExemplar) {
							t.Fatalf("decoding %x: exemplar %d: %v is not ErrInvalidExemplar", data, i-1, err)
						}
						continue
					}
					var ls []prompb.Label
					for _, l := range we.Labels {
						if l.Value != "" {
							ls = append(ls, l)
						}
					}
					slices.SortStableFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
					var enc []byte
					for _, l := range ls {
						enc = write.AppendLabel(enc, l.Name, l.Value)
					}
					if ge.T != we.Timestamp || math.Float64bits(ge.V) != math.Float64bits(we.Value) || string(ge.Labels) != string(enc) {
						t.Fatalf("decoding %x: exemplar %d: %d %x %q, want %d %x %q", data, i-1, ge.T, math.Float64bits(ge.V), ge.Labels,
							we.Timestamp, math.Float64bits(we.Value), enc)
					}
				}
			}
			for i := range r.Metadata {
				_, _ = r.MetadataOf(i) // never panics
			}
		}

		// The snappy path gives the same answer.
		var r2 remotewrite.Request
		err2 := d.Decode(&r2, snappy.Encode(nil, data))
		if (err == nil) != (err2 == nil) {
			t.Fatalf("Unmarshal: %v; Decode of its snappy form: %v", err, err2)
		}
		if err == nil {
			if err := rwCompare(&want, &r2); err != nil {
				t.Fatalf("Decode: %v", err)
			}
		}
	})
}

// stricterOnPurpose: the reasons doc.go lists under "Deviations from prompb".
func stricterOnPurpose(r remotewrite.Reason) bool {
	switch r {
	case remotewrite.ReasonOverflow, remotewrite.ReasonFieldNumber, remotewrite.ReasonPacked:
		return true
	}
	return false
}

func FuzzRemoteWriteSnappy(f *testing.F) {
	for _, s := range rwHandSeeds(f) {
		f.Add(snappy.Encode(nil, s))
	}
	f.Add(binary.AppendUvarint(nil, 1<<32-1)) // bomb header
	f.Add(binary.AppendUvarint(nil, rwLimit))
	f.Add([]byte{})
	d, err := remotewrite.NewDecoder(remotewrite.Options{MaxCompressedBytes: rwLimit, MaxDecompressedBytes: rwLimit})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r remotewrite.Request
		err := d.Decode(&r, data)
		if r.BufferBytes() > 22*len(data) {
			t.Fatalf("allocated %d bytes for a %d-byte body", r.BufferBytes(), len(data))
		}
		if err != nil && !errors.Is(err, remotewrite.ErrSnappy) && !errors.Is(err, remotewrite.ErrTooLarge) && !errors.Is(err, remotewrite.ErrMalformed) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		n, lerr := snappy.DecodedLen(data)
		if lerr != nil || n > rwLimit {
			if err == nil {
				t.Fatalf("decoded a body with snappy length %d (%v)", n, lerr)
			}
			return
		}
		plain, serr := snappy.DecodeStrict(nil, data)
		if serr == nil && errors.Is(err, remotewrite.ErrSnappy) {
			t.Fatalf("valid snappy body of %d bytes (%d uncompressed) rejected: %v", len(data), len(plain), err)
		}
		if serr != nil {
			return // ours may accept S2 extensions; nothing to compare
		}
		var r2 remotewrite.Request
		err2 := r2.Unmarshal(plain)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("Decode: %v; Unmarshal of the decompressed bytes: %v", err, err2)
		}
		if err == nil && len(r.Series) != len(r2.Series) {
			t.Fatalf("Decode: %d series, Unmarshal: %d", len(r.Series), len(r2.Series))
		}
	})
}

// rwCompare checks that got holds exactly what prompb decoded into want.
func rwCompare(want *prompb.WriteRequest, got *remotewrite.Request) error {
	if len(got.Series) != len(want.Timeseries) || len(got.Metadata) != len(want.Metadata) {
		return fmt.Errorf("%d series %d metadata, want %d %d", len(got.Series), len(got.Metadata), len(want.Timeseries), len(want.Metadata))
	}
	for i, ws := range want.Timeseries {
		gs := got.Series[i]
		if len(gs.Labels) != len(ws.Labels) || len(gs.Samples) != len(ws.Samples) ||
			int(gs.Exemplars) != len(ws.Exemplars) || int(gs.Histograms) != len(ws.Histograms) {
			return fmt.Errorf("series %d: %d labels %d samples %d exemplars %d histograms, want %d %d %d %d", i,
				len(gs.Labels), len(gs.Samples), gs.Exemplars, gs.Histograms,
				len(ws.Labels), len(ws.Samples), len(ws.Exemplars), len(ws.Histograms))
		}
		// Labels come sorted by name, stably, as Prometheus 3's ToLabels
		// sorts them.
		var b labels.ScratchBuilder
		unique, first := true, true
		prev := ""
		wls := slices.Clone(ws.Labels)
		slices.SortStableFunc(wls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		for j, wl := range wls {
			gl := gs.Labels[j]
			if string(gl.Name) != wl.Name || string(gl.Value) != wl.Value {
				return fmt.Errorf("series %d label %d: %q=%q, want %q=%q", i, j, gl.Name, gl.Value, wl.Name, wl.Value)
			}
			if wl.Value != "" {
				unique = unique && (first || wl.Name > prev)
				prev, first = wl.Name, false
				b.Add(wl.Name, wl.Value)
			}
		}
		for j, w := range ws.Samples {
			g := gs.Samples[j]
			if g.T != w.Timestamp || math.Float64bits(g.V) != math.Float64bits(w.Value) {
				return fmt.Errorf("series %d sample %d: %d %x, want %d %x", i, j, g.T, math.Float64bits(g.V), w.Timestamp, math.Float64bits(w.Value))
			}
		}
		if unique {
			if h := labels.StableHash(b.Labels()); xxhash.Sum64(gs.Key) != h {
				return fmt.Errorf("series %d: key %q hashes to %x, labels.StableHash %x", i, gs.Key, xxhash.Sum64(gs.Key), h)
			}
		}
	}
	return nil
}

// rwHandSeeds are small hand-made requests: empty, one series, every
// field type (exemplar, histogram, metadata, unknown fields).
func rwHandSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	reqs := []*prompb.WriteRequest{
		{},
		{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "node"}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: 1795238701122}, {Value: math.Float64frombits(0x7ff0000000000002), Timestamp: 1795238716122}},
		}}},
		{
			Timeseries: []prompb.TimeSeries{{
				Labels:    []prompb.Label{{Name: "__name__", Value: "rpc_seconds"}, {Name: "empty", Value: ""}},
				Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "f00"}}, Value: 0.3, Timestamp: 5}},
				Histograms: []prompb.Histogram{{
					Count: &prompb.Histogram_CountInt{CountInt: 3}, Sum: 1.5, Schema: 3,
					ZeroCount:     &prompb.Histogram_ZeroCountInt{ZeroCountInt: 1},
					PositiveSpans: []prompb.BucketSpan{{Offset: -1, Length: 2}}, PositiveDeltas: []int64{1, 1},
					NegativeCounts: []float64{2}, Timestamp: 7,
				}},
			}},
			Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "rpc_seconds", Help: "h", Unit: "seconds"}},
		},
	}
	var out [][]byte
	for _, r := range reqs {
		b, err := r.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	// Unknown fields of every wire type, a group, the reserved field 2.
	out = append(out, []byte{0x10, 0x01, 0x0a, 0x0d, 0x39, 1, 2, 3, 4, 5, 6, 7, 8, 0x4d, 1, 2, 3, 4, 0x43, 0x44})
	// Worst cases for memory (server's TestWriteMemory), small: tiny
	// series without a metric name (the issue "Faults and abuse" sent
	// 2.85 million), and a series of empty labels padded to the
	// decoder's budget. (A flood past the budget needs more than 75 KB,
	// too large for a seed: remotewrite's TestMemoryBudget has it.)
	tiny := []byte("\x0a\x15\x0a\x06\x0a\x01a\x12\x01b\x12\x0b\x09\x00\x00\x00\x00\x00\x00\xf0\x3f\x10\x01")
	out = append(out, bytes.Repeat(tiny, 40))
	budget := append([]byte("\x0a\xe3\x02"), bytes.Repeat([]byte{0x0a, 0}, 100)...) // 355 bytes follow
	budget = append(append(budget, 0x7a, 0x98, 0x01), make([]byte, 152)...)         // field 15, 152 bytes
	out = append(out, budget)
	// Declared lengths and counts far past the input: a series of 2^32
	// bytes, a label of 2^63, a packed field of 2^35.
	out = append(out, []byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x10, 0x0a})
	out = append(out, []byte{0x0a, 0x0b, 0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00})
	out = append(out, []byte{0x0a, 0x09, 0x22, 0x07, 0x62, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	return out
}

// TestWriteRemoteWriteSeeds rewrites the seed-* files of the three
// targets from the shared data when run with -write-seeds; otherwise it
// is skipped.
func TestWriteRemoteWriteSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to rewrite testdata/fuzz/FuzzRemoteWrite*/" + seedPrefix + "*")
	}
	dir := tsdata.RequireSharedDir(t)
	rng := rand.New(rand.NewPCG(3, 4))
	decode, snap := map[string][]byte{}, map[string][]byte{}
	for _, c := range []struct {
		file            string
		series, samples int
	}{
		{"recorded/node_15s", 24, 2},
		{"recorded/prometheus_15s", 12, 4},
		{"recorded/other_15s", 12, 1},
	} {
		body := rwRealRequest(t, filepath.Join(dir, filepath.FromSlash(c.file)+".tsv.gz"), c.series, c.samples)
		name := seedPrefix + strings.ReplaceAll(c.file, "/", "_")
		decode[name] = body
		snap[name] = snappy.Encode(nil, body)
		cut := 1 + rng.IntN(len(body)-1)
		decode[fmt.Sprintf("%s-truncated-%d", name, cut)] = body[:cut]
		flipped := append([]byte(nil), body...)
		bit := rng.IntN(8 * len(body))
		flipped[bit/8] ^= 1 << (bit % 8)
		decode[fmt.Sprintf("%s-bitflip-%d", name, bit)] = flipped
		sflipped := snappy.Encode(nil, body)
		sbit := rng.IntN(8 * len(sflipped))
		sflipped[sbit/8] ^= 1 << (sbit % 8)
		snap[fmt.Sprintf("%s-bitflip-%d", name, sbit)] = sflipped
	}
	// The same requests as 2.0 (with their own damage: an rng of their
	// own keeps the 1.0 seeds as they were).
	v2 := map[string][]byte{}
	rng2 := rand.New(rand.NewPCG(5, 6))
	for _, name := range slices.Sorted(maps.Keys(decode)) {
		if strings.Contains(name, "-truncated-") || strings.Contains(name, "-bitflip-") {
			continue
		}
		b := rw2FromV1(t, decode[name])
		v2[name] = b
		cut := 1 + rng2.IntN(len(b)-1)
		v2[fmt.Sprintf("%s-truncated-%d", name, cut)] = b[:cut]
		flipped := append([]byte(nil), b...)
		bit := rng2.IntN(8 * len(b))
		flipped[bit/8] ^= 1 << (bit % 8)
		v2[fmt.Sprintf("%s-bitflip-%d", name, bit)] = flipped
	}
	for target, files := range map[string]map[string][]byte{"FuzzRemoteWriteDecode": decode, "FuzzRemoteWriteSnappy": snap, "FuzzRemoteWrite2Decode": v2} {
		if err := writeCorpus(filepath.Join("testdata", "fuzz", target), files); err != nil {
			t.Fatal(err)
		}
	}
}

// rwRealRequest is a WriteRequest of the first nSeries series of a data
// file with nSamples samples each, from the middle of the series.
func rwRealRequest(tb testing.TB, path string, nSeries, nSamples int) []byte {
	tb.Helper()
	req := &prompb.WriteRequest{}
	err := tsdata.ReadFile(path, func(s *tsdata.Series) error {
		if len(req.Timeseries) == nSeries || len(s.T) < nSamples {
			return nil
		}
		var ts prompb.TimeSeries
		for _, l := range s.Labels {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		}
		k := (len(s.T) - nSamples) / 2
		for i := k; i < k+nSamples; i++ {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: s.T[i], Value: s.V[i]})
		}
		req.Timeseries = append(req.Timeseries, ts)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := req.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// histCompare checks that got's histograms, built by Request.Histogram,
// are prompb's ToIntHistogram or ToFloatHistogram of want's (a reset
// hint outside the enum read as UNKNOWN), bit for bit.
func histCompare(want []prompb.Histogram, got *remotewrite.Request) error {
	if len(want) != len(got.Histograms) {
		return fmt.Errorf("%d histograms, want %d", len(got.Histograms), len(want))
	}
	for j, hp := range want {
		h, err := got.Histogram(j)
		if err != nil {
			return fmt.Errorf("histogram %d: %v", j, err)
		}
		if hp.ResetHint > prompb.Histogram_GAUGE {
			hp.ResetHint = prompb.Histogram_UNKNOWN
		}
		if h.T != hp.Timestamp {
			return fmt.Errorf("histogram %d at %d, want %d", j, h.T, hp.Timestamp)
		}
		var w, g string
		if hp.IsFloatHistogram() {
			if h.FH == nil {
				return fmt.Errorf("histogram %d: an integer one, want a float one", j)
			}
			w, g = fhString(hp.ToFloatHistogram()), fhString(h.FH)
		} else {
			if h.H == nil {
				return fmt.Errorf("histogram %d: a float one, want an integer one", j)
			}
			w, g = ihString(hp.ToIntHistogram()), ihString(h.H)
		}
		if w != g {
			return fmt.Errorf("histogram %d: %s, want %s", j, g, w)
		}
	}
	return nil
}

// ihString and fhString render every field of a histogram, floats as
// bits, empty and nil slices alike.
func ihString(h *histogram.Histogram) string {
	return fmt.Sprintf("%d %d %x %d %d %x %v %v %v %v %s", h.CounterResetHint, h.Schema, math.Float64bits(h.ZeroThreshold),
		h.ZeroCount, h.Count, math.Float64bits(h.Sum), spans(h.PositiveSpans), spans(h.NegativeSpans),
		ints(h.PositiveBuckets), ints(h.NegativeBuckets), floatBits(h.CustomValues))
}

func fhString(h *histogram.FloatHistogram) string {
	return fmt.Sprintf("%d %d %x %x %x %x %v %v %s %s %s", h.CounterResetHint, h.Schema, math.Float64bits(h.ZeroThreshold),
		math.Float64bits(h.ZeroCount), math.Float64bits(h.Count), math.Float64bits(h.Sum), spans(h.PositiveSpans), spans(h.NegativeSpans),
		floatBits(h.PositiveBuckets), floatBits(h.NegativeBuckets), floatBits(h.CustomValues))
}

func spans(s []histogram.Span) string {
	return fmt.Sprint([]histogram.Span(append([]histogram.Span{}, s...)))
}
func ints(s []int64) string { return fmt.Sprint(append([]int64{}, s...)) }

func floatBits(f []float64) string {
	var b strings.Builder
	for _, v := range f {
		fmt.Fprintf(&b, "%x,", math.Float64bits(v))
	}
	return b.String()
}
