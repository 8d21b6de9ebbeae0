package raftgroup

import (
	"cmp"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of one replica, labelled with its group ID so that the groups of
// a node share one registry.
type metrics struct {
	propose    prometheus.Histogram
	proposals  *prometheus.CounterVec
	collectors []prometheus.Collector
}

// Proposal results, the values of the "result" label.
const (
	resultOK          = "ok"           // committed and applied
	resultOutcome     = "refused"      // committed, Applier.Apply returned an outcome (refusals)
	resultNotLeader   = "not_leader"   // not proposed
	resultUnknown     = "unknown"      // leadership lost, ctx ended, closed: may be committed
	resultApplierFail = "applier_fail" // the applier failed, group stopped
	resultDiskFull    = "disk_full"    // refused: the disk is full or under its minimum (ErrDiskFull)
	resultLogFailed   = "log_failed"   // refused: the log cannot be written (ErrLogFailed)
)

func newMetrics(g *Group) *metrics {
	labels := prometheus.Labels{"group": cmp.Or(g.opts.Name, g.opts.ID)}
	m := &metrics{
		propose: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "myelin_raft_propose_duration_seconds",
			Help:        "Time from Propose to the entry being committed and applied (successful proposals).",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(0.0002, 2, 15), // 0.2 ms .. 3.3 s
		}),
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "myelin_raft_proposals_total",
			Help:        "Proposals by result: ok, refused (by the applier), not_leader, unknown (may be committed), applier_fail, disk_full, log_failed.",
			ConstLabels: labels,
		}, []string{"result"}),
	}
	stat := func(name, help string, f func(Stats) uint64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(f(g.Stats())) })
	}
	m.collectors = []prometheus.Collector{
		m.propose, m.proposals,
		stat("myelin_raft_applied_index", "Last log index applied by raft.", func(s Stats) uint64 { return s.AppliedIndex }),
		stat("myelin_raft_log_entries", "Entries in the on-disk log (bounded by snapshots).", func(s Stats) uint64 {
			if s.FirstIndex == 0 {
				return 0
			}
			return s.LastIndex - s.FirstIndex + 1
		}),
		stat("myelin_raft_replayed_entries", "Log entries replayed to the applier since the replica opened.", func(s Stats) uint64 { return s.Replayed }),
		stat("myelin_raft_log_bytes_since_snapshot", "Bytes of the entries applied since the last snapshot (engine checkpoint): at most what a crash now would replay.",
			func(s Stats) uint64 { return s.SinceSnapshotBytes }),
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range m.collectors {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}

func (m *metrics) unregister(r prometheus.Registerer) {
	for _, c := range m.collectors {
		r.Unregister(c)
	}
}
