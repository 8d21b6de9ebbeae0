package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Start timestamps (doc.go, "Start timestamps"; docs/design.md, "Start
// timestamps (issue 16 item 3)").
//
// A sample's start timestamp (ST) is kept beside the chunks, not in them:
// per series and partition, rules under 'S' keys say which ST the samples
// from a time on have, and points give the ST of one out-of-order sample:
//
//	[g][t]'S' part:4 id:8 0x00 t:8 -> mode:byte param:varint   a rule
//	[g][t]'S' part:4 id:8 0x01 t:8 -> st:varint                a point
//
// The ST of a sample at t is its point's if it has one, else that of the
// newest rule at or before t in t's partition (st = param for mode
// stAbsolute, t - param for stOffset, 0 for stNone), else 0 (none). A
// counter's constant ST is one rule per partition and reset; an OTel
// delta's (ST = the previous sample's time) at a steady interval is one
// offset rule. Chunks, their seals, merges, out-of-order re-encodes and
// range rewrites do not change: every path that moves samples between
// chunks keeps their times, and the STs hang on the times.

// Rule modes: how a rule's param gives the ST of a sample at t.
const (
	stNone     byte = 0 // 0: the sender gave none
	stAbsolute byte = 1 // param
	stOffset   byte = 2 // t - param
)

// Key sub-kinds after the series id.
const (
	stRuleKey  byte = 0
	stPointKey byte = 1
)

// stRule is a rule's mode and param.
type stRule struct {
	mode  byte
	param int64
}

// at is the ST the rule gives a sample at t.
func (r stRule) at(t int64) int64 {
	switch r.mode {
	case stAbsolute:
		return r.param
	case stOffset:
		return t - r.param
	}
	return 0
}

// stCache is what a head series knows of its rules: the rule in force at
// its newest in-order sample, in partition part. INVARIANT: it is the
// newest rule at or before that sample in part, as Pebble (with the apply
// batch) holds it; memSeries.stKnown false means nothing is known and
// Pebble is read.
type stCache struct {
	part uint32
	rule stRule
}

func (k keyspace) stSeries(dst []byte, part uint32, id uint64) []byte {
	dst = binary.BigEndian.AppendUint32(appendPrefix(dst, k.group, k.tenant, kindST), part)
	return binary.BigEndian.AppendUint64(dst, id)
}

func (k keyspace) stKey(dst []byte, part uint32, id uint64, sub byte, t int64) []byte {
	return appendTime(append(k.stSeries(dst, part, id), sub), t)
}

func (k keyspace) stPart(dst []byte, part uint32) []byte {
	return binary.BigEndian.AppendUint32(appendPrefix(dst, k.group, k.tenant, kindST), part)
}

func appendRule(dst []byte, r stRule) []byte {
	return binary.AppendVarint(append(dst, r.mode), r.param)
}

func decodeRule(v []byte) (stRule, error) {
	if len(v) < 2 || v[0] > stOffset {
		return stRule{}, fmt.Errorf("start timestamp rule %x: bad mode", v)
	}
	p, n := binary.Varint(v[1:])
	if n <= 0 || 1+n != len(v) {
		return stRule{}, fmt.Errorf("start timestamp rule %x: bad param", v)
	}
	return stRule{mode: v[0], param: p}, nil
}

func decodePoint(v []byte) (int64, error) {
	st, n := binary.Varint(v)
	if n <= 0 || n != len(v) {
		return 0, fmt.Errorf("start timestamp point %x: bad value", v)
	}
	return st, nil
}

// stOf is the start timestamp of sample k of a batch series with start
// timestamps sts (nil: none).
func stOf(sts []int64, k int) int64 {
	if sts == nil {
		return 0
	}
	return sts[k]
}

// ruleFor is the rule for a new rule starting at a sample at t with start
// timestamp st, the series' previous sample at prevT (minTime if none):
// an offset rule when st is the previous sample's time (OTel's deltas,
// whose next sample then follows it at a steady interval), else a
// constant.
func ruleFor(t, st, prevT int64) stRule {
	switch {
	case st == 0:
		return stRule{}
	case prevT != minTime && st == prevT:
		return stRule{mode: stOffset, param: t - st}
	}
	return stRule{mode: stAbsolute, param: st}
}

// coveringRule reads the newest rule of series id at or before t in
// partition p from r (the apply batch, or Pebble), stNone if there is
// none.
func coveringRule(r pebble.Reader, ks keyspace, p uint32, id uint64, t int64) (stRule, error) {
	lo := append(ks.stSeries(nil, p, id), stRuleKey)
	hi := append(ks.stKey(nil, p, id, stRuleKey, t), 0) // every key at t or before
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return stRule{}, err
	}
	var rule stRule
	if it.Last() {
		if rule, err = decodeRule(it.Value()); err != nil {
			err = fmt.Errorf("key %x: %w", it.Key(), err)
		}
	}
	return rule, errors.Join(err, it.Error(), it.Close())
}

// noteSTLocked records the start timestamp st of the in-order sample at t
// just appended to s, whose previous newest sample was at prevT (minTime
// for none): a rule at t when the rule in force does not give st. A
// tenant that never had an ST skips it all (its series pay one flag
// test per sample).
func (a *appender) noteSTLocked(s *memSeries, t, st, prevT int64) error {
	tn := a.t
	if st == 0 && !tn.mu.hasST {
		return nil
	}
	p := partitionOf(t, a.g.db.partitionMs)
	var cur stRule
	switch {
	case s.stKnown && s.st != nil && s.st.part == p:
		cur = s.st.rule
	case s.stKnown:
		// No rule in this partition: a rule never spans partitions, so
		// that retention drops STs with the chunks.
	default:
		var err error
		if cur, err = coveringRule(a.pb, tn.ks, p, s.id, t); err != nil {
			return fmt.Errorf("start timestamps of series %d: %w", s.id, err)
		}
	}
	if cur.at(t) != st {
		cur = ruleFor(t, st, prevT)
		if err := a.pb.Set(tn.ks.stKey(a.scratch.key[:0], p, s.id, stRuleKey, t), appendRule(a.scratch.val[:0], cur), nil); err != nil {
			return err
		}
		if err := a.markSTLocked(); err != nil {
			return err
		}
	}
	s.stKnown = true
	if cur.mode == stNone {
		s.st = nil
	} else {
		if s.st == nil {
			s.st = &stCache{}
		}
		*s.st = stCache{part: p, rule: cur}
	}
	return nil
}

// notePointSTLocked records the start timestamp st of the out-of-order
// sample at t just accepted into s: a point at t when the rule in force
// at t does not give st. Rules are written by in-order samples only,
// at times after every sample then, so the rule at t is the same on a
// replay that sees later entries' keys.
func (a *appender) notePointSTLocked(s *memSeries, t, st int64) error {
	tn := a.t
	if st == 0 && !tn.mu.hasST {
		return nil
	}
	p := partitionOf(t, a.g.db.partitionMs)
	cur, err := coveringRule(a.pb, tn.ks, p, s.id, t)
	if err != nil {
		return fmt.Errorf("start timestamps of series %d: %w", s.id, err)
	}
	k := tn.ks.stKey(a.scratch.key[:0], p, s.id, stPointKey, t)
	if cur.at(t) == st {
		// A point left by an earlier sample at t (deleted since) must not
		// stay.
		return a.pb.Delete(k, nil)
	}
	if err := a.pb.Set(k, binary.AppendVarint(a.scratch.val[:0], st), nil); err != nil {
		return err
	}
	return a.markSTLocked()
}

// markSTLocked records that the tenant has start timestamps: from then on
// every sample is checked against the rules, and readers look them up.
func (a *appender) markSTLocked() error {
	if a.t.mu.hasST {
		return nil
	}
	a.t.mu.hasST = true
	return a.pb.Set(a.t.ks.metaKey(nil, metaHasST), nil, nil)
}

// forgetSTsLocked makes every head series of t read its rules from
// Pebble again: after a range deletion rewrote them.
func (t *tenant) forgetSTsLocked() {
	for _, s := range t.mu.byHash {
		for ; s != nil; s = s.next {
			s.stKnown, s.st = false, nil
		}
	}
}

// deleteSTRangeLocked deletes, in pb, the start timestamps of series id in
// [start, end] in partition p, where the series keeps samples (a
// partition it keeps none in goes whole, deleteSeriesPart): its points
// there, and its rules there, with the rule that was in force at end+1
// written again at end+1 when it started inside the range. Reads Pebble
// as of the entry before.
func (g *Group) deleteSTRangeLocked(t *tenant, pb *pebble.Batch, id uint64, p uint32, start, end int64) error {
	pw := g.db.partitionMs
	prefix := t.ks.stSeries(nil, p, id)
	it, err := g.db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return err
	}
	var after stRule // the rule in force at end+1
	afterFrom, atAfter := int64(minTime), false
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+1+8 {
			return errors.Join(fmt.Errorf("start timestamp key %x: bad length", k), it.Close())
		}
		kt := readTime(k[len(prefix)+1:])
		if k[len(prefix)] == stRuleKey && end < partitionEnd(p, pw)-1 && kt <= end+1 {
			r, err := decodeRule(it.Value())
			if err != nil {
				return errors.Join(fmt.Errorf("key %x: %w", k, err), it.Close())
			}
			after, afterFrom, atAfter = r, kt, kt == end+1
		}
		if kt >= start && kt <= end {
			if err := pb.Delete(k, nil); err != nil {
				return errors.Join(err, it.Close())
			}
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if !atAfter && afterFrom >= start && afterFrom != minTime {
		if err := pb.Set(t.ks.stKey(nil, p, id, stRuleKey, end+1), appendRule(nil, after), nil); err != nil {
			return err
		}
	}
	return nil
}

// stReader gives a series iterator the start timestamps of its samples:
// the series' rules and points in the select's partitions, read at the
// first AtST.
type stReader struct {
	loaded bool
	rules  []stEntry // in key order: partition, then time
	points []stEntry
	err    error
}

// stEntry is a rule (or a point, whose rule is absolute) from time t in
// partition part.
type stEntry struct {
	part uint32
	t    int64
	rule stRule
}

func (r *stReader) reset() {
	r.loaded = false
	r.rules, r.points, r.err = r.rules[:0], r.points[:0], nil
}

func (r *stReader) load(s *series) error {
	r.loaded = true
	if !s.hasST || s.snap == nil {
		return nil
	}
	lo, hi := s.ks.stPart(nil, s.p0), successor(s.ks.stPart(nil, s.p1))
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	var key []byte
	for p := s.p0; p <= s.p1; p++ {
		key = s.ks.stSeries(key[:0], p, s.id)
		for ok := it.SeekGE(key); ok && bytes.HasPrefix(it.Key(), key); ok = it.Next() {
			k := it.Key()
			if len(k) != len(key)+1+8 {
				return errors.Join(fmt.Errorf("start timestamp key %x: bad length", k), it.Close())
			}
			e := stEntry{part: p, t: readTime(k[len(key)+1:])}
			v := it.Value()
			if k[len(key)] == stPointKey {
				st, err := decodePoint(v)
				if err != nil {
					return errors.Join(fmt.Errorf("key %x: %w", k, err), it.Close())
				}
				e.rule = stRule{mode: stAbsolute, param: st}
				r.points = append(r.points, e)
				continue
			}
			if e.rule, err = decodeRule(v); err != nil {
				return errors.Join(fmt.Errorf("key %x: %w", k, err), it.Close())
			}
			r.rules = append(r.rules, e)
		}
		if p == s.p1 { // p++ must not wrap at MaxUint32
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// at is the start timestamp of the sample at t of series s.
func (r *stReader) at(s *series, t int64) int64 {
	if !r.loaded {
		r.err = r.load(s)
	}
	if len(r.rules) == 0 && len(r.points) == 0 {
		return 0
	}
	p := partitionOf(t, s.pw)
	cmp := func(e stEntry, k stEntry) int {
		if e.part != k.part {
			if e.part < k.part {
				return -1
			}
			return 1
		}
		switch {
		case e.t < k.t:
			return -1
		case e.t > k.t:
			return 1
		}
		return 0
	}
	k := stEntry{part: p, t: t}
	if i, ok := slices.BinarySearchFunc(r.points, k, cmp); ok {
		return r.points[i].rule.param
	}
	i, ok := slices.BinarySearchFunc(r.rules, k, cmp)
	if !ok {
		i--
	}
	if i < 0 || r.rules[i].part != p {
		return 0
	}
	return r.rules[i].rule.at(t)
}
