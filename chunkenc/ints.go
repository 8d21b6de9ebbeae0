package chunkenc

import (
	"fmt"
	"math/bits"

	"github.com/myelindb/myelin/internal/invariants"
)

// Integer streams. A stream of m int64 residuals (m known to the reader) is
// written as a 2-bit kind and its parameters, then the codes:
//
//	intsZero   nothing: every residual is 0.
//	intsRice   6 bits k; m Rice(k) codes of zigzag(r).
//	intsRuns   uvarint c (count of nonzero residuals), 6 bits kg, 6 bits kv;
//	           c records: Rice(kg) of the zero run before it, Rice(kv) of
//	           zigzag(r)-1.
//	intsPairs  like intsRuns, and each record that does not end the stream
//	           has a bit p; p=1 means the next residual is -r (it belongs to
//	           the record). This is scrape jitter: a late sample is +x then -x
//	           against the interval.
//
// The writer estimates the cost of each kind for a few k around the mean
// (ustats.best) and writes the cheapest.
const (
	intsZero  = 0
	intsRice  = 1
	intsRuns  = 2
	intsPairs = 3
)

const maxRiceK = 63

// intCoder chooses and writes integer streams. It keeps no state between
// calls; it is a type so the chooser's tables live in one place.
type intCoder struct{}

// ustats summarizes unsigned values by bit length, enough to estimate the
// size of their Rice codes for any k without another pass over them.
type ustats struct {
	n    int
	maxb int
	cnt  [65]int
	sum  [65]float64 // sum of the values of each bit length
}

func (s *ustats) add(u uint64) {
	if u == 0 {
		s.n++
		s.cnt[0]++
		return
	}
	b := bits.Len64(u)
	s.n++
	s.cnt[b]++
	s.sum[b] += float64(u)
	s.maxb = max(s.maxb, b)
}

// riceBits estimates the Rice(k) size of the values. Values of bit length
// <= k cost exactly 1+k; longer ones cost their mean quotient (floor
// approximated by -1/2) plus 1+k, or the escape when the quotient is
// certainly >= riceEscape.
func (s *ustats) riceBits(k int) float64 {
	bitsTotal := 0.0
	scale := 1 / float64(uint64(1)<<k)
	for b := 0; b <= s.maxb; b++ {
		c := float64(s.cnt[b])
		if c == 0 {
			continue
		}
		switch {
		case b <= k:
			bitsTotal += c * float64(1+k)
		case uint64(1)<<(b-1-k) >= riceEscape:
			bitsTotal += c * float64(riceEscape+6+b)
		default:
			q := s.sum[b]*scale - c/2
			bitsTotal += min(q+c*float64(1+k), c*float64(riceEscape+6+b))
		}
	}
	return bitsTotal
}

// best returns the k with the smallest estimated size, searching near the
// bit length of the mean (where the optimum of a geometric source lies).
func (s *ustats) best() (uint8, float64) {
	if s.n == 0 {
		return 0, 0
	}
	total := 0.0
	for b := 0; b <= s.maxb; b++ {
		total += s.sum[b]
	}
	k0 := bits.Len64(uint64(total / float64(s.n)))
	bestK, best := 0, -1.0
	for k := max(k0-3, 0); k <= min(k0+1, maxRiceK); k++ {
		if c := s.riceBits(k); best < 0 || c < best {
			bestK, best = k, c
		}
	}
	return uint8(bestK), best
}

// runStats summarizes the records of the runs or pairs kind.
type runStats struct {
	gaps, vals ustats
}

func (rs *runStats) record(gap int, r int64) {
	rs.gaps.add(uint64(gap))
	rs.vals.add(zigzag(r) - 1)
}

// intsPlan is a chosen stream kind with its parameters and estimated size.
//
// INVARIANT: k, kg, kv <= maxRiceK (their fields are 6 bits); recs is the
// number of records writePlanned writes for the residuals planned.
type intsPlan struct {
	kind   uint8
	k      uint8 // intsRice
	kg, kv uint8 // intsRuns, intsPairs
	recs   int   // intsRuns, intsPairs: number of records
	bits   float64
}

// plan chooses the cheapest kind for rs by estimated size.
func (intCoder) plan(rs []int64) intsPlan {
	var rice ustats
	nz := 0
	for _, r := range rs {
		u := zigzag(r)
		rice.add(u)
		if u != 0 {
			nz++
		}
	}
	if nz == 0 {
		return intsPlan{kind: intsZero, bits: 2}
	}
	k, cost := rice.best()
	best := intsPlan{kind: intsRice, k: k, bits: 2 + 6 + cost}
	// Runs of zeros pay off when most residuals are zero.
	if nz*2 >= len(rs) {
		return best
	}
	// One pass for both record kinds: runs records every nonzero residual;
	// pairs skips a residual that negates the one before it.
	var runs, pairs runStats
	gapR, gapP := 0, 0
	skip := false
	for i, r := range rs {
		if r == 0 {
			gapR++
			gapP++
			skip = false
			continue
		}
		runs.record(gapR, r)
		gapR = 0
		if skip {
			skip = false
			continue
		}
		pairs.record(gapP, r)
		gapP = 0
		skip = i+1 < len(rs) && rs[i+1] == -r
	}
	for _, kind := range [...]uint8{intsRuns, intsPairs} {
		st := &runs
		if kind == intsPairs {
			st = &pairs
		}
		kg, cg := st.gaps.best()
		kv, cv := st.vals.best()
		c := 2 + float64(uvarintBits(uint64(st.gaps.n))) + 12 + cg + cv
		if kind == intsPairs {
			c += float64(st.gaps.n)
		}
		if c < best.bits {
			best = intsPlan{kind: kind, kg: kg, kv: kv, recs: st.gaps.n, bits: c}
		}
	}
	return best
}

// writeInts writes rs as the cheapest stream kind.
func (c intCoder) writeInts(w *bitWriter, rs []int64) { c.writePlanned(w, rs, c.plan(rs)) }

// writePlanned writes rs as planned by plan(rs).
func (intCoder) writePlanned(w *bitWriter, rs []int64, p intsPlan) {
	if invariants.Enabled && (p.k > maxRiceK || p.kg > maxRiceK || p.kv > maxRiceK || p.kind > intsPairs) {
		panic(fmt.Sprintf("BUG: integer stream plan %+v", p))
	}
	w.writeBits(uint64(p.kind), 2)
	switch p.kind {
	case intsZero:
	case intsRice:
		w.writeBits(uint64(p.k), 6)
		for _, r := range rs {
			w.writeRice(zigzag(r), p.k)
		}
	default:
		w.writeUvarint(uint64(p.recs))
		w.writeBits(uint64(p.kg), 6)
		w.writeBits(uint64(p.kv), 6)
		gap := uint64(0)
		recs := 0
		for i := 0; i < len(rs); i++ {
			r := rs[i]
			if r == 0 {
				gap++
				continue
			}
			w.writeRice(gap, p.kg)
			w.writeRice(zigzag(r)-1, p.kv)
			gap = 0
			recs++
			if p.kind == intsPairs {
				pair := i+1 < len(rs) && rs[i+1] == -r
				w.writeBit(pair)
				if pair {
					i++
				}
			}
		}
		if invariants.Enabled && recs != p.recs {
			// The reader takes the count for the records: a chunk that
			// cannot be read.
			panic(fmt.Sprintf("BUG: integer stream kind %d planned %d records, wrote %d", p.kind, p.recs, recs))
		}
	}
}

func uvarintBits(u uint64) int {
	return 8 * ((bits.Len64(u|1) + 6) / 7)
}

// readInts fills dst with a stream written by writeInts. It reports false
// on truncated or inconsistent input.
func readInts(r *bitReader, dst []int64) bool {
	kind, ok := r.readBits(2)
	if !ok {
		return false
	}
	switch kind {
	case intsZero:
		clear(dst)
		return true
	case intsRice:
		k, ok := r.readBits(6)
		if !ok {
			return false
		}
		return r.readRices(dst, uint8(k))
	}
	pairs := kind == intsPairs
	c, ok := r.readUvarint()
	if !ok || c > uint64(len(dst)) {
		return false
	}
	kg, ok1 := r.readBits(6)
	kv, ok2 := r.readBits(6)
	if !ok1 || !ok2 {
		return false
	}
	i := 0
	for ; c > 0; c-- {
		gap, ok := r.readRice(uint8(kg))
		if !ok || gap > uint64(len(dst)-i) {
			return false
		}
		for end := i + int(gap); i < end; i++ {
			dst[i] = 0
		}
		u, ok := r.readRice(uint8(kv))
		if !ok || i >= len(dst) || u == ^uint64(0) {
			return false
		}
		v := unzigzag(u + 1)
		dst[i] = v
		i++
		if pairs {
			p, ok := r.readBit()
			if !ok {
				return false
			}
			if p {
				if i >= len(dst) {
					return false
				}
				dst[i] = -v
				i++
			}
		}
	}
	for ; i < len(dst); i++ {
		dst[i] = 0
	}
	return true
}
