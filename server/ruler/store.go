package ruler

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/rulefmt"
	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/internal/atomicfile"
)

var (
	// ErrGroupNotFound: no rule group of that name in the namespace
	// (Cortex's text, answered 404).
	ErrGroupNotFound = errors.New("group does not exist")
	// ErrNamespaceNotFound: the tenant has no rule group in the
	// namespace (Cortex's text, answered 404).
	ErrNamespaceNotFound = errors.New("group namespace does not exist")
)

// Store holds the tenants' rule groups by tenant, namespace and group
// name. Implementations are safe for concurrent use. Returned groups are
// the caller's.
type Store interface {
	// Tenants lists the tenants with at least one rule group, sorted.
	Tenants(ctx context.Context) ([]string, error)
	// List returns the tenant's groups by namespace, each namespace's
	// groups sorted by name; ns "" means every namespace.
	List(ctx context.Context, tenant, ns string) (map[string][]rulefmt.RuleGroup, error)
	// Get returns one group, or ErrGroupNotFound.
	Get(ctx context.Context, tenant, ns, group string) (rulefmt.RuleGroup, error)
	// Set creates or replaces the group of g.Name in ns.
	Set(ctx context.Context, tenant, ns string, g rulefmt.RuleGroup) error
	// Delete removes one group, or returns ErrGroupNotFound.
	Delete(ctx context.Context, tenant, ns, group string) error
	// DeleteNamespace removes every group of ns, or returns
	// ErrNamespaceNotFound.
	DeleteNamespace(ctx context.Context, tenant, ns string) error
}

// FileStore is the former single-node Store (cmd uses MetaStore and
// imports a FileStore's groups once, ImportFileStore): one YAML file per
// group under Dir/<tenant>/<namespace>/<group>.yaml, the namespace and
// group names
// in unpadded base64url (any byte may be in them). A file is written to
// a temporary name, synced and renamed, so a crash leaves the old group
// or the new one. It is NOT replicated: a node's groups are lost with
// its disk and other nodes do not see them.
//
// Locking: mu serialises writers against listers; the files are the
// state.
type FileStore struct {
	dir string
	mu  sync.RWMutex
}

var _ Store = (*FileStore)(nil)

// NewFileStore returns the store under dir, creating it.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create rule store %s: %w", dir, err)
	}
	return &FileStore{dir: dir}, nil
}

func encName(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decName(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err
}

func (s *FileStore) Tenants(context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list rule tenants: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		nss, err := os.ReadDir(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("list rule namespaces of tenant %s: %w", e.Name(), err)
		}
		if len(nss) > 0 {
			out = append(out, e.Name())
		}
	}
	return out, nil // ReadDir sorts by name
}

func (s *FileStore) List(_ context.Context, tenant, ns string) (map[string][]rulefmt.RuleGroup, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string][]rulefmt.RuleGroup{}
	tdir := filepath.Join(s.dir, tenant)
	var nsDirs []string
	if ns != "" {
		nsDirs = []string{encName(ns)}
	} else {
		ents, err := os.ReadDir(tdir)
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list rule namespaces of tenant %s: %w", tenant, err)
		}
		for _, e := range ents {
			nsDirs = append(nsDirs, e.Name())
		}
	}
	for _, d := range nsDirs {
		name, err := decName(d)
		if err != nil {
			return nil, fmt.Errorf("rule namespace directory %s of tenant %s: %w", d, tenant, err)
		}
		files, err := os.ReadDir(filepath.Join(tdir, d))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list rule groups of tenant %s namespace %q: %w", tenant, name, err)
		}
		for _, f := range files {
			if !strings.HasSuffix(f.Name(), ".yaml") {
				continue // a temporary file of a write
			}
			g, err := readGroup(filepath.Join(tdir, d, f.Name()))
			if err != nil {
				return nil, err
			}
			out[name] = append(out[name], g)
		}
		slices.SortFunc(out[name], func(a, b rulefmt.RuleGroup) int { return strings.Compare(a.Name, b.Name) })
	}
	return out, nil
}

func readGroup(path string) (rulefmt.RuleGroup, error) {
	var g rulefmt.RuleGroup
	b, err := os.ReadFile(path)
	if err != nil {
		return g, fmt.Errorf("read rule group: %w", err)
	}
	if err := yaml.Unmarshal(b, &g); err != nil {
		return g, fmt.Errorf("decode rule group %s: %w", path, err)
	}
	return g, nil
}

func (s *FileStore) groupPath(tenant, ns, group string) string {
	return filepath.Join(s.dir, tenant, encName(ns), encName(group)+".yaml")
}

func (s *FileStore) Get(_ context.Context, tenant, ns, group string) (rulefmt.RuleGroup, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, err := readGroup(s.groupPath(tenant, ns, group))
	if errors.Is(err, os.ErrNotExist) {
		return g, ErrGroupNotFound
	}
	return g, err
}

func (s *FileStore) Set(_ context.Context, tenant, ns string, g rulefmt.RuleGroup) error {
	b, err := yaml.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode rule group %q: %w", g.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.groupPath(tenant, ns, g.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create rule namespace %q of tenant %s: %w", ns, tenant, err)
	}
	if err := atomicfile.WriteFile(path, b); err != nil {
		return fmt.Errorf("write rule group %q of tenant %s namespace %q: %w", g.Name, tenant, ns, err)
	}
	return nil
}

func (s *FileStore) Delete(_ context.Context, tenant, ns, group string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.groupPath(tenant, ns, group)
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		return ErrGroupNotFound
	}
	if err != nil {
		return fmt.Errorf("delete rule group %q of tenant %s namespace %q: %w", group, tenant, ns, err)
	}
	// An empty namespace is no namespace.
	dir := filepath.Dir(path)
	if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
		if err := os.Remove(dir); err != nil {
			return fmt.Errorf("delete empty rule namespace %q of tenant %s: %w", ns, tenant, err)
		}
	}
	return atomicfile.SyncDir(filepath.Dir(dir))
}

func (s *FileStore) DeleteNamespace(_ context.Context, tenant, ns string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Join(s.dir, tenant, encName(ns))
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return ErrNamespaceNotFound
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete rule namespace %q of tenant %s: %w", ns, tenant, err)
	}
	return atomicfile.SyncDir(filepath.Join(s.dir, tenant))
}
