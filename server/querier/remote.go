package querier

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	myelinchunk "github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server/limits"
)

// ErrRemote: the remote node answered a call with an error (the message
// is its error text).
var ErrRemote = errors.New("querier: remote error")

// Remote is a storage.Querier over one group served by another node,
// through the remote protocol (doc.go). Calls may run concurrently.
//
// Locking: mu guards the set of response bodies still open.
type Remote struct {
	c             *http.Client
	baseURL       string
	group         ring.GroupID
	tenant        string
	mint, maxt    int64
	answerTimeout time.Duration // 0: no bound of its own
	mu            struct {
		sync.Mutex
		open   map[*remoteSet]struct{}
		closed bool
	}
}

var _ storage.Querier = (*Remote)(nil)

// NewRemote returns a querier over tenant's data in group g in [mint,
// maxt], served by the node at baseURL (e.g. "http://node-2", no trailing
// slash) through c.
func NewRemote(c *http.Client, baseURL string, g ring.GroupID, tenant string, mint, maxt int64) *Remote {
	return &Remote{c: c, baseURL: baseURL, group: g, tenant: tenant, mint: mint, maxt: maxt}
}

// WithAnswerTimeout bounds how long each call waits for the node's answer
// to start (the status and the version byte; a stream may then take as
// long as ctx allows): a node that is frozen or cut off fails the call
// within d, so the caller can try another. Returns r.
func (r *Remote) WithAnswerTimeout(d time.Duration) *Remote {
	r.answerTimeout = d
	return r
}

// Close closes the response bodies of selects not read to the end; their
// series must not be iterated after it. Idempotent.
func (r *Remote) Close() error {
	r.mu.Lock()
	open := r.mu.open
	r.mu.open, r.mu.closed = nil, true
	r.mu.Unlock()
	var errs []error
	for s := range open {
		s.aborted.Store(true)
		errs = append(errs, s.body.Close())
	}
	return errors.Join(errs...)
}

// call posts req to path and returns the response body after its version
// byte, or the error the node answered.
func (r *Remote) call(ctx context.Context, path string, req *request) (io.ReadCloser, *bufio.Reader, error) {
	r.mu.Lock()
	closed := r.mu.closed
	r.mu.Unlock()
	if closed {
		return nil, nil, errors.New("querier: remote querier closed")
	}
	req.group, req.tenant, req.mint, req.maxt = r.group, r.tenant, r.mint, r.maxt
	body := appendRequest(nil, path, req)
	ctx, cancel := context.WithCancel(ctx)
	var timer *time.Timer
	if r.answerTimeout > 0 {
		timer = time.AfterFunc(r.answerTimeout, cancel)
	}
	rc, br, err := r.start(ctx, path, body)
	if timer != nil && !timer.Stop() && err != nil {
		err = fmt.Errorf("no answer within %v: %w", r.answerTimeout, err)
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return cancelBody{ReadCloser: rc, cancel: cancel}, br, nil
}

// start posts body to path and reads the response's status and version.
func (r *Remote) start(ctx context.Context, path string, body []byte) (io.ReadCloser, *bufio.Reader, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, r.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	hreq.Header.Set("Content-Type", "application/x-myelin-querier")
	resp, err := r.c.Do(hreq)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusUnprocessableEntity {
			// A query limit: its text is the limit's error.
			return nil, nil, limits.NewQueryLimitError(string(bytes.TrimSpace(msg)))
		}
		return nil, nil, fmt.Errorf("%w: status %d: %s", ErrRemote, resp.StatusCode, bytes.TrimSpace(msg))
	}
	br := bufio.NewReaderSize(resp.Body, 32<<10)
	v, err := br.ReadByte()
	if err == nil && v != Version && v != VersionHistograms && v != VersionFloats {
		err = fmt.Errorf("%w: response version %d, want %d to %d", ErrCorrupt, v, VersionFloats, Version)
	}
	if err != nil {
		_ = resp.Body.Close()
		return nil, nil, cutShort(err)
	}
	return resp.Body, br, nil
}

// cancelBody is a response body whose Close also ends its request's
// context.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func (r *Remote) errorf(op string, err error) error {
	return fmt.Errorf("remote %s of group %d at %s: %w", op, r.group, r.baseURL, err)
}

// Select implements storage.Querier. It sends the request and waits for
// the response to start; the series are decoded from the body as the set
// is iterated, and their chunks when the series are.
func (r *Remote) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	budget := limits.QueryBudgetFrom(ctx)
	maxSeries, _ := budget.Limits()
	body, br, err := r.call(ctx, PathSelect, &request{matchers: ms, sortSeries: sortSeries, hints: hints, maxSeries: maxSeries})
	if err != nil {
		return storage.ErrSeriesSet(r.errorf("select", err))
	}
	s := &remoteSet{r: r, body: body, fr: frameReader{br: br}, budget: budget}
	r.mu.Lock()
	if r.mu.open == nil {
		r.mu.open = map[*remoteSet]struct{}{}
	}
	r.mu.open[s] = struct{}{}
	r.mu.Unlock()
	return s
}

// LabelNames implements storage.LabelQuerier.
func (r *Remote) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	out, ws, err := r.strings(ctx, PathLabels, &request{matchers: ms, limit: limitOf(hints)})
	if err != nil {
		return nil, nil, r.errorf("label names", err)
	}
	return out, ws, nil
}

// LabelValues implements storage.LabelQuerier.
func (r *Remote) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	out, ws, err := r.strings(ctx, PathValues, &request{matchers: ms, name: name, limit: limitOf(hints)})
	if err != nil {
		return nil, nil, r.errorf("label values of "+name, err)
	}
	return out, ws, nil
}

func limitOf(h *storage.LabelHints) int {
	if h == nil {
		return 0
	}
	return h.Limit
}

func (r *Remote) strings(ctx context.Context, path string, req *request) ([]string, annotations.Annotations, error) {
	body, br, err := r.call(ctx, path, req)
	if err != nil {
		return nil, nil, err
	}
	defer body.Close()
	fr := frameReader{br: br}
	var out []string
	for {
		kind, err := fr.byte()
		if err != nil {
			return nil, nil, err
		}
		switch kind {
		case frameString:
			s, err := fr.string()
			if err != nil {
				return nil, nil, err
			}
			out = append(out, s)
		case frameTrailer:
			ws, err := fr.trailer(uint64(len(out)))
			if err != nil {
				return nil, nil, err
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return nil, nil, fmt.Errorf("%w: bytes after the trailer", ErrCorrupt)
			}
			return out, ws, nil
		default:
			return nil, nil, fmt.Errorf("%w: frame kind %q in a label response", ErrCorrupt, kind)
		}
	}
}

// remoteSet decodes a select response. Series returned by At stay valid
// after Next (PromQL collects all series before iterating them): each
// owns its labels and its chunks' bytes, which it shares with other series
// in slabs of slabBytes.
type remoteSet struct {
	r    *Remote
	body io.ReadCloser
	fr   frameReader
	next byte // kind of the frame read ahead, 0 if none
	n    uint64
	cur  *remoteSeries
	sb   labels.ScratchBuilder
	slab []byte
	done bool
	err  error
	ws   annotations.Annotations
	// budget counts the chunk bytes received against the query's
	// limit: reading stops past it, so a select holds at most the limit
	// (nil: no limit).
	budget *limits.QueryBudget
	// aborted: the querier was closed before the set was read to the end.
	// Set by Close from any goroutine; the body may already be buffered,
	// so Next checks it rather than wait for a read to fail.
	aborted atomic.Bool
}

const slabBytes = 64 << 10

func (s *remoteSet) Next() bool {
	if s.done {
		return false
	}
	if s.aborted.Load() {
		s.finish(errors.New("querier closed"))
		return false
	}
	kind := s.next
	s.next = 0
	var err error
	if kind == 0 {
		if kind, err = s.fr.byte(); err != nil {
			s.finish(err)
			return false
		}
	}
	switch kind {
	case frameSeries:
		if s.cur, err = s.readSeries(); err != nil {
			s.finish(err)
			return false
		}
		s.n++
		return true
	case frameTrailer:
		s.ws, err = s.fr.trailer(s.n)
		s.finish(err)
		return false
	default:
		s.finish(fmt.Errorf("%w: frame kind %q in a select response", ErrCorrupt, kind))
		return false
	}
}

// readSeries reads a series frame (after its kind) and its chunk frames.
func (s *remoteSet) readSeries() (*remoteSeries, error) {
	n, err := s.fr.uvarint()
	if err != nil {
		return nil, err
	}
	if n > maxLabels {
		return nil, fmt.Errorf("%w: %d labels", ErrCorrupt, n)
	}
	s.sb.Reset()
	for range n {
		name, err := s.fr.string()
		if err != nil {
			return nil, err
		}
		value, err := s.fr.string()
		if err != nil {
			return nil, err
		}
		s.sb.Add(name, value)
	}
	rs := &remoteSeries{lset: s.sb.Labels()}
	for {
		kind, err := s.fr.byte()
		if err != nil {
			return nil, err
		}
		if kind == frameST && len(rs.chunks) > 0 && rs.chunks[len(rs.chunks)-1].sts == nil {
			sts, err := s.readSTs()
			if err != nil {
				return nil, err
			}
			rs.chunks[len(rs.chunks)-1].sts = sts
			continue
		}
		if kind != frameChunk && kind != frameHist {
			s.next = kind
			return rs, nil
		}
		var hist byte // 0: a float chunk
		if kind == frameHist {
			if hist, err = s.fr.byte(); err != nil {
				return nil, err
			}
			if hist != histInteger && hist != histFloat {
				return nil, fmt.Errorf("%w: histogram chunk encoding %d", ErrCorrupt, hist)
			}
		}
		mint, err := s.fr.varint()
		if err != nil {
			return nil, err
		}
		d, err := s.fr.uvarint()
		if err != nil {
			return nil, err
		}
		size, err := s.fr.uvarint()
		if err != nil {
			return nil, err
		}
		if size > maxStringBytes || size < 2 {
			return nil, fmt.Errorf("%w: chunk of %d bytes", ErrCorrupt, size)
		}
		if err := s.budget.AddChunkBytes(int(size)); err != nil {
			return nil, err
		}
		// A float chunk is stored behind Myelin's EncXOR byte, for
		// chunksIterator; a histogram chunk behind its 'H' encoding.
		need := 1 + int(size)
		if cap(s.slab)-len(s.slab) < need {
			s.slab = make([]byte, 0, max(slabBytes, need))
		}
		start := len(s.slab)
		s.slab = append(s.slab, byte(myelinchunk.EncXOR))
		s.slab = s.slab[:start+need]
		data := s.slab[start:len(s.slab):len(s.slab)]
		if _, err := io.ReadFull(s.fr.br, data[1:]); err != nil {
			return nil, cutShort(err)
		}
		rs.chunks = append(rs.chunks, wireChunk{mint: mint, maxt: mint + int64(d), data: data, hist: hist})
	}
}

// maxChunkSamples bounds the start timestamps of one chunk: a chunk's
// sample count is a uint16.
const maxChunkSamples = 1<<16 - 1

// readSTs reads a 'P' frame after its kind: the start timestamps of the
// chunk before it.
func (s *remoteSet) readSTs() ([]int64, error) {
	n, err := s.fr.uvarint()
	if err != nil {
		return nil, err
	}
	if n == 0 || n > maxChunkSamples {
		return nil, fmt.Errorf("%w: %d start timestamps for a chunk", ErrCorrupt, n)
	}
	sts := make([]int64, n)
	prev := int64(0)
	for i := range sts {
		d, err := s.fr.varint()
		if err != nil {
			return nil, err
		}
		prev += d
		sts[i] = prev
	}
	return sts, nil
}

// finish ends the stream: err nil means a complete one.
func (s *remoteSet) finish(err error) {
	s.done = true
	s.cur = nil
	if err == nil {
		// The trailer is the last byte: anything after it is corrupt.
		if _, e := s.fr.br.ReadByte(); e != io.EOF {
			err = fmt.Errorf("%w: bytes after the trailer", ErrCorrupt)
		}
	}
	if err != nil {
		s.err = s.r.errorf("select", err)
	}
	s.r.mu.Lock()
	delete(s.r.mu.open, s)
	s.r.mu.Unlock()
	_ = s.body.Close() // read to the end or failed: nothing to report
}

func (s *remoteSet) At() storage.Series                { return s.cur }
func (s *remoteSet) Err() error                        { return s.err }
func (s *remoteSet) Warnings() annotations.Annotations { return s.ws }

// wireChunk is one chunk of a remote series; data starts with Myelin's
// EncXOR byte, then the Prometheus XOR chunk, or for a histogram chunk
// (hist histInteger or histFloat) a byte to skip, then Prometheus's
// histogram chunk.
type wireChunk struct {
	mint, maxt int64
	data       []byte
	hist       byte
	sts        []int64 // its samples' start timestamps, nil for none ('P')
}

type remoteSeries struct {
	lset   labels.Labels
	chunks []wireChunk
}

func (s *remoteSeries) Labels() labels.Labels { return s.lset }

// Iterator implements storage.Series; it reuses it if it is one of ours.
func (s *remoteSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	ci, ok := it.(*chunksIterator)
	if !ok {
		ci = &chunksIterator{}
	}
	ci.reset(s.chunks)
	return ci
}

// chunksIterator iterates the samples of a series' chunks, decoding each
// when it reaches it. Decoding uses Myelin's chunkenc.Iterator (a wire
// chunk is stored behind its EncXOR byte), which reads Prometheus XOR
// chunks as they are and reports a chunk that ends before its sample
// count as corrupt. It costs the same as Prometheus's iterator here
// (0.27 vs 0.26 s of CPU in BenchmarkRemoteSelect/remote's profile); it
// was chosen to share one decoder, tested and fuzzed, with the engine.
//
// INVARIANT: chunks are in time order and do not overlap (the handler cuts
// them from one series iterator).
type chunksIterator struct {
	chunks []wireChunk
	i      int // current chunk, -1 before the first
	cur    myelinchunk.Iterator
	// hcur iterates the current chunk when it is a histogram chunk
	// (chunks[i].hist != 0), with Prometheus's iterator; vt is the type
	// of its current sample.
	hcur  chunkenc.Iterator
	vt    chunkenc.ValueType
	valid bool // cur (or hcur) is at a sample
	k     int  // index of the current sample in the current chunk
	err   error
}

// isHist reports whether the current chunk is a histogram chunk.
func (ci *chunksIterator) isHist() bool { return ci.chunks[ci.i].hist != 0 }

func (ci *chunksIterator) reset(chunks []wireChunk) {
	ci.chunks, ci.i, ci.valid, ci.err = chunks, -1, false, nil
}

// nextChunk moves to the next chunk; false at the end or on an error.
func (ci *chunksIterator) nextChunk() bool {
	if ci.i+1 >= len(ci.chunks) {
		ci.i = len(ci.chunks)
		return false
	}
	ci.i++
	ci.k = -1
	c := ci.chunks[ci.i]
	if c.hist == 0 {
		ci.cur.Reset(c.data)
		return ci.checkErr()
	}
	enc := chunkenc.EncHistogram
	if c.hist == histFloat {
		enc = chunkenc.EncFloatHistogram
	}
	hc, err := chunkenc.FromData(enc, c.data[1:])
	if err != nil {
		ci.err = fmt.Errorf("decode chunk %d: %w", ci.i, err)
		return false
	}
	ci.hcur = hc.Iterator(ci.hcur)
	return true
}

// checkErr records the current chunk iterator's error; false if there is
// one.
func (ci *chunksIterator) checkErr() bool {
	var err error
	if ci.i >= 0 && ci.i < len(ci.chunks) && ci.isHist() {
		err = ci.hcur.Err()
	} else {
		err = ci.cur.Err()
	}
	if err != nil {
		ci.err = fmt.Errorf("decode chunk %d: %w", ci.i, err)
		return false
	}
	return true
}

func (ci *chunksIterator) Next() chunkenc.ValueType {
	ci.valid = false
	if ci.err != nil {
		return chunkenc.ValNone
	}
	for {
		if ci.i >= 0 && ci.i < len(ci.chunks) {
			if ci.isHist() {
				if vt := ci.hcur.Next(); vt != chunkenc.ValNone {
					ci.valid, ci.vt = true, vt
					ci.k++
					return vt
				}
			} else if ci.cur.Next() {
				ci.valid, ci.vt = true, chunkenc.ValFloat
				ci.k++
				return chunkenc.ValFloat
			}
			if !ci.checkErr() {
				return chunkenc.ValNone
			}
		}
		if !ci.nextChunk() {
			return chunkenc.ValNone
		}
	}
}

// millis is int64 under another name: go vet's stdmethods check wants
// every Seek(int64, ...) to be io.Seeker's (as in engine/iterator.go).
type millis = int64

// Seek implements chunkenc.Iterator: it moves to the first sample at or
// after t, never backwards, skipping whole chunks by their maxt.
func (ci *chunksIterator) Seek(t millis) chunkenc.ValueType {
	if ci.err != nil {
		return chunkenc.ValNone
	}
	if ci.valid {
		if ci.AtT() >= t {
			return ci.vt
		}
	}
	ci.valid = false
	// Skip the chunks that end before t without decoding them.
	for ci.i < 0 || (ci.i < len(ci.chunks) && ci.chunks[ci.i].maxt < t) {
		if !ci.nextChunk() {
			return chunkenc.ValNone
		}
	}
	if ci.i >= len(ci.chunks) {
		return chunkenc.ValNone
	}
	if ci.chunks[ci.i].sts != nil {
		// Step, counting the samples for AtST: the chunk iterators'
		// Seek does not say how many it passed.
		for {
			vt := ci.Next()
			if vt == chunkenc.ValNone || ci.AtT() >= t {
				return vt
			}
		}
	}
	if ci.isHist() {
		if vt := ci.hcur.Seek(t); vt != chunkenc.ValNone {
			ci.valid, ci.vt = true, vt
			return vt
		}
	} else if ci.cur.Seek(t) {
		ci.valid, ci.vt = true, chunkenc.ValFloat
		return chunkenc.ValFloat
	}
	if !ci.checkErr() {
		return chunkenc.ValNone
	}
	// maxt >= t promised a sample: a chunk whose header lies.
	ci.err = fmt.Errorf("%w: chunk %d ends before its maxt %d", ErrCorrupt, ci.i, ci.chunks[ci.i].maxt)
	return chunkenc.ValNone
}

func (ci *chunksIterator) At() (int64, float64) { return ci.cur.At() }

func (ci *chunksIterator) AtT() int64 {
	if ci.vt != chunkenc.ValFloat {
		return ci.hcur.AtT()
	}
	t, _ := ci.cur.At()
	return t
}

// AtST implements chunkenc.Iterator: the start timestamp the 'P' frame
// after the current chunk gave the current sample, 0 without one.
func (ci *chunksIterator) AtST() int64 {
	if ci.i < 0 || ci.i >= len(ci.chunks) {
		return 0
	}
	sts := ci.chunks[ci.i].sts
	switch {
	case sts == nil:
		return 0
	case ci.k >= len(sts):
		if ci.err == nil {
			ci.err = fmt.Errorf("%w: chunk %d has more samples than its %d start timestamps", ErrCorrupt, ci.i, len(sts))
		}
		return 0
	}
	return sts[ci.k]
}
func (ci *chunksIterator) Err() error { return ci.err }

// AtHistogram implements chunkenc.Iterator for a ValHistogram sample.
func (ci *chunksIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	if ci.vt == chunkenc.ValFloat {
		panic("BUG: AtHistogram on a float sample")
	}
	return ci.hcur.AtHistogram(h)
}

// AtFloatHistogram implements chunkenc.Iterator for a histogram sample of
// either type.
func (ci *chunksIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	if ci.vt == chunkenc.ValFloat {
		panic("BUG: AtFloatHistogram on a float sample")
	}
	return ci.hcur.AtFloatHistogram(fh)
}

// frameReader reads response frames. io.EOF anywhere before the trailer
// is a stream cut short: io.ErrUnexpectedEOF.
type frameReader struct {
	br *bufio.Reader
}

func cutShort(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("stream cut short: %w", io.ErrUnexpectedEOF)
	}
	return err
}

func (fr *frameReader) byte() (byte, error) {
	b, err := fr.br.ReadByte()
	return b, cutShort(err)
}

func (fr *frameReader) uvarint() (uint64, error) {
	x, err := binary.ReadUvarint(fr.br)
	return x, cutShort(err)
}

func (fr *frameReader) varint() (int64, error) {
	x, err := binary.ReadVarint(fr.br)
	return x, cutShort(err)
}

func (fr *frameReader) string() (string, error) {
	n, err := fr.uvarint()
	if err != nil {
		return "", err
	}
	if n > maxStringBytes {
		return "", fmt.Errorf("%w: string of %d bytes", ErrCorrupt, n)
	}
	if n == 0 {
		return "", nil
	}
	// Peek avoids a temporary buffer when the string is in the reader's
	// buffer (always, for label names and values).
	if int(n) <= fr.br.Size() {
		b, err := fr.br.Peek(int(n))
		if err != nil {
			return "", cutShort(err)
		}
		s := string(b)
		_, _ = fr.br.Discard(int(n))
		return s, nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(fr.br, b); err != nil {
		return "", cutShort(err)
	}
	return string(b), nil
}

// trailer reads a trailer (after its kind) and checks its count against
// the n items read. The trailer's error becomes the returned error.
func (fr *frameReader) trailer(n uint64) (annotations.Annotations, error) {
	count, err := fr.uvarint()
	if err != nil {
		return nil, err
	}
	msg, err := fr.string()
	if err != nil {
		return nil, err
	}
	nw, err := fr.uvarint()
	if err != nil {
		return nil, err
	}
	if nw > maxMatchers {
		return nil, fmt.Errorf("%w: %d warnings", ErrCorrupt, nw)
	}
	var ws annotations.Annotations
	for range nw {
		info, err := fr.byte()
		if err != nil {
			return nil, err
		}
		if info > 1 {
			return nil, fmt.Errorf("%w: warning class %d", ErrCorrupt, info)
		}
		w, err := fr.string()
		if err != nil {
			return nil, err
		}
		ws.Add(&remoteAnnotation{msg: w, info: info == 1})
	}
	if msg != "" {
		return nil, fmt.Errorf("%w: %s", ErrRemote, msg)
	}
	if count != n {
		return nil, fmt.Errorf("%w: trailer counts %d items, read %d", ErrCorrupt, count, n)
	}
	return ws, nil
}
