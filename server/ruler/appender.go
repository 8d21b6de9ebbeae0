package ruler

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"

	"github.com/myelindb/myelin/write"
)

// ErrStartTimestamp: a rule's result carries a start timestamp, which
// the write path does not store yet (rules produce none).
var ErrStartTimestamp = errors.New("ruler: start timestamps are not stored yet")

// appendable gives the rules manager appenders that write the tenant's
// results through the Writer, one batch per Commit (one evaluation of a
// rule).
type appendable struct {
	tenant string
	w      Writer
}

func (a *appendable) Appender(ctx context.Context) storage.Appender {
	return &appender{ctx: ctx, a: a, b: write.NewBuilder(a.tenant)}
}

// appender buffers one evaluation's samples. Not safe for concurrent
// use (storage.Appender's contract).
type appender struct {
	ctx context.Context
	a   *appendable
	b   *write.Builder
}

func (ap *appender) Append(_ storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	if err := ap.b.Add(l, []write.Sample{{T: t, V: v}}); err != nil {
		return 0, fmt.Errorf("append sample of %s: %w", l, err)
	}
	return 0, nil
}

// Commit writes the batch; a refused series fails the commit with its
// reason (the group logs it and counts a failed evaluation).
func (ap *appender) Commit() error {
	b := ap.b.Batch()
	if len(b.Series) == 0 {
		return nil
	}
	refused, err := ap.a.w.Write(ap.ctx, b)
	if err != nil {
		return fmt.Errorf("write rule results of tenant %s: %w", ap.a.tenant, err)
	}
	if len(refused) > 0 {
		l, _ := b.Labels(refused[0].Series)
		return fmt.Errorf("write rule results of tenant %s: %d series refused, first %s: %w", ap.a.tenant, len(refused), l, refused[0].Err)
	}
	return nil
}

func (ap *appender) Rollback() error {
	ap.b.Reset(ap.a.tenant)
	return nil
}

func (ap *appender) SetOptions(*storage.AppendOptions) {}

func (ap *appender) AppendExemplar(storage.SeriesRef, labels.Labels, exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, nil // rules produce none
}

// AppendHistogram buffers a native histogram result (a recording rule
// over histograms), as Append a float; the engine validates it.
func (ap *appender) AppendHistogram(_ storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	if err := ap.b.AddHistograms(l, nil, []write.Histogram{{T: t, H: h, FH: fh}}); err != nil {
		return 0, fmt.Errorf("append histogram of %s: %w", l, err)
	}
	return 0, nil
}

func (ap *appender) AppendHistogramSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, ErrStartTimestamp
}

func (ap *appender) UpdateMetadata(storage.SeriesRef, labels.Labels, metadata.Metadata) (storage.SeriesRef, error) {
	return 0, nil
}

func (ap *appender) AppendSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64) (storage.SeriesRef, error) {
	return 0, nil
}
