package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
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
