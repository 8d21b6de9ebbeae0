package ruler

import (
	"context"
	"sync"

	"github.com/prometheus/prometheus/rules"
)

// Concurrent evaluation of independent rules (Mimir's
// -ruler.max-independent-rule-evaluation-concurrency and
// ruler_max_independent_rule_evaluation_concurrency_per_tenant): the
// rules manager evaluates a group's rules in batches
// (SplitGroupIntoBatches); a rule of a batch runs beside the others when
// Allow grants it a slot, else in the group's own goroutine. A slot needs
// room in the node's budget and in the tenant's.

// evalSlots is the node's budget of concurrent rule evaluations.
type evalSlots struct {
	mu   sync.Mutex
	max  int            // the node's slots, immutable; 0: every rule in sequence
	used int            // slots taken
	by   map[string]int // slots taken per tenant
}

func newEvalSlots(max int) *evalSlots {
	return &evalSlots{max: max, by: map[string]int{}}
}

// acquire takes a slot for tenant if the node has one free and the
// tenant holds fewer than tenantMax.
func (s *evalSlots) acquire(tenant string, tenantMax int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used >= s.max || s.by[tenant] >= tenantMax {
		return false
	}
	s.used++
	s.by[tenant]++
	return true
}

func (s *evalSlots) release(tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used--
	if s.by[tenant]--; s.by[tenant] == 0 {
		delete(s.by, tenant)
	}
}

// tenantConcurrency is one tenant's rules.RuleConcurrencyController.
type tenantConcurrency struct {
	slots  *evalSlots
	tenant string
	limit  func(tenant string) int // the tenant's own bound, read per rule
}

var _ rules.RuleConcurrencyController = (*tenantConcurrency)(nil)

// SplitGroupIntoBatches orders the group's rules from the dependencies
// the manager found (a rule reading another's output depends on it; a
// rule whose dependencies are unknown, e.g. one reading every metric,
// depends on all): first together the rules that depend on none, then
// one by one those that depend on others and have dependents, then
// together those nothing depends on. Every rule is in exactly one batch,
// and a rule runs after every rule it depends on. Without a budget
// (MaxConcurrentEvals 0) there are no batches: the rules run in the
// group's order, as Prometheus runs them by default.
func (c *tenantConcurrency) SplitGroupIntoBatches(_ context.Context, g *rules.Group) []rules.ConcurrentRules {
	if c.slots.max == 0 {
		return nil
	}
	var first, middle, last []int
	for i, r := range g.Rules() {
		switch {
		case r.NoDependencyRules():
			first = append(first, i)
		case r.NoDependentRules():
			last = append(last, i)
		default:
			middle = append(middle, i)
		}
	}
	var out []rules.ConcurrentRules
	if len(first) > 0 {
		out = append(out, first)
	}
	for _, i := range middle {
		out = append(out, rules.ConcurrentRules{i})
	}
	if len(last) > 0 {
		out = append(out, last)
	}
	return out
}

// Allow grants a rule a slot of the node's and the tenant's budgets.
func (c *tenantConcurrency) Allow(context.Context, *rules.Group, rules.Rule) bool {
	return c.slots.acquire(c.tenant, c.limit(c.tenant))
}

// Done releases a slot Allow granted.
func (c *tenantConcurrency) Done(context.Context) { c.slots.release(c.tenant) }
