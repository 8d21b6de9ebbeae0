package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/server/ruler"
)

// rulerMetadata is the ruler's view of the node's metadata replica
// (ruler.Metadata over cluster.Node): the ruler room does not import
// the Raft layer, so the translation of changes and errors is here.
type rulerMetadata struct{ n *cluster.Node }

var _ ruler.Metadata = rulerMetadata{}

func (m rulerMetadata) RuleTenants() []string { return m.n.View().Rules.Tenants() }

func (m rulerMetadata) RuleGroups(tenant string) map[string]map[string][]byte {
	return m.n.View().Rules.Tenant(tenant)
}

// Index is the metadata index of the last change of the rule groups or
// their placement: silences and notifications (which move the metadata
// index) do not make the ruler sync.
func (m rulerMetadata) Index() uint64 { return m.n.View().RulesIndex }

func (m rulerMetadata) RuleOwner(tenant, ns, name string) string {
	return string(m.n.View().RuleOwner(tenant, ns, name))
}

func (m rulerMetadata) ID() string { return m.n.ID() }

func (m rulerMetadata) MetadataAge() time.Duration { return m.n.MetadataAge() }

func (m rulerMetadata) ChangeRules(ctx context.Context, c ruler.RuleChange) error {
	var cc cluster.RuleChange
	switch c.Op {
	case ruler.RuleSet:
		cc = cluster.SetRuleGroup(c.Tenant, c.Namespace, c.Name, c.YAML)
	case ruler.RuleDelete:
		cc = cluster.DeleteRuleGroup(c.Tenant, c.Namespace, c.Name)
	case ruler.RuleDeleteNamespace:
		cc = cluster.DeleteRuleNamespace(c.Tenant, c.Namespace)
	default:
		return fmt.Errorf("unknown rule change %d", c.Op)
	}
	err := m.n.ChangeRules(ctx, cc)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrRuleGroupNotFound):
		return ruler.ErrGroupNotFound
	case errors.Is(err, cluster.ErrRuleNamespaceNotFound):
		return ruler.ErrNamespaceNotFound
	case errors.Is(err, cluster.ErrUnavailable):
		return fmt.Errorf("%w: %w", ruler.ErrUnavailable, err)
	}
	return err
}
