package write

import (
	"sync"

	"github.com/klauspost/compress/s2"
)

// Encoder makes Raft log entries of batches: an entry is the batch with
// its label sets prefix-coded, in S2 compressed form (VersionS2Prefix),
// ~13x smaller than Append's encoding for remote-write batches, whose
// label sets repeat. The zero value is ready to use; it is safe for
// concurrent use and must not be copied after first use.
type Encoder struct {
	// Plain makes entries in the encoding before version 9 (VersionS2:
	// Append, then S2), which releases before it decode: for a cluster
	// some of whose nodes still run one (they refuse VersionS2Prefix
	// entries). Set before the first Entry.
	Plain bool
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
	// Prefix coding first: consecutive series of a remote-write batch
	// share most of their label set (the metric name, then the labels of
	// one target), and S2 then compresses half the bytes; see doc.go
	// (VersionS2Prefix) and docs/design.md "Ingest CPU".
	version := VersionS2Prefix
	if !e.Plain {
		*buf = appendBatch((*buf)[:0], b, true)
	}
	if e.Plain || labelBytes(b) > maxLabelExpansion*len(*buf) {
		version = VersionS2
		*buf = Append((*buf)[:0], b)
	}
	out, _ := e.bufs.Get().(*[]byte)
	if out == nil {
		out = new([]byte)
	}
	if n := s2.MaxEncodedLen(len(*buf)); cap(*out) < n {
		*out = make([]byte, n)
	}
	c := s2.Encode((*out)[:cap(*out)], *buf)
	entry := make([]byte, 1+len(c))
	entry[0] = version
	copy(entry[1:], c)
	for _, p := range []*[]byte{buf, out} {
		if cap(*p) <= maxPooledBytes {
			e.bufs.Put(p)
		}
	}
	return entry
}

// labelBytes is the length of b's label sets, all series'.
func labelBytes(b *Batch) int {
	n := 0
	for i := range b.Series {
		n += len(b.Series[i].Labels)
	}
	return n
}
