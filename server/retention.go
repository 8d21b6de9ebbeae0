package server

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/myelindb/myelin/write"
)

// Retainer commits a retention step in every group (the distributor
// implements it).
type Retainer interface {
	Retain(ctx context.Context, r write.Retain) error
}

// RetentionOptions configure the retention loop.
type RetentionOptions struct {
	// Interval between two passes; zero means 15 minutes (Mimir's
	// compactor cleans up as often).
	Interval time.Duration
	// Global is -storage.retention (zero: none).
	Global time.Duration
	// Period returns a tenant's retention_period (zero: Global).
	Period func(tenant string) time.Duration
	// Tenants returns the tenants this node holds data of.
	Tenants func() []LocalTenant
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger // nil means discard
}

// Retention proposes retention steps (write.Retain) for the tenants of
// this node, every Interval: a tenant with a retention_period gets the
// step before now minus it, with the period; one without, with a global
// retention, a step that only collects the series the engine's retention
// left without samples (Steps). Each node proposes for the tenants it holds; a step
// a group already applied costs it a log entry and a compare
// (engine.Group.ApplyRetain), so nodes need not agree on who proposes.
type Retention struct {
	r    Retainer
	opts RetentionOptions
	stop context.CancelFunc
	done sync.WaitGroup
}

// StartRetention starts the loop; Close stops it.
func StartRetention(r Retainer, opts RetentionOptions) *Retention {
	if opts.Interval <= 0 {
		opts.Interval = 15 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ret := &Retention{r: r, opts: opts, stop: cancel}
	ret.done.Go(func() {
		tick := time.NewTicker(opts.Interval)
		defer tick.Stop()
		// The first pass after one interval, not at start: the groups
		// are still electing leaders then.
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := ret.Step(ctx); err != nil && ctx.Err() == nil {
				opts.Logger.Warn("retention step", "err", err)
			}
		}
	})
	return ret
}

// LocalTenant is a tenant of this node's replicas.
type LocalTenant struct {
	Name string
	// Period is the retention period its replicas here apply in place
	// of -storage.retention (the longest if they differ), 0 for none.
	Period time.Duration
}

// Steps returns the retention steps for tenants at now. A tenant with a
// retention_period gets a step before now minus it, carrying the period
// (the engine keeps the tenant's data that long, also when it is longer
// than -storage.retention); one without, a collect-only step without a
// period when there is a global retention or when its replicas still
// hold a period (which the step removes).
func Steps(tenants []LocalTenant, now time.Time, global time.Duration, period func(string) time.Duration) []write.Retain {
	var out []write.Retain
	for _, t := range tenants {
		switch p := period(t.Name); {
		case p > 0:
			out = append(out, write.Retain{Tenant: t.Name, Before: now.Add(-p).UnixMilli(), Period: p.Milliseconds()})
		case global > 0 || t.Period > 0:
			out = append(out, write.Retain{Tenant: t.Name, Before: math.MinInt64})
		}
	}
	return out
}

// Step proposes one pass of steps and returns their errors.
func (r *Retention) Step(ctx context.Context) error {
	var errs []error
	for _, s := range Steps(r.opts.Tenants(), r.opts.Now(), r.opts.Global, r.opts.Period) {
		if err := r.r.Retain(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops the loop and waits for it. It is idempotent.
func (r *Retention) Close() {
	r.stop()
	r.done.Wait()
}
