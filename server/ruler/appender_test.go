package ruler

import (
	"context"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/write"
)

type batchWriter struct{ got []string }

func (w *batchWriter) Write(_ context.Context, b *write.Batch) ([]write.Refusal, error) {
	for i, s := range b.Series {
		l, err := b.Labels(i)
		if err != nil {
			return nil, err
		}
		for _, smp := range s.Samples {
			w.got = append(w.got, l.String()+" float "+strconv.FormatFloat(smp.V, 'g', -1, 64))
		}
		for _, h := range s.Histograms {
			if h.FH != nil {
				w.got = append(w.got, l.String()+" fh "+h.FH.String())
			} else {
				w.got = append(w.got, l.String()+" h "+h.H.String())
			}
		}
	}
	return nil, nil
}

// TestAppenderHistograms: a recording rule's native histogram results go
// into the batch with its float results.
func TestAppenderHistograms(t *testing.T) {
	w := &batchWriter{}
	a := &appendable{tenant: "t", w: w}
	app := a.Appender(context.Background())
	l := labels.FromStrings("__name__", "job:rpc_seconds:rate5m")
	fh := &histogram.FloatHistogram{Count: 2, Sum: 1, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []float64{2}}
	_, err := app.AppendHistogram(0, l, 1000, nil, fh)
	require.NoError(t, err)
	_, err = app.Append(0, labels.FromStrings("__name__", "up:sum"), 1000, 3)
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	require.Equal(t, []string{
		`{__name__="job:rpc_seconds:rate5m"} fh {count:2, sum:1, (0.5,1]:2}`,
		`{__name__="up:sum"} float 3`,
	}, w.got)
}
