package remotewrite

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/myelindb/myelin/internal/tsdata"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// TestHashGolden: the series key is labels.StableHash's input, frozen
// here by the hash of one key.
func TestHashGolden(t *testing.T) {
	body, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "empty", Value: ""}, {Name: "job", Value: "node"}},
	}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	if err := r.Unmarshal(body); err != nil {
		t.Fatal(err)
	}
	const golden = 0x1585e2399cc2df6 // labels.StableHash({__name__="up", job="node"}), Prometheus v0.314
	if got := xxhash.Sum64(r.Series[0].Key); got != golden {
		t.Fatalf("hash %#x, golden %#x", got, golden)
	}
}

// TestHashMatchesStableHash: the key of every real label set of the
// shared data, and of label sets over 1 KB (where StableHash switches to
// streaming), hashes as labels.StableHash hashes the set.
func TestHashMatchesStableHash(t *testing.T) {
	var sets []labels.Labels
	sets = append(sets,
		labels.FromStrings("__name__", "big", "a", strings.Repeat("x", 1500)),
		labels.FromStrings("__name__", "big", "a", strings.Repeat("x", 1000), "b", strings.Repeat("y", 1000)),
		labels.FromStrings("__name__", "ü.metric", "dé", "日本"),
	)
	if dir := tsdata.SharedDir(); dir != "" {
		for _, f := range []string{"recorded/node_15s", "recorded/prometheus_15s", "recorded/other_15s"} {
			err := tsdata.ReadFile(filepath.Join(dir, filepath.FromSlash(f)+".tsv.gz"), func(s *tsdata.Series) error {
				var b labels.ScratchBuilder
				for _, l := range s.Labels {
					b.Add(l.Name, l.Value)
				}
				sets = append(sets, b.Labels())
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	req := &prompb.WriteRequest{}
	for _, ls := range sets {
		var ts prompb.TimeSeries
		ls.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
		req.Timeseries = append(req.Timeseries, ts)
	}
	body, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	if err := r.Unmarshal(body); err != nil {
		t.Fatal(err)
	}
	for i, ls := range sets {
		if got, want := xxhash.Sum64(r.Series[i].Key), labels.StableHash(ls); got != want {
			t.Fatalf("%s: hash %#x, labels.StableHash %#x", ls, got, want)
		}
		if err := checkBuildHash(ls, xxhash.Sum64(r.Series[i].Key)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d label sets", len(sets))
}
