package raftgroup

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

type testStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

func openTestStore(t *testing.T, store LogStore, dir string) testStore {
	t.Helper()
	if store == LogStorePebble {
		p, err := openPebbleLog(dir, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	w, err := openWALStore(Options{Dir: dir}.withDefaults(), newHCLogger(slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestLogStoreConformance runs the same operations on both log stores.
func TestLogStoreConformance(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	for _, store := range logStores {
		t.Run(string(store), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			s := openTestStore(t, store, dir)
			if first, err := s.FirstIndex(); first != 0 || err != nil {
				t.Fatalf("empty FirstIndex = %d, %v", first, err)
			}
			var l raft.Log
			if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("GetLog of empty log: %v", err)
			}
			if v, err := s.Get([]byte("k")); len(v) != 0 || err != nil {
				t.Fatalf("Get missing = %q, %v", v, err)
			}
			if v, err := s.GetUint64([]byte("n")); v != 0 || err != nil {
				t.Fatalf("GetUint64 missing = %d, %v", v, err)
			}
			var logs []*raft.Log
			for i := uint64(1); i <= 10; i++ {
				logs = append(logs, &raft.Log{Index: i, Term: 3, Type: raft.LogCommand,
					Data: []byte(fmt.Sprint("entry", i)), Extensions: []byte{byte(i)}, AppendedAt: at})
			}
			if err := s.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			if err := errors.Join(s.Set([]byte("k"), []byte("v")), s.SetUint64([]byte("n"), 42)); err != nil {
				t.Fatal(err)
			}
			// Reopen: everything is on disk.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTestStore(t, store, dir)
			defer s.Close()
			for _, want := range logs {
				var got raft.Log
				if err := s.GetLog(want.Index, &got); err != nil {
					t.Fatal(err)
				}
				if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
					!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
					!got.AppendedAt.Equal(want.AppendedAt) {
					t.Fatalf("GetLog(%d) = %+v, want %+v", want.Index, got, want)
				}
			}
			if v, err := s.Get([]byte("k")); string(v) != "v" || err != nil {
				t.Fatalf("Get = %q, %v", v, err)
			}
			if v, err := s.GetUint64([]byte("n")); v != 42 || err != nil {
				t.Fatalf("GetUint64 = %d, %v", v, err)
			}
			// Truncate a prefix (after a snapshot) and a suffix (a
			// conflicting leader).
			if err := errors.Join(s.DeleteRange(1, 4), s.DeleteRange(8, 10)); err != nil {
				t.Fatal(err)
			}
			first, err1 := s.FirstIndex()
			last, err2 := s.LastIndex()
			if first != 5 || last != 7 || err1 != nil || err2 != nil {
				t.Fatalf("after truncation [%d, %d] (%v, %v), want [5, 7]", first, last, err1, err2)
			}
			if err := s.GetLog(4, &l); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("GetLog(4) after truncation: %v", err)
			}
		})
	}
}

// TestFormatGolden freezes the Pebble log entry and the snapshot header
// (doc.go). A change here is a format change: bump the version byte.
func TestFormatGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"log entry", appendLog(nil, &raft.Log{Index: 7, Term: 300, Type: raft.LogCommand,
			Extensions: []byte{0xee}, Data: []byte("abc"), AppendedAt: time.Unix(0, 5)}),
			"01ac02000a01ee616263"},
		{"snapshot header", appendSnapHeader(nil, snapKindRef, 0x0102),
			"6d79736e01000000000000000102"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hex.EncodeToString(tc.got); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	var l raft.Log
	if err := decodeLog(1, []byte{2}, &l); !errors.As(err, new(*CorruptLogError)) {
		t.Fatalf("decode of version 2: %v, want *CorruptLogError", err)
	}
}

// TestFSMRestore: a state snapshot (kind 1) goes to Applier.Restore and
// raises the index below which entries are dropped; a reference (kind 0)
// to state this replica lacks is refused.
func TestFSMRestore(t *testing.T) {
	src := &chainApplier{}
	for i := uint64(1); i <= 5; i++ {
		if _, err := src.Apply(i, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var body bytes.Buffer
	body.Write(appendSnapHeader(nil, snapKindState, 5))
	if _, err := src.Snapshot(&body); err != nil {
		t.Fatal(err)
	}
	dst := &chainApplier{}
	f := &fsm{applier: dst}
	if err := f.Restore(io.NopCloser(&body)); err != nil {
		t.Fatal(err)
	}
	if got, want := dst.state(), src.state(); got.Hash != want.Hash || f.skipThrough.Load() != 5 {
		t.Fatalf("after restore hash %x skip %d, want %x 5", got.Hash[:4], f.skipThrough.Load(), want.Hash[:4])
	}
	ref := bytes.NewReader(appendSnapHeader(nil, snapKindRef, 9))
	if err := f.Restore(io.NopCloser(ref)); !errors.Is(err, ErrSnapshotUnavailable) {
		t.Fatalf("restore of a reference beyond the state: %v", err)
	}
	bad := bytes.NewReader([]byte("nope, not a snapshot"))
	if err := f.Restore(io.NopCloser(bad)); !errors.Is(err, ErrSnapshotFormat) {
		t.Fatalf("restore of garbage: %v", err)
	}
}
