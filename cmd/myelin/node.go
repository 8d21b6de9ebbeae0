package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/write"
)

// node is a single node: one engine and one Raft group of one replica.
// Every write goes through the group's log (the write-ahead log) before
// it is applied to the engine. A cluster node is a clusterNode.
type node struct {
	db      *engine.DB
	eg      *engine.Group
	rg      *raftgroup.Group
	logger  *slog.Logger
	entries write.Encoder // log entries of write batches
}

// The engine group is the state machine of its raft group.
var _ raftgroup.Applier = (*engine.Applier)(nil)

// groupID is the only group of a single node.
const groupID = 1

// singleVoterHeartbeat is the Raft heartbeat (and election) timeout of a
// one-replica group.
const singleVoterHeartbeat = 200 * time.Millisecond

// checkMode refuses a data directory written in the other mode: a
// single node's group 1 and a cluster's group 1 are different groups, and
// the engine would skip the new group's log up to the old one's
// checkpoint. Moving data between the modes is not supported.
func checkMode(cfg config) error {
	single := filepath.Join(cfg.dataDir, "raft", fmt.Sprint(groupID))
	meta := filepath.Join(cfg.dataDir, "raft", "meta")
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	switch {
	case cfg.cluster.nodeID != "" && exists(single):
		return fmt.Errorf("data directory %s holds a single node's data (%s); cluster mode needs an empty one", cfg.dataDir, single)
	case cfg.cluster.nodeID == "" && exists(meta):
		return fmt.Errorf("data directory %s holds a cluster node's data (%s); start it with its -cluster.node-id", cfg.dataDir, meta)
	}
	return nil
}

// backend is what the HTTP APIs run on: a single node or a cluster node.
type backend interface {
	server.Writer
	server.Storage
	// tenantStats is the engine's per-tenant head statistics of the
	// groups this node holds, for /metrics.
	tenantStats() []engine.TenantStats
	engineDB() *engine.DB
	Close() error
}

// openBackend opens the engine and, on it, a single node or (with
// -cluster.node-id) a cluster node.
func openBackend(ctx context.Context, cfg config, logger *slog.Logger, reg prometheus.Registerer) (b backend, err error) {
	if err := checkMode(cfg); err != nil {
		return nil, err
	}
	db, err := engine.Open(engine.Options{
		Dir:           filepath.Join(cfg.dataDir, "engine"),
		Retention:     cfg.retention,
		CacheBytes:    cfg.cacheBytes,
		MemTableBytes: cfg.memTable,
		Logger:        logger,
	})
	if err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	if cfg.cluster.nodeID != "" {
		c, err := openCluster(ctx, cfg, logger, reg, db)
		if err != nil {
			return nil, errors.Join(err, db.Close())
		}
		return c, nil
	}
	n, err := openNode(ctx, cfg, logger, reg, db)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return n, nil
}

func openNode(ctx context.Context, cfg config, logger *slog.Logger, reg prometheus.Registerer, db *engine.DB) (*node, error) {
	eg, recovered, err := db.OpenGroup(groupID)
	if err != nil {
		return nil, fmt.Errorf("open engine group %d: %w", groupID, err)
	}
	logger.Info("engine open", "group", groupID, "checkpoint_index", recovered)
	start := time.Now()
	rg, err := raftgroup.Open(raftgroup.Options{
		Dir:     filepath.Join(cfg.dataDir, "raft", fmt.Sprint(groupID)),
		ID:      fmt.Sprintf("node-1-group-%d", groupID),
		Applier: engine.NewApplier(eg, recovered),
		// A group of one voter has nobody to hear from: its only wait is
		// the election timeout at start, which a short timeout cuts from
		// 1-2 s to a few hundred ms without risking spurious elections.
		HeartbeatTimeout:  singleVoterHeartbeat,
		LogCacheEntries:   -1, // no followers to replicate to
		LogStore:          raftgroup.LogStore(cfg.cluster.logStore),
		SnapshotThreshold: cfg.cluster.snapshotThr,
		TrailingLogs:      cfg.cluster.trailing,
		Logger:            logger,
		Registerer:        reg,
	})
	if err != nil {
		return nil, fmt.Errorf("open raft group %d: %w", groupID, err)
	}
	// Until the log is replayed the node must not answer queries or take
	// writes: acknowledged samples would be missing.
	if err := rg.WaitLeader(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("wait for raft group %d: %w", groupID, err), rg.Close())
	}
	logger.Info("raft group ready", "group", groupID, "replayed", rg.Stats().Replayed, "took", time.Since(start))
	return &node{db: db, eg: eg, rg: rg, logger: logger}, nil
}

// Write implements server.Writer: the batch is proposed to the group and
// returns once committed and applied.
func (n *node) Write(ctx context.Context, b *write.Batch) ([]write.Refusal, error) {
	_, outcome, err := n.rg.Propose(ctx, n.entries.Entry(b))
	switch {
	case err == nil:
		o, err := write.DecodeOutcome(outcome)
		if err == nil {
			err = o.Err
		}
		if err != nil {
			return nil, err
		}
		return o.Refused, nil
	case errors.Is(err, raftgroup.ErrNotLeader), errors.Is(err, raftgroup.ErrLeadershipLost),
		errors.Is(err, raftgroup.ErrClosed):
		return nil, fmt.Errorf("%w: %w", server.ErrUnavailable, err)
	}
	return nil, err
}

func (n *node) tenantStats() []engine.TenantStats { return n.eg.Stats() }
func (n *node) engineDB() *engine.DB              { return n.db }

// Querier implements server.Storage.
func (n *node) Querier(tenant string, mint, maxt int64) (storage.Querier, error) {
	return n.eg.Querier(tenant, mint, maxt)
}

// Close checkpoints, so the next start replays nothing, and closes the
// group and the engine.
func (n *node) Close() error {
	var errs []error
	if err := n.rg.Checkpoint(); err != nil {
		errs = append(errs, fmt.Errorf("checkpoint: %w", err))
	}
	errs = append(errs, n.rg.Close())
	errs = append(errs, n.db.Close())
	return errors.Join(errs...)
}
