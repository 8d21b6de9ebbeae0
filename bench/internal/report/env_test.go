package report

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMachine(t *testing.T) {
	m := Machine()
	require.Contains(t, m, "cores")
	require.Contains(t, m, "go1.")
}
