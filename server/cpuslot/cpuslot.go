package cpuslot

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/internal/invariants"
)

// Options configure a Scheduler.
type Options struct {
	// Slots is how many holders run at once. Zero means GOMAXPROCS: one
	// per core the Go runtime uses. -query-frontend.cpu-slots.
	Slots int
	// HalfLife of a tenant's use: slot time that long ago counts half.
	// Zero means 1s.
	HalfLife time.Duration
	// Quantum: a holder yields to a waiting tenant only if that tenant's
	// use is lower than its own tenant's by more than this. Zero means
	// 5ms.
	Quantum time.Duration
	// Stall: a holder that has neither checked nor given its slot back
	// for this long while others wait is taken to be blocked (a network
	// or disk read, a lock, a long stretch without checkpoints), and
	// its slot is lent to the first waiter in fair order until a slot
	// comes back; so no waiter waits for a stalled holder longer than
	// this. Zero means 10ms, Go's own time slice.
	Stall time.Duration
	// Now is the clock of slot time. Nil means time.Now.
	Now        func() time.Time
	Registerer prometheus.Registerer // nil means none
}

func (o Options) withDefaults() Options {
	if o.Slots == 0 {
		o.Slots = runtime.GOMAXPROCS(0)
	}
	if o.HalfLife == 0 {
		o.HalfLife = time.Second
	}
	if o.Quantum == 0 {
		o.Quantum = 5 * time.Millisecond
	}
	if o.Stall == 0 {
		o.Stall = 10 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.Slots < 0 {
		errs = append(errs, fmt.Errorf("cpu slots: %d slots is negative", o.Slots))
	}
	if o.HalfLife < 0 {
		errs = append(errs, fmt.Errorf("cpu slots: half-life %v is negative", o.HalfLife))
	}
	if o.Stall < 0 {
		errs = append(errs, fmt.Errorf("cpu slots: stall %v is negative", o.Stall))
	}
	if o.Quantum < 0 {
		errs = append(errs, fmt.Errorf("cpu slots: quantum %v is negative", o.Quantum))
	}
	return errors.Join(errs...)
}

// Scheduler hands out a node's CPU slots to tenants' queries in fair
// order (doc.go).
//
// Locking: mu guards the free count, the tenants and their lines;
// waiting mirrors mu.waiters for Checkpoint's fast path, which takes no
// lock.
type Scheduler struct {
	opts    Options // immutable after New
	m       *metrics
	waiting atomic.Int64
	mu      struct {
		sync.Mutex
		// free slots. INVARIANT: free + the held of every tenant ==
		// opts.Slots + lent, and free > 0 only if no one waits.
		free int
		// lent counts the slots lent past opts.Slots for stalled holders;
		// a slot given back repays one when fewer holders are stalled.
		lent int
		// holders are the slots held.
		holders map[*Slot]struct{}
		tenants map[string]*tenantState
		// lines holds the tenants with waiters.
		// INVARIANT: a tenant is in lines iff its line is not empty.
		lines   map[string]*tenantState
		waiters int
		// sweeps counts acquisitions, to drop idle tenants now and then.
		sweeps int
	}
}

type tenantState struct {
	id string
	// use is the tenant's slot time in seconds, decayed, as of at.
	use  float64
	at   time.Time
	held int // slots its holders hold
	line []*waiter
}

type waiter struct {
	slot  *Slot
	since time.Time
	// ready is closed when the slot is granted; granted is set (under
	// mu) before.
	ready   chan struct{}
	granted bool
}

// New returns a scheduler with opts.Slots free slots.
func New(opts Options) (*Scheduler, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	s := &Scheduler{opts: opts, m: newMetrics(opts.Registerer)}
	s.mu.free = opts.Slots
	s.mu.tenants = map[string]*tenantState{}
	s.mu.lines = map[string]*tenantState{}
	s.mu.holders = map[*Slot]struct{}{}
	s.m.slots.Set(float64(opts.Slots))
	return s, nil
}

// Slots returns how many slots the scheduler has.
func (s *Scheduler) Slots() int { return s.opts.Slots }

// Slot is a tenant's claim on one of a Scheduler's slots (doc.go has the
// protocol). Its methods are nil-safe: a nil Slot (no scheduler) does
// nothing. Only the goroutine that acquired it calls them.
type Slot struct {
	s      *Scheduler
	tenant string
	ctx    context.Context
	nested bool
	// held is read by Acquire of a nested context in other goroutines.
	held atomic.Bool
	// since is when the holder's slot time was last charged.
	since time.Time
	// use is its tenant's use when it was last charged or granted, in
	// seconds, and lightest whether no other tenant known at the grant
	// used less, nor a waiting one at a checkpoint since (both set under
	// the scheduler's lock before the holder reads them: the grant's
	// channel, or the holder's own call).
	use      float64
	lightest bool
	// n counts Tick calls, for checkpoints every TickEvery.
	n int
}

type ctxKey struct{}

// FromContext returns the slot ctx carries, or nil.
func FromContext(ctx context.Context) *Slot {
	sl, _ := ctx.Value(ctxKey{}).(*Slot)
	return sl
}

// Detach returns ctx without the slot it carries: work started under it
// takes slots of its own (Acquire does not nest it), as work that runs
// beside its starter rather than inside its turn must.
func Detach(ctx context.Context) context.Context {
	if FromContext(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, (*Slot)(nil))
}

// Acquire waits for a slot for tenant in fair order and returns it with
// a context that carries it. It returns ctx's error if ctx ends first.
// Under a context whose slot is held, it returns a nested slot at once
// (doc.go).
func (s *Scheduler) Acquire(ctx context.Context, tenant string) (*Slot, context.Context, error) {
	if p := FromContext(ctx); p != nil && p.held.Load() {
		return &Slot{s: s, tenant: tenant, ctx: ctx, nested: true}, ctx, nil
	}
	sl := &Slot{s: s, tenant: tenant, ctx: ctx}
	if err := s.acquire(sl, false); err != nil {
		return nil, ctx, err
	}
	return sl, context.WithValue(ctx, ctxKey{}, sl), nil
}

// acquire waits for a slot for sl, first in its tenant's line if front.
func (s *Scheduler) acquire(sl *Slot, front bool) error {
	if err := sl.ctx.Err(); err != nil {
		return err
	}
	now := s.opts.Now()
	s.mu.Lock()
	t := s.tenantLocked(sl.tenant, now)
	if s.mu.free > 0 {
		// INVARIANT: free > 0 only if no one waits, so taking it jumps
		// no line.
		s.mu.free--
		t.held++
		sl.since = now
		s.noteUseLocked(t, sl, now)
		sl.held.Store(true)
		s.mu.holders[sl] = struct{}{}
		s.checkLocked()
		s.mu.Unlock()
		s.m.wait.WithLabelValues(sl.tenant).Observe(0)
		return nil
	}
	w := &waiter{slot: sl, since: now, ready: make(chan struct{})}
	if front {
		t.line = slices.Insert(t.line, 0, w)
	} else {
		t.line = append(t.line, w)
	}
	s.mu.lines[t.id] = t
	s.mu.waiters++
	s.waiting.Add(1)
	s.m.waiting.Inc()
	s.mu.Unlock()
	return s.wait(sl, w)
}

// wait waits for w's grant or for sl's context to end; every Stall it
// looks for stalled holders (lendLocked).
func (s *Scheduler) wait(sl *Slot, w *waiter) error {
	tick := time.NewTicker(s.opts.Stall)
	defer tick.Stop()
wait:
	for {
		select {
		case <-w.ready:
			if sl.ctx.Err() == nil {
				return nil
			}
			// Granted as the context ended, and select chose the grant:
			// the holder stops all the same, whichever was seen first.
			break wait
		case <-sl.ctx.Done():
			break wait
		case <-tick.C:
			s.mu.Lock()
			s.lendLocked(s.opts.Now())
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	if !w.granted {
		t := s.mu.tenants[sl.tenant]
		if i := slices.Index(t.line, w); i >= 0 {
			t.line = slices.Delete(t.line, i, i+1)
		}
		if len(t.line) == 0 {
			delete(s.mu.lines, t.id)
		}
		s.mu.waiters--
		s.waiting.Add(-1)
		s.m.waiting.Dec()
		s.checkLocked()
		s.mu.Unlock()
		return sl.ctx.Err()
	}
	s.mu.Unlock()
	// Granted as the context ended: give the slot back.
	sl.Release()
	return sl.ctx.Err()
}

// tenantLocked returns a tenant's state, new if it has none; now and
// then it drops tenants idle long enough that their use is nothing.
func (s *Scheduler) tenantLocked(id string, now time.Time) *tenantState {
	if s.mu.sweeps++; s.mu.sweeps%1024 == 0 {
		for k, t := range s.mu.tenants {
			if t.held == 0 && len(t.line) == 0 && s.useLocked(t, now) < 1e-6 {
				delete(s.mu.tenants, k)
			}
		}
	}
	t := s.mu.tenants[id]
	if t == nil {
		t = &tenantState{id: id, at: now}
		s.mu.tenants[id] = t
	}
	return t
}

// useLocked returns t's use decayed to now.
func (s *Scheduler) useLocked(t *tenantState, now time.Time) float64 {
	d := now.Sub(t.at)
	if d <= 0 {
		return t.use
	}
	return t.use * math.Exp2(-d.Seconds()/s.opts.HalfLife.Seconds())
}

// chargeLocked adds sl's slot time since its last charge to its
// tenant's use.
func (s *Scheduler) chargeLocked(t *tenantState, sl *Slot, now time.Time) {
	d := now.Sub(sl.since)
	if d < 0 {
		d = 0
	}
	t.use = s.useLocked(t, now) + d.Seconds()
	if now.After(t.at) {
		t.at = now
	}
	sl.since = now
	sl.use = t.use
	s.m.held.WithLabelValues(t.id).Add(d.Seconds())
}

// noteUseLocked records in sl, t's holder being granted, its tenant's
// use and whether t is the lightest of two or more tenants known
// (gosched). A walk over the tenants per grant, not per checkpoint: a
// checkpoint only compares with the lightest waiting tenant, which it
// finds anyway.
func (s *Scheduler) noteUseLocked(t *tenantState, sl *Slot, now time.Time) {
	sl.use = s.useLocked(t, now)
	sl.lightest = len(s.mu.tenants) > 1
	for _, o := range s.mu.tenants {
		if o != t && s.useLocked(o, now) < sl.use {
			sl.lightest = false
			return
		}
	}
}

// nextLocked returns the waiting tenant with the least use (ties: the
// lowest ID, for a stable order), or nil if no one waits.
func (s *Scheduler) nextLocked(now time.Time) (*tenantState, float64) {
	var best *tenantState
	bestUse := 0.0
	for _, t := range s.mu.lines {
		u := s.useLocked(t, now)
		if best == nil || u < bestUse || u == bestUse && t.id < best.id {
			best, bestUse = t, u
		}
	}
	return best, bestUse
}

// lendLocked lends a slot to the first waiter in fair order for each
// holder stalled for Options.Stall beyond those already lent for.
func (s *Scheduler) lendLocked(now time.Time) {
	stalled := s.stalledLocked(now)
	for s.mu.lent < stalled && s.mu.waiters > 0 {
		s.mu.lent++
		s.mu.free++
		s.m.lent.Inc()
		s.grantLocked(now)
	}
}

// grantLocked gives free slots to waiters in fair order.
func (s *Scheduler) grantLocked(now time.Time) {
	for s.mu.free > 0 && s.mu.waiters > 0 {
		t, _ := s.nextLocked(now)
		w := t.line[0]
		t.line[0] = nil
		t.line = t.line[1:]
		if len(t.line) == 0 {
			delete(s.mu.lines, t.id)
		}
		s.mu.free--
		s.mu.waiters--
		s.waiting.Add(-1)
		s.m.waiting.Dec()
		t.held++
		w.granted = true
		w.slot.since = now
		s.noteUseLocked(t, w.slot, now)
		w.slot.held.Store(true)
		s.mu.holders[w.slot] = struct{}{}
		s.m.wait.WithLabelValues(t.id).Observe(now.Sub(w.since).Seconds())
		close(w.ready)
	}
	s.checkLocked()
}

// stalledLocked counts the holders stalled for Options.Stall.
func (s *Scheduler) stalledLocked(now time.Time) int {
	n := 0
	for h := range s.mu.holders {
		if now.Sub(h.since) >= s.opts.Stall {
			n++
		}
	}
	return n
}

// giveBackLocked returns sl's slot to the free ones, charging its time;
// if repay, it repays a lent slot instead if there are more lent than
// stalled holders (a holder that yields hands its slot over: it waits
// for one again at once).
func (s *Scheduler) giveBackLocked(sl *Slot, now time.Time, repay bool) *tenantState {
	t := s.mu.tenants[sl.tenant]
	s.chargeLocked(t, sl, now)
	t.held--
	delete(s.mu.holders, sl)
	if repay && s.mu.lent > s.stalledLocked(now) {
		s.mu.lent-- // repays a lent slot
	} else {
		s.mu.free++
	}
	sl.held.Store(false)
	return t
}

func (s *Scheduler) checkLocked() {
	if !invariants.Enabled {
		return
	}
	held, waiters := 0, 0
	for _, t := range s.mu.tenants {
		held += t.held
		waiters += len(t.line)
		if _, ok := s.mu.lines[t.id]; ok != (len(t.line) > 0) {
			panic(fmt.Sprintf("BUG: cpuslot: tenant %q in lines %v with %d waiters", t.id, ok, len(t.line)))
		}
	}
	if s.mu.free < 0 || s.mu.free+held != s.opts.Slots+s.mu.lent || held != len(s.mu.holders) || waiters != s.mu.waiters ||
		s.mu.free > 0 && waiters > 0 || int64(waiters) != s.waiting.Load() {
		panic(fmt.Sprintf("BUG: cpuslot: %d free, %d held (%d holders) of %d slots and %d lent, %d waiters (counted %d, atomic %d)",
			s.mu.free, held, len(s.mu.holders), s.opts.Slots, s.mu.lent, waiters, s.mu.waiters, s.waiting.Load()))
	}
}

// TickEvery is how many units of work (samples read, points decoded or
// written) make a checkpoint: a few tens of microseconds of work, the
// longest a waiting lighter tenant waits for a holder to look.
const TickEvery = 1024

// Tick counts a unit of work and checkpoints every TickEvery of them.
func (sl *Slot) Tick() error {
	if sl == nil {
		return nil
	}
	if sl.n++; sl.n < TickEvery {
		return nil
	}
	sl.n = 0
	return sl.Checkpoint()
}

// Work counts n units of work (a series' points) and checkpoints if
// they make TickEvery since the last.
func (sl *Slot) Work(n int) error {
	if sl == nil {
		return nil
	}
	if sl.n += n; sl.n < TickEvery {
		return nil
	}
	sl.n = 0
	return sl.Checkpoint()
}

// Checkpoint gives the slot up if a tenant with less recent use (by
// more than the quantum) waits for one, and waits for it again; it
// returns the slot's context's error if that ends first (the slot is
// then not held).
//
// Else, if its tenant is busy (gosched), it lets the goroutines readied
// on its core run first (runtime.Gosched): a light query's goroutine
// woken by a holder that keeps computing waits in that core's run
// queue, which Go looks at only when the holder blocks or is preempted,
// every 10 ms. Without waiters and without such goroutines it costs an
// atomic load, a clock read and a trip through the Go scheduler (~0.2
// us, every TickEvery samples).
func (sl *Slot) Checkpoint() error {
	if sl == nil || sl.nested || !sl.held.Load() {
		return nil
	}
	if sl.s.waiting.Load() == 0 {
		sl.gosched()
		return nil
	}
	s := sl.s
	now := s.opts.Now()
	s.mu.Lock()
	t := s.mu.tenants[sl.tenant]
	s.chargeLocked(t, sl, now)
	next, nextUse := s.nextLocked(now)
	if next != nil && next != t && nextUse < t.use {
		sl.lightest = false
	}
	if next == nil || next == t || nextUse+s.opts.Quantum.Seconds() >= t.use {
		s.mu.Unlock()
		sl.gosched()
		return nil
	}
	s.giveBackLocked(sl, now, false)
	w := &waiter{slot: sl, since: now, ready: make(chan struct{})}
	t.line = slices.Insert(t.line, 0, w)
	s.mu.lines[t.id] = t
	s.mu.waiters++
	s.waiting.Add(1)
	s.m.waiting.Inc()
	s.grantLocked(now)
	s.mu.Unlock()
	s.m.yields.WithLabelValues(sl.tenant).Inc()
	return s.wait(sl, w)
}

// gosched calls runtime.Gosched if the holder's tenant is busy: a busy
// tenant lets the goroutines readied on its core run (another tenant's
// may be among them), the lightest keeps its core. Gosched puts the
// caller on Go's global run queue, behind whatever else is runnable: a
// light query's holder that called it at every checkpoint waited there
// 5-15 ms at a time, behind the heavy tenant's frontend work and the
// garbage collector's mark worker (an execution trace of
// BenchmarkFrontendFairness, docs/design.md "CPU slots").
func (sl *Slot) gosched() {
	if sl.busy() {
		runtime.Gosched()
	}
}

// busy reports whether the holder's tenant has used at least
// Options.Quantum of slot time lately (this slot's time included) and is
// not the lightest of the tenants known (at the grant; a lighter waiting
// tenant at a checkpoint since makes it not): a tenant alone may be
// joined by a new one at any time, whose readied goroutines it lets run.
func (sl *Slot) busy() bool {
	return !sl.lightest && sl.use+sl.s.opts.Now().Sub(sl.since).Seconds() >= sl.s.opts.Quantum.Seconds()
}

// Pause gives the slot up while its holder waits for work that needs
// slots of its own; Resume takes one again.
func (sl *Slot) Pause() {
	if sl == nil || sl.nested || !sl.held.Load() {
		return
	}
	now := sl.s.opts.Now()
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	sl.s.giveBackLocked(sl, now, true)
	sl.s.grantLocked(now)
}

// Resume waits for a slot again after Pause, first in its tenant's
// line; it returns the context's error if that ends first.
func (sl *Slot) Resume() error {
	if sl == nil || sl.nested || sl.held.Load() {
		return nil
	}
	return sl.s.acquire(sl, true)
}

// Release gives the slot back. Idempotent.
func (sl *Slot) Release() {
	sl.Pause()
}

type metrics struct {
	wait    *prometheus.HistogramVec // tenant
	yields  *prometheus.CounterVec   // tenant
	lent    prometheus.Counter
	held    *prometheus.CounterVec // tenant
	waiting prometheus.Gauge
	slots   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "myelin_query_frontend_cpu_slot_wait_seconds",
			Help:    "Time queries waited for a CPU slot (-query-frontend.cpu-slots), at the start and after each yield, per tenant.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"tenant"}),
		yields: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_query_frontend_cpu_slot_yields_total",
			Help: "Times a query gave its CPU slot up to a tenant that used less CPU lately, per tenant.",
		}, []string{"tenant"}),
		lent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "myelin_query_frontend_cpu_slots_lent_total",
			Help: "CPU slots lent past -query-frontend.cpu-slots because a holder stalled (blocked, or long without a checkpoint) while others waited.",
		}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_query_frontend_cpu_slot_seconds_total",
			Help: "Time queries held CPU slots, per tenant: their share of the node's cores.",
		}, []string{"tenant"}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myelin_query_frontend_cpu_slot_waiting",
			Help: "Queries waiting for a CPU slot.",
		}),
		slots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myelin_query_frontend_cpu_slots",
			Help: "CPU slots of the query frontend's scheduler (-query-frontend.cpu-slots).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.wait, m.yields, m.lent, m.held, m.waiting, m.slots)
	}
	return m
}
