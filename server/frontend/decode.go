package frontend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/server/cpuslot"
)

// decodeResult decodes a successful answer of the query API, streaming:
// one pass over the bytes (encoding/json's Unmarshal validated the
// whole answer first, then decoded it, 36% of a flood of heavy range
// queries' CPU), with a checkpoint of the query's CPU slot every
// cpuslot.TickEvery points, so that a day of a heavy query's points is
// not one long stretch no lighter tenant can interrupt. sl may be nil.
//
// The answer is the API's (Prometheus's JSON codec): an object with
// status, data (resultType, result, stats), warnings and infos. Series
// keep their metric's bytes as written; values and timestamps are read
// as the API wrote them (parseTimestamp, strconv.ParseFloat).
//
// Why jsoniter: it is the library Prometheus's codec writes these
// answers with, already in our build through Prometheus, and its
// Iterator reads a value at a time (encoding/json's Decoder.Token
// allocates an interface per token, jsonv2 is still experimental).
func decodeResult(body []byte, sl *cpuslot.Slot) (*result, error) {
	it := jsoniter.ConfigDefault.BorrowIterator(body)
	defer jsoniter.ConfigDefault.ReturnIterator(it)
	d := decoder{it: it, sl: sl}
	var (
		status, errMsg string
		r              = &result{}
		rawResult      []byte // the result, if read before resultType
	)
	if d.object(func(field string) {
		switch field {
		case "status":
			status = d.str()
		case "error":
			errMsg = d.str()
		case "warnings":
			r.warnings = d.strings()
		case "infos":
			r.infos = d.strings()
		case "data":
			d.object(func(field string) {
				switch field {
				case "resultType":
					r.resultType = d.str()
				case "result":
					if r.resultType == "" {
						rawResult = it.SkipAndReturnBytes()
						return
					}
					d.result(r)
				case "stats":
					raw := it.SkipAndReturnBytes()
					if it.Error == nil && !bytes.Equal(raw, []byte("null")) {
						r.stats = new(queryStats)
						if err := json.Unmarshal(raw, r.stats); err != nil {
							d.fail(fmt.Errorf("decode answer's stats: %w", err))
						}
					}
				default:
					it.Skip()
				}
			})
		default:
			it.Skip()
		}
	}) && rawResult != nil {
		it.ResetBytes(rawResult)
		d.result(r)
	}
	switch {
	case d.err != nil:
		return nil, d.err
	case it.Error != nil:
		return nil, fmt.Errorf("decode answer: %w", it.Error)
	case status != "success":
		return nil, fmt.Errorf("decode answer: status %q: %s", status, errMsg)
	}
	switch r.resultType {
	case "matrix", "vector":
		if r.series == nil {
			r.series = []series{}
		}
	case "scalar", "string":
	default:
		return nil, fmt.Errorf("decode answer: unknown result type %q", r.resultType)
	}
	return r, nil
}

// decoder reads an answer from it; err is the first error of its own
// (the iterator keeps its own in it.Error).
type decoder struct {
	it  *jsoniter.Iterator
	sl  *cpuslot.Slot
	err error
	lb  labels.ScratchBuilder
}

func (d *decoder) ok() bool { return d.err == nil && d.it.Error == nil }

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// object calls field for each of an object's fields (null: none) and
// reports whether all was read well.
func (d *decoder) object(field func(name string)) bool {
	d.it.ReadObjectCB(func(_ *jsoniter.Iterator, name string) bool {
		field(name)
		return d.ok()
	})
	return d.ok()
}

// array calls elem for each element of an array (null: none).
func (d *decoder) array(elem func()) bool {
	d.it.ReadArrayCB(func(*jsoniter.Iterator) bool {
		elem()
		return d.ok()
	})
	return d.ok()
}

// raw returns the next value's bytes as written (a copy), without the
// white space before it.
func (d *decoder) raw() []byte {
	return bytes.TrimLeft(d.it.SkipAndReturnBytes(), " \t\r\n")
}

func (d *decoder) str() string {
	if d.it.WhatIsNext() != jsoniter.StringValue {
		d.fail(errors.New("decode answer: want a string"))
		return ""
	}
	return d.it.ReadString()
}

func (d *decoder) strings() []string {
	var out []string
	d.array(func() { out = append(out, d.str()) })
	return out
}

// result reads the result of r.resultType.
func (d *decoder) result(r *result) {
	switch r.resultType {
	case "matrix", "vector":
		if d.it.ReadNil() {
			return
		}
		r.series = []series{}
		d.array(func() {
			s, ok := d.series()
			if !ok {
				return
			}
			r.series = append(r.series, s)
			if err := d.sl.Work(len(s.floats) + len(s.hists)); err != nil {
				d.fail(err)
			}
		})
	case "scalar", "string":
		// Kept as written: Prometheus writes these with encoding/json
		// (promql.Scalar.MarshalJSON), not the codec of series.
		r.raw = d.raw()
	default:
		d.it.Skip()
	}
	if !d.ok() && d.err == nil {
		d.fail(fmt.Errorf("decode %s: %w", r.resultType, d.it.Error))
	}
}

// series reads one series of a matrix or a vector.
func (d *decoder) series() (series, bool) {
	var s series
	d.object(func(field string) {
		switch field {
		case "metric":
			s.metric = d.raw()
			if d.ok() {
				s.lbls = d.labels(s.metric)
			}
		case "values":
			d.array(func() { s.floats = append(s.floats, d.fpoint()) })
		case "value":
			if !d.it.ReadNil() {
				s.floats = append(s.floats, d.fpoint())
			}
		case "histograms":
			d.array(func() { s.hists = append(s.hists, d.hpoint()) })
		case "histogram":
			if !d.it.ReadNil() {
				s.hists = append(s.hists, d.hpoint())
			}
		default:
			d.it.Skip()
		}
	})
	if s.floats == nil {
		s.floats = []fpoint{}
	}
	return s, d.ok()
}

// labels reads a metric's object of names and values.
func (d *decoder) labels(raw []byte) labels.Labels {
	it := jsoniter.ConfigDefault.BorrowIterator(raw)
	defer jsoniter.ConfigDefault.ReturnIterator(it)
	d.lb.Reset()
	it.ReadObjectCB(func(it *jsoniter.Iterator, name string) bool {
		if it.WhatIsNext() != jsoniter.StringValue {
			d.fail(fmt.Errorf("decode metric %s: label %q is not a string", raw, name))
			return false
		}
		d.lb.Add(name, it.ReadString())
		return true
	})
	if it.Error != nil {
		d.fail(fmt.Errorf("decode metric %s: %w", raw, it.Error))
	}
	d.lb.Sort()
	return d.lb.Labels()
}

// point reads a point, [timestamp, value], calling value for the
// second element.
func (d *decoder) point(value func()) int64 {
	var t int64
	i := 0
	d.array(func() {
		switch i {
		case 0:
			if d.it.WhatIsNext() != jsoniter.NumberValue {
				d.fail(fmt.Errorf("%w: not a number", errTimestamp))
				return
			}
			var err error
			if t, err = parseTimestamp(d.it.SkipAndReturnBytes()); err != nil {
				d.fail(err)
			}
		case 1:
			value()
		default:
			d.fail(errors.New("decode answer: a point of more than two elements"))
		}
		i++
	})
	if i != 2 && d.ok() {
		d.fail(fmt.Errorf("decode answer: a point of %d elements", i))
	}
	return t
}

func (d *decoder) fpoint() fpoint {
	var v float64
	t := d.point(func() {
		vs := d.str()
		if !d.ok() {
			return
		}
		var err error
		if v, err = strconv.ParseFloat(vs, 64); err != nil {
			d.fail(fmt.Errorf("value %q: %w", vs, err))
		}
	})
	return fpoint{t: t, v: v}
}

func (d *decoder) hpoint() hpoint {
	var raw []byte
	t := d.point(func() { raw = d.raw() })
	return hpoint{t: t, raw: raw}
}
