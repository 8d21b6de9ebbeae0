package remotewrite

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/myelindb/myelin/write"
)

// Exemplars and metadata are decoded apart from the float path, as
// native histograms are (histogram.go): Unmarshal checks their bytes and
// records where they are (Request.Exemplars, Request.Metadata), and
// Exemplar and MetadataOf build them for the series the server stores.

// ErrInvalidExemplar is the sentinel of an exemplar the server refuses:
// labels that do not resolve or are not valid, or longer than
// ExemplarMaxLabelSetLength runes together (Prometheus's limit).
var ErrInvalidExemplar = errors.New("remotewrite: invalid exemplar")

// ErrInvalidMetadata is the sentinel of metadata the server refuses: no
// metric family name, or a name, unit or help longer than
// MaxMetadataLength bytes (Mimir's -validation.max-metadata-length).
var ErrInvalidMetadata = errors.New("remotewrite: invalid metric metadata")

// ExemplarMaxLabelSetLength is the most runes an exemplar's label names
// and values may have together: Prometheus's
// exemplar.ExemplarMaxLabelSetLength (OpenMetrics' limit).
const ExemplarMaxLabelSetLength = 128

// MaxMetadataLength bounds the bytes of a metric family name, unit and
// help: Mimir's -validation.max-metadata-length default.
const MaxMetadataLength = 1024

// Exemplar decodes the request's i-th exemplar (Request.Exemplars[i]),
// of 1.0's prometheus.Exemplar or 2.0's io.prometheus.write.v2.Exemplar,
// with its labels sorted by name, those with an empty value dropped, and
// encoded (write.AppendLabel) into a slice of its own. The labels must be
// valid UTF-8 names (legacy: Prometheus 2's charset) and values, without
// duplicate names, and at most ExemplarMaxLabelSetLength runes together;
// otherwise the error wraps ErrInvalidExemplar. scratch is reused for
// the labels; the result does not alias the request.
func (r *Request) Exemplar(i int, legacy bool, scratch []Label) (write.Exemplar, []Label, error) {
	sp := r.Exemplars[i]
	var e write.Exemplar
	ls := scratch[:0]
	b, pos, end := r.Body, sp.Start, sp.End
	var name []byte // a 2.0 name reference waiting for its value
	for pos < end {
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return e, ls, err
		}
		pos = next
		switch {
		case num == 1 && wt == wireBytes && r.Proto == ProtoV1: // Label labels
			start, stop, err := readLen(b, pos, end, "labels")
			if err != nil {
				return e, ls, err
			}
			pos = stop
			l, err := decodeLabel(b, start, stop)
			if err != nil {
				return e, ls, err
			}
			ls = append(ls, l)
		case num == 1 && r.Proto == ProtoV2 && (wt == wireVarint || wt == wireBytes): // labels_refs
			start, stop := pos, end
			if wt == wireBytes {
				if start, stop, err = readLen(b, pos, end, "labels_refs"); err != nil {
					return e, ls, err
				}
				pos = stop // an empty packed field has no element to move it
			}
			for p := start; p < stop; {
				v, nx := uvarint(b, p, stop)
				if nx < 0 {
					return e, ls, varintErr(nx, p, "labels_refs")
				}
				p, pos = nx, nx
				if v >= uint64(len(r.Symbols)) {
					return e, ls, fmt.Errorf("%w: label reference %d outside the symbols table of %d", ErrInvalidExemplar, v, len(r.Symbols))
				}
				if name == nil {
					name = r.Symbols[v][:len(r.Symbols[v]):len(r.Symbols[v])]
					if name == nil {
						name = []byte{}
					}
				} else {
					ls = append(ls, Label{Name: name, Value: r.Symbols[v]})
					name = nil
				}
				if wt == wireVarint {
					break
				}
			}
		case num == 2 && wt == wireFixed64:
			if end-pos < 8 {
				return e, ls, protoErr(pos, "value", ReasonTruncated, "fixed64")
			}
			e.V = math.Float64frombits(fixed64(b, pos))
			pos += 8
		case num == 3 && wt == wireVarint:
			v, nx := uvarint(b, pos, end)
			if nx < 0 {
				return e, ls, varintErr(nx, pos, "timestamp")
			}
			e.T, pos = int64(v), nx
		default:
			if pos, err = skip(b, tagPos, pos, end, wt, num); err != nil {
				return e, ls, err
			}
		}
	}
	if name != nil {
		return e, ls, fmt.Errorf("%w: an odd number of label references", ErrInvalidExemplar)
	}
	var err error
	e.Labels, err = EncodeExemplarLabels(ls, legacy)
	return e, ls, err
}

// EncodeExemplarLabels sorts an exemplar's labels by name (in place),
// drops those with an empty value, checks them as Request.Exemplar does
// (valid names and UTF-8 values, no duplicate name, at most
// ExemplarMaxLabelSetLength runes together; else an error wrapping
// ErrInvalidExemplar) and returns their encoding (write.AppendLabel) in
// a slice of its own, nil for none.
func EncodeExemplarLabels(ls []Label, legacy bool) ([]byte, error) {
	slices.SortStableFunc(ls, func(a, b Label) int { return bytes.Compare(a.Name, b.Name) })
	runes, n := 0, 0
	for j, l := range ls {
		if len(l.Value) == 0 {
			continue
		}
		if !validName(l.Name, legacy, false, false) {
			return nil, fmt.Errorf("%w: invalid label name %s", ErrInvalidExemplar, quote(l.Name))
		}
		if !utf8.Valid(l.Value) {
			return nil, fmt.Errorf("%w: label %s has a value that is not valid UTF-8", ErrInvalidExemplar, quote(l.Name))
		}
		if j > 0 && bytes.Equal(ls[j-1].Name, l.Name) {
			return nil, fmt.Errorf("%w: duplicate label name %s", ErrInvalidExemplar, quote(l.Name))
		}
		runes += utf8.RuneCount(l.Name) + utf8.RuneCount(l.Value)
		n += len(l.Name) + len(l.Value) + 2
	}
	if runes > ExemplarMaxLabelSetLength {
		return nil, fmt.Errorf("%w: label length for exemplar exceeds maximum of %d UTF-8 characters (%d)", ErrInvalidExemplar, ExemplarMaxLabelSetLength, runes)
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]byte, 0, n)
	for _, l := range ls {
		if len(l.Value) > 0 {
			out = write.AppendLabel(out, string(l.Name), string(l.Value))
		}
	}
	return out, nil
}

// MetadataOf decodes the request's i-th metadata (Request.Metadata[i]):
// 1.0's MetricMetadata, or 2.0's per-series Metadata whose family is the
// series' metric name, without the _bucket, _sum and _count suffixes for
// the types whose families have them (so a classic histogram's three
// series give one family, as a scrape's metadata names it). A type
// outside the enum is unknown (0). The result does not alias the
// request; the error wraps ErrInvalidMetadata.
func (r *Request) MetadataOf(i int) (write.Metadata, error) {
	sp := r.Metadata[i]
	var m write.Metadata
	b, pos, end := r.Body, sp.Start, sp.End
	if r.Proto == ProtoV2 {
		var mv metaV2
		if err := decodeMetadataV2(b, pos, end, &mv); err != nil {
			return m, err
		}
		if mv.help >= uint64(len(r.Symbols)) || mv.unit >= uint64(len(r.Symbols)) {
			return m, fmt.Errorf("%w: help or unit reference outside the symbols table", ErrInvalidMetadata)
		}
		m.Type = metricType(mv.typ)
		m.Help, m.Unit = string(r.Symbols[mv.help]), string(r.Symbols[mv.unit])
		for _, l := range r.LabelsOf(&r.Series[sp.Series], nil) {
			if string(l.Name) == "__name__" {
				m.Family = familyOf(string(l.Value), m.Type)
			}
		}
	} else {
		for pos < end {
			tagPos := pos
			num, wt, next, err := readTag(b, pos, end)
			if err != nil {
				return m, err
			}
			pos = next
			switch {
			case num == 1 && wt == wireVarint:
				v, nx := uvarint(b, pos, end)
				if nx < 0 {
					return m, varintErr(nx, pos, "type")
				}
				m.Type, pos = metricType(v), nx
			case (num == 2 || num == 4 || num == 5) && wt == wireBytes:
				start, stop, err := readLen(b, pos, end, "metadata")
				if err != nil {
					return m, err
				}
				s := string(b[start:stop])
				switch num {
				case 2:
					m.Family = s
				case 4:
					m.Help = s
				case 5:
					m.Unit = s
				}
				pos = stop
			default:
				if pos, err = skip(b, tagPos, pos, end, wt, num); err != nil {
					return m, err
				}
			}
		}
	}
	switch {
	case m.Family == "":
		return m, fmt.Errorf("%w: no metric family name", ErrInvalidMetadata)
	case !utf8.ValidString(m.Family) || !utf8.ValidString(m.Help) || !utf8.ValidString(m.Unit):
		return m, fmt.Errorf("%w: metadata of %s is not valid UTF-8", ErrInvalidMetadata, quote([]byte(m.Family)))
	case len(m.Family) > MaxMetadataLength || len(m.Help) > MaxMetadataLength || len(m.Unit) > MaxMetadataLength:
		return m, fmt.Errorf("%w: metadata of %s longer than %d bytes", ErrInvalidMetadata, quote([]byte(m.Family)), MaxMetadataLength)
	}
	return m, nil
}

// metricType is v as a write.MetricType, unknown (0) outside the enum.
func metricType(v uint64) write.MetricType {
	if v > uint64(write.MaxMetricType) {
		return 0
	}
	return write.MetricType(v)
}

// familyOf is the family name of a series named name of type t.
func familyOf(name string, t write.MetricType) string {
	var suffixes []string
	switch t {
	case 3, 4: // histogram, gaugehistogram
		suffixes = []string{"_bucket", "_sum", "_count"}
	case 5: // summary
		suffixes = []string{"_sum", "_count"}
	}
	for _, s := range suffixes {
		if f, ok := strings.CutSuffix(name, s); ok && f != "" {
			return f
		}
	}
	return name
}
