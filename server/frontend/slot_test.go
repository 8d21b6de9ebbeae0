package frontend

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/server/cpuslot"
	"github.com/myelindb/myelin/server/tenant"
)

// TestDecodeCheckpoints: decoding a large answer under a CPU slot looks
// at the slot as it goes: a lighter tenant waiting gets the slot in the
// middle, and a context that ends while the decoder waits for it again
// fails the decoding.
func TestDecodeCheckpoints(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"status":"success","data":{"resultType":"matrix","result":[`)
	for i := range 10 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"metric":{"i":"` + string(rune('a'+i)) + `"},"values":[`)
		for j := range cpuslot.TickEvery {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`[1,"1"]`)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}}`)
	body := []byte(b.String())
	s, err := cpuslot.New(cpuslot.Options{Slots: 1})
	require.NoError(t, err)

	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		heavy, _, err := s.Acquire(ctx, "heavy")
		require.NoError(t, err)
		time.Sleep(time.Second) // the heavy tenant held its slot a while
		lightDone := make(chan struct{})
		go func() {
			defer close(lightDone)
			light, _, err := s.Acquire(context.Background(), "light")
			if err != nil {
				t.Error(err)
				return
			}
			cancel() // the heavy query's client goes away while it waits
			light.Release()
		}()
		synctest.Wait() // light waits
		_, err = decodeResult(body, heavy)
		<-lightDone
		require.ErrorIs(t, err, context.Canceled)
		heavy.Release()
	})
}

// TestCanceledWhileDecoding: a query whose client goes away while the
// decoding of its answer gave the CPU slot to a lighter tenant ends with
// 499, not with the API's answer passed on undecoded. (A range query
// whose piece is cached: its answer is decoded; an instant query's is
// passed through.)
func TestCanceledWhileDecoding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Enough series for the decoder to check its slot, too few
		// points for the frontend's encoding to take one.
		var b strings.Builder
		b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
		for i := range 2 * cpuslot.TickEvery {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"metric":{"i":"%d"},"value":[1,"1"]}`, i)
		}
		b.WriteString(`]}}`)
		require.Less(t, 2*cpuslot.TickEvery, minSlotPoints)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var f *Frontend
		api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Second) // the heavy tenant's slot time
			// A light query waits for a slot as the answer is decoded; it
			// keeps the slot until the heavy query has answered.
			go func() {
				light, _, err := f.slots.Acquire(context.Background(), "light")
				if err != nil {
					t.Error(err)
					return
				}
				cancel() // the heavy query's client goes away
				<-done
				light.Release()
			}()
			time.Sleep(time.Millisecond) // less than the stall bound
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(b.String()))
		})
		f = newTestFrontend(t, api, Options{CPUSlots: 1, Cache: NewLRU(1<<20, nil, nil)})
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/v1/query_range?query=up&start=0&end=60&step=60", nil)
		r.Header.Set(tenant.Header, "heavy")
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		close(done)
		require.Equal(t, statusClientClosed, w.Code, w.Body.String()[:min(200, w.Body.Len())])
	})
}
