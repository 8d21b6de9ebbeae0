package write

import (
	"encoding/hex"
	"errors"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// goldenDelete is the fixed input of the delete_series format test: every
// matcher type, UTF-8 and a NUL in values, negative and extreme times.
func goldenDelete(t *testing.T) *DeleteSeries {
	t.Helper()
	var ms []*labels.Matcher
	for _, m := range []struct {
		typ         labels.MatchType
		name, value string
	}{
		{labels.MatchEqual, "__name__", "up"},
		{labels.MatchNotEqual, "job", "\x00→"},
		{labels.MatchRegexp, "instance", "a:.*|b:9100"},
		{labels.MatchNotRegexp, "mode", ""},
	} {
		ms = append(ms, labels.MustNewMatcher(m.typ, m.name, m.value))
	}
	return &DeleteSeries{Tenant: "tenant-ü", Matchers: ms, Start: -5, End: 1_700_000_000_000}
}

// TestDeleteGolden freezes the delete_series and tenant deletion
// encodings: a change needs a new version byte, a doc.go update and
// -rewrite, together.
func TestDeleteGolden(t *testing.T) {
	d := goldenDelete(t)
	checkGolden(t, "delete_series_v64.golden", hex.Dump(AppendDeleteSeries(nil, d)))
	got, err := DecodeDeleteSeries(readGolden(t, "delete_series_v64.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != d.String() {
		t.Errorf("decoded %s, want %s", got.String(), d.String())
	}
	checkGolden(t, "delete_tenant_v65.golden", hex.Dump(AppendDeleteTenant(nil, "tenant-ü")))
	tenant, err := DecodeDeleteTenant(readGolden(t, "delete_tenant_v65.golden"))
	if err != nil || tenant != "tenant-ü" {
		t.Errorf("decoded tenant %q, %v", tenant, err)
	}
	ret := Retain{Tenant: "tenant-ü", Before: 1_700_000_000_000}
	checkGolden(t, "retain_v66.golden", hex.Dump(AppendRetain(nil, ret)))
	if got, err := DecodeRetain(readGolden(t, "retain_v66.golden")); err != nil || got != ret {
		t.Errorf("decoded %+v, %v; want %+v", got, err, ret)
	}
	withPeriod := Retain{Tenant: "tenant-ü", Before: 1_700_000_000_000, Period: 90 * 86_400_000}
	checkGolden(t, "retain_period_v66.golden", hex.Dump(AppendRetain(nil, withPeriod)))
	if got, err := DecodeRetain(readGolden(t, "retain_period_v66.golden")); err != nil || got != withPeriod {
		t.Errorf("decoded %+v, %v; want %+v", got, err, withPeriod)
	}
	for _, bad := range [][]byte{
		{VersionRetain, 0, 0}, {VersionRetain, 1, 't'}, {VersionRetain, 1, 't', 0, 0}, // period 0
		{VersionRetain, 1, 't', 0, 1},    // period -1
		{VersionRetain, 1, 't', 0, 2, 0}, // trailing byte after the period
	} {
		if _, err := DecodeRetain(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeRetain(%x) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestDeleteRoundTrip(t *testing.T) {
	all := &DeleteSeries{Tenant: "t", Matchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "a", "b")}, Start: math.MinInt64, End: math.MaxInt64}
	got, err := DecodeDeleteSeries(AppendDeleteSeries(nil, all))
	if err != nil {
		t.Fatal(err)
	}
	if !got.All() || got.Start != math.MinInt64 || got.End != math.MaxInt64 {
		t.Errorf("range [%d, %d], want every time", got.Start, got.End)
	}
	if !IsDelete(AppendDeleteSeries(nil, all)) || !IsDelete(AppendDeleteTenant(nil, "t")) || !IsDelete(AppendRetain(nil, Retain{Tenant: "t"})) {
		t.Error("IsDelete false for a deletion")
	}
	if IsDelete(Append(nil, &Batch{Tenant: "t"})) || IsDelete(Compress(nil, Append(nil, &Batch{Tenant: "t"}))) || IsDelete(nil) {
		t.Error("IsDelete true for a batch")
	}
}

func TestDeleteDecodeErrors(t *testing.T) {
	good := AppendDeleteSeries(nil, goldenDelete(t))
	badRegex := AppendDeleteSeries(nil, &DeleteSeries{Tenant: "t", Matchers: []*labels.Matcher{{Type: labels.MatchEqual, Name: "a", Value: "("}}})
	badRegex[len(badRegex)-5] = byte(labels.MatchRegexp) // the type byte of the only matcher
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "not a delete_series entry"},
		{"batch", Append(nil, &Batch{Tenant: "t"}), "not a delete_series entry"},
		{"empty tenant", []byte{VersionDeleteSeries, 0}, "empty tenant"},
		{"truncated", good[:len(good)-1], "matcher value length"},
		{"trailing", append(append([]byte(nil), good...), 0), "1 trailing bytes"},
		{"no matchers", []byte{VersionDeleteSeries, 1, 't', 0, 0, 0}, "0 matchers"},
		{"end before start", []byte{VersionDeleteSeries, 1, 't', 2, 0, 1, 0, 1, 'a', 1, 'b'}, "end 0 before start 1"},
		{"unknown type", []byte{VersionDeleteSeries, 1, 't', 0, 0, 1, 9, 1, 'a', 1, 'b'}, "unknown matcher type 9"},
		{"bad regex", badRegex, "matcher: error parsing regexp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeDeleteSeries(tc.in)
			if !errors.Is(err, ErrCorrupt) || !contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrCorrupt saying %q", err, tc.want)
			}
		})
	}
	if _, err := DecodeDeleteTenant([]byte{VersionDeleteTenant, 0}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("empty tenant: %v", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
