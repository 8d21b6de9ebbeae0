package ruler

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/stretchr/testify/require"
)

// fakeMeta applies rule changes to its maps at once, or fails them all
// with err; owner places the groups.
type fakeMeta struct {
	mu     sync.Mutex
	groups map[string]map[string]map[string][]byte
	index  uint64
	err    error
	age    time.Duration
	owner  func(tenant, ns, name string) string
	// failFirst fails the next changes with ErrUnavailable after applying
	// them (an outcome the caller cannot know).
	failFirst int
}

func newFakeMeta() *fakeMeta {
	return &fakeMeta{groups: map[string]map[string]map[string][]byte{}, owner: func(string, string, string) string { return "" }}
}

func (f *fakeMeta) RuleTenants() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.groups))
}

func (f *fakeMeta) RuleGroups(tenant string) map[string]map[string][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.groups[tenant]
}

func (f *fakeMeta) Index() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index
}

func (f *fakeMeta) RuleOwner(tenant, ns, name string) string { return f.owner(tenant, ns, name) }

func (f *fakeMeta) ID() string { return "self" }

func (f *fakeMeta) MetadataAge() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.age
}

func (f *fakeMeta) ChangeRules(_ context.Context, c RuleChange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	nss := f.groups[c.Tenant]
	switch c.Op {
	case RuleSet:
		if nss == nil {
			nss = map[string]map[string][]byte{}
			f.groups[c.Tenant] = nss
		}
		if nss[c.Namespace] == nil {
			nss[c.Namespace] = map[string][]byte{}
		}
		nss[c.Namespace][c.Name] = c.YAML
	case RuleDelete:
		if _, ok := nss[c.Namespace][c.Name]; !ok {
			return ErrGroupNotFound
		}
		delete(nss[c.Namespace], c.Name)
		if len(nss[c.Namespace]) == 0 {
			delete(nss, c.Namespace)
		}
	case RuleDeleteNamespace:
		if len(nss[c.Namespace]) == 0 {
			return ErrNamespaceNotFound
		}
		delete(nss, c.Namespace)
	}
	if len(nss) == 0 {
		delete(f.groups, c.Tenant)
	}
	f.index++
	if f.failFirst > 0 {
		f.failFirst--
		return fmt.Errorf("%w: leadership lost, entry may or may not be committed", ErrUnavailable)
	}
	return nil
}

func TestMetaStore(t *testing.T) {
	ctx := context.Background()
	md := newFakeMeta()
	s := NewMetaStore(md, time.Second)
	g := rulefmt.RuleGroup{Name: "g", Rules: []rulefmt.Rule{{Record: "r", Expr: "vector(1)"}}}
	require.NoError(t, s.Set(ctx, "t", "ns", g))
	require.NoError(t, s.Set(ctx, "t", "ns", rulefmt.RuleGroup{Name: "a"}))
	require.Equal(t, uint64(2<<1), s.Version())
	got, err := s.Get(ctx, "t", "ns", "g")
	require.NoError(t, err)
	require.Equal(t, "r", got.Rules[0].Record)
	all, err := s.List(ctx, "t", "")
	require.NoError(t, err)
	require.Len(t, all["ns"], 2)
	require.Equal(t, "a", all["ns"][0].Name, "sorted by name")
	tenants, err := s.Tenants(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"t"}, tenants)

	_, err = s.Get(ctx, "t", "ns", "nope")
	require.ErrorIs(t, err, ErrGroupNotFound)
	require.ErrorIs(t, s.Delete(ctx, "t", "ns", "nope"), ErrGroupNotFound)
	require.ErrorIs(t, s.DeleteNamespace(ctx, "t", "nope"), ErrNamespaceNotFound)
	require.NoError(t, s.DeleteNamespace(ctx, "t", "ns"))
	tenants, err = s.Tenants(ctx)
	require.NoError(t, err)
	require.Empty(t, tenants)

	// A change whose outcome was unknown is retried: a set sets again,
	// a delete that then finds nothing succeeded.
	md.failFirst = 1
	require.NoError(t, s.Set(ctx, "t", "ns", g))
	md.failFirst = 1
	require.NoError(t, s.Delete(ctx, "t", "ns", "g"))
	require.ErrorIs(t, s.Delete(ctx, "t", "ns", "g"), ErrGroupNotFound)

	// No metadata leader: retried for changeTimeout, then the API
	// answers 503 and the client retries.
	s.timeout = 300 * time.Millisecond
	md.err = fmt.Errorf("%w: metadata leader: none", ErrUnavailable)
	require.ErrorIs(t, s.Set(ctx, "t", "ns", g), ErrUnavailable)
	mux := http.NewServeMux()
	NewConfigAPI(s, ConfigOptions{}).Register(func(p string, h http.Handler) { mux.Handle(p, h) }, "/api/v1/rules")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/rules/ns", strings.NewReader("name: g\nrules:\n- record: r\n  expr: vector(1)\n")))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
}

// TestMetaStoreOwns: a node owns the groups the node ring gives it, and
// none once it has not heard from the metadata leader for the fence
// (which changes the version, so the ruler syncs).
func TestMetaStoreOwns(t *testing.T) {
	md := newFakeMeta()
	md.owner = func(_, _, name string) string {
		if len(name)%2 == 0 {
			return "self"
		}
		return "other"
	}
	s := NewMetaStore(md, time.Second)
	require.True(t, s.Owns("t", "ns", "ab"))
	require.False(t, s.Owns("t", "ns", "abc"))
	v := s.Version()
	md.mu.Lock()
	md.age = 2 * time.Second
	md.mu.Unlock()
	require.NotEqual(t, v, s.Version(), "fencing changes the version")
	require.False(t, s.Owns("t", "ns", "ab"), "a fenced node owns nothing")
}
