package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server/distributor"
	"github.com/myelindb/myelin/server/tenant"
)

// Worst-case remote-write requests for memory: millions of tiny series in
// one body within -distributor.max-recv-msg-size, as the issue "Faults
// and abuse" sent them (a 5 MB body of 2.85 million series, all refused).

// pbLen appends a length-delimited field.
func pbLen(dst []byte, num uint64, v []byte) []byte {
	dst = binary.AppendUvarint(dst, num<<3|2)
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

// pbSeries encodes one TimeSeries with the label pairs of lset and one
// sample at t.
func pbSeries(lset []string, t int64) []byte {
	var b []byte
	for i := 0; i < len(lset); i += 2 {
		b = pbLen(b, 1, pbLen(pbLen(nil, 1, []byte(lset[i])), 2, []byte(lset[i+1])))
	}
	smp := binary.LittleEndian.AppendUint64([]byte{1<<3 | 1}, math.Float64bits(1))
	smp = binary.AppendUvarint(append(smp, 2<<3), uint64(t))
	return pbLen(b, 2, smp)
}

// worstCase is a request shape: one series, repeated to fill the body.
type worstCase struct {
	name   string
	series []byte // one encoded TimeSeries (the WriteRequest field's value)
	valid  bool   // the series pass validation
}

func worstCases(now time.Time) []worstCase {
	ts := now.UnixMilli()
	many := []string{"__name__", "x"}
	for i := range 31 {
		many = append(many, fmt.Sprintf("l%02d", i), "v")
	}
	return []worstCase{
		// The request: no metric name, one label, one sample.
		{"missing-name", pbSeries([]string{"a", "b"}, ts), false},
		// An invalid (non-UTF-8) metric name.
		{"invalid-name", pbSeries([]string{"__name__", "\xff"}, ts), false},
		// Over the 30 labels of -validation.max-label-names-per-series.
		{"too-many-labels", pbSeries(many, ts), false},
		// A label name over -validation.max-length-label-name.
		{"long-label-name", pbSeries([]string{"__name__", "x", strings.Repeat("n", 1025), "v"}, ts), false},
		// The decoder's budget: empty labels (48 bytes each in memory for
		// 2 on the wire) padded with an unknown field to 10 bytes of
		// decoded elements per body byte, the most Unmarshal accepts.
		{"decoder-budget", budgetSeries(ts), false},
		// The smallest valid series: written.
		{"valid-tiny", nil, true},
	}
}

// budgetSeries is a TimeSeries whose decoded elements take just under
// 10 bytes per wire byte: 1000 empty labels, a sample, and an unknown
// field (15) as padding.
func budgetSeries(ts int64) []byte {
	b := pbSeries(nil, ts)
	b = append(b, strings.Repeat("\x0a\x00", 1000)...)
	return pbLen(b, 15, make([]byte, 2815))
}

// worstBody returns a snappy body of copies of series filling about
// decompressed bytes; valid series get distinct names (series i is
// {__name__="s<i>"}) so they are all new.
func worstBody(wc worstCase, decompressed int, ts int64) (body []byte, raw int, n int) {
	var buf []byte
	for len(buf) < decompressed-64 {
		s := wc.series
		if wc.valid {
			s = pbSeries([]string{"__name__", "s" + strconvItoa(n)}, ts)
		}
		if len(buf)+len(s)+8 > decompressed {
			break
		}
		buf = pbLen(buf, 1, s)
		n++
	}
	// Clone: snappy.Encode returns a slice of a buffer sized for the
	// worst case (1.17x the input), which would stay live with it.
	return bytes.Clone(snappy.Encode(nil, buf)), len(buf), n
}

func strconvItoa(i int) string { return fmt.Sprint(i) }

// nodeWriter is the node's write path up to Raft: the distributor splits
// each batch over three groups and encodes the parts as log entries, which
// propose hands to whatever stands in for Raft (nil: accepted).
func nodeWriter(tb testing.TB, propose func(ctx context.Context, entry []byte) error) *distributor.Distributor {
	tb.Helper()
	var tokens []ring.Token
	for g := 1; g <= 3; g++ {
		tok := uint64(math.MaxUint64)
		if g < 3 {
			tok = math.MaxUint64 / 3 * uint64(g)
		}
		tokens = append(tokens, ring.Token{Token: tok, Group: ring.GroupID(g)})
	}
	r, err := ring.NewRing(tokens)
	if err != nil {
		tb.Fatal(err)
	}
	return distributor.New(proposerFunc(propose), func() (*ring.Ring, error) { return r, nil }, nil)
}

type proposerFunc func(ctx context.Context, entry []byte) error

func (f proposerFunc) Propose(ctx context.Context, _ ring.GroupID, entry []byte) ([]byte, error) {
	if f == nil {
		return nil, nil
	}
	return nil, f(ctx, entry)
}

// heapAllocs is the total of bytes allocated on the heap so far.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// liveHeap is the heap in use after two GCs (the second empties the
// sync.Pools' victim caches).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// post1 sends body through h as one push of tenant "t" and returns the
// status, the response and the bytes allocated meanwhile.
func post1(h http.Handler, body []byte) (int, string, uint64) {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
	r.Header.Set(tenant.Header, "t")
	w := httptest.NewRecorder()
	a0 := heapAllocs()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String(), heapAllocs() - a0
}

// A push allocates at most pushMemPerByte bytes per byte it reserves (its
// body compressed and decompressed), refused series included, and keeps
// nothing once answered but a pooled state within maxPooledStateBytes,
// which two GCs free.
func TestWriteMemory(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, wc := range worstCases(now) {
		for _, size := range []int{256 << 10, 4 << 20} {
			t.Run(fmt.Sprintf("%s/%dKiB", wc.name, size>>10), func(t *testing.T) {
				body, raw, n := worstBody(wc, size, now.UnixMilli())
				h, err := NewWriteHandler(nodeWriter(t, nil), WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
				if err != nil {
					t.Fatal(err)
				}
				base := liveHeap()
				for i := range 2 { // cold, then with a pooled state
					code, msg, alloc := post1(h, body)
					if wc.valid != (code == http.StatusNoContent) {
						t.Fatalf("status %d: %.300s", code, msg)
					}
					reserved := len(body) + raw
					t.Logf("request %d: %d series, %d+%d bytes, allocated %d (%.2f per decompressed byte)",
						i, n, len(body), raw, alloc, float64(alloc)/float64(raw))
					if limit := pushMemPerByte*reserved + 64<<10; alloc > uint64(limit) {
						t.Errorf("allocated %d bytes, over %d per reserved byte (%d)", alloc, pushMemPerByte, limit)
					}
					if !wc.valid && !strings.Contains(msg, fmt.Sprintf("%d series (%d samples) refused in total", n, n)) {
						t.Errorf("response %.300q does not count the refusals", msg)
					}
				}
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if pooled := int64(ms.HeapAlloc) - int64(base); pooled > maxPooledStateBytes+1<<20 {
					t.Errorf("%d bytes kept after a GC, more than a pooled state", pooled)
				}
				if kept := int64(liveHeap()) - int64(base); kept > 256<<10 {
					t.Errorf("%d bytes kept after two GCs", kept)
				}
				runtime.KeepAlive(body)
			})
		}
	}
}

// BenchmarkWriteWorstCase measures the memory of one worst-case request
// through the handler: bytes allocated per decompressed byte, and the
// heap left after it (pooled Requests and Builders included).
//
//	go test -run '^$' -bench WriteWorstCase -benchtime 3x ./server
func BenchmarkWriteWorstCase(b *testing.B) {
	now := time.Unix(1_700_000_000, 0)
	const size = 100 << 20 // -distributor.max-recv-msg-size
	for _, wc := range worstCases(now) {
		b.Run(wc.name, func(b *testing.B) {
			size := size
			if wc.valid {
				size = 64 << 20 // distinct names compress less: stay under 10 MiB
			}
			body, raw, n := worstBody(wc, size, now.UnixMilli())
			h, err := NewWriteHandler(nodeWriter(b, nil), WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%d series, %d bytes decompressed, %d compressed", n, raw, len(body))
			base := liveHeap()
			var allocs uint64
			b.ReportAllocs()
			for b.Loop() {
				a0 := heapAllocs()
				r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
				r.Header.Set(tenant.Header, "t")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				allocs += heapAllocs() - a0
				if wc.valid != (w.Code == http.StatusNoContent) {
					b.Fatalf("status %d: %.300s", w.Code, w.Body)
				}
			}
			retained := int64(liveHeap()) - int64(base)
			runtime.KeepAlive(body)
			b.ReportMetric(float64(allocs)/float64(b.N)/float64(raw), "alloc-B/decompressed-B")
			b.ReportMetric(float64(retained)/float64(raw), "retained-B/decompressed-B")
			b.ReportMetric(float64(retained)/(1<<20), "retained-MiB")
		})
	}
}

// After a push of freeMemoryPushBytes or more, the handler returns the
// freed memory to the OS; after small ones it does not.
func TestWriteFreesMemory(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h, err := NewWriteHandler(nodeWriter(t, nil), WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
	require.NoError(t, err)
	frees := 0
	h.freeMemory = func() { frees++ }
	small, _, _ := worstBody(worstCases(now)[0], 1<<20, now.UnixMilli())
	code, msg, _ := post1(h, small)
	require.Equal(t, http.StatusBadRequest, code, msg)
	require.Zero(t, frees)
	large, _, _ := worstBody(worstCases(now)[0], freeMemoryPushBytes+1<<10, now.UnixMilli())
	code, msg, _ = post1(h, large)
	require.Equal(t, http.StatusBadRequest, code, msg)
	require.Equal(t, 1, frees)
}

// pbVarints appends a packed repeated varint field.
func pbVarints(dst []byte, num uint64, vs ...uint64) []byte {
	var packed []byte
	for _, v := range vs {
		packed = binary.AppendUvarint(packed, v)
	}
	return pbLen(dst, num, packed)
}

// worstBodyV2 returns a snappy 2.0 body of about decompressed bytes for
// the worst cases of 2.0, where strings are symbols that series refer
// to: the smallest series refused (no metric name), a series of 1000
// empty labels (4 bytes of references in memory per wire byte), a
// symbol of 2,000 bytes that every series refers to (keys 100 times the
// body: refused as a whole, before the keys are allocated) and the
// smallest valid series, each with a name of its own.
func worstBodyV2(name string, decompressed int, ts int64) (body []byte, raw, n int, code int) {
	smp := binary.LittleEndian.AppendUint64([]byte{1<<3 | 1}, math.Float64bits(1))
	smp = binary.AppendUvarint(append(smp, 2<<3), uint64(ts))
	var syms, series []byte
	symbols := []string{"", "__name__", "a", "b", strings.Repeat("y", 2000)}
	for _, s := range symbols {
		syms = pbLen(syms, 4, []byte(s))
	}
	code = http.StatusBadRequest
	for len(syms)+len(series) < decompressed-64 {
		var s []byte
		switch name {
		case "missing-name":
			s = pbVarints(nil, 1, 2, 3)
		case "empty-labels":
			s = pbVarints(nil, 1, make([]uint64, 2000)...)
		case "shared-long-symbol":
			s = pbVarints(nil, 1, 1, 2, 3, 4)
		case "valid-tiny":
			syms = pbLen(syms, 4, []byte("s"+strconvItoa(n)))
			s = pbVarints(nil, 1, 1, uint64(len(symbols)+n))
			code = http.StatusNoContent
		}
		series = pbLen(series, 5, pbLen(s, 2, smp))
		n++
	}
	buf := append(syms, series...)
	return bytes.Clone(snappy.Encode(nil, buf)), len(buf), n, code
}

// TestWriteMemoryV2 is TestWriteMemory for remote write 2.0.
func TestWriteMemoryV2(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, name := range []string{"missing-name", "empty-labels", "shared-long-symbol", "valid-tiny"} {
		for _, size := range []int{256 << 10, 4 << 20} {
			t.Run(fmt.Sprintf("%s/%dKiB", name, size>>10), func(t *testing.T) {
				body, raw, n, want := worstBodyV2(name, size, now.UnixMilli())
				h, err := NewWriteHandler(nodeWriter(t, nil), WriteOptions{MultiTenant: true, Now: func() time.Time { return now }})
				if err != nil {
					t.Fatal(err)
				}
				base := liveHeap()
				for i := range 2 { // cold, then with a pooled state
					r := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
					r.Header.Set(tenant.Header, "t")
					r.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
					w := httptest.NewRecorder()
					a0 := heapAllocs()
					h.ServeHTTP(w, r)
					alloc := heapAllocs() - a0
					if w.Code != want {
						t.Fatalf("status %d: %.300s", w.Code, w.Body)
					}
					reserved := len(body) + raw
					t.Logf("request %d: %d series, %d+%d bytes, allocated %d (%.2f per decompressed byte): %.120s",
						i, n, len(body), raw, alloc, float64(alloc)/float64(raw), w.Body)
					if limit := pushMemPerByte*reserved + 64<<10; alloc > uint64(limit) {
						t.Errorf("allocated %d bytes, over %d per reserved byte (%d)", alloc, pushMemPerByte, limit)
					}
				}
				if kept := int64(liveHeap()) - int64(base); kept > 256<<10 {
					t.Errorf("%d bytes kept after two GCs", kept)
				}
				runtime.KeepAlive(body)
			})
		}
	}
}
