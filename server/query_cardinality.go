package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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
