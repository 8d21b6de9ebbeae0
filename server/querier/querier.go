package querier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/myelindb/myelin/raftgroup/ring"
)

// Groups is what the fan-out needs from the cluster. cmd implements it
// over the ring history and the group leaders (local or through NewRemote).
type Groups interface {
	// Owners returns the groups that may hold series with samples in
	// [mint, maxt].
	Owners(mint, maxt int64) []ring.GroupID
	// Querier opens a querier on group g's data of tenant over [mint,
	// maxt], consistent with every acknowledged write (served by g's
	// leader: local or remote).
	Querier(ctx context.Context, g ring.GroupID, tenant string, mint, maxt int64) (storage.Querier, error)
}

// Options configure the fan-out.
type Options struct {
	// MaxConcurrency bounds the groups one call (Select, LabelNames,
	// LabelValues) opens and queries at once. Zero means 16. Every
	// owner is queried either way; the bound only queues them.
	MaxConcurrency int
	Logger         *slog.Logger // nil means discard
}

func (o Options) withDefaults() Options {
	if o.MaxConcurrency == 0 {
		o.MaxConcurrency = 16
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.MaxConcurrency < 0 {
		errs = append(errs, fmt.Errorf("max concurrency %d is negative", o.MaxConcurrency))
	}
	return errors.Join(errs...)
}

// Querier fans tenant queries out to the groups that own their series. It
// is safe for concurrent use and holds no mutable state. It implements
// server.Storage.
type Querier struct {
	groups Groups
	opts   Options
}

// New returns a fan-out over groups. Invalid options are a programmer
// error (cmd validates them first).
func New(groups Groups, opts Options) *Querier {
	if err := opts.Validate(); err != nil {
		panic("BUG: querier options: " + err.Error())
	}
	return &Querier{groups: groups, opts: opts.withDefaults()}
}

// Querier returns a querier over tenant's data in [mint, maxt]. It opens
// nothing: each call on it asks Groups for the owners and opens their
// queriers (once per querier; later calls reuse them).
func (q *Querier) Querier(tenant string, mint, maxt int64) (storage.Querier, error) {
	return &fanout{q: q, tenant: tenant, mint: mint, maxt: maxt}, nil
}

// fanout is one tenant's querier over [mint, maxt].
//
// Locking: mu guards the opened group queriers. Opening happens outside
// it; two calls racing to open the same group both open it and the loser
// closes its copy.
type fanout struct {
	q          *Querier
	tenant     string
	mint, maxt int64
	mu         struct {
		sync.Mutex
		open   map[ring.GroupID]storage.Querier
		closed bool
	}
}

var _ storage.Querier = (*fanout)(nil)

// groupQuerier returns g's querier, opening it on first use.
func (f *fanout) groupQuerier(ctx context.Context, g ring.GroupID) (storage.Querier, error) {
	f.mu.Lock()
	gq, ok := f.mu.open[g]
	closed := f.mu.closed
	f.mu.Unlock()
	if closed {
		return nil, errors.New("querier: querier closed")
	}
	if ok {
		return gq, nil
	}
	gq, err := f.q.groups.Querier(ctx, g, f.tenant, f.mint, f.maxt)
	if err != nil {
		return nil, fmt.Errorf("open querier of group %d: %w", g, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.closed {
		return nil, errors.Join(errors.New("querier: querier closed"), gq.Close())
	}
	if prev, ok := f.mu.open[g]; ok {
		return prev, gq.Close()
	}
	if f.mu.open == nil {
		f.mu.open = map[ring.GroupID]storage.Querier{}
	}
	f.mu.open[g] = gq
	return gq, nil
}

// forEachOwner calls fn for every owner of [mint, maxt] concurrently,
// at most MaxConcurrency at once, with the group's querier, and waits.
// fn stores its result at index i of the caller's slice.
func (f *fanout) forEachOwner(ctx context.Context, owners []ring.GroupID, fn func(i int, gq storage.Querier) error) error {
	errs := make([]error, len(owners))
	sem := make(chan struct{}, f.q.opts.MaxConcurrency)
	var wg sync.WaitGroup
	for i, g := range owners {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			gq, err := f.groupQuerier(ctx, g)
			if err == nil {
				err = fn(i, gq)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Select implements storage.Querier. It selects sorted from every owner
// in parallel (the engine's Select reads postings and labels eagerly, a
// remote one waits for its response to start) and merges the sets:
// series with equal labels become one, whose samples are the union of
// theirs with equal timestamps taken once (storage.ChainedSeriesMerge).
// The merged set is sorted whatever sortSeries says.
func (f *fanout) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	owners := f.q.groups.Owners(f.mint, f.maxt)
	switch len(owners) {
	case 0:
		return storage.EmptySeriesSet()
	case 1:
		gq, err := f.groupQuerier(ctx, owners[0])
		if err != nil {
			return storage.ErrSeriesSet(err)
		}
		return groupSet{SeriesSet: gq.Select(ctx, sortSeries, hints, ms...), g: owners[0]}
	}
	sets := make([]storage.SeriesSet, len(owners))
	err := f.forEachOwner(ctx, owners, func(i int, gq storage.Querier) error {
		// INVARIANT: merging needs every input sorted.
		sets[i] = groupSet{SeriesSet: gq.Select(ctx, true, hints, ms...), g: owners[i]}
		return nil
	})
	if err != nil {
		// The sets that opened are closed with the querier.
		return storage.ErrSeriesSet(err)
	}
	limit := 0
	if hints != nil {
		limit = hints.Limit
	}
	return storage.NewMergeSeriesSet(sets, limit, storage.ChainedSeriesMerge)
}

// groupSet names its group in its error.
type groupSet struct {
	storage.SeriesSet
	g ring.GroupID
}

func (s groupSet) Err() error {
	if err := s.SeriesSet.Err(); err != nil {
		return fmt.Errorf("select on group %d: %w", s.g, err)
	}
	return nil
}

// LabelNames implements storage.LabelQuerier: the sorted union over the
// owners, cut at hints.Limit.
func (f *fanout) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return f.labelQuery(ctx, hints, "label names", func(gq storage.Querier) ([]string, annotations.Annotations, error) {
		return gq.LabelNames(ctx, hints, ms...)
	})
}

// LabelValues implements storage.LabelQuerier: the sorted union over the
// owners, cut at hints.Limit.
func (f *fanout) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return f.labelQuery(ctx, hints, "label values of "+name, func(gq storage.Querier) ([]string, annotations.Annotations, error) {
		return gq.LabelValues(ctx, name, hints, ms...)
	})
}

func (f *fanout) labelQuery(ctx context.Context, hints *storage.LabelHints, op string,
	query func(storage.Querier) ([]string, annotations.Annotations, error),
) ([]string, annotations.Annotations, error) {
	owners := f.q.groups.Owners(f.mint, f.maxt)
	results := make([][]string, len(owners))
	wss := make([]annotations.Annotations, len(owners))
	err := f.forEachOwner(ctx, owners, func(i int, gq storage.Querier) error {
		var err error
		results[i], wss[i], err = query(gq)
		if err != nil {
			return fmt.Errorf("%s on group %d: %w", op, owners[i], err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var ws annotations.Annotations
	for _, w := range wss {
		ws.Merge(w)
	}
	out := mergeSorted(results)
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out, ws, nil
}

// mergeSorted returns the sorted union of sorted lists without
// duplicates. The result may alias a list when there is only one.
func mergeSorted(lists [][]string) []string {
	n := 0
	var only []string
	nonEmpty := 0
	for _, l := range lists {
		n += len(l)
		if len(l) > 0 {
			only = l
			nonEmpty++
		}
	}
	if nonEmpty <= 1 {
		return only
	}
	// Concatenate and sort: label lists are short (names: tens; values:
	// up to ~10^5), and a k-way heap merge was not worth its code here.
	out := make([]string, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Close closes every group querier opened. Idempotent.
func (f *fanout) Close() error {
	f.mu.Lock()
	open := f.mu.open
	f.mu.open, f.mu.closed = nil, true
	f.mu.Unlock()
	var errs []error
	for g, gq := range open {
		if err := gq.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close querier of group %d: %w", g, err))
		}
	}
	return errors.Join(errs...)
}
