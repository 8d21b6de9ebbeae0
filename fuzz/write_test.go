package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/write"
)

// FuzzBatchDecode feeds arbitrary bytes to write.Decode, the decoder
// of Raft log entries (every version, the prefix-coded form nodes
// propose included) (written by any node's server, read by every
// replica). It must not panic; an error must wrap write.ErrCorrupt;
// a batch that decodes re-encodes to bytes that decode to the same batch.
func FuzzBatchDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2, 0, 0, 0})
	bb := write.NewBuilder("tenant-a")
	for i, lset := range []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "node", "instance", "a:9100"),
		labels.FromStrings("__name__", "up", "job", "node", "instance", "b:9100"),
		labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "idle"),
	} {
		if err := bb.Add(lset, []write.Sample{
			{T: 1_700_000_000_000 + int64(i), V: 1},
			{T: 1_700_000_015_000, V: math.Float64frombits(0x7ff0000000000002)},
			{T: -5, V: math.Inf(-1)},
		}); err != nil {
			f.Fatal(err)
		}
	}
	seed := write.Append(nil, bb.Batch())
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(write.Compress(nil, seed))
	limited := bb.Batch()
	limited.Limits = write.SeriesLimits{MaxSeries: 1 << 20, MaxSeriesPerMetric: 300}
	f.Add(write.Append(nil, limited))
	f.Add([]byte{4, 1, 't', 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0}) // a limit above 2^31-1
	f.Add([]byte{2, 1, 't', 0})                                  // version 2: no limits
	// Version 5: integer, float and custom-bucket histograms.
	hb := write.NewBuilder("tenant-h")
	if err := hb.AddHistograms(labels.FromStrings("__name__", "h"), []write.Sample{{T: 1, V: 2}}, []write.Histogram{
		{T: 10, H: &histogram.Histogram{Schema: 1, Count: 3, ZeroCount: 1, Sum: 2.5, ZeroThreshold: 0.001,
			PositiveSpans: []histogram.Span{{Offset: -1, Length: 2}}, PositiveBuckets: []int64{1, 0},
			NegativeSpans: []histogram.Span{{Offset: 3, Length: 1}}, NegativeBuckets: []int64{0}}},
		{T: 20, FH: &histogram.FloatHistogram{CounterResetHint: histogram.GaugeType, Schema: -2, Count: 1.5, Sum: -1,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []float64{1.5}}},
		{T: 30, H: &histogram.Histogram{Schema: histogram.CustomBucketsSchema, Count: 2, Sum: 1,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 0}, CustomValues: []float64{0.5}}},
	}); err != nil {
		f.Fatal(err)
	}
	hseed := write.Append(nil, hb.Batch())
	f.Add(hseed)
	f.Add(write.Compress(nil, hseed))
	f.Add(hseed[:len(hseed)-1])
	// Version 6: an out-of-order window around a version 4 and 5 batch.
	limited.OutOfOrderWindowMs = 600_000
	f.Add(write.Append(nil, limited))
	hwin := hb.Batch()
	hwin.OutOfOrderWindowMs = 1
	f.Add(write.Append(nil, hwin))
	f.Add(write.Compress(nil, write.Append(nil, hwin)))
	f.Add([]byte{6, 0, 4, 1, 't', 0, 0, 0})
	// Version 7: exemplars and metadata, alone and with samples.
	eb := write.NewBuilder("tenant-e")
	if err := eb.Add(labels.FromStrings("__name__", "http_requests_total", "job", "api"), []write.Sample{{T: 5, V: 1}}); err != nil {
		f.Fatal(err)
	}
	if err := eb.Add(labels.FromStrings("__name__", "http_requests_total"), nil); err != nil {
		f.Fatal(err)
	}
	bx := eb.Batch()
	bx.Series[0].Meta = &write.SeriesMeta{Exemplars: []write.Exemplar{{T: 5, V: 1, Labels: write.AppendLabel(nil, "trace_id", "abc")}, {T: 4, V: 0.5}}}
	bx.Series[1].Meta = &write.SeriesMeta{Metadata: &write.Metadata{Family: "http_requests_total", Type: 1, Unit: "requests", Help: "Requests."}}
	bx.MetaLimits = write.MetaLimits{MaxExemplars: 1000, MaxMetadata: 10, MaxMetadataPerMetric: 2}
	xseed := write.Append(nil, bx)
	f.Add(xseed)
	f.Add(write.Compress(nil, xseed))
	f.Add(xseed[:len(xseed)-3])
	// Version 6 around version 7.
	bx.OutOfOrderWindowMs = 60_000
	f.Add(write.Append(nil, bx))
	// Version 8: start timestamps around a version 4 and 5 batch, and
	// inside a version 6 envelope.
	sb := write.NewBuilder("tenant-s")
	if err := sb.Add(labels.FromStrings("__name__", "c_total"), []write.Sample{{T: 1000, V: 1}, {T: 2000, V: 2}}); err != nil {
		f.Fatal(err)
	}
	if err := sb.Add(labels.FromStrings("__name__", "g"), []write.Sample{{T: 1000, V: 1}}); err != nil {
		f.Fatal(err)
	}
	bs := sb.Batch()
	bs.Series[0].SetStartTimestamps([]int64{500, 500})
	f.Add(write.Append(nil, bs))
	f.Add(write.Compress(nil, write.Append(nil, bs)))
	bs.OutOfOrderWindowMs = 1000
	f.Add(write.Append(nil, bs))
	hst := hb.Batch()
	hst.OutOfOrderWindowMs = 0
	hst.Series[0].SetStartTimestamps([]int64{0, -1, 5, math.MinInt64})
	f.Add(write.Append(nil, hst))
	f.Add([]byte{8, 1, 1, 2, 4, 1, 't', 0, 0, 1, 1, 'x', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	// Version 9: prefix-coded label sets, as a node proposes every batch.
	var enc write.Encoder
	for _, b := range []*write.Batch{bb.Batch(), limited, hb.Batch(), bx, bs, hst} {
		f.Add(enc.Entry(b))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := write.Decode(data)
		if err != nil {
			if !errors.Is(err, write.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		for i := range b.Series {
			_, _ = b.Labels(i) // label sets are checked lazily: never panics
		}
		again := write.Append(nil, &b)
		b2, err := write.Decode(again)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if again2 := write.Append(nil, &b2); !bytes.Equal(again, again2) {
			t.Fatalf("encode/decode is not stable:\n%x\n%x", again, again2)
		}
		if b.Tenant != b2.Tenant || b.Limits != b2.Limits || b.OutOfOrderWindowMs != b2.OutOfOrderWindowMs || len(b.Series) != len(b2.Series) ||
			b.NumSamples() != b2.NumSamples() || b.NumHistograms() != b2.NumHistograms() || b.NumExemplars() != b2.NumExemplars() {
			t.Fatalf("batch changed in a round trip")
		}
		for i := range b.Series {
			if !slices.Equal(b.Series[i].StartTimestamps(), b2.Series[i].StartTimestamps()) {
				t.Fatalf("start timestamps of series %d changed in a round trip", i)
			}
		}
	})
}

// FuzzOutcomeDecode feeds arbitrary bytes to write.DecodeOutcome, the
// decoder of apply outcomes (the refusals a group leader sends back to
// the node that forwarded a write). It must not panic and fail only with
// write.ErrCorruptOutcome; what decodes re-encodes to an outcome with the
// same refusals, texts and sentinels, and that encoding is stable.
func FuzzOutcomeDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0})
	f.Add(write.AppendOutcome(nil, write.Outcome{Refused: []write.Refusal{
		{Series: 3, Rejected: 2, Err: fmt.Errorf("at 5: %w", write.ErrOutOfOrder)},
		{Series: 4, Rejected: 1, Err: errors.New("other")},
		{Series: 5, Rejected: 1, Err: write.ErrInvalidLabels},
		{Series: 6, Rejected: 2, Err: fmt.Errorf("%w: 10 series", write.ErrSeriesLimit)},
		{Series: 7, Rejected: 1, Err: write.ErrMetricSeriesLimit},
	}}))
	f.Add([]byte{1, 0, 0, 1, 0, 1, 6, 1, 'x'})
	_, corrupt := write.Decode([]byte{2, 0})
	f.Add(write.AppendOutcome(nil, write.Outcome{Err: fmt.Errorf("apply entry 9: %w", corrupt)}))
	sentinels := []error{write.ErrOutOfOrder, write.ErrDuplicateSample, write.ErrTooOld, write.ErrInvalidLabels, write.ErrCorrupt}
	same := func(a, b error) bool {
		if a == nil || b == nil {
			return a == b
		}
		for _, k := range sentinels {
			if errors.Is(a, k) != errors.Is(b, k) {
				return false
			}
		}
		return a.Error() == b.Error()
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := write.DecodeOutcome(data)
		if err != nil {
			if !errors.Is(err, write.ErrCorruptOutcome) {
				t.Fatalf("error %v does not match ErrCorruptOutcome", err)
			}
			return
		}
		enc := write.AppendOutcome(nil, o)
		again, err := write.DecodeOutcome(enc)
		if err != nil {
			t.Fatalf("re-encoded outcome does not decode: %v", err)
		}
		if !same(o.Err, again.Err) || len(again.Refused) != len(o.Refused) {
			t.Fatalf("outcome changed in a round trip: %+v, want %+v", again, o)
		}
		for i := range o.Refused {
			a, b := again.Refused[i], o.Refused[i]
			if a.Series != b.Series || a.Rejected != b.Rejected || !same(a.Err, b.Err) {
				t.Fatalf("refusal %d: %+v, want %+v", i, a, b)
			}
		}
		if enc2 := write.AppendOutcome(nil, again); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%x\n%x", enc, enc2)
		}
	})
}

// FuzzDeleteDecode feeds arbitrary bytes to the decoders of the deletion
// log entries (delete_series, tenant deletion, retention), read by every
// replica.
// They must not panic; an error must wrap write.ErrCorrupt; an entry
// that decodes re-encodes to the same bytes.
func FuzzDeleteDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{write.VersionDeleteSeries})
	f.Add([]byte{write.VersionDeleteTenant, 1, 't'})
	f.Add(write.AppendRetain(nil, write.Retain{Tenant: "t", Before: math.MinInt64}))
	f.Add(write.AppendRetain(nil, write.Retain{Tenant: "t", Before: 1, Period: 86_400_000}))
	f.Add(write.AppendDeleteSeries(nil, &write.DeleteSeries{
		Tenant: "tenant-a",
		Matchers: []*labels.Matcher{
			labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"),
			labels.MustNewMatcher(labels.MatchRegexp, "instance", "a:.*"),
			labels.MustNewMatcher(labels.MatchNotRegexp, "job", "x|y"),
		},
		Start: -1, End: math.MaxInt64,
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !write.IsDelete(data) {
			return
		}
		if data[0] == write.VersionRetain {
			r, err := write.DecodeRetain(data)
			if err != nil {
				if !errors.Is(err, write.ErrCorrupt) {
					t.Fatalf("error %v does not wrap ErrCorrupt", err)
				}
				return
			}
			if r2, err := write.DecodeRetain(write.AppendRetain(nil, r)); err != nil || r2 != r {
				t.Fatalf("re-encoded retain decodes to %+v, %v; want %+v", r2, err, r)
			}
			return
		}
		if data[0] == write.VersionDeleteTenant {
			tenant, err := write.DecodeDeleteTenant(data)
			if err != nil {
				if !errors.Is(err, write.ErrCorrupt) {
					t.Fatalf("error %v does not wrap ErrCorrupt", err)
				}
				return
			}
			// A longer uvarint decodes too; the shortest form round-trips.
			if t2, err := write.DecodeDeleteTenant(write.AppendDeleteTenant(nil, tenant)); err != nil || t2 != tenant {
				t.Fatalf("re-encoded tenant decodes to %q, %v; want %q", t2, err, tenant)
			}
			return
		}
		d, err := write.DecodeDeleteSeries(data)
		if err != nil {
			if !errors.Is(err, write.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := write.AppendDeleteSeries(nil, &d); !bytes.Equal(again, data) {
			// Varints have one shortest form; a longer one decodes too.
			d2, err := write.DecodeDeleteSeries(again)
			if err != nil || d2.String() != d.String() {
				t.Fatalf("re-encoded entry decodes to %v, %v; want %s", d2.String(), err, d.String())
			}
		}
	})
}
