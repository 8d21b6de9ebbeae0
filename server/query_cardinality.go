package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

const (
	// cardinalityWindow: /api/v1/status/tsdb counts the series with
	// samples in this much time before now, the active series (what a
	// Prometheus's head holds, about 2-3 h, is not a notion of ours).
	cardinalityWindow = time.Hour
	// cardinalityMaxSeries bounds the series one /api/v1/status/tsdb
	// counts: the count holds every distinct label pair in memory (a map
	// entry of ~100 bytes each), so a tenant whose series each carry two
	// unique values costs ~100 MB at this bound. Past it the answer says
	// it counted only the first ones.
	cardinalityMaxSeries = 500_000
	// Prometheus's default and largest limit of rows per list.
	cardinalityDefaultLimit = 10
	cardinalityMaxLimit     = 10_000
)

// serveCardinality answers GET /api/v1/status/tsdb for the request's
// tenant (or tenants, federated), in Prometheus's shape (v1.TSDBStatus):
// the series with samples in the last cardinalityWindow, the top `limit`
// metric names by series, label names by distinct values and by bytes of
// values, and label pairs by series.
//
// Prometheus reads these from its head's postings; we count them by
// selecting every series of the window, which costs about what
// /api/v1/series?match[]={__name__=~".+"} costs, and so runs under the
// query gate and timeout like a query. The limits room will keep these
// counts per tenant as series are created, and this endpoint will read
// them there. chunkCount is 0: it is not known without reading chunks.
func (a *QueryAPI) serveCardinality(w http.ResponseWriter, r *http.Request) {
	limit := cardinalityDefaultLimit
	if s := r.Form.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		switch {
		case err != nil || n < 1:
			writeAPIError(w, http.StatusBadRequest, "bad_data", "limit must be a positive number")
			return
		case n > cardinalityMaxLimit:
			writeAPIError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("limit must not exceed %d", cardinalityMaxLimit))
			return
		}
		limit = n
	}
	maxt := a.now().UnixMilli()
	mint := maxt - cardinalityWindow.Milliseconds()
	st, truncated, err := countCardinality(r.Context(), tenantQueryable{s: a.storage}, mint, maxt, limit, cardinalityMaxSeries)
	if err != nil {
		code := http.StatusUnprocessableEntity // Prometheus's code for an execution error
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code = http.StatusServiceUnavailable
		case errors.Is(err, context.Canceled):
			code = statusClientClosed
		}
		writeAPIError(w, code, "execution", err.Error())
		return
	}
	resp := struct {
		Status   string        `json:"status"`
		Data     v1.TSDBStatus `json:"data"`
		Warnings []string      `json:"warnings,omitempty"`
	}{Status: "success", Data: st}
	if truncated {
		resp.Warnings = []string{fmt.Sprintf("counted the first %d series only", cardinalityMaxSeries)}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp) // a write error means the client left
}

// countCardinality counts the series of q with samples in [mint, maxt],
// at most maxSeries of them (truncated reports that there were more).
func countCardinality(ctx context.Context, q storage.Queryable, mint, maxt int64, limit, maxSeries int) (st v1.TSDBStatus, truncated bool, err error) {
	sq, err := q.Querier(mint, maxt)
	if err != nil {
		return st, false, err
	}
	defer func() { err = errors.Join(err, sq.Close()) }()
	ss := sq.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt, Func: "series", Limit: maxSeries + 1},
		labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	byName := map[string]uint64{}
	pairs := map[labels.Label]uint64{}
	var n int
	for ss.Next() {
		if n == maxSeries {
			truncated = true
			break
		}
		n++
		if n%4096 == 0 && ctx.Err() != nil {
			return st, false, ctx.Err()
		}
		ss.At().Labels().Range(func(l labels.Label) {
			if l.Name == model.MetricNameLabel {
				byName[l.Value]++
			}
			pairs[l]++
		})
	}
	if err := ss.Err(); err != nil {
		return st, false, err
	}
	values := map[string]uint64{}
	valueBytes := map[string]uint64{}
	for l := range pairs {
		values[l.Name]++
		valueBytes[l.Name] += uint64(len(l.Value))
	}
	st.HeadStats = v1.HeadStats{NumSeries: uint64(n), NumLabelPairs: len(pairs), MinTime: mint, MaxTime: maxt}
	st.SeriesCountByMetricName = topStats(byName, limit, strings.Compare, func(s string) string { return s })
	st.LabelValueCountByLabelName = topStats(values, limit, strings.Compare, func(s string) string { return s })
	st.MemoryInBytesByLabelName = topStats(valueBytes, limit, strings.Compare, func(s string) string { return s })
	st.SeriesCountByLabelValuePair = topStats(pairs, limit, func(a, b labels.Label) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Value, b.Value))
	}, func(l labels.Label) string { return l.Name + "=" + l.Value })
	return st, truncated, nil
}

// topStats returns the limit largest counts of m, largest first, ties in
// the order of compare; name formats the keys returned.
func topStats[K comparable](m map[K]uint64, limit int, compare func(a, b K) int, name func(K) string) []v1.TSDBStat {
	type kv struct {
		k K
		v uint64
	}
	all := make([]kv, 0, len(m))
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Or(cmp.Compare(b.v, a.v), compare(a.k, b.k)) })
	out := make([]v1.TSDBStat, 0, min(limit, len(all)))
	for _, e := range all[:min(limit, len(all))] {
		out = append(out, v1.TSDBStat{Name: name(e.k), Value: e.v})
	}
	return out
}

// Mimir's cardinality API (/api/v1/cardinality/...): the same
// parameters and JSON as Mimir's, over the series of the tenant (or
// tenants, federated) in the whole cluster, counted as /status/tsdb
// counts them: by selecting the series with samples in a window before
// now, through the fan-out.
const (
	// mimirCardinalityDefaultLimit and mimirCardinalityMaxLimit are
	// Mimir's bounds of the limit parameter.
	mimirCardinalityDefaultLimit = 20
	mimirCardinalityMaxLimit     = 500
	// activeSeriesWindow is Mimir's active-series idle timeout
	// (-ingester.active-series-metrics-idle-timeout): count_method=active
	// and active_series count the series with samples this recently.
	// count_method=inmemory counts those of cardinalityWindow, what the
	// engine keeps in memory (its EvictIdle).
	activeSeriesWindow = 20 * time.Minute
)

// tooManyCardinalitySeries is the error of a cardinality request that
// matched more than max series. Mimir's JSON has no place for a partial
// answer, so it is an error (422) asking for a narrower selector.
func tooManyCardinalitySeries(max int) error {
	return fmt.Errorf("the selector matches more than %d series: add matchers to it", max)
}

// labelNamesCardinality is Mimir's answer to /cardinality/label_names.
type labelNamesCardinality struct {
	LabelValuesCountTotal int                   `json:"label_values_count_total"`
	LabelNamesCount       int                   `json:"label_names_count"`
	Cardinality           []labelNameValueCount `json:"cardinality"`
}

type labelNameValueCount struct {
	LabelName        string `json:"label_name"`
	LabelValuesCount int    `json:"label_values_count"`
}

// labelValuesCardinality is Mimir's answer to /cardinality/label_values.
type labelValuesCardinality struct {
	SeriesCountTotal uint64              `json:"series_count_total"`
	Labels           []labelNameCardinal `json:"labels"`
}

type labelNameCardinal struct {
	LabelName        string             `json:"label_name"`
	LabelValuesCount uint64             `json:"label_values_count"`
	SeriesCount      uint64             `json:"series_count"`
	Cardinality      []labelValueSeries `json:"cardinality"`
}

type labelValueSeries struct {
	LabelValue  string `json:"label_value"`
	SeriesCount uint64 `json:"series_count"`
}

// cardinalityRequest is a request of Mimir's cardinality API, decoded as
// Mimir decodes it (pkg/cardinality): selector (at most one), limit
// (0-500, 20 by default), count_method (inmemory or active), and for
// label_values the label_names[] (at least one).
type cardinalityRequest struct {
	matchers   []*labels.Matcher
	limit      int
	active     bool
	labelNames []string
}

func (a *QueryAPI) decodeCardinalityRequest(form url.Values, endpoint string) (*cardinalityRequest, error) {
	req := &cardinalityRequest{limit: mimirCardinalityDefaultLimit}
	switch sel := form["selector"]; {
	case len(sel) > 1:
		return nil, errors.New("multiple 'selector' params are not allowed")
	case len(sel) == 1:
		ms, err := a.parser.ParseMetricSelector(sel[0])
		if err != nil {
			return nil, fmt.Errorf("failed to parse selector: %w", err)
		}
		req.matchers = ms
	case endpoint == "active_series":
		return nil, errors.New("missing 'selector' parameter")
	}
	if endpoint == "active_series" {
		req.active = true
		return req, nil
	}
	switch l := form["limit"]; {
	case len(l) > 1:
		return nil, errors.New("multiple 'limit' params are not allowed")
	case len(l) == 1:
		n, err := strconv.Atoi(l[0])
		switch {
		case err != nil:
			return nil, err
		case n < 0:
			return nil, errors.New("'limit' param cannot be less than '0'")
		case n > mimirCardinalityMaxLimit:
			return nil, fmt.Errorf("'limit' param cannot be greater than '%d'", mimirCardinalityMaxLimit)
		}
		req.limit = n
	}
	if m := form["count_method"]; len(m) > 0 {
		switch m[0] {
		case "inmemory":
		case "active":
			req.active = true
		default:
			return nil, fmt.Errorf("invalid 'count_method' param '%s'. valid options are: [active,inmemory]", m[0])
		}
	}
	if endpoint == "label_values" {
		names := form["label_names[]"]
		if len(names) == 0 {
			return nil, errors.New("'label_names[]' param is required")
		}
		for _, n := range names {
			if !model.UTF8Validation.IsValidLabelName(n) {
				return nil, fmt.Errorf("invalid 'label_names' param '%s'", n)
			}
		}
		req.labelNames = slices.Compact(slices.Sorted(slices.Values(names)))
	}
	return req, nil
}

// serveMimirCardinality answers /api/v1/cardinality/<endpoint>
// (label_names, label_values, active_series) in Mimir's JSON. Like
// /status/tsdb it selects every series of the window (one pass, bounded
// by cardinalityMaxSeries) and runs under the query gate and timeout.
func (a *QueryAPI) serveMimirCardinality(w http.ResponseWriter, r *http.Request, endpoint string) {
	req, err := a.decodeCardinalityRequest(r.Form, endpoint)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	window := cardinalityWindow
	if req.active {
		window = activeSeriesWindow
	}
	maxt := a.now().UnixMilli()
	mint := maxt - window.Milliseconds()
	var resp any
	switch endpoint {
	case "label_names":
		values := map[string]map[string]struct{}{}
		err = forEachSeries(r.Context(), tenantQueryable{s: a.storage}, mint, maxt, req.matchers, cardinalityMaxSeries, func(lset labels.Labels) {
			lset.Range(func(l labels.Label) {
				vs := values[l.Name]
				if vs == nil {
					vs = map[string]struct{}{}
					values[l.Name] = vs
				}
				vs[l.Value] = struct{}{}
			})
		})
		resp = labelNamesResponse(values, req.limit)
	case "label_values":
		total := uint64(0)
		counts := make([]map[string]uint64, len(req.labelNames))
		for i := range counts {
			counts[i] = map[string]uint64{}
		}
		err = forEachSeries(r.Context(), tenantQueryable{s: a.storage}, mint, maxt, req.matchers, cardinalityMaxSeries, func(lset labels.Labels) {
			total++
			for i, name := range req.labelNames {
				if v := lset.Get(name); v != "" {
					counts[i][v]++
				}
			}
		})
		resp = labelValuesResponse(req.labelNames, counts, total, req.limit)
	case "active_series":
		data := []labels.Labels{}
		err = forEachSeries(r.Context(), tenantQueryable{s: a.storage}, mint, maxt, req.matchers, cardinalityMaxSeries, func(lset labels.Labels) {
			data = append(data, lset)
		})
		slices.SortFunc(data, labels.Compare)
		resp = struct {
			Data []labels.Labels `json:"data"`
		}{data}
	}
	if err != nil {
		code := http.StatusUnprocessableEntity
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code = http.StatusServiceUnavailable
		case errors.Is(err, context.Canceled):
			code = statusClientClosed
		}
		writeAPIError(w, code, "execution", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp) // a write error means the client left
}

// forEachSeries calls f with every series of q with samples in [mint,
// maxt] that matches ms (every series if none), at most maxSeries of
// them (tooManyCardinalitySeries past it). The labels passed to f may be
// kept.
func forEachSeries(ctx context.Context, q storage.Queryable, mint, maxt int64, ms []*labels.Matcher, maxSeries int, f func(labels.Labels)) (err error) {
	if len(ms) == 0 {
		ms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")}
	}
	sq, err := q.Querier(mint, maxt)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sq.Close()) }()
	ss := sq.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt, Func: "series", Limit: maxSeries + 1}, ms...)
	n := 0
	for ss.Next() {
		if n == maxSeries {
			return tooManyCardinalitySeries(maxSeries)
		}
		n++
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		f(ss.At().Labels())
	}
	return ss.Err()
}

// labelNamesResponse sorts label names by their number of values,
// largest first, then by name, as Mimir does, and keeps the first limit.
func labelNamesResponse(values map[string]map[string]struct{}, limit int) labelNamesCardinality {
	resp := labelNamesCardinality{LabelNamesCount: len(values), Cardinality: []labelNameValueCount{}}
	for name, vs := range values {
		resp.LabelValuesCountTotal += len(vs)
		resp.Cardinality = append(resp.Cardinality, labelNameValueCount{LabelName: name, LabelValuesCount: len(vs)})
	}
	slices.SortFunc(resp.Cardinality, func(a, b labelNameValueCount) int {
		return cmp.Or(cmp.Compare(b.LabelValuesCount, a.LabelValuesCount), strings.Compare(a.LabelName, b.LabelName))
	})
	resp.Cardinality = resp.Cardinality[:min(limit, len(resp.Cardinality))]
	return resp
}

// labelValuesResponse is Mimir's answer from the series count of each
// value of each name: names by their series, most first, then by name;
// each name's values by their series, most first, then by value, the
// first limit of them.
func labelValuesResponse(names []string, counts []map[string]uint64, total uint64, limit int) labelValuesCardinality {
	resp := labelValuesCardinality{SeriesCountTotal: total, Labels: make([]labelNameCardinal, 0, len(names))}
	for i, name := range names {
		l := labelNameCardinal{LabelName: name, LabelValuesCount: uint64(len(counts[i])), Cardinality: []labelValueSeries{}}
		for v, n := range counts[i] {
			l.SeriesCount += n
			l.Cardinality = append(l.Cardinality, labelValueSeries{LabelValue: v, SeriesCount: n})
		}
		slices.SortFunc(l.Cardinality, func(a, b labelValueSeries) int {
			return cmp.Or(cmp.Compare(b.SeriesCount, a.SeriesCount), strings.Compare(a.LabelValue, b.LabelValue))
		})
		l.Cardinality = l.Cardinality[:min(limit, len(l.Cardinality))]
		resp.Labels = append(resp.Labels, l)
	}
	slices.SortFunc(resp.Labels, func(a, b labelNameCardinal) int {
		return cmp.Or(cmp.Compare(b.SeriesCount, a.SeriesCount), strings.Compare(a.LabelName, b.LabelName))
	})
	return resp
}
