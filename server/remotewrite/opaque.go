package remotewrite

import "fmt"

// Exemplars, metadata and native histograms are built apart
// (Request.Exemplar, MetadataOf, Histogram: only for the series stored),
// but a request that prompb would reject must be rejected here too, so their
// bytes are checked against the schema of types.proto (wire types of known
// fields, nested messages, packed fields) without building anything.
// Rejected alternative: skipping them unchecked, which accepts requests
// that Prometheus itself answers with 400.

// msgType names the messages that are only checked, never built.
type msgType uint8

const (
	msgLabel       msgType = iota + 1 // Label, inside an Exemplar
	msgExemplar                       // Exemplar
	msgHistogram                      // Histogram
	msgBucketSpan                     // BucketSpan, inside a Histogram
	msgMetadata                       // MetricMetadata
	msgHistogramV2                    // 2.0 Histogram: 1.0's and start_timestamp
	msgExemplarV2                     // 2.0 Exemplar: labels_refs, value, timestamp
)

// fieldType is how a known field may appear on the wire.
type fieldType uint8

const (
	ftUnknown       fieldType = iota // skipped like any unknown field
	ftVarint                         // int64, uint64, sint32, enum: wire type 0
	ftFixed64                        // double: wire type 1
	ftBytes                          // string: wire type 2
	ftMessage                        // embedded message: wire type 2, checked recursively
	ftPackedVarint                   // repeated sint64: wire type 0, or 2 (packed)
	ftPackedFixed64                  // repeated double: wire type 1, or 2 (packed)
)

// fieldOf returns the type and name of field num of message m, and for
// ftMessage the type of the embedded message. It is the schema of
// prompb/types.proto and prompb/io/prometheus/write/v2/types.proto
// (Prometheus v0.314) for the checked messages.
func fieldOf(m msgType, num uint64) (fieldType, msgType, string) {
	switch m {
	case msgHistogramV2:
		if num == 17 {
			return ftVarint, 0, "start_timestamp"
		}
		return fieldOf(msgHistogram, num)
	case msgExemplarV2:
		switch num {
		case 1:
			return ftPackedVarint, 0, "labels_refs"
		case 2:
			return ftFixed64, 0, "value"
		case 3:
			return ftVarint, 0, "timestamp"
		}
	case msgLabel:
		switch num {
		case 1:
			return ftBytes, 0, "name"
		case 2:
			return ftBytes, 0, "value"
		}
	case msgExemplar:
		switch num {
		case 1:
			return ftMessage, msgLabel, "labels"
		case 2:
			return ftFixed64, 0, "value"
		case 3:
			return ftVarint, 0, "timestamp"
		}
	case msgHistogram:
		switch num {
		case 1:
			return ftVarint, 0, "count_int"
		case 2:
			return ftFixed64, 0, "count_float"
		case 3:
			return ftFixed64, 0, "sum"
		case 4:
			return ftVarint, 0, "schema"
		case 5:
			return ftFixed64, 0, "zero_threshold"
		case 6:
			return ftVarint, 0, "zero_count_int"
		case 7:
			return ftFixed64, 0, "zero_count_float"
		case 8:
			return ftMessage, msgBucketSpan, "negative_spans"
		case 9:
			return ftPackedVarint, 0, "negative_deltas"
		case 10:
			return ftPackedFixed64, 0, "negative_counts"
		case 11:
			return ftMessage, msgBucketSpan, "positive_spans"
		case 12:
			return ftPackedVarint, 0, "positive_deltas"
		case 13:
			return ftPackedFixed64, 0, "positive_counts"
		case 14:
			return ftVarint, 0, "reset_hint"
		case 15:
			return ftVarint, 0, "timestamp"
		case 16:
			return ftPackedFixed64, 0, "custom_values"
		}
	case msgBucketSpan:
		switch num {
		case 1:
			return ftVarint, 0, "offset"
		case 2:
			return ftVarint, 0, "length"
		}
	case msgMetadata:
		switch num {
		case 1:
			return ftVarint, 0, "type"
		case 2:
			return ftBytes, 0, "metric_family_name"
		case 4:
			return ftBytes, 0, "help"
		case 5:
			return ftBytes, 0, "unit"
		}
	}
	return ftUnknown, 0, ""
}

// checkMsg checks that b[pos:end] is a well-formed message of type m.
// Errors carry absolute offsets and a field path relative to the message.
func checkMsg(b []byte, pos, end int, m msgType) error {
	for pos < end {
		tagPos := pos
		num, wt, next, err := readTag(b, pos, end)
		if err != nil {
			return err
		}
		pos = next
		ft, sub, name := fieldOf(m, num)
		switch ft {
		case ftUnknown:
			if pos, err = skip(b, tagPos, pos, end, wt, num); err != nil {
				return err
			}
		case ftVarint:
			if err := wantWire(wt, wireVarint, tagPos, name); err != nil {
				return err
			}
			_, next := uvarint(b, pos, end)
			if next < 0 {
				return varintErr(next, pos, name)
			}
			pos = next
		case ftFixed64:
			if err := wantWire(wt, wireFixed64, tagPos, name); err != nil {
				return err
			}
			if end-pos < 8 {
				return protoErr(pos, name, ReasonTruncated, "fixed64")
			}
			pos += 8
		case ftBytes, ftMessage:
			if err := wantWire(wt, wireBytes, tagPos, name); err != nil {
				return err
			}
			start, stop, err := readLen(b, pos, end, name)
			if err != nil {
				return err
			}
			if ft == ftMessage {
				if err := checkMsg(b, start, stop, sub); err != nil {
					return prefix(err, name)
				}
			}
			pos = stop
		case ftPackedVarint:
			if pos, err = checkPacked(b, tagPos, pos, end, wt, wireVarint, name); err != nil {
				return err
			}
		case ftPackedFixed64:
			if pos, err = checkPacked(b, tagPos, pos, end, wt, wireFixed64, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPacked checks one occurrence of a repeated scalar field, packed
// (wire type 2) or not (wire type elem), and returns the position after it.
func checkPacked(b []byte, tagPos, pos, end int, wt, elem int, name string) (int, error) {
	switch wt {
	case elem:
		if elem == wireFixed64 {
			if end-pos < 8 {
				return 0, protoErr(pos, name, ReasonTruncated, "fixed64")
			}
			return pos + 8, nil
		}
		_, next := uvarint(b, pos, end)
		if next < 0 {
			return 0, varintErr(next, pos, name)
		}
		return next, nil
	case wireBytes:
		start, stop, err := readLen(b, pos, end, name)
		if err != nil {
			return 0, err
		}
		if elem == wireFixed64 {
			if (stop-start)%8 != 0 {
				return 0, protoErr(start, name, ReasonPacked, fmt.Sprintf("%d bytes of doubles", stop-start))
			}
			return stop, nil
		}
		for p := start; p < stop; {
			_, next := uvarint(b, p, stop)
			if next == -1 {
				return 0, protoErr(p, name, ReasonPacked, "last varint runs past the field")
			} else if next < 0 {
				return 0, varintErr(next, p, name)
			}
			p = next
		}
		return stop, nil
	}
	return 0, protoErr(tagPos, name, ReasonWireType, fmt.Sprintf("wire type %d, want %d or 2", wt, elem))
}
