package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorruptRefusals: encoded refusals that do not decode.
var ErrCorruptRefusals = errors.New("engine: corrupt encoded refusals")

// refusalKinds are the refusal sentinels by their code (index+1); code 0
// is a refusal of another kind, kept as text only.
var refusalKinds = []error{ErrOutOfOrder, ErrDuplicateSample, ErrTooOld, ErrInvalidLabels}

// AppendSeriesErrors appends the encoding of a batch's refusals, for a
// proposer on another node (version 1):
//
//	version:byte(1) | n:uvarint { series:uvarint rejected:uvarint code:byte msg:uvarint-length bytes }
//
// code says which sentinel the refusal matches (1 ErrOutOfOrder,
// 2 ErrDuplicateSample, 3 ErrTooOld, 4 ErrInvalidLabels, 0 none).
func AppendSeriesErrors(dst []byte, errs []SeriesError) []byte {
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(len(errs)))
	for _, e := range errs {
		dst = binary.AppendUvarint(dst, uint64(e.Series))
		dst = binary.AppendUvarint(dst, uint64(e.Rejected))
		code := byte(0)
		for i, k := range refusalKinds {
			if errors.Is(e.Err, k) {
				code = byte(i + 1)
				break
			}
		}
		msg := ""
		if e.Err != nil {
			msg = e.Err.Error()
		}
		dst = append(dst, code)
		dst = binary.AppendUvarint(dst, uint64(len(msg)))
		dst = append(dst, msg...)
	}
	return dst
}

// DecodeSeriesErrors decodes AppendSeriesErrors's encoding. Each Err has
// the text it had and matches its sentinel with errors.Is. Errors wrap
// ErrCorruptRefusals.
func DecodeSeriesErrors(src []byte) ([]SeriesError, error) {
	fail := func(what string) ([]SeriesError, error) {
		return nil, fmt.Errorf("%w: %s", ErrCorruptRefusals, what)
	}
	if len(src) == 0 || src[0] != 1 {
		return fail("version")
	}
	src = src[1:]
	uv := func() (uint64, bool) {
		v, k := binary.Uvarint(src)
		if k <= 0 {
			return 0, false
		}
		src = src[k:]
		return v, true
	}
	n, ok := uv()
	// Every refusal takes at least 4 bytes.
	if !ok || n > uint64(len(src))/4 {
		return fail("count")
	}
	out := make([]SeriesError, 0, n)
	for range n {
		series, ok1 := uv()
		rejected, ok2 := uv()
		if !ok1 || !ok2 || series > 1<<31 || rejected > 1<<31 || len(src) == 0 {
			return fail("refusal")
		}
		code := src[0]
		src = src[1:]
		l, ok := uv()
		if !ok || l > uint64(len(src)) || int(code) > len(refusalKinds) {
			return fail("refusal message")
		}
		msg := string(src[:l])
		src = src[l:]
		e := SeriesError{Series: int(series), Rejected: int(rejected), Err: errors.New(msg)}
		if code > 0 {
			e.Err = &remoteRefusal{kind: refusalKinds[code-1], msg: msg}
		}
		out = append(out, e)
	}
	if len(src) != 0 {
		return fail("trailing bytes")
	}
	return out, nil
}

// remoteRefusal is a decoded refusal: its text as it was, matching its
// sentinel with errors.Is.
type remoteRefusal struct {
	kind error
	msg  string
}

func (e *remoteRefusal) Error() string        { return e.msg }
func (e *remoteRefusal) Is(target error) bool { return target == e.kind }
