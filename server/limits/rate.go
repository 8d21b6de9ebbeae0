package limits

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// IngestionLimiter enforces each tenant's ingestion_rate and
// ingestion_burst_size on one node: a token bucket per tenant, refilled
// at the tenant's rate divided by the number of active nodes, holding at
// most the burst (Mimir's "global" strategy: each of n distributors
// allows rate/n, and the burst is not divided). It assumes the senders'
// requests spread evenly over the nodes, as Mimir's does over its
// distributors.
//
// Decisions are pure: AllowN takes the time. Safe for concurrent use:
// one mutex over the buckets (an AllowN is ~100 ns under it, once per
// request of ~2,000 samples).
type IngestionLimiter struct {
	o     *Overrides
	nodes func() int
	mu    struct {
		sync.Mutex
		buckets   map[string]*bucket
		lastSweep time.Time
	}
}

// bucket is one tenant's token bucket.
type bucket struct {
	tokens float64
	last   time.Time // of the last refill
}

// sweepEvery: at most this often AllowN forgets the buckets that have
// refilled (a full bucket is the same as a new one), so tenants that
// stopped writing cost nothing.
const sweepEvery = time.Minute

// NewIngestionLimiter returns the limiter of o's tenants; nodes returns
// the number of active nodes in the cluster (1 or more; a smaller
// answer counts as 1).
func NewIngestionLimiter(o *Overrides, nodes func() int) *IngestionLimiter {
	l := &IngestionLimiter{o: o, nodes: nodes}
	l.mu.buckets = map[string]*bucket{}
	return l
}

// AllowN takes n samples of tenant from its bucket at now and reports
// whether there were enough. A refused request takes nothing. A tenant
// without an ingestion rate is always allowed.
func (l *IngestionLimiter) AllowN(now time.Time, tenant string, n int) bool {
	lim := l.o.For(tenant)
	if lim.IngestionRate <= 0 {
		return true
	}
	rate := lim.IngestionRate / float64(max(l.nodes(), 1))
	burst := float64(lim.IngestionBurstSize)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.mu.lastSweep) >= sweepEvery {
		l.sweepLocked(now)
	}
	b := l.mu.buckets[tenant]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		l.mu.buckets[tenant] = b
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens += dt.Seconds() * rate
		b.last = now
	}
	// A lowered burst applies at once.
	b.tokens = min(b.tokens, burst)
	if float64(n) > b.tokens {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// sweepLocked forgets the buckets that would be full at now.
func (l *IngestionLimiter) sweepLocked(now time.Time) {
	l.mu.lastSweep = now
	nodes := float64(max(l.nodes(), 1))
	for t, b := range l.mu.buckets {
		lim := l.o.For(t)
		if lim.IngestionRate <= 0 || b.tokens+now.Sub(b.last).Seconds()*lim.IngestionRate/nodes >= float64(lim.IngestionBurstSize) {
			delete(l.mu.buckets, t)
		}
	}
}

// ErrIngestionRate: a request refused by its tenant's ingestion rate.
var ErrIngestionRate = errors.New("limits: ingestion rate limit exceeded")

// IngestionRateError is the text of a refusal by the ingestion rate,
// Mimir's.
func IngestionRateError(rate float64, burst int) string {
	return perTenantMessage(fmt.Sprintf("the request has been rejected because the tenant exceeded the ingestion rate limit, set to %v items/s with a maximum allowed burst of %d. This limit is applied on the total number of samples received across all nodes", rate, burst),
		"tenant-max-ingestion-rate", "ingestion_rate", "ingestion_burst_size")
}
