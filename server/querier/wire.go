package querier

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/myelindb/myelin/raftgroup/ring"
)

// Version is the first byte of every response body of the remote
// protocol: 3 since a chunk may be followed by its samples' start
// timestamps ('P' frames), 2 since a select may carry native histogram
// chunks ('H' frames). A format change bumps it and updates doc.go and
// the golden test together. The handler answers version 2 (no 'P'
// frame) to a request of version 3, and version 1 (no 'H' frame: a
// histogram is an error) to a request of version 1 or 2, from nodes of
// earlier releases; the client reads all three.
const Version byte = 3

// VersionHistograms is the response version before start timestamps:
// Version without 'P' frames.
const VersionHistograms byte = 2

// VersionFloats is the response version before histograms:
// VersionHistograms without 'H' frames.
const VersionFloats byte = 1

// RequestVersion is the first byte of every request body: 2 since
// selects carry the query's series limit, 3 since the client reads
// response version 2, 4 since it reads Version (3); the layouts of 3 and
// 4 are that of 2. The handler still decodes version 1 (no limit), 2 and
// 3, from nodes of earlier releases, and answers them VersionFloats
// (1 and 2) or VersionHistograms (3).
const RequestVersion byte = 4

// Paths of the remote protocol, below the handler's mount point.
const (
	PathSelect = "/internal/querier/select"
	PathLabels = "/internal/querier/labels"
	PathValues = "/internal/querier/values"
)

// Frame kinds of a response body.
const (
	frameSeries  byte = 'S'
	frameChunk   byte = 'C'
	frameHist    byte = 'H' // a native histogram chunk (version 2 on)
	frameST      byte = 'P' // the start timestamps of the chunk before (Version 3)
	frameString  byte = 'N'
	frameTrailer byte = 'T'
)

// chunkSamples is the most samples a chunk on the wire holds: Prometheus's
// remote read (STREAMED_XOR_CHUNKS) and head cut at 120 too.
const chunkSamples = 120

// Limits a decoder checks before allocating: a corrupt length must not
// make it allocate gigabytes.
const (
	maxStringBytes = 1 << 24 // one label value, warning, chunk
	maxMatchers    = 1 << 12
	maxLabels      = 1 << 12
)

// ErrCorrupt: a request or response body does not decode.
var ErrCorrupt = errors.New("querier: corrupt message")

// request is what every remote call sends. Kind-specific fields are zero
// when they do not apply.
type request struct {
	group      ring.GroupID
	tenant     string
	mint, maxt int64
	matchers   []*labels.Matcher
	// select
	sortSeries bool
	hints      *storage.SelectHints
	// maxSeries is the query's max_fetched_series_per_query (0: none):
	// the handler refuses a select that matches more before it loads
	// them (limits.QueryBudget.CheckSelect).
	maxSeries int
	// labels, values
	name  string // values only; metadata: the metric ("" for all)
	limit int
	// exemplars: the sizes of the matcher sets, in order; matchers holds
	// them one after the other.
	sets []int
	// version is the request's version (decodeRequest): a client of
	// version 3 reads response Version, older ones VersionFloats.
	version byte
}

const (
	flagSort  byte = 1 << 0
	flagHints byte = 1 << 1
)

// appendRequest encodes r for path (one of the Path constants).
func appendRequest(dst []byte, path string, r *request) []byte {
	dst = append(dst, RequestVersion)
	dst = binary.AppendUvarint(dst, uint64(r.group))
	dst = appendString(dst, r.tenant)
	dst = binary.AppendVarint(dst, r.mint)
	dst = binary.AppendVarint(dst, r.maxt)
	dst = binary.AppendUvarint(dst, uint64(len(r.matchers)))
	for _, m := range r.matchers {
		dst = append(dst, byte(m.Type))
		dst = appendString(dst, m.Name)
		dst = appendString(dst, m.Value)
	}
	switch path {
	case PathSelect:
		var flags byte
		if r.sortSeries {
			flags |= flagSort
		}
		if r.hints != nil {
			flags |= flagHints
		}
		dst = append(dst, flags)
		if h := r.hints; h != nil {
			dst = binary.AppendVarint(dst, h.Start)
			dst = binary.AppendVarint(dst, h.End)
			dst = binary.AppendUvarint(dst, uint64(max(h.Limit, 0)))
			dst = binary.AppendVarint(dst, h.Step)
			dst = appendString(dst, h.Func)
			dst = binary.AppendUvarint(dst, uint64(len(h.Grouping)))
			for _, g := range h.Grouping {
				dst = appendString(dst, g)
			}
			dst = appendBool(dst, h.By)
			dst = binary.AppendVarint(dst, h.Range)
			dst = binary.AppendUvarint(dst, h.ShardCount)
			dst = binary.AppendUvarint(dst, h.ShardIndex)
			dst = appendBool(dst, h.DisableTrimming)
		}
		dst = binary.AppendUvarint(dst, uint64(max(r.maxSeries, 0)))
	case PathValues:
		dst = appendString(dst, r.name)
		dst = binary.AppendUvarint(dst, uint64(max(r.limit, 0)))
	case PathLabels:
		dst = binary.AppendUvarint(dst, uint64(max(r.limit, 0)))
	case PathExemplars:
		dst = binary.AppendUvarint(dst, uint64(len(r.sets)))
		for _, n := range r.sets {
			dst = binary.AppendUvarint(dst, uint64(n))
		}
	case PathMetadata:
		dst = appendString(dst, r.name)
	default:
		panic("BUG: unknown path " + path)
	}
	return dst
}

// decodeRequest decodes a request body for path. Matchers are compiled
// (a bad regexp is an error).
func decodeRequest(path string, src []byte) (*request, error) {
	d := decoder{src: src}
	r := &request{}
	v := d.byte("version")
	if d.err == nil && v != RequestVersion && v != 3 && v != 2 && v != 1 {
		return nil, fmt.Errorf("decode request: %w: version %d, want 1 to %d", ErrCorrupt, v, RequestVersion)
	}
	r.version = v
	g := d.uvarint("group")
	if g > math.MaxUint32 {
		d.fail("group %d out of range", g)
	}
	r.group = ring.GroupID(g)
	r.tenant = d.string("tenant")
	r.mint = d.varint("mint")
	r.maxt = d.varint("maxt")
	n := d.count("matchers", maxMatchers, 3)
	for i := 0; i < n && d.err == nil; i++ {
		t := d.byte("matcher type")
		name := d.string("matcher name")
		value := d.string("matcher value")
		if d.err != nil {
			break
		}
		if t > byte(labels.MatchNotRegexp) {
			d.fail("matcher type %d", t)
			break
		}
		m, err := labels.NewMatcher(labels.MatchType(t), name, value)
		if err != nil {
			return nil, fmt.Errorf("decode request: matcher %d: %w", i, err)
		}
		r.matchers = append(r.matchers, m)
	}
	switch path {
	case PathSelect:
		flags := d.byte("flags")
		r.sortSeries = flags&flagSort != 0
		if flags&flagHints != 0 {
			h := &storage.SelectHints{}
			h.Start = d.varint("hints start")
			h.End = d.varint("hints end")
			h.Limit = d.int("hints limit")
			h.Step = d.varint("hints step")
			h.Func = d.string("hints func")
			ng := d.count("hints grouping", maxLabels, 1)
			for i := 0; i < ng && d.err == nil; i++ {
				h.Grouping = append(h.Grouping, d.string("hints grouping"))
			}
			h.By = d.bool("hints by")
			h.Range = d.varint("hints range")
			h.ShardCount = d.uvarint("hints shard count")
			h.ShardIndex = d.uvarint("hints shard index")
			h.DisableTrimming = d.bool("hints disable trimming")
			r.hints = h
		}
		if v >= 2 {
			r.maxSeries = d.int("max series")
		}
	case PathValues:
		r.name = d.string("label name")
		r.limit = d.int("limit")
	case PathLabels:
		r.limit = d.int("limit")
	case PathExemplars:
		ns := d.count("matcher sets", maxMatchers, 1)
		total := 0
		for i := 0; i < ns && d.err == nil; i++ {
			n := d.int("matcher set size")
			total += n
			r.sets = append(r.sets, n)
		}
		if d.err == nil && total != len(r.matchers) {
			d.fail("%v: %d and %d", errSets, total, len(r.matchers))
		}
	case PathMetadata:
		r.name = d.string("metric")
	default:
		return nil, fmt.Errorf("decode request: unknown path %q", path)
	}
	if d.err == nil && len(d.src) != 0 {
		d.fail("%d trailing bytes", len(d.src))
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode request: %w", d.err)
	}
	return r, nil
}

// trailer ends every response stream.
type trailer struct {
	count    uint64 // series or strings sent before it
	err      string // empty: the call succeeded
	warnings []error
}

func appendTrailer(dst []byte, t *trailer) []byte {
	dst = append(dst, frameTrailer)
	dst = binary.AppendUvarint(dst, t.count)
	dst = appendString(dst, t.err)
	dst = binary.AppendUvarint(dst, uint64(len(t.warnings)))
	for _, w := range t.warnings {
		dst = appendBool(dst, errors.Is(w, annotations.PromQLInfo))
		dst = appendString(dst, w.Error())
	}
	return dst
}

func appendSeriesFrame(dst []byte, lset labels.Labels) []byte {
	dst = append(dst, frameSeries)
	dst = binary.AppendUvarint(dst, uint64(lset.Len()))
	lset.Range(func(l labels.Label) {
		dst = appendString(dst, l.Name)
		dst = appendString(dst, l.Value)
	})
	return dst
}

func appendChunkFrame(dst []byte, mint, maxt int64, data []byte) []byte {
	dst = append(dst, frameChunk)
	dst = binary.AppendVarint(dst, mint)
	dst = binary.AppendUvarint(dst, uint64(maxt-mint))
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	return append(dst, data...)
}

// Histogram chunk encodings of an 'H' frame: the byte after its kind.
const (
	histInteger byte = 1 // Prometheus's tsdb/chunkenc HistogramChunk
	histFloat   byte = 2 // Prometheus's tsdb/chunkenc FloatHistogramChunk
)

// appendSTFrame appends the start timestamps of the chunk frame before
// it, one per sample, each as the difference to the previous one (to 0
// for the first).
func appendSTFrame(dst []byte, sts []int64) []byte {
	dst = binary.AppendUvarint(append(dst, frameST), uint64(len(sts)))
	prev := int64(0)
	for _, st := range sts {
		dst = binary.AppendVarint(dst, st-prev)
		prev = st
	}
	return dst
}

func appendHistFrame(dst []byte, enc byte, mint, maxt int64, data []byte) []byte {
	dst = append(dst, frameHist, enc)
	dst = binary.AppendVarint(dst, mint)
	dst = binary.AppendUvarint(dst, uint64(maxt-mint))
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	return append(dst, data...)
}

func appendStringFrame(dst []byte, s string) []byte {
	dst = append(dst, frameString)
	return appendString(dst, s)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// decoder reads a request from a byte slice; the first problem sticks in
// err and later reads return zero values.
type decoder struct {
	src []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrCorrupt, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.src) == 0 {
		d.fail("%s: truncated", what)
		return 0
	}
	b := d.src[0]
	d.src = d.src[1:]
	d.off++
	return b
}

func (d *decoder) bool(what string) bool {
	b := d.byte(what)
	if b > 1 {
		d.fail("%s: %d is not a bool", what, b)
	}
	return b == 1
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.src)
	if n <= 0 {
		d.fail("%s: bad uvarint", what)
		return 0
	}
	d.src = d.src[n:]
	d.off += n
	return x
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.src)
	if n <= 0 {
		d.fail("%s: bad varint", what)
		return 0
	}
	d.src = d.src[n:]
	d.off += n
	return x
}

func (d *decoder) int(what string) int {
	x := d.uvarint(what)
	if x > math.MaxInt32 {
		d.fail("%s: %d out of range", what, x)
		return 0
	}
	return int(x)
}

// count reads a count of items of at least minBytes each, checked against
// limit and the remaining input.
func (d *decoder) count(what string, limit, minBytes int) int {
	x := d.uvarint(what)
	if d.err == nil && (x > uint64(limit) || x*uint64(minBytes) > uint64(len(d.src))) {
		d.fail("%s: count %d too large", what, x)
		return 0
	}
	return int(x)
}

func (d *decoder) string(what string) string {
	x := d.uvarint(what)
	if d.err != nil {
		return ""
	}
	if x > uint64(len(d.src)) {
		d.fail("%s: length %d beyond the input", what, x)
		return ""
	}
	s := string(d.src[:x])
	d.src = d.src[x:]
	d.off += int(x)
	return s
}

// remoteAnnotation is a warning or info annotation received from a
// remote node: its text, and the class errors.Is reports (PromQL keeps
// warnings and infos apart).
type remoteAnnotation struct {
	msg  string
	info bool
}

func (a *remoteAnnotation) Error() string { return a.msg }

func (a *remoteAnnotation) Is(target error) bool {
	if a.info {
		return target == annotations.PromQLInfo
	}
	return target == annotations.PromQLWarning
}
