package engine

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// BenchmarkApplyDeletion measures what a deleting entry costs on a
// store (on disk) of N series, each with a sample written since the last
// checkpoint (every series dirty: the barrier's worst case), against a
// plain checkpoint of the same head, the floor of the barrier:
//
//   - checkpoint: Group.Checkpoint alone (the baseline);
//
//   - delete: a delete_series entry deleting one series whole (barrier,
//     a scan of the N series keys, the series' keys);
//
//   - delete-range: one deleting the newest sample of one series (a
//     chunk rewrite and an open chunk trim);
//
//   - retain: a retention step a partition later with every series
//     alive (a partition dropped, the kept postings and the series keys
//     read; the store has minute partitions, so that a round is a new
//     partition without evicting every series);
//
//   - retain-noop: a step of a partition already collected (what every
//     node's repeated proposal costs).
//
//     go test -run '^$' -bench ApplyDeletion -benchtime 10x ./engine
func BenchmarkApplyDeletion(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		lsets := benchLabels(n)
		for _, op := range []string{"checkpoint", "delete", "delete-range", "retain", "retain-noop"} {
			b.Run(fmt.Sprintf("series=%d/op=%s", n, op), func(b *testing.B) {
				// Minute partitions: a step drops one a round without
				// evicting every series (a day's jump would, and the
				// checkpoint would then prune N eviction records).
				db, err := Open(Options{Dir: b.TempDir(), Partition: time.Minute})
				require.NoError(b, err)
				defer db.Close()
				g, _, err := db.OpenGroup(1)
				require.NoError(b, err)
				day := int64(time.Minute / time.Millisecond) // a partition
				t0 := int64(1_700_000_000_000) / day * day
				index, round := uint64(0), int64(0)
				// write applies one sample of every series, at round r.
				write1 := func(r int64) {
					ts := t0 + r*15_000
					if op == "retain" || op == "retain-noop" {
						ts = t0 + r*day
					}
					for lo := 0; lo < n; lo += 2000 {
						bb := write.NewBuilder("bench")
						for i := lo; i < min(lo+2000, n); i++ {
							require.NoError(b, bb.Add(lsets[i], []write.Sample{{T: ts, V: float64(r)}}))
						}
						index++
						_, err := g.Apply(index, write.Append(nil, bb.Batch()))
						require.NoError(b, err)
					}
				}
				write1(round)
				require.NoError(b, g.Checkpoint())
				if op == "retain-noop" {
					round++
					write1(round)
					index++
					require.NoError(b, g.ApplyRetain(index, write.Retain{Tenant: "bench", Before: t0 + round*day}))
				}
				victim := 0
				for b.Loop() {
					b.StopTimer()
					round++
					write1(round)
					var entry []byte
					switch op {
					case "delete", "delete-range":
						ms := []*labels.Matcher{
							labels.MustNewMatcher(labels.MatchEqual, "__name__", lsets[victim].Get("__name__")),
							labels.MustNewMatcher(labels.MatchEqual, "instance", lsets[victim].Get("instance")),
							labels.MustNewMatcher(labels.MatchEqual, "mode", lsets[victim].Get("mode")),
						}
						d := write.DeleteSeries{Tenant: "bench", Matchers: ms, Start: math.MinInt64, End: math.MaxInt64}
						if op == "delete-range" {
							d.Start = t0 + round*15_000
							d.End = d.Start
						}
						entry = write.AppendDeleteSeries(nil, &d)
						victim++
					case "retain":
						entry = write.AppendRetain(nil, write.Retain{Tenant: "bench", Before: t0 + round*day})
					case "retain-noop":
						entry = write.AppendRetain(nil, write.Retain{Tenant: "bench", Before: t0 + 1*day})
					}
					index++
					b.StartTimer()
					if op == "checkpoint" {
						require.NoError(b, g.Checkpoint())
						continue
					}
					_, err := g.Apply(index, entry)
					require.NoError(b, err)
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
			})
		}
	}
}
