package write

import (
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

func TestCheckLabels(t *testing.T) {
	for _, tc := range []struct {
		name string
		enc  string
		ok   bool
	}{
		{"one label", "a\xffb\xff", true},
		{"two labels", "a\xff1\xffb\xff2\xff", true},
		{"empty", "", false},
		{"empty value", "a\xff\xff", false},
		{"empty name", "\xffa\xff", false},
		{"unterminated name", "a", false},
		{"unterminated value", "a\xffb", false},
		{"unsorted names", "b\xff1\xffa\xff1\xff", false},
		{"duplicate names", "a\xff1\xffa\xff2\xff", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckLabels([]byte(tc.enc))
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrInvalidLabels)
			}
		})
	}
}

func TestForEachLabel(t *testing.T) {
	for _, tc := range []struct {
		name string
		enc  string
		want []string // name, value, ...
		ok   bool
	}{
		{"empty", "", nil, true},
		{"one", "a\xffb\xff", []string{"a", "b"}, true},
		{"two", "__name__\xffup\xffjob\xffx y\xff", []string{"__name__", "up", "job", "x y"}, true},
		{"unterminated name", "a\xffb\xffc", []string{"a", "b"}, false},
		{"unterminated value", "a\xffb", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := ForEachLabel(tc.enc, func(n, v string) { got = append(got, n, v) })
			require.Equal(t, tc.want, got)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrInvalidLabels)
			}
		})
	}
}

// TestLabelEncodingIsStableHashInput: the encoding of a label set is the
// input of Prometheus's labels.StableHash, so a series' hash is
// Prometheus's own.
func TestLabelEncodingIsStableHashInput(t *testing.T) {
	lset := labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "instance", "a:9100", "mode", "idle")
	var enc []byte
	lset.Range(func(l labels.Label) { enc = AppendLabel(enc, l.Name, l.Value) })
	require.NoError(t, CheckLabels(enc))
	var sb labels.ScratchBuilder
	got, err := DecodeLabels(&sb, string(enc))
	require.NoError(t, err)
	require.Equal(t, lset, got)
	require.Equal(t, AppendLabel([]byte(nil), "a", "b"), AppendLabel([]byte(nil), []byte("a"), []byte("b")))
	require.Equal(t, labels.StableHash(lset), xxhash.Sum64(enc))
}
