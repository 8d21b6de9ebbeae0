package querier

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
)

// BenchmarkRemoteSelect selects and iterates every sample of the
// generated data set (200 series, 2h at 15s, 96,000 samples; fixed seed)
// from one engine group, locally and through the remote protocol over
// loopback HTTP (httptest), to price the protocol: re-encoding to XOR
// chunks, the connection, and decoding.
//
//	go test -run '^$' -bench BenchmarkRemoteSelect -benchtime 20x ./server/querier/
func BenchmarkRemoteSelect(b *testing.B) {
	d := generate(7)
	groups := openGroups(b, engine.Options{}, 1)
	storeSingle(b, groups[1], d)
	srv := serve(b, groups)
	mint, maxt := genStart, genStart+genSteps*genStep
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	for _, bc := range []struct {
		name string
		open func() (storage.Querier, error)
	}{
		{"local", func() (storage.Querier, error) { return groups[1].Querier(tenant, mint, maxt) }},
		{"remote", func() (storage.Querier, error) {
			return NewRemote(srv.Client(), srv.URL, 1, tenant, mint, maxt), nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			var it chunkenc.Iterator
			for b.Loop() {
				q, err := bc.open()
				require.NoError(b, err)
				ss := q.Select(context.Background(), false, nil, all)
				for ss.Next() {
					it = ss.At().Iterator(it)
					for it.Next() != chunkenc.ValNone {
						n++
					}
					require.NoError(b, it.Err())
				}
				require.NoError(b, ss.Err())
				require.NoError(b, q.Close())
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
