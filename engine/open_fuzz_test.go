package engine

import (
	"bytes"
	"testing"

	"github.com/myelindb/myelin/chunkenc"
)

// FuzzOpenRecord feeds arbitrary bytes to the parser of the stored open
// chunk records ('o' values, read at every OpenGroup and from snapshots
// of other replicas): it must not panic, and a float record that parses
// and loads must encode again (appendOpen) to the same header and the
// chunk the head loaded.
func FuzzOpenRecord(f *testing.F) {
	var c chunkenc.XOR
	c.Reset(nil)
	for i := range int64(3) {
		if err := c.Append(1000+i*15000, float64(i)); err != nil {
			f.Fatal(err)
		}
	}
	for _, s := range []*memSeries{
		{head: c},
		{head: c, appended: true, run: 3, runMint: -5},
	} {
		f.Add(appendOpen(nil, s))
	}
	f.Add([]byte{openVersion, openAppended, openHistogram})
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := parseOpen(data)
		if err != nil || rec.hist {
			return
		}
		s := &memSeries{run: rec.run, runMint: rec.runMint, appended: rec.appended}
		if s.head.Load(nil, rec.chunk) != nil {
			return
		}
		got := appendOpen(nil, s)
		again, err := parseOpen(got)
		if err != nil {
			t.Fatalf("record %x encodes again to %x, which does not parse: %v", data, got, err)
		}
		if again.run != rec.run || again.runMint != rec.runMint || again.appended != rec.appended || again.hist ||
			!bytes.Equal(again.chunk, s.head.Bytes()) || !bytes.Equal(got[:len(got)-len(again.chunk)], data[:len(data)-len(rec.chunk)]) {
			t.Fatalf("record %x encodes again to %x", data, got)
		}
	})
}
