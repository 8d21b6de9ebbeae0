package ruler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/write"
)

func TestEvalSlots(t *testing.T) {
	s := newEvalSlots(3)
	require.True(t, s.acquire("a", 2))
	require.True(t, s.acquire("a", 2))
	require.False(t, s.acquire("a", 2), "the tenant's own bound")
	require.True(t, s.acquire("b", 5))
	require.False(t, s.acquire("b", 5), "the node's bound")
	s.release("a")
	require.True(t, s.acquire("b", 5))
	s.release("a")
	s.release("b")
	s.release("b")
	require.Zero(t, s.used)
	require.Empty(t, s.by)
	require.False(t, newEvalSlots(0).acquire("a", 4), "no budget: every rule in sequence")
}

// slowQueryable counts the selects in flight per tenant and the most it
// saw; each select takes a while.
type slowQueryable struct {
	mu       sync.Mutex
	inFlight map[string]int
	most     map[string]int
	selects  map[string]int
}

func (s *slowQueryable) queryable(tenant string) storage.Queryable {
	return storage.QueryableFunc(func(int64, int64) (storage.Querier, error) {
		return &slowQuerier{s: s, tenant: tenant}, nil
	})
}

type slowQuerier struct {
	storage.LabelQuerier
	s      *slowQueryable
	tenant string
}

func (q *slowQuerier) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	q.s.mu.Lock()
	q.s.inFlight[q.tenant]++
	q.s.selects[q.tenant]++
	q.s.most[q.tenant] = max(q.s.most[q.tenant], q.s.inFlight[q.tenant])
	q.s.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
	q.s.mu.Lock()
	q.s.inFlight[q.tenant]--
	q.s.mu.Unlock()
	return storage.EmptySeriesSet()
}

func (q *slowQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *slowQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *slowQuerier) Close() error { return nil }

type discardWriter struct{}

func (discardWriter) Write(context.Context, *write.Batch) ([]write.Refusal, error) { return nil, nil }

// TestIndependentRuleConcurrency: six independent recording rules per
// tenant; without a node budget each group evaluates one rule at a time,
// with one a tenant takes at most its own bound of extra rules beside
// the one its group evaluates itself.
func TestIndependentRuleConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name             string
		node             int
		limits           map[string]int
		wantA, wantAMost int
		wantBMost        int
	}{
		{"sequential", 0, map[string]int{"a": 4, "b": 4}, 1, 1, 1},
		{"bounded", 3, map[string]int{"a": 3, "b": 1}, 3, 4, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := NewFileStore(t.TempDir())
			require.NoError(t, err)
			var g rulefmt.RuleGroup
			rules := "name: g\ninterval: 500ms\nrules:\n"
			for i := range 6 {
				rules += fmt.Sprintf("- record: r_%d\n  expr: sum(input_%d)\n", i, i)
			}
			require.NoError(t, yaml.Unmarshal([]byte(rules), &g))
			for _, tenant := range []string{"a", "b"} {
				require.NoError(t, store.Set(t.Context(), tenant, "ns", g))
			}
			sq := &slowQueryable{inFlight: map[string]int{}, most: map[string]int{}, selects: map[string]int{}}
			r, err := New(Options{
				Store:              store,
				Queryable:          sq.queryable,
				Writer:             discardWriter{},
				Engine:             promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute}),
				EvaluationInterval: time.Second,
				PollInterval:       time.Hour,
				MaxConcurrentEvals: tc.node,
				TenantConcurrency:  func(tenant string) int { return tc.limits[tenant] },
			})
			require.NoError(t, err)
			defer r.Close()
			// Two evaluations of every group, at least.
			require.Eventually(t, func() bool {
				sq.mu.Lock()
				defer sq.mu.Unlock()
				return sq.selects["a"] >= 12 && sq.selects["b"] >= 12
			}, 30*time.Second, 10*time.Millisecond)
			sq.mu.Lock()
			defer sq.mu.Unlock()
			require.GreaterOrEqual(t, sq.most["a"], tc.wantA, "tenant a: most rules at once")
			require.LessOrEqual(t, sq.most["a"], tc.wantAMost, "tenant a: most rules at once")
			require.LessOrEqual(t, sq.most["b"], tc.wantBMost, "tenant b: most rules at once")
		})
	}
}
