package raftgroup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

const benchBatchBytes = 20 << 10 // a remote-write request of ~2000 samples

func benchBatch(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, benchBatchBytes)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func openBenchStore(b *testing.B, store LogStore, dir string) (raft.LogStore, io.Closer) {
	b.Helper()
	switch store {
	case LogStoreWAL:
		w, err := openWALStore(Options{Dir: dir}.withDefaults(), newHCLogger(slog.New(slog.DiscardHandler), nil))
		if err != nil {
			b.Fatal(err)
		}
		return w, w
	default:
		p, err := openPebbleLog(dir, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		return p, p
	}
}

// BenchmarkLogStore: one op is one synced StoreLogs of n entries of
// 20 KB, what raft does with n proposals queued together. entries=1x16
// stores the same bytes as entries=16 in one entry: what an extra
// coalescing layer (many batches per entry) would save in the log store.
func BenchmarkLogStore(b *testing.B) {
	for _, store := range logStores {
		for _, tc := range []struct {
			name     string
			n, merge int
		}{{"1", 1, 1}, {"16", 16, 1}, {"1x16", 1, 16}, {"64", 64, 1}} {
			data := bytes.Repeat(benchBatch(1), tc.merge)
			n := tc.n
			b.Run(fmt.Sprintf("store=%s/entries=%s", store, tc.name), func(b *testing.B) {
				dir := b.TempDir()
				if err := os.MkdirAll(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				ls, c := openBenchStore(b, store, dir)
				defer c.Close()
				logs := make([]*raft.Log, n)
				for i := range logs {
					logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: data}
				}
				next := uint64(1)
				b.ReportAllocs()
				b.SetBytes(int64(n * len(data)))
				for b.Loop() {
					for _, l := range logs {
						l.Index = next
						next++
					}
					if err := ls.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// nopApplier applies nothing; it measures the group's own cost.
type nopApplier struct{ index atomic.Uint64 }

func (a *nopApplier) Apply(index uint64, _ []byte) ([]byte, error) {
	a.index.Store(index)
	return nil, nil
}
func (a *nopApplier) CheckpointIndex() uint64             { return 0 }
func (a *nopApplier) Checkpoint() (uint64, error)         { return a.index.Load(), nil }
func (a *nopApplier) Snapshot(io.Writer) (uint64, error)  { return a.index.Load(), nil }
func (a *nopApplier) Restore(r io.Reader) (uint64, error) { return 0, nil }

// BenchmarkPropose: P goroutines propose 20 KB batches to a one-replica
// group until b.N proposals are acknowledged (committed, fsynced,
// applied). proposers=4/merge=16 proposes 16 batches per entry (320 KB):
// the best an extra coalescing layer in front of raft could do for 64
// callers, without its queueing cost; proposals/s counts batches.
func BenchmarkPropose(b *testing.B) {
	for _, store := range logStores {
		for _, tc := range []struct {
			name     string
			p, merge int
		}{{"1", 1, 1}, {"8", 8, 1}, {"64", 64, 1}, {"4/merge=16", 4, 16}} {
			data := bytes.Repeat(benchBatch(2), tc.merge)
			b.Run(fmt.Sprintf("store=%s/proposers=%s", store, tc.name), func(b *testing.B) {
				dir := filepath.Join(b.TempDir(), "g")
				opts := testOptions(dir, &nopApplier{}, store)
				opts.SnapshotThreshold = 4096
				opts.SnapshotInterval = time.Second
				opts.TrailingLogs = 1024
				g := openLeader(b, opts)
				defer g.Close()
				var left atomic.Int64
				left.Store(int64(b.N))
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				b.ResetTimer()
				var wg sync.WaitGroup
				for range tc.p {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							if _, _, err := g.Propose(context.Background(), data); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N*tc.merge)/b.Elapsed().Seconds(), "proposals/s")
			})
		}
	}
}

// BenchmarkProposeReplicated compares a group of 3 replicas (three
// in-process nodes, each with its own Mux on loopback TCP and its own
// raft-wal log, all fsyncing to the same disk) with a group of 1 replica
// on the same transport: P goroutines propose 20 KB batches to the leader
// until b.N are acknowledged (committed on a quorum, applied on the
// leader). On one machine the 3 replicas share the CPU and the disk, so
// the ratio is a lower bound for replicas on separate machines.
//
//	go test -run '^$' -bench BenchmarkProposeReplicated -benchtime 3s -count 3 ./raftgroup
func BenchmarkProposeReplicated(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		for _, p := range []int{8, 64} {
			b.Run(fmt.Sprintf("replicas=%d/proposers=%d", replicas, p), func(b *testing.B) {
				data := benchBatch(2)
				dir := b.TempDir()
				var muxes []*Mux
				var voters []Voter
				for i := range replicas {
					m := newMux(b, nil)
					muxes = append(muxes, m)
					voters = append(voters, Voter{ID: fmt.Sprint("n", i), Address: m.Addr()})
				}
				var groups []*Group
				for i, m := range muxes {
					tr, err := m.Transport(1, TransportOptions{})
					if err != nil {
						b.Fatal(err)
					}
					opts := testOptions(filepath.Join(dir, voters[i].ID), &nopApplier{}, LogStoreWAL)
					opts.ID, opts.Transport, opts.Voters = voters[i].ID, tr, voters
					opts.HeartbeatTimeout = 500 * time.Millisecond
					opts.SnapshotThreshold = 4096
					opts.SnapshotInterval = time.Second
					opts.TrailingLogs = 1024
					g, err := Open(opts)
					if err != nil {
						b.Fatal(err)
					}
					defer g.Close()
					groups = append(groups, g)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				var leader *Group
				for leader == nil {
					for _, g := range groups {
						if g.IsLeader() && g.WaitLeader(ctx) == nil {
							leader = g
						}
					}
					if ctx.Err() != nil {
						b.Fatal("no leader")
					}
					time.Sleep(10 * time.Millisecond)
				}
				var left atomic.Int64
				left.Store(int64(b.N))
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				b.ResetTimer()
				var wg sync.WaitGroup
				for range p {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							if _, _, err := leader.Propose(context.Background(), data); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proposals/s")
			})
		}
	}
}
