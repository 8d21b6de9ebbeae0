package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// indexReader reads one tenant's index (series, postings) from a Pebble
// iterator over a snapshot. Not safe for concurrent use.
type indexReader struct {
	ks  keyspace
	it  *pebble.Iterator // bounded to the tenant's keys
	key []byte
	val []byte
}

// partitions calls f for every partition in [p0, p1] that has postings, in
// order, skipping empty ones with one seek.
func (r *indexReader) partitions(p0, p1 uint32, f func(p uint32) error) error {
	lo := appendPrefix(nil, r.ks.group, r.ks.tenant, kindPostings)
	for p := uint64(p0); p <= uint64(p1); p++ {
		r.key = r.ks.postingsPart(r.key[:0], uint32(p))
		if !r.it.SeekGE(r.key) {
			break
		}
		k := r.it.Key()
		if len(k) < prefixLen+4 || !bytes.HasPrefix(k, lo) {
			break
		}
		p = uint64(binary.BigEndian.Uint32(k[prefixLen:]))
		if p > uint64(p1) {
			break
		}
		if err := f(uint32(p)); err != nil {
			return err
		}
	}
	return r.it.Error()
}

// valueFilter selects label values of one name.
type valueFilter struct {
	literals []string          // non-nil: exactly these values
	prefix   string            // otherwise: values with this prefix ...
	match    func(string) bool // ... for which match is true; nil: all
}

// filterFor turns a matcher into the label values whose postings to read.
// If negate is false the series matching m are the union of those
// postings; if true they are all series minus that union (m matches the
// empty value, so series without the label match: Prometheus's semantics
// of foo="", foo!="bar", foo=~"a|").
//
// Fast paths, as in Prometheus's PostingsForMatchers: = and != read one
// postings list; regexes that are a set of literals (a|b|c) read those
// lists; a regex with a literal prefix (foo.*) scans only values with that
// prefix. Other regexes scan the name's values, testing each value once.
func filterFor(m *labels.Matcher) (f valueFilter, negate bool) {
	if !m.Matches("") {
		switch m.Type {
		case labels.MatchEqual:
			return valueFilter{literals: []string{m.Value}}, false
		case labels.MatchRegexp:
			if sm := m.SetMatches(); len(sm) > 0 {
				return valueFilter{literals: sm}, false
			}
			return valueFilter{prefix: m.Prefix(), match: m.Matches}, false
		case labels.MatchNotEqual: // foo!="": any value
			return valueFilter{}, false
		default:
			return valueFilter{match: m.Matches}, false
		}
	}
	switch m.Type {
	case labels.MatchNotEqual:
		return valueFilter{literals: []string{m.Value}}, true
	case labels.MatchEqual: // foo="": series without the label
		return valueFilter{}, true
	case labels.MatchNotRegexp:
		if inv, err := m.Inverse(); err == nil {
			if sm := inv.SetMatches(); len(sm) > 0 {
				return valueFilter{literals: sm}, true
			}
			return valueFilter{prefix: inv.Prefix(), match: inv.Matches}, true
		}
	}
	return valueFilter{match: func(v string) bool { return !m.Matches(v) }}, true
}

// postingsForMatchers returns the sorted ids of the series in partition p
// that match all of ms.
func (r *indexReader) postingsForMatchers(p uint32, ms []*labels.Matcher) ([]uint64, error) {
	var pos, neg [][]uint64
	// Matchers of one literal value (foo="bar") are intersected by
	// leapfrogging over their postings with seeks instead of reading every
	// list whole: selecting one series by its full label set then costs a
	// few seeks, not a read of its job's and metric's whole lists (which
	// made a 1-series select 20x slower than Prometheus's in
	// BenchmarkEngineSelect). Large results cost a seek per list per
	// series instead of a Next; small next to reading their chunks.
	var lits [][]byte
	for _, m := range ms {
		if f, negate := filterFor(m); !negate && len(f.literals) == 1 {
			lits = append(lits, r.ks.postingsValue(nil, p, m.Name, f.literals[0]))
		}
	}
	if len(lits) >= 2 {
		ids, err := r.leapfrog(lits)
		if err != nil || len(ids) == 0 {
			return nil, err
		}
		pos = append(pos, ids)
	}
	for _, m := range ms {
		f, negate := filterFor(m)
		if len(lits) >= 2 && !negate && len(f.literals) == 1 {
			continue // in the leapfrog result
		}
		ids, err := r.valuePostings(p, m.Name, f)
		if err != nil {
			return nil, err
		}
		if negate {
			neg = append(neg, ids)
			continue
		}
		if len(ids) == 0 {
			return nil, nil
		}
		pos = append(pos, ids)
	}
	if len(pos) == 0 {
		all, err := r.valuePostings(p, "", valueFilter{literals: []string{""}})
		if err != nil {
			return nil, err
		}
		pos = append(pos, all)
	}
	return combine(pos, neg), nil
}

// combine returns the ids in every list of pos (at least one) and in no
// list of neg, all sorted. It reuses the lists of pos.
func combine(pos, neg [][]uint64) []uint64 {
	slices.SortFunc(pos, func(a, b []uint64) int { return len(a) - len(b) })
	res := pos[0]
	for _, l := range pos[1:] {
		res = intersect(res, l)
	}
	for _, l := range neg {
		res = subtract(res, l)
	}
	return res
}

// leapfrog returns the sorted ids present in every postings list, each
// list given by its key prefix (postingsValue). It seeks each list in turn
// to the current candidate id; a list that lands past it raises the
// candidate, and a candidate all lists agree on is emitted.
func (r *indexReader) leapfrog(prefixes [][]byte) ([]uint64, error) {
	var ids []uint64
	var cand uint64
	agree := 0
	for i := 0; ; i = (i + 1) % len(prefixes) {
		pre := prefixes[i]
		r.key = binary.BigEndian.AppendUint64(append(r.key[:0], pre...), cand)
		if !r.it.SeekGE(r.key) || !bytes.HasPrefix(r.it.Key(), pre) {
			return ids, r.it.Error() // this list is exhausted
		}
		k := r.it.Key()
		if len(k) != len(pre)+8 {
			return nil, fmt.Errorf("postings key %x: bad length", k)
		}
		id := binary.BigEndian.Uint64(k[len(pre):])
		if id != cand {
			cand, agree = id, 1
			continue
		}
		if agree++; agree < len(prefixes) {
			continue
		}
		ids = append(ids, cand)
		if cand == math.MaxUint64 {
			return ids, nil
		}
		cand, agree = cand+1, 0
	}
}

// valuePostings returns the sorted union of the postings of name=v in
// partition p over the values v selected by f. name "" with literal ""
// is the list of all series.
func (r *indexReader) valuePostings(p uint32, name string, f valueFilter) ([]uint64, error) {
	var ids []uint64
	if f.literals != nil {
		for _, v := range f.literals {
			r.key = r.ks.postingsValue(r.key[:0], p, name, v)
			n := len(r.key)
			for ok := r.it.SeekGE(r.key); ok && bytes.HasPrefix(r.it.Key(), r.key); ok = r.it.Next() {
				k := r.it.Key()
				if len(k) != n+8 {
					return nil, fmt.Errorf("postings key %x: bad length", k)
				}
				ids = append(ids, binary.BigEndian.Uint64(k[n:]))
			}
		}
		if len(f.literals) > 1 {
			slices.Sort(ids)
		}
		return ids, r.it.Error()
	}
	r.key = r.ks.postingsName(r.key[:0], p, name)
	nameLen := len(r.key)
	r.key = appendEscapedPrefix(r.key, f.prefix)
	lo := append([]byte(nil), r.key...)
	var cur []byte // escaped value of the current run of keys
	var take bool
	ok := r.it.SeekGE(lo)
	for ok && bytes.HasPrefix(r.it.Key(), lo) {
		k := r.it.Key()
		if len(k) < nameLen+2+8 {
			return nil, fmt.Errorf("postings key %x: bad length", k)
		}
		esc := k[nameLen : len(k)-8]
		if cur == nil || !bytes.Equal(esc, cur) {
			cur = append(cur[:0], esc...)
			var err error
			if r.val, _, err = readEscaped(r.val[:0], esc); err != nil {
				return nil, fmt.Errorf("postings key %x: %w", k, err)
			}
			take = f.match == nil || f.match(string(r.val))
			if !take {
				// Skip the value's postings with one seek.
				ok = r.it.SeekGE(successor(k[:len(k)-8]))
				continue
			}
		}
		ids = append(ids, binary.BigEndian.Uint64(k[len(k)-8:]))
		ok = r.it.Next()
	}
	slices.Sort(ids)
	return ids, r.it.Error()
}

// labelNames appends the label names with postings in partition p.
func (r *indexReader) labelNames(dst map[string]struct{}, p uint32) error {
	return r.distinct(r.ks.postingsPart(nil, p), func(name []byte) {
		if len(name) > 0 { // "" holds the all-series postings
			addString(dst, name)
		}
	})
}

// labelValues adds the values of name with postings in partition p.
func (r *indexReader) labelValues(dst map[string]struct{}, p uint32, name string) error {
	return r.distinct(r.ks.postingsName(nil, p, name), func(v []byte) { addString(dst, v) })
}

// distinct calls fn with every distinct escaped string that follows the key
// prefix lo, unescaped, in key order, skipping the rest of each run of keys
// with one seek. fn must not retain its argument.
func (r *indexReader) distinct(lo []byte, fn func([]byte)) error {
	ok := r.it.SeekGE(lo)
	for ok && bytes.HasPrefix(r.it.Key(), lo) {
		k := r.it.Key()
		rest, err := skipEscaped(k[len(lo):])
		if err != nil {
			return fmt.Errorf("postings key %x: %w", k, err)
		}
		end := len(k) - len(rest)
		if r.val, _, err = readEscaped(r.val[:0], k[len(lo):end]); err != nil {
			return fmt.Errorf("postings key %x: %w", k, err)
		}
		fn(r.val)
		ok = r.it.SeekGE(successor(k[:end]))
	}
	return r.it.Error()
}

// addString adds b to the set, copying it only when it is new.
func addString(dst map[string]struct{}, b []byte) {
	if _, ok := dst[string(b)]; !ok {
		dst[string(b)] = struct{}{}
	}
}

// labels returns the encoded labels of series id. The slice is valid until
// the next call.
func (r *indexReader) labels(id uint64) ([]byte, error) {
	r.key = r.ks.seriesKey(r.key[:0], id)
	if !r.it.SeekGE(r.key) || !bytes.Equal(r.it.Key(), r.key) {
		if err := r.it.Error(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("series %d: labels not found", id)
	}
	v, err := r.it.ValueAndErr()
	if err != nil {
		return nil, err
	}
	r.val = append(r.val[:0], v...)
	return r.val, nil
}

// intersect returns the ids in both sorted lists, reusing a. When b is
// much longer than a (one series' matchers against a job's list) it
// searches b for each id of a instead of reading all of it.
func intersect(a, b []uint64) []uint64 {
	out := a[:0]
	if len(b) > 16*len(a) {
		for _, x := range a {
			i, found := slices.BinarySearch(b, x)
			if found {
				out = append(out, x)
			}
			b = b[i:]
		}
		return out
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// subtract returns the ids of sorted a not in sorted b, reusing a.
func subtract(a, b []uint64) []uint64 {
	out := a[:0]
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j < len(b) && b[j] == x {
			continue
		}
		out = append(out, x)
	}
	return out
}
