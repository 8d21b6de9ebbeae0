package tenant

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		id      string
		wantErr string
	}{
		{"simple", "team-a", ""},
		{"all-special", "a!-_.*'()Z9", ""},
		{"max-length", strings.Repeat("a", 150), ""},
		{"empty", "", "missing X-Scope-OrgID"},
		{"too-long", strings.Repeat("a", 151), "151 characters"},
		{"dot", ".", "not allowed"},
		{"dotdot", "..", "not allowed"},
		{"slash", "a/b", `unsupported character '/' at position 1`},
		{"pipe", "a|b", "tenant federation"},
		{"space", "a b", "unsupported character"},
		{"unicode", "é", "unsupported character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.id)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	_, err := FromRequest(r, true)
	require.ErrorIs(t, err, ErrMissing)
	id, err := FromRequest(r, false)
	require.NoError(t, err)
	require.Equal(t, Default, id)
	r.Header.Set(Header, "t1")
	id, err = FromRequest(r, true)
	require.NoError(t, err)
	require.Equal(t, "t1", id)
	id, err = FromRequest(r, false) // header ignored without multi-tenancy
	require.NoError(t, err)
	require.Equal(t, Default, id)
}

func TestParseSet(t *testing.T) {
	for _, tc := range []struct {
		name    string
		id      string
		want    []string
		wantErr string
	}{
		{"one", "a", []string{"a"}, ""},
		{"two", "b|a", []string{"a", "b"}, ""},
		{"duplicates", "b|a|b", []string{"a", "b"}, ""},
		{"empty", "", nil, "missing X-Scope-OrgID"},
		{"empty part", "a||b", nil, "empty tenant"},
		{"trailing", "a|", nil, "empty tenant"},
		{"bad part", "a|b/c", nil, "unsupported character '/'"},
		{"dot part", "a|..", nil, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSet(tc.id)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, got, Split(Join(got)))
		})
	}
}

func TestSetFromRequest(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	_, err := SetFromRequest(r, true)
	require.ErrorIs(t, err, ErrMissing)
	r.Header.Set(Header, "b|a")
	id, err := SetFromRequest(r, true)
	require.NoError(t, err)
	require.Equal(t, "a|b", id)
	_, err = FromRequest(r, true)
	require.ErrorContains(t, err, "tenant federation", "FromRequest names one tenant")
	id, err = SetFromRequest(r, false)
	require.NoError(t, err)
	require.Equal(t, Default, id)
	r.Header.Add(Header, "c")
	_, err = SetFromRequest(r, true)
	require.ErrorIs(t, err, ErrManyHeaders)
}
