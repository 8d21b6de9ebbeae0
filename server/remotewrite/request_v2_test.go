package remotewrite

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// toV2 converts a 1.0 request to 2.0, as Prometheus's sender builds one:
// one symbols table, labels as references in the series' order.
func toV2(req *prompb.WriteRequest) *writev2.Request {
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
	return out
}

// wantSeriesErr is the problem of series ws of a 2.0 request, judged by
// the reference types as Prometheus's receiver judges it (ToLabels, then
// ToMetadata, then "at least one sample or histogram").
func wantSeriesErr(ws *writev2.TimeSeries, symbols []string) error {
	var b labels.ScratchBuilder
	if _, err := ws.ToLabels(&b, symbols); err != nil {
		if len(ws.LabelsRefs)%2 != 0 {
			return ErrOddLabelRefs
		}
		return ErrSymbolRef
	}
	if _, err := ws.ToMetadata(symbols); err != nil {
		return ErrSymbolRef
	}
	if len(ws.Samples) == 0 && len(ws.Histograms) == 0 {
		return ErrNoSamples
	}
	return nil
}

// compareV2 checks that got holds exactly what the reference types
// decoded into want.
func compareV2(want *writev2.Request, got *Request) error {
	if got.Proto != ProtoV2 {
		return fmt.Errorf("proto %v", got.Proto)
	}
	if len(got.Series) != len(want.Timeseries) {
		return fmt.Errorf("%d series, want %d", len(got.Series), len(want.Timeseries))
	}
	if len(got.Symbols) != len(want.Symbols) {
		return fmt.Errorf("%d symbols, want %d", len(got.Symbols), len(want.Symbols))
	}
	for i, sym := range want.Symbols {
		if string(got.Symbols[i]) != sym {
			return fmt.Errorf("symbol %d: %q, want %q", i, got.Symbols[i], sym)
		}
	}
	ns, ne, nh, nm := 0, 0, 0, 0
	for i := range want.Timeseries {
		ws, gs := &want.Timeseries[i], &got.Series[i]
		if err, wantErr := gs.Err(), wantSeriesErr(ws, want.Symbols); err != wantErr {
			return fmt.Errorf("series %d: error %v, want %v", i, err, wantErr)
		}
		if len(gs.Labels) != 0 {
			return fmt.Errorf("series %d: %d labels, want none (RefsOf)", i, len(gs.Labels))
		}
		if len(got.RefsOf(gs)) != len(ws.LabelsRefs) {
			return fmt.Errorf("series %d: %d references, want %d", i, len(got.RefsOf(gs)), len(ws.LabelsRefs))
		}
		if gs.problem != probOddRefs && gs.problem != probLabelRef {
			// Labels sorted by name, stably (Prometheus's ScratchBuilder
			// sorts them too, unstably: only duplicates, refused, differ).
			var wls []prompb.Label
			for j := 0; j < len(ws.LabelsRefs); j += 2 {
				wls = append(wls, prompb.Label{Name: want.Symbols[ws.LabelsRefs[j]], Value: want.Symbols[ws.LabelsRefs[j+1]]})
			}
			slices.SortStableFunc(wls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
			gls := got.LabelsOf(gs, nil)
			if len(gls) != len(wls) {
				return fmt.Errorf("series %d: %d labels, want %d", i, len(gls), len(wls))
			}
			for j, wl := range wls {
				if string(gls[j].Name) != wl.Name || string(gls[j].Value) != wl.Value {
					return fmt.Errorf("series %d label %d: %q=%q, want %q=%q", i, j, gls[j].Name, gls[j].Value, wl.Name, wl.Value)
				}
			}
		}
		if gs.problem != probOddRefs && gs.problem != probLabelRef {
			var wls []prompb.Label
			for j := 0; j < len(ws.LabelsRefs); j += 2 {
				wls = append(wls, prompb.Label{Name: want.Symbols[ws.LabelsRefs[j]], Value: want.Symbols[ws.LabelsRefs[j+1]]})
			}
			slices.SortStableFunc(wls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
			var wantKey []byte
			nk := 0
			for _, wl := range wls {
				if wl.Value != "" {
					wantKey = append(append(append(append(wantKey, wl.Name...), 0xff), wl.Value...), 0xff)
					nk++
				}
			}
			if !bytes.Equal(gs.Key, wantKey) || int(gs.KeyLabels) != nk {
				return fmt.Errorf("series %d: key %q of %d labels, want %q of %d", i, gs.Key, gs.KeyLabels, wantKey, nk)
			}
			if h := refHash(wls); xxhash.Sum64(gs.Key) != h {
				return fmt.Errorf("series %d: key %q hashes to %x, want %x", i, gs.Key, xxhash.Sum64(gs.Key), h)
			}
		} else if len(gs.Key) != 0 {
			return fmt.Errorf("series %d: key %q for references that do not resolve", i, gs.Key)
		}
		if len(gs.Samples) != len(ws.Samples) {
			return fmt.Errorf("series %d: %d samples, want %d", i, len(gs.Samples), len(ws.Samples))
		}
		for j, w := range ws.Samples {
			g := gs.Samples[j]
			if g.T != w.Timestamp || math.Float64bits(g.V) != math.Float64bits(w.Value) {
				return fmt.Errorf("series %d sample %d: %d %x, want %d %x", i, j, g.T, math.Float64bits(g.V), w.Timestamp, math.Float64bits(w.Value))
			}
		}
		if int(gs.Exemplars) != len(ws.Exemplars) || int(gs.Histograms) != len(ws.Histograms) {
			return fmt.Errorf("series %d: %d exemplars %d histograms, want %d %d", i, gs.Exemplars, gs.Histograms, len(ws.Exemplars), len(ws.Histograms))
		}
		ns, ne, nh = ns+len(ws.Samples), ne+len(ws.Exemplars), nh+len(ws.Histograms)
		if m := ws.Metadata; m.Type != 0 || m.HelpRef != 0 || m.UnitRef != 0 {
			nm++
		}
	}
	if len(got.Samples) != ns || len(got.Exemplars) != ne || len(got.Histograms) != nh || len(got.Metadata) != nm {
		return fmt.Errorf("flat slices: %d samples %d exemplars %d histograms %d metadata, want %d %d %d %d",
			len(got.Samples), len(got.Exemplars), len(got.Histograms), len(got.Metadata), ns, ne, nh, nm)
	}
	return nil
}

// randRequestV2 returns a random 2.0 Request with every field type, and
// now and then a reference outside the symbols table, an odd labels_refs,
// unsorted labels or a series without samples.
func randRequestV2(rng *rand.Rand) *writev2.Request {
	pool := []string{"__name__", "a", "b", "instance", "job", "le", "mode", "ünï", "a.b", "", "x",
		"node_cpu_seconds_total", "127.0.0.1:9100", strings.Repeat("v", 200), "\xff\xfe", "日本"}
	floats := []float64{0, math.Copysign(0, -1), 1, 1.5, math.Inf(1), math.Inf(-1), math.NaN(),
		math.Float64frombits(0x7ff0000000000002), math.Float64frombits(0x7ff8000000000001), math.MaxFloat64, 5e-324}
	ts := []int64{0, -1, 1, 1795238701122, math.MaxInt64, math.MinInt64}
	req := &writev2.Request{Symbols: []string{""}}
	for range rng.IntN(12) {
		req.Symbols = append(req.Symbols, pool[rng.IntN(len(pool))])
	}
	nsym := uint32(len(req.Symbols))
	ref := func() uint32 {
		if rng.IntN(40) == 0 {
			return nsym + rng.Uint32N(3)
		}
		return rng.Uint32N(nsym)
	}
	for range rng.IntN(6) {
		var s writev2.TimeSeries
		for range rng.IntN(6) {
			s.LabelsRefs = append(s.LabelsRefs, ref(), ref())
		}
		if rng.IntN(30) == 0 {
			s.LabelsRefs = append(s.LabelsRefs, ref())
		}
		if rng.IntN(2) == 0 && len(s.LabelsRefs)%2 == 0 { // mostly Prometheus-shaped: sorted
			pairs := make([][2]uint32, 0, len(s.LabelsRefs)/2)
			for j := 0; j < len(s.LabelsRefs); j += 2 {
				pairs = append(pairs, [2]uint32{s.LabelsRefs[j], s.LabelsRefs[j+1]})
			}
			name := func(r uint32) string {
				if r < nsym {
					return req.Symbols[r]
				}
				return ""
			}
			slices.SortStableFunc(pairs, func(a, b [2]uint32) int { return strings.Compare(name(a[0]), name(b[0])) })
			s.LabelsRefs = s.LabelsRefs[:0]
			for _, p := range pairs {
				s.LabelsRefs = append(s.LabelsRefs, p[0], p[1])
			}
		}
		for range rng.IntN(5) {
			smp := writev2.Sample{Timestamp: ts[rng.IntN(len(ts))] + rng.Int64N(1000), Value: floats[rng.IntN(len(floats))]}
			if rng.IntN(3) == 0 {
				smp.Value = rng.NormFloat64()
			}
			if rng.IntN(4) == 0 {
				smp.StartTimestamp = rng.Int64()
			}
			s.Samples = append(s.Samples, smp)
		}
		for range rng.IntN(3) {
			s.Exemplars = append(s.Exemplars, writev2.Exemplar{LabelsRefs: []uint32{ref(), ref()}, Value: rng.Float64(), Timestamp: rng.Int64()})
		}
		for range rng.IntN(3) {
			s.Histograms = append(s.Histograms, writev2.Histogram{
				Count: &writev2.Histogram_CountInt{CountInt: rng.Uint64()}, Sum: rng.Float64(), Schema: int32(rng.IntN(8)) - 4,
				ZeroCount:      &writev2.Histogram_ZeroCountFloat{ZeroCountFloat: 1},
				PositiveSpans:  []writev2.BucketSpan{{Offset: -2, Length: 2}},
				PositiveDeltas: []int64{1, -1}, NegativeCounts: []float64{1, 2}, CustomValues: []float64{3},
				ResetHint: writev2.Histogram_RESET_HINT_GAUGE, Timestamp: rng.Int64(), StartTimestamp: rng.Int64(),
			})
		}
		if rng.IntN(2) == 0 {
			s.Metadata = writev2.Metadata{Type: writev2.Metadata_MetricType(rng.IntN(8)), HelpRef: ref(), UnitRef: ref()}
		}
		req.Timeseries = append(req.Timeseries, s)
	}
	return req
}

func TestUnmarshalV2MatchesReference(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	var r Request
	for i := range 3000 {
		want := randRequestV2(rng)
		body, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var back writev2.Request // the reference's own view (nil vs empty slices)
		if err := back.Unmarshal(body); err != nil {
			t.Fatal(err)
		}
		if err := r.UnmarshalV2(body); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if err := compareV2(&back, &r); err != nil {
			t.Fatalf("request %d (seed %d): %v", i, seed, err)
		}
		for j, sp := range r.Histograms {
			var h writev2.Histogram
			if err := h.Unmarshal(r.Body[sp.Start:sp.End]); err != nil {
				t.Fatalf("request %d histogram %d: %v", i, j, err)
			}
		}
		for j := range r.Series {
			if err := r.SeriesError(j); (err == nil) != (r.Series[j].Err() == nil) || err != nil && !errors.Is(err, r.Series[j].Err()) {
				t.Fatalf("request %d series %d: SeriesError %v, Err %v", i, j, err, r.Series[j].Err())
			}
		}
	}
}

// v2 protobuf by hand, for orders and encodings gogo never writes.
func psym(s string) []byte { return pbytes(nil, 4, []byte(s)) }

func pseries2(fields ...[]byte) []byte { return pbytes(nil, 5, pseries(fields...)) }

func prefs(refs ...uint64) []byte {
	var packed []byte
	for _, r := range refs {
		packed = appendUvarint(packed, r)
	}
	return pbytes(nil, 1, packed)
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestUnmarshalV2WireVariants(t *testing.T) {
	smp := pbytes(nil, 2, psample(1, 1000))
	syms := concat(psym(""), psym("__name__"), psym("up"), psym("job"), psym("x"))
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"symbols only", syms},
		{"one series", concat(syms, pseries2(prefs(1, 2, 3, 4), smp))},
		{"symbols after the series", concat(pseries2(prefs(1, 2, 3, 4), smp), syms)},
		{"symbols around the series", concat(psym(""), psym("__name__"), pseries2(prefs(1, 2, 3, 4), smp), psym("up"), psym("job"), psym("x"))},
		{"unpacked references", concat(syms, pseries2(pvarint(nil, 1, 1), pvarint(nil, 1, 2), smp, pvarint(nil, 1, 3), pvarint(nil, 1, 4)))},
		{"references in two packed runs", concat(syms, pseries2(prefs(1, 2, 3), smp, prefs(4)))},
		{"unsorted labels", concat(syms, pseries2(prefs(3, 4, 1, 2), smp))},
		{"a reference of 33 bits keeps 32", concat(syms, pseries2(prefs(1, 2|1<<32, 3, 4), smp))},
		{"odd references", concat(syms, pseries2(prefs(1, 2, 3), smp))},
		{"reference outside", concat(syms, pseries2(prefs(1, 2, 3, 99), smp))},
		{"metadata reference outside", concat(syms, pseries2(prefs(1, 2), smp, pbytes(nil, 5, pvarint(nil, 3, 99))))},
		{"metadata twice, merged", concat(syms, pseries2(prefs(1, 2), smp, pbytes(nil, 5, pvarint(nil, 1, 2)), pbytes(nil, 5, pvarint(nil, 4, 3))))},
		{"empty metadata", concat(syms, pseries2(prefs(1, 2), smp, pbytes(nil, 5, nil)))},
		{"no samples", concat(syms, pseries2(prefs(1, 2)))},
		{"start timestamp", concat(syms, pseries2(prefs(1, 2), pbytes(nil, 2, pvarint(psample(1, 1000), 3, 500))))},
		{"sample fields reversed", concat(syms, pseries2(prefs(1, 2), pbytes(nil, 2, pdouble(pvarint(nil, 2, 5), 1, 2.5))))},
		{"reserved and unknown fields", concat(pvarint(nil, 1, 7), pbytes(nil, 2, []byte("x")), syms,
			pseries2(prefs(1, 2), smp, pvarint(nil, 6, 12345), pdouble(nil, 99, 1)), pbytes(nil, 3, nil))},
		{"a 1.0 request read as 2.0", wrap(pseries(pbytes(nil, 1, plabel("__name__", "up")), smp))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want writev2.Request
			if err := want.Unmarshal(tc.in); err != nil {
				t.Fatalf("reference: %v", err)
			}
			var r Request
			if err := r.UnmarshalV2(tc.in); err != nil {
				t.Fatal(err)
			}
			if err := compareV2(&want, &r); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUnmarshalV2Malformed(t *testing.T) {
	smp := pbytes(nil, 2, psample(1, 1000))
	syms := concat(psym(""), psym("__name__"), psym("up"))
	for _, tc := range []struct {
		name   string
		in     []byte
		field  string // ProtoError.Field
		reason Reason
	}{
		{"symbols as varint", pvarint(nil, 4, 1), "symbols", ReasonWireType},
		{"timeseries as varint", pvarint(nil, 5, 1), "timeseries", ReasonWireType},
		{"truncated symbol", []byte{0x22, 0x05, 'a'}, "symbols", ReasonTruncated},
		{"references as fixed64", concat(syms, pseries2(pdouble(nil, 1, 1))), "timeseries[0].labels_refs", ReasonWireType},
		{"packed reference runs past its field", concat(syms, pbytes(nil, 5, concat(pbytes(nil, 1, []byte{0x81}), []byte{0x01}))), "timeseries[0].labels_refs", ReasonPacked},
		{"start timestamp as fixed64", concat(syms, pseries2(prefs(1, 2), pbytes(nil, 2, pdouble(psample(1, 2), 3, 1)))), "timeseries[0].samples[0].start_timestamp", ReasonWireType},
		{"histogram start timestamp as bytes", concat(syms, pseries2(prefs(1, 2), pbytes(nil, 3, pbytes(nil, 17, nil)))), "timeseries[0].histograms[0].start_timestamp", ReasonWireType},
		{"exemplar references as fixed64", concat(syms, pseries2(prefs(1, 2), smp, pbytes(nil, 4, pdouble(nil, 1, 1)))), "timeseries[0].exemplars[0].labels_refs", ReasonWireType},
		{"metadata help as bytes", concat(syms, pseries2(prefs(1, 2), smp, pbytes(nil, 5, pbytes(nil, 3, nil)))), "timeseries[0].metadata.help_ref", ReasonWireType},
		{"metadata as varint", concat(syms, pseries2(prefs(1, 2), smp, pvarint(nil, 5, 1))), "timeseries[0].metadata", ReasonWireType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			err := r.UnmarshalV2(tc.in)
			var pe *ProtoError
			if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want a ProtoError", err)
			}
			if pe.Field != tc.field || pe.Reason != tc.reason {
				t.Fatalf("got %v (field %q reason %v), want field %q reason %v", err, pe.Field, pe.Reason, tc.field, tc.reason)
			}
			// The reference rejects it too, unless it is one of the
			// deliberate deviations.
			var want writev2.Request
			if werr := want.Unmarshal(tc.in); werr == nil && tc.reason != ReasonPacked {
				t.Fatalf("the reference accepts it")
			}
		})
	}
}

func TestDecodeV2Allocs(t *testing.T) {
	req := toV2(nodeRequest(t, 2000))
	body, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	compressed := snappy.Encode(nil, body)
	d, err := NewDecoder(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	if err := d.DecodeV2(&r, compressed); err != nil { // warm up
		t.Fatal(err)
	}
	if err := compareV2(req, &r); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() {
		if err := d.DecodeV2(&r, compressed); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("DecodeV2: %v allocs per run, want 0", n)
	}
	// A 1.0 request after a 2.0 one in the same Request, and back.
	body1, err := nodeRequest(t, 2000).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Unmarshal(body1); err != nil {
		t.Fatal(err)
	}
	if err := compare(nodeRequest(t, 2000), &r); err != nil {
		t.Fatal(err)
	}
	var labels []Label
	lim := Limits{}
	if n := testing.AllocsPerRun(20, func() {
		if err := r.UnmarshalV2(body); err != nil {
			t.Fatal(err)
		}
		for i := range r.Series {
			s := &r.Series[i]
			labels = r.LabelsOf(s, labels)
			if err := lim.CheckSeries(s, labels); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 0 {
		t.Errorf("UnmarshalV2 and CheckSeries: %v allocs per run, want 0", n)
	}
}

func TestMemoryBudgetV2(t *testing.T) {
	node, err := toV2(nodeRequest(t, 2000)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("v", 1<<16)
	// Each series refers twice to a 64 KiB symbol: keys of 128 KiB per
	// 8 bytes of body.
	amplified := concat(psym(""), psym("__name__"), psym(big))
	for range 1000 {
		amplified = append(amplified, pseries2(prefs(1, 2), pbytes(nil, 2, nil))...)
	}
	tiny := concat(psym(""), psym("__name__"), psym("x"))
	for range 100000 {
		tiny = append(tiny, pseries2(prefs(1, 2), pbytes(nil, 2, psample(1, 1)))...)
	}
	for _, tc := range []struct {
		name       string
		in         []byte
		want       error
		maxPerByte float64 // decoded bytes per body byte, beyond the slack
	}{
		{"node_exporter", node, nil, 7},
		{"a large symbol referred to by every series", amplified, ErrTooLarge, 0},
		{"smallest valid series", tiny, nil, 9.1},
		{"references within the slack", pseries2(prefs(make([]uint64, 100000)...)), nil, 0},
		{"references", pseries2(prefs(make([]uint64, 5000000)...)), nil, 4.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			alloc0 := ms.TotalAlloc
			err := r.UnmarshalV2(tc.in)
			runtime.ReadMemStats(&ms)
			alloc := int(ms.TotalAlloc - alloc0)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil {
				// Refused before the keys are allocated: what was
				// allocated is the symbols table.
				if alloc > len(tc.in) {
					t.Errorf("allocated %d bytes to refuse a body of %d", alloc, len(tc.in))
				}
				return
			}
			if exact := r.RetainedBytes(); alloc > exact+exact/16+4<<10 {
				t.Errorf("allocated %d bytes for %d bytes of buffers", alloc, exact)
			}
			used := memPerByte*len(tc.in) + memSlack - r.budget
			perByte := float64(used) / float64(len(tc.in))
			if used > memSlack && perByte > tc.maxPerByte {
				t.Errorf("%.2f decoded bytes per body byte, want <= %v", perByte, tc.maxPerByte)
			}
			t.Logf("%d body bytes, %d decoded bytes (%.2f per byte)", len(tc.in), used, perByte)
		})
	}
}
