package alertmanager

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkSilenceSet measures what the state log costs a silence:
// "library" is the library's silences alone (Alertmanager's own
// durability: a snapshot every 15 minutes), "statelog" the same with
// every change appended and fsynced before Set returns, on the test's
// temporary directory.
func BenchmarkSilenceSet(b *testing.B) {
	newSilence := func(i int) *silencepb.Silence {
		now := time.Now()
		return &silencepb.Silence{
			MatcherSets: []*silencepb.MatcherSet{{Matchers: []*silencepb.Matcher{{Name: "alertname", Pattern: "A", Type: silencepb.Matcher_EQUAL}}}},
			StartsAt:    timestamppb.New(now),
			EndsAt:      timestamppb.New(now.Add(time.Hour)),
			CreatedBy:   "bench",
			Comment:     "bench",
		}
	}
	b.Run("library", func(b *testing.B) {
		s, err := silence.New(silence.Options{Retention: time.Hour, Metrics: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		i := 0
		for b.Loop() {
			if err := s.Set(b.Context(), newSilence(i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("statelog", func(b *testing.B) {
		t, err := newTenantAM(tenantOptions{tenant: "t", dir: b.TempDir(), prefix: PathPrefix, retention: time.Hour, maintenanceInterval: time.Hour, logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		defer t.close()
		i := 0
		for b.Loop() {
			if err := t.silences.Set(b.Context(), newSilence(i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
