package engine

import (
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

// BenchmarkApplyST measures apply with start timestamps against the same
// samples without: 2,000 series scraped every 15 s for an hour (chunks
// sealed and merged), 500 series per batch, decode included. counter: a
// constant start timestamp per series (a counter's process start);
// delta: the previous sample's time (OTel's delta temporality); jitter:
// the previous sample's time with scrape jitter (a rule per sample).
// bytes/sample is every key and value of the store after a checkpoint,
// st-bytes/sample the start timestamps' share, disk-bytes/sample the
// store's files after a full compaction (Pebble's prefix and block
// compression).
func BenchmarkApplyST(b *testing.B) {
	for _, kind := range []string{"none", "counter", "delta", "jitter"} {
		b.Run(kind, func(b *testing.B) {
			const nSeries, rounds, per = 2_000, 240, 500
			lsets := benchLabels(nSeries)
			var batches [][]byte
			t0 := int64(1_700_000_000_000)
			for r := range rounds {
				bb := write.NewBuilder("bench")
				for lo := 0; lo < nSeries; lo += per {
					for i := lo; i < min(lo+per, nSeries); i++ {
						ts := t0 + int64(r)*15_000
						if kind == "jitter" {
							ts += int64((r*7+i)%13) * 11
						}
						require.NoError(b, bb.Add(lsets[i], []write.Sample{{T: ts, V: float64(r*i%1000) * 1.5}}))
						switch kind {
						case "counter":
							bb.SetStartTimestamps([]int64{t0 - int64(i)*1000})
						case "delta", "jitter":
							prev := ts - 15_000
							if kind == "jitter" {
								prev = t0 + int64(r-1)*15_000 + int64(((r-1)*7+i)%13)*11
							}
							bb.SetStartTimestamps([]int64{prev})
						}
					}
					batches = append(batches, write.Append(nil, bb.Batch()))
					bb.Reset("bench")
				}
			}
			b.ReportAllocs()
			samples := 0
			var bytes, stBytes int
			var disk uint64
			for b.Loop() {
				b.StopTimer()
				db, err := Open(Options{Dir: "db", FS: vfs.NewMem()})
				require.NoError(b, err)
				g, _, err := db.OpenGroup(1)
				require.NoError(b, err)
				b.StartTimer()
				for i, e := range batches {
					if _, err := g.Apply(uint64(i+1), e); err != nil {
						b.Fatal(err)
					}
				}
				samples += nSeries * rounds
				b.StopTimer()
				require.NoError(b, g.Checkpoint())
				bytes, stBytes = storeBytes(b, db)
				require.NoError(b, db.pdb.Compact(context.Background(), []byte{0}, []byte{0xff}, true))
				disk = db.pdb.Metrics().DiskSpaceUsage()
				require.NoError(b, db.Close())
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/sample")
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(bytes)/float64(nSeries*rounds), "bytes/sample")
			b.ReportMetric(float64(stBytes)/float64(nSeries*rounds), "st-bytes/sample")
			b.ReportMetric(float64(disk)/float64(nSeries*rounds), "disk-bytes/sample")
		})
	}
}

// storeBytes returns the raw key and value bytes of the store, and of its
// start timestamp keys.
func storeBytes(b *testing.B, db *DB) (all, st int) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{})
	require.NoError(b, err)
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		n := len(it.Key()) + len(it.Value())
		all += n
		if k := it.Key(); len(k) > prefixLen && k[prefixLen-1] == kindST {
			st += n
		}
	}
	return all, st
}
