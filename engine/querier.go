package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	promchunk "github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/invariants"
	"github.com/myelindb/myelin/write"
)

// Queryable returns a storage.Queryable over tenant's data in the group, for
// promql.Engine.
func (g *Group) Queryable(tenant string) storage.Queryable {
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		return g.Querier(tenant, mint, maxt)
	})
}

// Querier returns a querier over tenant's samples in [mint, maxt], head and
// Pebble together. Close it when done: it holds Pebble snapshots.
//
// Semantics: Select returns the series with at least one sample in the
// range (narrowed by hints.Start/End), with only those samples. Label names
// and values hold those of every series with a sample in the range, and
// at most those of the series with a sample in the time partitions that
// overlap it: the postings in Pebble answer exactly the latter, the head
// index (recent ranges) something in between (Prometheus is
// block-granular the same way).
func (g *Group) Querier(tenant string, mint, maxt int64) (storage.Querier, error) {
	return g.QuerierWithBudget(tenant, mint, maxt, nil)
}

// ReadBudget bounds what a querier reads for one query (server/limits'
// QueryBudget implements it; it is shared by the query's queriers and
// called concurrently). An error it returns fails the call that read.
type ReadBudget interface {
	// CheckSelect is asked before a Select holds the n series the index
	// matched in the range's partitions: their labels and open chunks.
	CheckSelect(n int) error
	// AddChunkBytes counts n bytes of chunks a series iterator is about
	// to decode (sealed chunks read from Pebble and the open chunk).
	AddChunkBytes(n int) error
}

// budgetError is an error of the ReadBudget, passed on unwrapped.
type budgetError struct{ error }

func (e budgetError) Unwrap() error { return e.error }

// QuerierWithBudget is Querier with its reads counted against b (nil:
// no bound).
func (g *Group) QuerierWithBudget(tenant string, mint, maxt int64, b ReadBudget) (storage.Querier, error) {
	if g.db.closed() {
		return nil, ErrClosed
	}
	g.mu.Lock()
	t := g.mu.tenants[tenant]
	g.mu.Unlock()
	return &querier{g: g, t: t, mint: mint, maxt: maxt, budget: b}, nil
}

type querier struct {
	g          *Group
	t          *tenant // nil: the tenant has no data
	mint, maxt int64
	budget     ReadBudget // nil: none
	// noHeadIndex: read the postings in Pebble even where the head index
	// covers the range (tests compare the two).
	noHeadIndex bool
	mu          struct {
		sync.Mutex
		snaps  []*pebble.Snapshot
		closed bool
	}
}

var _ storage.Querier = (*querier)(nil)

// Close releases the querier's snapshots. Series returned by Select must
// not be iterated after it. Idempotent.
func (q *querier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.mu.closed {
		return nil
	}
	q.mu.closed = true
	var errs []error
	for _, s := range q.mu.snaps {
		errs = append(errs, s.Close())
	}
	q.mu.snaps = nil
	return errors.Join(errs...)
}

// view is a consistent read view: a snapshot and, taken under the same
// tenant lock, the partitions that hold data.
type view struct {
	q    *querier
	snap *pebble.Snapshot
	// r reads the snapshot; a view of the head index makes its iterator
	// (and without snap its snapshot) at the first use (reader).
	r      indexReader
	p0, p1 uint32 // partitions to read, clamped to those the tenant has
	empty  bool
	// retainPart is the tenant's oldest partition under retention.
	retainPart uint32
	// hasST: the tenant had start timestamps when the view was opened.
	hasST bool
}

// openViewLocked opens a view over the tenant's keys for [mint, maxt]. The
// caller holds t.mu (read).
func (q *querier) openViewLocked(mint, maxt int64) (*view, error) {
	v, err := q.openHeadViewLocked(mint, maxt, true)
	if err != nil {
		return nil, err
	}
	r, err := v.reader()
	if err != nil || v.empty {
		return v, err
	}
	// Clamp to the partitions that exist: the oldest is the first
	// postings key (openHeadViewLocked clamped to the newest and to
	// retention). Without it a query with mint = math.MinInt64 would
	// visit 2^31 empty partitions.
	t := q.t
	first := appendPrefix(nil, t.ks.group, t.ks.tenant, kindPostings)
	if !r.it.SeekGE(first) || !bytes.HasPrefix(r.it.Key(), first) || len(r.it.Key()) < prefixLen+4 {
		v.empty = true
		return v, r.it.Error()
	}
	v.p0 = max(v.p0, binary.BigEndian.Uint32(r.it.Key()[prefixLen:]))
	v.empty = v.p0 > v.p1
	return v, nil
}

// openHeadViewLocked is openViewLocked for a read that the head index
// answers (and its first step): it reads nothing yet. Its iterator is made at the first use
// (reader), and so is its snapshot unless snap is set (a select, whose
// sealed chunks must be read as of its head copies). The partitions are
// not clamped to the oldest postings: the range starts at or after the
// index's coverage, and no series has a sample before its first
// postings. The caller holds t.mu (read).
func (q *querier) openHeadViewLocked(mint, maxt int64, snap bool) (*view, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.mu.closed {
		return nil, errors.New("engine: querier closed")
	}
	t, pw := q.t, q.g.db.partitionMs
	v := &view{q: q, r: indexReader{ks: t.ks}, retainPart: t.mu.retainPart, hasST: t.mu.hasST}
	if snap {
		v.snap = q.g.db.pdb.NewSnapshot()
		q.mu.snaps = append(q.mu.snaps, v.snap)
	}
	v.p0 = max(partitionOf(mint, pw), t.mu.retainPart)
	v.p1 = min(partitionOf(maxt, pw), partitionOf(t.mu.maxT, pw))
	v.empty = t.mu.maxT == minTime || v.p0 > v.p1
	return v, nil
}

// newIter returns an iterator of the view's snapshot over the tenant's
// keys.
func (v *view) newIter() (*pebble.Iterator, error) {
	t := v.q.t
	lo := appendPrefix(nil, t.ks.group, t.ks.tenant, 0)
	hi := appendPrefix(nil, t.ks.group, t.ks.tenant+1, 0)
	return v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
}

// reader returns the view's index reader, making its snapshot and
// iterator if they are not made yet. A snapshot made here is as of the
// call: the caller still holds the tenant's read lock it opened the view
// under.
func (v *view) reader() (*indexReader, error) {
	if v.r.it != nil {
		return &v.r, nil
	}
	if v.snap == nil {
		q := v.q
		q.mu.Lock()
		if q.mu.closed {
			q.mu.Unlock()
			return nil, errors.New("engine: querier closed")
		}
		v.snap = q.g.db.pdb.NewSnapshot()
		q.mu.snaps = append(q.mu.snaps, v.snap)
		q.mu.Unlock()
	}
	it, err := v.newIter()
	if err != nil {
		return nil, err
	}
	v.r.it = it
	return &v.r, nil
}

func (v *view) close() error {
	if v.r.it == nil {
		return nil
	}
	return v.r.it.Close()
}

// narrow applies select hints to the querier's range.
func (q *querier) narrow(hints *storage.SelectHints) (int64, int64) {
	mint, maxt := q.mint, q.maxt
	if hints != nil && (hints.Start != 0 || hints.End != 0) {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	return mint, maxt
}

// Select implements storage.Querier.
func (q *querier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.narrow(hints)
	if q.t == nil || mint > maxt {
		return storage.EmptySeriesSet()
	}
	ss, err := q.selectSeries(ctx, mint, maxt, hints, ms)
	if be := (budgetError{}); errors.As(err, &be) {
		return storage.ErrSeriesSet(be.error) // the limit's own text, for the user
	}
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("select %v in [%d, %d]: %w", ms, mint, maxt, err))
	}
	if sortSeries {
		slices.SortFunc(ss, func(a, b *series) int { return labels.Compare(a.lset, b.lset) })
	}
	if hints != nil && hints.Limit > 0 && len(ss) > hints.Limit {
		ss = ss[:hints.Limit]
	}
	return &seriesSet{list: ss}
}

func (q *querier) selectSeries(ctx context.Context, mint, maxt int64, hints *storage.SelectHints, ms []*labels.Matcher) ([]*series, error) {
	// Once the log is replayed, a series' sealed chunks all end before its
	// open chunk starts (Recovery in doc.go), so a series whose open chunk
	// starts at or before mint has nothing in Pebble for this select, and
	// the head index holds every series created. While replaying, Pebble
	// may hold chunks sealed after the recovered open chunk started, and
	// series the replay has not created yet. Read before anything else:
	// replay never starts again once it ended.
	replayed := q.g.replayed()
	if replayed && !q.noHeadIndex {
		sel, ok, err := q.selectHead(mint, maxt, hints, ms)
		if ok || err != nil {
			if err != nil {
				return nil, err
			}
			defer sel.v.close()
			return q.buildSeries(sel, mint, maxt, hints, true)
		}
	}
	t := q.t
	// Phase 1, without the tenant lock: postings and labels from a
	// snapshot (the long part: seeks over the index).
	t.mu.RLock()
	v, err := q.openViewLocked(mint, maxt)
	t.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	defer v.close()
	if v.empty {
		return nil, nil
	}
	ids, err := v.seriesIDs(ms)
	if err != nil {
		return nil, err
	}
	// Before anything of the series is read: a select past the query's
	// series limit stops holding 8 bytes per series (the ids), not the
	// ~500 of labels, open chunks and series.
	if err := q.checkSelect(len(ids), hints); err != nil {
		return nil, err
	}
	encs := make([]string, len(ids))
	for i, id := range ids {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		enc, err := v.r.labels(id)
		if err != nil {
			return nil, err
		}
		encs[i] = string(enc)
	}
	if hints != nil && hints.ShardCount > 0 {
		ids, encs = inShard(ids, encs, hints.ShardIndex, hints.ShardCount)
	}

	// Phase 2, under the read lock: a second snapshot and the open chunks,
	// one point in time (Apply holds the write lock across its commit, so
	// no chunk is both cut from a head copy and missing from the
	// snapshot). Sealed chunks are read from this snapshot. A series
	// created between the two snapshots is not selected: the select is as
	// of the first, with samples as of the second.
	heads := make([]headCopy, len(ids))
	t.mu.RLock()
	v2, err := q.openViewLocked(mint, maxt)
	if err == nil {
		for i, id := range ids {
			if ms := t.lookupStringLocked(xxhash.Sum64String(encs[i]), encs[i]); ms != nil && ms.id == id {
				heads[i], _ = copyHeadLocked(ms)
			}
		}
	}
	t.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	defer v2.close()
	v2.p0, v2.p1 = v.p0, v.p1
	return q.buildSeries(selection{v: v2, ids: ids, encs: encs, heads: heads}, mint, maxt, hints, replayed)
}

// selection is what a select found: the series' ids, encoded labels and
// open chunk copies, and the view to read their sealed chunks from.
type selection struct {
	v     *view
	ids   []uint64
	encs  []string
	heads []headCopy
	// checked[i], if checked is not nil: series i is known to have a
	// sample in the range (heads[i] is then not copied).
	checked []bool
}

// checkSelect checks a select of n series against the query's budget.
func (q *querier) checkSelect(n int, hints *storage.SelectHints) error {
	if q.budget == nil {
		return nil
	}
	if hints != nil && hints.Limit > 0 {
		n = min(n, hints.Limit)
	}
	if err := q.budget.CheckSelect(n); err != nil {
		return budgetError{err}
	}
	return nil
}

// headCovers reports whether the head index holds every series of the
// tenant with a sample at or after mint. The caller holds t.mu (read).
func (q *querier) headCoversLocked(mint int64) bool {
	t, opts := q.t, &q.g.db.opts
	return t.mu.maxT != minTime && mint >= covers(t.mu.indexFrom, t.mu.maxT, opts.EvictIdle, keepGhosts(opts))
}

// selectHead selects from the head index, in one hold of the read lock,
// when it covers mint (ok); otherwise the caller reads the postings in
// Pebble. On success the caller closes sel.v.
func (q *querier) selectHead(mint, maxt int64, hints *storage.SelectHints, ms []*labels.Matcher) (sel selection, ok bool, err error) {
	t := q.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	if !q.headCoversLocked(mint) {
		return sel, false, nil
	}
	ids := t.mu.index.match(ms)
	if err := q.checkSelect(len(ids), hints); err != nil {
		return sel, false, err
	}
	if sel.v, err = q.openHeadViewLocked(mint, maxt, true); err != nil {
		return sel, false, err
	}
	if sel.v.empty {
		return sel, true, nil
	}
	sel.encs = make([]string, 0, len(ids))
	sel.heads = make([]headCopy, 0, len(ids))
	// The series API's select (Func "series") needs labels only: a series
	// whose open chunk has a sample in the range is answered here, with
	// no copy of the chunk; one whose open chunk holds all its samples in
	// the range and none is left out; the others are checked against
	// their sealed chunks by buildSeries.
	labelsOnly := hints != nil && hints.Func == "series"
	if labelsOnly {
		sel.checked = make([]bool, 0, len(ids))
	}
	n := 0
	for _, id := range ids {
		lbls, s, live := t.mu.index.labels(id)
		if !live {
			continue
		}
		if hints != nil && hints.ShardCount > 0 && !inShardOf(lbls, hints.ShardIndex, hints.ShardCount) {
			continue
		}
		var h headCopy
		checked := false
		switch {
		case s == nil:
		case labelsOnly && s.head.NumSamples() > 0 && partitionOf(s.mint, q.g.db.partitionMs) >= t.mu.retainPart:
			last, _, _ := s.head.Last()
			in, err := sampleIn(s.head.Bytes(), s.mint, last, mint, maxt)
			if err != nil {
				sel.v.close()
				return sel, false, fmt.Errorf("series %d: %w", id, err)
			}
			if !in && s.mint <= mint {
				continue // its open chunk holds its samples from mint on
			}
			checked = in
		default:
			h, _ = copyHeadLocked(s)
		}
		ids[n] = id
		n++
		sel.encs = append(sel.encs, lbls)
		sel.heads = append(sel.heads, h)
		if labelsOnly {
			sel.checked = append(sel.checked, checked)
		}
	}
	sel.ids = ids[:n]
	return sel, true, nil
}

// buildSeries turns a selection into the series with samples in [mint,
// maxt]. replayed: the log was replayed when the heads were copied.
func (q *querier) buildSeries(sel selection, mint, maxt int64, hints *storage.SelectHints, replayed bool) ([]*series, error) {
	v := sel.v
	var out []*series
	var sb labels.ScratchBuilder
	pw := q.g.db.partitionMs
	for i, id := range sel.ids {
		s := &series{snap: v.snap, ks: q.t.ks, id: id, mint: mint, maxt: maxt, p0: v.p0, p1: v.p1, pw: pw, head: sel.heads[i], budget: q.budget, hasST: v.hasST}
		// An idle series' open chunk may be in a partition that retention
		// dropped.
		s.hasHead = s.head.chunk != nil && partitionOf(s.head.mint, pw) >= v.retainPart
		s.headOnly = replayed && s.hasHead && s.head.mint <= mint
		if sel.checked == nil || !sel.checked[i] {
			ok, err := s.hasSamples(v)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		lset, err := write.DecodeLabels(&sb, sel.encs[i])
		if err != nil {
			return nil, fmt.Errorf("series %d: %w", id, err)
		}
		s.lset = lset
		if invariants.Enabled && hints != nil && hints.ShardCount > 0 && labels.StableHash(s.lset)%hints.ShardCount != hints.ShardIndex {
			panic(fmt.Sprintf("BUG: series %s of shard %d selected for shard %d of %d", s.lset, labels.StableHash(s.lset)%hints.ShardCount, hints.ShardIndex, hints.ShardCount))
		}
		out = append(out, s)
	}
	return out, nil
}

// seriesIDs returns the sorted ids of the series matching ms in the view's
// partitions.
func (v *view) seriesIDs(ms []*labels.Matcher) ([]uint64, error) {
	var ids []uint64
	nparts := 0
	err := v.r.partitions(v.p0, v.p1, func(p uint32) error {
		l, err := v.r.postingsForMatchers(p, ms)
		ids = append(ids, l...)
		nparts++
		return err
	})
	if err != nil {
		return nil, err
	}
	if nparts > 1 {
		slices.Sort(ids)
		ids = slices.Compact(ids)
	}
	return ids, nil
}

// LabelNames implements storage.LabelQuerier.
func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labelQuery(ctx, hints, ms, func(r *indexReader, dst map[string]struct{}, p uint32) error {
		return r.labelNames(dst, p)
	}, func(x *headIndex, in func(uint64) bool) []string {
		return x.names(in)
	}, func(n, _ string, dst map[string]struct{}) {
		dst[n] = struct{}{}
	})
}

// LabelValues implements storage.LabelQuerier.
func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labelQuery(ctx, hints, ms, func(r *indexReader, dst map[string]struct{}, p uint32) error {
		return r.labelValues(dst, p, name)
	}, func(x *headIndex, in func(uint64) bool) []string {
		return x.values(name, in)
	}, func(n, v string, dst map[string]struct{}) {
		if n == name {
			dst[v] = struct{}{}
		}
	})
}

// labelQuery answers a label query: without matchers from the postings
// keys alone (scan reads one key per distinct name or value per
// partition, fromHead the head index's keys); with matchers from the
// label sets of the matching series. The head index answers when it
// covers the range (selectHead).
func (q *querier) labelQuery(ctx context.Context, hints *storage.LabelHints, ms []*labels.Matcher,
	scan func(*indexReader, map[string]struct{}, uint32) error, fromHead func(*headIndex, func(uint64) bool) []string,
	fromSeries func(n, v string, dst map[string]struct{}),
) ([]string, annotations.Annotations, error) {
	if q.t == nil || q.mint > q.maxt {
		return nil, nil, nil
	}
	if q.g.replayed() && !q.noHeadIndex {
		out, ok, err := q.labelsFromHead(ms, fromHead, fromSeries)
		if err != nil {
			return nil, nil, fmt.Errorf("label query %v: %w", ms, err)
		}
		if ok {
			return sortLimit(out, hints), nil, nil
		}
	}
	set := map[string]struct{}{}
	q.t.mu.RLock()
	v, err := q.openViewLocked(q.mint, q.maxt)
	q.t.mu.RUnlock()
	if err != nil {
		return nil, nil, err
	}
	defer v.close()
	if v.empty {
		return nil, nil, nil
	}
	if len(ms) == 0 {
		err = v.r.partitions(v.p0, v.p1, func(p uint32) error { return scan(&v.r, set, p) })
	} else {
		var ids []uint64
		if ids, err = v.seriesIDs(ms); err == nil {
			for i, id := range ids {
				if i%1024 == 0 && ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				var enc []byte
				if enc, err = v.r.labels(id); err != nil {
					break
				}
				if err = write.ForEachLabel(string(enc), func(n, val string) { fromSeries(n, val, set) }); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("label query %v: %w", ms, err)
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	return sortLimit(out, hints), nil, nil
}

// labelsFromHead answers a label query from the head index, if it
// covers the querier's range (ok). Like the postings in Pebble, it
// answers for the series with a sample in a partition of the range.
func (q *querier) labelsFromHead(ms []*labels.Matcher, fromHead func(*headIndex, func(uint64) bool) []string,
	fromSeries func(n, v string, dst map[string]struct{}),
) (out []string, ok bool, err error) {
	t := q.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	if !q.headCoversLocked(q.mint) {
		return nil, false, nil
	}
	v, err := q.openHeadViewLocked(q.mint, q.maxt, false)
	if err != nil {
		return nil, false, err
	}
	defer v.close()
	if v.empty {
		return nil, true, nil
	}
	x := &t.mu.index
	in := func(id uint64) bool {
		ok, e := q.inViewLocked(v, id)
		if e != nil && err == nil {
			err = e
		}
		return ok
	}
	if len(ms) == 0 {
		return fromHead(x, in), true, err
	}
	set := map[string]struct{}{}
	for _, id := range x.match(ms) {
		if lbls, _, live := x.labels(id); live && in(id) {
			_ = write.ForEachLabel(lbls, func(n, v string) { fromSeries(n, v, set) })
		}
	}
	out = make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	return out, true, err
}

// inViewLocked reports whether indexed series id has a sample in the
// partitions of view v, that is, postings there: for a series whose
// newest sample is in them or before them, from its newest sample alone;
// otherwise (the range ends before the series' newest partition) from
// the postings in Pebble. The caller holds t.mu (read).
func (q *querier) inViewLocked(v *view, id uint64) (bool, error) {
	last, ok := q.t.mu.index.last(id, q.t.mu.lastOfEmpty)
	if !ok {
		return false, nil
	}
	switch p := partitionOf(last, q.g.db.partitionMs); {
	case p < v.p0:
		return false, nil
	case p <= v.p1:
		return true, nil
	}
	r, err := v.reader()
	if err != nil {
		return false, err
	}
	for p := v.p0; ; p++ {
		r.key = binary.BigEndian.AppendUint64(r.ks.postingsValue(r.key[:0], p, "", ""), id)
		if r.it.SeekGE(r.key) && bytes.Equal(r.it.Key(), r.key) {
			return true, nil
		}
		if err := r.it.Error(); err != nil {
			return false, err
		}
		if p >= v.p1 {
			return false, nil
		}
	}
}

// sortLimit sorts out and cuts it to hints.Limit.
func sortLimit(out []string, hints *storage.LabelHints) []string {
	if !slices.IsSorted(out) { // the head index's values come sorted
		slices.Sort(out)
	}
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out
}

// seriesSet is a storage.SeriesSet over a slice.
type seriesSet struct {
	list []*series
	cur  *series
}

func (s *seriesSet) Next() bool {
	if len(s.list) == 0 {
		s.cur = nil
		return false
	}
	s.cur, s.list = s.list[0], s.list[1:]
	return true
}

func (s *seriesSet) At() storage.Series                { return s.cur }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// series is one selected series: labels, the open chunk copied at select
// time, and where its sealed chunks are. Sealed chunks are read when the
// series is iterated, so a select of many series holds only their labels
// and open chunks.
type series struct {
	lset       labels.Labels
	snap       *pebble.Snapshot
	ks         keyspace
	id         uint64
	mint, maxt int64
	p0, p1     uint32
	pw         int64
	head       headCopy
	hasHead    bool
	// headOnly: the open chunk holds every sample of the series in
	// [mint, maxt]; sealed chunks are not read.
	headOnly bool
	budget   ReadBudget // of the querier; nil: none
	// hasST: the tenant has start timestamps; the iterator reads the
	// series' at its first AtST (st.go).
	hasST bool
}

func (s *series) Labels() labels.Labels { return s.lset }

// hasSamples reports whether the series has a sample in [mint, maxt]. It
// reads chunk keys and the maxt prefix of values, and decodes a chunk only
// when it covers the whole range.
func (s *series) hasSamples(v *view) (bool, error) {
	if s.hasHead {
		if ok, err := sampleIn(s.head.chunk, s.head.mint, s.head.maxt, s.mint, s.maxt); ok || err != nil {
			return ok, err
		}
	}
	if s.headOnly {
		return false, nil // the open chunk holds every sample in the range
	}
	r, err := v.reader()
	if err != nil {
		return false, err
	}
	found := false
	err = s.chunks(r.it, &r.key, func(cmint, cmaxt int64, data []byte) (bool, error) {
		ok, err := sampleIn(data, cmint, cmaxt, s.mint, s.maxt)
		found = ok
		return !ok, err
	})
	return found, err
}

// sampleIn reports whether a chunk spanning [cmint, cmaxt] has a sample in
// [mint, maxt].
func sampleIn(chunk []byte, cmint, cmaxt, mint, maxt int64) (bool, error) {
	switch {
	case cmaxt < mint || cmint > maxt:
		return false, nil
	case cmint >= mint || cmaxt <= maxt: // a sample at cmint or at cmaxt is inside
		return true, nil
	case isHistChunk(chunk):
		var hi histIters
		hit, err := hi.iterator(chunk)
		if err != nil {
			return false, err
		}
		if hit.Seek(mint) != promchunk.ValNone {
			return hit.AtT() <= maxt, nil
		}
		return false, hit.Err()
	}
	var it chunkenc.Iterator
	it.Reset(chunk)
	if it.Seek(mint) {
		t, _ := it.At()
		return t <= maxt, nil
	}
	return false, it.Err()
}

// chunks calls f with every sealed chunk of the series that overlaps
// [mint, maxt], in time order, until f returns false. data is valid only
// during the call.
func (s *series) chunks(it *pebble.Iterator, key *[]byte, f func(cmint, cmaxt int64, data []byte) (bool, error)) error {
	for p := s.p0; p <= s.p1; p++ {
		*key = s.ks.chunkSeries((*key)[:0], p, s.id)
		n := len(*key)
		for ok := it.SeekGE(*key); ok && bytes.HasPrefix(it.Key(), *key); ok = it.Next() {
			k := it.Key()
			if len(k) != n+8 {
				return fmt.Errorf("chunk key %x: bad length", k)
			}
			cmint := readTime(k[n:])
			if cmint > s.maxt {
				return nil
			}
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			d, m := binary.Uvarint(v)
			if m <= 0 {
				return fmt.Errorf("chunk %x: bad maxt", k)
			}
			cmaxt := cmint + int64(d)
			if cmaxt < s.mint {
				continue
			}
			if more, err := f(cmint, cmaxt, v[m:]); err != nil || !more {
				return err
			}
		}
		if err := it.Error(); err != nil {
			return err
		}
		// Jump over partitions in which no series has chunks.
		if !it.Valid() {
			break
		}
		{
			k := it.Key()
			if len(k) >= prefixLen+4 && k[prefixLen-1] == kindChunk {
				if q := binary.BigEndian.Uint32(k[prefixLen:]); q > p+1 {
					p = q - 1
				}
			}
		}
		if p >= s.p1 { // also stops p++ from wrapping at MaxUint32
			break
		}
	}
	return nil
}

// Iterator implements storage.Series. It reuses it if it is one of ours.
func (s *series) Iterator(it promchunk.Iterator) promchunk.Iterator {
	si, ok := it.(*seriesIterator)
	if !ok {
		si = &seriesIterator{}
	}
	si.reset(s)
	return si
}

// inShard keeps the series of shard index of count (a query frontend's
// shard, storage.SelectHints.ShardIndex and ShardCount): those whose
// labels.StableHash modulo count is index. A label set's encoding is
// that hash's input (write's series key: name 0xff value 0xff per label),
// so the hash costs one xxhash of the bytes just read, and the series of
// other shards cost no head copy and no chunk read.
func inShard(ids []uint64, encs []string, index, count uint64) ([]uint64, []string) {
	n := 0
	for i := range ids {
		if inShardOf(encs[i], index, count) {
			ids[n], encs[n] = ids[i], encs[i]
			n++
		}
	}
	return ids[:n], encs[:n]
}

// inShardOf reports whether the series with encoded labels enc is in
// shard index of count (inShard).
func inShardOf(enc string, index, count uint64) bool {
	return xxhash.Sum64String(enc)%count == index
}
