package remotewrite

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/myelindb/myelin/write"
)

func lbls(kv ...string) []Label {
	var ls []Label
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, Label{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return ls
}

func TestValidateLabels(t *testing.T) {
	long := strings.Repeat("x", 3000)
	for _, tc := range []struct {
		name   string
		lim    Limits
		in     []Label
		want   error
		detail string // substring of the error text
	}{
		{"ok", Limits{}, lbls("__name__", "up", "job", "node"), nil, ""},
		{"utf8 names", Limits{}, lbls("__name__", "http.requests", "dé.tail", "x"), nil, ""},
		{"uppercase sorts before __name__", Limits{}, lbls("A", "1", "__name__", "up"), nil, ""},
		{"empty value dropped, not checked", Limits{}, lbls("__name__", "up", "a-b", "", "a", "x"), nil, ""},
		{"missing name", Limits{}, lbls("job", "node"), ErrMissingName, `{job="node"}`},
		{"empty name value", Limits{}, lbls("__name__", "", "job", "node"), ErrMissingName, ""},
		{"no labels", Limits{}, nil, ErrMissingName, "{}"},
		{"legacy metric name with colon", Limits{LegacyNames: true}, lbls("__name__", "job:up:sum"), nil, ""},
		{"legacy invalid metric name", Limits{LegacyNames: true}, lbls("__name__", "http.requests"), ErrInvalidMetricName, `"http.requests"`},
		{"legacy metric name digit first", Limits{LegacyNames: true}, lbls("__name__", "1up"), ErrInvalidMetricName, ""},
		{"invalid utf8 metric name", Limits{}, lbls("__name__", "\xff"), ErrInvalidMetricName, ""},
		{"legacy label with colon", Limits{LegacyNames: true}, lbls("__name__", "up", "a:b", "x"), ErrInvalidLabelName, `label "a:b"`},
		{"legacy label with dot", Limits{LegacyNames: true}, lbls("__name__", "up", "a.b", "x"), ErrInvalidLabelName, ""},
		{"empty label name", Limits{}, lbls("", "x", "__name__", "up"), ErrInvalidLabelName, `label ""`},
		{"invalid utf8 label name", Limits{}, lbls("__name__", "up", "a\xffb", "x"), ErrInvalidLabelName, `label "a\xffb"`},
		{"invalid utf8 value", Limits{}, lbls("__name__", "up", "a", "\xc3"), ErrInvalidLabelValue, `label "a"`},
		{"separator byte in value", Limits{}, lbls("__name__", "up", "a", "x\xffy"), ErrInvalidLabelValue, `label "a"`},
		{"separator byte in long value", Limits{}, lbls("__name__", "up", "a", "0123456789\xff"), ErrInvalidLabelValue, `label "a"`},
		{"utf8 value", Limits{}, lbls("__name__", "up", "a", "naïve"), nil, ""},
		{"duplicate", Limits{}, lbls("__name__", "up", "a", "1", "a", "2"), ErrDuplicateLabel, `label "a"`},
		{"unsorted", Limits{}, lbls("__name__", "up", "b", "1", "a", "2"), ErrUnsortedLabels, `label "a" after "b"`},
		{"too many", Limits{MaxLabelNames: 2}, lbls("__name__", "up", "a", "1", "b", "2"), ErrTooManyLabels, "3 labels, limit 2"},
		{"empty values not counted", Limits{MaxLabelNames: 2}, lbls("__name__", "up", "a", "1", "b", ""), nil, ""},
		{"name too long", Limits{MaxLabelNameBytes: 8}, lbls("__name__", "up", "abcdefghi", "1"), ErrLabelNameTooLong, "9 bytes, limit 8"},
		{"__name__ counts as a name", Limits{MaxLabelNameBytes: 3}, lbls("__name__", "up"), ErrLabelNameTooLong, `label "__name__"`},
		{"value too long", Limits{}, lbls("__name__", "up", "a", long), ErrLabelValueTooLong, "3000 bytes, limit 2048"},
		{"metric name too long", Limits{MaxLabelValueBytes: 3}, lbls("__name__", "upup"), ErrLabelValueTooLong, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.lim.ValidateLabels(tc.in)
			key, n := appendKey(nil, tc.in)
			s := &Series{Labels: tc.in, Key: key, KeyLabels: int32(n)}
			if err2 := tc.lim.ValidateSeries(s, s.Labels); fmt.Sprint(err2) != fmt.Sprint(err) {
				t.Fatalf("ValidateSeries: %v, ValidateLabels: %v", err2, err)
			}
			// CheckSeries: the bare sentinel of the same problem, for free.
			var check error
			if allocs := testing.AllocsPerRun(10, func() { check = tc.lim.CheckSeries(s, s.Labels) }); allocs != 0 {
				t.Errorf("CheckSeries allocated %v times", allocs)
			}
			if check != tc.want {
				t.Fatalf("CheckSeries: %v, want %v", check, tc.want)
			}
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil {
				return
			}
			var se *SeriesError
			if !errors.As(err, &se) {
				t.Fatalf("%T is not a *SeriesError", err)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q does not contain %q", err, tc.detail)
			}
			if len(err.Error()) > 1200 {
				t.Errorf("error of %d bytes", len(err.Error()))
			}
		})
	}
}

func TestValidateSamples(t *testing.T) {
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	ms := now.UnixMilli()
	ls := lbls("__name__", "up")
	for _, tc := range []struct {
		name string
		lim  Limits
		in   []Sample
		want error
	}{
		{"none", Limits{}, nil, nil},
		{"past and now", Limits{}, []Sample{{T: 0}, {T: ms}}, nil},
		{"at the limit", Limits{}, []Sample{{T: ms + 10*60*1000}}, nil},
		{"1 ms over", Limits{}, []Sample{{T: ms}, {T: ms + 10*60*1000 + 1}}, ErrTooFarInFuture},
		{"custom skew", Limits{MaxFutureSkew: time.Second}, []Sample{{T: ms + 1001}}, ErrTooFarInFuture},
		{"max int64", Limits{}, []Sample{{T: 1<<63 - 1}}, ErrTooFarInFuture},
		{"min int64", Limits{}, []Sample{{T: ms}, {T: -1 << 63}}, ErrTimestampUnreadable},
		{"oldest readable", Limits{}, []Sample{{T: MinTimestamp}}, nil},
		{"1 ms before the oldest readable", Limits{}, []Sample{{T: MinTimestamp - 1}}, ErrTimestampUnreadable},
		{"newest readable", Limits{MaxFutureSkew: 1<<63 - 1}, []Sample{{T: MaxTimestamp}}, nil},
		{"1 ms after the newest readable", Limits{MaxFutureSkew: 1<<63 - 1}, []Sample{{T: MaxTimestamp + 1}}, ErrTimestampUnreadable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.lim.ValidateSamples(ls, tc.in, now)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var check error
			if allocs := testing.AllocsPerRun(10, func() { check = tc.lim.CheckSamples(tc.in, now) }); allocs != 0 {
				t.Errorf("CheckSamples allocated %v times", allocs)
			}
			if check != tc.want {
				t.Fatalf("CheckSamples: %v, want %v", check, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), `{__name__="up"}`) {
				t.Errorf("error %q does not name the series", err)
			}
		})
	}
}

// The readable range is what PromQL's time.Time round trip preserves.
func TestReadableTimestamps(t *testing.T) {
	for _, ms := range []int64{MinTimestamp, MaxTimestamp} {
		at := time.UnixMilli(ms)
		if got := at.UnixNano() / int64(time.Millisecond); got != ms {
			t.Errorf("%d ms: UnixNano round trip gives %d", ms, got)
		}
	}
	for _, ms := range []int64{MinTimestamp - 1, MaxTimestamp + 1} {
		at := time.UnixMilli(ms)
		if got := at.UnixNano() / int64(time.Millisecond); got == ms {
			t.Errorf("%d ms: UnixNano round trip works; the range is wider", ms)
		}
	}
	if got := time.UnixMilli(MinTimestamp).UTC().Format(time.RFC3339Nano); got != "1677-09-21T00:12:43.146Z" {
		t.Errorf("MinTimestamp is %s", got)
	}
	if got := time.UnixMilli(MaxTimestamp).UTC().Format(time.RFC3339Nano); got != "2262-04-11T23:47:16.854Z" {
		t.Errorf("MaxTimestamp is %s", got)
	}
}

func TestNameValidityMatchesPrometheus(t *testing.T) {
	names := []string{"", "a", "_", "A1", "1a", "a:b", ":a", "a.b", "a-b", "ü", "\xff", "__name__", "a b", "a\x00", "Z_9:"}
	for _, n := range names {
		for _, legacy := range []bool{true, false} {
			scheme := model.UTF8Validation
			if legacy {
				scheme = model.LegacyValidation
			}
			if got, want := validName([]byte(n), legacy, false, false), scheme.IsValidLabelName(n); got != want {
				t.Errorf("label name %q legacy=%v: %v, Prometheus %v", n, legacy, got, want)
			}
			if got, want := validName([]byte(n), legacy, true, false), scheme.IsValidMetricName(n); got != want {
				t.Errorf("metric name %q legacy=%v: %v, Prometheus %v", n, legacy, got, want)
			}
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := (Limits{}).Validate(); err != nil {
		t.Fatal(err)
	}
	err := Limits{MaxLabelNames: -1, MaxFutureSkew: -1}.Validate()
	if err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Fatalf("want two problems, got %v", err)
	}
}

func TestRenderLabels(t *testing.T) {
	many := make([]string, 0, 80)
	for range 40 {
		many = append(many, "a", "b")
	}
	for _, tc := range []struct {
		name string
		in   []Label
		want string
	}{
		{"empty", nil, "{}"},
		{"plain", lbls("__name__", "up", "job", "node"), `{__name__="up", job="node"}`},
		{"quoted name and escapes", lbls("a.b", "x\"y\n"), `{"a.b"="x\"y\n"}`},
		{"long value", lbls("v", strings.Repeat("é", 100)), `{v="` + strings.Repeat("é", 32) + `...(200 bytes)"}`},
		{"many labels", lbls(many...), strings.Repeat(`a="b", `, 31) + `a="b", ...(8 more)}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := renderLabels(tc.in)
			if tc.name == "many labels" {
				tc.want = "{" + tc.want
			}
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestASCIIKeySeparator: asciiKey finds the separators as the bytes
// whose bits are all set.
func TestASCIIKeySeparator(t *testing.T) {
	if write.LabelSep != 0xff {
		t.Fatalf("write.LabelSep is %#x; asciiKey looks for 0xff", write.LabelSep)
	}
}

func TestASCIIKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		ls   []Label
		want bool
	}{
		{"ascii", lbls("__name__", "node_cpu_seconds_total", "cpu", "0"), true},
		{"ascii, short", lbls("a", "b"), true},
		{"empty values skipped", lbls("a", "", "b", "c"), true},
		{"utf8 value", lbls("a", "naïve"), false},
		{"utf8 name in the tail", lbls("__name__", "x", "é", "1"), false},
		{"0xff in value", lbls("a", "x\xffy"), false},
		{"0xff in long value", lbls("__name__", "up", "a", "0123456789\xff"), false},
		{"0x80 byte", lbls("a", "\x80"), false},
		{"0x7f byte", lbls("a", "\x7f"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, n := appendKey(nil, tc.ls)
			if got := asciiKey(key, n); got != tc.want {
				t.Fatalf("asciiKey(%q, %d) = %v, want %v", key, n, got, tc.want)
			}
		})
	}
}
