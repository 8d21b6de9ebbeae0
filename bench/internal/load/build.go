package load

import (
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Options shape the load.
type Options struct {
	// Hours of backfill, ending at End. Zero means 1.
	Hours float64
	// End: the last scrape is at or before it. Zero means now.
	End time.Time
	// Interval between scrapes. Zero means 15 s.
	Interval time.Duration
	// Shards: concurrent senders. Zero means 4.
	Shards int
	// Batch: samples per request. Zero means 2000 (Prometheus's
	// max_samples_per_send).
	Batch int
	// Seed of the scrape jitter and synthetic values.
	Seed uint64
}

func (o Options) withDefaults() Options {
	if o.Hours == 0 {
		o.Hours = 1
	}
	if o.End.IsZero() {
		o.End = time.Now()
	}
	if o.Interval == 0 {
		o.Interval = 15 * time.Second
	}
	if o.Shards == 0 {
		o.Shards = 4
	}
	if o.Batch == 0 {
		o.Batch = 2000
	}
	return o
}

// Request is one encoded remote-write request.
type Request struct {
	Body    []byte // snappy-compressed prompb.WriteRequest
	Samples int
}

// Plan is the whole load: every shard's requests in time order.
type Plan struct {
	Series     int
	Samples    int64 // in all requests
	Requests   int
	Start, End int64 // first and last scrape time, ms (before jitter)
	// Shards yields each shard's requests in order. A shard's func is
	// called by one goroutine only; it returns false after the last.
	Shards []func() (Request, bool)
}

// Build plans the load of w under opts. The requests are encoded lazily,
// by the caller of Plan.Shards (then the client's CPU is mixed in:
// measure it), unless prebuild, which encodes them all now. Build consumes
// w's value state: build each workload once.
func Build(w Workload, opts Options, prebuild bool) *Plan {
	opts = opts.withDefaults()
	step := opts.Interval.Milliseconds()
	end := opts.End.UnixMilli() / step * step
	steps := max(1, int(opts.Hours*float64(time.Hour.Milliseconds())/float64(step)))
	start := end - int64(steps-1)*step
	shardOf := make([][]int, opts.Shards)
	for i, s := range w.Series {
		k := int(hashLabels(s.Labels) % uint64(opts.Shards))
		shardOf[k] = append(shardOf[k], i)
	}
	p := &Plan{Series: len(w.Series), Start: start, End: end, Shards: make([]func() (Request, bool), opts.Shards)}
	p.Samples = int64(len(w.Series)) * int64(steps)
	for k, idx := range shardOf {
		n := len(idx) * steps
		p.Requests += (n + opts.Batch - 1) / opts.Batch
		p.Shards[k] = shardRequests(w.Series, idx, steps, start, step, opts.Batch, rand.New(rand.NewPCG(opts.Seed, uint64(k))))
	}
	if prebuild {
		// Shards share no state (each has its own series and rng), so they
		// are encoded in parallel.
		var wg sync.WaitGroup
		for k, next := range p.Shards {
			wg.Go(func() {
				var all []Request
				for r, ok := next(); ok; r, ok = next() {
					all = append(all, r)
				}
				p.Shards[k] = replayRequests(all)
			})
		}
		wg.Wait()
	}
	return p
}

func replayRequests(all []Request) func() (Request, bool) {
	return func() (Request, bool) {
		if len(all) == 0 {
			return Request{}, false
		}
		r := all[0]
		all[0] = Request{} // let the sent body be collected
		all = all[1:]
		return r, true
	}
}

// shardRequests returns the request iterator of one shard: scrapes in
// time order, each scrape's samples of the shard's series in order, cut
// every batch samples.
func shardRequests(series []Series, idx []int, steps int, start, step int64, batch int, rng *rand.Rand) func() (Request, bool) {
	st, pos := 0, 0 // next scrape step and series position in it
	var t int64
	var req prompb.WriteRequest
	samples := make([]prompb.Sample, batch)
	var buf []byte
	return func() (Request, bool) {
		req.Timeseries = req.Timeseries[:0]
		for len(idx) > 0 && len(req.Timeseries) < batch && st < steps {
			if pos == 0 {
				// Scrape jitter as recorded in the shared data: most
				// scrapes on time, one in ten a few ms late.
				t = start + int64(st)*step
				if rng.IntN(10) == 0 {
					t += 1 + rng.Int64N(5)
				}
			}
			s := &series[idx[pos]]
			j := len(req.Timeseries)
			samples[j] = prompb.Sample{Timestamp: t, Value: s.gen.next(rng, st)}
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: s.Labels, Samples: samples[j : j+1 : j+1]})
			if pos++; pos == len(idx) {
				pos = 0
				st++
			}
		}
		if len(req.Timeseries) == 0 {
			return Request{}, false
		}
		var err error
		buf = buf[:0]
		if cap(buf) < req.Size() {
			buf = make([]byte, req.Size())
		}
		buf = buf[:req.Size()]
		if _, err = req.MarshalToSizedBuffer(buf); err != nil {
			panic("BUG: marshal write request: " + err.Error())
		}
		return Request{Body: snappy.Encode(nil, buf), Samples: len(req.Timeseries)}, true
	}
}

func hashLabels(l []prompb.Label) uint64 {
	h := fnv.New64a()
	for _, x := range l {
		h.Write([]byte(x.Name))
		h.Write([]byte{0})
		h.Write([]byte(x.Value))
		h.Write([]byte{0})
	}
	return h.Sum64()
}
