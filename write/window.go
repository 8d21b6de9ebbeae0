package write

import (
	"encoding/binary"
	"time"
)

// VersionWindow is the first byte of a batch that carries its tenant's
// out-of-order time window: the window in milliseconds, then the batch
// itself in the version Append would write without one (Version or
// VersionHistograms). doc.go, "Batch encoding (version 6)". Append writes
// it only for a batch with a window, so a tenant without one writes what a
// replica of the previous release decodes.
//
// An envelope rather than a new layout: a window is one number per batch,
// and the batch inside keeps evolving on its own (a version 7 with
// exemplars can be wrapped as it is), so two format changes made at the
// same time do not have to be merged into one layout.
const VersionWindow byte = 6

// MaxOutOfOrderWindow bounds Batch.OutOfOrderWindowMs: 2^40 ms, about
// 35 years, more than any retention; it keeps the engine's
// time arithmetic far from overflow.
const MaxOutOfOrderWindow = 1 << 40

// OutOfOrderWindow returns the batch's window as a duration.
func (b *Batch) OutOfOrderWindow() time.Duration {
	return time.Duration(b.OutOfOrderWindowMs) * time.Millisecond
}

// clampWindow is a window as encoded: negative means none (0), and one
// above MaxOutOfOrderWindow is MaxOutOfOrderWindow.
func clampWindow(ms int64) int64 { return min(max(ms, 0), MaxOutOfOrderWindow) }

// appendWindow appends the VersionWindow envelope's header for window ms,
// or nothing for none.
func appendWindow(dst []byte, ms int64) []byte {
	if ms = clampWindow(ms); ms == 0 {
		return dst
	}
	return binary.AppendUvarint(append(dst, VersionWindow), uint64(ms))
}

// windowSize is the length of appendWindow's output.
func windowSize(ms int64) int {
	if ms = clampWindow(ms); ms == 0 {
		return 0
	}
	return 1 + uvarintLen(uint64(ms))
}

// window reads a VersionWindow header at r.off (the version byte), if
// there is one, and returns the window; r.off is then at the inner
// batch's version byte.
func (r *reader) window() (int64, error) {
	if r.off >= len(r.src) || r.src[r.off] != VersionWindow {
		return 0, nil
	}
	r.off++
	off := r.off
	v, err := r.uvarint("out-of-order window")
	if err != nil {
		return 0, err
	}
	if v == 0 || v > MaxOutOfOrderWindow {
		r.off = off
		return 0, r.fail("out-of-order window %d ms not in [1, %d]", v, uint64(MaxOutOfOrderWindow))
	}
	if r.off >= len(r.src) {
		return 0, r.fail("no batch after the out-of-order window")
	}
	return int64(v), nil
}
