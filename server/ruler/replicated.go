package ruler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"
	"go.yaml.in/yaml/v3"
)

// ErrUnavailable: the store cannot take a change now (no metadata
// leader); answered 503, the client retries.
var ErrUnavailable = errors.New("rule store unavailable")

// Metadata is what MetaStore needs of the node's metadata replica (cmd
// adapts raftgroup/cluster's Node: the ruler room does not import the
// Raft layer).
type Metadata interface {
	// RuleTenants lists the tenants with rule groups in this node's
	// applied metadata, sorted.
	RuleTenants() []string
	// RuleGroups returns a tenant's applied groups: namespace -> name ->
	// YAML. Shared: read only.
	RuleGroups(tenant string) map[string]map[string][]byte
	// Index changes whenever the groups or the nodes may have (the
	// applied metadata index of the last such change).
	Index() uint64
	// RuleOwner is the node that evaluates the group by the applied
	// metadata ("" if none).
	RuleOwner(tenant, ns, name string) string
	// ChangeRules commits a change through the metadata leader and
	// returns once this node has applied it. A delete that finds nothing
	// returns ErrGroupNotFound or ErrNamespaceNotFound; no leader, an
	// error wrapping ErrUnavailable.
	ChangeRules(ctx context.Context, c RuleChange) error
	// ID is this node's ID.
	ID() string
	// MetadataAge is how long ago this node last heard from the metadata
	// leader (zero on the leader).
	MetadataAge() time.Duration
}

// RuleOp is the kind of a RuleChange.
type RuleOp int

const (
	RuleSet RuleOp = iota + 1
	RuleDelete
	RuleDeleteNamespace
)

// RuleChange is one change to the stored groups: Name and YAML are for
// RuleSet, Name for RuleDelete.
type RuleChange struct {
	Op                      RuleOp
	Tenant, Namespace, Name string
	YAML                    []byte
}

// MetaStore is the replicated Store: the rule groups live in the
// metadata Raft group (raftgroup/cluster's RuleGroups, as YAML), a change is
// committed through the metadata leader and a read is this node's
// applied copy (docs/design.md "Ruler"). It also places the groups:
// Owns says whether this node evaluates a group, Version when the
// groups or their placement may have changed.
type MetaStore struct {
	md      Metadata
	fence   time.Duration
	timeout time.Duration // of a change: changeTimeout
}

var _ Store = (*MetaStore)(nil)

// NewMetaStore returns the store over md. A node that has not heard from
// the metadata leader for fence owns no group (Owns): give it less than
// the cluster's DeadAfter, so a node cut off from the others stops
// evaluating before they take its groups over.
func NewMetaStore(md Metadata, fence time.Duration) *MetaStore {
	return &MetaStore{md: md, fence: fence, timeout: changeTimeout}
}

func (s *MetaStore) Tenants(context.Context) ([]string, error) {
	return s.md.RuleTenants(), nil
}

func (s *MetaStore) List(_ context.Context, tenant, ns string) (map[string][]rulefmt.RuleGroup, error) {
	nss := s.md.RuleGroups(tenant)
	out := map[string][]rulefmt.RuleGroup{}
	for name, gs := range nss {
		if ns != "" && name != ns {
			continue
		}
		for _, gname := range slices.Sorted(maps.Keys(gs)) {
			g, err := decodeGroup(tenant, name, gname, gs[gname])
			if err != nil {
				return nil, err
			}
			out[name] = append(out[name], g)
		}
	}
	return out, nil
}

func decodeGroup(tenant, ns, name string, b []byte) (rulefmt.RuleGroup, error) {
	var g rulefmt.RuleGroup
	if err := yaml.Unmarshal(b, &g); err != nil {
		return g, fmt.Errorf("decode rule group %q of tenant %s namespace %q: %w", name, tenant, ns, err)
	}
	return g, nil
}

func (s *MetaStore) Get(_ context.Context, tenant, ns, group string) (rulefmt.RuleGroup, error) {
	b, ok := s.md.RuleGroups(tenant)[ns][group]
	if !ok {
		return rulefmt.RuleGroup{}, ErrGroupNotFound
	}
	return decodeGroup(tenant, ns, group, b)
}

func (s *MetaStore) Set(ctx context.Context, tenant, ns string, g rulefmt.RuleGroup) error {
	b, err := yaml.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode rule group %q: %w", g.Name, err)
	}
	return s.change(ctx, RuleChange{Op: RuleSet, Tenant: tenant, Namespace: ns, Name: g.Name, YAML: b})
}

func (s *MetaStore) Delete(ctx context.Context, tenant, ns, group string) error {
	return s.change(ctx, RuleChange{Op: RuleDelete, Tenant: tenant, Namespace: ns, Name: group})
}

func (s *MetaStore) DeleteNamespace(ctx context.Context, tenant, ns string) error {
	return s.change(ctx, RuleChange{Op: RuleDeleteNamespace, Tenant: tenant, Namespace: ns})
}

// changeTimeout bounds a change: its commit through the leader, retried
// while there is none, and its apply on this node.
const changeTimeout = 10 * time.Second

// change commits c, retrying while the metadata group has no leader or
// lost it under the proposal (an election, a leadership transfer when
// the voters change). A retried set is the same set. A retried delete
// that finds nothing after an attempt of unknown outcome succeeded: the
// attempt deleted it.
func (s *MetaStore) change(ctx context.Context, c RuleChange) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for retried := false; ; retried = true {
		err := s.md.ChangeRules(ctx, c)
		notFound := errors.Is(err, ErrGroupNotFound) || errors.Is(err, ErrNamespaceNotFound)
		switch {
		case err == nil, notFound && retried:
			return nil
		case notFound:
			return err
		case !errors.Is(err, ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded):
			return err
		}
		select {
		case <-ctx.Done():
			if !errors.Is(err, ErrUnavailable) {
				err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// Owns reports whether this node evaluates the group: it heard from the
// metadata leader within the fence and is the group's owner on the node
// ring of the applied metadata (Metadata.RuleOwner).
func (s *MetaStore) Owns(tenant, ns, group string) bool {
	return !s.fenced() && s.md.RuleOwner(tenant, ns, group) == s.md.ID()
}

func (s *MetaStore) fenced() bool { return s.md.MetadataAge() > s.fence }

// Version changes whenever the groups or their placement may have: the
// applied metadata index, and whether the node is fenced off.
func (s *MetaStore) Version() uint64 {
	v := s.md.Index() << 1
	if s.fenced() {
		v |= 1
	}
	return v
}

// ImportFileStore moves the groups of the FileStore in dir (a node's
// rule groups before they were replicated) into s: each group the
// metadata does not hold yet is set, retried while there is no metadata
// leader, and then dir is renamed to dir + ".imported" so it is read
// once. A group already in the metadata wins (it was set since). No dir:
// nothing to do.
func ImportFileStore(ctx context.Context, dir string, s *MetaStore) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	fs, err := NewFileStore(dir)
	if err != nil {
		return err
	}
	tenants, err := fs.Tenants(ctx)
	if err != nil {
		return err
	}
	for _, t := range tenants {
		nss, err := fs.List(ctx, t, "")
		if err != nil {
			return err
		}
		for ns, gs := range nss {
			for _, g := range gs {
				if _, err := s.Get(ctx, t, ns, g.Name); err == nil {
					continue
				}
				for {
					err := s.Set(ctx, t, ns, g)
					if err == nil {
						break
					}
					if !errors.Is(err, ErrUnavailable) {
						return fmt.Errorf("import rule group %q of tenant %s namespace %q: %w", g.Name, t, ns, err)
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(time.Second):
					}
				}
			}
		}
	}
	return os.Rename(dir, dir+".imported")
}
