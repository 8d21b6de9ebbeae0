package fuzz

// FuzzRemoteWrite2Decode: arbitrary bytes as an uncompressed remote-write
// 2.0 Request, against the reference gogo-generated
// writev2.Request.Unmarshal (Prometheus v0.314). Nothing panics; an error
// is a *remotewrite.ProtoError with an offset inside the input (or
// ErrTooLarge, the memory bound). If we accept, the reference accepts and
// decodes the same symbols and series: each series is refused by us
// (Series.Err) exactly when Prometheus's receiver refuses it (ToLabels,
// ToMetadata, no samples or histograms), and otherwise has the reference's
// labels sorted by name, its samples bit for bit, its exemplar and
// histogram counts, and a key that is write's encoding of those labels.
// If the reference accepts and we reject, the reason is one of the
// deliberate deviations of remotewrite's doc.go. The same bytes,
// snappy-compressed, decode through Decoder.DecodeV2 to the same result.
//
// Seeds: testdata/fuzz/FuzzRemoteWrite2Decode/seed-* are the real
// requests of the 1.0 seeds (TestWriteRemoteWriteSeeds) as 2.0 requests,
// plus damaged variants.
//
//	go test -run '^$' -fuzz '^FuzzRemoteWrite2Decode$' -fuzztime 60s ./fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/write"
)

func FuzzRemoteWrite2Decode(f *testing.F) {
	for _, s := range rw2HandSeeds(f) {
		f.Add(s)
	}
	d, err := remotewrite.NewDecoder(remotewrite.Options{MaxCompressedBytes: rwLimit, MaxDecompressedBytes: rwLimit})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r remotewrite.Request
		err := r.UnmarshalV2(data)
		// The budget (10 bytes per body byte + 1 MiB, keys included),
		// with room for the allocator's size classes.
		if rb := r.RetainedBytes(); rb > 12*len(data)+2<<20 {
			t.Fatalf("%d bytes of buffers for a %d-byte body", rb, len(data))
		}
		var want writev2.Request
		werr := want.Unmarshal(data)
		switch {
		case err == nil && werr != nil:
			t.Fatalf("we accept %x, the reference rejects it: %v", data, werr)
		case errors.Is(err, remotewrite.ErrTooLarge):
			return
		case err != nil:
			var pe *remotewrite.ProtoError
			if !errors.As(err, &pe) || !errors.Is(err, remotewrite.ErrMalformed) {
				t.Fatalf("error %v (%T) is not a *ProtoError", err, err)
			}
			if pe.Offset < 0 || pe.Offset > len(data) || pe.Field == "" {
				t.Fatalf("error %v: offset %d of %d bytes, field %q", err, pe.Offset, len(data), pe.Field)
			}
			if werr == nil && !stricterOnPurpose(pe.Reason) {
				t.Fatalf("the reference accepts %x, we reject it: %v", data, err)
			}
		default:
			if err := rw2Compare(&want, &r); err != nil {
				t.Fatalf("decoding %x: %v", data, err)
			}
			// Every histogram builds what the reference's conversion
			// builds (2.0's Histogram is 1.0's plus start_timestamp).
			var hs []prompb.Histogram
			for _, ts := range want.Timeseries {
				for _, h := range ts.Histograms {
					hs = append(hs, v2ToV1Histogram(h))
				}
			}
			if err := histCompare(hs, &r); err != nil {
				t.Fatalf("decoding %x: %v", data, err)
			}
			// Every exemplar the server takes is what the reference's
			// conversion builds: its value and timestamp, its labels
			// sorted with the empty values dropped. The server may refuse
			// more (invalid UTF-8, duplicate names, over 128 runes).
			if err := exemplarCompare(&want, &r); err != nil {
				t.Fatalf("decoding %x: %v", data, err)
			}
			for i := range r.Metadata {
				_, _ = r.MetadataOf(i) // never panics
			}
		}

		// The snappy path gives the same answer.
		var r2 remotewrite.Request
		err2 := d.DecodeV2(&r2, snappy.Encode(nil, data))
		if (err == nil) != (err2 == nil) {
			t.Fatalf("UnmarshalV2: %v; DecodeV2 of its snappy form: %v", err, err2)
		}
		if err == nil {
			if err := rw2Compare(&want, &r2); err != nil {
				t.Fatalf("DecodeV2: %v", err)
			}
		}
	})
}

// rw2SeriesErr is the sentinel Series.Err must be for series ws: what
// Prometheus's receiver (storage/remote/write_handler.go, appendV2)
// refuses it for, in its order.
func rw2SeriesErr(ws *writev2.TimeSeries, symbols []string) error {
	var b labels.ScratchBuilder
	if _, err := ws.ToLabels(&b, symbols); err != nil {
		if len(ws.LabelsRefs)%2 != 0 {
			return remotewrite.ErrOddLabelRefs
		}
		return remotewrite.ErrSymbolRef
	}
	if _, err := ws.ToMetadata(symbols); err != nil {
		return remotewrite.ErrSymbolRef
	}
	if len(ws.Samples) == 0 && len(ws.Histograms) == 0 {
		return remotewrite.ErrNoSamples
	}
	return nil
}

// rw2Compare checks that got holds what the reference decoded into want.
func rw2Compare(want *writev2.Request, got *remotewrite.Request) error {
	if len(got.Series) != len(want.Timeseries) || len(got.Symbols) != len(want.Symbols) {
		return fmt.Errorf("%d series %d symbols, want %d %d", len(got.Series), len(got.Symbols), len(want.Timeseries), len(want.Symbols))
	}
	for i, sym := range want.Symbols {
		if string(got.Symbols[i]) != sym {
			return fmt.Errorf("symbol %d: %q, want %q", i, got.Symbols[i], sym)
		}
	}
	// Start timestamps, in sample order: the non-zero ones.
	var wantST, gotST []int64
	for i := range want.Timeseries {
		for _, smp := range want.Timeseries[i].Samples {
			if smp.StartTimestamp != 0 {
				wantST = append(wantST, smp.StartTimestamp)
			}
		}
	}
	for _, st := range got.StartTimestamps {
		gotST = append(gotST, st.ST)
	}
	if !slices.Equal(wantST, gotST) {
		return fmt.Errorf("start timestamps %v, want %v", gotST, wantST)
	}
	n := 0
	for i := range want.Timeseries {
		ws, gs := &want.Timeseries[i], &got.Series[i]
		for j, smp := range ws.Samples {
			if smp.StartTimestamp != 0 {
				if got.StartTimestamps[n].Sample != sampleIndex(got, gs)+j {
					return fmt.Errorf("series %d sample %d: start timestamp of another sample", i, j)
				}
				n++
			}
		}
		wantErr := rw2SeriesErr(ws, want.Symbols)
		if err := gs.Err(); err != wantErr {
			return fmt.Errorf("series %d: error %v, want %v", i, err, wantErr)
		}
		if len(gs.Samples) != len(ws.Samples) || int(gs.Exemplars) != len(ws.Exemplars) || int(gs.Histograms) != len(ws.Histograms) {
			return fmt.Errorf("series %d: %d samples %d exemplars %d histograms, want %d %d %d", i,
				len(gs.Samples), gs.Exemplars, gs.Histograms, len(ws.Samples), len(ws.Exemplars), len(ws.Histograms))
		}
		for j, w := range ws.Samples {
			g := gs.Samples[j]
			if g.T != w.Timestamp || math.Float64bits(g.V) != math.Float64bits(w.Value) {
				return fmt.Errorf("series %d sample %d: %d %x, want %d %x", i, j, g.T, math.Float64bits(g.V), w.Timestamp, math.Float64bits(w.Value))
			}
		}
		if wantErr == remotewrite.ErrOddLabelRefs || (wantErr == remotewrite.ErrSymbolRef && !rw2Resolves(ws, want.Symbols)) {
			continue // no labels to compare
		}
		// Labels sorted by name, stably, and the key of the non-empty ones.
		var wls []prompb.Label
		for j := 0; j < len(ws.LabelsRefs); j += 2 {
			wls = append(wls, prompb.Label{Name: want.Symbols[ws.LabelsRefs[j]], Value: want.Symbols[ws.LabelsRefs[j+1]]})
		}
		slices.SortStableFunc(wls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		gls := got.LabelsOf(gs, nil)
		if len(gls) != len(wls) {
			return fmt.Errorf("series %d: %d labels, want %d", i, len(gls), len(wls))
		}
		var key []byte
		for j, wl := range wls {
			if string(gls[j].Name) != wl.Name || string(gls[j].Value) != wl.Value {
				return fmt.Errorf("series %d label %d: %q=%q, want %q=%q", i, j, gls[j].Name, gls[j].Value, wl.Name, wl.Value)
			}
			if wl.Value != "" {
				key = append(append(append(append(key, wl.Name...), 0xff), wl.Value...), 0xff)
			}
		}
		if !bytes.Equal(gs.Key, key) {
			return fmt.Errorf("series %d: key %q, want %q", i, gs.Key, key)
		}
	}
	return nil
}

// rw2Resolves reports whether every label reference of ws is a symbol.
func rw2Resolves(ws *writev2.TimeSeries, symbols []string) bool {
	for _, ref := range ws.LabelsRefs {
		if int(ref) >= len(symbols) {
			return false
		}
	}
	return len(ws.LabelsRefs)%2 == 0
}

// rw2HandSeeds are small hand-made 2.0 requests: empty, one series, every
// field type, bad references, symbols after the series, unpacked
// references, and the declared lengths far past the input.
func rw2HandSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	st := writev2.NewSymbolTable()
	ref := func(s string) uint32 { return st.Symbolize(s) }
	full := writev2.TimeSeries{
		LabelsRefs: []uint32{ref("__name__"), ref("rpc_seconds"), ref("empty"), ref("")},
		Samples:    []writev2.Sample{{Value: 1, Timestamp: 1795238701122, StartTimestamp: 1795238600000}},
		Exemplars:  []writev2.Exemplar{{LabelsRefs: []uint32{ref("trace_id"), ref("f00")}, Value: 0.3, Timestamp: 5}},
		Histograms: []writev2.Histogram{{
			Count: &writev2.Histogram_CountInt{CountInt: 3}, Sum: 1.5, Schema: 3,
			ZeroCount:     &writev2.Histogram_ZeroCountInt{ZeroCountInt: 1},
			PositiveSpans: []writev2.BucketSpan{{Offset: -1, Length: 2}}, PositiveDeltas: []int64{1, 1},
			NegativeCounts: []float64{2}, Timestamp: 7, StartTimestamp: 6,
		}},
		Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: ref("h"), UnitRef: ref("seconds")},
	}
	unsorted := writev2.TimeSeries{LabelsRefs: []uint32{ref("job"), ref("x"), ref("__name__"), ref("up")},
		Samples: []writev2.Sample{{Value: math.Float64frombits(0x7ff0000000000002), Timestamp: 1}}}
	reqs := []*writev2.Request{
		{},
		{Symbols: st.Symbols(), Timeseries: []writev2.TimeSeries{full, unsorted,
			{LabelsRefs: []uint32{1, 99}, Samples: []writev2.Sample{{Value: 1}}},                                 // reference outside
			{LabelsRefs: []uint32{1}, Samples: []writev2.Sample{{Value: 1}}},                                     // odd references
			{LabelsRefs: []uint32{1, 2}},                                                                         // no samples
			{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{}}, Metadata: writev2.Metadata{HelpRef: 99}}, // metadata reference outside
		}},
	}
	var out [][]byte
	for _, r := range reqs {
		b, err := r.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	// Symbols after the series, and unpacked references: field 5 (refs 1,
	// 2 unpacked; a sample), then symbols "", "__name__", "late".
	late := []byte{0x2a, 0x11, 0x08, 0x01, 0x08, 0x02, 0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x01}
	late = append(late, "\x22\x00\x22\x08__name__\x22\x04late"...)
	out = append(out, late)
	// Declared lengths past the input: a series of 2^32 bytes, a symbol of
	// 2^63, a packed reference field of 2^35.
	out = append(out, []byte{0x2a, 0x80, 0x80, 0x80, 0x80, 0x10, 0x0a})
	out = append(out, []byte{0x22, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00})
	out = append(out, []byte{0x2a, 0x07, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	// A long symbol every series names: keys of 30 times the body.
	var many []byte
	many = append(many, "\x22\x00\x22\x08__name__\x22\xe8\x07"...)
	many = append(many, bytes.Repeat([]byte("v"), 1000)...)
	for range 30 {
		many = append(many, 0x2a, 0x06, 0x0a, 0x02, 0x01, 0x02, 0x12, 0x00)
	}
	out = append(out, many)
	return out
}

// rw2FromV1 converts a 1.0 request body to 2.0, as Prometheus's sender
// builds one: one symbols table, labels as references in series order.
func rw2FromV1(tb testing.TB, body []byte) []byte {
	tb.Helper()
	var req prompb.WriteRequest
	if err := req.Unmarshal(body); err != nil {
		tb.Fatal(err)
	}
	st := writev2.NewSymbolTable()
	out := &writev2.Request{}
	for _, ts := range req.Timeseries {
		var s writev2.TimeSeries
		for _, l := range ts.Labels {
			s.LabelsRefs = append(s.LabelsRefs, st.Symbolize(l.Name), st.Symbolize(l.Value))
		}
		for _, smp := range ts.Samples {
			s.Samples = append(s.Samples, writev2.Sample{Value: smp.Value, Timestamp: smp.Timestamp})
		}
		out.Timeseries = append(out.Timeseries, s)
	}
	out.Symbols = st.Symbols()
	b, err := out.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// v2ToV1Histogram is h as a 1.0 histogram: the same fields but
// start_timestamp, so prompb's conversions apply.
func v2ToV1Histogram(h writev2.Histogram) prompb.Histogram {
	out := prompb.Histogram{Sum: h.Sum, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
		ResetHint: prompb.Histogram_ResetHint(h.ResetHint), Timestamp: h.Timestamp,
		PositiveDeltas: h.PositiveDeltas, NegativeDeltas: h.NegativeDeltas, PositiveCounts: h.PositiveCounts,
		NegativeCounts: h.NegativeCounts, CustomValues: h.CustomValues}
	switch c := h.Count.(type) {
	case *writev2.Histogram_CountInt:
		out.Count = &prompb.Histogram_CountInt{CountInt: c.CountInt}
	case *writev2.Histogram_CountFloat:
		out.Count = &prompb.Histogram_CountFloat{CountFloat: c.CountFloat}
	}
	switch c := h.ZeroCount.(type) {
	case *writev2.Histogram_ZeroCountInt:
		out.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: c.ZeroCountInt}
	case *writev2.Histogram_ZeroCountFloat:
		out.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: c.ZeroCountFloat}
	}
	for _, s := range h.PositiveSpans {
		out.PositiveSpans = append(out.PositiveSpans, prompb.BucketSpan{Offset: s.Offset, Length: s.Length})
	}
	for _, s := range h.NegativeSpans {
		out.NegativeSpans = append(out.NegativeSpans, prompb.BucketSpan{Offset: s.Offset, Length: s.Length})
	}
	return out
}

// sampleIndex is the index in r.Samples of s's first sample.
func sampleIndex(r *remotewrite.Request, s *remotewrite.Series) int {
	n := 0
	for i := range r.Series {
		if &r.Series[i] == s {
			return n
		}
		n += len(r.Series[i].Samples)
	}
	return -1
}

// exemplarCompare checks each exemplar got decodes (Request.Exemplar)
// against the reference's ToExemplar.
func exemplarCompare(want *writev2.Request, got *remotewrite.Request) error {
	var b labels.ScratchBuilder
	i := 0
	for si := range want.Timeseries {
		for _, we := range want.Timeseries[si].Exemplars {
			if i >= len(got.Exemplars) {
				return fmt.Errorf("%d exemplars, want more", len(got.Exemplars))
			}
			ge, _, err := got.Exemplar(i, false, nil)
			i++
			ref, rerr := we.ToExemplar(&b, want.Symbols)
			switch {
			case err != nil && rerr != nil:
				continue
			case err != nil:
				if !errors.Is(err, remotewrite.ErrInvalidExemplar) {
					return fmt.Errorf("exemplar %d: error %v is not ErrInvalidExemplar", i-1, err)
				}
				continue // stricter on purpose
			case rerr != nil:
				return fmt.Errorf("exemplar %d: we take it, the reference refuses it: %v", i-1, rerr)
			}
			if ge.T != ref.Ts || math.Float64bits(ge.V) != math.Float64bits(ref.Value) {
				return fmt.Errorf("exemplar %d: %d %x, want %d %x", i-1, ge.T, math.Float64bits(ge.V), ref.Ts, math.Float64bits(ref.Value))
			}
			var enc []byte
			ref.Labels.Range(func(l labels.Label) {
				if l.Value != "" {
					enc = write.AppendLabel(enc, l.Name, l.Value)
				}
			})
			if string(enc) != string(ge.Labels) {
				return fmt.Errorf("exemplar %d: labels %q, want %q", i-1, ge.Labels, enc)
			}
		}
	}
	if i != len(got.Exemplars) {
		return fmt.Errorf("%d exemplars, want %d", len(got.Exemplars), i)
	}
	return nil
}
