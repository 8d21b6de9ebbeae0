package distributor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/write"
)

// Proposer commits a log entry in one Raft group (through its leader)
// and returns the entry's apply outcome (write.AppendOutcome; nil when
// every sample was applied). An error means the entry may or may not be
// committed. raftgroup/cluster's Router implements it.
type Proposer interface {
	Propose(ctx context.Context, group ring.GroupID, entry []byte) (outcome []byte, err error)
}

// ErrIncomplete: some part of a write was not committed. The write as a
// whole must be retried (5xx).
var ErrIncomplete = errors.New("distributor: write not committed in every group")

// Distributor routes write batches to groups. It is safe for concurrent
// use; its only state is the pool of the entry encoder.
type Distributor struct {
	p       Proposer
	ring    func() (*ring.Ring, error)
	entries write.Encoder
}

// New returns a distributor proposing through p with the ring current
// returns at each call (an error, e.g. no ring yet or a stale one, fails
// the write with ErrIncomplete wrapping it).
func New(p Proposer, current func() (*ring.Ring, error)) *Distributor {
	return &Distributor{p: p, ring: current}
}

// propose encodes b as a log entry (write.Encoder: the compressed batch),
// commits it in group g and decodes the outcome into b's refusals.
func (d *Distributor) propose(ctx context.Context, g ring.GroupID, b *write.Batch) ([]write.Refusal, error) {
	outcome, err := d.p.Propose(ctx, g, d.entries.Entry(b))
	if err != nil {
		return nil, err
	}
	o, err := write.DecodeOutcome(outcome)
	if err != nil {
		return nil, err
	}
	if o.Err != nil {
		// The group refused the whole entry (it did not decode): the
		// same on every replica, a bug of this node's encoder.
		return nil, fmt.Errorf("group %d refused the entry: %w", g, o.Err)
	}
	return o.Refused, nil
}

// Part is the share of a batch that one group owns.
type Part struct {
	Group ring.GroupID
	// Batch: the part's series, in their original order. Its label and
	// sample slices alias the split batch.
	Batch write.Batch
	// Index[i] is the index in the split batch of Batch.Series[i].
	Index []int
}

// Split returns one part per group owning series of b, ordered by group.
// It allocates the parts' series and indexes in two slices shared by all
// parts (a counting sort by group), whatever the number of groups.
func Split(r *ring.Ring, b *write.Batch) []Part {
	n := len(b.Series)
	owner := make([]int32, n) // dense group index of each series
	counts := make([]int, r.NumGroups()+1)
	for i := range b.Series {
		o := r.LookupIndex(ring.Hash(b.Tenant, b.Series[i].Labels))
		owner[i] = int32(o)
		counts[o+1]++
	}
	for g := 1; g < len(counts); g++ {
		counts[g] += counts[g-1]
	}
	// counts[g] is now the start of group g's series.
	series := make([]write.Series, n)
	index := make([]int, n)
	next := slices.Clone(counts[:len(counts)-1])
	for i, o := range owner {
		series[next[o]] = b.Series[i]
		index[next[o]] = i
		next[o]++
	}
	var parts []Part
	groups := r.Groups()
	for g := range groups {
		lo, hi := counts[g], counts[g+1]
		if lo == hi {
			continue
		}
		parts = append(parts, Part{
			Group: groups[g],
			Batch: write.Batch{Tenant: b.Tenant, Series: series[lo:hi:hi]},
			Index: index[lo:hi:hi],
		})
	}
	return parts
}

// Write splits b by owning group and writes the parts concurrently; see
// the package doc for the outcome. It implements server.Writer.
func (d *Distributor) Write(ctx context.Context, b *write.Batch) ([]write.Refusal, error) {
	if len(b.Series) == 0 {
		return nil, nil
	}
	r, err := d.ring()
	if err != nil {
		return nil, fmt.Errorf("write batch of tenant %s: %w: %w", b.Tenant, ErrIncomplete, err)
	}
	var parts []Part
	g := r.Groups()[0]
	if r.NumGroups() > 1 {
		parts = Split(r, b)
		g = parts[0].Group
	}
	if len(parts) <= 1 {
		// One group: send the batch itself (no copy); indexes are equal.
		refused, err := d.propose(ctx, g, b)
		if err != nil {
			return nil, fmt.Errorf("write %d series to group %d: %w: %w", len(b.Series), g, ErrIncomplete, err)
		}
		if err := checkRefused(refused, len(b.Series), g); err != nil {
			return nil, err
		}
		return refused, nil
	}
	type result struct {
		refused []write.Refusal
		err     error
	}
	results := make([]result, len(parts))
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() {
			p := &parts[i]
			refused, err := d.propose(ctx, p.Group, &p.Batch)
			if err == nil {
				err = checkRefused(refused, len(p.Batch.Series), p.Group)
			}
			results[i] = result{refused, err}
		})
	}
	wg.Wait()
	var errs []error
	var refused []write.Refusal
	for i, res := range results {
		p := &parts[i]
		if res.err != nil {
			errs = append(errs, fmt.Errorf("write %d series to group %d: %w", len(p.Batch.Series), p.Group, res.err))
			continue
		}
		for _, e := range res.refused {
			e.Series = p.Index[e.Series]
			refused = append(refused, e)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("write batch of tenant %s to %d groups: %w: %w", b.Tenant, len(parts), ErrIncomplete, errors.Join(errs...))
	}
	slices.SortFunc(refused, func(a, b write.Refusal) int { return a.Series - b.Series })
	return refused, nil
}

// checkRefused rejects refusals naming series outside the part: a bug
// of the writer, which would otherwise index out of range.
func checkRefused(refused []write.Refusal, n int, g ring.GroupID) error {
	for _, e := range refused {
		if e.Series < 0 || e.Series >= n {
			return fmt.Errorf("group %d refused series %d of a %d-series part: %w", g, e.Series, n, ErrIncomplete)
		}
	}
	return nil
}
