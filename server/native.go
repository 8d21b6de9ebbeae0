package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/protobuf/encoding/protowire"
)

// The native export format (docs/design.md "Import and export"): what the
// text format cannot carry (staleness markers, native histograms, the
// exact bits of every float) travels as remote write 2.0 requests. A
// stream is NativeMagic followed by frames, each a uvarint length and a
// snappy-compressed io.prometheus.write.v2.Request: exactly the body a
// remote write 2.0 sender posts to /api/v1/push, so importing a stream
// is posting its frames, through the write path every sample takes.

// NativeMagic starts a native stream; its version is the format's.
const NativeMagic = "MYELIN-NATIVE 1\n"

// NativeContentType is the Content-Type of a native stream.
const NativeContentType = "application/vnd.myelin.native; version=1"

// DefaultNativeFrameSamples: samples (floats and histograms) a frame
// holds at most, in the order of remote write's own batches.
const DefaultNativeFrameSamples = 10_000

// maxNativeFrameBytes: a longer frame is refused when read (a push body
// is at most that long as well).
const maxNativeFrameBytes = 64 << 20

// NativeWriter writes series into native frames. A series longer than a
// frame continues in the next one; a series whose samples switch between
// floats and histograms is cut into a time series per run, as remote
// write 2.0 wants (a time series holds samples or histograms, not both).
type NativeWriter struct {
	emit      func(frame []byte) error
	maxSample int

	syms    writev2.SymbolsTable
	series  []byte // encoded TimeSeries fields of the frame
	refs    []uint32
	samples int // in the frame
	// Counts, for the caller's report.
	Samples, Histograms, Series int

	ts            []byte // the time series being built, if open
	open          bool
	tsKind        chunkenc.ValueType
	tsLabels      labels.Labels
	hist          writev2.Histogram
	histBuf, comp []byte
	frame         []byte
}

// NewNativeWriter returns a writer that hands each frame (length prefix
// included) to emit, which must not keep it. frameSamples <= 0 means
// DefaultNativeFrameSamples.
func NewNativeWriter(emit func(frame []byte) error, frameSamples int) *NativeWriter {
	if frameSamples <= 0 {
		frameSamples = DefaultNativeFrameSamples
	}
	return &NativeWriter{emit: emit, maxSample: frameSamples, syms: writev2.NewSymbolTable()}
}

// WriteSeries writes the samples of it in [mint, maxt] as series ls.
// Staleness markers are samples like any other.
func (n *NativeWriter) WriteSeries(ls labels.Labels, it chunkenc.Iterator, mint, maxt int64) error {
	wrote := false
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		t := it.AtT()
		if t < mint || t > maxt {
			continue
		}
		if n.samples >= n.maxSample {
			if err := n.Flush(); err != nil {
				return err
			}
		}
		if !n.open || vt != n.tsKind {
			n.endSeries()
			n.startSeries(ls, vt)
		}
		switch vt {
		case chunkenc.ValFloat:
			_, v := it.At()
			n.appendSample(t, v)
			n.Samples++
		case chunkenc.ValHistogram:
			_, h := it.AtHistogram(nil)
			n.hist = writev2.FromIntHistogram(0, t, h)
			n.appendHistogram()
			n.Histograms++
		case chunkenc.ValFloatHistogram:
			_, fh := it.AtFloatHistogram(nil)
			n.hist = writev2.FromFloatHistogram(0, t, fh)
			n.appendHistogram()
			n.Histograms++
		default:
			return fmt.Errorf("series %s: unknown value type %v", ls, vt)
		}
		n.samples++
		wrote = true
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read series %s: %w", ls, err)
	}
	n.endSeries()
	if wrote {
		n.Series++
	}
	return nil
}

// startSeries begins a time series of kind vt for ls in the frame.
func (n *NativeWriter) startSeries(ls labels.Labels, vt chunkenc.ValueType) {
	n.tsKind, n.tsLabels, n.open = vt, ls, true
	n.refs = n.syms.SymbolizeLabels(ls, n.refs)
	n.ts = n.ts[:0]
	// labels_refs = 1, packed.
	packed := 0
	for _, r := range n.refs {
		packed += protowire.SizeVarint(uint64(r))
	}
	n.ts = protowire.AppendTag(n.ts, 1, protowire.BytesType)
	n.ts = protowire.AppendVarint(n.ts, uint64(packed))
	for _, r := range n.refs {
		n.ts = protowire.AppendVarint(n.ts, uint64(r))
	}
}

// appendSample adds Sample{value = 1, timestamp = 2} to the time series,
// the value's bits as they are (-0 included, which a generated encoder
// would leave out as proto3's default).
func (n *NativeWriter) appendSample(t int64, v float64) {
	size := protowire.SizeTag(1) + 8 + protowire.SizeTag(2) + protowire.SizeVarint(uint64(t))
	n.ts = protowire.AppendTag(n.ts, 2, protowire.BytesType)
	n.ts = protowire.AppendVarint(n.ts, uint64(size))
	n.ts = protowire.AppendTag(n.ts, 1, protowire.Fixed64Type)
	n.ts = protowire.AppendFixed64(n.ts, math.Float64bits(v))
	n.ts = protowire.AppendTag(n.ts, 2, protowire.VarintType)
	n.ts = protowire.AppendVarint(n.ts, uint64(t))
}

// appendHistogram adds n.hist to the time series (histograms = 3).
func (n *NativeWriter) appendHistogram() {
	size := n.hist.Size()
	n.histBuf = append(n.histBuf[:0], make([]byte, size)...)
	if _, err := n.hist.MarshalToSizedBuffer(n.histBuf); err != nil {
		panic(err) // a sized buffer of Size() bytes cannot be short
	}
	n.ts = protowire.AppendTag(n.ts, 3, protowire.BytesType)
	n.ts = protowire.AppendBytes(n.ts, n.histBuf)
}

// endSeries moves the time series being built into the frame.
func (n *NativeWriter) endSeries() {
	if !n.open {
		return
	}
	n.open = false
	n.series = protowire.AppendTag(n.series, 5, protowire.BytesType) // timeseries = 5
	n.series = protowire.AppendBytes(n.series, n.ts)
	n.ts = n.ts[:0]
}

// Flush emits the frame built so far, if it holds anything; the series
// being written continues in the next frame.
func (n *NativeWriter) Flush() error {
	cont := n.open
	n.endSeries()
	if len(n.series) > 0 {
		// Request: symbols = 4 (repeated string), timeseries = 5.
		req := n.frame[:0]
		for _, s := range n.syms.Symbols() {
			req = protowire.AppendTag(req, 4, protowire.BytesType)
			req = protowire.AppendString(req, s)
		}
		req = append(req, n.series...)
		n.frame = req
		n.comp = snappy.Encode(n.comp[:cap(n.comp)], req)
		out := binary.AppendUvarint(make([]byte, 0, len(n.comp)+binary.MaxVarintLen64), uint64(len(n.comp)))
		out = append(out, n.comp...)
		if err := n.emit(out); err != nil {
			return err
		}
	}
	n.syms.Reset()
	n.series = n.series[:0]
	n.samples = 0
	if cont {
		n.startSeries(n.tsLabels, n.tsKind)
	}
	return nil
}

// AppendNativeError appends the trailer that ends a native stream whose
// writer failed after it began: a frame of length 0 (a writer never
// emits an empty one), then the text's length and the text.
func AppendNativeError(b []byte, text string) []byte {
	b = binary.AppendUvarint(b, 0)
	b = binary.AppendUvarint(b, uint64(len(text)))
	return append(b, text...)
}

// ErrNativeFormat: the stream is not in the native format.
var ErrNativeFormat = errors.New("not a native export stream (it starts with " + fmt.Sprintf("%q", NativeMagic) + ")")

// ReadNativeFrames reads a native stream from r and calls fn with each
// frame's remote write 2.0 body (snappy-compressed, as posted to
// /api/v1/push), which fn must not keep. It stops at fn's first error,
// and fails at an error trailer (AppendNativeError) with its text.
func ReadNativeFrames(r io.Reader, fn func(body []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(NativeMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != NativeMagic {
		return ErrNativeFormat
	}
	var buf []byte
	for frame := 1; ; frame++ {
		n, err := binary.ReadUvarint(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("frame %d: length: %w", frame, noEOF(err))
		}
		if n == 0 {
			m, err := binary.ReadUvarint(br)
			if err != nil || m > 1<<20 {
				return fmt.Errorf("frame %d: a broken error trailer", frame)
			}
			text := make([]byte, m)
			if _, err := io.ReadFull(br, text); err != nil {
				return fmt.Errorf("frame %d: a broken error trailer", frame)
			}
			return fmt.Errorf("the stream ends with the writer's error: %s", text)
		}
		if n > maxNativeFrameBytes {
			return fmt.Errorf("frame %d: %d bytes, more than the %d a frame may have", frame, n, maxNativeFrameBytes)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("frame %d: %w", frame, noEOF(err))
		}
		if err := fn(buf); err != nil {
			return err
		}
	}
}

// noEOF turns an end of input inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
