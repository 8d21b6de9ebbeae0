package raftgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// Pebble key prefixes of the log store (see "Pebble log store" in doc.go).
const (
	prefixLog    = 'l'
	prefixStable = 's'
	logVersion   = 1
)

// pebbleLog is a raft.LogStore and raft.StableStore on its own Pebble
// instance. Every write is one synced Pebble batch, so StoreLogs of n
// entries costs one fsync; Pebble also merges the fsyncs of concurrent
// commits.
//
// INVARIANT: the log keys hold a contiguous range of indexes (raft only
// appends after the last index and deletes prefixes or suffixes).
//
// Locking: none of its own; pebble.DB is safe for concurrent use.
type pebbleLog struct {
	db *pebble.DB
}

var (
	_ raft.LogStore    = (*pebbleLog)(nil)
	_ raft.StableStore = (*pebbleLog)(nil)
)

func openPebbleLog(dir string, l *slog.Logger) (*pebbleLog, error) {
	db, err := pebble.Open(dir, &pebble.Options{
		Logger: pebbleLogger{l},
		// 64 MiB memtables: log entries are written once and usually deleted
		// by truncation before they are flushed.
		MemTableSize: 64 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("open log store %s: %w", dir, err)
	}
	return &pebbleLog{db: db}, nil
}

func (s *pebbleLog) Close() error { return s.db.Close() }

func logKey(index uint64) []byte {
	var k [9]byte
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k[:]
}

// appendLog encodes l (the value of a log key) to dst.
func appendLog(dst []byte, l *raft.Log) []byte {
	dst = append(dst, logVersion)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	dst = binary.AppendVarint(dst, at)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	return append(dst, l.Data...) // Data runs to the end
}

// decodeLog decodes a log value into l. l.Data and l.Extensions are copies.
func decodeLog(index uint64, src []byte, l *raft.Log) error {
	bad := func(what string) error {
		return &CorruptLogError{Index: index, Reason: what}
	}
	if len(src) < 1 || src[0] != logVersion {
		return bad("unknown version")
	}
	src = src[1:]
	term, n := binary.Uvarint(src)
	if n <= 0 {
		return bad("term")
	}
	src = src[n:]
	if len(src) < 1 {
		return bad("type")
	}
	typ := raft.LogType(src[0])
	src = src[1:]
	at, n := binary.Varint(src)
	if n <= 0 {
		return bad("appended at")
	}
	src = src[n:]
	next, n := binary.Uvarint(src)
	if n <= 0 || next > uint64(len(src)-n) {
		return bad("extensions")
	}
	src = src[n:]
	*l = raft.Log{Index: index, Term: term, Type: typ}
	if next > 0 {
		l.Extensions = append([]byte(nil), src[:next]...)
	}
	src = src[next:]
	if len(src) > 0 {
		l.Data = append([]byte(nil), src...)
	}
	if at != 0 {
		l.AppendedAt = unixNano(at)
	}
	return nil
}

// FirstIndex returns the first index in the log, 0 when it is empty.
func (s *pebbleLog) FirstIndex() (uint64, error) {
	return s.edge(true)
}

// LastIndex returns the last index in the log, 0 when it is empty.
func (s *pebbleLog) LastIndex() (uint64, error) {
	return s.edge(false)
}

func (s *pebbleLog) edge(first bool) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixLog},
		UpperBound: []byte{prefixLog + 1},
	})
	if err != nil {
		return 0, fmt.Errorf("log store iterator: %w", err)
	}
	var ok bool
	if first {
		ok = it.First()
	} else {
		ok = it.Last()
	}
	var idx uint64
	if ok {
		idx = binary.BigEndian.Uint64(it.Key()[1:])
	}
	return idx, errors.Join(it.Error(), it.Close())
}

// GetLog reads the entry at index into l; raft.ErrLogNotFound if absent.
func (s *pebbleLog) GetLog(index uint64, l *raft.Log) error {
	v, closer, err := s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("get log %d: %w", index, err)
	}
	defer closer.Close()
	return decodeLog(index, v, l)
}

// StoreLog stores one entry (synced).
func (s *pebbleLog) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs stores entries in one synced batch.
func (s *pebbleLog) StoreLogs(logs []*raft.Log) error {
	size := 0
	for _, l := range logs {
		size += len(l.Data) + len(l.Extensions) + 48 // key, header, batch record
	}
	b := s.db.NewBatchWithSize(size)
	defer b.Close()
	var buf []byte
	for _, l := range logs {
		buf = appendLog(buf[:0], l)
		if err := b.Set(logKey(l.Index), buf, nil); err != nil {
			return fmt.Errorf("store log %d: %w", l.Index, err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store logs %d..%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	return nil
}

// DeleteRange deletes the entries in [lo, hi] with one range tombstone.
func (s *pebbleLog) DeleteRange(lo, hi uint64) error {
	if hi < lo {
		return nil
	}
	end := []byte{prefixLog + 1}
	if hi < ^uint64(0) {
		end = logKey(hi + 1)
	}
	if err := s.db.DeleteRange(logKey(lo), end, pebble.Sync); err != nil {
		return fmt.Errorf("delete logs %d..%d: %w", lo, hi, err)
	}
	return nil
}

func stableKey(key []byte) []byte {
	return append([]byte{prefixStable}, key...)
}

// Set stores a stable value (synced).
func (s *pebbleLog) Set(key, val []byte) error {
	if err := s.db.Set(stableKey(key), val, pebble.Sync); err != nil {
		return fmt.Errorf("set stable %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of a stable value; an empty slice if key is absent
// (the raft.StableStore contract).
func (s *pebbleLog) Get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return []byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get stable %q: %w", key, err)
	}
	defer closer.Close()
	return append([]byte{}, v...), nil
}

// SetUint64 stores a stable uint64 (8 bytes big-endian).
func (s *pebbleLog) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns a stable uint64, 0 if key is absent.
func (s *pebbleLog) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil || len(v) == 0 {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("get stable %q: %w", key, &CorruptLogError{Reason: fmt.Sprintf("uint64 of %d bytes", len(v))})
	}
	return binary.BigEndian.Uint64(v), nil
}

// pebbleLogger sends Pebble's errors to slog and drops its informational
// logs (one per flush and compaction); Fatalf panics as Pebble requires.
type pebbleLogger struct{ l *slog.Logger }

func (pebbleLogger) Infof(string, ...any) {}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "raft log store")
}
func (pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble log store: "+format, args...))
}
