package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Target is where to send.
type Target struct {
	WriteURL string // e.g. http://127.0.0.1:9009/api/v1/push
	// WriteURLs, if set, replace WriteURL: the requests of all shards go
	// to them round-robin, in the order they are sent (the nodes of a
	// cluster, any of which accepts any write). A request's retries go to
	// the URL its first attempt went to. A shard waits for each answer
	// before it sends its next request, so its series stay in time order
	// whichever node gets them.
	WriteURLs []string
	Tenant    string // X-Scope-OrgID; empty sends none
}

// urls returns the URLs requests go to, in round-robin order.
func (t Target) urls() []string {
	if len(t.WriteURLs) > 0 {
		return t.WriteURLs
	}
	return []string{t.WriteURL}
}

// RatePoint is the accepted samples per second over one sampling period.
type RatePoint struct {
	Seconds       float64 `json:"seconds"` // since the start of Send, at the end of the period
	SamplesPerSec float64 `json:"samples_per_sec"`
}

// SendResult is what Send saw.
type SendResult struct {
	Samples int64         // accepted (2xx)
	Retries int64         // 5xx, 429 and transport errors retried
	Elapsed time.Duration // first request to last response
	Rate    []RatePoint
}

// Send posts every shard's requests in order, shards concurrently, to
// tgt's URL or round-robin over its URLs, and samples the accepted count
// every rateEvery. The first request refused for good (a 4xx other than
// 429, or 20 failed attempts) stops it.
func Send(ctx context.Context, client *http.Client, tgt Target, p *Plan, rateEvery time.Duration) (SendResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var accepted, retries atomic.Int64
	urls := tgt.urls()
	var sent atomic.Uint64 // requests started, for the round-robin
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, next := range p.Shards {
		wg.Go(func() {
			for r, ok := next(); ok; r, ok = next() {
				u := urls[(sent.Add(1)-1)%uint64(len(urls))]
				n, err := post(ctx, client, Target{WriteURL: u, Tenant: tgt.Tenant}, r.Body)
				retries.Add(int64(n))
				if err != nil {
					cancel(err)
					return
				}
				accepted.Add(int64(r.Samples))
			}
		})
	}
	done := make(chan struct{})
	var rate []RatePoint
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(rateEvery)
		defer tick.Stop()
		last, lastT := int64(0), t0
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				n := accepted.Load()
				rate = append(rate, RatePoint{Seconds: now.Sub(t0).Seconds(), SamplesPerSec: float64(n-last) / now.Sub(lastT).Seconds()})
				last, lastT = n, now
			}
		}
	})
	wg.Wait()
	elapsed := time.Since(t0)
	close(done)
	sampler.Wait()
	res := SendResult{Samples: accepted.Load(), Retries: retries.Load(), Elapsed: elapsed, Rate: rate}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return res, err
	}
	return res, ctx.Err()
}

// maxAttempts per request before giving up, as a bound on a dead receiver.
const maxAttempts = 20

// post sends one request, retrying 5xx, 429 and transport errors with
// exponential backoff from 30 ms to 5 s (Prometheus's queue manager backs
// off from 30 ms to 5 s too). It returns the number of retries.
func post(ctx context.Context, client *http.Client, tgt Target, body []byte) (int, error) {
	backoff := 30 * time.Millisecond
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, tgt.WriteURL, bytes.NewReader(body))
		if err != nil {
			return attempt, err
		}
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("User-Agent", "myelin-loadgen")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		if tgt.Tenant != "" {
			req.Header.Set("X-Scope-OrgID", tgt.Tenant)
		}
		resp, err := client.Do(req)
		code := 0
		var msg []byte
		if err == nil {
			msg, _ = io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			code = resp.StatusCode
		}
		switch {
		case err == nil && code/100 == 2:
			return attempt, nil
		case err == nil && code/100 == 4 && code != http.StatusTooManyRequests:
			return attempt, fmt.Errorf("remote write: %d %s", code, strings.TrimSpace(string(msg)))
		case ctx.Err() != nil:
			return attempt, ctx.Err()
		case attempt+1 >= maxAttempts:
			return attempt, fmt.Errorf("remote write: giving up after %d attempts: %v %d %s", attempt+1, err, code, strings.TrimSpace(string(msg)))
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return attempt, ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
