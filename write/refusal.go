package write

import "errors"

// Per-sample refusals, with Prometheus's meaning. The engine reports them
// in a Refusal; they never fail the rest of the batch.
var (
	// ErrOutOfOrder: the sample is older than the series' newest sample.
	ErrOutOfOrder = errors.New("write: out-of-order sample")
	// ErrDuplicateSample: the series has a sample at this timestamp with a
	// different value. (Same timestamp and same value bits is accepted: a
	// retried write is idempotent.)
	ErrDuplicateSample = errors.New("write: duplicate sample for timestamp")
	// ErrTooOld: the sample is older than the tenant's newest sample minus
	// the engine's retention.
	ErrTooOld = errors.New("write: sample too old for retention")
	// ErrSeriesLimit: the series is not in the group's head and the
	// tenant has as many series there as the batch's
	// SeriesLimits.MaxSeries allows; all its samples were refused.
	ErrSeriesLimit = errors.New("write: per-user series limit reached")
	// ErrMetricSeriesLimit: as ErrSeriesLimit, for the series of its
	// metric name and SeriesLimits.MaxSeriesPerMetric.
	ErrMetricSeriesLimit = errors.New("write: per-metric series limit reached")
)

// Refusal reports the samples of one series of a batch that were not
// written.
type Refusal struct {
	Series   int // index in Batch.Series
	Rejected int // number of samples refused
	// Err is the first refusal of the series; errors.Is one of
	// ErrOutOfOrder, ErrDuplicateSample, ErrTooOld, ErrInvalidLabels,
	// ErrSeriesLimit, ErrMetricSeriesLimit.
	Err error
}
