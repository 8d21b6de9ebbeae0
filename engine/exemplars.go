package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/write"
)

// Exemplars are kept per tenant in a circular buffer of
// write.MetaLimits.MaxExemplars entries, in apply order, as Prometheus's
// tsdb CircularExemplarStorage keeps them (whose design this follows: a
// ring of entries, each linked to the next entry of its series, and an
// index of series to their oldest and newest entry). When the buffer is
// full a new exemplar takes the oldest one's slot. The buffer's size is
// the one in the entry that brings exemplars, so every replica keeps the
// same exemplars; an entry with another size resizes it, keeping the
// newest ones.

// ErrOutOfOrderExemplar refuses an exemplar older than the newest
// exemplar of its series in the buffer (Prometheus's text).
var ErrOutOfOrderExemplar = errors.New("out of order exemplar")

// ErrExemplarNoSeries refuses the exemplars of a series with no samples
// in the head: Prometheus's head needs the series too.
var ErrExemplarNoSeries = errors.New("exemplar for a series with no samples in the head")

// ErrExemplarsDisabled refuses exemplars of an entry whose exemplar limit
// is 0 (the proposer sends none then).
var ErrExemplarsDisabled = errors.New("exemplars are disabled for the tenant (max_global_exemplars_per_user is 0)")

// ErrMetadataLimit and ErrMetadataPerMetricLimit refuse a metric
// family's metadata past the entry's limits (write.MetaLimits).
var (
	ErrMetadataLimit          = errors.New("metric metadata limit of the tenant in the group reached")
	ErrMetadataPerMetricLimit = errors.New("metadata per metric limit of the tenant in the group reached")
)

// exemplarStore is a tenant's exemplars in the group. Guarded by the
// tenant's mu.
type exemplarStore struct {
	// buf holds up to size entries; once full, next is the oldest entry,
	// the slot the next exemplar takes.
	buf  []storedExemplar
	next int
	size int
	// series indexes the series with exemplars in buf by their label set
	// encoding.
	series map[string]*exSeries
	// dirty: changed since the last checkpoint; pages: the pages stored
	// by it.
	dirty bool
	pages int
}

// storedExemplar is one slot of the buffer.
type storedExemplar struct {
	s    *exSeries
	t    int64
	v    float64
	lbls string // the exemplar's label set encoding
	// newer is the slot of the next newer exemplar of the same series, -1
	// for its newest.
	newer int32
}

// exSeries is a series with exemplars in the buffer.
type exSeries struct {
	key            string // label set encoding
	lset           labels.Labels
	oldest, newest int32 // slots
}

// exemplarsOf returns t's exemplar store, creating it.
func (t *tenant) exemplarsLocked() *exemplarStore {
	if t.mu.exemplars == nil {
		t.mu.exemplars = &exemplarStore{series: map[string]*exSeries{}}
	}
	return t.mu.exemplars
}

// resize makes the buffer hold size entries, keeping the newest ones in
// their order.
func (es *exemplarStore) resize(size int) {
	if size == es.size {
		return
	}
	old := es.ordered()
	if len(old) > size {
		old = old[len(old)-size:]
	}
	es.buf, es.next, es.size = make([]storedExemplar, 0, min(size, max(len(old), 64))), 0, size
	clear(es.series)
	for _, e := range old {
		es.push(e.s.key, e.s.lset, e.t, e.v, e.lbls)
	}
	es.dirty = true
}

// ordered returns the entries, oldest first (a copy).
func (es *exemplarStore) ordered() []storedExemplar {
	if len(es.buf) < es.size || es.next == 0 {
		return slices.Clone(es.buf)
	}
	return append(slices.Clone(es.buf[es.next:]), es.buf[:es.next]...)
}

// add stores an exemplar of the series key (labels lset, decoded by the
// caller only for a series new to the store: lsetOf), refusing one older
// than the series' newest. An exemplar equal to the newest is a retry:
// accepted, not stored again. Prometheus compares with the newest only
// too; exemplars at the newest's time with another value or labels are
// kept (the buckets of one native histogram may carry them).
func (es *exemplarStore) add(key string, lsetOf func() (labels.Labels, error), e *write.Exemplar) error {
	s := es.series[key]
	if s != nil {
		n := &es.buf[s.newest]
		switch {
		case e.T < n.t:
			return ErrOutOfOrderExemplar
		case e.T == n.t && math.Float64bits(e.V) == math.Float64bits(n.v) && string(e.Labels) == n.lbls:
			return nil
		}
	}
	var lset labels.Labels
	if s == nil {
		var err error
		if lset, err = lsetOf(); err != nil {
			return err
		}
	} else {
		lset = s.lset
	}
	es.push(key, lset, e.T, e.V, string(e.Labels))
	es.dirty = true
	return nil
}

// push appends an exemplar, evicting the oldest of a full buffer.
func (es *exemplarStore) push(key string, lset labels.Labels, t int64, v float64, lbls string) {
	if es.size == 0 {
		panic("BUG: push to an exemplar buffer of size 0")
	}
	var slot int
	if len(es.buf) < es.size {
		slot = len(es.buf)
		es.buf = append(es.buf, storedExemplar{})
	} else {
		slot = es.next
		es.next = (es.next + 1) % es.size
		es.evict(slot)
	}
	s := es.series[key]
	if s == nil {
		s = &exSeries{key: key, lset: lset, oldest: int32(slot)}
		es.series[key] = s
	} else {
		es.buf[s.newest].newer = int32(slot)
	}
	s.newest = int32(slot)
	es.buf[slot] = storedExemplar{s: s, t: t, v: v, lbls: lbls, newer: -1}
}

// evict drops the exemplar in slot, the oldest of the buffer and so of
// its series.
func (es *exemplarStore) evict(slot int) {
	old := &es.buf[slot]
	s := old.s
	if old.newer < 0 {
		delete(es.series, s.key)
	} else {
		s.oldest = old.newer
	}
	*old = storedExemplar{}
}

// applyExemplarsLocked stores the exemplars of batch series bs (hash h)
// under the entry's limits and returns the number refused and the first
// refusal's error.
func (a *appender) applyExemplarsLocked(h uint64, bs *write.Series, lim write.MetaLimits) (int, error) {
	t := a.t
	if lim.MaxExemplars <= 0 {
		return len(bs.Exemplars()), ErrExemplarsDisabled
	}
	// Only for a series with samples in the head: whether a series is
	// in the head with samples is the same on every replica (the series
	// limits' count rests on it), unlike a series merely looked up.
	if s := t.lookupLocked(h, bs.Labels); s == nil || s.numSamples() == 0 {
		return len(bs.Exemplars()), ErrExemplarNoSeries
	}
	es := t.exemplarsLocked()
	es.resize(lim.MaxExemplars)
	lsetOf := func() (labels.Labels, error) {
		var sb labels.ScratchBuilder
		return write.DecodeLabels(&sb, string(bs.Labels))
	}
	refused := 0
	var first error
	key := string(bs.Labels)
	exs := bs.Exemplars()
	for j := range exs {
		e := &exs[j]
		if err := es.add(key, lsetOf, e); err != nil {
			if refused == 0 {
				first = fmt.Errorf("exemplar %d at %d: %w", j, e.T, err)
			}
			refused++
		}
	}
	return refused, first
}

// selectExemplars returns the exemplars in [start, end] of the series
// matching any of the matcher sets, each series' oldest first, series
// sorted by labels.
func (es *exemplarStore) selectExemplars(start, end int64, sets [][]*labels.Matcher) []exemplar.QueryResult {
	var out []exemplar.QueryResult
	for _, s := range es.series {
		if !matchesAny(s.lset, sets) {
			continue
		}
		var exs []exemplar.Exemplar
		var sb labels.ScratchBuilder
		for i := s.oldest; i >= 0; i = es.buf[i].newer {
			e := &es.buf[i]
			if e.t < start || e.t > end {
				continue
			}
			el := labels.EmptyLabels()
			if e.lbls != "" {
				var err error
				if el, err = write.DecodeLabels(&sb, e.lbls); err != nil {
					continue // validated by the server; unreachable
				}
			}
			exs = append(exs, exemplar.Exemplar{Labels: el, Value: e.v, Ts: e.t, HasTs: true})
		}
		if len(exs) > 0 {
			out = append(out, exemplar.QueryResult{SeriesLabels: s.lset, Exemplars: exs})
		}
	}
	slices.SortFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out
}

// matchesAny reports whether lset matches every matcher of one of sets
// (no sets: every series).
func matchesAny(lset labels.Labels, sets [][]*labels.Matcher) bool {
	if len(sets) == 0 {
		return true
	}
	for _, ms := range sets {
		ok := true
		for _, m := range ms {
			if !m.Matches(lset.Get(m.Name)) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// metadataRetain: a metric family's metadata is served, and counted
// against the limits, until the tenant's newest sample is this much
// newer than the entry that last brought it (Mimir's
// -ingester.metadata-retain-period, measured in sample time: apply
// reads no clock).
const metadataRetain = 10 * 60 * 1000

// metaStore is a tenant's metric metadata in the group: per metric
// family the distinct metadata that arrived, with the tenant's newest
// sample time when each last did. Guarded by the tenant's mu.
type metaStore struct {
	families map[string][]metaEntry
	dirty    bool
	pages    int // stored by the last checkpoint
}

type metaEntry struct {
	typ        write.MetricType
	unit, help string
	seen       int64 // the tenant's maxT when it last arrived
}

func (t *tenant) metadataLocked() *metaStore {
	if t.mu.metadata == nil {
		t.mu.metadata = &metaStore{families: map[string][]metaEntry{}}
	}
	return t.mu.metadata
}

// sweep drops the entries of family f (all families if f is "") last
// seen before horizon.
func (ms *metaStore) sweep(f string, horizon int64) {
	for name, es := range ms.families {
		if f != "" && name != f {
			continue
		}
		kept := slices.DeleteFunc(es, func(e metaEntry) bool { return e.seen < horizon })
		if len(kept) == 0 {
			delete(ms.families, name)
		} else {
			ms.families[name] = kept
		}
		ms.dirty = true
	}
}

// applyMetadataLocked records m under the entry's limits.
func (a *appender) applyMetadataLocked(m *write.Metadata, lim write.MetaLimits) error {
	t := a.t
	ms := t.metadataLocked()
	now := t.mu.maxT
	es := ms.families[m.Family]
	for i := range es {
		if es[i].typ == m.Type && es[i].unit == m.Unit && es[i].help == m.Help {
			if now > es[i].seen {
				es[i].seen = now
				ms.dirty = true
			}
			return nil
		}
	}
	horizon := now - metadataRetain
	if now == minTime {
		horizon = minTime
	}
	if es == nil && lim.MaxMetadata > 0 && len(ms.families) >= lim.MaxMetadata {
		ms.sweep("", horizon)
		if len(ms.families) >= lim.MaxMetadata {
			return fmt.Errorf("%w: %d metric families", ErrMetadataLimit, len(ms.families))
		}
	}
	if es != nil && lim.MaxMetadataPerMetric > 0 && len(es) >= lim.MaxMetadataPerMetric {
		ms.sweep(m.Family, horizon)
		if es = ms.families[m.Family]; len(es) >= lim.MaxMetadataPerMetric {
			return fmt.Errorf("%w: %d metadata of %s", ErrMetadataPerMetricLimit, len(es), m.Family)
		}
	}
	ms.families[m.Family] = append(ms.families[m.Family], metaEntry{typ: m.Type, unit: m.Unit, help: m.Help, seen: now})
	ms.dirty = true
	return nil
}

// list returns the metadata served at the tenant's newest sample time
// maxT: of metric (all if ""), families sorted, each's entries in arrival
// order.
func (ms *metaStore) list(metric string, maxT int64) []write.Metadata {
	horizon := maxT - metadataRetain
	if maxT == minTime {
		horizon = minTime
	}
	var out []write.Metadata
	for name, es := range ms.families {
		if metric != "" && name != metric {
			continue
		}
		for _, e := range es {
			if e.seen >= horizon {
				out = append(out, write.Metadata{Family: name, Type: e.typ, Unit: e.unit, Help: e.help})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b write.Metadata) int { return strings.Compare(a.Family, b.Family) })
	return out
}

// Stored form of exemplars and metadata: pages under 'm' 'E' page:4 and
// 'm' 'M' page:4 (engine/doc.go), each at most pageItems items, so that
// no value nears the snapshot stream's 64 MiB bound.
const (
	metaExemplars = 'E'
	metaMetadata  = 'M'
	// exemplarPageVersion and metadataPageVersion are the first byte of
	// each page.
	exemplarPageVersion byte = 1
	metadataPageVersion byte = 1
	pageItems                = 4096
)

// appendExemplarPages calls put with each page of es's entries, oldest
// first:
//
//	page   = version:byte(1) size:uvarint nseries:uvarint labels:string*nseries
//	         n:uvarint (series:uvarint t:varint v:8 bytes LE labels:string)*n
//
// series indexes the page's series table (in order of first appearance).
func appendExemplarPages(es *exemplarStore, put func(page int, v []byte) error) error {
	all := es.ordered()
	for p := 0; p*pageItems < len(all); p++ {
		items := all[p*pageItems : min(len(all), (p+1)*pageItems)]
		idx := map[*exSeries]int{}
		var table []*exSeries
		for _, e := range items {
			if _, ok := idx[e.s]; !ok {
				idx[e.s] = len(table)
				table = append(table, e.s)
			}
		}
		v := []byte{exemplarPageVersion}
		v = binary.AppendUvarint(v, uint64(es.size))
		v = binary.AppendUvarint(v, uint64(len(table)))
		for _, s := range table {
			v = binary.AppendUvarint(v, uint64(len(s.key)))
			v = append(v, s.key...)
		}
		v = binary.AppendUvarint(v, uint64(len(items)))
		for _, e := range items {
			v = binary.AppendUvarint(v, uint64(idx[e.s]))
			v = binary.AppendVarint(v, e.t)
			v = binary.LittleEndian.AppendUint64(v, math.Float64bits(e.v))
			v = binary.AppendUvarint(v, uint64(len(e.lbls)))
			v = append(v, e.lbls...)
		}
		if err := put(p, v); err != nil {
			return err
		}
	}
	return nil
}

// pageReader reads a stored page.
type pageReader struct {
	b   []byte
	err error
}

func (r *pageReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *pageReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *pageReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errors.New("string past the end")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *pageReader) fixed64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.err = errors.New("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *pageReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.err = errors.New("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// loadExemplarPage appends the exemplars of a stored page to es.
func loadExemplarPage(es *exemplarStore, v []byte) error {
	r := pageReader{b: v}
	if ver := r.byte(); r.err != nil || ver != exemplarPageVersion {
		return fmt.Errorf("exemplar page version %d: %v", ver, r.err)
	}
	size := r.uvarint()
	if r.err == nil && (size == 0 || size > math.MaxInt32) {
		return fmt.Errorf("exemplar buffer size %d", size)
	}
	if es.size == 0 {
		es.size = int(size)
	}
	ns := r.uvarint()
	if ns > uint64(len(r.b)) {
		return errors.New("exemplar page: series count past the end")
	}
	keys := make([]string, 0, ns)
	lsets := make([]labels.Labels, 0, ns)
	var sb labels.ScratchBuilder
	for range ns {
		k := r.string()
		if r.err != nil {
			break
		}
		lset, err := write.DecodeLabels(&sb, k)
		if err != nil {
			return fmt.Errorf("exemplar page: series %q: %w", k, err)
		}
		keys, lsets = append(keys, k), append(lsets, lset)
	}
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		si := r.uvarint()
		t := r.varint()
		val := math.Float64frombits(r.fixed64())
		l := r.string()
		if r.err != nil {
			break
		}
		if si >= uint64(len(keys)) {
			return fmt.Errorf("exemplar page: series %d of %d", si, len(keys))
		}
		lset := lsets[si]
		if s := es.series[keys[si]]; s != nil {
			lset = s.lset
		}
		es.push(keys[si], lset, t, val, l)
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("exemplar page: %w", r.err)
	}
	return nil
}

// appendMetadataPages calls put with each page of ms's families, sorted
// by name:
//
//	page   = version:byte(1) nfamilies:uvarint family*nfamilies
//	family = name:string n:uvarint (type:byte unit:string help:string seen:varint)*n
func appendMetadataPages(ms *metaStore, put func(page int, v []byte) error) error {
	names := make([]string, 0, len(ms.families))
	for name := range ms.families {
		names = append(names, name)
	}
	slices.Sort(names)
	for p := 0; p*pageItems < len(names); p++ {
		page := names[p*pageItems : min(len(names), (p+1)*pageItems)]
		v := []byte{metadataPageVersion}
		v = binary.AppendUvarint(v, uint64(len(page)))
		for _, name := range page {
			es := ms.families[name]
			v = binary.AppendUvarint(v, uint64(len(name)))
			v = append(v, name...)
			v = binary.AppendUvarint(v, uint64(len(es)))
			for _, e := range es {
				v = append(v, byte(e.typ))
				v = binary.AppendUvarint(v, uint64(len(e.unit)))
				v = append(v, e.unit...)
				v = binary.AppendUvarint(v, uint64(len(e.help)))
				v = append(v, e.help...)
				v = binary.AppendVarint(v, e.seen)
			}
		}
		if err := put(p, v); err != nil {
			return err
		}
	}
	return nil
}

// loadMetadataPage adds the families of a stored page to ms.
func loadMetadataPage(ms *metaStore, v []byte) error {
	r := pageReader{b: v}
	if ver := r.byte(); r.err != nil || ver != metadataPageVersion {
		return fmt.Errorf("metadata page version %d: %v", ver, r.err)
	}
	nf := r.uvarint()
	for i := uint64(0); i < nf && r.err == nil; i++ {
		name := r.string()
		n := r.uvarint()
		if n > uint64(len(r.b)) {
			return errors.New("metadata page: entry count past the end")
		}
		es := make([]metaEntry, 0, n)
		for j := uint64(0); j < n && r.err == nil; j++ {
			typ := r.byte()
			e := metaEntry{typ: write.MetricType(typ), unit: r.string(), help: r.string(), seen: r.varint()}
			es = append(es, e)
		}
		if r.err == nil {
			ms.families[name] = es
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("metadata page: %w", r.err)
	}
	return nil
}

// pageKey is the key of page p of a tenant's exemplars or metadata (sub
// metaExemplars or metaMetadata).
func pageKey(dst []byte, ks keyspace, sub byte, p int) []byte {
	return binary.BigEndian.AppendUint32(ks.metaKey(dst, sub), uint32(p))
}

// checkpointMetaLocked writes t's exemplars and metadata, if changed
// since the last checkpoint, to their pages in pb, deleting the pages
// past the new last one. It returns the new page counts, to record once
// the checkpoint is durable.
func checkpointMetaLocked(pb *pebble.Batch, t *tenant) (exPages, mdPages int, err error) {
	exPages, mdPages = -1, -1
	write := func(sub byte, old int, appendPages func(put func(int, []byte) error) error) (int, error) {
		n := 0
		if err := appendPages(func(p int, v []byte) error {
			n = p + 1
			return pb.Set(pageKey(nil, t.ks, sub, p), v, nil)
		}); err != nil {
			return 0, err
		}
		for p := n; p < old; p++ {
			if err := pb.Delete(pageKey(nil, t.ks, sub, p), nil); err != nil {
				return 0, err
			}
		}
		return n, nil
	}
	if es := t.mu.exemplars; es != nil && es.dirty {
		if exPages, err = write(metaExemplars, es.pages, func(put func(int, []byte) error) error { return appendExemplarPages(es, put) }); err != nil {
			return 0, 0, err
		}
	}
	if ms := t.mu.metadata; ms != nil && ms.dirty {
		if mdPages, err = write(metaMetadata, ms.pages, func(put func(int, []byte) error) error { return appendMetadataPages(ms, put) }); err != nil {
			return 0, 0, err
		}
	}
	return exPages, mdPages, nil
}

// loadMetaLocked reads t's stored exemplar and metadata pages.
func (g *Group) loadMetaLocked(t *tenant) error {
	for _, sub := range []byte{metaExemplars, metaMetadata} {
		prefix := t.ks.metaKey(nil, sub)
		it, err := g.db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
		if err != nil {
			return err
		}
		n := 0
		for it.First(); it.Valid(); it.Next() {
			if sub == metaExemplars {
				err = loadExemplarPage(t.exemplarsLocked(), it.Value())
			} else {
				err = loadMetadataPage(t.metadataLocked(), it.Value())
			}
			if err != nil {
				it.Close()
				return fmt.Errorf("key %x: %w", it.Key(), err)
			}
			n++
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
		if sub == metaExemplars && t.mu.exemplars != nil {
			t.mu.exemplars.pages, t.mu.exemplars.dirty = n, false
		} else if sub == metaMetadata && t.mu.metadata != nil {
			t.mu.metadata.pages, t.mu.metadata.dirty = n, false
		}
	}
	return nil
}

// SelectExemplars returns the tenant's exemplars with times in [start,
// end] of the series that match every matcher of one of the sets (no
// set: all series), series sorted by labels, each's exemplars oldest
// first. The result does not alias the group. It implements the
// querier side of Prometheus's storage.ExemplarQuerier, with a context.
func (q *querier) SelectExemplars(_ context.Context, start, end int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	if q.t == nil {
		return nil, nil
	}
	q.t.mu.RLock()
	defer q.t.mu.RUnlock()
	if q.t.mu.exemplars == nil {
		return nil, nil
	}
	return q.t.mu.exemplars.selectExemplars(start, end, sets), nil
}

// Metadata returns the tenant's metric metadata in the group: of metric
// (every family if ""), families sorted by name, each's distinct metadata
// in arrival order, those not seen for metadataRetain of the tenant's
// sample time left out.
func (q *querier) Metadata(_ context.Context, metric string) ([]write.Metadata, error) {
	if q.t == nil {
		return nil, nil
	}
	q.t.mu.RLock()
	defer q.t.mu.RUnlock()
	if q.t.mu.metadata == nil {
		return nil, nil
	}
	return q.t.mu.metadata.list(metric, q.t.mu.maxT), nil
}
