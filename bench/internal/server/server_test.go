package server

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStartMissingBinary(t *testing.T) {
	_, err := StartMyelin(t.Context(), "/nonexistent/myelin", t.TempDir())
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "start myelin"), err.Error())
}
