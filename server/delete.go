package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// Deleter replicates deletions to every group of a tenant: each group
// applies the entry through Raft (the distributor implements it). An
// error means some group may not have applied it; the request can be
// sent again (a deletion applied twice deletes nothing more).
type Deleter interface {
	DeleteSeries(ctx context.Context, d *write.DeleteSeries) error
	DeleteTenant(ctx context.Context, tenant string) error
}

// DeleteOptions configure the deletion handlers.
type DeleteOptions struct {
	// MultiTenant: the tenant comes from the X-Scope-OrgID header, as in
	// the query API.
	MultiTenant bool
	// Parser parses the match[] selectors (NewParser); nil means
	// Prometheus's defaults.
	Parser parser.Parser
	// MaxFormBytes bounds a request's form; zero means 5 MiB.
	MaxFormBytes int64
	// HasData reports whether the tenant has any series left, for
	// /purger/delete_tenant_status.
	HasData func(ctx context.Context, tenant string) (bool, error)
	// Deleted is called after a deletion of the tenant's data was
	// attempted, applied or not (some groups may have applied it): every
	// node's query frontend must stop using the tenant's cached results
	// (the cluster's cache generation, docs/design.md "Deletion and
	// retention"). An error answers 503 after a deletion that was
	// applied: sent again, the request deletes nothing more and calls
	// Deleted again. Nil: none.
	Deleted func(ctx context.Context, tenant string) error
	Logger  *slog.Logger // nil means discard
}

// DeleteAPI serves Prometheus's delete_series and clean_tombstones and
// Mimir's tenant deletion for one tenant per request.
type DeleteAPI struct {
	d    Deleter
	opts DeleteOptions
}

// NewDeleteAPI returns the deletion handlers over d.
func NewDeleteAPI(d Deleter, opts DeleteOptions) *DeleteAPI {
	if opts.MaxFormBytes == 0 {
		opts.MaxFormBytes = 5 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Parser == nil {
		opts.Parser = NewParser(false)
	}
	return &DeleteAPI{d: d, opts: opts}
}

// tenantOf returns the request's tenant, or answers the error in the
// Prometheus API's shape.
func (a *DeleteAPI) tenantOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	org, err := tenant.FromRequest(r, a.opts.MultiTenant)
	if err != nil {
		code, msg := tenantError(err)
		writeAPIError(w, code, apiErrorType(code), msg)
		return "", false
	}
	return org, true
}

// DeleteSeries serves POST and PUT /api/v1/admin/tsdb/delete_series as
// Prometheus does: match[] (one or more selectors, their union), start
// and end (every time when absent; both included); 204 on success, the
// Prometheus API's JSON error otherwise, with Prometheus's texts. Every
// selector is parsed before anything is deleted, so a bad one deletes
// nothing. An error of the replication is 503: the request can be sent
// again.
func (a *DeleteAPI) DeleteSeries(w http.ResponseWriter, r *http.Request) {
	org, ok := a.tenantOf(w, r)
	if !ok {
		return
	}
	if err := readForm(w, r, a.opts.MaxFormBytes); err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("error parsing form values: %v", err))
		return
	}
	sels := r.Form["match[]"]
	if len(sels) == 0 {
		writeAPIError(w, http.StatusBadRequest, "bad_data", "no match[] parameter provided")
		return
	}
	start, err := deleteTime(r, "start", math.MinInt64)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	end, err := deleteTime(r, "end", math.MaxInt64)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	if end < start {
		writeAPIError(w, http.StatusBadRequest, "bad_data", "end timestamp must not be before start time")
		return
	}
	sets := make([][]*labels.Matcher, 0, len(sels))
	for _, s := range sels {
		ms, err := a.opts.Parser.ParseMetricSelector(s)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("invalid parameter %q: %v", "match[]", err))
			return
		}
		sets = append(sets, ms)
	}
	for i, ms := range sets {
		d := &write.DeleteSeries{Tenant: org, Matchers: ms, Start: start, End: end}
		if err := a.d.DeleteSeries(r.Context(), d); err != nil {
			a.deleted(r.Context(), org)
			a.opts.Logger.Warn("delete series", "tenant", org, "match", sels[i], "start", start, "end", end, "err", err)
			writeAPIError(w, deleteErrorCode(err), apiErrorType(deleteErrorCode(err)), fmt.Sprintf("delete series %s: %v", sels[i], err))
			return
		}
		a.opts.Logger.Info("deleted series", "tenant", org, "match", sels[i], "start", start, "end", end)
	}
	if err := a.deleted(r.Context(), org); err != nil {
		writeAPIError(w, deleteErrorCode(err), apiErrorType(deleteErrorCode(err)), fmt.Sprintf("series deleted, but the cached query results were not invalidated (send the request again): %v", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deleted calls DeleteOptions.Deleted, logging its error.
func (a *DeleteAPI) deleted(ctx context.Context, org string) error {
	if a.opts.Deleted == nil {
		return nil
	}
	err := a.opts.Deleted(ctx, org)
	if err != nil {
		a.opts.Logger.Warn("invalidate the cached query results after a deletion", "tenant", org, "err", err)
	}
	return err
}

// CleanTombstones serves POST and PUT /api/v1/admin/tsdb/clean_tombstones:
// 204, as Prometheus answers when it is done. A deletion here leaves no
// tombstones to clean: it rewrites the chunks it touches when it is
// applied (docs/design.md, "Deletion and retention").
func (a *DeleteAPI) CleanTombstones(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.tenantOf(w, r); !ok {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DeleteTenant serves Mimir's POST /purger/delete_tenant: every series and
// sample of the request's tenant, in every group; 200 on success, as
// Mimir. Unlike Mimir's, the deletion is done when it answers: the
// groups have applied it.
func (a *DeleteAPI) DeleteTenant(w http.ResponseWriter, r *http.Request) {
	org, err := tenant.FromRequest(r, a.opts.MultiTenant)
	if err != nil {
		code, msg := tenantError(err)
		http.Error(w, msg, code)
		return
	}
	if err := a.d.DeleteTenant(r.Context(), org); err != nil {
		a.deleted(r.Context(), org)
		a.opts.Logger.Warn("delete tenant", "tenant", org, "err", err)
		http.Error(w, fmt.Sprintf("delete tenant: %v", err), deleteErrorCode(err))
		return
	}
	a.opts.Logger.Info("deleted tenant", "tenant", org)
	if err := a.deleted(r.Context(), org); err != nil {
		http.Error(w, fmt.Sprintf("tenant deleted, but the cached query results were not invalidated (send the request again): %v", err), deleteErrorCode(err))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// deleteTenantStatus is Mimir's answer to /purger/delete_tenant_status.
type deleteTenantStatus struct {
	TenantID      string `json:"tenant_id"`
	BlocksDeleted bool   `json:"blocks_deleted"`
}

// DeleteTenantStatus serves Mimir's GET /purger/delete_tenant_status:
// blocks_deleted is true when the tenant has no series left (written
// again after a deletion, it has).
func (a *DeleteAPI) DeleteTenantStatus(w http.ResponseWriter, r *http.Request) {
	org, err := tenant.FromRequest(r, a.opts.MultiTenant)
	if err != nil {
		code, msg := tenantError(err)
		http.Error(w, msg, code)
		return
	}
	has, err := a.opts.HasData(r.Context(), org)
	if err != nil {
		http.Error(w, fmt.Sprintf("read tenant status: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(deleteTenantStatus{TenantID: org, BlocksDeleted: !has})
}

// deleteTime reads a time parameter as Prometheus's parseTimeParam does
// (its error texts), in milliseconds; def when absent.
func deleteTime(r *http.Request, name string, def int64) (int64, error) {
	v := r.Form.Get(name)
	if v == "" {
		return def, nil
	}
	t, ok := parseTime(v)
	if !ok {
		return 0, fmt.Errorf("invalid parameter %q: invalid time value for '%s': cannot parse %q to a valid timestamp", name, name, v)
	}
	return t.UnixMilli(), nil
}

// deleteErrorCode maps a Deleter error: the request's end is the
// client's (499 as the query API), anything else may pass when sent
// again (503).
func deleteErrorCode(err error) int {
	if errors.Is(err, context.Canceled) {
		return statusClientClosed
	}
	return http.StatusServiceUnavailable
}
