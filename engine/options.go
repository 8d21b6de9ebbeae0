package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/chunkenc"
)

// Options configure a DB. The chunk and partition options are part of the
// deterministic apply: every replica of a group must run with the same
// values, or their stores diverge.
type Options struct {
	// Dir is the Pebble directory. Required.
	Dir string
	// FS is the filesystem; nil means the operating system's. Tests pass
	// vfs.NewMem() or an error-injecting FS.
	FS vfs.FS
	// ChunkSamples: seal the head chunk of a series when it holds this many
	// samples. Zero means 120, Prometheus's target: at a 15s scrape interval
	// that is 30 minutes per chunk, where XOR compression has flattened out
	// (~1.3 bytes/sample at 120 vs ~2 at 30), and it bounds the head at
	// about 160 bytes of chunk per active series.
	ChunkSamples int
	// MergeChunks: sealed chunks of a series are merged in runs of this
	// many (within a partition; the last run of a partition may be
	// shorter) into one stored chunk. Zero means 8: 960-sample chunks at
	// the default ChunkSamples, near pack's best size (1024) while the
	// head keeps 120. 1 disables merging.
	MergeChunks int
	// SealEncoding is the encoding of sealed chunks. Zero means
	// chunkenc.EncPack.
	SealEncoding chunkenc.Encoding
	// Partition is the width of a time partition of the postings and chunk
	// keys. Zero means 24h: a 30-day query reads 30 postings partitions, a
	// 1h query one or two, and retention drops whole days. Must not change
	// for the life of a store.
	Partition time.Duration
	// Retention: reject samples older than the tenant's newest sample minus
	// Retention. Zero keeps all and rejects none.
	Retention time.Duration
	// EvictIdle: a series with no sample for this long, in the tenant's
	// sample time (not the wall clock), has its open chunk sealed and
	// leaves the head. Checked every EvictIdle/4 of sample time. Zero
	// means 1h; a series scraped every 15s is never evicted, one that
	// stopped leaves within 75 minutes.
	EvictIdle time.Duration
	// IndexGhosts: how long, in sample time, an evicted series stays in
	// the head index after its newest sample (shorter if Retention is).
	// Selects and label queries whose range starts within
	// max(EvictIdle, IndexGhosts) of the tenant's newest sample are
	// answered from the head index, not from the postings in Pebble.
	// Zero means 3h.
	IndexGhosts time.Duration
	// CacheBytes is the size of Pebble's block cache, shared by index and
	// chunk reads. Zero means 64 MiB. Pebble's own default, 8 MiB, let
	// the postings and index blocks of a 1000-series store fall out:
	// every short select read them again with pread.
	CacheBytes int64
	// MemTableBytes is the size of one Pebble memtable (up to two are
	// live while one flushes). Zero means 16 MiB. Pebble's default, 4
	// MiB, flushed an L0 table every few thousand series' seals and
	// compacted them again.
	MemTableBytes int64
	// OnDiskFull is called, with an error wrapping ENOSPC, each time a
	// write of Pebble's fails because the disk is full (about once a
	// second while it lasts; see "Disk full" in doc.go). The node wires
	// its disk guard, which then refuses writes. Nil means no call.
	OnDiskFull func(error)
	// Logger; nil means discard.
	Logger *slog.Logger
	// Registerer receives the engine's metrics (head series per tenant,
	// Pebble's sizes, compactions and cache), collected at scrape time;
	// Close unregisters them. Nil means none.
	Registerer prometheus.Registerer
}

const (
	defaultCacheBytes    = 64 << 20
	defaultMemTableBytes = 16 << 20
	defaultChunkSamples  = 120
	defaultMergeChunks   = 8
	defaultPartition     = 24 * time.Hour
	defaultEvictIdle     = time.Hour
	defaultIndexGhosts   = 3 * time.Hour
)

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.ChunkSamples == 0 {
		o.ChunkSamples = defaultChunkSamples
	}
	if o.MergeChunks == 0 {
		o.MergeChunks = defaultMergeChunks
	}
	if o.SealEncoding == 0 {
		o.SealEncoding = chunkenc.EncPack
	}
	if o.Partition == 0 {
		o.Partition = defaultPartition
	}
	if o.EvictIdle == 0 {
		o.EvictIdle = defaultEvictIdle
	}
	if o.IndexGhosts == 0 {
		o.IndexGhosts = defaultIndexGhosts
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = defaultCacheBytes
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = defaultMemTableBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every problem of o at once. Zero fields are valid (they
// take defaults) except Dir.
func (o Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("engine: Dir is required"))
	}
	if o.ChunkSamples < 0 || o.ChunkSamples > chunkenc.MaxSamples {
		errs = append(errs, fmt.Errorf("engine: ChunkSamples %d not in [1, %d]", o.ChunkSamples, chunkenc.MaxSamples))
	}
	if o.SealEncoding != 0 {
		if _, err := chunkenc.ParseEncoding(o.SealEncoding.String()); err != nil {
			errs = append(errs, fmt.Errorf("engine: SealEncoding: %w", err))
		}
	}
	if o.Partition < 0 || o.Partition%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("engine: Partition %v is not a positive whole number of milliseconds", o.Partition))
	}
	if o.IndexGhosts < 0 || o.IndexGhosts%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("engine: IndexGhosts %v is not a positive whole number of milliseconds", o.IndexGhosts))
	}
	if o.EvictIdle < 0 || o.EvictIdle%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("engine: EvictIdle %v is not a positive whole number of milliseconds", o.EvictIdle))
	}
	if o.MergeChunks < 0 || o.MergeChunks > 255 {
		errs = append(errs, fmt.Errorf("engine: MergeChunks %d not in [1, 255]", o.MergeChunks))
	} else if d := o.withDefaults(); d.ChunkSamples > 0 && d.MergeChunks*d.ChunkSamples > chunkenc.MaxSamples {
		errs = append(errs, fmt.Errorf("engine: MergeChunks %d x ChunkSamples %d exceeds %d samples per chunk", d.MergeChunks, d.ChunkSamples, chunkenc.MaxSamples))
	}
	if o.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("engine: CacheBytes %d is negative", o.CacheBytes))
	}
	// Pebble requires a memtable below 4 GiB.
	if o.MemTableBytes < 0 || o.MemTableBytes >= 4<<30 {
		errs = append(errs, fmt.Errorf("engine: MemTableBytes %d not in [1, 4 GiB)", o.MemTableBytes))
	}
	if o.Retention < 0 {
		errs = append(errs, fmt.Errorf("engine: negative Retention %v", o.Retention))
	}
	return errors.Join(errs...)
}
