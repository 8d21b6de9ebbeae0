package fuzz

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/myelindb/myelin/server"
)

// FuzzReadNativeFrames: the native stream reader never panics, and the
// frames it returns, framed again, read back the same (and are the input
// itself when its lengths were minimal uvarints).
func FuzzReadNativeFrames(f *testing.F) {
	f.Add([]byte(server.NativeMagic))
	f.Add([]byte(server.NativeMagic + "\x03abc\x01z"))
	f.Add(append([]byte(server.NativeMagic+"\x01a"), server.AppendNativeError(nil, "boom")...))
	f.Add([]byte(server.NativeMagic + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	f.Add([]byte("up 1 1000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var frames [][]byte
		err := server.ReadNativeFrames(bytes.NewReader(b), func(body []byte) error {
			frames = append(frames, bytes.Clone(body))
			return nil
		})
		if err != nil {
			return
		}
		again := []byte(server.NativeMagic)
		for _, fr := range frames {
			again = binary.AppendUvarint(again, uint64(len(fr)))
			again = append(again, fr...)
		}
		var back [][]byte
		if err := server.ReadNativeFrames(bytes.NewReader(again), func(body []byte) error {
			back = append(back, bytes.Clone(body))
			return nil
		}); err != nil || len(back) != len(frames) {
			t.Fatalf("re-read: %d frames, %v; want %d", len(back), err, len(frames))
		}
		for i := range frames {
			if !bytes.Equal(back[i], frames[i]) {
				t.Fatalf("frame %d: %q, want %q", i, back[i], frames[i])
			}
		}
		if len(again) > len(b) {
			t.Fatalf("%d frames re-framed into %d bytes, read from %d", len(frames), len(again), len(b))
		}
	})
}
