package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/myelindb/myelin/server/tenant"
)

// Tenant federation: a read whose tenant header names several tenants
// ("a|b", QueryOptions.Federation) reads each tenant's querier and gives
// every series a label naming its tenant, as Cortex's tenantfederation
// package does, whose rules these are (written anew here):
//
//   - every series gets TenantLabel = its tenant; a series that has the
//     label already keeps its value under retainedTenantLabel;
//   - matchers on TenantLabel choose the tenants to read and are not
//     passed on; matchers on retainedTenantLabel are passed on as
//     matchers on TenantLabel;
//   - LabelNames adds TenantLabel (and retainedTenantLabel when a tenant
//     has the label itself); LabelValues of TenantLabel are the chosen
//     tenants, of retainedTenantLabel the tenants' own TenantLabel values;
//   - any tenant's error fails the call and names the tenant.
//
// A read of one tenant goes to its querier as it is, without the label
// (Cortex's bypass for a single querier).
const (
	// TenantLabel names the tenant of each series of a federated read.
	TenantLabel = "__tenant_id__"
	// retainedTenantLabel keeps a series' own TenantLabel.
	retainedTenantLabel = "original_" + TenantLabel
	// federationConcurrency bounds the tenants one call reads at once;
	// each read fans out to every group in turn.
	federationConcurrency = 8
)

// federatedQuerier reads several tenants (docs above). It holds their
// queriers from the start; Storage.Querier opens nothing until used.
type federatedQuerier struct {
	ids []string          // sorted, distinct
	qs  []storage.Querier // qs[i] reads ids[i]
}

var _ storage.Querier = (*federatedQuerier)(nil)

// newFederatedQuerier opens the querier of each of ids (sorted, distinct)
// on s for [mint, maxt].
func newFederatedQuerier(s Storage, ids []string, mint, maxt int64) (*federatedQuerier, error) {
	f := &federatedQuerier{ids: ids}
	for _, id := range ids {
		q, err := s.Querier(id, mint, maxt)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("open querier of tenant %s: %w", id, err), f.Close())
		}
		f.qs = append(f.qs, q)
	}
	return f, nil
}

// chosen returns the positions in f.ids of the tenants that the matchers
// on TenantLabel allow, and the matchers to pass on.
func (f *federatedQuerier) chosen(ms []*labels.Matcher) (pos []int, pass []*labels.Matcher) {
	for i, id := range f.ids {
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return m.Name == TenantLabel && !m.Matches(id) }) {
			pos = append(pos, i)
		}
	}
	for _, m := range ms {
		switch m.Name {
		case TenantLabel:
		case retainedTenantLabel:
			c := *m
			c.Name = TenantLabel
			pass = append(pass, &c)
		default:
			pass = append(pass, m)
		}
	}
	return pos, pass
}

// each runs f for each position in pos, at most federationConcurrency at
// once, with the tenant in the context; it returns the first error.
// Each call gets its own copy of the matchers: a querier may sort them
// in place (Prometheus's TSDB does).
func (f *federatedQuerier) each(ctx context.Context, pos []int, fn func(ctx context.Context, i int) error) error {
	sem := make(chan struct{}, federationConcurrency)
	errs := make([]error, len(pos))
	var wg sync.WaitGroup
	for k, i := range pos {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(tenant.With(ctx, f.ids[i]), i); err != nil {
				errs[k] = fmt.Errorf("tenant %s: %w", f.ids[i], err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Select reads the chosen tenants in parallel. Sorted, it holds every
// series (not their samples) to sort them: adding TenantLabel can change
// the order of a tenant's series (a label set that ends before the label's
// place sorts first without it and last with it). Unsorted, it returns
// the tenants' series one tenant after the other, as they come.
func (f *federatedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	pos, pass := f.chosen(ms)
	if len(pos) == 0 {
		return storage.EmptySeriesSet()
	}
	if !slices.ContainsFunc(pass, func(m *labels.Matcher) bool { return !m.Matches("") }) {
		// The only matcher that selected anything was on the tenant: a
		// querier wants one that does not match every series.
		pass = append(pass, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	}
	sets := make([]storage.SeriesSet, len(f.ids))
	if err := f.each(ctx, pos, func(ctx context.Context, i int) error {
		sets[i] = f.qs[i].Select(ctx, sortSeries, hints, slices.Clone(pass)...)
		return nil
	}); err != nil {
		return storage.ErrSeriesSet(err)
	}
	limit := 0
	if hints != nil {
		limit = hints.Limit
	}
	out := &tenantSeriesSet{}
	for _, i := range pos {
		out.parts = append(out.parts, tenantPart{id: f.ids[i], set: sets[i]})
	}
	if !sortSeries {
		out.limit = limit
		return out
	}
	var all []storage.Series
	for out.Next() {
		all = append(all, out.At())
	}
	if err := out.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	slices.SortFunc(all, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return &sliceSeriesSet{series: all, warnings: out.Warnings()}
}

// LabelNames is the union of the chosen tenants' label names with
// TenantLabel, sorted.
func (f *federatedQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	pos, pass := f.chosen(ms)
	if len(pos) == 0 {
		return nil, nil, nil
	}
	names, warns, err := f.union(ctx, pos, func(ctx context.Context, q storage.Querier) ([]string, annotations.Annotations, error) {
		return q.LabelNames(ctx, unlimited(hints), slices.Clone(pass)...)
	})
	if err != nil {
		return nil, warns, err
	}
	if slices.Contains(names, TenantLabel) {
		names = append(names, retainedTenantLabel)
	}
	names = append(names, TenantLabel)
	slices.Sort(names)
	return limited(slices.Compact(names), hints), warns, nil
}

// LabelValues of TenantLabel are the chosen tenants; of other labels, the
// union of the chosen tenants' values, sorted.
func (f *federatedQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	pos, pass := f.chosen(ms)
	if name == TenantLabel {
		var ids []string
		for _, i := range pos {
			ids = append(ids, f.ids[i])
		}
		return limited(ids, hints), nil, nil
	}
	if name == retainedTenantLabel {
		name = TenantLabel
	}
	if len(pos) == 0 {
		return nil, nil, nil
	}
	values, warns, err := f.union(ctx, pos, func(ctx context.Context, q storage.Querier) ([]string, annotations.Annotations, error) {
		return q.LabelValues(ctx, name, unlimited(hints), slices.Clone(pass)...)
	})
	return limited(values, hints), warns, err
}

// union calls fn on the queriers at pos and returns the sorted union of
// their answers.
func (f *federatedQuerier) union(ctx context.Context, pos []int, fn func(context.Context, storage.Querier) ([]string, annotations.Annotations, error)) ([]string, annotations.Annotations, error) {
	answers := make([][]string, len(f.ids))
	warns := make([]annotations.Annotations, len(f.ids))
	err := f.each(ctx, pos, func(ctx context.Context, i int) error {
		var err error
		answers[i], warns[i], err = fn(ctx, f.qs[i])
		return err
	})
	var all annotations.Annotations
	for _, w := range warns {
		all.Merge(w)
	}
	if err != nil {
		return nil, all, err
	}
	var out []string
	for _, a := range answers {
		out = append(out, a...)
	}
	slices.Sort(out)
	return slices.Compact(out), all, nil
}

// unlimited drops the limit of label hints: each tenant's first Limit
// answers need not hold the union's first Limit once TenantLabel is
// added, so the union is cut instead.
func unlimited(h *storage.LabelHints) *storage.LabelHints {
	if h == nil || h.Limit == 0 {
		return h
	}
	c := *h
	c.Limit = 0
	return &c
}

// limited cuts a sorted answer at the hints' limit.
func limited(s []string, h *storage.LabelHints) []string {
	if h != nil && h.Limit > 0 && len(s) > h.Limit {
		return s[:h.Limit]
	}
	return s
}

// Close closes every tenant's querier.
func (f *federatedQuerier) Close() error {
	var errs []error
	for _, q := range f.qs {
		errs = append(errs, q.Close())
	}
	return errors.Join(errs...)
}

// tenantPart is one tenant's series of a federated Select.
type tenantPart struct {
	id  string
	set storage.SeriesSet
}

// tenantSeriesSet returns the series of its parts one part after the
// other, each labelled with its tenant, and stops after limit series
// (0: no limit). The first error of a part ends it.
type tenantSeriesSet struct {
	parts []tenantPart
	limit int
	next  int // the part being read
	n     int // series returned
	cur   storage.Series
	err   error
	b     labels.Builder
}

func (s *tenantSeriesSet) Next() bool {
	s.cur = nil
	if s.err != nil || (s.limit > 0 && s.n >= s.limit) {
		return false
	}
	for ; s.next < len(s.parts); s.next++ {
		p := s.parts[s.next]
		if p.set.Next() {
			s.n++
			s.cur = withTenant(&s.b, p.set.At(), p.id)
			return true
		}
		if err := p.set.Err(); err != nil {
			s.err = fmt.Errorf("tenant %s: %w", p.id, err)
			return false
		}
	}
	return false
}

func (s *tenantSeriesSet) At() storage.Series { return s.cur }
func (s *tenantSeriesSet) Err() error         { return s.err }

// Warnings are those of every part so far.
func (s *tenantSeriesSet) Warnings() annotations.Annotations {
	var all annotations.Annotations
	for _, p := range s.parts {
		all.Merge(p.set.Warnings())
	}
	return all
}

// withTenant returns s with TenantLabel set to id, its own TenantLabel
// (if any) kept as retainedTenantLabel.
func withTenant(b *labels.Builder, s storage.Series, id string) storage.Series {
	ls := s.Labels()
	b.Reset(ls)
	if own := ls.Get(TenantLabel); own != "" {
		b.Set(retainedTenantLabel, own)
	}
	b.Set(TenantLabel, id)
	return labelledSeries{Series: s, labels: b.Labels()}
}

// labelledSeries is a series under other labels.
type labelledSeries struct {
	storage.Series
	labels labels.Labels
}

func (s labelledSeries) Labels() labels.Labels { return s.labels }

// sliceSeriesSet returns series held in a slice.
type sliceSeriesSet struct {
	series   []storage.Series
	i        int
	warnings annotations.Annotations
}

func (s *sliceSeriesSet) Next() bool {
	if s.i >= len(s.series) {
		return false
	}
	s.i++
	return true
}

func (s *sliceSeriesSet) At() storage.Series                { return s.series[s.i-1] }
func (s *sliceSeriesSet) Err() error                        { return nil }
func (s *sliceSeriesSet) Warnings() annotations.Annotations { return s.warnings }

// federatedID reports whether a tenant ID in normal form names several
// tenants.
func federatedID(id string) bool { return strings.Contains(id, tenant.Sep) }
