package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/myelindb/myelin/server/tenant"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// A proxy in front may check another of several tenant headers than the
// first: a request with more than one is refused on every endpoint.
func TestManyTenantHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
	}{
		{"different", []string{"t1", "t2"}},
		{"same", []string{"t1", "t1"}},
		{"one-empty", []string{"", "t1"}},
		{"other-case", nil}, // X-Scope-OrgID and x-scope-orgid are one header
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := func(r *http.Request) {
				if tc.values == nil {
					r.Header["X-Scope-Orgid"] = []string{"t1"}
					r.Header.Add("x-scope-orgid", "t2")
					return
				}
				for _, v := range tc.values {
					r.Header.Add(tenant.Header, v)
				}
			}
			r := httptest.NewRequest("GET", "/", nil)
			set(r)
			_, err := tenant.FromRequest(r, true)
			require.ErrorIs(t, err, tenant.ErrManyHeaders)
			id, err := tenant.FromRequest(r, false)
			require.NoError(t, err, "the header is ignored without multi-tenancy")
			require.Equal(t, tenant.Default, id)

			api, err := NewQueryAPI(newTenantStorages(t), QueryOptions{MultiTenant: true})
			require.NoError(t, err)
			r = httptest.NewRequest("GET", "/api/v1/query?query=up", nil)
			set(r)
			w := httptest.NewRecorder()
			api.ServeHTTP(w, r)
			require.Equal(t, http.StatusBadRequest, w.Code)
			require.JSONEq(t, `{"status":"error","errorType":"bad_data","error":"tenant: more than one X-Scope-OrgID header: 2 of them; send exactly one"}`, w.Body.String())

			gw := newGroupWriter(t)
			wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true})
			require.NoError(t, err)
			r = httptest.NewRequest("POST", "/api/v1/push", bytes.NewReader(encodeWrite(t, series([]string{"__name__", "up"}, prompb.Sample{Timestamp: 1, Value: 1}))))
			set(r)
			w = httptest.NewRecorder()
			wh.ServeHTTP(w, r)
			require.Equal(t, http.StatusBadRequest, w.Code)
			require.Contains(t, w.Body.String(), "more than one X-Scope-OrgID header")
			require.Empty(t, stored(t, gw.g, "t1"))
			require.Empty(t, stored(t, gw.g, "t2"))
		})
	}
}
