package write

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// LabelSep ends each name and each value in the label set encoding. It
// never occurs in valid UTF-8, so it cannot occur in a valid label name or
// value.
const LabelSep = 0xff

// ErrInvalidLabels: a label set that is empty, unsorted, has a duplicate
// or empty label name, or an empty value, or an encoded label set that
// does not decode. As a refusal (Refusal.Err), the series' samples were
// not written.
var ErrInvalidLabels = errors.New("write: invalid label set")

// AppendLabel appends one label to an encoded label set: name, LabelSep,
// value, LabelSep. A label set is its labels in name order (doc.go,
// "Label set encoding"); the encoding is the identity of a series (equal
// label sets have equal bytes) and the input of labels.StableHash, so a
// series' hash is Prometheus's own.
func AppendLabel[S string | []byte](dst []byte, name, value S) []byte {
	dst = append(dst, name...)
	dst = append(dst, LabelSep)
	dst = append(dst, value...)
	return append(dst, LabelSep)
}

// ForEachLabel calls f for each label of an encoded label set, in order.
// The strings alias enc. It checks only that every name and value is
// terminated (an error wraps ErrInvalidLabels), not the rest of
// CheckLabels: it reads label sets that were checked when they were
// stored.
func ForEachLabel(enc string, f func(name, value string)) error {
	for len(enc) > 0 {
		i := strings.IndexByte(enc, LabelSep)
		if i < 0 {
			return fmt.Errorf("decode labels: name not terminated: %w", ErrInvalidLabels)
		}
		j := strings.IndexByte(enc[i+1:], LabelSep)
		if j < 0 {
			return fmt.Errorf("decode labels: value not terminated: %w", ErrInvalidLabels)
		}
		f(enc[:i], enc[i+1:i+1+j])
		enc = enc[i+2+j:]
	}
	return nil
}

// DecodeLabels returns the label set enc encodes, built with sb (reused
// across calls by a caller that decodes many). It checks what ForEachLabel
// checks.
func DecodeLabels(sb *labels.ScratchBuilder, enc string) (labels.Labels, error) {
	sb.Reset()
	if err := ForEachLabel(enc, func(n, v string) { sb.Add(n, v) }); err != nil {
		return labels.EmptyLabels(), err
	}
	return sb.Labels(), nil
}

// CheckLabels returns an error wrapping ErrInvalidLabels unless enc is a
// valid encoded label set (AppendLabel): at least one label, names strictly
// increasing, names and values non-empty. (They cannot hold LabelSep: it
// ends them.)
func CheckLabels(enc []byte) error {
	if len(enc) == 0 {
		return fmt.Errorf("no labels: %w", ErrInvalidLabels)
	}
	var prev []byte
	for len(enc) > 0 {
		i := bytes.IndexByte(enc, LabelSep)
		if i < 0 {
			return fmt.Errorf("label name not terminated: %w", ErrInvalidLabels)
		}
		name := enc[:i]
		j := bytes.IndexByte(enc[i+1:], LabelSep)
		if j < 0 {
			return fmt.Errorf("label %q: value not terminated: %w", name, ErrInvalidLabels)
		}
		switch {
		case i == 0:
			return fmt.Errorf("empty label name: %w", ErrInvalidLabels)
		case j == 0:
			return fmt.Errorf("label %q: empty value: %w", name, ErrInvalidLabels)
		case prev != nil && string(name) <= string(prev):
			return fmt.Errorf("label %q after %q: names not strictly increasing: %w", name, prev, ErrInvalidLabels)
		}
		prev = name
		enc = enc[i+2+j:]
	}
	return nil
}
