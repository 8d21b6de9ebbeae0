package distributor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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

// Limits are a tenant's global series limits (0: no limit) and its
// out-of-order time window (0: none), read per write. server/limits'
// Overrides implements it.
type Limits interface {
	MaxGlobalSeriesPerUser(tenant string) int
	MaxGlobalSeriesPerMetric(tenant string) int
	OutOfOrderTimeWindow(tenant string) time.Duration
}

// MetaLimits are a tenant's global exemplar and metadata limits, read
// per write that carries exemplars or metadata (server/limits'
// Overrides implements it). A Limits that implements it too gives the
// parts of such writes their share (GroupLimit), as the series limits.
type MetaLimits interface {
	MetaLimits(tenant string) (exemplars, metadata, metadataPerMetric int)
}

// Distributor routes write batches to groups. It is safe for concurrent
// use; its only state is the pool of the entry encoder and the shares
// of the last ring it routed with.
type Distributor struct {
	p       Proposer
	ring    func() (*ring.Ring, error)
	limits  Limits // nil: no series limits
	entries write.Encoder
	shares  atomic.Pointer[ringShares]
}

// ringShares are the hash-space shares of a ring's groups, indexed like
// its Groups().
type ringShares struct {
	r      *ring.Ring
	shares []float64
}

// New returns a distributor proposing through p with the ring current
// returns at each call (an error, e.g. no ring yet or a stale one, fails
// the write with ErrIncomplete wrapping it). Each part of a write carries
// its tenant's series limits from limits (nil: none), scaled to the
// group (GroupLimit).
func New(p Proposer, current func() (*ring.Ring, error), limits Limits) *Distributor {
	return &Distributor{p: p, ring: current, limits: limits}
}

// PlainEntries makes the distributor write Raft entries in the encoding
// releases before batch version 9 decode (write.Encoder.Plain): for a
// cluster during a rolling upgrade. Call it before the first write.
func (d *Distributor) PlainEntries() { d.entries.Plain = true }

// sharesOf returns the shares of r's groups (cached for the last ring).
func (d *Distributor) sharesOf(r *ring.Ring) []float64 {
	if c := d.shares.Load(); c != nil && c.r == r {
		return c.shares
	}
	owned := r.Ownership()
	shares := make([]float64, len(owned))
	for i, o := range owned {
		shares[i] = float64(o) / math.MaxUint64
	}
	d.shares.Store(&ringShares{r: r, shares: shares})
	return shares
}

// slackSigmas: a group's series limit is its share of the global limit
// plus this many standard deviations of the number of the tenant's
// series a group of that share receives (GroupLimit).
const slackSigmas = 3

// GroupLimit scales a global series limit to a group that owns share of
// the hash space: ceil(L·s + 3·sqrt(L·s·(1-s))), 0 (no limit) for 0.
//
// A tenant with exactly L series puts a binomial number of them in each
// group: mean L·s, standard deviation sqrt(L·s·(1-s)). With the share
// alone, the group that drew a few more than its mean would refuse
// series while the tenant is still below L (for L = 150,000 on 3 groups,
// about half the time somewhere); three standard deviations above the
// share make that a 0.13% event per group. The price is the slack: the
// groups together admit at most sum_g GroupLimit(L, s_g), L plus
// 3·sqrt(L·s(1-s)) + 1 per group (for even shares, L + 3·sqrt(L·(n-1))
// + n: 1.1% over at L = 150,000 on 3 groups, 2.6% on 12).
// docs/design.md "Limits" has the measurements.
func GroupLimit(global int, share float64) int {
	if global <= 0 {
		return 0
	}
	share = min(max(share, 0), 1)
	mean := float64(global) * share
	return int(math.Ceil(mean + slackSigmas*math.Sqrt(mean*(1-share))))
}

// limited returns b with the series limits of its tenant in the group
// of index gi of a ring with these shares, and the tenant's out-of-order
// window.
func (d *Distributor) limited(b *write.Batch, shares []float64, gi int) *write.Batch {
	if d.limits == nil {
		return b
	}
	perUser, perMetric := d.limits.MaxGlobalSeriesPerUser(b.Tenant), d.limits.MaxGlobalSeriesPerMetric(b.Tenant)
	// The window is the tenant's as it is, not a share: every group
	// measures it from the tenant's newest sample in the group.
	window := d.limits.OutOfOrderTimeWindow(b.Tenant).Milliseconds()
	var meta write.MetaLimits
	if ml, ok := d.limits.(MetaLimits); ok && b.HasMeta() {
		ex, md, mdPerMetric := ml.MetaLimits(b.Tenant)
		meta = write.MetaLimits{MaxExemplars: GroupLimit(ex, shares[gi]), MaxMetadata: GroupLimit(md, shares[gi]),
			MaxMetadataPerMetric: GroupLimit(mdPerMetric, shares[gi])}
	}
	if perUser <= 0 && perMetric <= 0 && b.Limits == (write.SeriesLimits{}) && window == b.OutOfOrderWindowMs && meta == b.MetaLimits {
		return b
	}
	lb := *b
	lb.Limits = write.SeriesLimits{MaxSeries: GroupLimit(perUser, shares[gi]), MaxSeriesPerMetric: GroupLimit(perMetric, shares[gi])}
	lb.OutOfOrderWindowMs = window
	lb.MetaLimits = meta
	return &lb
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
			Batch: write.Batch{Tenant: b.Tenant, MetaLimits: b.MetaLimits, Series: series[lo:hi:hi]},
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
	g, gi := r.Groups()[0], 0
	if r.NumGroups() > 1 {
		parts = Split(r, b)
		g = parts[0].Group
		gi, _ = slices.BinarySearch(r.Groups(), g)
	}
	shares := d.sharesOf(r)
	if len(parts) <= 1 {
		// One group: send the batch itself (no copy); indexes are equal.
		refused, err := d.propose(ctx, g, d.limited(b, shares, gi))
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
			gi, _ := slices.BinarySearch(r.Groups(), p.Group)
			refused, err := d.propose(ctx, p.Group, d.limited(&p.Batch, shares, gi))
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
