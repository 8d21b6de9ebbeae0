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

// GroupWriter proposes a batch to one Raft group: when Write returns
// without error, the batch is committed on a quorum of the group and
// applied, and the per-series refusals of the apply are returned (Series
// indexes b.Series). It is called concurrently for different groups and
// must not keep b after it returns.
type GroupWriter interface {
	Write(ctx context.Context, group ring.GroupID, b *write.Batch) ([]write.Refusal, error)
}

// ErrIncomplete: some part of a write was not committed. The write as a
// whole must be retried (5xx).
var ErrIncomplete = errors.New("distributor: write not committed in every group")

// ErrNoRing: there is no ring yet (no group exists).
var ErrNoRing = errors.New("distributor: no ring")

// Distributor routes write batches to groups. It is safe for concurrent
// use; it holds no mutable state.
type Distributor struct {
	w    GroupWriter
	ring func() *ring.Ring
}

// New returns a distributor writing through w with the ring current
// returns at each call.
func New(w GroupWriter, current func() *ring.Ring) *Distributor {
	return &Distributor{w: w, ring: current}
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
	r := d.ring()
	if r == nil {
		return nil, fmt.Errorf("write batch of tenant %s: %w: %w", b.Tenant, ErrIncomplete, ErrNoRing)
	}
	var parts []Part
	g := r.Groups()[0]
	if r.NumGroups() > 1 {
		parts = Split(r, b)
		g = parts[0].Group
	}
	if len(parts) <= 1 {
		// One group: send the batch itself (no copy); indexes are equal.
		refused, err := d.w.Write(ctx, g, b)
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
			refused, err := d.w.Write(ctx, p.Group, &p.Batch)
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
