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
const outcomeVersion byte = 1

// Cause codes: which sentinel an encoded error matches (doc.go).
const (
	causeNone  byte = 0 // no error
	causeOther byte = 6 // an error that matches none of causeKinds
)

// causeKinds are the sentinels by cause code (index+1). Values are part
// of the format: never reorder them.
var causeKinds = [...]error{ErrOutOfOrder, ErrDuplicateSample, ErrTooOld, ErrInvalidLabels, ErrCorrupt}

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
			code = byte(i + 1)
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
// ErrInvalidLabels, ErrCorrupt). Decoding errors wrap ErrCorruptOutcome.
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
	if v := src[0]; v != outcomeVersion {
		return Outcome{}, r.fail("unknown version %d", v)
	}
	r.off = 1
	var o Outcome
	var err error
	if o.Err, err = r.cause(); err != nil {
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
		cause, err := r.cause()
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
// encoded text matching the code's sentinel. err reports bad input.
func (r *reader) cause() (cause, err error) {
	if r.off >= len(r.src) {
		return nil, r.fail("missing cause")
	}
	code := r.src[r.off]
	r.off++
	n, err := r.count("text length", 1)
	switch {
	case err != nil:
		return nil, err
	case code > causeOther:
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
	return &decodedError{kind: causeKinds[code-1], text: text}, nil
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
