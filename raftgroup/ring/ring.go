package ring

import (
	"fmt"
	"math"
	"slices"
)

// Token is one ring token: Group owns the hashes in (previous token, Token].
type Token struct {
	Token uint64
	Group GroupID
}

// Ring maps hashes to groups. A Ring is immutable once built and safe for
// concurrent use.
//
// INVARIANT: tokens are strictly increasing, the last is math.MaxUint64
// (so every hash has a token at or above it and lookup never wraps in a
// ring built here), and no two adjacent tokens name the same group.
type Ring struct {
	tokens []uint64
	owner  []uint32  // owner[i]: index in groups of the owner of tokens[i]
	groups []GroupID // the groups owning a token, sorted
}

// NewRing builds a ring from tokens, which it checks against the
// invariant above. It copies tokens.
func NewRing(tokens []Token) (*Ring, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("build ring: %w: no tokens", ErrInvalidState)
	}
	for i := range tokens {
		if i > 0 && tokens[i].Token <= tokens[i-1].Token {
			return nil, fmt.Errorf("build ring: %w: token %d at %d not above %d", ErrInvalidState, tokens[i].Token, i, tokens[i-1].Token)
		}
		if i > 0 && tokens[i].Group == tokens[i-1].Group {
			return nil, fmt.Errorf("build ring: %w: tokens %d and %d both of group %d", ErrInvalidState, i-1, i, tokens[i].Group)
		}
	}
	if last := tokens[len(tokens)-1].Token; last != math.MaxUint64 {
		return nil, fmt.Errorf("build ring: %w: last token %d is not the maximum", ErrInvalidState, last)
	}
	r := &Ring{tokens: make([]uint64, len(tokens)), owner: make([]uint32, len(tokens))}
	for _, t := range tokens {
		r.groups = append(r.groups, t.Group)
	}
	slices.Sort(r.groups)
	r.groups = slices.Compact(r.groups)
	for i, t := range tokens {
		r.tokens[i] = t.Token
		j, _ := slices.BinarySearch(r.groups, t.Group)
		r.owner[i] = uint32(j)
	}
	return r, nil
}

// Lookup returns the group owning hash h: the owner of the first token
// >= h, wrapping to the first token.
func (r *Ring) Lookup(h uint64) GroupID { return r.groups[r.LookupIndex(h)] }

// LookupIndex is Lookup as an index in Groups(): callers that bucket
// series by group use it to index a slice instead of a map.
func (r *Ring) LookupIndex(h uint64) int {
	lo, _ := slices.BinarySearch(r.tokens, h) // the first token >= h
	if lo == len(r.tokens) {
		lo = 0
	}
	return int(r.owner[lo])
}

// Groups returns the groups that own tokens, sorted. The slice is the
// ring's: do not modify it.
func (r *Ring) Groups() []GroupID { return r.groups }

// NumGroups is len(Groups()).
func (r *Ring) NumGroups() int { return len(r.groups) }

// Tokens returns a copy of the ring's tokens in order.
func (r *Ring) Tokens() []Token {
	out := make([]Token, len(r.tokens))
	for i, t := range r.tokens {
		out[i] = Token{Token: t, Group: r.groups[r.owner[i]]}
	}
	return out
}

// Ownership returns the size of the hash range each group owns, indexed
// like Groups(). Sizes sum to math.MaxUint64 (the range below the first
// token counts one hash short, which no balance notices).
func (r *Ring) Ownership() []uint64 {
	out := make([]uint64, len(r.groups))
	lo := uint64(0)
	for i, t := range r.tokens {
		out[r.owner[i]] += t - lo
		lo = t
	}
	return out
}

// equal reports whether two rings have the same tokens and owners.
func (r *Ring) equal(o *Ring) bool {
	return slices.Equal(r.tokens, o.tokens) && slices.Equal(r.owner, o.owner) && slices.Equal(r.groups, o.groups)
}

// withGroup returns the ring after adding group g as the n-th group (n =
// number of groups afterwards), or a ring of g alone if r is nil.
//
// Every group owned 1/(n-1) of the hash space; g takes from each exactly
// its excess over 1/n, from the low end of its ranges in token order, so
// afterwards every group owns 1/n (up to rounding of a few hashes) and the
// only series that move are the ones g takes: the minimum movement for an
// even split. Rejected: random tokens per group (Cortex's scheme), whose
// load varies by ~1/sqrt(tokens) (12% at 64 tokens) and moves series
// between old groups too. The cost is tokens: g gets one or more per
// donor, so n groups have O(n^2/2) tokens (5,000 at 100 groups, 60 KB).
func (r *Ring) withGroup(g GroupID) *Ring {
	if r == nil {
		return &Ring{tokens: []uint64{math.MaxUint64}, owner: []uint32{0}, groups: []GroupID{g}}
	}
	n := uint64(len(r.groups) + 1)
	target := uint64(math.MaxUint64) / n
	owned := r.Ownership()
	excess := make([]uint64, len(owned))
	for i, o := range owned {
		if o > target {
			excess[i] = o - target
		}
	}
	need := target
	out := make([]Token, 0, len(r.tokens)+len(r.groups)+1)
	lo := uint64(0)
	for i, t := range r.tokens {
		o := r.owner[i]
		old := r.groups[o]
		if need > 0 && excess[o] > 0 {
			w := t - lo
			take := min(excess[o], need)
			if take >= w {
				out = append(out, Token{t, g})
				excess[o] -= w
				need -= w
			} else {
				out = append(out, Token{lo + take, g}, Token{t, old})
				excess[o] -= take
				need -= take
			}
		} else {
			out = append(out, Token{t, old})
		}
		lo = t
	}
	// Merge runs of one group: keep the highest token of a run (the last
	// token, MaxUint64, always stays).
	merged := out[:0]
	for i, t := range out {
		if i+1 < len(out) && out[i+1].Group == t.Group {
			continue
		}
		merged = append(merged, t)
	}
	nr, err := NewRing(merged)
	if err != nil {
		panic(fmt.Sprintf("BUG: withGroup(%d) built a bad ring: %v", g, err))
	}
	return nr
}
