package remotewrite

import (
	"encoding/binary"
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
)

// Hand-built protobuf for malformed inputs.
func ptag(b []byte, num uint64, wt int) []byte { return binary.AppendUvarint(b, num<<3|uint64(wt)) }

func pbytes(b []byte, num uint64, v []byte) []byte {
	b = ptag(b, num, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func pvarint(b []byte, num, v uint64) []byte {
	return binary.AppendUvarint(ptag(b, num, wireVarint), v)
}

func pdouble(b []byte, num uint64, v float64) []byte {
	return binary.LittleEndian.AppendUint64(ptag(b, num, wireFixed64), math.Float64bits(v))
}

func plabel(name, value string) []byte {
	return pbytes(pbytes(nil, 1, []byte(name)), 2, []byte(value))
}

func psample(v float64, t int64) []byte { return pvarint(pdouble(nil, 1, v), 2, uint64(t)) }

// pseries is a TimeSeries of the given fields (already encoded).
func pseries(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

// wrap wraps msg as field 1 of a WriteRequest.
func wrap(msg []byte) []byte { return pbytes(nil, 1, msg) }

// compare checks that got holds exactly what prompb decoded into want.
func compare(want *prompb.WriteRequest, got *Request) error {
	if len(got.Series) != len(want.Timeseries) {
		return fmt.Errorf("%d series, want %d", len(got.Series), len(want.Timeseries))
	}
	if len(got.Metadata) != len(want.Metadata) {
		return fmt.Errorf("%d metadata, want %d", len(got.Metadata), len(want.Metadata))
	}
	nl, ns, ne, nh := 0, 0, 0, 0
	for i, ws := range want.Timeseries {
		gs := got.Series[i]
		if len(gs.Labels) != len(ws.Labels) || len(gs.Samples) != len(ws.Samples) {
			return fmt.Errorf("series %d: %d labels %d samples, want %d %d", i, len(gs.Labels), len(gs.Samples), len(ws.Labels), len(ws.Samples))
		}
		// Labels come sorted by name, stably, as Prometheus 3 sorts them.
		wls := slices.Clone(ws.Labels)
		slices.SortStableFunc(wls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		for j, wl := range wls {
			if string(gs.Labels[j].Name) != wl.Name || string(gs.Labels[j].Value) != wl.Value {
				return fmt.Errorf("series %d label %d: %q=%q, want %q=%q", i, j, gs.Labels[j].Name, gs.Labels[j].Value, wl.Name, wl.Value)
			}
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
		if h := refHash(wls); xxhash.Sum64(gs.Key) != h {
			return fmt.Errorf("series %d: key %q hashes to %x, want %x", i, gs.Key, xxhash.Sum64(gs.Key), h)
		}
		nl, ns, ne, nh = nl+len(ws.Labels), ns+len(ws.Samples), ne+len(ws.Exemplars), nh+len(ws.Histograms)
	}
	if len(got.Labels) != nl || len(got.Samples) != ns || len(got.Exemplars) != ne || len(got.Histograms) != nh {
		return fmt.Errorf("flat slices: %d labels %d samples %d exemplars %d histograms, want %d %d %d %d",
			len(got.Labels), len(got.Samples), len(got.Exemplars), len(got.Histograms), nl, ns, ne, nh)
	}
	return nil
}

// refHash is the reference series hash of labels sorted by name:
// labels.StableHash of the non-empty labels when their names are unique
// (what is stored), else the same algorithm written out (StableHash
// needs a valid set).
func refHash(ls []prompb.Label) uint64 {
	var b labels.ScratchBuilder
	var raw []byte
	unique := true
	prev := ""
	for i, l := range ls {
		if l.Value == "" {
			continue
		}
		if i > 0 && l.Name <= prev {
			unique = false
		}
		prev = l.Name
		b.Add(l.Name, l.Value)
		raw = append(append(append(append(raw, l.Name...), 0xff), l.Value...), 0xff)
	}
	if unique {
		return labels.StableHash(b.Labels())
	}
	return xxhash.Sum64(raw)
}

// randRequest returns a random WriteRequest with every field type.
func randRequest(rng *rand.Rand) *prompb.WriteRequest {
	names := []string{"__name__", "a", "b", "instance", "job", "le", "mode", "ünï", "a.b", ""}
	values := []string{"", "x", "node_cpu_seconds_total", "127.0.0.1:9100", strings.Repeat("v", 200), "\xff\xfe", "日本"}
	floats := []float64{0, math.Copysign(0, -1), 1, 1.5, math.Inf(1), math.Inf(-1), math.NaN(),
		math.Float64frombits(0x7ff0000000000002), math.Float64frombits(0x7ff8000000000001), math.MaxFloat64, 5e-324}
	ts := []int64{0, -1, 1, 1795238701122, math.MaxInt64, math.MinInt64}
	req := &prompb.WriteRequest{}
	for range rng.IntN(6) {
		var s prompb.TimeSeries
		nl := rng.IntN(6)
		for range nl {
			s.Labels = append(s.Labels, prompb.Label{Name: names[rng.IntN(len(names))], Value: values[rng.IntN(len(values))]})
		}
		if rng.IntN(2) == 0 { // mostly Prometheus-shaped: sorted
			sortLabels(s.Labels)
		}
		for range rng.IntN(5) {
			smp := prompb.Sample{Timestamp: ts[rng.IntN(len(ts))] + rng.Int64N(1000), Value: floats[rng.IntN(len(floats))]}
			if rng.IntN(3) == 0 {
				smp.Value = rng.NormFloat64()
			}
			s.Samples = append(s.Samples, smp)
		}
		for range rng.IntN(3) {
			s.Exemplars = append(s.Exemplars, prompb.Exemplar{
				Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: rng.Float64(), Timestamp: rng.Int64()})
		}
		for range rng.IntN(3) {
			h := prompb.Histogram{
				Count: &prompb.Histogram_CountInt{CountInt: rng.Uint64()}, Sum: rng.Float64(), Schema: int32(rng.IntN(8)),
				ZeroCount:      &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: 1},
				PositiveSpans:  []prompb.BucketSpan{{Offset: -2, Length: 2}},
				PositiveDeltas: []int64{1, -1}, NegativeCounts: []float64{1, 2}, CustomValues: []float64{3},
				ResetHint: prompb.Histogram_GAUGE, Timestamp: rng.Int64(),
			}
			s.Histograms = append(s.Histograms, h)
		}
		req.Timeseries = append(req.Timeseries, s)
	}
	for range rng.IntN(3) {
		req.Metadata = append(req.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "x_total", Help: "help", Unit: "seconds"})
	}
	return req
}

func sortLabels(ls []prompb.Label) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Name < ls[j-1].Name; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

func TestUnmarshalMatchesPrompb(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var r Request
	for i := range 2000 {
		want := randRequest(rng)
		body, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var back prompb.WriteRequest // prompb's own view (nil vs empty slices)
		if err := back.Unmarshal(body); err != nil {
			t.Fatal(err)
		}
		if err := r.Unmarshal(body); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if err := compare(&back, &r); err != nil {
			t.Fatalf("request %d (seed %d): %v", i, seed, err)
		}
		// The spans hold the messages prompb encoded.
		for j, sp := range r.Histograms {
			var h prompb.Histogram
			if err := h.Unmarshal(r.Body[sp.Start:sp.End]); err != nil {
				t.Fatalf("request %d histogram %d: %v", i, j, err)
			}
		}
		for _, sp := range r.Exemplars {
			if sp.Series < 0 || sp.Series >= len(r.Series) {
				t.Fatalf("exemplar of series %d", sp.Series)
			}
		}
	}
}

func TestUnmarshalWireVariants(t *testing.T) {
	// Inputs prompb accepts that a straightforward encoder never writes.
	lab := plabel("__name__", "up")
	smp := psample(1, 1000)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"empty series", wrap(nil)},
		{"empty label and sample", wrap(pseries(pbytes(nil, 1, nil), pbytes(nil, 2, nil)))},
		{"interleaved labels and samples", wrap(pseries(pbytes(nil, 2, smp), pbytes(nil, 1, lab), pbytes(nil, 2, smp), pbytes(nil, 1, plabel("job", "x"))))},
		{"repeated name keeps last", wrap(pbytes(nil, 1, append(plabel("a", "b"), pbytes(nil, 1, []byte("z"))...)))},
		{"sample fields reversed", wrap(pbytes(nil, 2, pdouble(pvarint(nil, 2, 5), 1, 2.5)))},
		{"non-minimal varints", wrap(pbytes(nil, 2, []byte{0x10, 0x85, 0x80, 0x80, 0}))},
		{"negative timestamp", wrap(pbytes(nil, 2, psample(1, -5)))},
		{"unknown fields everywhere", append(pvarint(nil, 2, 7), wrap(pseries(
			pbytes(nil, 1, append(lab, pvarint(nil, 9, 1)...)),
			pbytes(nil, 2, append(smp, binary.LittleEndian.AppendUint32(ptag(nil, 7, wireFixed32), 1)...)),
			pdouble(nil, 5, 1), pbytes(nil, 100, []byte("zz")),
			ptag(ptag(pvarint(ptag(nil, 6, wireStart), 1, 3), 6, wireEnd), 1000, wireVarint), []byte{0x01},
		))...)},
		{"nested groups", wrap(append(ptag(ptag(ptag(ptag(nil, 9, wireStart), 8, wireStart), 8, wireEnd), 9, wireEnd), pbytes(nil, 1, lab)...))},
		{"max field number", wrap(pvarint(nil, maxFieldNumber, 1))},
		{"unpacked histogram deltas", wrap(pbytes(nil, 4, pvarint(pvarint(nil, 9, 1), 12, 3)))},
		{"metadata only", pbytes(nil, 3, pvarint(nil, 1, 2))},
		{"unsorted labels", wrap(pseries(pbytes(nil, 1, plabel("job", "x")), pbytes(nil, 1, plabel("__name__", "up")), pbytes(nil, 1, plabel("a", "1")), pbytes(nil, 2, smp)))},
		{"unsorted duplicates keep wire order", wrap(pseries(pbytes(nil, 1, plabel("b", "2")), pbytes(nil, 1, plabel("a", "1")), pbytes(nil, 1, plabel("b", "1")), pbytes(nil, 2, smp)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want prompb.WriteRequest
			if err := want.Unmarshal(tc.in); err != nil {
				t.Fatalf("prompb: %v", err)
			}
			var r Request
			if err := r.Unmarshal(tc.in); err != nil {
				t.Fatal(err)
			}
			if err := compare(&want, &r); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUnmarshalMalformed(t *testing.T) {
	smp := psample(1, 1000)
	for _, tc := range []struct {
		name   string
		in     []byte
		reason Reason
		offset int
		field  string
		prompb bool // prompb accepts it (a documented deviation)
	}{
		{"truncated tag", []byte{0x80}, ReasonTruncated, 0, "tag", false},
		{"truncated length", []byte{0x0a}, ReasonTruncated, 1, "timeseries", false},
		{"length past end", []byte{0x0a, 0x05, 0}, ReasonTruncated, 1, "timeseries", false},
		{"series wire type", pvarint(nil, 1, 1), ReasonWireType, 0, "timeseries", false},
		{"metadata wire type", pdouble(nil, 3, 1), ReasonWireType, 0, "metadata", false},
		{"field 0", []byte{0x02, 0x00}, ReasonFieldNumber, 0, "tag", false},
		{"wire type 6", []byte{0x0e}, ReasonWireType, 0, "tag", false},
		{"end group at top", ptag(nil, 5, wireEnd), ReasonGroup, 0, "field 5", false},
		{"group not closed", wrap(ptag(nil, 5, wireStart)), ReasonGroup, 2, "timeseries[0].field 5", false},
		{"label wire type", wrap(pvarint(nil, 1, 1)), ReasonWireType, 2, "timeseries[0].labels", false},
		{"label name wire type", wrap(pbytes(nil, 1, pvarint(nil, 1, 1))), ReasonWireType, 4, "timeseries[0].labels[0].name", false},
		{"label value truncated", wrap(pbytes(nil, 1, []byte{0x12, 0x03, 'a'})), ReasonTruncated, 5, "timeseries[0].labels[0].value", false},
		{"second sample value wire type", wrap(pseries(pbytes(nil, 2, smp), pbytes(nil, 2, pvarint(nil, 1, 1)))), ReasonWireType, 18, "timeseries[0].samples[1].value", false},
		{"sample value truncated", wrap(pbytes(nil, 2, []byte{0x09, 1, 2, 3})), ReasonTruncated, 5, "timeseries[0].samples[0].value", false},
		{"timestamp truncated", wrap(pbytes(nil, 2, []byte{0x10, 0x80})), ReasonTruncated, 5, "timeseries[0].samples[0].timestamp", false},
		{"timestamp 11 bytes", wrap(pbytes(nil, 2, []byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00})), ReasonOverflow, 5, "timeseries[0].samples[0].timestamp", false},
		{"timestamp over 64 bits", wrap(pbytes(nil, 2, []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})), ReasonOverflow, 5, "timeseries[0].samples[0].timestamp", true},
		{"field number over 2^29-1", pvarint(nil, 1<<29, 1), ReasonFieldNumber, 0, "tag", true},
		{"field number aliasing 1", append(binary.AppendUvarint(nil, (1<<32+1)<<3|2), 0), ReasonFieldNumber, 0, "tag", true},
		{"histogram wire type", wrap(pvarint(nil, 4, 1)), ReasonWireType, 2, "timeseries[0].histograms", false},
		{"histogram sum wire type", wrap(pbytes(nil, 4, pvarint(nil, 3, 1))), ReasonWireType, 4, "timeseries[0].histograms[0].sum", false},
		{"histogram span truncated", wrap(pbytes(nil, 4, pbytes(nil, 8, []byte{0x08}))), ReasonTruncated, 7, "timeseries[0].histograms[0].negative_spans.offset", false},
		{"packed doubles ragged", wrap(pbytes(nil, 4, append(pbytes(nil, 10, []byte{1, 2, 3}), 4, 5, 6, 7, 8))), ReasonPacked, 6, "timeseries[0].histograms[0].negative_counts", true},
		{"packed varints ragged", wrap(pbytes(nil, 4, append(pbytes(nil, 12, []byte{1, 0x80}), 0x01))), ReasonPacked, 7, "timeseries[0].histograms[0].positive_deltas", true},
		{"exemplar label wire type", wrap(pbytes(nil, 3, pbytes(nil, 1, pvarint(nil, 2, 1)))), ReasonWireType, 6, "timeseries[0].exemplars[0].labels.value", false},
		{"metadata type wire type", pbytes(nil, 3, pbytes(nil, 1, nil)), ReasonWireType, 2, "metadata[0].type", false},
		{"second series", append(wrap(nil), wrap(pbytes(nil, 1, []byte{0x0a}))...), ReasonTruncated, 7, "timeseries[1].labels[0].name", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			err := r.Unmarshal(tc.in)
			var pe *ProtoError
			if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want a *ProtoError", err)
			}
			if pe.Reason != tc.reason || pe.Offset != tc.offset || pe.Field != tc.field {
				t.Errorf("got %s (%v at %d in %q), want %v at %d in %q", err, pe.Reason, pe.Offset, pe.Field, tc.reason, tc.offset, tc.field)
			}
			var want prompb.WriteRequest
			if perr := want.Unmarshal(tc.in); (perr == nil) != tc.prompb {
				t.Errorf("prompb: %v, want accepted=%v", perr, tc.prompb)
			}
		})
	}
}

func TestDecoder(t *testing.T) {
	body, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "up"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: 2}},
	}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	good := snappy.Encode(nil, body)
	// A snappy bomb: a header announcing 4 GiB-1 bytes, then nothing.
	bomb := binary.AppendUvarint(nil, 1<<32-1)
	for _, tc := range []struct {
		name string
		opts Options
		in   []byte
		want error
	}{
		{"ok", Options{}, good, nil},
		{"compressed too large", Options{MaxCompressedBytes: len(good) - 1}, good, ErrTooLarge},
		{"decompressed too large", Options{MaxDecompressedBytes: len(body) - 1}, good, ErrTooLarge},
		{"exactly at limits", Options{MaxCompressedBytes: len(good), MaxDecompressedBytes: len(body)}, good, nil},
		{"bomb", Options{}, bomb, ErrTooLarge},
		{"bomb under the limit", Options{}, binary.AppendUvarint(nil, 1<<20), ErrSnappy},
		{"bomb under the ratio", Options{}, append(binary.AppendUvarint(nil, 1<<10), make([]byte, 60)...), ErrSnappy},
		{"densest snappy", Options{}, snappy.Encode(nil, make([]byte, 1<<20)), ErrMalformed}, // zeros: field 0
		{"empty body", Options{}, nil, ErrSnappy},
		{"bad header", Options{}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrSnappy},
		{"corrupt block", Options{}, good[:len(good)-1], ErrSnappy},
		{"not snappy", Options{}, body, nil}, // see below
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "not snappy" {
				// An uncompressed protobuf is sometimes a valid snappy
				// header: whatever happens, it must be an error of ours.
				tc.want = nil
			}
			d, err := NewDecoder(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var r Request
			err = d.Decode(&r, tc.in)
			if tc.name == "not snappy" {
				if err == nil || !(errors.Is(err, ErrSnappy) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge)) {
					t.Fatalf("got %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil && (len(r.Series) != 1 || string(r.Series[0].Labels[0].Value) != "up") {
				t.Fatalf("decoded %v", r.Series)
			}
			if r.BufferBytes() > len(tc.in)*maxSnappyExpansion {
				t.Errorf("allocated %d bytes for a body of %d", r.BufferBytes(), len(tc.in))
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		errs int
	}{
		{"zero", Options{}, 0},
		{"negative", Options{MaxCompressedBytes: -1, MaxDecompressedBytes: -1}, 2},
		{"over 4 GiB", Options{MaxDecompressedBytes: 1 << 33}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			n := 0
			if err != nil {
				n = strings.Count(err.Error(), "\n") + 1
			}
			if n != tc.errs {
				t.Fatalf("%d errors (%v), want %d", n, err, tc.errs)
			}
		})
	}
}

func TestDecodeAllocs(t *testing.T) {
	req := nodeRequest(t, 2000)
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
	if err := d.Decode(&r, compressed); err != nil { // warm up
		t.Fatal(err)
	}
	if err := compare(req, &r); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(20, func() {
		if err := d.Decode(&r, compressed); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Decode: %v allocs per run, want 0", n)
	}
	if n := testing.AllocsPerRun(20, func() {
		if err := r.Unmarshal(body); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Unmarshal: %v allocs per run, want 0", n)
	}
	lim := Limits{}
	if n := testing.AllocsPerRun(20, func() {
		for _, s := range r.Series {
			if err := lim.ValidateLabels(s.Labels); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 0 {
		t.Errorf("ValidateLabels: %v allocs per run, want 0", n)
	}
}

func TestMemoryBudget(t *testing.T) {
	node, err := nodeRequest(t, 2000).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	emptyLabels := func(n int) []byte {
		return wrap(pseries([]byte(strings.Repeat("\x0a\x00", n))))
	}
	for _, tc := range []struct {
		name       string
		in         []byte
		want       error
		maxPerByte float64 // decoded bytes per body byte, beyond the slack
	}{
		{"node_exporter", node, nil, 3.1},
		{"empty labels within the slack", emptyLabels(20000), nil, 24},
		{"empty labels", emptyLabels(200000), ErrTooLarge, 0},
		{"empty series", []byte(strings.Repeat("\x0a\x00", 200000)), ErrTooLarge, 0},
		{"empty samples", wrap(pseries([]byte(strings.Repeat("\x12\x00", 200000)))), nil, 8.1},
		{"one-label series", []byte(strings.Repeat(string(wrap(pseries(pbytes(nil, 1, plabel("a", "b")), pbytes(nil, 2, psample(1, 1))))), 100000)), nil, 7.4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			alloc0 := ms.TotalAlloc
			err := r.Unmarshal(tc.in)
			runtime.ReadMemStats(&ms)
			// A cold Request allocates what the body needs once (presize),
			// and nothing for a body over the budget.
			alloc := int(ms.TotalAlloc - alloc0)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil {
				if alloc > 4<<10 {
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
