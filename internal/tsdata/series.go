package tsdata

import (
	"strconv"
	"strings"
)

// Label is one label pair of a series.
type Label struct {
	Name, Value string
}

// Labels is a label set sorted by name, names unique.
type Labels []Label

// Series is one line of a tsdata file: a label set and its samples.
// INVARIANT (for a Series returned by ParseLine or ReadFile): Labels is
// sorted by name with unique names, len(T) == len(V), and T is strictly
// increasing.
type Series struct {
	Labels Labels
	T      []int64   // sample times, ms since the Unix epoch
	V      []float64 // sample values; NaNs keep their exact bits
}

// String returns the Prometheus form of the series' labels, as
// labels.Labels.String does: {__name__="up", job="node"}.
func (s *Series) String() string { return s.Labels.String() }

// String returns the label set in Prometheus form: {a="b", c="d"}. Values are
// Go-quoted; a name is quoted only if it is not a legacy Prometheus label name
// ([a-zA-Z_][a-zA-Z0-9_]*), matching Prometheus v0.314's labels.Labels.String.
// The README's shared/hold-out split hashes exactly this form.
func (ls Labels) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		if isLegacyName(l.Name) {
			b.WriteString(l.Name)
		} else {
			b.WriteString(strconv.Quote(l.Name))
		}
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// Get returns the value of the label name, or "" if there is none.
func (ls Labels) Get(name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

func isLegacyName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || (i > 0 && '0' <= c && c <= '9') {
			continue
		}
		return false
	}
	return true
}
