package querier

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/myelindb/myelin/write"
)

// Exemplars and metric metadata over the groups: the fan-out asks every
// owner and merges; the remote protocol carries them on two more paths
// (doc.go, "Exemplars and metadata").

// Paths of the remote protocol's exemplar and metadata reads.
const (
	PathExemplars = "/internal/querier/exemplars"
	PathMetadata  = "/internal/querier/metadata"
)

// Frame kinds of their responses.
const (
	frameExemplar byte = 'E'
	frameMetadata byte = 'M'
)

// exemplarSelecter and metadataLister are the engine querier's methods
// (server.ExemplarSelecter, server.MetadataLister, which this package
// cannot import).
type exemplarSelecter interface {
	SelectExemplars(ctx context.Context, start, end int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error)
}

type metadataLister interface {
	Metadata(ctx context.Context, metric string) ([]write.Metadata, error)
}

var (
	_ exemplarSelecter = (*fanout)(nil)
	_ metadataLister   = (*fanout)(nil)
	_ exemplarSelecter = (*leaderQuerier)(nil)
	_ metadataLister   = (*leaderQuerier)(nil)
	_ exemplarSelecter = (*Remote)(nil)
	_ metadataLister   = (*Remote)(nil)
)

// SelectExemplars asks every owner of [start, end] and merges: a series'
// exemplars from several groups (a rebalance moved it) become one list
// in time order, an exemplar present in several taken once. Series are
// sorted by labels.
func (f *fanout) SelectExemplars(ctx context.Context, start, end int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	owners := f.q.groups.Owners(start, end)
	results := make([][]exemplar.QueryResult, len(owners))
	err := f.forEachOwner(ctx, owners, func(i int, gq storage.Querier) error {
		es, ok := gq.(exemplarSelecter)
		if !ok {
			return nil
		}
		var err error
		if results[i], err = es.SelectExemplars(ctx, start, end, sets...); err != nil {
			return fmt.Errorf("exemplars of group %d: %w", owners[i], err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return mergeExemplars(results), nil
}

// mergeExemplars merges the owners' answers (mergeExemplars of one answer
// is the answer).
func mergeExemplars(results [][]exemplar.QueryResult) []exemplar.QueryResult {
	out := []exemplar.QueryResult{}
	for _, res := range results {
		out = append(out, res...)
	}
	slices.SortStableFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && labels.Equal(merged[n-1].SeriesLabels, r.SeriesLabels) {
			merged[n-1].Exemplars = append(slices.Clip(merged[n-1].Exemplars), r.Exemplars...)
			continue
		}
		merged = append(merged, r)
	}
	for i := range merged {
		exs := merged[i].Exemplars
		slices.SortStableFunc(exs, func(a, b exemplar.Exemplar) int {
			if a.Ts != b.Ts {
				return compareInt(a.Ts, b.Ts)
			}
			return 0
		})
		merged[i].Exemplars = slices.CompactFunc(exs, func(a, b exemplar.Exemplar) bool { return a.Equals(b) })
	}
	return merged
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Metadata asks every group that may hold the tenant's metadata (those of
// every ring epoch: metadata has no time) and returns the union, families
// sorted, each's distinct metadata once.
func (f *fanout) Metadata(ctx context.Context, metric string) ([]write.Metadata, error) {
	owners := f.q.groups.Owners(math.MinInt64, math.MaxInt64)
	results := make([][]write.Metadata, len(owners))
	err := f.forEachOwner(ctx, owners, func(i int, gq storage.Querier) error {
		ml, ok := gq.(metadataLister)
		if !ok {
			return nil
		}
		var err error
		if results[i], err = ml.Metadata(ctx, metric); err != nil {
			return fmt.Errorf("metadata of group %d: %w", owners[i], err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []write.Metadata
	for _, r := range results {
		for _, m := range r {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b write.Metadata) int { return strings.Compare(a.Family, b.Family) })
	return out, nil
}

// SelectExemplars reads the group's leader.
func (l *leaderQuerier) SelectExemplars(ctx context.Context, start, end int64, sets ...[]*labels.Matcher) (res []exemplar.QueryResult, err error) {
	err = l.do(ctx, func(q storage.Querier) (err error) {
		es, ok := q.(exemplarSelecter)
		if !ok {
			return nil
		}
		res, err = es.SelectExemplars(ctx, start, end, sets...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("exemplars of group %d: %w", l.id, err)
	}
	return res, nil
}

// Metadata reads the group's leader.
func (l *leaderQuerier) Metadata(ctx context.Context, metric string) (md []write.Metadata, err error) {
	err = l.do(ctx, func(q storage.Querier) (err error) {
		ml, ok := q.(metadataLister)
		if !ok {
			return nil
		}
		md, err = ml.Metadata(ctx, metric)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("metadata of group %d: %w", l.id, err)
	}
	return md, nil
}

// SelectExemplars asks the node for the group's exemplars in the
// Remote's range (start and end are those of the querier that opened it).
func (r *Remote) SelectExemplars(ctx context.Context, _, _ int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	req := &request{}
	for _, ms := range sets {
		req.matchers = append(req.matchers, ms...)
		req.sets = append(req.sets, len(ms))
	}
	body, br, err := r.call(ctx, PathExemplars, req)
	if err != nil {
		return nil, r.errorf("exemplars", err)
	}
	defer body.Close()
	fr := frameReader{br: br}
	out := []exemplar.QueryResult{}
	var sb labels.ScratchBuilder
	for {
		kind, err := fr.byte()
		if err != nil {
			return nil, r.errorf("exemplars", err)
		}
		switch kind {
		case frameSeries:
			lset, err := fr.labels(&sb)
			if err != nil {
				return nil, r.errorf("exemplars", err)
			}
			out = append(out, exemplar.QueryResult{SeriesLabels: lset})
		case frameExemplar:
			if len(out) == 0 {
				return nil, r.errorf("exemplars", fmt.Errorf("%w: an exemplar before its series", ErrCorrupt))
			}
			ts, err := fr.varint()
			if err != nil {
				return nil, r.errorf("exemplars", err)
			}
			var v [8]byte
			if _, err := io.ReadFull(fr.br, v[:]); err != nil {
				return nil, r.errorf("exemplars", cutShort(err))
			}
			lset, err := fr.labels(&sb)
			if err != nil {
				return nil, r.errorf("exemplars", err)
			}
			last := &out[len(out)-1]
			last.Exemplars = append(last.Exemplars, exemplar.Exemplar{Labels: lset, Value: math.Float64frombits(binary.LittleEndian.Uint64(v[:])), Ts: ts, HasTs: true})
		case frameTrailer:
			if _, err := fr.trailer(uint64(len(out))); err != nil {
				return nil, r.errorf("exemplars", err)
			}
			return out, nil
		default:
			return nil, r.errorf("exemplars", fmt.Errorf("%w: frame kind %q in an exemplar response", ErrCorrupt, kind))
		}
	}
}

// Metadata asks the node for the group's metric metadata.
func (r *Remote) Metadata(ctx context.Context, metric string) ([]write.Metadata, error) {
	body, br, err := r.call(ctx, PathMetadata, &request{name: metric})
	if err != nil {
		return nil, r.errorf("metadata", err)
	}
	defer body.Close()
	fr := frameReader{br: br}
	var out []write.Metadata
	for {
		kind, err := fr.byte()
		if err != nil {
			return nil, r.errorf("metadata", err)
		}
		switch kind {
		case frameMetadata:
			var m write.Metadata
			if m.Family, err = fr.string(); err == nil {
				var t byte
				if t, err = fr.byte(); err == nil && write.MetricType(t) > write.MaxMetricType {
					err = fmt.Errorf("%w: metric type %d", ErrCorrupt, t)
				}
				m.Type = write.MetricType(t)
			}
			if err == nil {
				m.Unit, err = fr.string()
			}
			if err == nil {
				m.Help, err = fr.string()
			}
			if err != nil {
				return nil, r.errorf("metadata", err)
			}
			out = append(out, m)
		case frameTrailer:
			if _, err := fr.trailer(uint64(len(out))); err != nil {
				return nil, r.errorf("metadata", err)
			}
			return out, nil
		default:
			return nil, r.errorf("metadata", fmt.Errorf("%w: frame kind %q in a metadata response", ErrCorrupt, kind))
		}
	}
}

// labels reads a label set: nlabels, then name and value of each.
func (fr *frameReader) labels(sb *labels.ScratchBuilder) (labels.Labels, error) {
	n, err := fr.uvarint()
	if err != nil {
		return labels.EmptyLabels(), err
	}
	if n > maxLabels {
		return labels.EmptyLabels(), fmt.Errorf("%w: %d labels", ErrCorrupt, n)
	}
	sb.Reset()
	for range n {
		name, err := fr.string()
		if err != nil {
			return labels.EmptyLabels(), err
		}
		value, err := fr.string()
		if err != nil {
			return labels.EmptyLabels(), err
		}
		sb.Add(name, value)
	}
	sb.Sort()
	return sb.Labels(), nil
}

// appendExemplarFrame appends an 'E' frame: ts:varint value:8 bytes LE
// nlabels:uvarint (name:string value:string)*nlabels.
func appendExemplarFrame(dst []byte, e *exemplar.Exemplar) []byte {
	dst = append(dst, frameExemplar)
	dst = binary.AppendVarint(dst, e.Ts)
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Value))
	dst = binary.AppendUvarint(dst, uint64(e.Labels.Len()))
	e.Labels.Range(func(l labels.Label) {
		dst = appendString(dst, l.Name)
		dst = appendString(dst, l.Value)
	})
	return dst
}

// appendMetadataFrame appends an 'M' frame: family:string type:byte
// unit:string help:string.
func appendMetadataFrame(dst []byte, m *write.Metadata) []byte {
	dst = append(dst, frameMetadata)
	dst = appendString(dst, m.Family)
	dst = append(dst, byte(m.Type))
	dst = appendString(dst, m.Unit)
	return appendString(dst, m.Help)
}

// serveExemplars streams q's exemplars for req.
func (h *Handler) serveExemplars(ctx context.Context, w http.ResponseWriter, q storage.Querier, req *request) {
	var res []exemplar.QueryResult
	var err error
	if es, ok := q.(exemplarSelecter); ok {
		res, err = es.SelectExemplars(ctx, req.mint, req.maxt, req.matcherSets()...)
	}
	if err != nil {
		h.fail(w, fmt.Errorf("exemplars of group %d: %w", req.group, err))
		return
	}
	sw := h.newStreamWriterVersion(w, responseVersion(req))
	for i := range res {
		sw.buf = appendSeriesFrame(sw.buf, res[i].SeriesLabels)
		for j := range res[i].Exemplars {
			sw.buf = appendExemplarFrame(sw.buf, &res[i].Exemplars[j])
			sw.maybeFlush()
		}
	}
	sw.finish(&trailer{count: uint64(len(res))})
}

// serveMetadata streams q's metadata for req.
func (h *Handler) serveMetadata(ctx context.Context, w http.ResponseWriter, q storage.Querier, req *request) {
	var md []write.Metadata
	var err error
	if ml, ok := q.(metadataLister); ok {
		md, err = ml.Metadata(ctx, req.name)
	}
	if err != nil {
		h.fail(w, fmt.Errorf("metadata of group %d: %w", req.group, err))
		return
	}
	sw := h.newStreamWriterVersion(w, responseVersion(req))
	for i := range md {
		sw.buf = appendMetadataFrame(sw.buf, &md[i])
		sw.maybeFlush()
	}
	sw.finish(&trailer{count: uint64(len(md))})
}

// matcherSets splits an exemplar request's matchers into its sets.
func (r *request) matcherSets() [][]*labels.Matcher {
	var sets [][]*labels.Matcher
	ms := r.matchers
	for _, n := range r.sets {
		sets = append(sets, ms[:n:n])
		ms = ms[n:]
	}
	return sets
}

// errSets: an exemplar request's set sizes do not add up to its matchers.
var errSets = errors.New("matcher set sizes do not add up to the matchers")
