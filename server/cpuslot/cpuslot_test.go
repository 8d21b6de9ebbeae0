package cpuslot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func newScheduler(t *testing.T, slots int) *Scheduler {
	t.Helper()
	s, err := New(Options{Slots: slots})
	require.NoError(t, err)
	return s
}

// heldAndWaiting has tenant heavy hold the only slot of s and light wait
// for it (in a synctest bubble): heavy's slot, what cancels light's
// context, and light's Acquire's error once it returns.
func heldAndWaiting(t *testing.T, s *Scheduler) (*Slot, context.CancelFunc, <-chan error) {
	t.Helper()
	holder, _, err := s.Acquire(context.Background(), "heavy")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, _, err := s.Acquire(ctx, "light")
		done <- err
	}()
	synctest.Wait()
	return holder, cancel, done
}

// requireIdle checks that s's only slot is free and no one waits.
func requireIdle(t *testing.T, s *Scheduler) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Equal(t, 1, s.mu.free)
	require.Zero(t, s.mu.waiters)
}

// use works for d while holding sl: the clock moves d (synctest's fake
// clock), charged at the next checkpoint.
func use(d time.Duration) { time.Sleep(d) }

// TestFairOrder: a free slot goes to the waiting tenant with the least
// recent use, FIFO within a tenant.
func TestFairOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(t, 1)
		ctx := context.Background()
		// heavy used the slot for 100ms, medium for 10ms; light never.
		for _, u := range []struct {
			tenant string
			d      time.Duration
		}{{"heavy", 100 * time.Millisecond}, {"medium", 10 * time.Millisecond}} {
			sl, _, err := s.Acquire(ctx, u.tenant)
			require.NoError(t, err)
			use(u.d)
			sl.Release()
		}
		holder, _, err := s.Acquire(ctx, "heavy")
		require.NoError(t, err)
		var (
			mu    sync.Mutex
			order []string
			wg    sync.WaitGroup
		)
		for i, tn := range []string{"heavy", "heavy", "medium", "light", "medium", "light"} {
			wg.Go(func() {
				sl, _, err := s.Acquire(ctx, tn)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				order = append(order, fmt.Sprintf("%s%d", tn, i))
				mu.Unlock()
				sl.Release()
			})
			synctest.Wait() // queued in this order
		}
		holder.Release()
		wg.Wait()
		// Each grant takes no slot time, so the order is by use, then
		// by arrival within a tenant.
		require.Equal(t, []string{"light3", "light5", "medium2", "medium4", "heavy0", "heavy1"}, order)
	})
}

// TestYieldToLighterTenant: a heavy tenant's holders give their slots up
// at the next checkpoint when a tenant that used less waits, and take
// them back, first in their line, when it is done.
func TestYieldToLighterTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s, err := New(Options{Slots: 2, Registerer: reg})
		require.NoError(t, err)
		ctx := context.Background()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				sl, _, err := s.Acquire(ctx, "heavy")
				if err != nil {
					t.Error(err)
					return
				}
				defer sl.Release()
				for {
					select {
					case <-stop:
						return
					default:
					}
					use(time.Millisecond)
					if err := sl.Checkpoint(); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		synctest.Wait() // both hold a slot
		// A third heavy query waits for a slot: its own tenant's, so no
		// one yields to it.
		third := make(chan *Slot, 1)
		go func() {
			sl, _, err := s.Acquire(ctx, "heavy")
			if err != nil {
				t.Error(err)
			}
			third <- sl
		}()
		time.Sleep(50 * time.Millisecond)
		yields := s.m.yields.WithLabelValues("heavy")
		require.Zero(t, testutil.ToFloat64(yields), "no one yields to its own tenant")

		begin := time.Now()
		sl, _, err := s.Acquire(ctx, "light")
		require.NoError(t, err)
		// Both heavy holders check within 1ms; the first to do so yields.
		require.LessOrEqual(t, time.Since(begin), time.Millisecond)
		require.Equal(t, 1.0, testutil.ToFloat64(yields))
		use(500 * time.Microsecond)
		sl.Release()
		time.Sleep(10 * time.Millisecond)
		close(stop)
		wg.Wait()
		(<-third).Release()
		require.Equal(t, 1.0, testutil.ToFloat64(yields), "one holder yields")
		require.Equal(t, 0.0, testutil.ToFloat64(s.m.waiting))
		require.Zero(t, testutil.ToFloat64(s.m.lent))
		s.mu.Lock()
		require.Equal(t, 2, s.mu.free)
		s.mu.Unlock()
		held := testutil.ToFloat64(s.m.held.WithLabelValues("heavy"))
		require.InDelta(t, 0.12, held, 0.005, "heavy held two slots for about 60ms, less light's turn")
	})
}

// TestNoYieldWithinQuantum: two tenants whose use differs by less than
// the quantum do not hand the slot back and forth.
func TestNoYieldWithinQuantum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(t, 1)
		ctx := context.Background()
		a, _, err := s.Acquire(ctx, "a")
		require.NoError(t, err)
		got := make(chan struct{})
		go func() {
			b, _, err := s.Acquire(ctx, "b")
			if err != nil {
				t.Error(err)
				return
			}
			close(got)
			b.Release()
		}()
		synctest.Wait()
		use(4 * time.Millisecond) // below the 5ms quantum
		require.NoError(t, a.Checkpoint())
		require.True(t, a.held.Load(), "a yielded within the quantum")
		use(2 * time.Millisecond)
		require.NoError(t, a.Checkpoint()) // 6ms: yields, waits for b
		<-got
		require.True(t, a.held.Load())
		a.Release()
	})
}

// TestCancelWhileWaiting: a waiter whose context ends leaves the line at
// once, and a holder that yielded returns the error of its context if it
// ends before the slot comes back.
func TestCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(t, 1)
		holder, cancel, done := heldAndWaiting(t, s)
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		require.Zero(t, s.waiting.Load())

		// A holder that yields and whose client goes away before the
		// slot comes back.
		hctx, hcancel := context.WithCancel(context.Background())
		use(time.Second)
		holder.Release()
		h2, _, err := s.Acquire(hctx, "heavy")
		require.NoError(t, err)
		lightGot := make(chan *Slot)
		go func() {
			sl, _, err := s.Acquire(context.Background(), "light")
			if err != nil {
				t.Error(err)
			}
			lightGot <- sl
		}()
		synctest.Wait()
		yielded := make(chan error)
		go func() { yielded <- h2.Checkpoint() }()
		light := <-lightGot
		synctest.Wait()
		hcancel()
		require.ErrorIs(t, <-yielded, context.Canceled)
		require.False(t, h2.held.Load())
		h2.Release() // no-op
		light.Release()
		light.Release() // idempotent
		requireIdle(t, s)
	})
}

// TestGrantedAsCanceled: a waiter woken by its grant whose context ends
// before it runs returns the context's error and gives the slot back (a
// query whose client went away does not go on because its slot came at
// the same moment; TestDecodeCheckpoints in server/frontend failed in CI
// once on this).
func TestGrantedAsCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(t, 1)
		holder, cancel, done := heldAndWaiting(t, s)
		// The grant wakes the waiter; its context ends before it runs.
		holder.Release()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		requireIdle(t, s)
	})
}

// TestDetach: under a held slot's context Acquire nests (returns at
// once, the same turn); under Detach of it, it waits for a slot of its
// own.
func TestDetach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(t, 1)
		holder, ctx, err := s.Acquire(context.Background(), "a")
		require.NoError(t, err)
		nested, _, err := s.Acquire(ctx, "a")
		require.NoError(t, err)
		require.True(t, nested.nested)
		nested.Release()
		require.Same(t, holder, FromContext(ctx))
		detached := Detach(ctx)
		require.Nil(t, FromContext(detached))
		got := make(chan *Slot)
		go func() {
			sl, _, err := s.Acquire(detached, "a")
			if err != nil {
				t.Error(err)
			}
			got <- sl
		}()
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("a detached acquire took the held slot's turn")
		default:
		}
		holder.Release()
		own := <-got
		require.False(t, own.nested)
		own.Release()
		bg := context.Background()
		require.Equal(t, bg, Detach(bg), "a context without a slot is kept")
	})
}

// TestNestedNoDeadlock: with one slot, work started under a held slot
// runs under it (Acquire returns at once), and a holder that waits for
// sub-queries with slots of their own pauses, so neither deadlocks.
func TestNestedNoDeadlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(t, 1)
		parent, ctx, err := s.Acquire(context.Background(), "a")
		require.NoError(t, err)

		// Nested: sub-work in other goroutines under the parent's context.
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				sl, _, err := s.Acquire(ctx, "a")
				if err != nil {
					t.Error(err)
					return
				}
				require.True(t, sl.nested)
				require.NoError(t, sl.Checkpoint())
				sl.Release()
			})
		}
		wg.Wait()
		require.True(t, parent.held.Load())

		// Paused: sub-queries (shards) take slots of their own, from a
		// context without the parent's (as the frontend's workers do),
		// and from one with it, now paused.
		parent.Pause()
		for _, c := range []context.Context{context.Background(), ctx} {
			for range 3 {
				wg.Go(func() {
					sl, _, err := s.Acquire(c, "a")
					if err != nil {
						t.Error(err)
						return
					}
					require.False(t, sl.nested)
					use(time.Millisecond)
					sl.Release()
				})
			}
		}
		wg.Wait()
		require.NoError(t, parent.Resume())
		require.True(t, parent.held.Load())
		parent.Release()
		s.mu.Lock()
		require.Equal(t, 1, s.mu.free)
		s.mu.Unlock()
	})
}

// TestConcurrent: many tenants' holders acquire, tick, pause, resume,
// cancel and release at once (run with -race -tags invariants: the
// scheduler checks its counts on every change); every slot comes back.
func TestConcurrent(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	s := newScheduler(t, 3)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for range 200 {
				ctx, cancel := context.WithCancel(context.Background())
				if rng.IntN(8) == 0 {
					cancel()
				}
				sl, _, err := s.Acquire(ctx, fmt.Sprintf("t%d", rng.IntN(4)))
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Error(err)
					}
					cancel()
					continue
				}
				for range rng.IntN(3 * TickEvery) {
					if err := sl.Tick(); err != nil {
						break
					}
				}
				if rng.IntN(4) == 0 {
					sl.Pause()
					_ = sl.Resume()
				}
				sl.Release()
				cancel()
			}
		})
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Equal(t, 3, s.mu.free)
	require.Zero(t, s.mu.waiters)
	require.Zero(t, s.waiting.Load())
}

// TestStalledHolderLends: a holder that blocks without checking (a
// network read, a lock) does not keep others waiting more than the
// stall bound: its slot is lent to the next waiter in fair order, and
// repaid when a slot comes back.
func TestStalledHolderLends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(Options{Slots: 1, Stall: 50 * time.Millisecond})
		require.NoError(t, err)
		blocked, _, err := s.Acquire(context.Background(), "a")
		require.NoError(t, err)
		begin := time.Now()
		b, _, err := s.Acquire(context.Background(), "b")
		require.NoError(t, err)
		require.Equal(t, 50*time.Millisecond, time.Since(begin))
		require.Equal(t, 1.0, testutil.ToFloat64(s.m.lent))
		// b works, checking every 5ms, then gives its slot back.
		bDone := make(chan struct{})
		go func() {
			defer close(bDone)
			for range 4 {
				use(5 * time.Millisecond)
				if err := b.Checkpoint(); err != nil {
					t.Error(err)
				}
			}
			b.Release()
		}()
		// c waits: b yields to it once b used more than the quantum more
		// than c (at its second check), handing the slot over: no stall.
		c, _, err := s.Acquire(context.Background(), "c")
		require.NoError(t, err)
		require.Equal(t, 60*time.Millisecond, time.Since(begin))
		require.Equal(t, 1.0, testutil.ToFloat64(s.m.lent))
		use(time.Millisecond)
		c.Release() // to b: a is still stalled
		<-bDone
		// a is still stalled: the lent slot stays in use, d takes it at
		// once, and a's release repays it.
		start := time.Now()
		d, _, err := s.Acquire(context.Background(), "d")
		require.NoError(t, err)
		require.Zero(t, time.Since(start))
		require.Equal(t, 1.0, testutil.ToFloat64(s.m.lent))
		d.Release()
		blocked.Release()
		s.mu.Lock()
		defer s.mu.Unlock()
		require.Equal(t, 1, s.mu.free)
		require.Zero(t, s.mu.lent)
	})
}

// TestBusy: a holder lets readied goroutines run first (Gosched) only
// once its tenant has used a quantum of slot time lately and is not the
// lightest of the tenants known, so a light query's holder keeps its
// core.
func TestBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(t, 1)
		ctx := context.Background()
		light, _, err := s.Acquire(ctx, "light")
		require.NoError(t, err)
		require.False(t, light.busy(), "a new tenant")
		use(4 * time.Millisecond)
		require.NoError(t, light.Checkpoint())
		require.False(t, light.busy(), "4ms used, under the 5ms quantum")
		use(2 * time.Millisecond)
		require.True(t, light.busy(), "6ms held")
		light.Release()
		// Its use decays with the half-life: after 10 half-lives 6ms
		// are ~6us.
		use(10 * time.Second)
		light, _, err = s.Acquire(ctx, "light")
		require.NoError(t, err)
		require.False(t, light.busy(), "use decayed")
		light.Release()
		heavy, _, err := s.Acquire(ctx, "heavy")
		require.NoError(t, err)
		use(time.Second)
		heavy.Release()
		heavy, _, err = s.Acquire(ctx, "heavy")
		require.NoError(t, err)
		require.True(t, heavy.busy(), "a tenant that used a second: busy from its grant on")
		heavy.Release()
		// The lightest of two tenants keeps its core however long it
		// holds the slot.
		light, _, err = s.Acquire(ctx, "light")
		require.NoError(t, err)
		use(20 * time.Millisecond)
		require.NoError(t, light.Checkpoint())
		require.False(t, light.busy(), "the lightest tenant")
		// A lighter tenant waits: light yields to it at the checkpoint,
		// has the slot again when it is done, and is no longer the
		// lightest: busy.
		done := make(chan struct{})
		go func() {
			defer close(done)
			sl, _, err := s.Acquire(ctx, "new")
			if err != nil {
				t.Error(err)
				return
			}
			sl.Release()
		}()
		synctest.Wait() // new waits
		require.NoError(t, light.Checkpoint())
		require.True(t, light.busy(), "a lighter tenant waits")
		light.Release()
		<-done
	})
}
