package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/myelindb/myelin/server/limits"
	"github.com/myelindb/myelin/server/remotewrite"
	"github.com/myelindb/myelin/server/tenant"
	"github.com/myelindb/myelin/write"
)

// Backfill import of Prometheus text and OpenMetrics exposition with
// timestamps (docs/design.md "Import and export (issue 20 item 2)").
//
// The body is streamed: it is read in chunks of whole lines
// (ImportOptions.ChunkBytes), each parsed by Prometheus's own parser
// (model/textparse), and its samples gathered per series into batches of
// at most ImportOptions.BatchSamples samples. Each batch goes through the
// write handler's write, the path remote write takes: the same
// validation per series, series limits, ingestion rate and Writer. Only
// one chunk and one batch are held at a time, whatever the body's size.

// Content types of an import body.
const (
	importOpenMetrics = "application/openmetrics-text"
	importText        = "text/plain"
)

// Defaults of ImportOptions.
const (
	DefaultImportChunkBytes   = 1 << 20
	DefaultImportBatchSamples = 20_000
	DefaultImportBatchBytes   = 8 << 20
	// maxImportLineBytes: a longer line is refused (400).
	maxImportLineBytes = 1 << 20
)

// ImportOptions configure the import handler.
type ImportOptions struct {
	// ChunkBytes: the body is parsed this many bytes of whole lines at a
	// time. Zero means DefaultImportChunkBytes.
	ChunkBytes int
	// BatchSamples: samples written per batch, at most (and at most the
	// tenant's ingestion burst, or a batch would never be admitted).
	// Zero means DefaultImportBatchSamples.
	BatchSamples int
	// BatchBytes: a batch is written once its series and samples hold
	// about this many bytes, however few samples it has (a batch of
	// distinct series with long labels). Zero means
	// DefaultImportBatchBytes.
	BatchBytes int
}

// ImportHandler serves POST /api/v1/import/prometheus (VictoriaMetrics'
// path for the same input).
type ImportHandler struct {
	wh   *WriteHandler
	opts ImportOptions
}

// NewImportHandler returns the import handler writing through wh.
func NewImportHandler(wh *WriteHandler, opts ImportOptions) *ImportHandler {
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = DefaultImportChunkBytes
	}
	if opts.BatchSamples <= 0 {
		opts.BatchSamples = DefaultImportBatchSamples
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = DefaultImportBatchBytes
	}
	return &ImportHandler{wh: wh, opts: opts}
}

// ImportResult is the JSON answer of an import: what was read, written
// and refused, the refused samples per reason (the reasons of
// cortex_discarded_samples_total), the first refusal's text, and for a
// 400 the error naming the bad line.
type ImportResult struct {
	Status         string         `json:"status"` // "success" or "error"
	Error          string         `json:"error,omitempty"`
	Lines          int            `json:"lines"`
	SeriesWritten  int            `json:"seriesWritten"`
	SamplesWritten int            `json:"samplesWritten"`
	SamplesRefused int            `json:"samplesRefused"`
	Refused        map[string]int `json:"refused,omitempty"`
	FirstRefusal   string         `json:"firstRefusal,omitempty"`
}

// ServeHTTP imports the body into the request's tenant. It answers
//   - 200 with an ImportResult when the whole body was read: samples the
//     write path refused (out of order, older than the series' newest or
//     the retention, invalid series, series limits) are counted per
//     reason, the rest is written;
//   - 400 with an ImportResult whose error names the first bad line
//     (malformed, or a sample without a timestamp): every valid line
//     before it was written (the counts say so), nothing after it was
//     read. Re-sending from that line is safe: samples already written
//     are refused as duplicates, not doubled;
//   - 401 without a tenant, 415 for a content type other than text/plain
//     (Prometheus text) or application/openmetrics-text, 429 past the
//     node's in-flight push requests, 503 when a batch could not be made
//     durable (the counts say what was written before it).
//
// A batch refused by the tenant's ingestion rate waits for the rate and
// is sent again: an import is throttled to the rate, not refused.
func (h *ImportHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "import requires POST", http.StatusMethodNotAllowed)
		return
	}
	om, err := importContentType(r.Header.Get("Content-Type"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	}
	tenantID, err := tenant.FromRequest(r, h.wh.opts.MultiTenant)
	if err != nil {
		code, msg := tenantError(err)
		http.Error(w, msg, code)
		return
	}
	var t pushTicket
	if err := h.wh.limit.admit(&t); err != nil {
		http.Error(w, err.Error(), pushLimitCode)
		return
	}
	defer t.release()
	// An import holds one chunk, one line past it, the reader's buffer
	// and one batch (twice: its series and the request built from it),
	// whatever the body's size: that much of the node's in-flight bytes.
	if err := t.reserve(h.memoryBytes()); err != nil {
		http.Error(w, err.Error(), pushLimitCode)
		return
	}
	imp := &importer{h: h, tenant: tenantID, om: om, rc: http.NewResponseController(w),
		batchSamples: h.batchSamples(tenantID), series: map[string]int{}}
	code, err := imp.run(r.Context(), r.Body)
	res := imp.result
	res.Status = "success"
	if err != nil {
		res.Status, res.Error = "error", err.Error()
		if code >= 500 {
			h.wh.opts.Logger.Warn("import failed", "tenant", tenantID, "err", err)
		}
	}
	h.wh.opts.Tenants.Add(tenantID, res.SamplesWritten)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&res)
}

// memoryBytes is about the most memory one import holds.
func (h *ImportHandler) memoryBytes() int {
	return h.opts.ChunkBytes + maxImportLineBytes + importReadBytes + 2*h.opts.BatchBytes
}

// importReadBytes: the body is read through a buffer of this size.
const importReadBytes = 64 << 10

// batchSamples is the batch size for tenant: at most its ingestion burst.
func (h *ImportHandler) batchSamples(tenantID string) int {
	n := h.opts.BatchSamples
	if l := h.wh.opts.Limits.For(tenantID); l.IngestionRate > 0 && l.IngestionBurstSize > 0 {
		n = min(n, l.IngestionBurstSize)
	}
	return n
}

// importContentType reports whether ct names OpenMetrics (true) or the
// Prometheus text format (false, also for no Content-Type).
func importContentType(ct string) (bool, error) {
	if ct == "" {
		return false, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, fmt.Errorf("bad Content-Type %q: %v", ct, err)
	}
	switch mt {
	case importText:
		return false, nil
	case importOpenMetrics:
		return true, nil
	}
	return false, fmt.Errorf("unsupported Content-Type %q: want %s (Prometheus text format) or %s", ct, importText, importOpenMetrics)
}

// importer is one import request's state. Not safe for concurrent use.
type importer struct {
	h            *ImportHandler
	tenant       string
	om           bool
	rc           *http.ResponseController
	batchSamples int
	result       ImportResult

	// The batch being gathered: its series in order of first sample, by
	// key (write's label encoding).
	series  map[string]int
	batch   []importSeries
	samples int
	bytes   int // about the memory of batch and series
	// labels: the label arena of the batch's series (a new one when
	// full: earlier series keep theirs); scratch: the key being built.
	labels  []remotewrite.Label
	scratch []byte
	st      pushState
	// typeLine: the last "# TYPE" line read, repeated at the head of the
	// next chunk so that a family cut between chunks keeps its type.
	typeLine []byte
}

// importSeries is one series of a batch; its slices are its own.
type importSeries struct {
	labels  []remotewrite.Label
	key     []byte
	samples []write.Sample
}

// errImportLine is a bad line of an import body (400).
type errImportLine struct {
	line int
	err  error
}

func (e *errImportLine) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }

// run reads body to its end, writing batch after batch; it returns the
// status code to answer and the error that ended the import early.
func (imp *importer) run(ctx context.Context, body io.Reader) (int, error) {
	br := bufio.NewReaderSize(body, importReadBytes)
	chunkBytes := imp.h.opts.ChunkBytes
	var chunk []byte // grows to chunkBytes and a line: a small import allocates little
	line, first := 0, 1
	for {
		// A long import stays within the server's read and write
		// timeouts as long as it makes progress (error: the writer
		// does not support deadlines, as in tests).
		_ = imp.rc.SetReadDeadline(time.Now().Add(time.Minute))
		_ = imp.rc.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the reader's buffer: gather it.
			long := append([]byte(nil), b...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) <= maxImportLineBytes {
				b, err = br.ReadSlice('\n')
				long = append(long, b...)
			}
			if len(long) > maxImportLineBytes {
				code, werr := imp.flushAll(ctx, chunk, first)
				if werr != nil {
					return code, werr
				}
				return http.StatusBadRequest, &errImportLine{line + 1, fmt.Errorf("longer than %d bytes", maxImportLineBytes)}
			}
			b = long
		}
		if len(b) > 0 {
			line++
			chunk = append(chunk, b...)
			if len(b) > 0 && b[len(b)-1] != '\n' {
				chunk = append(chunk, '\n')
			}
		}
		end := err != nil
		if err != nil && err != io.EOF {
			code, werr := imp.flushAll(ctx, chunk, first)
			if werr != nil {
				return code, werr
			}
			return http.StatusBadRequest, fmt.Errorf("read body after line %d: %w", line, err)
		}
		if len(chunk) >= chunkBytes || end && len(chunk) > 0 {
			if code, err := imp.parse(ctx, chunk, first); err != nil {
				return code, err
			}
			chunk, first = chunk[:0], line+1
		}
		if end {
			break
		}
	}
	imp.result.Lines = line
	return imp.flush(ctx)
}

// flushAll parses what is left of the body before an error and writes
// everything gathered.
func (imp *importer) flushAll(ctx context.Context, chunk []byte, first int) (int, error) {
	if len(chunk) > 0 {
		if code, err := imp.parse(ctx, chunk, first); err != nil {
			return code, err
		}
	}
	return imp.flush(ctx)
}

// parse adds the samples of chunk, whole lines from line first on, to the
// batch, writing it whenever it is full. A parse error writes the samples
// before it and answers 400 naming the bad line.
func (imp *importer) parse(ctx context.Context, chunk []byte, first int) (int, error) {
	in := chunk
	prefix := 0
	if imp.om {
		// Each chunk is a document of its own: the family's type
		// before it, # EOF after it unless it has one.
		if len(imp.typeLine) > 0 {
			in = append(append([]byte(nil), imp.typeLine...), chunk...)
			prefix = 1
		}
		if !bytes.Contains(chunk, []byte("# EOF")) {
			in = append(in, "# EOF\n"...)
		}
	}
	p := imp.parser(in)
	var ls labels.Labels
	entries := 0
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return http.StatusOK, nil
		}
		if err != nil {
			// The samples before the bad line are written; the line is
			// found by parsing the chunk's lines one by one.
			code, werr := imp.flush(ctx)
			if werr != nil {
				return code, werr
			}
			imp.result.Lines = first - 1 + badLineOffset(imp, chunk)
			return http.StatusBadRequest, &errImportLine{imp.result.Lines, err}
		}
		entries++
		switch e {
		case textparse.EntryType:
			if imp.om {
				name, typ := p.Type()
				imp.typeLine = append(imp.typeLine[:0], "# TYPE "...)
				if model.LegacyValidation.IsValidMetricName(string(name)) {
					imp.typeLine = append(imp.typeLine, name...)
				} else {
					imp.typeLine = appendTextString(imp.typeLine, string(name))
				}
				imp.typeLine = fmt.Appendf(imp.typeLine, " %s\n", typ)
			}
			continue
		case textparse.EntrySeries:
		case textparse.EntryHistogram:
			imp.result.SamplesRefused++
			imp.refused("native_histogram", "native histograms are not supported yet by the import: a native histogram sample was not written")
			continue
		default:
			continue
		}
		_, ts, v := p.Series()
		p.Labels(&ls)
		if ts == nil {
			code, werr := imp.flush(ctx)
			if werr != nil {
				return code, werr
			}
			line := first - 1 + findSampleLine(imp, chunk, entries-prefix)
			imp.result.Lines = line
			return http.StatusBadRequest, &errImportLine{line, fmt.Errorf("sample of %s has no timestamp: an import needs one per sample", ls.String())}
		}
		imp.add(ls, *ts, v)
		if imp.samples >= imp.batchSamples || imp.bytes >= imp.h.opts.BatchBytes {
			if code, err := imp.flush(ctx); err != nil {
				return code, err
			}
		}
	}
}

// parser returns Prometheus's parser of the body's format over b.
func (imp *importer) parser(b []byte) textparse.Parser {
	if imp.om {
		return textparse.NewOpenMetricsParser(b, nil, textparse.WithOMParserSTSeriesSkipped())
	}
	return textparse.NewPromParser(b, nil, false)
}

// badLineOffset returns the 1-based line of chunk that does not parse on
// its own, or the chunk's last line if each does (an error of context,
// such as OpenMetrics' order of families).
func badLineOffset(imp *importer, chunk []byte) int {
	n := 0
	for rest := chunk; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		l := rest[:i+1]
		rest = rest[i+1:]
		n++
		in := append([]byte(nil), l...)
		if imp.om && !bytes.HasPrefix(l, []byte("# EOF")) {
			in = append(in, "# EOF\n"...)
		}
		p := imp.parser(in)
		for {
			_, err := p.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return n
			}
		}
	}
	return n
}

// findSampleLine returns the 1-based line of chunk holding its entry'th
// parser entry (blank lines hold none).
func findSampleLine(imp *importer, chunk []byte, entry int) int {
	n, seen := 0, 0
	for rest := chunk; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		l := rest[:i]
		rest = rest[i+1:]
		n++
		if len(bytes.TrimSpace(l)) == 0 || imp.om && bytes.HasPrefix(l, []byte("# EOF")) {
			continue
		}
		if seen++; seen == entry {
			return n
		}
	}
	return n
}

// add puts the sample (t, v) of series ls into the batch. Staleness
// markers cannot be written in the text formats; a NaN is stored as read.
func (imp *importer) add(ls labels.Labels, t int64, v float64) {
	key := imp.scratch[:0]
	nl := 0
	ls.Range(func(l labels.Label) {
		if l.Value == "" {
			return
		}
		key = write.AppendLabel(key, bytesOf(l.Name), bytesOf(l.Value))
		nl++
	})
	imp.scratch = key
	i, ok := imp.series[string(key)] // no allocation for the lookup
	if !ok {
		// One allocation for the key; the labels are sub-slices of it
		// (name, 0xff, value, 0xff each: write.AppendLabel), in a slice
		// of the batch's label arena.
		own := append([]byte(nil), key...)
		if len(imp.labels)+nl > cap(imp.labels) {
			imp.labels = make([]remotewrite.Label, 0, max(nl, 1024))
		}
		l0, off := len(imp.labels), 0
		ls.Range(func(l labels.Label) {
			if l.Value == "" {
				return
			}
			name := own[off : off+len(l.Name) : off+len(l.Name)]
			off += len(l.Name) + 1
			value := own[off : off+len(l.Value) : off+len(l.Value)]
			off += len(l.Value) + 1
			imp.labels = append(imp.labels, remotewrite.Label{Name: name, Value: value})
		})
		s := importSeries{key: own, labels: imp.labels[l0:len(imp.labels):len(imp.labels)]}
		i = len(imp.batch)
		imp.batch = append(imp.batch, s)
		imp.series[string(own)] = i
		// The key twice (map and series), the labels' headers, the
		// series and its map entry.
		imp.bytes += 2*len(own) + 48*nl + 200
	}
	imp.batch[i].samples = append(imp.batch[i].samples, write.Sample{T: t, V: v})
	imp.samples++
	imp.bytes += 16
}

// flush writes the batch, each series' samples in time order, through
// the write handler's write, waiting for the tenant's ingestion rate if
// it must, and adds what happened to the result.
func (imp *importer) flush(ctx context.Context) (int, error) {
	if len(imp.batch) == 0 {
		return http.StatusOK, nil
	}
	req := &imp.st.req
	req.Reset()
	req.Proto = remotewrite.ProtoV1
	for i := range imp.batch {
		s := &imp.batch[i]
		slices.SortStableFunc(s.samples, func(a, b write.Sample) int { return cmpInt64(a.T, b.T) })
		req.Series = append(req.Series, remotewrite.Series{Labels: s.labels, Samples: s.samples, Key: s.key, KeyLabels: int32(len(s.labels))})
	}
	for {
		res, err := imp.h.wh.write(ctx, imp.tenant, &imp.st)
		if errors.Is(err, limits.ErrIngestionRate) {
			if werr := imp.waitRate(ctx); werr != nil {
				return http.StatusServiceUnavailable, fmt.Errorf("wait for the ingestion rate: %w", werr)
			}
			continue
		}
		if err != nil {
			code := http.StatusInternalServerError
			if retryable(err) {
				code = http.StatusServiceUnavailable
			}
			return code, fmt.Errorf("write batch: %w", err)
		}
		imp.count(res)
		break
	}
	clear(imp.st.batch)
	imp.st.batch = imp.st.batch[:0]
	clear(imp.series)
	clear(imp.batch)
	imp.batch, imp.samples, imp.bytes = imp.batch[:0], 0, 0
	imp.labels = nil // the written batch's series keep the old arena
	return http.StatusOK, nil
}

// waitRate sleeps for about the time the tenant's rate takes to admit a
// batch.
func (imp *importer) waitRate(ctx context.Context) error {
	l := imp.h.wh.opts.Limits.For(imp.tenant)
	wait := time.Second
	if l.IngestionRate > 0 {
		nodes := max(imp.h.wh.opts.ActiveNodes(), 1)
		wait = time.Duration(float64(imp.samples) / (l.IngestionRate / float64(nodes)) * float64(time.Second))
		wait = min(max(wait, 10*time.Millisecond), 10*time.Second)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// count adds res to the import's result.
func (imp *importer) count(res *writeResult) {
	r := &imp.result
	r.SeriesWritten += res.series
	r.SamplesWritten += res.samples
	r.SamplesRefused += res.badSamples
	for i, n := range res.discarded {
		if n > 0 {
			if r.Refused == nil {
				r.Refused = map[string]int{}
			}
			r.Refused[discardReasons[i].name] += n
		}
	}
	if r.FirstRefusal == "" && res.firstErr != nil {
		r.FirstRefusal = res.firstErr.Error()
	}
}

// refused counts one sample refused by the importer itself under reason.
func (imp *importer) refused(reason, msg string) {
	r := &imp.result
	if r.Refused == nil {
		r.Refused = map[string]int{}
	}
	r.Refused[reason]++
	if r.FirstRefusal == "" {
		r.FirstRefusal = msg
	}
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
