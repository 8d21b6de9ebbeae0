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
