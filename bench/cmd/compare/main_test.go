package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Error(t, run([]string{"-no-such-flag"}, &stdout, &stderr))
}

func TestStartMissingBinary(t *testing.T) {
	_, err := startMyelin(t.Context(), "/nonexistent/myelin", t.TempDir())
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "start myelin"), err.Error())
}
