package cluster

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/myelindb/myelin/raftgroup/ring"
)

// The ruler's rule groups live in the metadata group beside the ring
// state (docs/design.md "Ruler"): small, rarely changed, and every node
// already follows the metadata.
//
// Metadata log entry of a rule change:
//
//	entryRules | version:byte(1) | op:byte | tenant:str | namespace:str
//	  op ruleSet:         name:str yaml:bytes
//	  op ruleDelete:      name:str
//	  op ruleDeleteNS:    (nothing more)
//
// str and bytes are uvarint length-prefixed. The snapshot section
// (metadata version 3, between the index and the ring state):
//
//	len:uvarint | version:byte(1) | count:uvarint { tenant:str namespace:str name:str yaml:bytes }
//
// in (tenant, namespace, name) order.
const (
	entryRules       byte = 0x81
	rulesVersion     byte = 1
	ruleSet          byte = 1
	ruleDelete       byte = 2
	ruleDeleteNS     byte = 3
	maxRuleNameBytes      = 64 << 10
	// MaxRuleGroupBytes bounds one rule group's YAML in the metadata.
	MaxRuleGroupBytes = 8 << 20
)

var (
	// ErrRuleGroupNotFound: no such rule group (Cortex's text).
	ErrRuleGroupNotFound = errors.New("group does not exist")
	// ErrRuleNamespaceNotFound: the tenant has no group in the namespace
	// (Cortex's text).
	ErrRuleNamespaceNotFound = errors.New("group namespace does not exist")
)

// RuleGroups is the tenants' rule groups as the metadata holds them:
// tenant -> namespace -> group name -> the group's YAML. Immutable: a
// change builds a new value sharing the other tenants' maps. The nil
// value is empty.
type RuleGroups struct {
	tenants map[string]map[string]map[string][]byte
}

// Tenants returns the tenants with at least one group, sorted.
func (r *RuleGroups) Tenants() []string {
	if r == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(r.tenants))
}

// Tenant returns the tenant's groups: namespace -> name -> YAML. The
// maps and slices are shared: do not modify them.
func (r *RuleGroups) Tenant(tenant string) map[string]map[string][]byte {
	if r == nil {
		return nil
	}
	return r.tenants[tenant]
}

// Len is the number of groups of every tenant.
func (r *RuleGroups) Len() int {
	n := 0
	if r != nil {
		for _, nss := range r.tenants {
			for _, gs := range nss {
				n += len(gs)
			}
		}
	}
	return n
}

// withTenant returns a copy of r whose tenant's groups are what f makes
// of a deep copy of them (an empty result removes the tenant).
func (r *RuleGroups) withTenant(tenant string, f func(map[string]map[string][]byte) error) (*RuleGroups, error) {
	nss := map[string]map[string][]byte{}
	for ns, gs := range r.Tenant(tenant) {
		nss[ns] = maps.Clone(gs)
	}
	if err := f(nss); err != nil {
		return nil, err
	}
	out := &RuleGroups{tenants: map[string]map[string]map[string][]byte{}}
	if r != nil {
		maps.Copy(out.tenants, r.tenants)
	}
	for ns, gs := range nss {
		if len(gs) == 0 {
			delete(nss, ns)
		}
	}
	if len(nss) == 0 {
		delete(out.tenants, tenant)
	} else {
		out.tenants[tenant] = nss
	}
	return out, nil
}

// RuleChange is one change to the rule groups, as proposed.
type RuleChange struct {
	Op        byte // ruleSet, ruleDelete, ruleDeleteNS
	Tenant    string
	Namespace string
	Name      string
	YAML      []byte
}

// SetRuleGroup, DeleteRuleGroup and DeleteRuleNamespace are the changes.
func SetRuleGroup(tenant, ns, name string, yaml []byte) RuleChange {
	return RuleChange{Op: ruleSet, Tenant: tenant, Namespace: ns, Name: name, YAML: yaml}
}

func DeleteRuleGroup(tenant, ns, name string) RuleChange {
	return RuleChange{Op: ruleDelete, Tenant: tenant, Namespace: ns, Name: name}
}

func DeleteRuleNamespace(tenant, ns string) RuleChange {
	return RuleChange{Op: ruleDeleteNS, Tenant: tenant, Namespace: ns}
}

// AppendRuleChange appends c's metadata log entry.
func AppendRuleChange(b []byte, c RuleChange) []byte {
	b = append(b, entryRules, rulesVersion, c.Op)
	b = appendBytes(b, []byte(c.Tenant))
	b = appendBytes(b, []byte(c.Namespace))
	switch c.Op {
	case ruleSet:
		b = appendBytes(b, []byte(c.Name))
		b = appendBytes(b, c.YAML)
	case ruleDelete:
		b = appendBytes(b, []byte(c.Name))
	}
	return b
}

// DecodeRuleChange decodes a rule change entry (AppendRuleChange).
// Errors wrap ErrCorruptMeta.
func DecodeRuleChange(b []byte) (RuleChange, error) {
	var c RuleChange
	if len(b) < 3 || b[0] != entryRules {
		return c, fmt.Errorf("%w: rule change header", ErrCorruptMeta)
	}
	if b[1] != rulesVersion {
		return c, fmt.Errorf("%w: rule change version %d", ErrCorruptMeta, b[1])
	}
	c.Op, b = b[2], b[3:]
	var tenant, ns, name, yaml []byte
	var err error
	if tenant, b, err = readBytes(b, maxRuleNameBytes); err != nil {
		return c, err
	}
	if ns, b, err = readBytes(b, maxRuleNameBytes); err != nil {
		return c, err
	}
	switch c.Op {
	case ruleSet:
		if name, b, err = readBytes(b, maxRuleNameBytes); err != nil {
			return c, err
		}
		if yaml, b, err = readBytes(b, MaxRuleGroupBytes); err != nil {
			return c, err
		}
	case ruleDelete:
		if name, b, err = readBytes(b, maxRuleNameBytes); err != nil {
			return c, err
		}
	case ruleDeleteNS:
	default:
		return c, fmt.Errorf("%w: rule change op %d", ErrCorruptMeta, c.Op)
	}
	if len(b) != 0 {
		return c, fmt.Errorf("%w: %d bytes after a rule change", ErrCorruptMeta, len(b))
	}
	if len(tenant) == 0 || (c.Op != ruleDeleteNS && len(name) == 0) {
		return c, fmt.Errorf("%w: rule change without a tenant or group name", ErrCorruptMeta)
	}
	c.Tenant, c.Namespace, c.Name, c.YAML = string(tenant), string(ns), string(name), yaml
	return c, nil
}

// Apply returns r with c applied, or an error saying why c changes
// nothing (ErrRuleGroupNotFound, ErrRuleNamespaceNotFound). r is
// unchanged.
func (r *RuleGroups) Apply(c RuleChange) (*RuleGroups, error) {
	return r.withTenant(c.Tenant, func(nss map[string]map[string][]byte) error {
		switch c.Op {
		case ruleSet:
			if nss[c.Namespace] == nil {
				nss[c.Namespace] = map[string][]byte{}
			}
			nss[c.Namespace][c.Name] = c.YAML
		case ruleDelete:
			if _, ok := nss[c.Namespace][c.Name]; !ok {
				return ErrRuleGroupNotFound
			}
			delete(nss[c.Namespace], c.Name)
		case ruleDeleteNS:
			if len(nss[c.Namespace]) == 0 {
				return ErrRuleNamespaceNotFound
			}
			delete(nss, c.Namespace)
		}
		return nil
	})
}

// appendRulesSection appends the snapshot section of r.
func appendRulesSection(dst []byte, r *RuleGroups) []byte {
	b := []byte{rulesVersion}
	b = binary.AppendUvarint(b, uint64(r.Len()))
	for _, t := range r.Tenants() {
		nss := r.Tenant(t)
		for _, ns := range slices.Sorted(maps.Keys(nss)) {
			for _, name := range slices.Sorted(maps.Keys(nss[ns])) {
				b = appendBytes(b, []byte(t))
				b = appendBytes(b, []byte(ns))
				b = appendBytes(b, []byte(name))
				b = appendBytes(b, nss[ns][name])
			}
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decodeRulesSection reads the snapshot section and returns the rest.
func decodeRulesSection(b []byte) (*RuleGroups, []byte, error) {
	sec, n, rest, err := readSection(b, rulesVersion, "rules")
	if err != nil {
		return nil, nil, err
	}
	r := &RuleGroups{tenants: map[string]map[string]map[string][]byte{}}
	for range n {
		var t, ns, name, yaml []byte
		var err error
		if t, sec, err = readBytes(sec, maxRuleNameBytes); err != nil {
			return nil, nil, err
		}
		if ns, sec, err = readBytes(sec, maxRuleNameBytes); err != nil {
			return nil, nil, err
		}
		if name, sec, err = readBytes(sec, maxRuleNameBytes); err != nil {
			return nil, nil, err
		}
		if yaml, sec, err = readBytes(sec, MaxRuleGroupBytes); err != nil {
			return nil, nil, err
		}
		if len(t) == 0 || len(name) == 0 {
			return nil, nil, fmt.Errorf("%w: rule group without a tenant or name", ErrCorruptMeta)
		}
		nss := r.tenants[string(t)]
		if nss == nil {
			nss = map[string]map[string][]byte{}
			r.tenants[string(t)] = nss
		}
		if nss[string(ns)] == nil {
			nss[string(ns)] = map[string][]byte{}
		}
		if _, dup := nss[string(ns)][string(name)]; dup {
			return nil, nil, fmt.Errorf("%w: rule group %q of tenant %q namespace %q twice", ErrCorruptMeta, name, t, ns)
		}
		nss[string(ns)][string(name)] = yaml
	}
	if len(sec) != 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes after the rule groups", ErrCorruptMeta, len(sec))
	}
	return r, rest, nil
}

// readSection reads a snapshot section of the metadata,
//
//	len:uvarint | version:byte | count:uvarint | entries
//
// and returns its entries, their count and the rest of b.
func readSection(b []byte, version byte, what string) (entries []byte, count uint64, rest []byte, err error) {
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) || l < 1 {
		return nil, 0, nil, fmt.Errorf("%w: %s section length", ErrCorruptMeta, what)
	}
	sec, rest := b[k:k+int(l)], b[k+int(l):]
	if sec[0] != version {
		return nil, 0, nil, fmt.Errorf("%w: %s section version %d", ErrCorruptMeta, what, sec[0])
	}
	sec = sec[1:]
	n, k := binary.Uvarint(sec)
	if k <= 0 || n > uint64(len(sec)) {
		return nil, 0, nil, fmt.Errorf("%w: %s count", ErrCorruptMeta, what)
	}
	return sec[k:], n, rest, nil
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readBytes(b []byte, limit uint64) ([]byte, []byte, error) {
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) || l > limit {
		return nil, nil, fmt.Errorf("%w: string", ErrCorruptMeta)
	}
	return slices.Clone(b[k : k+int(l)]), b[k+int(l):], nil
}

// Rule group placement: a group's evaluator is the first active node
// clockwise from the group's hash on a ring of ruleTokensPerNode tokens
// per active node (each token an xxhash of the node ID and its number),
// built from the view alone, so every node with the same view agrees.

const ruleTokensPerNode = 64

type ruleToken struct {
	token uint64
	node  ring.NodeID
}

// ruleRing is built once per view, at its first use.
type ruleRing struct {
	once   sync.Once
	tokens []ruleToken
}

func (rr *ruleRing) build(v *View) []ruleToken {
	rr.once.Do(func() {
		for _, nd := range v.State.ActiveNodes() {
			for i := range ruleTokensPerNode {
				var d xxhash.Digest
				d.WriteString(string(nd))
				d.Write(binary.BigEndian.AppendUint32(nil, uint32(i)))
				rr.tokens = append(rr.tokens, ruleToken{d.Sum64(), nd})
			}
		}
		slices.SortFunc(rr.tokens, func(a, b ruleToken) int {
			return cmp.Or(cmp.Compare(a.token, b.token), cmp.Compare(a.node, b.node))
		})
	})
	return rr.tokens
}

// RuleGroupHash is the ring position of a rule group.
func RuleGroupHash(tenant, ns, name string) uint64 {
	var d xxhash.Digest
	for _, s := range []string{tenant, ns, name} {
		d.WriteString(strconv.Itoa(len(s)))
		d.WriteString(":")
		d.WriteString(s)
	}
	return d.Sum64()
}

// RuleOwner returns the node that evaluates the rule group: the first
// active node clockwise from RuleGroupHash; "" when no node is active.
func (v *View) RuleOwner(tenant, ns, name string) ring.NodeID {
	rr := v.ruleRing
	if rr == nil {
		rr = &ruleRing{}
	}
	ts := rr.build(v)
	if len(ts) == 0 {
		return ""
	}
	h := RuleGroupHash(tenant, ns, name)
	i, _ := slices.BinarySearchFunc(ts, h, func(t ruleToken, h uint64) int { return cmp.Compare(t.token, h) })
	return ts[i%len(ts)].node
}

// ChangeRules commits a rule change through the metadata leader (this
// node or another) and returns once this node has applied it, so a read
// here after it sees it. A change that finds nothing to delete returns
// ErrRuleGroupNotFound or ErrRuleNamespaceNotFound; no leader, an error
// wrapping ErrUnavailable.
func (n *Node) ChangeRules(ctx context.Context, c RuleChange) error {
	entry := AppendRuleChange(nil, c)
	if len(entry) > maxEntryBytes {
		return fmt.Errorf("rule group of %d bytes: too large", len(entry))
	}
	res, err := n.commitMeta(ctx, entry)
	if err != nil {
		return err
	}
	switch res.Outcome {
	case "":
		return nil
	case ErrRuleGroupNotFound.Error():
		return ErrRuleGroupNotFound
	case ErrRuleNamespaceNotFound.Error():
		return ErrRuleNamespaceNotFound
	default:
		return fmt.Errorf("%w: %s", errRefused, res.Outcome)
	}
}

// commitMeta commits a rule change or cache generation entry through
// the metadata leader (this node or another) and returns its index and
// outcome once this node has applied it, so a read here after it sees
// it. No leader: an error wrapping ErrUnavailable.
func (n *Node) commitMeta(ctx context.Context, entry []byte) (metaChangeResult, error) {
	var res metaChangeResult
	if n.meta.isLeader() {
		var err error
		if res, err = n.proposeMetaChange(ctx, entry); err != nil {
			return res, err
		}
	} else if err := n.meta.callLeader(ctx, http.MethodPost, "rules", nil, entry, &res); err != nil {
		return res, err
	}
	// Wait for this node's replica to apply it.
	for n.meta.View().Index < res.Index {
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%w: committed at index %d, not applied here yet: %w", ErrUnavailable, res.Index, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return res, nil
}

// metaChangeResult answers POST rules: the entry's index and outcome.
type metaChangeResult struct {
	Index   uint64 `json:"index"`
	Outcome string `json:"outcome,omitempty"`
}

// proposeMetaChange proposes a rule change or a cache generation bump,
// refusing any other entry (the RPC's body comes from another node).
func (n *Node) proposeMetaChange(ctx context.Context, entry []byte) (metaChangeResult, error) {
	var err error
	if len(entry) > 0 && entry[0] == entryCacheGen {
		_, err = DecodeCacheGenBump(entry)
	} else {
		_, err = DecodeRuleChange(entry)
	}
	if err != nil {
		return metaChangeResult{}, permanentError{err}
	}
	idx, outcome, err := n.meta.g.Propose(ctx, entry)
	if err != nil {
		return metaChangeResult{}, fmt.Errorf("%w: propose metadata change: %w", ErrUnavailable, err)
	}
	return metaChangeResult{Index: idx, Outcome: string(outcome)}, nil
}
