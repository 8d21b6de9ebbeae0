package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"

	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// ExemplarSelecter is what a Storage's queriers offer for
// /api/v1/query_exemplars (the engine's, and server/querier's over the
// groups): a tenant's exemplars in [start, end] of the series matching
// every matcher of one of the sets, series sorted by labels, each's
// exemplars oldest first. A querier without it has no exemplars.
type ExemplarSelecter interface {
	SelectExemplars(ctx context.Context, start, end int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error)
}

// MetadataLister is what a Storage's queriers offer for /api/v1/metadata:
// a tenant's metric metadata, of metric (every family if ""), families
// sorted by name. A querier without it has none.
type MetadataLister interface {
	Metadata(ctx context.Context, metric string) ([]write.Metadata, error)
}

// tenantExemplars is the API's storage.ExemplarQueryable: the tenant (or,
// federated, the tenants) come from the request's context, as for
// tenantQueryable.
type tenantExemplars struct{ s Storage }

func (e tenantExemplars) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	org, ok := tenant.From(ctx)
	if !ok {
		return nil, tenant.ErrMissing
	}
	return &exemplarQuerier{ctx: ctx, s: e.s, org: org}, nil
}

type exemplarQuerier struct {
	ctx context.Context
	s   Storage
	org string
}

// Select returns the exemplars of the request's tenant; of several
// federated tenants, each series with its __tenant_id__ label, a set's
// matchers on that label choosing the tenants it applies to.
func (q *exemplarQuerier) Select(start, end int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	if !federatedID(q.org) {
		return selectExemplars(q.ctx, q.s, q.org, start, end, sets)
	}
	out := []exemplar.QueryResult{}
	for _, id := range tenant.Split(q.org) {
		var mine [][]*labels.Matcher
		for _, ms := range sets {
			pass, ok := tenantMatchers(ms, id)
			if ok {
				mine = append(mine, pass)
			}
		}
		if len(sets) > 0 && len(mine) == 0 {
			continue
		}
		res, err := selectExemplars(q.ctx, q.s, id, start, end, mine)
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			b := labels.NewBuilder(r.SeriesLabels)
			b.Set(TenantLabel, id)
			r.SeriesLabels = b.Labels()
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out, nil
}

// tenantMatchers returns ms without its matchers on TenantLabel, and
// whether they all match id.
func tenantMatchers(ms []*labels.Matcher, id string) ([]*labels.Matcher, bool) {
	var pass []*labels.Matcher
	for _, m := range ms {
		if m.Name != TenantLabel {
			pass = append(pass, m)
		} else if !m.Matches(id) {
			return nil, false
		}
	}
	return pass, true
}

// selectExemplars reads tenant id's exemplars from s.
func selectExemplars(ctx context.Context, s Storage, id string, start, end int64, sets [][]*labels.Matcher) ([]exemplar.QueryResult, error) {
	sq, err := s.Querier(id, start, end)
	if err != nil {
		return nil, fmt.Errorf("open querier of tenant %s: %w", id, err)
	}
	es, ok := sq.(ExemplarSelecter)
	if !ok {
		return []exemplar.QueryResult{}, sq.Close()
	}
	res, err := es.SelectExemplars(ctx, start, end, sets...)
	if err := errors.Join(err, sq.Close()); err != nil {
		return nil, err
	}
	if res == nil {
		res = []exemplar.QueryResult{}
	}
	return res, nil
}

// serveMetadata answers /api/v1/metadata as Prometheus does (metric,
// limit, limit_per_metric; the same JSON), from the tenant's metric
// metadata stored from remote write, where Prometheus asks its scrape
// targets. Families are taken in name order where Prometheus takes them
// in map order, so a limit cuts the same ones every time.
func (a *QueryAPI) serveMetadata(w http.ResponseWriter, r *http.Request) {
	limit, limitPerMetric := -1, -1
	for _, p := range []struct {
		name string
		v    *int
	}{{"limit", &limit}, {"limit_per_metric", &limitPerMetric}} {
		if s := r.FormValue(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				writeAPIError(w, http.StatusBadRequest, "bad_data", p.name+" must be a number")
				return
			}
			*p.v = n
		}
	}
	ctx := r.Context()
	org, ok := tenant.From(ctx)
	if !ok {
		writeAPIError(w, http.StatusUnauthorized, "bad_data", tenant.ErrMissing.Error())
		return
	}
	metric := r.FormValue("metric")
	var all []write.Metadata
	for _, id := range tenant.Split(org) {
		md, err := listMetadata(ctx, a.storage, id, metric)
		if err != nil {
			code, typ := http.StatusInternalServerError, "internal"
			if errors.Is(err, context.DeadlineExceeded) {
				code, typ = http.StatusServiceUnavailable, "timeout"
			}
			writeAPIError(w, code, typ, err.Error())
			return
		}
		all = append(all, md...)
	}
	slices.SortStableFunc(all, func(a, b write.Metadata) int { return strings.Compare(a.Family, b.Family) })
	res := map[string][]metadata.Metadata{}
	for _, m := range all {
		ms, ok := res[m.Family]
		if !ok && limit >= 0 && len(res) >= limit {
			break
		}
		if limitPerMetric > 0 && len(ms) >= limitPerMetric {
			continue
		}
		pm := metadata.Metadata{Type: metricTypeName(m.Type), Unit: m.Unit, Help: m.Help}
		if !slices.Contains(ms, pm) {
			res[m.Family] = append(ms, pm)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		Status string                         `json:"status"`
		Data   map[string][]metadata.Metadata `json:"data"`
	}{"success", res}) // a write error means the client left
}

// listMetadata reads tenant id's metadata of metric from s.
func listMetadata(ctx context.Context, s Storage, id, metric string) ([]write.Metadata, error) {
	sq, err := s.Querier(id, math.MinInt64, math.MaxInt64)
	if err != nil {
		return nil, fmt.Errorf("open querier of tenant %s: %w", id, err)
	}
	ml, ok := sq.(MetadataLister)
	if !ok {
		return nil, sq.Close()
	}
	md, err := ml.Metadata(ctx, metric)
	return md, errors.Join(err, sq.Close())
}

// metricTypeName is the name Prometheus's API gives a remote-write
// metric type.
func metricTypeName(t write.MetricType) model.MetricType {
	switch t {
	case 1:
		return model.MetricTypeCounter
	case 2:
		return model.MetricTypeGauge
	case 3:
		return model.MetricTypeHistogram
	case 4:
		return model.MetricTypeGaugeHistogram
	case 5:
		return model.MetricTypeSummary
	case 6:
		return model.MetricTypeInfo
	case 7:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}
