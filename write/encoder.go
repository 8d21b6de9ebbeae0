package write

import "sync"

// Encoder makes Raft log entries of batches: an entry is the batch in its
// compressed form (Append, then Compress; VersionS2), ~10x smaller than
// Version for remote-write batches, whose label sets repeat. The zero
// value is ready to use; it is safe for concurrent use and must not be
// copied after first use.
type Encoder struct {
	// bufs holds *[]byte buffers for the uncompressed batch, which is
	// compressed into the entry and then no longer needed.
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
	entry := Compress(nil, *buf)
	if cap(*buf) <= maxPooledBytes {
		e.bufs.Put(buf)
	}
	return entry
}
