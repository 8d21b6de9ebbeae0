package engine

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPartitions(t *testing.T) {
	for _, tc := range []struct {
		t, width int64
		part     int64 // relative to 2^31
		end      int64
	}{
		{0, 1000, 0, 1000},
		{999, 1000, 0, 1000},
		{1000, 1000, 1, 2000},
		{-1, 1000, -1, 0},
		{-1000, 1000, -1, 0},
		{-1001, 1000, -2, -1000},
		{math.MaxInt64, 1, math.MaxUint32 - 1<<31, math.MaxInt64},
		{math.MinInt64, 1, -1 << 31, -(1 << 31) + 1},
		{math.MaxInt64, 86_400_000, 1<<31 - 1, math.MaxInt64}, // clamped
	} {
		t.Run(fmt.Sprint(tc.t, "/", tc.width), func(t *testing.T) {
			p := partitionOf(tc.t, tc.width)
			require.Equal(t, tc.part, int64(p)-1<<31)
			require.Equal(t, tc.end, partitionEnd(p, tc.width))
		})
	}
}
