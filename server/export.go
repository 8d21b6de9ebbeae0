package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/server/tenant"
)

// ExportHandler serves GET /api/v1/export (VictoriaMetrics' path): the
// tenant's series matching match[] over [start, end], in the Prometheus
// text format with a timestamp per sample, one series after the other
// in label order and each series' samples in time order, which
// POST /api/v1/import/prometheus reads back as they were.
// (docs/design.md "Import and export (issue 20 item 2)").
type ExportHandler struct {
	s           Storage
	multiTenant bool
	native      bool
}

// NewExportHandler returns the export handler reading s.
func NewExportHandler(s Storage, multiTenant bool) *ExportHandler {
	return &ExportHandler{s: s, multiTenant: multiTenant}
}

// NewNativeExportHandler returns the handler of GET /api/v1/export/native
// (VictoriaMetrics' path for its own binary format): the same parameters
// and order as the text export, in the native format (NativeMagic, then
// remote write 2.0 frames), which carries staleness markers, native
// histograms and every float's bits. `myelin import -format native`
// posts its frames to /api/v1/push.
func NewNativeExportHandler(s Storage, multiTenant bool) *ExportHandler {
	return &ExportHandler{s: s, multiTenant: multiTenant, native: true}
}

// exportParser parses match[] selectors.
var exportParser = parser.NewParser(parser.Options{})

// exportFlushBytes: the answer is flushed to the client every this many
// bytes, so that nothing but the current series is held.
const exportFlushBytes = 64 << 10

// ServeHTTP answers 200 with the series, streamed as they are read; 400
// for a missing or bad match[], start or end (Prometheus's parameters:
// RFC 3339 or Unix seconds; start defaults to the epoch and end to now),
// 401 without a tenant. Staleness markers are left out: the text format
// cannot tell them from a NaN (docs/design.md). An error after the first
// bytes went out (the status is sent) ends the answer with a line
// "# ERROR <text>": a comment to a parser, so a client must look for it
// (myelin export does, and fails). Native histogram samples cannot be
// written in the text format: they are counted, and a last line
// "# SKIPPED <n> native histogram samples: ..." says so.
func (h *ExportHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "export requires GET or POST", http.StatusMethodNotAllowed)
		return
	}
	tenantID, err := tenant.FromRequest(r, h.multiTenant)
	if err != nil {
		code, msg := tenantError(err)
		http.Error(w, msg, code)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, fmt.Sprintf("bad form: %v", err), http.StatusBadRequest)
		return
	}
	mint, maxt := int64(0), time.Now().UnixMilli()
	if v := r.Form.Get("start"); v != "" {
		if mint, err = parseExportTime(v); err != nil {
			http.Error(w, fmt.Sprintf("invalid parameter \"start\": %v", err), http.StatusBadRequest)
			return
		}
	}
	if v := r.Form.Get("end"); v != "" {
		if maxt, err = parseExportTime(v); err != nil {
			http.Error(w, fmt.Sprintf("invalid parameter \"end\": %v", err), http.StatusBadRequest)
			return
		}
	}
	if maxt < mint {
		http.Error(w, "invalid parameter \"end\": end timestamp must not be before start time", http.StatusBadRequest)
		return
	}
	matches := r.Form["match[]"]
	if len(matches) == 0 {
		http.Error(w, "no match[] parameter provided", http.StatusBadRequest)
		return
	}
	var sets [][]*labels.Matcher
	for _, m := range matches {
		ms, err := exportParser.ParseMetricSelector(m)
		if err != nil {
			http.Error(w, fmt.Sprintf("invalid parameter \"match[]\": %v", err), http.StatusBadRequest)
			return
		}
		sets = append(sets, ms)
	}
	q, err := h.s.Querier(tenantID, mint, maxt)
	if err != nil {
		http.Error(w, fmt.Sprintf("open querier: %v", err), http.StatusInternalServerError)
		return
	}
	defer q.Close()
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, exportFlushBytes)
	flush := func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	if h.native {
		w.Header().Set("Content-Type", NativeContentType)
		bw.WriteString(NativeMagic)
		err = exportNative(r.Context(), q, sets, mint, maxt, bw, flush)
		if err != nil {
			// The status has gone out: the stream ends with an error
			// trailer, which ReadNativeFrames returns.
			bw.Write(AppendNativeError(nil, err.Error()))
		}
		_ = bw.Flush()
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	err = exportSeries(r.Context(), q, sets, mint, maxt, bw, flush)
	if err != nil {
		fmt.Fprintf(bw, "# ERROR %s\n", err)
	}
	_ = bw.Flush()
}

// parseExportTime parses a Prometheus API time: Unix seconds with a
// fraction, or RFC 3339.
func parseExportTime(s string) (int64, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 9e15 {
			return 0, fmt.Errorf("cannot parse %q to a valid timestamp", s)
		}
		return int64(math.Round(f * 1000)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q to a valid timestamp", s)
	}
	return t.UnixMilli(), nil
}

// exportSeries writes the series of q matching any of sets, samples in
// [mint, maxt], to w, calling flush whenever w holds exportFlushBytes.
func exportSeries(ctx context.Context, q storage.Querier, sets [][]*labels.Matcher, mint, maxt int64, w *bufio.Writer, flush func() error) error {
	ss := exportSelect(ctx, q, sets, mint, maxt)
	var it chunkenc.Iterator
	var line []byte
	histograms := 0
	for ss.Next() {
		s := ss.At()
		head := AppendSeriesText(nil, s.Labels())
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				histograms++ // the text format cannot carry them
				continue
			}
			t, v := it.At()
			if t < mint || t > maxt || value.IsStaleNaN(v) {
				continue
			}
			line = AppendSampleText(line[:0], head, t, v)
			if w.Available() < len(line) {
				if err := flush(); err != nil {
					return err
				}
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("read series %s: %w", s.Labels(), err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	if ws := ss.Warnings(); len(ws) > 0 {
		return errors.Join(ws.AsErrors()...)
	}
	if histograms > 0 {
		// Said, not dropped silently: a comment to parsers, which
		// myelin export reports.
		_, err := fmt.Fprintf(w, "# SKIPPED %d native histogram samples: the text format cannot carry them\n", histograms)
		return err
	}
	return nil
}

// exportSelect selects the series of q matching any of sets, in label
// order.
func exportSelect(ctx context.Context, q storage.Querier, sets [][]*labels.Matcher, mint, maxt int64) storage.SeriesSet {
	hints := &storage.SelectHints{Start: mint, End: maxt}
	if len(sets) == 1 {
		return q.Select(ctx, true, hints, sets[0]...)
	}
	all := make([]storage.SeriesSet, 0, len(sets))
	for _, ms := range sets {
		all = append(all, q.Select(ctx, true, hints, ms...))
	}
	return storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
}

// exportNative writes the series of q matching any of sets, samples in
// [mint, maxt] with staleness markers and histograms, as native frames to
// w, flushing after every frame.
func exportNative(ctx context.Context, q storage.Querier, sets [][]*labels.Matcher, mint, maxt int64, w *bufio.Writer, flush func() error) error {
	ss := exportSelect(ctx, q, sets, mint, maxt)
	nw := NewNativeWriter(func(frame []byte) error {
		if _, err := w.Write(frame); err != nil {
			return err
		}
		return flush()
	}, 0)
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		if err := nw.WriteSeries(s.Labels(), it, mint, maxt); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	if ws := ss.Warnings(); len(ws) > 0 {
		return errors.Join(ws.AsErrors()...)
	}
	return nw.Flush()
}

// AppendSeriesText appends ls in the text format: name{l="v",...}, or
// {"name",l="v",...} when the name is not a legacy one; label names that
// are not legacy names are quoted too.
func AppendSeriesText(b []byte, ls labels.Labels) []byte {
	name := ls.Get(model.MetricNameLabel)
	quoted := !model.LegacyValidation.IsValidMetricName(name)
	if !quoted {
		b = append(b, name...)
		if ls.Len() == 1 {
			return b // the name alone: no braces
		}
	}
	b = append(b, '{')
	n := 0
	if quoted {
		b = appendTextString(b, name)
		n++
	}
	ls.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			return
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		if model.LegacyValidation.IsValidLabelName(l.Name) {
			b = append(b, l.Name...)
		} else {
			b = appendTextString(b, l.Name)
		}
		b = append(b, '=')
		b = appendTextString(b, l.Value)
	})
	return append(b, '}')
}

// AppendSampleText appends the text format's line of the sample (t, v) of
// the series series (AppendSeriesText): the shortest decimal that parses
// back to v exactly, and t in milliseconds.
func AppendSampleText(b, series []byte, t int64, v float64) []byte {
	b = append(append(b, series...), ' ')
	b = strconv.AppendFloat(b, v, 'g', -1, 64)
	b = append(b, ' ')
	b = strconv.AppendInt(b, t, 10)
	return append(b, '\n')
}

// appendTextString appends s quoted as the text format quotes label
// values: backslash, double quote and line feed escaped, nothing else.
func appendTextString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
