package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// TestWriteOutOfOrderWindow: through remote write and the distributor, a
// tenant with out_of_order_time_window gets its out-of-order samples
// within the window stored in time order, also where chunks were sealed
// already, while a tenant without one is refused them (400); beyond the
// window the refusal names it in Mimir's words.
func TestWriteOutOfOrderWindow(t *testing.T) {
	now := time.UnixMilli(100_000_000)
	o := testOverrides(t, "overrides:\n  late:\n    out_of_order_time_window: 10m\n")
	d, groups := limitedNode(t, 3, o)
	h, err := NewWriteHandler(d, WriteOptions{MultiTenant: true, Limits: o, Now: func() time.Time { return now }, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	push := func(tenant string, ts ...int64) (int, string) {
		var ss []prompb.TimeSeries
		for _, job := range []string{"a", "b", "c", "d"} { // series in every group
			var smp []prompb.Sample
			for _, t := range ts {
				smp = append(smp, prompb.Sample{Timestamp: t, Value: float64(t / 1000)})
			}
			ss = append(ss, series([]string{"__name__", "up", "job", job}, smp...))
		}
		w := post(h, "/api/v1/push", tenant, "", encodeWrite(t, ss...))
		return w.Code, w.Body.String()
	}
	// 250 samples every 15s: the first 240 are in sealed chunks (120
	// samples each), the last 10 (2m15s) in the open one.
	var inOrder []int64
	for i := range 250 {
		inOrder = append(inOrder, 90_000_000+int64(i)*15_000)
	}
	for _, tenant := range []string{"late", "strict"} {
		code, body := push(tenant, inOrder...)
		require.Equal(t, http.StatusNoContent, code, body)
	}
	newest := inOrder[len(inOrder)-1]
	// Out of order, within 10m of the newest: into the open chunk and
	// into the last sealed one.
	ooo := []int64{newest - 7_000, newest - 9*60_000 - 1_000, newest - 5*60_000 + 3_000}
	require.Less(t, ooo[2], inOrder[240])
	code, body := push("late", ooo...)
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = push("strict", ooo...)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "write: out-of-order sample: 3 of 3 samples refused")
	// Beyond the window: refused, naming it.
	code, body = push("late", newest-11*60_000)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "the sample has been rejected because another sample with a more recent timestamp has already been ingested and this sample is beyond the out-of-order time window of 10m (err-mimir-sample-timestamp-too-old)")

	want := func(ts []int64) string {
		var b strings.Builder
		for _, t := range ts {
			fmt.Fprintf(&b, " %d=%d", t, t/1000)
		}
		return b.String()
	}
	all := append(append([]int64(nil), inOrder...), ooo...)
	slices.Sort(all)
	for tenant, ts := range map[string][]int64{"late": all, "strict": inOrder} {
		var got []string
		for _, g := range groups {
			got = append(got, stored(t, g, tenant)...)
		}
		require.Len(t, got, 4, tenant)
		for _, s := range got {
			_, samples, _ := strings.Cut(s, ":")
			require.Equal(t, want(ts), samples, "%s %s", tenant, s)
		}
	}
}

// TestWriteOutOfOrderHistogramsV2: native histograms through remote write
// 2.0 and the distributor: a tenant with out_of_order_time_window gets
// its histograms within the window stored in time order, into the open
// chunk and into sealed ones, counted in the Histograms-Written header; a
// retry of one is accepted again; a tenant without a window is refused
// them (400), as is a different histogram at a stored one's time.
func TestWriteOutOfOrderHistogramsV2(t *testing.T) {
	now := time.UnixMilli(100_000_000)
	o := testOverrides(t, "overrides:\n  late:\n    out_of_order_time_window: 10m\n")
	d, groups := limitedNode(t, 3, o)
	h, err := NewWriteHandler(d, WriteOptions{MultiTenant: true, Limits: o, Now: func() time.Time { return now }, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	// A counter histogram whose count is ts/1000: one bucket (le 1),
	// the rest in the zero bucket.
	hist := func(ts int64, extra uint64) *histogram.Histogram {
		c := uint64(ts/1000) + extra
		return &histogram.Histogram{Count: c, Sum: float64(c), ZeroThreshold: 0.001, ZeroCount: c - 1,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{1}}
	}
	push := func(tenant string, extra uint64, ts ...int64) *httptest.ResponseRecorder {
		st := writev2.NewSymbolTable()
		var ss []writev2.TimeSeries
		for _, job := range []string{"a", "b", "c", "d"} { // series in every group
			s := v2Series(&st, []string{"__name__", "latency_seconds", "job", job})
			for _, t := range ts {
				s.Histograms = append(s.Histograms, writev2.FromIntHistogram(0, t, hist(t, extra)))
			}
			ss = append(ss, s)
		}
		return post(h, "/api/v1/push", tenant, contentTypeV2, encodeV2(t, &st, ss...))
	}
	var inOrder []int64
	for i := range 250 {
		inOrder = append(inOrder, 90_000_000+int64(i)*15_000)
	}
	for _, tenant := range []string{"late", "strict"} {
		w := push(tenant, 0, inOrder...)
		require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	}
	newest := inOrder[len(inOrder)-1]
	// Within 10m of the newest: into the open chunk and into sealed ones
	// (histogram chunks are cut at 1 KiB after 10 samples).
	ooo := []int64{newest - 7_000, newest - 9*60_000 - 1_000, newest - 5*60_000 + 3_000}
	w := push("late", 0, ooo...)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, counts(0, 12, 0), written(w))
	w = push("late", 0, ooo[1]) // a retry
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, counts(0, 4, 0), written(w))
	w = push("late", 1, ooo[1]) // another histogram at its time
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "duplicate sample for timestamp")
	w = push("strict", 0, ooo...)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), "write: out-of-order sample")
	require.Equal(t, counts(0, 0, 0), written(w))

	want := func(ts []int64) string {
		var b strings.Builder
		for _, t := range ts {
			fmt.Fprintf(&b, " %d=%s", t, hist(t, 0).ToFloat(nil).String())
		}
		return b.String()
	}
	all := append(append([]int64(nil), inOrder...), ooo...)
	slices.Sort(all)
	for tenant, ts := range map[string][]int64{"late": all, "strict": inOrder} {
		var got []string
		for _, g := range groups {
			got = append(got, stored(t, g, tenant)...)
		}
		require.Len(t, got, 4, tenant)
		for _, s := range got {
			_, samples, _ := strings.Cut(s, ":")
			require.Equal(t, want(ts), samples, "%s %s", tenant, s)
		}
	}
}
