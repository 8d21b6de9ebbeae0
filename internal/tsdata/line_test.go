package tsdata

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
)

const (
	staleNaN  = 0x7ff0000000000002 // Prometheus value.StaleNaN
	normalNaN = 0x7ff8000000000001 // the ordinary NaN in the recorded data
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    *Series
		wantErr string // substring; "" means no error
	}{
		{
			name: "delta timestamps",
			in:   "{\"__name__\":\"up\",\"job\":\"node\"}\t1795238701122,1000,1000,1003,997\t1,0,1,1,1\n",
			want: &Series{
				Labels: Labels{{"__name__", "up"}, {"job", "node"}},
				T:      []int64{1795238701122, 1795238702122, 1795238703122, 1795238704125, 1795238705122},
				V:      []float64{1, 0, 1, 1, 1},
			},
		},
		{
			name: "no trailing newline, unsorted keys sorted",
			in:   "{\"z\":\"1\",\"a\":\"2\"}\t5\t0.25",
			want: &Series{Labels: Labels{{"a", "2"}, {"z", "1"}}, T: []int64{5}, V: []float64{0.25}},
		},
		{
			name: "infinities and negative zero",
			in:   "{\"__name__\":\"x\"}\t-10,10,10\t+Inf,-Inf,-0",
			want: &Series{Labels: Labels{{"__name__", "x"}}, T: []int64{-10, 0, 10}, V: []float64{math.Inf(1), math.Inf(-1), math.Copysign(0, -1)}},
		},
		{
			name: "NaN bit patterns",
			in:   "{\"__name__\":\"x\"}\t1,1,1\t0x7ff0000000000002,0x7ff8000000000001,1e-300",
			want: &Series{Labels: Labels{{"__name__", "x"}}, T: []int64{1, 2, 3}, V: []float64{math.Float64frombits(staleNaN), math.Float64frombits(normalNaN), 1e-300}},
		},
		{
			name: "escaped label value",
			in:   "{\"__name__\":\"x\",\"path\":\"a\\tb\\n\\\"c\\\"\"}\t1\t1",
			want: &Series{Labels: Labels{{"__name__", "x"}, {"path", "a\tb\n\"c\""}}, T: []int64{1}, V: []float64{1}},
		},
		{
			name: "no samples",
			in:   "{\"__name__\":\"x\"}\t\t",
			want: &Series{Labels: Labels{{"__name__", "x"}}},
		},
		{name: "more timestamps than values", in: "{\"a\":\"b\"}\t1,1,1\t1,2", wantErr: "3 timestamps but 2 values"},
		{name: "more values than timestamps", in: "{\"a\":\"b\"}\t1\t1,2", wantErr: "1 timestamps but 2 values"},
		{name: "zero delta", in: "{\"a\":\"b\"}\t1,1,0\t1,2,3", wantErr: "timestamp 2: delta 0 is not positive"},
		{name: "negative delta", in: "{\"a\":\"b\"}\t1,-5\t1,2", wantErr: "timestamp 1: delta -5 is not positive"},
		{name: "timestamp overflow", in: "{\"a\":\"b\"}\t9223372036854775807,1\t1,2", wantErr: "overflows int64"},
		{name: "bad timestamp", in: "{\"a\":\"b\"}\t1,x\t1,2", wantErr: "timestamp 1"},
		{name: "empty timestamp", in: "{\"a\":\"b\"}\t1,,1\t1,2,3", wantErr: "timestamp 1"},
		{name: "bad JSON", in: "{\"a\":\"b\"\t1\t1", wantErr: "parse labels"},
		{name: "JSON not an object", in: "[\"a\"]\t1\t1", wantErr: "want a JSON object"},
		{name: "JSON null", in: "null\t1\t1", wantErr: "want a JSON object"},
		{name: "JSON non-string value", in: "{\"a\":1}\t1\t1", wantErr: "parse labels"},
		{name: "JSON trailing data", in: "{\"a\":\"b\"}x\t1\t1", wantErr: "parse labels"},
		{name: "one field", in: "{\"a\":\"b\"}", wantErr: "found 1"},
		{name: "two fields", in: "{\"a\":\"b\"}\t1", wantErr: "found 2"},
		{name: "four fields", in: "{\"a\":\"b\"}\t1\t1\t1", wantErr: "found more"},
		{name: "bad value", in: "{\"a\":\"b\"}\t1,1\t1,abc", wantErr: "value 1"},
		{name: "decimal NaN", in: "{\"a\":\"b\"}\t1\tNaN", wantErr: "NaN must be written as 0x"},
		{name: "hex non-NaN", in: "{\"a\":\"b\"}\t1\t0x3ff0000000000000", wantErr: "not a NaN"},
		{name: "short hex", in: "{\"a\":\"b\"}\t1\t0x7ff8", wantErr: "16 hex digits"},
		{name: "upper-case hex", in: "{\"a\":\"b\"}\t1\t0x7FF8000000000001", wantErr: "lower-case"},
		{name: "value out of range", in: "{\"a\":\"b\"}\t1\t1e400", wantErr: "value out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLine([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseLine(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", tc.in, err)
			}
			if d := diff(got, tc.want); d != "" {
				t.Fatalf("ParseLine(%q): %s", tc.in, d)
			}
		})
	}
}

func TestValueRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		bits uint64
		want string
	}{
		{"one", math.Float64bits(1), "1"},
		{"shortest form", math.Float64bits(0.1), "0.1"},
		{"large", math.Float64bits(1.5e300), "1.5e+300"},
		{"smallest subnormal", 1, "5e-324"},
		{"positive zero", 0, "0"},
		{"negative zero", 1 << 63, "-0"},
		{"+Inf", math.Float64bits(math.Inf(1)), "+Inf"},
		{"-Inf", math.Float64bits(math.Inf(-1)), "-Inf"},
		{"stale NaN", staleNaN, "0x7ff0000000000002"},
		{"ordinary NaN", normalNaN, "0x7ff8000000000001"},
		{"negative NaN", 0xfff8000000000000, "0xfff8000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := FormatValue(math.Float64frombits(tc.bits))
			if s != tc.want {
				t.Fatalf("FormatValue = %q, want %q", s, tc.want)
			}
			v, err := ParseValue(s)
			if err != nil {
				t.Fatalf("ParseValue(%q): %v", s, err)
			}
			if got := math.Float64bits(v); got != tc.bits {
				t.Fatalf("ParseValue(%q) bits = %#016x, want %#016x", s, got, tc.bits)
			}
		})
	}
}

func TestWriteLineRoundTrip(t *testing.T) {
	in := &Series{
		Labels: Labels{{"__name__", "http_requests_total"}, {"path", "/a<b>&\"c\"\t\x01ü"}, {"zone", ""}},
		T:      []int64{-5, 0, 1795238701122, 1795238701123, math.MaxInt64},
		V: []float64{
			math.Float64frombits(staleNaN), math.Float64frombits(normalNaN),
			math.Copysign(0, -1), math.Inf(1), 0.1 + 0.2,
		},
	}
	var buf bytes.Buffer
	if err := WriteLine(&buf, in); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	if strings.Count(line, "\t") != 2 || strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("WriteLine wrote %q: want 3 fields and one trailing newline", line)
	}
	got, err := ParseLine(buf.Bytes())
	if err != nil {
		t.Fatalf("ParseLine(%q): %v", line, err)
	}
	if d := diff(got, in); d != "" {
		t.Fatalf("round trip of %q: %s", line, d)
	}
}

func TestWriteLineRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      *Series
		wantErr string
	}{
		{"unsorted labels", &Series{Labels: Labels{{"b", ""}, {"a", ""}}}, "not sorted"},
		{"duplicate labels", &Series{Labels: Labels{{"a", "1"}, {"a", "2"}}}, "not sorted"},
		{"invalid UTF-8", &Series{Labels: Labels{{"a", "\xff"}}}, "invalid UTF-8"},
		{"count mismatch", &Series{T: []int64{1}, V: []float64{1, 2}}, "1 timestamps but 2 values"},
		{"equal timestamps", &Series{T: []int64{1, 1}, V: []float64{1, 2}}, "not after"},
		{"delta overflows", &Series{T: []int64{math.MinInt64, math.MaxInt64}, V: []float64{1, 2}}, "not after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteLine(&buf, tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("WriteLine error = %v, want one containing %q", err, tc.wantErr)
			}
			if buf.Len() != 0 {
				t.Fatalf("WriteLine wrote %q despite the error", buf.String())
			}
		})
	}
}

func TestLabelsString(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Labels
		want string
	}{
		{"empty", nil, "{}"},
		{"plain", Labels{{"__name__", "up"}, {"job", "node"}}, `{__name__="up", job="node"}`},
		{"quoted value", Labels{{"a", "x\"y\n"}}, `{a="x\"y\n"}`},
		{"utf-8 name", Labels{{"a.b", "1"}, {"9x", "2"}}, `{"a.b"="1", "9x"="2"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.String(); got != tc.want {
				t.Fatalf("String() = %s, want %s", got, tc.want)
			}
		})
	}
}

// diff describes how got differs from want, comparing values by bits; ""
// means equal.
func diff(got, want *Series) string {
	if len(got.Labels) != len(want.Labels) {
		return "labels " + got.Labels.String() + ", want " + want.Labels.String()
	}
	for i := range got.Labels {
		if got.Labels[i] != want.Labels[i] {
			return "labels " + got.Labels.String() + ", want " + want.Labels.String()
		}
	}
	if len(got.T) != len(want.T) || len(got.V) != len(want.V) {
		return fmt.Sprintf("got %d/%d timestamps/values, want %d/%d", len(got.T), len(got.V), len(want.T), len(want.V))
	}
	for i := range got.T {
		if got.T[i] != want.T[i] {
			return fmt.Sprintf("timestamp %d: got %d, want %d", i, got.T[i], want.T[i])
		}
		if math.Float64bits(got.V[i]) != math.Float64bits(want.V[i]) {
			return fmt.Sprintf("value %d: got %s, want %s", i, FormatValue(got.V[i]), FormatValue(want.V[i]))
		}
	}
	return ""
}
