package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// TenantHeader names the tenant of a request, as in Cortex and Mimir.
const TenantHeader = "X-Scope-OrgID"

// DefaultTenant is the tenant of every request when multi-tenancy is off.
const DefaultTenant = "anonymous"

// maxTenantLength is Cortex's limit on tenant IDs.
const maxTenantLength = 150

var (
	// ErrNoTenant is returned for a request without a tenant header.
	ErrNoTenant = errors.New("server: no org id: missing " + TenantHeader + " header")
	// ErrManyTenantHeaders is returned for a request with more than one
	// tenant header. Taking the first would let a request past a proxy
	// that checks another one (the last, or all joined by commas) as a
	// different tenant than the proxy approved.
	ErrManyTenantHeaders = errors.New("server: more than one " + TenantHeader + " header")
)

// ValidateTenant checks a tenant ID with Cortex's rules: 1 to 150
// characters from [a-zA-Z0-9!-_.*'()], and not "." or "..". The rules keep
// tenant IDs safe as path elements and label values.
//
// '|' is refused like any other character outside the set: Cortex and
// Mimir read "a|b" as several tenants for a federated query, which Myelin
// does not support; the error says so rather than treat it as one
// tenant's name.
func ValidateTenant(id string) error {
	switch {
	case id == "":
		return ErrNoTenant
	case len(id) > maxTenantLength:
		return fmt.Errorf("server: tenant ID is %d characters long, the maximum is %d", len(id), maxTenantLength)
	case id == "." || id == "..":
		return fmt.Errorf("server: tenant ID %q is not allowed", id)
	case strings.IndexByte(id, '|') >= 0:
		return fmt.Errorf("server: tenant ID %q names several tenants: queries across tenants (tenant federation) are not supported", id)
	}
	for i := 0; i < len(id); i++ {
		if !tenantChar(id[i]) {
			return fmt.Errorf("server: tenant ID %q has unsupported character %q at position %d", id, id[i], i)
		}
	}
	return nil
}

func tenantChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '-', '_', '.', '*', '\'', '(', ')':
		return true
	}
	return false
}

type tenantKey struct{}

// WithTenant returns a context that carries the tenant ID.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// TenantFrom returns the tenant ID carried by ctx.
func TenantFrom(ctx context.Context) (string, bool) {
	t, ok := ctx.Value(tenantKey{}).(string)
	return t, ok && t != ""
}

// tenantOf returns the tenant of a request: the header's value when
// multi-tenancy is on, DefaultTenant otherwise. A request with more than
// one tenant header is refused (ErrManyTenantHeaders) whatever the values.
func tenantOf(r *http.Request, multiTenant bool) (string, error) {
	if !multiTenant {
		return DefaultTenant, nil
	}
	ids := r.Header.Values(TenantHeader)
	if len(ids) > 1 {
		return "", fmt.Errorf("%w: %d of them; send exactly one", ErrManyTenantHeaders, len(ids))
	}
	var id string
	if len(ids) == 1 {
		id = ids[0]
	}
	if err := ValidateTenant(id); err != nil {
		return "", err
	}
	return id, nil
}
