package write

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
)

// VersionDeleteSeries is the first byte of a delete_series log entry
// (AppendDeleteSeries; layout in doc.go). It is far from the batch
// versions (2, 3, 4 and the ones native histograms will take) so that an
// entry's kind is told by its first byte alone: a decoder dispatches on
// it (IsDelete) before it decodes a batch.
const VersionDeleteSeries byte = 0x40

// VersionDeleteTenant is the first byte of a tenant deletion log entry
// (AppendDeleteTenant).
const VersionDeleteTenant byte = 0x41

// VersionRetain is the first byte of a retention log entry
// (AppendRetain).
const VersionRetain byte = 0x42

// maxMatchers bounds the matchers of a delete_series entry: Prometheus
// takes one selector per match[] and we take their union as separate
// entries, so one selector never needs more than a few dozen.
const maxMatchers = 1 << 10

// DeleteSeries is a delete_series request of one tenant: every sample of
// every series whose labels match all Matchers, with a timestamp in
// [Start, End] (milliseconds, both included, as Prometheus's
// /api/v1/admin/tsdb/delete_series).
type DeleteSeries struct {
	Tenant   string
	Matchers []*labels.Matcher
	Start    int64
	End      int64
}

// All reports whether d deletes whole series: its range covers every
// possible timestamp.
func (d *DeleteSeries) All() bool {
	return d.Start == math.MinInt64 && d.End == math.MaxInt64
}

// IsDelete reports whether entry is a deletion (VersionDeleteSeries,
// VersionDeleteTenant or VersionRetain) rather than a write batch.
func IsDelete(entry []byte) bool {
	return len(entry) > 0 && entry[0] >= VersionDeleteSeries && entry[0] <= VersionRetain
}

// Retain is a retention step of one tenant: drop every time partition
// that ends at or before Before (milliseconds), and the series left with
// no sample. Before is math.MinInt64 to drop nothing new and only collect
// the series the engine's own retention (-storage.retention) left empty.
type Retain struct {
	Tenant string
	Before int64
	// Period is the tenant's retention_period in milliseconds, or 0 for
	// none: from this step on, the engine keeps the tenant's samples that
	// long behind its newest one, in place of its own retention (longer
	// or shorter), until a step says otherwise.
	Period int64
}

// AppendRetain appends the encoding of r (doc.go) to dst.
func AppendRetain(dst []byte, r Retain) []byte {
	dst = binary.AppendVarint(appendString(append(dst, VersionRetain), r.Tenant), r.Before)
	if r.Period != 0 {
		dst = binary.AppendVarint(dst, r.Period)
	}
	return dst
}

// DecodeRetain decodes a VersionRetain entry; an error is a
// *CorruptError.
func DecodeRetain(src []byte) (Retain, error) {
	r := reader{src: src}
	if len(src) == 0 || src[0] != VersionRetain {
		return Retain{}, r.fail("not a retention entry")
	}
	r.off = 1
	var ret Retain
	var err error
	if ret.Tenant, err = r.string("tenant"); err != nil {
		return Retain{}, err
	}
	if ret.Tenant == "" {
		return Retain{}, r.fail("empty tenant")
	}
	if ret.Before, err = r.varint("before"); err != nil {
		return Retain{}, err
	}
	if r.off < len(src) {
		if ret.Period, err = r.varint("period"); err != nil {
			return Retain{}, err
		}
		if ret.Period <= 0 {
			return Retain{}, r.fail("period %d, want more than 0", ret.Period)
		}
	}
	if r.off != len(src) {
		return Retain{}, r.fail("%d trailing bytes", len(src)-r.off)
	}
	return ret, nil
}

// AppendDeleteSeries appends the encoding of d (doc.go) to dst.
func AppendDeleteSeries(dst []byte, d *DeleteSeries) []byte {
	dst = append(dst, VersionDeleteSeries)
	dst = appendString(dst, d.Tenant)
	dst = binary.AppendVarint(dst, d.Start)
	dst = binary.AppendVarint(dst, d.End)
	dst = binary.AppendUvarint(dst, uint64(len(d.Matchers)))
	for _, m := range d.Matchers {
		dst = append(dst, byte(m.Type))
		dst = appendString(dst, m.Name)
		dst = appendString(dst, m.Value)
	}
	return dst
}

// AppendDeleteTenant appends the encoding of the deletion of tenant
// (doc.go) to dst.
func AppendDeleteTenant(dst []byte, tenant string) []byte {
	return appendString(append(dst, VersionDeleteTenant), tenant)
}

// DecodeDeleteSeries decodes a VersionDeleteSeries entry. It never panics
// and allocates O(len(src)); an error is a *CorruptError. A matcher whose
// regular expression does not compile is corrupt too: the proposer
// compiled it before it proposed the entry. The strings do not alias src.
func DecodeDeleteSeries(src []byte) (DeleteSeries, error) {
	r := reader{src: src}
	if len(src) == 0 || src[0] != VersionDeleteSeries {
		return DeleteSeries{}, r.fail("not a delete_series entry")
	}
	r.off = 1
	var d DeleteSeries
	var err error
	if d.Tenant, err = r.string("tenant"); err != nil {
		return DeleteSeries{}, err
	}
	if d.Tenant == "" {
		return DeleteSeries{}, r.fail("empty tenant")
	}
	if d.Start, err = r.varint("start"); err != nil {
		return DeleteSeries{}, err
	}
	if d.End, err = r.varint("end"); err != nil {
		return DeleteSeries{}, err
	}
	if d.End < d.Start {
		return DeleteSeries{}, r.fail("end %d before start %d", d.End, d.Start)
	}
	n, err := r.count("matcher count", 3)
	if err != nil {
		return DeleteSeries{}, err
	}
	if n == 0 || n > maxMatchers {
		return DeleteSeries{}, r.fail("%d matchers, want 1 to %d", n, maxMatchers)
	}
	d.Matchers = make([]*labels.Matcher, 0, n)
	for range n {
		off := r.off
		if r.off >= len(src) {
			return DeleteSeries{}, r.fail("truncated matcher")
		}
		typ := labels.MatchType(src[r.off])
		r.off++
		if typ > labels.MatchNotRegexp {
			r.off = off
			return DeleteSeries{}, r.fail("unknown matcher type %d", typ)
		}
		name, err := r.string("matcher name")
		if err != nil {
			return DeleteSeries{}, err
		}
		value, err := r.string("matcher value")
		if err != nil {
			return DeleteSeries{}, err
		}
		m, err := labels.NewMatcher(typ, name, value)
		if err != nil {
			r.off = off
			return DeleteSeries{}, r.fail("matcher: %v", err)
		}
		d.Matchers = append(d.Matchers, m)
	}
	if r.off != len(src) {
		return DeleteSeries{}, r.fail("%d trailing bytes", len(src)-r.off)
	}
	return d, nil
}

// DecodeDeleteTenant decodes a VersionDeleteTenant entry and returns the
// tenant; an error is a *CorruptError.
func DecodeDeleteTenant(src []byte) (string, error) {
	r := reader{src: src}
	if len(src) == 0 || src[0] != VersionDeleteTenant {
		return "", r.fail("not a tenant deletion entry")
	}
	r.off = 1
	tenant, err := r.string("tenant")
	if err != nil {
		return "", err
	}
	if tenant == "" {
		return "", r.fail("empty tenant")
	}
	if r.off != len(src) {
		return "", r.fail("%d trailing bytes", len(src)-r.off)
	}
	return tenant, nil
}

// string reads a length-prefixed string, copied.
func (r *reader) string(what string) (string, error) {
	n, err := r.count(what+" length", 1)
	if err != nil {
		return "", err
	}
	s := string(r.src[r.off : r.off+n])
	r.off += n
	return s, nil
}

// String returns d as Prometheus shows a selector with its range, for
// logs and errors.
func (d *DeleteSeries) String() string {
	return fmt.Sprintf("tenant %q %v [%d, %d]", d.Tenant, d.Matchers, d.Start, d.End)
}
