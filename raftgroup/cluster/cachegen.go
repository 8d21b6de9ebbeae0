package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
)

// Results-cache generations (docs/design.md "Deletion and retention",
// the results cache): a counter per tenant in the metadata, bumped
// after the tenant's data was deleted. Query frontends put it in their
// cache keys, so every node stops using results cached before a
// deletion as soon as it applies the bump, whichever node took the
// deletion; a shared cache (memcached) lets the old entries expire.
//
// Metadata log entry of a bump:
//
//	entryCacheGen | version:byte(1) | tenant:str
//
// The snapshot section (metadata version 4, after the rules section):
//
//	len:uvarint | version:byte(1) | count:uvarint { tenant:str generation:uvarint }
//
// in tenant order. A tenant's generation is never forgotten, not even
// when the tenant is deleted: set back to zero, it would make the
// results cached before the first bump valid again.
const (
	entryCacheGen   byte = 0x82
	cacheGenVersion byte = 1
)

// CacheGenerations is the tenants' results-cache generations. Immutable:
// a bump builds a new value. The nil value has every generation zero.
type CacheGenerations struct {
	gens map[string]uint64
}

// Get returns the tenant's generation.
func (c *CacheGenerations) Get(tenant string) uint64 {
	if c == nil {
		return 0
	}
	return c.gens[tenant]
}

// Len is the number of tenants with a generation above zero.
func (c *CacheGenerations) Len() int {
	if c == nil {
		return 0
	}
	return len(c.gens)
}

// Tenants returns the tenants with a generation above zero, sorted.
func (c *CacheGenerations) Tenants() []string {
	if c == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(c.gens))
}

// Bump returns a copy of c with the tenant's generation one higher.
func (c *CacheGenerations) Bump(tenant string) *CacheGenerations {
	out := &CacheGenerations{gens: make(map[string]uint64, c.Len()+1)}
	if c != nil {
		maps.Copy(out.gens, c.gens)
	}
	out.gens[tenant]++
	return out
}

// AppendCacheGenBump appends the metadata log entry that bumps the
// tenant's generation.
func AppendCacheGenBump(b []byte, tenant string) []byte {
	return appendBytes(append(b, entryCacheGen, cacheGenVersion), []byte(tenant))
}

// DecodeCacheGenBump decodes a bump entry (AppendCacheGenBump) into its
// tenant. Errors wrap ErrCorruptMeta.
func DecodeCacheGenBump(b []byte) (string, error) {
	if len(b) < 2 || b[0] != entryCacheGen {
		return "", fmt.Errorf("%w: cache generation header", ErrCorruptMeta)
	}
	if b[1] != cacheGenVersion {
		return "", fmt.Errorf("%w: cache generation version %d", ErrCorruptMeta, b[1])
	}
	tenant, rest, err := readBytes(b[2:], maxRuleNameBytes)
	if err != nil {
		return "", err
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("%w: %d bytes after a cache generation bump", ErrCorruptMeta, len(rest))
	}
	if len(tenant) == 0 {
		return "", fmt.Errorf("%w: cache generation bump without a tenant", ErrCorruptMeta)
	}
	if len(binary.AppendUvarint(nil, uint64(len(tenant)))) != len(b)-2-len(tenant) {
		return "", fmt.Errorf("%w: cache generation bump with a non-minimal length", ErrCorruptMeta)
	}
	return string(tenant), nil
}

// appendCacheGenSection appends the snapshot section of c.
func appendCacheGenSection(dst []byte, c *CacheGenerations) []byte {
	b := []byte{cacheGenVersion}
	b = binary.AppendUvarint(b, uint64(c.Len()))
	for _, t := range c.Tenants() {
		b = appendBytes(b, []byte(t))
		b = binary.AppendUvarint(b, c.gens[t])
	}
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decodeCacheGenSection reads the snapshot section and returns the rest.
func decodeCacheGenSection(b []byte) (*CacheGenerations, []byte, error) {
	sec, n, rest, err := readSection(b, cacheGenVersion, "cache generations")
	if err != nil {
		return nil, nil, err
	}
	c := &CacheGenerations{gens: make(map[string]uint64, n)}
	prev := ""
	for i := range n {
		t, r, err := readBytes(sec, maxRuleNameBytes)
		if err != nil {
			return nil, nil, err
		}
		gen, k := binary.Uvarint(r)
		if k <= 0 || gen == 0 || len(t) == 0 || (i > 0 && string(t) <= prev) {
			return nil, nil, fmt.Errorf("%w: cache generation %d", ErrCorruptMeta, i)
		}
		prev, sec = string(t), r[k:]
		c.gens[prev] = gen
	}
	if len(sec) != 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes after the cache generations", ErrCorruptMeta, len(sec))
	}
	return c, rest, nil
}

// CacheGeneration returns the tenant's results-cache generation in this
// view.
func (v *View) CacheGeneration(tenant string) uint64 { return v.CacheGens.Get(tenant) }

// BumpCacheGeneration commits a bump of the tenant's results-cache
// generation through the metadata leader and returns once this node has
// applied it. Errors wrap ErrUnavailable.
func (n *Node) BumpCacheGeneration(ctx context.Context, tenant string) error {
	if tenant == "" {
		return fmt.Errorf("bump cache generation: empty tenant")
	}
	res, err := n.commitMeta(ctx, AppendCacheGenBump(nil, tenant))
	if err != nil {
		return err
	}
	if res.Outcome != "" {
		return fmt.Errorf("%w: %s", errRefused, res.Outcome)
	}
	return nil
}
