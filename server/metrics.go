package server

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/server/remotewrite"
)

// writeMetrics count what the write path took and refused, per tenant.
// Reasons follow Cortex/Mimir's discarded-samples reasons where one exists.
type writeMetrics struct {
	samples    *prometheus.CounterVec // tenant
	discarded  *prometheus.CounterVec // tenant, reason
	requests   *prometheus.CounterVec // tenant, code
	unexpected *prometheus.CounterVec // tenant, kind: histograms, exemplars, metadata not stored yet
}

func newWriteMetrics(reg prometheus.Registerer) *writeMetrics {
	m := &writeMetrics{
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_ingested_samples_total",
			Help: "Samples written (committed and applied) per tenant.",
		}, []string{"tenant"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_discarded_samples_total",
			Help: "Samples refused per tenant and reason.",
		}, []string{"tenant", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_write_requests_total",
			Help: "Remote-write requests per tenant and HTTP status code.",
		}, []string{"tenant", "code"}),
		unexpected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_ignored_total",
			Help: "Remote-write items not stored yet (native histograms, exemplars, metadata) per tenant and kind.",
		}, []string{"tenant", "kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.samples, m.discarded, m.requests, m.unexpected)
	}
	return m
}

// reason names a refusal for the discarded-samples metric.
func reason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{remotewrite.ErrMissingName, "missing_metric_name"},
		{remotewrite.ErrInvalidMetricName, "metric_name_invalid"},
		{remotewrite.ErrInvalidLabelName, "label_invalid"},
		{remotewrite.ErrInvalidLabelValue, "label_value_invalid"},
		{remotewrite.ErrDuplicateLabel, "duplicate_label_names"},
		{remotewrite.ErrUnsortedLabels, "labels_not_sorted"},
		{remotewrite.ErrTooManyLabels, "max_label_names_per_series"},
		{remotewrite.ErrLabelNameTooLong, "label_name_too_long"},
		{remotewrite.ErrLabelValueTooLong, "label_value_too_long"},
		{remotewrite.ErrTooFarInFuture, "too_far_in_future"},
		{remotewrite.ErrTimestampUnreadable, "timestamp_out_of_range"},
		{engine.ErrOutOfOrder, "sample_out_of_order"},
		{engine.ErrDuplicateSample, "new_value_for_timestamp"},
		{engine.ErrTooOld, "sample_too_old"},
		{engine.ErrInvalidLabels, "label_invalid"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}
