package frontend

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// Cache stores encoded pieces of query results by key. Implementations
// are safe for concurrent use. A backend that fails answers a miss (and
// counts or logs it): the results cache is never a reason for a query
// to fail.
type Cache interface {
	// Fetch returns the values found for keys; missing keys are absent.
	Fetch(ctx context.Context, keys []string) map[string][]byte
	// Store keeps value under key for at most ttl.
	Store(ctx context.Context, key string, value []byte, ttl time.Duration)
}

// extent is one cached piece: the answer of a range query for the steps
// [start, end] of one split interval, computed at cachedAt.
type extent struct {
	key        string // the full key, checked on read (hashes may collide)
	cachedAt   int64  // milliseconds
	start, end int64
	series     []series
}

// cacheKey names a piece: everything the piece's answer depends on.
// The query's step grid is in it (step and start modulo step), so a
// piece is only ever reused for the same steps. Mimir's key, plus the
// version of the format, the tenant's cache generation
// (Options.Generation) and lookback_delta.
func cacheKey(tenantID string, gen uint64, query string, step, start, interval int64, lookback string) string {
	idx := int64(0)
	if interval > 0 {
		idx = floorDiv(start, interval)
	}
	return fmt.Sprintf("fe1:%s:%d:%s:%d:%d:%d:%d:%s", tenantID, gen, query, step, floorMod(start, step), interval, idx, lookback)
}

// hashKey is the key a backend stores under: memcached keys are at most
// 250 bytes without spaces, and queries are longer.
func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return "fe1:" + hex.EncodeToString(h[:20])
}

// Format of an encoded extent (version 1):
//
//	value   = version:byte(1) s2block
//	s2block = S2 block compression (klauspost/compress/s2.Encode) of body
//	body    = key:string cachedAt:varint start:varint end:varint
//	          nseries:uvarint series*nseries
//	series  = metric:string npoints:uvarint point*npoints
//	point   = dt:varint value:uint64 (little endian: the float64's bits)
//	string  = len:uvarint bytes
//
// dt is the point's time minus the previous point's (the first: minus
// start). metric is the JSON object the query API wrote for the series.
// Values are kept bit for bit; written as JSON they give the text the
// query API wrote (appendFloat).
const extentVersion = 1

var errCorrupt = errors.New("frontend: corrupt cached extent")

func encodeExtent(e *extent) []byte {
	n := 64 + len(e.key)
	for _, s := range e.series {
		n += len(s.metric) + 16 + 12*len(s.floats)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(e.key)))
	b = append(b, e.key...)
	b = binary.AppendVarint(b, e.cachedAt)
	b = binary.AppendVarint(b, e.start)
	b = binary.AppendVarint(b, e.end)
	b = binary.AppendUvarint(b, uint64(len(e.series)))
	for _, s := range e.series {
		b = binary.AppendUvarint(b, uint64(len(s.metric)))
		b = append(b, s.metric...)
		b = binary.AppendUvarint(b, uint64(len(s.floats)))
		prev := e.start
		for _, p := range s.floats {
			b = binary.AppendVarint(b, p.t-prev)
			prev = p.t
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.v))
		}
	}
	enc := s2.Encode(nil, b)
	out := make([]byte, 0, 1+len(enc))
	out = append(out, extentVersion)
	return append(out, enc...)
}

// decodeExtent decodes an extent; a value of another version or a
// corrupt one is an error (the caller takes it as a miss).
func decodeExtent(v []byte) (*extent, error) {
	if len(v) == 0 || v[0] != extentVersion {
		return nil, fmt.Errorf("%w: unknown version", errCorrupt)
	}
	b, err := s2.Decode(nil, v[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	r := reader{b: b}
	e := &extent{key: string(r.bytes())}
	e.cachedAt = r.varint()
	e.start = r.varint()
	e.end = r.varint()
	ns := r.uvarint()
	if ns > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d series in %d bytes", errCorrupt, ns, len(b))
	}
	e.series = make([]series, 0, ns)
	for range ns {
		s := series{metric: json.RawMessage(r.bytes())}
		np := r.uvarint()
		if r.err != nil || np > uint64(len(r.b)) {
			return nil, fmt.Errorf("%w: %d points", errCorrupt, np)
		}
		s.floats = make([]fpoint, np)
		t := e.start
		for i := range s.floats {
			t += r.varint()
			s.floats[i] = fpoint{t: t, v: math.Float64frombits(r.uint64())}
		}
		if r.err != nil {
			return nil, r.err
		}
		var m map[string]string
		if err := json.Unmarshal(s.metric, &m); err != nil {
			return nil, fmt.Errorf("%w: metric: %v", errCorrupt, err)
		}
		s.lbls = labels.FromMap(m)
		e.series = append(e.series, s)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left over", errCorrupt, len(r.b))
	}
	return e, nil
}

// reader reads the fields of an encoded extent; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated", errCorrupt)
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uint64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// LRU is the embedded results cache: an LRU bounded by the bytes of its
// keys and values. Safe for concurrent use; mu guards everything.
type LRU struct {
	maxBytes int64
	now      func() time.Time
	mu       struct {
		sync.Mutex
		bytes int64
		order *list.List // of *lruEntry, most recently used first
		byKey map[string]*list.Element
	}
	items, size prometheus.GaugeFunc
	evictions   prometheus.Counter
}

type lruEntry struct {
	key     string
	value   []byte
	expires time.Time
}

// lruEntryOverhead approximates the bytes of an entry beyond its key and
// value: the list element, the map slot, the entry.
const lruEntryOverhead = 160

// NewLRU returns an empty cache of at most maxBytes, its metrics
// registered with reg (nil: none). now is its clock (nil: time.Now).
func NewLRU(maxBytes int64, now func() time.Time, reg prometheus.Registerer) *LRU {
	if now == nil {
		now = time.Now
	}
	c := &LRU{maxBytes: maxBytes, now: now}
	c.mu.order = list.New()
	c.mu.byKey = map[string]*list.Element{}
	c.items = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "myelin_query_frontend_results_cache_items",
		Help: "Entries in the embedded results cache.",
	}, func() float64 { c.mu.Lock(); defer c.mu.Unlock(); return float64(len(c.mu.byKey)) })
	c.size = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "myelin_query_frontend_results_cache_bytes",
		Help: "Bytes held by the embedded results cache (keys, values and a fixed overhead per entry).",
	}, func() float64 { c.mu.Lock(); defer c.mu.Unlock(); return float64(c.mu.bytes) })
	c.evictions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "myelin_query_frontend_results_cache_evictions_total",
		Help: "Entries evicted from the embedded results cache to make room.",
	})
	if reg != nil {
		reg.MustRegister(c.items, c.size, c.evictions)
	}
	return c
}

var _ Cache = (*LRU)(nil)

// Fetch implements Cache.
func (c *LRU) Fetch(_ context.Context, keys []string) map[string][]byte {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]byte, len(keys))
	for _, k := range keys {
		el, ok := c.mu.byKey[k]
		if !ok {
			continue
		}
		e := el.Value.(*lruEntry)
		if !now.Before(e.expires) {
			c.removeLocked(el)
			continue
		}
		c.mu.order.MoveToFront(el)
		out[k] = e.value
	}
	return out
}

// Store implements Cache. A value larger than a quarter of the cache is
// not kept: it would evict too much for one entry.
func (c *LRU) Store(_ context.Context, key string, value []byte, ttl time.Duration) {
	size := int64(len(key) + len(value) + lruEntryOverhead)
	if size > c.maxBytes/4 {
		return
	}
	e := &lruEntry{key: key, value: value, expires: c.now().Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.mu.byKey[key]; ok {
		c.removeLocked(el)
	}
	c.mu.byKey[key] = c.mu.order.PushFront(e)
	c.mu.bytes += size
	for c.mu.bytes > c.maxBytes {
		c.removeLocked(c.mu.order.Back())
		c.evictions.Inc()
	}
}

func (c *LRU) removeLocked(el *list.Element) {
	e := c.mu.order.Remove(el).(*lruEntry)
	delete(c.mu.byKey, e.key)
	c.mu.bytes -= int64(len(e.key) + len(e.value) + lruEntryOverhead)
}

// Len returns the number of entries, for tests.
func (c *LRU) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mu.byKey)
}
