package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	promchunkenc "github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/bench/internal/histconv"
	"github.com/myelindb/myelin/internal/histdata"
)

// readRecorded returns every native-histogram series stored in a
// Prometheus TSDB directory (blocks and WAL; opened read-only, the WAL
// replayed in a sandbox), with kind="recorded" added to its labels. Float
// samples of the same series are skipped; a series with fewer than 2
// histogram samples is left out.
func readRecorded(dir string) ([]histdata.Series, error) {
	sandbox, err := os.MkdirTemp("", "histdata-sandbox")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(sandbox)
	db, err := tsdb.OpenDBReadOnly(dir, sandbox, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	defer db.Close()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var out []histdata.Series
	var it promchunkenc.Iterator
	for ss.Next() {
		ls := ss.At().Labels()
		b := labels.NewBuilder(ls)
		b.Set("kind", "recorded")
		s := histdata.Series{Labels: b.Labels().String(), Kind: histdata.KindInt}
		it = ss.At().Iterator(it)
		ints, floats := 0, 0
		for vt := it.Next(); vt != promchunkenc.ValNone; vt = it.Next() {
			switch vt {
			case promchunkenc.ValHistogram:
				t, h := it.AtHistogram(nil)
				s.T = append(s.T, t)
				s.H = append(s.H, histconv.From(h))
				ints++
			case promchunkenc.ValFloatHistogram:
				t, h := it.AtFloatHistogram(nil)
				s.T = append(s.T, t)
				s.FH = append(s.FH, histconv.FromFloat(h))
				floats++
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", ls, err)
		}
		if ints > 0 && floats > 0 {
			return nil, fmt.Errorf("%s: integer and float histograms in one series", ls)
		}
		if floats > 0 {
			s.Kind = histdata.KindFloat
		}
		if len(s.T) >= 2 {
			out = append(out, s)
		}
	}
	return out, ss.Err()
}
