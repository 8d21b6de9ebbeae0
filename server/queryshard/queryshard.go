package queryshard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Label is the name of the shard selector's label, Mimir's.
const Label = "__query_shard__"

// MaxShards bounds n: every shard is a query of its own.
const MaxShards = 128

// ErrBadSelector: a shard selector that is not "<i>_of_<n>" with
// 1 <= i <= n <= MaxShards, or not an equality matcher, or one of
// several.
var ErrBadSelector = errors.New("queryshard: bad shard selector")

// Shard is shard Index (0-based, as in storage.SelectHints) of Count.
type Shard struct {
	Index, Count uint64
}

// String is the selector's value: "<Index+1>_of_<Count>".
func (s Shard) String() string {
	return strconv.FormatUint(s.Index+1, 10) + "_of_" + strconv.FormatUint(s.Count, 10)
}

// Matcher is the shard's selector.
func (s Shard) Matcher() *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchEqual, Label, s.String())
}

// Holds reports whether a series of these labels is in the shard.
func (s Shard) Holds(lset labels.Labels) bool {
	return labels.StableHash(lset)%s.Count == s.Index
}

// Parse reads a selector's value.
func Parse(v string) (Shard, error) {
	is, ns, ok := strings.Cut(v, "_of_")
	if !ok {
		return Shard{}, fmt.Errorf("%w: %q", ErrBadSelector, v)
	}
	i, err1 := strconv.ParseUint(is, 10, 64)
	n, err2 := strconv.ParseUint(ns, 10, 64)
	if err1 != nil || err2 != nil || i < 1 || i > n || n > MaxShards {
		return Shard{}, fmt.Errorf("%w: %q", ErrBadSelector, v)
	}
	return Shard{Index: i - 1, Count: n}, nil
}

// FromMatchers takes the shard selector out of a select's matchers: ms
// without it, the shard, and whether there was one.
func FromMatchers(ms []*labels.Matcher) (rest []*labels.Matcher, s Shard, ok bool, err error) {
	for i, m := range ms {
		if m == nil || m.Name != Label {
			continue
		}
		if ok {
			return nil, Shard{}, false, fmt.Errorf("%w: more than one", ErrBadSelector)
		}
		if m.Type != labels.MatchEqual {
			return nil, Shard{}, false, fmt.Errorf("%w: %s", ErrBadSelector, m)
		}
		if s, err = Parse(m.Value); err != nil {
			return nil, Shard{}, false, err
		}
		ok = true
		rest = append(append(make([]*labels.Matcher, 0, len(ms)-1), ms[:i]...), ms[i+1:]...)
	}
	if !ok {
		return ms, Shard{}, false, nil
	}
	return rest, s, true, nil
}
