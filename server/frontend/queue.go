package frontend

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errQueueClosed: the frontend is shutting down.
var errQueueClosed = errors.New("frontend: queue closed")

// queue is the per-tenant fair queue in front of the query API: tasks
// (a piece of a split query, a shard, an instant query) wait in one FIFO
// per tenant, and a fixed set of workers takes them round-robin across
// tenants, so a tenant with a thousand tasks waiting delays another
// tenant's next task by at most one task per worker (Cortex's and Mimir's
// queue, without the scheduler between frontend and queriers). A
// tenant's tasks hold at most its cap of workers at once
// (Limits.MaxQueriersPerTenant), so with the default (all workers but
// one) another tenant's task never waits for a heavy one to end.
//
// Locking: mu guards the tenant FIFOs and the round-robin ring; cond
// (on mu) wakes workers. Workers are started by newQueue and stopped and
// waited for by close.
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	tenants map[string]*tenantQueue
	// ring holds the tenants with waiting tasks, in the order they get
	// a turn; next is the index of the next turn.
	// INVARIANT: a tenant is in ring iff its FIFO is not empty.
	ring   []*tenantQueue
	next   int
	closed bool
	// running counts each tenant's tasks on workers.
	// INVARIANT: running[t] <= the cap of t's tasks (tenantQueue.cap).
	running map[string]int

	workers sync.WaitGroup
	m       *metrics
}

type tenantQueue struct {
	id    string
	tasks []*task
	// cap is the most workers the tenant's tasks may hold at once (the
	// latest task's).
	cap int
}

// task is one request to run on a worker.
type task struct {
	ctx      context.Context
	tenant   string
	run      func(ctx context.Context)
	enqueued time.Time
	// done is closed when run has returned or the task was dropped.
	done chan struct{}
	// ran is set by the worker, before done is closed, if it called run.
	ran bool
}

func newQueue(workers int, m *metrics) *queue {
	q := &queue{tenants: map[string]*tenantQueue{}, running: map[string]int{}, m: m}
	q.cond = sync.NewCond(&q.mu)
	for range workers {
		q.workers.Add(1)
		go q.work()
	}
	return q
}

// do runs fn on a worker in its tenant's turn, with at most maxWorkers of
// the tenant's tasks running at once (0: any number), and waits for it.
// It returns ctx's error if ctx ends while the task waits (the task is
// then dropped from the queue), and errQueueClosed after close.
func (q *queue) do(ctx context.Context, tenant string, maxWorkers int, fn func(ctx context.Context)) error {
	t := &task{ctx: ctx, tenant: tenant, run: fn, enqueued: time.Now(), done: make(chan struct{})}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errQueueClosed
	}
	tq := q.tenants[tenant]
	if tq == nil {
		tq = &tenantQueue{id: tenant}
		q.tenants[tenant] = tq
	}
	if len(tq.tasks) == 0 {
		q.ring = append(q.ring, tq)
	}
	tq.tasks = append(tq.tasks, t)
	tq.cap = maxWorkers
	q.m.queueLength.WithLabelValues(tenant).Inc()
	// Every idle worker looks: the first to wake may find the task's
	// tenant at its cap while another tenant's task waits too.
	q.cond.Broadcast()
	q.mu.Unlock()

	select {
	case <-t.done:
		return t.outcome()
	case <-ctx.Done():
	}
	// The client went away or the query timed out: drop the task if no
	// worker took it yet, else wait for the worker, whose run sees ctx.
	q.mu.Lock()
	removed := q.removeLocked(t)
	q.mu.Unlock()
	if !removed {
		<-t.done
		return t.outcome()
	}
	return ctx.Err()
}

// outcome is do's answer once done is closed: nil if the task ran, else
// why not.
func (t *task) outcome() error {
	switch {
	case t.ran:
		return nil
	case t.ctx.Err() != nil:
		return t.ctx.Err()
	}
	return errQueueClosed
}

// removeLocked takes t out of its tenant's FIFO; false if it is not there
// (a worker took it).
func (q *queue) removeLocked(t *task) bool {
	tq := q.tenants[t.tenant]
	if tq == nil {
		return false
	}
	for i, x := range tq.tasks {
		if x == t {
			tq.tasks = append(tq.tasks[:i], tq.tasks[i+1:]...)
			q.m.queueLength.WithLabelValues(t.tenant).Dec()
			if len(tq.tasks) == 0 {
				q.dropTenantLocked(tq)
			}
			return true
		}
	}
	return false
}

// dropTenantLocked removes an empty tenant from the ring.
func (q *queue) dropTenantLocked(tq *tenantQueue) {
	for i, x := range q.ring {
		if x == tq {
			q.ring = append(q.ring[:i], q.ring[i+1:]...)
			if i < q.next {
				q.next--
			}
			break
		}
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	delete(q.tenants, tq.id)
	q.m.queueLength.DeleteLabelValues(tq.id)
}

// take waits for the next task in round-robin order across the tenants
// below their cap of running tasks; nil once the queue is closed.
func (q *queue) take() *task {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return nil
		}
		for k := range len(q.ring) {
			i := (q.next + k) % len(q.ring)
			tq := q.ring[i]
			if tq.cap > 0 && q.running[tq.id] >= tq.cap {
				continue
			}
			t := tq.tasks[0]
			tq.tasks[0] = nil
			tq.tasks = tq.tasks[1:]
			q.running[tq.id]++
			q.m.queueLength.WithLabelValues(tq.id).Dec()
			q.next = i
			if len(tq.tasks) == 0 {
				q.dropTenantLocked(tq) // the next tenant moves to index next
			} else {
				q.next = (i + 1) % len(q.ring)
			}
			return t
		}
		q.cond.Wait()
	}
}

// finished gives back a worker of tenant's.
func (q *queue) finished(tenant string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running[tenant]--; q.running[tenant] <= 0 {
		delete(q.running, tenant)
	}
	q.cond.Broadcast() // the tenant may be below its cap again
}

func (q *queue) work() {
	defer q.workers.Done()
	for {
		t := q.take()
		if t == nil {
			return
		}
		q.m.queueWait.WithLabelValues(t.tenant).Observe(time.Since(t.enqueued).Seconds())
		if t.ctx.Err() == nil {
			q.m.inflight.Inc()
			t.run(t.ctx)
			q.m.inflight.Dec()
			t.ran = true
		}
		q.finished(t.tenant)
		close(t.done)
	}
}

// close stops the workers after their current tasks and fails the
// waiting ones with errQueueClosed. Idempotent.
func (q *queue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	var dropped []*task
	for _, tq := range q.ring {
		dropped = append(dropped, tq.tasks...)
		q.m.queueLength.DeleteLabelValues(tq.id)
	}
	q.ring, q.tenants = nil, map[string]*tenantQueue{}
	q.cond.Broadcast()
	q.mu.Unlock()
	for _, t := range dropped {
		close(t.done)
	}
	q.workers.Wait()
}

// length returns the tasks waiting, for tests.
func (q *queue) length() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, tq := range q.ring {
		n += len(tq.tasks)
	}
	return n
}
