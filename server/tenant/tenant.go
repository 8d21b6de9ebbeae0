// Package tenant names the tenant of a request: the X-Scope-OrgID header
// (Cortex's and Mimir's), its validation, and the context key that
// carries it to code behind interfaces without one (storage.Queryable).
// It sits below every room of server/ so that each may import it, and
// imports nothing of the module.
//
// A read may name several tenants joined by '|' ("a|b", Cortex's and
// Mimir's tenant federation) where the server allows it (with auth on,
// for a token that grants each of them): SetFromRequest and ParseSet
// read such an ID, and its normal form (sorted, no duplicates) is what
// the context carries; Split takes it apart. Everywhere else an ID names
// exactly one tenant and '|' is refused.
package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Header names the tenant of a request, as in Cortex and Mimir.
const Header = "X-Scope-OrgID"

// Default is the tenant of every request when multi-tenancy is off.
const Default = "anonymous"

// maxLength is Cortex's limit on tenant IDs.
const maxLength = 150

// Sep joins the tenants of a federated read in one ID, as in Cortex and
// Mimir.
const Sep = "|"

var (
	// ErrMissing is returned for a request without a tenant header.
	ErrMissing = errors.New("tenant: no org id: missing " + Header + " header")
	// ErrManyHeaders is returned for a request with more than one
	// tenant header. Taking the first would let a request past a proxy
	// that checks another one (the last, or all joined by commas) as a
	// different tenant than the proxy approved.
	ErrManyHeaders = errors.New("tenant: more than one " + Header + " header")
)

// Validate checks a tenant ID with Cortex's rules: 1 to 150
// characters from [a-zA-Z0-9!-_.*'()], and not "." or "..". The rules keep
// tenant IDs safe as path elements and label values.
//
// '|' is refused like any other character outside the set: Cortex and
// Mimir read "a|b" as several tenants for a federated query, which only
// reads with auth on may do (ParseSet); the error says so rather than
// treat it as one tenant's name.
func Validate(id string) error {
	switch {
	case id == "":
		return ErrMissing
	case len(id) > maxLength:
		return fmt.Errorf("tenant: ID is %d characters long, the maximum is %d", len(id), maxLength)
	case id == "." || id == "..":
		return fmt.Errorf("tenant: ID %q is not allowed", id)
	case strings.IndexByte(id, '|') >= 0:
		return fmt.Errorf("tenant: ID %q names several tenants: only a query whose auth token grants each of them may read several at once (tenant federation)", id)
	}
	for i := 0; i < len(id); i++ {
		if !validChar(id[i]) {
			return fmt.Errorf("tenant: ID %q has unsupported character %q at position %d", id, id[i], i)
		}
	}
	return nil
}

func validChar(c byte) bool {
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

type key struct{}

// With returns a context that carries the tenant ID.
func With(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, key{}, tenant)
}

// From returns the tenant ID carried by ctx.
func From(ctx context.Context) (string, bool) {
	t, ok := ctx.Value(key{}).(string)
	return t, ok && t != ""
}

// FromRequest returns the tenant of a request: the header's value when
// multi-tenancy is on, Default otherwise. A request with more than
// one tenant header is refused (ErrManyHeaders) whatever the values.
func FromRequest(r *http.Request, multiTenant bool) (string, error) {
	if !multiTenant {
		return Default, nil
	}
	id, err := oneHeader(r)
	if err != nil {
		return "", err
	}
	if err := Validate(id); err != nil {
		return "", err
	}
	return id, nil
}

// ParseSet reads the ID of a read that may name several tenants joined by
// Sep: each must be valid (Validate). It returns them sorted, without
// duplicates, so "b|a|b" and "a|b" are the same set.
func ParseSet(id string) ([]string, error) {
	if id == "" {
		return nil, ErrMissing
	}
	ids := strings.Split(id, Sep)
	for _, t := range ids {
		if t == "" {
			return nil, fmt.Errorf("tenant: ID %q has an empty tenant between '|'", id)
		}
		if err := Validate(t); err != nil {
			return nil, err
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// Join returns the ID of a set of tenants as ParseSet returns them: one
// tenant's ID, or several joined by Sep.
func Join(ids []string) string { return strings.Join(ids, Sep) }

// Split returns the tenants of an ID in normal form (from SetFromRequest
// or Join): one unless it names several.
func Split(id string) []string { return strings.Split(id, Sep) }

// SetFromRequest is FromRequest for a read that may name several tenants
// ("a|b"): it returns the ID in normal form (ParseSet, then Join).
func SetFromRequest(r *http.Request, multiTenant bool) (string, error) {
	if !multiTenant {
		return Default, nil
	}
	id, err := oneHeader(r)
	if err != nil {
		return "", err
	}
	ids, err := ParseSet(id)
	if err != nil {
		return "", err
	}
	return Join(ids), nil
}

// oneHeader returns the value of the request's tenant header ("" if
// none), refusing several headers.
func oneHeader(r *http.Request) (string, error) {
	ids := r.Header.Values(Header)
	if len(ids) > 1 {
		return "", fmt.Errorf("%w: %d of them; send exactly one", ErrManyHeaders, len(ids))
	}
	if len(ids) == 1 {
		return ids[0], nil
	}
	return "", nil
}
