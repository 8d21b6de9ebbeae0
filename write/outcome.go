package write

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Outcome is what applying one log entry (one batch) reported to its
// proposer: the series whose samples were refused, or an error that
// refused the whole entry. The zero Outcome, "nothing to report", means
// every sample was applied.
type Outcome struct {
	// Refused lists the series with refused samples, by index in the
	// batch.
	Refused []Refusal
	// Err refused the whole entry: the same on every replica, so it is
	// the proposer's problem (a batch that does not decode wraps
	// ErrCorrupt), not a failure of the replica.
	Err error
}

// ErrCorruptOutcome: an encoded outcome that does not decode.
var ErrCorruptOutcome = errors.New("write: corrupt outcome")

// outcomeVersion is the first byte of a non-empty encoded outcome (layout
// in doc.go). A change of the layout or of the cause codes bumps it.
// Version 2 added cause codes 7 and 8; DecodeOutcome still reads 1.
const outcomeVersion byte = 2

// Cause codes: which sentinel an encoded error matches (doc.go).
const (
	causeNone  byte = 0 // no error
	causeOther byte = 6 // an error that matches none of causeKinds
)

// causeKinds are the sentinels by cause code: code i+1 for i < 5, then
// code i+2 (code 6 is causeOther). Values are part of the format: never
// reorder them.
var causeKinds = [...]error{ErrOutOfOrder, ErrDuplicateSample, ErrTooOld, ErrInvalidLabels, ErrCorrupt,
	ErrSeriesLimit, ErrMetricSeriesLimit}

// maxCause is the highest cause code of each outcome version.
var maxCause = map[byte]byte{1: causeOther, 2: 8}

// causeCode returns the code of causeKinds[i].
func causeCode(i int) byte {
	if i < 5 {
		return byte(i + 1)
	}
	return byte(i + 2)
}

// causeKind returns the sentinel of a code other than causeNone and
// causeOther.
func causeKind(code byte) error {
	if code < causeOther {
		return causeKinds[code-1]
	}
	return causeKinds[code-2]
}

// AppendOutcome appends the encoding of o to dst (layout in doc.go). An
// Outcome with nothing to report (no refusals, Err nil) appends nothing:
// an empty outcome means every sample was applied, and a raft entry's nil
// outcome stays nil.
func AppendOutcome(dst []byte, o Outcome) []byte {
	if len(o.Refused) == 0 && o.Err == nil {
		return dst
	}
	dst = append(dst, outcomeVersion)
	dst = appendCause(dst, o.Err)
	dst = binary.AppendUvarint(dst, uint64(len(o.Refused)))
	for _, r := range o.Refused {
		if r.Series < 0 || r.Rejected < 0 {
			panic(fmt.Sprintf("BUG: refusal of %d samples of series %d", r.Rejected, r.Series))
		}
		dst = binary.AppendUvarint(dst, uint64(r.Series))
		dst = binary.AppendUvarint(dst, uint64(r.Rejected))
		dst = appendCause(dst, r.Err)
	}
	return dst
}

// appendCause appends err as a cause: its code and its text.
func appendCause(dst []byte, err error) []byte {
	if err == nil {
		return append(dst, causeNone, 0)
	}
	code := causeOther
	for i, k := range causeKinds {
		if errors.Is(err, k) {
			code = causeCode(i)
			break
		}
	}
	return appendString(append(dst, code), err.Error())
}

// minRefusalBytes is the smallest encoded refusal: series, rejected, code
// and text length, one byte each. It bounds the refusal count read from
// the input before allocating.
const minRefusalBytes = 4

// DecodeOutcome decodes AppendOutcome's encoding; empty src is the zero
// Outcome. Each decoded error has the text it had and matches its
// sentinel with errors.Is (ErrOutOfOrder, ErrDuplicateSample, ErrTooOld,
// ErrInvalidLabels, ErrCorrupt, ErrSeriesLimit, ErrMetricSeriesLimit). Decoding errors wrap ErrCorruptOutcome.
// It never panics and allocates O(len(src)); the result does not alias
// src.
func DecodeOutcome(src []byte) (Outcome, error) {
	if len(src) == 0 {
		return Outcome{}, nil
	}
	o, err := decodeOutcome(src)
	if err != nil {
		// The reader's errors are *CorruptErrors, which name a batch.
		var ce *CorruptError
		if !errors.As(err, &ce) {
			panic(fmt.Sprintf("BUG: decode outcome: %v", err))
		}
		return Outcome{}, fmt.Errorf("decode outcome: byte %d: %s: %w", ce.Offset, ce.Reason, ErrCorruptOutcome)
	}
	return o, nil
}

// decodeOutcome is DecodeOutcome for non-empty src; its errors are the
// reader's.
func decodeOutcome(src []byte) (Outcome, error) {
	r := reader{src: src}
	top, ok := maxCause[src[0]]
	if !ok {
		return Outcome{}, r.fail("unknown version %d", src[0])
	}
	r.off = 1
	var o Outcome
	var err error
	if o.Err, err = r.cause(top); err != nil {
		return Outcome{}, err
	}
	n, err := r.count("refusal count", minRefusalBytes)
	if err != nil {
		return Outcome{}, err
	}
	if n > 0 {
		o.Refused = make([]Refusal, 0, n)
	}
	for range n {
		series, err := r.uvarint("series")
		if err != nil {
			return Outcome{}, err
		}
		rejected, err := r.uvarint("rejected count")
		if err != nil {
			return Outcome{}, err
		}
		if series > math.MaxInt32 || rejected > math.MaxInt32 {
			return Outcome{}, r.fail("refusal of %d samples of series %d", rejected, series)
		}
		cause, err := r.cause(top)
		if err != nil {
			return Outcome{}, err
		}
		o.Refused = append(o.Refused, Refusal{Series: int(series), Rejected: int(rejected), Err: cause})
	}
	if r.off != len(src) {
		return Outcome{}, r.fail("%d trailing bytes", len(src)-r.off)
	}
	return o, nil
}

// cause reads an encoded error: nil for causeNone, else an error with the
// encoded text matching the code's sentinel; codes above top are
// corrupt. err reports bad input.
func (r *reader) cause(top byte) (cause, err error) {
	if r.off >= len(r.src) {
		return nil, r.fail("missing cause")
	}
	code := r.src[r.off]
	r.off++
	n, err := r.count("text length", 1)
	switch {
	case err != nil:
		return nil, err
	case code > top:
		return nil, r.fail("unknown cause code %d", code)
	case code == causeNone && n != 0:
		return nil, r.fail("text without a cause")
	}
	text := string(r.src[r.off : r.off+n])
	r.off += n
	switch code {
	case causeNone:
		return nil, nil
	case causeOther:
		return &decodedError{text: text}, nil
	}
	return &decodedError{kind: causeKind(code), text: text}, nil
}

// decodedError is an error that crossed the outcome codec: its text as it
// was, matching its sentinel (kind, nil for none) with errors.Is.
type decodedError struct {
	kind error
	text string
}

func (e *decodedError) Error() string { return e.text }

// Is makes errors.Is(e, e.kind) true.
func (e *decodedError) Is(target error) bool { return e.kind != nil && target == e.kind }
