package remotewrite

import (
	"encoding/binary"
	"fmt"
)

// Protobuf wire types (https://protobuf.dev/programming-guides/encoding/).
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireStart   = 3 // start group (deprecated; skipped only)
	wireEnd     = 4 // end group
	wireFixed32 = 5
)

// maxFieldNumber is the largest legal protobuf field number, 2^29-1.
const maxFieldNumber = 1<<29 - 1

// Reason classifies a ProtoError, so that callers (the fuzz target) can tell
// the cases where this decoder is deliberately stricter than prompb's
// gogo-generated Unmarshal (see doc.go, "Deviations from prompb").
type Reason uint8

const (
	// ReasonTruncated: a varint, fixed-size value or length-delimited field
	// runs past the end of its enclosing message.
	ReasonTruncated Reason = iota + 1
	// ReasonOverflow: a varint longer than 10 bytes, or a 10-byte varint
	// whose last byte is above 1 (a value over 64 bits). gogo accepts the
	// latter and drops the high bits; we reject it.
	ReasonOverflow
	// ReasonWireType: wire type 6 or 7, or a known field with a wire type
	// its declaration does not allow.
	ReasonWireType
	// ReasonFieldNumber: field number 0 or above 2^29-1. gogo rejects 0
	// but truncates large numbers to int32 and may then accept them.
	ReasonFieldNumber
	// ReasonGroup: an end-group tag without a start, or a group that is
	// not closed inside its enclosing message.
	ReasonGroup
	// ReasonPacked: a packed repeated field whose bytes are not a whole
	// number of elements. gogo lets the last element run past the packed
	// field into the bytes that follow it.
	ReasonPacked
)

func (r Reason) String() string {
	switch r {
	case ReasonTruncated:
		return "truncated"
	case ReasonOverflow:
		return "varint overflows 64 bits"
	case ReasonWireType:
		return "wrong wire type"
	case ReasonFieldNumber:
		return "illegal field number"
	case ReasonGroup:
		return "unbalanced group"
	case ReasonPacked:
		return "packed field is not a whole number of elements"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// ProtoError reports malformed protobuf: where (byte offset in the
// decompressed body, and the field path) and why. It wraps ErrMalformed.
type ProtoError struct {
	Offset int    // byte offset in the uncompressed WriteRequest
	Field  string // e.g. "timeseries[3].samples[0].timestamp"
	Reason Reason
	Detail string // extra words, e.g. "wire type 0, want 2"; may be empty
}

func (e *ProtoError) Error() string {
	s := fmt.Sprintf("%v at byte %d in %s: %v", ErrMalformed, e.Offset, e.Field, e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *ProtoError) Unwrap() error { return ErrMalformed }

// protoErr builds a ProtoError; field is completed by the callers on the
// way up (prefix), so the hot path never formats a path.
func protoErr(off int, field string, r Reason, detail string) *ProtoError {
	return &ProtoError{Offset: off, Field: field, Reason: r, Detail: detail}
}

// prefix prepends a path element to e's field: "labels[2]" + "name".
func prefix(err error, elem string) error {
	if e, ok := err.(*ProtoError); ok {
		if e.Field == "" {
			e.Field = elem
		} else {
			e.Field = elem + "." + e.Field
		}
	}
	return err
}

// uvarint reads a varint at b[pos:end]. It returns the value and the
// position after it; on error the position is negative: -1 truncated, -2
// overflow. readTag and readLen take the one-byte case before calling it.
//
// Varints of up to 10 bytes are accepted, including non-minimal ones
// (0x80 0x00 is a valid 0), as every protobuf decoder does; the 10th byte
// must be 0 or 1, as in google.golang.org/protobuf's protowire.
func uvarint(b []byte, pos, end int) (uint64, int) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if pos >= end {
			return 0, -1
		}
		c := b[pos]
		pos++
		if shift == 63 && c > 1 {
			return 0, -2
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, pos
		}
	}
	return 0, -2
}

// varintErr turns uvarint's negative position into a ProtoError at off.
func varintErr(code, off int, field string) *ProtoError {
	if code == -1 {
		return protoErr(off, field, ReasonTruncated, "varint")
	}
	return protoErr(off, field, ReasonOverflow, "")
}

// readTag reads a field tag at b[pos:end] and returns the field number,
// the wire type and the position after the tag.
func readTag(b []byte, pos, end int) (num uint64, wt int, next int, err error) {
	// Fast path: a one-byte tag with a valid field number and wire type
	// (fields 1-15). Not inlined (cost 118, budget 80).
	if pos < end {
		if c := b[pos]; c < 0x80 && c >= 8 && c&7 <= wireFixed32 {
			return uint64(c >> 3), int(c & 7), pos + 1, nil
		}
	}
	return readTagSlow(b, pos, end)
}

func readTagSlow(b []byte, pos, end int) (num uint64, wt int, next int, err error) {
	var v uint64
	if v, next = uvarint(b, pos, end); next < 0 {
		return 0, 0, 0, varintErr(next, pos, "tag")
	}
	num, wt = v>>3, int(v&7)
	if num == 0 || num > maxFieldNumber {
		return 0, 0, 0, protoErr(pos, "tag", ReasonFieldNumber, fmt.Sprintf("field %d", num))
	}
	if wt > wireFixed32 {
		return 0, 0, 0, protoErr(pos, "tag", ReasonWireType, fmt.Sprintf("invalid wire type %d", wt))
	}
	return num, wt, next, nil
}

// readLen reads the length prefix of a length-delimited field at
// b[pos:end] and returns the position of the field's first and
// one-past-last byte. INVARIANT: on success pos <= start <= stop <= end.
func readLen(b []byte, pos, end int, field string) (start, stop int, err error) {
	// Fast path: a one-byte length that fits.
	if pos < end {
		if n := int(b[pos]); n < 0x80 && n < end-pos {
			return pos + 1, pos + 1 + n, nil
		}
	}
	return readLenSlow(b, pos, end, field)
}

func readLenSlow(b []byte, pos, end int, field string) (start, stop int, err error) {
	var n uint64
	if n, start = uvarint(b, pos, end); start < 0 {
		return 0, 0, varintErr(start, pos, field)
	}
	if n > uint64(end-start) {
		return 0, 0, protoErr(pos, field, ReasonTruncated, fmt.Sprintf("length %d with %d bytes left", n, end-start))
	}
	return start, start + int(n), nil
}

// wantWire checks the wire type of a known field.
func wantWire(got, want, off int, field string) error {
	if got != want {
		return wireTypeErr(got, want, off, field)
	}
	return nil
}

// wireTypeErr is out of line so that wantWire inlines.
func wireTypeErr(got, want, off int, field string) error {
	return protoErr(off, field, ReasonWireType, fmt.Sprintf("wire type %d, want %d", got, want))
}

// skip skips the value of an unknown field with wire type wt whose tag
// started at tagPos and whose value starts at pos, and returns the
// position after it. Groups are skipped as gogo's skip functions do: by
// nesting depth, without matching the end tag's field number (groups do
// not exist in proto3; checking them would only add a deviation).
func skip(b []byte, tagPos, pos, end int, wt int, num uint64) (int, error) {
	depth := 0
	for {
		switch wt {
		case wireVarint:
			_, next := uvarint(b, pos, end)
			if next < 0 {
				return 0, varintErr(next, pos, unknownField(num))
			}
			pos = next
		case wireFixed64, wireFixed32:
			n := 8
			if wt == wireFixed32 {
				n = 4
			}
			if end-pos < n {
				return 0, protoErr(pos, unknownField(num), ReasonTruncated, fmt.Sprintf("fixed%d", 8*n))
			}
			pos += n
		case wireBytes:
			_, stop, err := readLen(b, pos, end, "")
			if err != nil {
				return 0, prefix(err, unknownField(num))
			}
			pos = stop
		case wireStart:
			depth++
		case wireEnd:
			if depth == 0 {
				return 0, protoErr(tagPos, unknownField(num), ReasonGroup, "end group without start")
			}
			depth--
		}
		if depth == 0 {
			return pos, nil
		}
		if pos >= end {
			return 0, protoErr(tagPos, unknownField(num), ReasonGroup, "group not closed")
		}
		var err error
		tagPos = pos
		if _, wt, pos, err = readTag(b, pos, end); err != nil {
			return 0, prefix(err, unknownField(num))
		}
	}
}

// unknownField names an unknown field in error paths.
func unknownField(num uint64) string { return fmt.Sprint("field ", num) }

// fixed64 reads a little-endian 64-bit value; the caller checked the bounds.
func fixed64(b []byte, pos int) uint64 { return binary.LittleEndian.Uint64(b[pos:]) }
