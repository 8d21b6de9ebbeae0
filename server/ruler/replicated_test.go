package ruler

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// fakeMeta applies rule changes to its view at once, or fails them all
// with err.
type fakeMeta struct {
	mu   sync.Mutex
	view *cluster.View
	err  error
	age  time.Duration
	// failFirst fails the next changes with err after applying them (an
	// outcome the caller cannot know).
	failFirst int
}

func newFakeMeta(t *testing.T) *fakeMeta {
	s, err := ring.NewState(ring.Options{})
	require.NoError(t, err)
	return &fakeMeta{view: &cluster.View{State: s}}
}

func (f *fakeMeta) View() *cluster.View {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view
}

func (f *fakeMeta) ID() string { return "self" }

func (f *fakeMeta) MetadataAge() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.age
}

func (f *fakeMeta) ChangeRules(_ context.Context, c cluster.RuleChange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	r, err := f.view.Rules.Apply(c)
	if err != nil {
		return err
	}
	f.view = &cluster.View{State: f.view.State, Index: f.view.Index + 1, Rules: r}
	if f.failFirst > 0 {
		f.failFirst--
		return fmt.Errorf("%w: leadership lost, entry may or may not be committed", cluster.ErrUnavailable)
	}
	return nil
}

func TestMetaStore(t *testing.T) {
	ctx := context.Background()
	md := newFakeMeta(t)
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
	md.err = fmt.Errorf("%w: metadata leader: none", cluster.ErrUnavailable)
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
	md := newFakeMeta(t)
	st := md.view.State
	for i, n := range []ring.NodeID{"self", "other"} {
		steps, err := ring.Plan(st, ring.Event{Kind: ring.EventJoin, Node: n, Addr: fmt.Sprintf("10.0.0.%d:1", i), AtMillis: int64(i + 1)})
		require.NoError(t, err)
		for _, s := range steps {
			require.NoError(t, st.Apply(s))
		}
	}
	s := NewMetaStore(md, time.Second)
	mine := 0
	for i := range 100 {
		name := fmt.Sprint(i)
		owner := md.view.RuleOwner("t", "ns", name)
		require.Equal(t, owner == "self", s.Owns("t", "ns", name))
		if owner == "self" {
			mine++
		}
	}
	require.Positive(t, mine)
	require.Less(t, mine, 100)
	v := s.Version()
	md.mu.Lock()
	md.age = 2 * time.Second
	md.mu.Unlock()
	require.NotEqual(t, v, s.Version(), "fencing changes the version")
	for i := range 100 {
		require.False(t, s.Owns("t", "ns", fmt.Sprint(i)), "a fenced node owns nothing")
	}
}
