package server

import (
	"errors"
	"net/http"

	"github.com/myelindb/myelin/server/tenant"
)

// noOrgID is the body of the answer to a request without a tenant. Its
// first words are Mimir's (dskit's user.ErrNoOrgID, answered 401 by its
// authentication middleware), which clients and runbooks match on.
const noOrgID = "no org id: missing " + tenant.Header + " header"

// tenantError maps an error from reading a request's tenant to the
// status and message to answer: 401 for a missing tenant, as Mimir
// answers it (no credentials named a tenant), and 400 for an invalid one
// or several headers.
func tenantError(err error) (code int, msg string) {
	if errors.Is(err, tenant.ErrMissing) {
		return http.StatusUnauthorized, noOrgID
	}
	return http.StatusBadRequest, err.Error()
}
