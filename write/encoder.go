package write

import (
	"sync"

	"github.com/klauspost/compress/s2"
)

// Encoder makes Raft log entries of batches: an entry is the batch in its
// compressed form (Append, then Compress; VersionS2), ~10x smaller than
// Version for remote-write batches, whose label sets repeat. The zero
// value is ready to use; it is safe for concurrent use and must not be
// copied after first use.
type Encoder struct {
	// bufs holds *[]byte buffers for the uncompressed batch, which is
	// compressed into the entry and then no longer needed, and for s2's
	// output, which needs room for the worst case (more than the batch)
	// and is copied into an entry of its exact size.
	bufs sync.Pool
}

// maxPooledBytes: encode buffers that grew past this are dropped rather
// than pooled, so one huge batch does not pin its memory.
const maxPooledBytes = 16 << 20

// Entry returns b's log entry, newly allocated: the caller owns it (raft
// keeps it in its log cache).
func (e *Encoder) Entry(b *Batch) []byte {
	buf, _ := e.bufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	*buf = Append((*buf)[:0], b)
	out, _ := e.bufs.Get().(*[]byte)
	if out == nil {
		out = new([]byte)
	}
	if n := s2.MaxEncodedLen(len(*buf)); cap(*out) < n {
		*out = make([]byte, n)
	}
	c := s2.Encode((*out)[:cap(*out)], *buf)
	entry := make([]byte, 1+len(c))
	entry[0] = VersionS2
	copy(entry[1:], c)
	for _, p := range []*[]byte{buf, out} {
		if cap(*p) <= maxPooledBytes {
			e.bufs.Put(p)
		}
	}
	return entry
}
