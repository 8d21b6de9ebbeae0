package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Error(t, run([]string{"-no-such-flag"}, &stdout, &stderr))
}
