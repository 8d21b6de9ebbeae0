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
)

// Refusal reports the samples of one series of a batch that were not
// written.
type Refusal struct {
	Series   int // index in Batch.Series
	Rejected int // number of samples refused
	// Err is the first refusal of the series; errors.Is one of
	// ErrOutOfOrder, ErrDuplicateSample, ErrTooOld, ErrInvalidLabels.
	Err error
}
