package remotewrite

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unsafe"

	"github.com/myelindb/myelin/internal/invariants"
	"github.com/myelindb/myelin/write"
)

// Per-series problems of a 2.0 request, found while decoding
// (Series.Err). The request is well-formed protobuf, so these refuse the
// series, not the request, as Prometheus's receiver does.
var (
	// ErrSymbolRef: a label or metadata reference is not an index of the
	// symbols table.
	ErrSymbolRef = errors.New("remotewrite: reference outside the symbols table")
	// ErrOddLabelRefs: labels_refs has an odd length, so it is not a list
	// of name and value pairs.
	ErrOddLabelRefs = errors.New("remotewrite: labels_refs is not name and value pairs")
	// ErrNoSamples: the series has neither samples nor histograms, which
	// the 2.0 spec requires (a 1.0 series without samples is skipped).
	ErrNoSamples = errors.New("remotewrite: series has no samples or histograms")
)

// problem says what is wrong with a 2.0 series (Series.Err).
type problem uint8

const (
	probOK          problem = iota
	probOddRefs             // labels_refs has an odd length
	probLabelRef            // a label reference is outside the symbols table
	probMetadataRef         // a metadata reference is outside the symbols table
	probEmpty               // no samples and no histograms
)

// Err is the bare sentinel of what makes the series unwritable, found
// while decoding it (only 2.0 series can have one: ErrSymbolRef,
// ErrOddLabelRefs, ErrNoSamples), or nil. Request.SeriesError says more.
func (s *Series) Err() error {
	switch s.problem {
	case probOddRefs:
		return ErrOddLabelRefs
	case probLabelRef, probMetadataRef:
		return ErrSymbolRef
	case probEmpty:
		return ErrNoSamples
	}
	return nil
}

// RefsOf returns the label references of s, a 2.0 series of r: name and
// value in turn, sorted by name (as they came if s.Err() is not nil); a
// sub-slice of r.Refs. A 1.0 series has none.
func (r *Request) RefsOf(s *Series) []uint32 {
	return r.Refs[s.refs0 : s.refs0+s.nrefs : s.refs0+s.nrefs]
}

// LabelsOf returns the labels of s, a series of r, sorted by name: s.Labels
// for 1.0; for 2.0, its references resolved through r.Symbols, appended
// to dst[:0] (those that resolve, if s.Err() is not nil). It allocates
// only if dst is too small. The labels alias r's body.
func (r *Request) LabelsOf(s *Series, dst []Label) []Label {
	if r.Proto != ProtoV2 {
		return s.Labels
	}
	dst = dst[:0]
	refs := r.RefsOf(s)
	for i := 0; i+1 < len(refs); i += 2 {
		n, v := refs[i], refs[i+1]
		if int(n) < len(r.Symbols) && int(v) < len(r.Symbols) {
			dst = append(dst, Label{Name: r.Symbols[n], Value: r.Symbols[v]})
		}
	}
	return dst
}

// SeriesError is a *SeriesError that names the series at index i of r
// and says what makes it unwritable (see Series.Err), or nil.
func (r *Request) SeriesError(i int) error {
	s := &r.Series[i]
	err := s.Err()
	if err == nil {
		return nil
	}
	var detail string
	switch s.problem {
	case probOddRefs:
		detail = fmt.Sprintf("%d references", s.nrefs)
	case probLabelRef:
		for j, ref := range r.RefsOf(s) {
			if int(ref) >= len(r.Symbols) {
				detail = fmt.Sprintf("labels_refs[%d] is %d, the symbols table has %d", j, ref, len(r.Symbols))
				break
			}
		}
	case probMetadataRef:
		detail = fmt.Sprintf("metadata help_ref or unit_ref; the symbols table has %d", len(r.Symbols))
	}
	return &SeriesError{Err: err, Detail: detail,
		Series: fmt.Sprintf("timeseries[%d] %s", i, renderLabels(r.LabelsOf(s, nil)))}
}

// SeriesString renders s, a series of r, for an error message:
// {a="b", c="d"} 3 samples.
func (r *Request) SeriesString(s *Series) string {
	return fmt.Sprintf("%s %d samples", renderLabels(r.LabelsOf(s, nil)), len(s.Samples))
}

// UnmarshalV2 decodes an uncompressed remote-write 2.0 Request
// (io.prometheus.write.v2.Request) from body into r, in the shape Unmarshal
// gives a 1.0 request: per series its Samples, its Key (label
// references resolved through the symbols table and sorted by name) and
// its label references instead of Labels (RefsOf, LabelsOf). See doc.go for the format and
// what is checked. r keeps references into body. Errors are those of
// Unmarshal; a bad symbol reference is not one (Series.Err).
func (r *Request) UnmarshalV2(body []byte) error {
	r.Reset()
	r.Proto = ProtoV2
	// INVARIANT: a reference takes a byte of the body at least, so int32
	// offsets (Series.refs0) hold every index of r.Refs.
	if len(body) > math.MaxInt32 {
		return fmt.Errorf("%w: a 2.0 body of %d bytes; at most %d", ErrTooLarge, len(body), math.MaxInt32)
	}
	r.Body = body
	r.budget = memPerByte*len(body) + memSlack
	r.sized = false
	b := body
	end := len(b)
	// One pass: senders write the symbols (field 4) before the series
	// (field 5), as protobuf encoders write fields in number order, so a
	// series' references resolve against the symbols read so far. A
	// reference beyond them loads every symbol of the body first
	// (loadSymbols), once.
	for pos := 0; pos < end; {
		// Fast path: a series of less than 128 bytes, as most are.
		if b[pos] == 5<<3|wireBytes && pos+1 < end {
			if n := int(b[pos+1]); n < 0x80 && pos+2+n <= end {
				if err := r.decodeSeriesV2(b, pos+2, pos+2+n); err != nil {
					return prefix(err, "timeseries["+strconv.Itoa(len(r.Series))+"]")
				}
				pos += 2 + n
				continue
			}
		}
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return err
		}
		pos = next
		switch num {
		case 4: // repeated string symbols = 4
			if err := wantWire(wt, wireBytes, tagPos, "symbols"); err != nil {
				return err
			}
			start, stop, err := readLen(b, pos, end, "symbols")
			if err != nil {
				return err
			}
			if !r.symbolsAll {
				if err := r.addSymbol(start, stop); err != nil {
					return err
				}
			}
			pos = stop
		case 5: // repeated TimeSeries timeseries = 5
			if err := wantWire(wt, wireBytes, tagPos, "timeseries"); err != nil {
				return err
			}
			start, stop, err := readLen(b, pos, end, "timeseries")
			if err != nil {
				return err
			}
			if err := r.decodeSeriesV2(b, start, stop); err != nil {
				return prefix(err, "timeseries["+strconv.Itoa(len(r.Series))+"]")
			}
			pos = stop
		default: // including the reserved fields 1 to 3 (1.0's)
			if pos, err = skip(b, tagPos, pos, end, wt, num); err != nil {
				return err
			}
		}
	}
	if r.sized || invariants.Enabled {
		r.link()
	}
	return nil
}

// addSymbol appends the symbol Body[start:stop] to r.Symbols.
func (r *Request) addSymbol(start, stop int) error {
	if len(r.Symbols) == cap(r.Symbols) && !r.sized {
		if err := r.presizeV2(); err != nil {
			return err
		}
		// presize loaded every symbol, this one included.
		return nil
	}
	if !r.spend(symbolBytes) {
		return r.tooLarge()
	}
	r.Symbols = append(r.Symbols, r.Body[start:stop:stop])
	return nil
}

// loadSymbols makes r.Symbols hold every symbol of the body: it appends
// those after the ones already read. It stops at the first bad tag or
// length, where UnmarshalV2 fails later.
func (r *Request) loadSymbols() error {
	r.symbolsAll = true
	b := r.Body
	end := len(b)
	n := 0
	for pos := 0; pos < end; {
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return nil
		}
		if wt != wireBytes {
			if pos, err = skip(b, tagPos, next, end, wt, num); err != nil {
				return nil
			}
			continue
		}
		start, stop, err := readLen(b, next, end, "")
		if err != nil {
			return nil
		}
		if num == 4 {
			if n >= len(r.Symbols) {
				if !r.spend(symbolBytes) {
					return r.tooLarge()
				}
				r.Symbols = append(r.Symbols, b[start:stop:stop])
			}
			n++
		}
		pos = stop
	}
	return nil
}

// metaV2 is what the decoder reads of a 2.0 series' Metadata.
type metaV2 struct {
	typ, help, unit uint64
}

// decodeSeriesV2 decodes the 2.0 TimeSeries in b[pos:end] and appends it
// to r. INVARIANT: a series' references and samples are appended
// contiguously to r.Refs and r.Samples, as in decodeSeries.
func (r *Request) decodeSeriesV2(b []byte, pos, end int) error {
	si := len(r.Series)
	r0, s0 := len(r.Refs), len(r.Samples)
	var nex, nh int
	var meta metaV2
	var metaSpan Span // of the last occurrence
	for pos < end {
		// Fast paths for the fields every series has, as encoders write
		// them: a sample (value then timestamp, one-byte tag and length)
		// and an empty metadata (gogo writes one for every series).
		switch b[pos] {
		case 2<<3 | wireBytes:
			if pos+13 > end {
				break
			}
			if n := int(b[pos+1]); n >= 11 && n < 0x80 && pos+2+n <= end &&
				b[pos+2] == 1<<3|wireFixed64 && b[pos+11] == 2<<3|wireVarint {
				stop := pos + 2 + n
				if t, next := uvarint(b, pos+12, stop); next == stop {
					if !r.spend(sampleBytes) {
						return r.tooLarge()
					}
					if len(r.Samples) == cap(r.Samples) && !r.sized {
						if err := r.presizeV2(); err != nil {
							return err
						}
					}
					r.Samples = append(r.Samples, Sample{T: int64(t), V: math.Float64frombits(fixed64(b, pos+3))})
					pos = stop
					continue
				}
			}
		case 5<<3 | wireBytes:
			if pos+1 < end && b[pos+1] == 0 {
				pos += 2
				continue
			}
		}
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return err
		}
		pos = next
		switch num {
		case 1: // repeated uint32 labels_refs = 1, packed (or not)
			if pos, err = r.appendRefs(b, tagPos, pos, end, wt); err != nil {
				return err
			}
		case 2: // repeated Sample samples = 2
			if err := wantWire(wt, wireBytes, tagPos, "samples"); err != nil {
				return err
			}
			start, stop, err := readLen(b, pos, end, "samples")
			if err != nil {
				return err
			}
			s, st, err := decodeSampleV2(b, start, stop)
			if err != nil {
				return prefix(err, "samples["+strconv.Itoa(len(r.Samples)-s0)+"]")
			}
			if st != 0 {
				if !r.spend(startTimestampBytes) {
					return r.tooLarge()
				}
				r.StartTimestamps = append(r.StartTimestamps, StartTimestamp{Sample: len(r.Samples), ST: st})
			}
			if !r.spend(sampleBytes) {
				return r.tooLarge()
			}
			if len(r.Samples) == cap(r.Samples) && !r.sized {
				if err := r.presizeV2(); err != nil {
					return err
				}
			}
			r.Samples = append(r.Samples, s)
			pos = stop
		case 3, 4: // repeated Histogram histograms = 3; repeated Exemplar exemplars = 4
			name, m := "histograms", msgHistogramV2
			if num == 4 {
				name, m = "exemplars", msgExemplarV2
			}
			if err := wantWire(wt, wireBytes, tagPos, name); err != nil {
				return err
			}
			start, stop, err := readLen(b, pos, end, name)
			if err != nil {
				return err
			}
			if err := checkMsg(b, start, stop, m); err != nil {
				idx := nh
				if num == 4 {
					idx = nex
				}
				return prefix(err, name+"["+strconv.Itoa(idx)+"]")
			}
			if !r.spend(spanBytes) {
				return r.tooLarge()
			}
			if (len(r.Exemplars) == cap(r.Exemplars) || len(r.Histograms) == cap(r.Histograms)) && !r.sized {
				if err := r.presizeV2(); err != nil {
					return err
				}
			}
			sp := Span{Series: si, Start: start, End: stop}
			if num == 4 {
				r.Exemplars = append(r.Exemplars, sp)
				nex++
			} else {
				r.Histograms = append(r.Histograms, sp)
				nh++
			}
			pos = stop
		case 5: // Metadata metadata = 5
			if err := wantWire(wt, wireBytes, tagPos, "metadata"); err != nil {
				return err
			}
			start, stop, err := readLen(b, pos, end, "metadata")
			if err != nil {
				return err
			}
			// An embedded message that occurs twice is merged: later
			// fields overwrite earlier ones (proto3, and gogo).
			if err := decodeMetadataV2(b, start, stop, &meta); err != nil {
				return prefix(err, "metadata")
			}
			metaSpan = Span{Series: si, Start: start, End: stop}
			pos = stop
		default: // including the reserved field 6 (created_timestamp of 2.0-rc.3)
			if pos, err = skip(b, tagPos, pos, end, wt, num); err != nil {
				return err
			}
		}
	}
	if meta != (metaV2{}) {
		if !r.spend(spanBytes) {
			return r.tooLarge()
		}
		if len(r.Metadata) == cap(r.Metadata) && !r.sized {
			if err := r.presizeV2(); err != nil {
				return err
			}
		}
		r.Metadata = append(r.Metadata, metaSpan)
	}
	if !r.spend(seriesBytes) {
		return r.tooLarge()
	}
	if len(r.Series) == cap(r.Series) && !r.sized {
		if err := r.presizeV2(); err != nil {
			return err
		}
	}
	refs := r.Refs[r0:]
	k0, nk, prob := len(r.keys), 0, probOK
	if len(refs)%2 != 0 {
		prob = probOddRefs
	} else {
		// A reference past the symbols read so far loads them all
		// (symbols after the series), once.
		var err error
		for {
			nk, err = r.keyV2(r0)
			if err != errBadRef || r.symbolsAll {
				break
			}
			if err := r.loadSymbols(); err != nil {
				return err
			}
		}
		if err == errBadRef {
			prob = probLabelRef
		} else if err != nil {
			return err
		}
	}
	if prob == probOK {
		n := uint64(len(r.Symbols))
		if (meta.help >= n || meta.unit >= n) && !r.symbolsAll {
			if err := r.loadSymbols(); err != nil {
				return err
			}
			n = uint64(len(r.Symbols))
		}
		if meta.help >= n || meta.unit >= n {
			prob = probMetadataRef
		} else if len(r.Samples) == s0 && nh == 0 {
			prob = probEmpty
		}
	}
	key := r.keys[k0:]
	r.Series = append(r.Series, Series{
		// Lengths only; link makes them sub-slices.
		Samples:    r.Samples[s0:len(r.Samples):len(r.Samples)],
		Key:        key[:len(key):len(key)],
		KeyLabels:  int32(nk),
		Exemplars:  int32(nex),
		Histograms: int32(nh),
		refs0:      int32(r0),
		nrefs:      int32(len(refs)),
		problem:    prob,
	})
	return nil
}

// appendRefs appends the label references of one labels_refs field
// (packed, or one unpacked element) at b[pos:end] to r.Refs and returns
// the position after it.
func (r *Request) appendRefs(b []byte, tagPos, pos, end, wt int) (int, error) {
	switch wt {
	case wireVarint:
		v, next := uvarint(b, pos, end)
		if next < 0 {
			return 0, varintErr(next, pos, "labels_refs")
		}
		if !r.spend(refBytes) {
			return 0, r.tooLarge()
		}
		if len(r.Refs) == cap(r.Refs) && !r.sized {
			if err := r.presizeV2(); err != nil {
				return 0, err
			}
		}
		r.Refs = append(r.Refs, uint32(v))
		return next, nil
	case wireBytes:
		start, stop, err := readLen(b, pos, end, "labels_refs")
		if err != nil {
			return 0, err
		}
		// At most a reference per byte: with room for that many (or
		// sized), the loop only appends; else it checks every append.
		if cap(r.Refs)-len(r.Refs) < stop-start && !r.sized {
			return stop, r.appendRefsSlow(b, start, stop)
		}
		refs := r.Refs
		n0 := len(refs)
		for p := b[start:stop]; len(p) > 0; {
			// A uint32 field keeps the low 32 bits of a longer varint,
			// as every protobuf decoder does.
			if c := p[0]; c < 0x80 { // references below 128: one byte
				refs = append(refs, uint32(c))
				p = p[1:]
				continue
			}
			if len(p) >= 2 && p[1] < 0x80 { // below 16384: two bytes
				refs = append(refs, uint32(p[0]&0x7f)|uint32(p[1])<<7)
				p = p[2:]
				continue
			}
			v, next := uvarint(p, 0, len(p))
			if next == -1 {
				return 0, protoErr(stop-len(p), "labels_refs", ReasonPacked, "last varint runs past the field")
			} else if next < 0 {
				return 0, varintErr(next, stop-len(p), "labels_refs")
			}
			refs = append(refs, uint32(v))
			p = p[next:]
		}
		if !r.spend((len(refs) - n0) * refBytes) {
			return 0, r.tooLarge()
		}
		r.Refs = refs
		return stop, nil
	}
	return 0, protoErr(tagPos, "labels_refs", ReasonWireType, fmt.Sprintf("wire type %d, want 0 or 2", wt))
}

// appendRefsSlow is appendRefs of a packed field at b[start:stop] that
// may not fit in r.Refs: it presizes when an append would grow it.
func (r *Request) appendRefsSlow(b []byte, start, stop int) error {
	for p := start; p < stop; {
		v, next := uvarint(b, p, stop)
		if next == -1 {
			return protoErr(p, "labels_refs", ReasonPacked, "last varint runs past the field")
		} else if next < 0 {
			return varintErr(next, p, "labels_refs")
		}
		if !r.spend(refBytes) {
			return r.tooLarge()
		}
		if len(r.Refs) == cap(r.Refs) && !r.sized {
			if err := r.presizeV2(); err != nil {
				return err
			}
		}
		r.Refs = append(r.Refs, uint32(v))
		p = next
	}
	return nil
}

// errBadRef: keyV2 met a reference outside the symbols read so far.
var errBadRef = errors.New("remotewrite: reference outside the symbols read")

// keyV2 appends the series key of the label references r.Refs[r0:] (an
// even number) to r.keys, sorting them by name first if they are not,
// and returns the number of labels in it; or errBadRef, with nothing
// appended, if a reference is outside the symbols read so far.
//
// Keys of consecutive series often share their first labels (a metric's
// series differ in their last labels, in name order): the labels the
// series shares with the previous one, found by comparing references (a
// few integer comparisons), are copied from the previous key in one copy
// and not checked or compared by name again. 48% of node_exporter labels
// are shared so: 15% less CPU per decoded sample than building every key
// from the symbols (the same binary both ways, benchstat, n=8). (Copying
// also the runs of labels that equal the previous series' at the same
// index, 69% of them, was 7% slower: it needs more bookkeeping per
// label.)
func (r *Request) keyV2(r0 int) (int, error) {
	syms := r.Symbols
	refs := r.Refs[r0:]
	k, shared, need := 0, 0, 0
	for sorted := false; !sorted; {
		// k: references of whole labels shared with the previous series.
		prev := r.Refs[r.prevRefs0 : r.prevRefs0+r.prevNRefs]
		k = 0
		for k < len(refs) && k < len(prev) && refs[k] == prev[k] {
			k++
		}
		k &^= 1
		shared = 0
		if k > 0 {
			shared = int(r.ends[k/2-1].off)
		}
		// The rest: inside the symbols (the shared ones are, as they
		// were in the previous series), in order, and how long.
		need, sorted = shared, true
		for i := k; i < len(refs); i += 2 {
			if int(refs[i]) >= len(syms) || int(refs[i+1]) >= len(syms) {
				return 0, errBadRef
			}
			name, val := syms[refs[i]], syms[refs[i+1]]
			if sorted && i > 0 && nameLess(name, syms[refs[i-2]]) {
				sorted = false
			}
			if len(val) != 0 {
				need += len(name) + len(val) + 2
			}
		}
		if !sorted {
			// As Prometheus 3 sorts them (labels.ScratchBuilder.Sort);
			// stable, so duplicates keep their wire order.
			pairs := unsafe.Slice((*[2]uint32)(unsafe.Pointer(unsafe.SliceData(refs))), len(refs)/2)
			slices.SortStableFunc(pairs, func(a, b [2]uint32) int { return bytes.Compare(syms[a[0]], syms[b[0]]) })
		}
	}
	// The key bytes, and the label ends of the longest series so far
	// (ends: 8 bytes per label, kept for the next series).
	spent := need
	if grown := len(refs)/2 - cap(r.ends); grown > 0 {
		spent += 8 * grown
	}
	if !r.spend(spent) {
		return 0, r.tooLarge()
	}
	if cap(r.keys)-len(r.keys) < need && !r.sized {
		if err := r.presizeV2(); err != nil {
			return 0, err
		}
	}
	key0 := len(r.keys)
	keys := append(r.keys, r.keys[r.prevKey0:r.prevKey0+shared]...)
	nk := 0
	if k > 0 {
		nk = int(r.ends[k/2-1].labels)
	}
	ends := r.ends[:k/2]
	for i := k; i < len(refs); i += 2 {
		if val := syms[refs[i+1]]; len(val) != 0 {
			keys = write.AppendLabel(keys, syms[refs[i]], val)
			nk++
		}
		ends = append(ends, labelEnd{off: int32(len(keys) - key0), labels: int32(nk)})
	}
	r.keys, r.ends = keys, ends
	r.prevRefs0, r.prevNRefs, r.prevKey0 = r0, len(refs), key0
	return nk, nil
}

// decodeSampleV2 decodes the 2.0 Sample in b[pos:end]: 1.0's fields plus
// start_timestamp (3), returned (0 if absent). As in proto3, a field that
// occurs twice keeps its last value; a missing field is 0.
func decodeSampleV2(b []byte, pos, end int) (Sample, int64, error) {
	// Fast path: value then timestamp, as every encoder writes them
	// (without a start timestamp, which proto3 omits when zero).
	if end-pos >= 11 && b[pos] == 1<<3|wireFixed64 && b[pos+9] == 2<<3|wireVarint {
		if t, next := uvarint(b, pos+10, end); next == end {
			return Sample{T: int64(t), V: math.Float64frombits(fixed64(b, pos+1))}, 0, nil
		}
	}
	var s Sample
	var st int64
	for pos < end {
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return s, st, err
		}
		pos = next
		switch num {
		case 1: // double value = 1
			if err := wantWire(wt, wireFixed64, tagPos, "value"); err != nil {
				return s, st, err
			}
			if end-pos < 8 {
				return s, st, protoErr(pos, "value", ReasonTruncated, "fixed64")
			}
			s.V = math.Float64frombits(fixed64(b, pos))
			pos += 8
		case 2, 3: // int64 timestamp = 2; int64 start_timestamp = 3
			name := "timestamp"
			if num == 3 {
				name = "start_timestamp"
			}
			if err := wantWire(wt, wireVarint, tagPos, name); err != nil {
				return s, st, err
			}
			v, next := uvarint(b, pos, end)
			if next < 0 {
				return s, st, varintErr(next, pos, name)
			}
			if num == 2 {
				s.T = int64(v)
			} else {
				st = int64(v)
			}
			pos = next
		default:
			if pos, err = skip(b, tagPos, pos, end, wt, num); err != nil {
				return s, st, err
			}
		}
	}
	return s, st, nil
}

// startTimestampBytes is what a StartTimestamp costs the decoder's budget.
const startTimestampBytes = int(unsafe.Sizeof(StartTimestamp{}))

// decodeMetadataV2 decodes the 2.0 Metadata in b[pos:end] into m (fields
// present overwrite those of an earlier occurrence): type (1), help_ref
// (3), unit_ref (4), all varints; the references as uint32.
func decodeMetadataV2(b []byte, pos, end int, m *metaV2) error {
	for pos < end {
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return err
		}
		pos = next
		var f *uint64
		var name string
		switch num {
		case 1:
			f, name = &m.typ, "type"
		case 3:
			f, name = &m.help, "help_ref"
		case 4:
			f, name = &m.unit, "unit_ref"
		default:
			if pos, err = skip(b, tagPos, pos, end, wt, num); err != nil {
				return err
			}
			continue
		}
		if err := wantWire(wt, wireVarint, tagPos, name); err != nil {
			return err
		}
		v, next := uvarint(b, pos, end)
		if next < 0 {
			return varintErr(next, pos, name)
		}
		if num == 1 {
			*f = v
		} else {
			*f = uint64(uint32(v))
		}
		pos = next
	}
	return nil
}

// countElementsV2 returns, for the 2.0 Request in b, at least as many of
// each element as UnmarshalV2 appends before it stops, and the bytes of
// the keys; r.Symbols must hold every symbol of b (for the key lengths).
// It reads only tags, lengths and label references, and stops at the
// first bad one, where UnmarshalV2 fails too. Every count but the key
// bytes is at most len(b)/2; the key bytes are bounded by the budget
// check of the caller.
func (r *Request) countElementsV2(b []byte) elements {
	var c elements
	c.symbols = len(r.Symbols)
	end := len(b)
	for pos := 0; pos < end; {
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return c
		}
		if wt != wireBytes {
			if pos, err = skip(b, tagPos, next, end, wt, num); err != nil {
				return c
			}
			continue
		}
		start, stop, err := readLen(b, next, end, "")
		if err != nil {
			return c
		}
		if num == 5 {
			c.series++
			if !r.countSeriesV2(&c, b, start, stop) {
				return c
			}
		}
		pos = stop
	}
	return c
}

// countSeriesV2 adds the elements of the 2.0 TimeSeries in b[pos:end] to
// c; false means it stopped at a bad tag or length.
func (r *Request) countSeriesV2(c *elements, b []byte, pos, end int) bool {
	var pending uint64 // a name reference waiting for its value
	half := false
	ref := func(v uint64) {
		c.refs++
		if !half {
			pending, half = v, true
			return
		}
		half = false
		n, val := uint32(pending), uint32(v)
		if int(n) < len(r.Symbols) && int(val) < len(r.Symbols) && len(r.Symbols[val]) > 0 {
			c.keyBytes += len(r.Symbols[n]) + len(r.Symbols[val]) + 2
		}
	}
	for pos < end {
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return false
		}
		if num == 1 && wt == wireVarint {
			v, n := uvarint(b, next, end)
			if n < 0 {
				return false
			}
			ref(v)
			pos = n
			continue
		}
		if wt != wireBytes {
			if pos, err = skip(b, tagPos, next, end, wt, num); err != nil {
				return false
			}
			continue
		}
		start, stop, err := readLen(b, next, end, "")
		if err != nil {
			return false
		}
		switch num {
		case 1:
			for p := start; p < stop; {
				v, n := uvarint(b, p, stop)
				if n < 0 {
					return false
				}
				ref(v)
				p = n
			}
		case 2:
			c.samples++
		case 3:
			c.histograms++
		case 4:
			c.exemplars++
		case 5:
			c.metadata++
		}
		pos = stop
	}
	return true
}

// presizeV2 is presize for a 2.0 request: it loads every symbol (so that
// the key bytes can be counted), then sizes every slice for the whole
// body in one allocation each, or fails if the elements and keys exceed
// the budget, before allocating them.
//
//go:noinline
func (r *Request) presizeV2() error {
	r.sized = true
	nsym := 0
	b := r.Body
	for pos, end := 0, len(b); pos < end; {
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			break
		}
		if wt != wireBytes {
			if pos, err = skip(b, tagPos, next, end, wt, num); err != nil {
				break
			}
			continue
		}
		_, stop, err := readLen(b, next, end, "")
		if err != nil {
			break
		}
		if num == 4 {
			nsym++
		}
		pos = stop
	}
	limit := memPerByte*len(r.Body) + memSlack
	if nsym*symbolBytes > limit {
		return r.tooLarge()
	}
	r.Symbols = grow(r.Symbols, nsym)
	if err := r.loadSymbols(); err != nil {
		return err
	}
	c := r.countElementsV2(r.Body)
	if c.bytes()+c.keyBytes > limit {
		return r.tooLarge()
	}
	r.Series = grow(r.Series, c.series)
	r.Refs = grow(r.Refs, c.refs)
	r.Samples = grow(r.Samples, c.samples)
	r.Exemplars = grow(r.Exemplars, c.exemplars)
	r.Histograms = grow(r.Histograms, c.histograms)
	r.Metadata = grow(r.Metadata, c.metadata)
	r.keys = grow(r.keys, c.keyBytes)
	return nil
}

// labelEnd is where a label of a key ends: the key's length and the
// labels in it after the label.
type labelEnd struct{ off, labels int32 }
