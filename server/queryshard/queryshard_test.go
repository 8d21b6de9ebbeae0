package queryshard

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Shard
		err  bool
	}{
		{"1_of_1", Shard{0, 1}, false},
		{"3_of_16", Shard{2, 16}, false},
		{"16_of_16", Shard{15, 16}, false},
		{"0_of_16", Shard{}, true},
		{"17_of_16", Shard{}, true},
		{"1_of_129", Shard{}, true},
		{"1of2", Shard{}, true},
		{"a_of_2", Shard{}, true},
		{"", Shard{}, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err {
				require.ErrorIs(t, err, ErrBadSelector)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.in, got.String())
		})
	}
}

func TestFromMatchers(t *testing.T) {
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	rest, s, ok, err := FromMatchers([]*labels.Matcher{name, Shard{1, 4}.Matcher()})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, Shard{1, 4}, s)
	require.Equal(t, []*labels.Matcher{name}, rest)

	rest, _, ok, err = FromMatchers([]*labels.Matcher{name})
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, []*labels.Matcher{name}, rest)

	_, _, _, err = FromMatchers([]*labels.Matcher{name, Shard{1, 4}.Matcher(), Shard{2, 4}.Matcher()})
	require.ErrorIs(t, err, ErrBadSelector)
	_, _, _, err = FromMatchers([]*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, Label, "1_of_2")})
	require.ErrorIs(t, err, ErrBadSelector)
}

// TestShardsPartition: the shards of n hold every series exactly once.
func TestShardsPartition(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 16} {
		counts := make([]int, n)
		for i := range 1000 {
			lset := labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
			holders := 0
			for k := range n {
				if (Shard{k, n}).Holds(lset) {
					holders++
					counts[k]++
				}
			}
			require.Equal(t, 1, holders)
		}
		for _, c := range counts {
			require.Greater(t, c, 1000/int(n)/2, "shards of %d are balanced: %v", n, counts)
		}
	}
}
