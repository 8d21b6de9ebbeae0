package server

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// storedExact renders every sample of a tenant's series with its kind
// and exact bits: a float's bits (a staleness marker is not a NaN, -0 is
// not 0) and a histogram's every field.
func storedExact(t *testing.T, g *engine.Group, tenant string) []string {
	q, err := g.Querier(tenant, math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var out []string
	for ss.Next() {
		s := ss.At()
		var b strings.Builder
		b.WriteString(s.Labels().String() + ":")
		it := s.Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				fmt.Fprintf(&b, " %d=f%x", ts, math.Float64bits(v))
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				fmt.Fprintf(&b, " %d=h%s/%x/%d", ts, h.String(), math.Float64bits(h.Sum), h.CounterResetHint)
			default:
				ts, fh := it.AtFloatHistogram(nil)
				fmt.Fprintf(&b, " %d=fh%s/%x/%d", ts, fh.String(), math.Float64bits(fh.Sum), fh.CounterResetHint)
			}
		}
		require.NoError(t, it.Err())
		out = append(out, b.String())
	}
	require.NoError(t, ss.Err())
	return out
}

// TestNativeExportImport: what the text format cannot carry comes back
// through the native format bit for bit: staleness markers, -0, NaN,
// integer and float native histograms (custom buckets too), a series
// switching between floats and histograms, series longer than a frame.
// Importing is posting each frame to the remote write endpoint.
func TestNativeExportImport(t *testing.T) {
	gw := newGroupWriter(t)
	wh, err := NewWriteHandler(gw, WriteOptions{MultiTenant: true, Now: func() time.Time { return time.UnixMilli(10_000_000) }})
	require.NoError(t, err)
	exp := NewNativeExportHandler(gw.g, true)

	lbl := func(kv ...string) []byte {
		var b []byte
		for i := 0; i < len(kv); i += 2 {
			b = write.AppendLabel(b, []byte(kv[i]), []byte(kv[i+1]))
		}
		return b
	}
	h := &histogram.Histogram{Count: 6, Sum: 2.5, Schema: 1, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 3, Length: 1}}, PositiveBuckets: []int64{1, 1, -1},
		NegativeSpans: []histogram.Span{{Offset: 1, Length: 1}}, NegativeBuckets: []int64{1}}
	fh := &histogram.FloatHistogram{Count: 4.5, Sum: -1.25, Schema: histogram.CustomBucketsSchema,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{1.5, 3}, CustomValues: []float64{0.1, 1}}
	staleH := h.Copy()
	staleH.Sum = math.Float64frombits(value.StaleNaN)
	var long []write.Sample
	for i := range 25 {
		long = append(long, write.Sample{T: int64(1000 * (i + 1)), V: float64(i) / 3})
	}
	b := &write.Batch{Tenant: "src", Series: []write.Series{
		{Labels: lbl("__name__", "floats", "q", "a\"b\\c\nd"), Samples: []write.Sample{
			{T: 1000, V: 1}, {T: 2000, V: math.Copysign(0, -1)}, {T: 3000, V: math.NaN()},
			{T: 4000, V: math.Inf(-1)}, {T: 5000, V: math.Float64frombits(value.StaleNaN)}, {T: 6000, V: 7}}},
		{Labels: lbl("__name__", "hist"), Histograms: []write.Histogram{{T: 1000, H: h}, {T: 2000, H: h}, {T: 3000, H: staleH}}},
		{Labels: lbl("__name__", "fhist", "le_kind", "nhcb"), Histograms: []write.Histogram{{T: 1000, FH: fh}, {T: 2000, FH: fh}}},
		{Labels: lbl("__name__", "long"), Samples: long},
		{Labels: lbl("__name__", "my.metric", "label.x", "v")},
	}}
	refused, err := gw.Write(context.Background(), b)
	require.NoError(t, err)
	require.Empty(t, refused)
	// A series switching kinds: histograms after floats, floats after.
	for _, s := range []write.Series{
		{Labels: lbl("__name__", "mixed"), Samples: []write.Sample{{T: 1000, V: 1}, {T: 2000, V: 2}}},
		{Labels: lbl("__name__", "mixed"), Histograms: []write.Histogram{{T: 3000, H: h}}},
		{Labels: lbl("__name__", "mixed"), Samples: []write.Sample{{T: 4000, V: 4}}},
	} {
		refused, err = gw.Write(context.Background(), &write.Batch{Tenant: "src", Series: []write.Series{s}})
		require.NoError(t, err)
		require.Empty(t, refused)
	}
	want := storedExact(t, gw.g, "src")
	require.Len(t, want, 5)

	export := func(form url.Values) (int, []byte) {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/export/native?"+form.Encode(), nil)
		r.Header.Set(tenant.Header, "src")
		w := httptest.NewRecorder()
		exp.ServeHTTP(w, r)
		return w.Code, w.Body.Bytes()
	}
	code, body := export(url.Values{"match[]": {`{__name__=~".+"}`}, "start": {"0"}, "end": {"100"}})
	require.Equal(t, http.StatusOK, code, string(body))
	require.True(t, bytes.HasPrefix(body, []byte(NativeMagic)))

	frames := 0
	err = ReadNativeFrames(bytes.NewReader(body), func(frame []byte) error {
		frames++
		w := post(wh, "/api/v1/push", "dst", contentTypeV2, frame)
		if w.Code != http.StatusNoContent {
			return fmt.Errorf("frame %d: %d %s", frames, w.Code, w.Body.String())
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 1, frames)
	require.Equal(t, want, storedExact(t, gw.g, "dst"))

	// Frames of 4 samples: series continue across frames.
	var buf bytes.Buffer
	buf.WriteString(NativeMagic)
	q, err := gw.g.Querier("src", 0, 100_000)
	require.NoError(t, err)
	defer q.Close()
	sets := [][]*labels.Matcher{{labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")}}
	nw := NewNativeWriter(func(f []byte) error { buf.Write(f); return nil }, 4)
	ss := exportSelect(context.Background(), q, sets, 0, 100_000)
	for ss.Next() {
		require.NoError(t, nw.WriteSeries(ss.At().Labels(), ss.At().Iterator(nil), 0, 100_000))
	}
	require.NoError(t, ss.Err())
	require.NoError(t, nw.Flush())
	require.Equal(t, 34, nw.Samples)
	require.Equal(t, 6, nw.Histograms)
	require.Equal(t, 5, nw.Series)
	frames = 0
	require.NoError(t, ReadNativeFrames(bytes.NewReader(buf.Bytes()), func(frame []byte) error {
		frames++
		if w := post(wh, "/api/v1/push", "dst4", contentTypeV2, frame); w.Code != http.StatusNoContent {
			return fmt.Errorf("frame %d: %d %s", frames, w.Code, w.Body.String())
		}
		return nil
	}))
	require.Equal(t, 10, frames) // 40 samples, 4 a frame
	require.Equal(t, want, storedExact(t, gw.g, "dst4"))

	// A time range: only its samples.
	code, body = export(url.Values{"match[]": {`floats`}, "start": {"2"}, "end": {"5"}})
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, ReadNativeFrames(bytes.NewReader(body), func(frame []byte) error {
		require.Equal(t, http.StatusNoContent, post(wh, "/api/v1/push", "range", contentTypeV2, frame).Code)
		return nil
	}))
	got := storedExact(t, gw.g, "range")
	require.Len(t, got, 1)
	require.Equal(t, 4, strings.Count(got[0], "000=f"), got[0])
	require.Contains(t, got[0], fmt.Sprintf(" 5000=f%x", value.StaleNaN))

	// Another tenant's export is empty: the magic alone.
	r := httptest.NewRequest(http.MethodGet, "/api/v1/export/native?match[]=floats", nil)
	r.Header.Set(tenant.Header, "other")
	w := httptest.NewRecorder()
	exp.ServeHTTP(w, r)
	require.Equal(t, NativeMagic, w.Body.String())
}

// TestReadNativeFramesErrors: a stream that is not native, cut short, or
// ended by the writer's error trailer is an error naming the frame.
func TestReadNativeFramesErrors(t *testing.T) {
	nop := func([]byte) error { return nil }
	require.ErrorIs(t, ReadNativeFrames(strings.NewReader("up 1 1000\n"), nop), ErrNativeFormat)
	require.NoError(t, ReadNativeFrames(strings.NewReader(NativeMagic), nop))
	err := ReadNativeFrames(strings.NewReader(NativeMagic+"\x05abc"), nop)
	require.ErrorContains(t, err, "frame 1: unexpected EOF")
	err = ReadNativeFrames(strings.NewReader(NativeMagic+"\x01a"+string(AppendNativeError(nil, "select: boom"))), nop)
	require.ErrorContains(t, err, "writer's error: select: boom")
	err = ReadNativeFrames(strings.NewReader(NativeMagic+"\xff\xff\xff\xff\x7f"), nop)
	require.ErrorContains(t, err, "more than")
}
