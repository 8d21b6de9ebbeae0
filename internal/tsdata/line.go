package tsdata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseLine parses one series line (without or with its trailing newline).
// Comment and empty lines are the caller's business (ReadFile skips them).
// The returned Series is new and owned by the caller; it does not alias line.
func ParseLine(line []byte) (*Series, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	labelsField, rest, ok := bytes.Cut(line, []byte("\t"))
	if !ok {
		return nil, errors.New("want 3 tab-separated fields, found 1")
	}
	tsField, vsField, ok := bytes.Cut(rest, []byte("\t"))
	if !ok {
		return nil, errors.New("want 3 tab-separated fields, found 2")
	}
	if bytes.IndexByte(vsField, '\t') >= 0 {
		return nil, errors.New("want 3 tab-separated fields, found more")
	}
	ls, err := parseLabels(labelsField)
	if err != nil {
		return nil, fmt.Errorf("parse labels: %w", err)
	}
	ts, err := parseTimestamps(string(tsField))
	if err != nil {
		return nil, fmt.Errorf("parse timestamps of %s: %w", ls, err)
	}
	vs, err := parseValues(string(vsField))
	if err != nil {
		return nil, fmt.Errorf("parse values of %s: %w", ls, err)
	}
	if len(ts) != len(vs) {
		return nil, fmt.Errorf("series %s has %d timestamps but %d values", ls, len(ts), len(vs))
	}
	return &Series{Labels: ls, T: ts, V: vs}, nil
}

// parseLabels decodes the JSON object into a sorted label set. The format
// writes keys sorted; we sort anyway rather than check, because
// encoding/json into a map (what the format's README prescribes) loses the
// order.
func parseLabels(b []byte) (Labels, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("want a JSON object, got %q", truncate(b, 40))
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	ls := make(Labels, 0, len(m))
	for name, value := range m {
		ls = append(ls, Label{Name: name, Value: value})
	}
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	return ls, nil
}

// parseTimestamps resolves the delta encoding. An empty field is a series
// without samples.
func parseTimestamps(s string) ([]int64, error) {
	if s == "" {
		return nil, nil
	}
	ts := make([]int64, 0, strings.Count(s, ",")+1)
	var prev int64
	for i := 0; s != ""; i++ {
		var f string
		f, s, _ = strings.Cut(s, ",")
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("timestamp %d: %w", i, err)
		}
		if i > 0 {
			if n <= 0 {
				return nil, fmt.Errorf("timestamp %d: delta %d is not positive (timestamps must increase)", i, n)
			}
			if prev > math.MaxInt64-n {
				return nil, fmt.Errorf("timestamp %d: %d + delta %d overflows int64", i, prev, n)
			}
			n += prev
		}
		ts = append(ts, n)
		prev = n
	}
	return ts, nil
}

func parseValues(s string) ([]float64, error) {
	if s == "" {
		return nil, nil
	}
	vs := make([]float64, 0, strings.Count(s, ",")+1)
	for i := 0; s != ""; i++ {
		var f string
		f, s, _ = strings.Cut(s, ",")
		v, err := ParseValue(f)
		if err != nil {
			return nil, fmt.Errorf("value %d: %w", i, err)
		}
		vs = append(vs, v)
	}
	return vs, nil
}

// ParseValue parses one value: a decimal float (strconv.ParseFloat, which is
// bit-exact for FormatFloat's shortest form) or, for a NaN, "0x" and 16
// lower-case hex digits of its bits. A decimal "NaN" is rejected: it would
// lose the bits, and losing a staleness marker's bits turns it into data.
func ParseValue(s string) (float64, error) {
	if hex, ok := strings.CutPrefix(s, "0x"); ok {
		if len(hex) != 16 {
			return 0, fmt.Errorf("NaN %q: want 0x and 16 hex digits", s)
		}
		var bits uint64
		for i := 0; i < len(hex); i++ {
			c := hex[i]
			switch {
			case '0' <= c && c <= '9':
				c -= '0'
			case 'a' <= c && c <= 'f':
				c -= 'a' - 10
			default:
				return 0, fmt.Errorf("NaN %q: want lower-case hex digits", s)
			}
			bits = bits<<4 | uint64(c)
		}
		v := math.Float64frombits(bits)
		if !math.IsNaN(v) {
			return 0, fmt.Errorf("hex value %q is not a NaN; only NaNs use the hex form", s)
		}
		return v, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) {
		return 0, fmt.Errorf("value %q: NaN must be written as 0x and its 16 hex digits", s)
	}
	return v, nil
}

// FormatValue formats v as the format writes it; ParseValue(FormatValue(v))
// has the same bits as v.
func FormatValue(v float64) string { return string(AppendValue(nil, v)) }

// AppendValue appends FormatValue(v) to dst.
func AppendValue(dst []byte, v float64) []byte {
	if !math.IsNaN(v) {
		return strconv.AppendFloat(dst, v, 'g', -1, 64)
	}
	const digits = "0123456789abcdef"
	bits := math.Float64bits(v)
	dst = append(dst, "0x"...)
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[bits>>uint(shift)&0xf])
	}
	return dst
}

// WriteLine writes s as one line, newline included. It rejects a Series
// that ParseLine would not give back unchanged: unsorted or duplicate label
// names, invalid UTF-8, len(T) != len(V), or timestamps that do not strictly
// increase.
func WriteLine(w io.Writer, s *Series) error {
	if err := validate(s); err != nil {
		return fmt.Errorf("write series %s: %w", s.Labels, err)
	}
	b := make([]byte, 0, 64+len(s.Labels)*32+len(s.T)*8)
	b = append(b, '{')
	for i, l := range s.Labels {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, l.Name)
		b = append(b, ':')
		b = appendJSONString(b, l.Value)
	}
	b = append(b, "}\t"...)
	for i, t := range s.T {
		if i > 0 {
			b = append(b, ',')
			t -= s.T[i-1]
		}
		b = strconv.AppendInt(b, t, 10)
	}
	b = append(b, '\t')
	for i, v := range s.V {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendValue(b, v)
	}
	b = append(b, '\n')
	_, err := w.Write(b)
	return err
}

func validate(s *Series) error {
	for i, l := range s.Labels {
		if !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
			return fmt.Errorf("label %q has invalid UTF-8", l.Name)
		}
		if i > 0 && s.Labels[i-1].Name >= l.Name {
			return fmt.Errorf("label names not sorted and unique: %q then %q", s.Labels[i-1].Name, l.Name)
		}
	}
	if len(s.T) != len(s.V) {
		return fmt.Errorf("%d timestamps but %d values", len(s.T), len(s.V))
	}
	for i := 1; i < len(s.T); i++ {
		// The second test catches a delta that overflows int64.
		if s.T[i] <= s.T[i-1] || s.T[i]-s.T[i-1] <= 0 {
			return fmt.Errorf("timestamp %d (%d) not after timestamp %d (%d)", i, s.T[i], i-1, s.T[i-1])
		}
	}
	return nil
}

func appendJSONString(dst []byte, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic("BUG: json.Marshal of a string: " + err.Error())
	}
	return append(dst, b...)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
