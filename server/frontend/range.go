package frontend

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// piece is the part of a range query in one split interval.
type piece struct {
	span
	key string  // the cache key; "" if the piece is not cached
	ext *extent // a cached extent of the same key that overlaps span, or nil
	// fetches are the ranges to compute, in time order: the whole span,
	// or what ext does not cover (before it, after it, or both).
	fetches []*fetch
}

type fetch struct {
	span
	res  *result
	resp *response // the API's answer, if it was not a success
	err  error
}

// errStopped: a sibling's failure made the frontend stop this request.
var errStopped = errors.New("frontend: stopped")

// serveRange answers a range query: split into pieces, each found in
// the results cache or computed (only the part the cache lacks), the
// pieces run in parallel through the queue, the answers joined.
func (f *Frontend) serveRange(ctx context.Context, w http.ResponseWriter, req *request) serveStats {
	l := req.limits
	step := req.step
	if l.AlignQueriesWithStep && !req.info.startEnd {
		req.start = floorDiv(req.start, step) * step
		req.end = floorDiv(req.end, step) * step
	}
	if req.info.startEnd {
		// Each piece must see the whole query's start and end.
		resolveStartEnd(req.expr, req.start, req.end)
		req.query = req.expr.String()
		req.info = inspect(req.expr)
	}
	interval := l.SplitInterval.Milliseconds()
	if req.info.rangeFunc {
		interval = 0
	}
	spans := splitByInterval(req.start, req.end, step, interval)
	if len(spans) > 1 {
		f.m.split.Add(float64(len(spans)))
	}
	now := f.opts.Now().UnixMilli()
	// Answers for times after maxCacheTime are not cached: samples may
	// still arrive for them.
	maxCacheTime := now - l.MaxCacheFreshness.Milliseconds()
	cacheable := f.opts.Cache != nil && l.CacheResults && !req.info.negativeOffset && !req.info.rangeFunc &&
		!(req.info.at && req.info.maxAt > maxCacheTime) && !noStore(req.header)
	pieces := make([]*piece, len(spans))
	gen := uint64(0)
	if cacheable {
		gen = f.generation(req.tenant)
	}
	for i, s := range spans {
		p := &piece{span: s}
		if cacheable {
			p.key = cacheKey(req.tenant, gen, req.query, step, s.start, interval, req.form.Get("lookback_delta"))
		}
		pieces[i] = p
	}
	st := serveStats{pieces: len(pieces)}
	// A client that asks for stats gets the work of its query counted:
	// nothing is read from the cache (what is computed is still stored).
	if cacheable && req.stats == "" {
		f.lookup(ctx, pieces, max(now-l.ResultsCacheTTL.Milliseconds(), f.forgottenBefore(req.tenant)))
	}
	var fetches []*fetch
	for _, p := range pieces {
		p.plan(step)
		if p.ext != nil {
			st.cachedPieces++
		}
		fetches = append(fetches, p.fetches...)
	}
	f.planShards(req, len(fetches))
	// One fetch that is the whole query, and nothing to cache: the API's
	// answer is the answer (passthrough.go), and run hands it back as it
	// does an error.
	req.raw = len(pieces) == 1 && pieces[0].ext == nil && !cacheable
	if failed := f.run(ctx, req, fetches, &st); failed != nil {
		if failed.resp != nil {
			st.addStats(failed.resp.stats)
			failed.resp.writeTo(w)
			st.status = failed.resp.code
		} else {
			st.status = writeError(w, failed.err)
		}
		return st
	}
	out := &result{resultType: "matrix"}
	var header http.Header
	for _, fe := range fetches {
		out.warnings = mergeAnnotations(out.warnings, fe.res.warnings)
		out.infos = mergeAnnotations(out.infos, fe.res.infos)
		if fe.res.stats != nil {
			if out.stats == nil {
				out.stats = &queryStats{}
			}
			out.stats.add(fe.res.stats)
		}
		st.addStats(fe.res.stats)
		if header == nil {
			header = fe.resp.header
		}
	}
	if req.stats != "" && out.stats == nil {
		out.stats = &queryStats{Samples: &querySamples{}}
	}
	var all [][]series
	for _, p := range pieces {
		all = append(all, p.assemble()...)
	}
	// Joining, encoding and the extents to cache are CPU work of the
	// query's too: under a CPU slot of its tenant's, if large.
	sl, err := f.workSlot(ctx, req.tenant, countPoints(all...))
	if err != nil {
		st.status = writeError(w, err)
		return st
	}
	defer sl.Release()
	var stores []extentStore
	if cacheable {
		for _, p := range pieces {
			if s, ok := f.extentToStore(p, req, now, maxCacheTime); ok {
				stores = append(stores, s)
			}
		}
	}
	out.series = mergeMatrices(all)
	if out.series == nil {
		out.series = []series{}
	}
	body, err := out.encodeSlot(nil, req.stats != "", sl)
	sl.Release()
	if err != nil {
		st.status = writeError(w, err)
		return st
	}
	st.status = http.StatusOK
	f.writeBody(w, header, body)
	// Stores last, without a slot: a shared cache is a network call.
	for _, s := range stores {
		f.opts.Cache.Store(ctx, s.key, s.value, s.ttl)
		f.m.cacheStores.WithLabelValues("stored").Inc()
	}
	return st
}

// countPoints returns the points of the series of some answers.
func countPoints(parts ...[]series) int {
	n := 0
	for _, p := range parts {
		for _, s := range p {
			n += len(s.floats) + len(s.hists)
		}
	}
	return n
}

// lookup finds the pieces' cached extents; an extent computed before
// notBefore (the TTL) or that does not overlap its piece is not used.
func (f *Frontend) lookup(ctx context.Context, pieces []*piece, notBefore int64) {
	keys := make([]string, len(pieces))
	for i, p := range pieces {
		keys[i] = hashKey(p.key)
	}
	found := f.opts.Cache.Fetch(ctx, keys)
	for i, p := range pieces {
		f.m.cacheReqs.Inc()
		v, ok := found[keys[i]]
		if !ok {
			f.m.cacheMisses.Inc()
			continue
		}
		e, err := decodeExtent(v)
		if err != nil || e.key != p.key || e.cachedAt <= notBefore || e.end < p.start || e.start > p.end {
			f.m.cacheMisses.Inc()
			continue
		}
		p.ext = e
		if e.start <= p.start && e.end >= p.end {
			f.m.cacheHits.WithLabelValues("full").Inc()
		} else {
			f.m.cacheHits.WithLabelValues("partial").Inc()
		}
	}
}

// plan sets the fetches of a piece: what its extent does not cover.
// Extent and piece are on the same step grid (the key holds it).
func (p *piece) plan(step int64) {
	if p.ext == nil {
		p.fetches = []*fetch{{span: p.span}}
		return
	}
	if p.ext.start > p.start {
		p.fetches = append(p.fetches, &fetch{span: span{p.start, p.ext.start - step}})
	}
	if p.ext.end < p.end {
		p.fetches = append(p.fetches, &fetch{span: span{p.ext.end + step, p.end}})
	}
}

// assemble returns the piece's answer as matrices in time order.
func (p *piece) assemble() [][]series {
	if p.ext == nil {
		return [][]series{p.fetches[0].res.series}
	}
	var parts [][]series
	i := 0
	if p.ext.start > p.start {
		parts = append(parts, p.fetches[0].res.series)
		i++
	}
	parts = append(parts, cut(p.ext.series, max(p.start, p.ext.start), min(p.end, p.ext.end)))
	if i < len(p.fetches) {
		parts = append(parts, p.fetches[i].res.series)
	}
	return parts
}

// extentStore is an extent to write to the results cache.
type extentStore struct {
	key   string // hashed
	value []byte
	ttl   time.Duration
}

// extentToStore returns the piece's new extent: the cached one joined
// with what was computed, cut at maxCacheTime. Nothing is written if
// nothing was computed, or if an answer carries annotations (which
// cannot be cut to a part of the range) or native histograms (kept as
// JSON only).
func (f *Frontend) extentToStore(p *piece, req *request, now, maxCacheTime int64) (extentStore, bool) {
	if len(p.fetches) == 0 {
		return extentStore{}, false
	}
	start, end := p.start, p.end
	parts := [][]series{}
	i := 0
	if p.ext != nil {
		start, end = min(start, p.ext.start), max(end, p.ext.end)
		if p.ext.start > p.start {
			parts = append(parts, p.fetches[0].res.series)
			i++
		}
		parts = append(parts, p.ext.series)
	}
	for _, fe := range p.fetches[i:] {
		parts = append(parts, fe.res.series)
	}
	for _, fe := range p.fetches {
		if len(fe.res.warnings) > 0 || len(fe.res.infos) > 0 {
			f.m.cacheStores.WithLabelValues("not_cacheable").Inc()
			return extentStore{}, false
		}
		for _, s := range fe.res.series {
			if len(s.hists) > 0 {
				f.m.cacheStores.WithLabelValues("not_cacheable").Inc()
				return extentStore{}, false
			}
		}
	}
	if end > maxCacheTime {
		if maxCacheTime < start {
			return extentStore{}, false
		}
		end = start + (maxCacheTime-start)/req.step*req.step
	}
	if p.ext != nil && start == p.ext.start && end == p.ext.end {
		return extentStore{}, false // what was computed is all too fresh to cache
	}
	// INVARIANT: an extent's cachedAt is when its oldest part was
	// computed, so joining fresh steps to it never extends the life of
	// the old ones: the staleness bound is the TTL from that time.
	cachedAt := now
	if p.ext != nil {
		cachedAt = p.ext.cachedAt
	}
	ttl := req.limits.ResultsCacheTTL - time.Duration(now-cachedAt)*time.Millisecond
	if ttl <= 0 {
		return extentStore{}, false
	}
	e := &extent{key: p.key, cachedAt: cachedAt, start: start, end: end, series: cut(mergeMatrices(parts), start, end)}
	v := encodeExtent(e)
	if len(v) > maxExtentBytes {
		f.m.cacheStores.WithLabelValues("too_large").Inc()
		return extentStore{}, false
	}
	return extentStore{key: hashKey(p.key), value: v, ttl: ttl}, true
}

// maxExtentBytes is the largest extent written: memcached's default item
// size limit (1 MiB) less room for its own header and the key.
const maxExtentBytes = 1<<20 - 1024

// run computes the fetches in parallel through the queue and returns
// the first that failed (the others are canceled), or nil.
func (f *Frontend) run(ctx context.Context, req *request, fetches []*fetch, st *serveStats) *fetch {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed *fetch
	)
	fail := func(fe *fetch) {
		mu.Lock()
		defer mu.Unlock()
		if failed == nil {
			failed = fe
			cancel(errStopped)
		}
	}
	var stMu sync.Mutex
	for _, fe := range fetches {
		wg.Go(func() {
			var pst serveStats
			res, resp, err := f.fetch(ctx, req, fe.start, fe.end, &pst)
			stMu.Lock()
			st.shards += pst.shards
			stMu.Unlock()
			switch {
			case err != nil:
				if context.Cause(ctx) == errStopped {
					return // a sibling failed first
				}
				fe.err = err
				fail(fe)
				return
			case res == nil || res.resultType != "matrix":
				// The API's error, or an answer we cannot join: pass it
				// on as it is.
				fe.resp = resp
				fail(fe)
				return
			}
			fe.resp, fe.res = resp, res
		})
	}
	wg.Wait()
	if failed != nil && failed.err == nil && failed.resp == nil {
		failed.err = ctx.Err()
	}
	return failed
}

// noStore reports whether the request's Cache-Control has the no-store
// directive: as in Mimir's query-frontend, its answer is neither read
// from the results cache nor written to it (a benchmark measuring the
// evaluation, a client that must see what is stored now).
func noStore(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-store") {
				return true
			}
		}
	}
	return false
}
