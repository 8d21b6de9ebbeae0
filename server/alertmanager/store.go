package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/internal/atomicfile"
)

// ErrNotFound: the tenant has no Alertmanager configuration (Cortex's
// text, answered 404).
var ErrNotFound = errors.New("alertmanager config not found")

// Store holds the tenants' Alertmanager configurations. Implementations
// are safe for concurrent use; returned values are the caller's. The
// replicated store (the metadata Raft group, docs/design.md
// "Alertmanager") implements the same interface.
type Store interface {
	// Tenants lists the tenants with a configuration, sorted.
	Tenants(ctx context.Context) ([]string, error)
	// Get returns the tenant's configuration, or ErrNotFound.
	Get(ctx context.Context, tenant string) (UserConfig, error)
	// Set creates or replaces the tenant's configuration; it is durable
	// when Set returns.
	Set(ctx context.Context, tenant string, uc UserConfig) error
	// Delete removes the tenant's configuration; deleting none is not an
	// error (Cortex answers 200 either way).
	Delete(ctx context.Context, tenant string) error
}

// FileStore is the single-node Store: one YAML file per tenant,
// Dir/<tenant>.yaml (tenant IDs are valid file names: server/tenant
// refuses "/", "." and ".."), written through a synced temporary file
// and a rename, so a crash leaves the old configuration or the new one.
// It is not replicated.
//
// Locking: mu serialises writers against readers; the files are the
// state.
type FileStore struct {
	dir string
	mu  sync.RWMutex
}

var _ Store = (*FileStore)(nil)

// NewFileStore returns the store under dir, creating it.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create alertmanager config store %s: %w", dir, err)
	}
	return &FileStore{dir: dir}, nil
}

const configExt = ".yaml"

func (s *FileStore) path(tenant string) string { return filepath.Join(s.dir, tenant+configExt) }

func (s *FileStore) Tenants(context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list alertmanager configs: %w", err)
	}
	var out []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), configExt); ok && !e.IsDir() {
			out = append(out, name)
		}
	}
	return out, nil // ReadDir sorts by name
}

func (s *FileStore) Get(_ context.Context, tenant string) (UserConfig, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var uc UserConfig
	b, err := os.ReadFile(s.path(tenant))
	if errors.Is(err, os.ErrNotExist) {
		return uc, ErrNotFound
	}
	if err != nil {
		return uc, fmt.Errorf("read alertmanager config of tenant %s: %w", tenant, err)
	}
	if err := yaml.Unmarshal(b, &uc); err != nil {
		return uc, fmt.Errorf("decode alertmanager config of tenant %s: %w", tenant, err)
	}
	return uc, nil
}

func (s *FileStore) Set(_ context.Context, tenant string, uc UserConfig) error {
	b, err := yaml.Marshal(uc)
	if err != nil {
		return fmt.Errorf("encode alertmanager config of tenant %s: %w", tenant, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := atomicfile.WriteFile(s.path(tenant), b); err != nil {
		return fmt.Errorf("write alertmanager config of tenant %s: %w", tenant, err)
	}
	return nil
}

func (s *FileStore) Delete(_ context.Context, tenant string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := os.Remove(s.path(tenant))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete alertmanager config of tenant %s: %w", tenant, err)
	}
	return atomicfile.SyncDir(s.dir)
}
