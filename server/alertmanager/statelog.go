package alertmanager

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/myelindb/myelin/internal/atomicfile"
)

// The state log of a tenant's Alertmanager: every change of its
// silences and of its notification log, as the library hands it to its
// broadcast function (the bytes Alertmanager's gossip would send to its
// peers, which Merge takes back), appended and synced before the change
// returns. A silence that the API acknowledged survives a crash: on
// start the snapshots are loaded and the logs merged on top of them;
// every maintenance snapshots the state and drops the logs it covers.
//
// File format, state-<generation>.log:
//
//	byte 0            version (StateLogVersion)
//	then records      kind (1 byte: KindSilences, KindNflog)
//	                  length of payload (uvarint)
//	                  payload (length bytes: a Merge part)
//	                  CRC-32C of kind, length and payload (4 bytes, little endian)
//
// A record cut short at the end of the last file is a write that was
// never acknowledged (the crash came before its sync): it is dropped.
// A bad checksum or a short record anywhere else is a CorruptError.
//
// This is the state without a cluster (Options.Metadata nil). On a
// cluster the same payloads are committed as Records to the metadata
// Raft group instead (replicated.go, docs/design.md "Alertmanager"), and
// these files are read once, by Import.
const StateLogVersion = 1

// Kinds of state log records.
const (
	KindSilences byte = 1
	KindNflog    byte = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CorruptError is a state log that cannot be read: File and Offset say
// where.
type CorruptError struct {
	File   string
	Offset int
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("alertmanager: corrupt state log %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

// errShort: the input ends inside a record.
var errShort = errors.New("alertmanager: state log record cut short")

// AppendStateRecord appends one record of kind to dst.
func AppendStateRecord(dst []byte, kind byte, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	dst = append(dst, payload...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// readRecord decodes the record at the start of src; payload aliases
// src. It returns errShort if src ends inside the record, and an error
// naming the problem for a bad kind or checksum.
func readRecord(src []byte) (kind byte, payload, rest []byte, err error) {
	if len(src) < 1 {
		return 0, nil, nil, errShort
	}
	kind = src[0]
	if kind != KindSilences && kind != KindNflog {
		return 0, nil, nil, fmt.Errorf("unknown record kind %d", kind)
	}
	n, w := binary.Uvarint(src[1:])
	switch {
	case w == 0:
		return 0, nil, nil, errShort
	case w < 0 || n > uint64(len(src)):
		return 0, nil, nil, errors.New("bad record length")
	}
	end := 1 + w + int(n)
	if len(src) < end+4 {
		return 0, nil, nil, errShort
	}
	if got, want := crc32.Checksum(src[:end], castagnoli), binary.LittleEndian.Uint32(src[end:]); got != want {
		return 0, nil, nil, fmt.Errorf("checksum %08x, want %08x", got, want)
	}
	return kind, src[1+w : end], src[end+4:], nil
}

// StateRecord is one decoded record; Payload aliases the decoded bytes.
type StateRecord struct {
	Kind    byte
	Payload []byte
}

// DecodeStateLog decodes a whole state log file's bytes (name is for
// errors). last says whether it is the newest file, whose cut-short tail
// is dropped. Errors are *CorruptError.
func DecodeStateLog(name string, b []byte, last bool) ([]StateRecord, error) {
	if len(b) == 0 {
		if last {
			return nil, nil // created, not written yet
		}
		return nil, &CorruptError{File: name, Reason: "empty file"}
	}
	if b[0] != StateLogVersion {
		return nil, &CorruptError{File: name, Reason: fmt.Sprintf("unknown version %d", b[0])}
	}
	var out []StateRecord
	rest := b[1:]
	for len(rest) > 0 {
		off := len(b) - len(rest)
		kind, payload, r, err := readRecord(rest)
		if errors.Is(err, errShort) && last {
			return out, nil
		}
		if err != nil {
			return nil, &CorruptError{File: name, Offset: off, Reason: err.Error()}
		}
		out = append(out, StateRecord{Kind: kind, Payload: payload})
		rest = r
	}
	return out, nil
}

// stateLog appends records to the newest state-<gen>.log of dir.
//
// Locking: mu guards f and gen. append is called by the library with
// its own lock held (silences' or the nflog's), so stateLog never calls
// into the library: the lock order is library -> mu.
type stateLog struct {
	dir string
	mu  struct {
		sync.Mutex
		f   *os.File
		gen uint64
		err error // the first failed append, reported by the next rotate
	}
}

func logName(gen uint64) string { return fmt.Sprintf("state-%020d.log", gen) }

// logGens lists the generations of the state logs in dir, ascending.
func logGens(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range ents {
		s, ok := strings.CutPrefix(e.Name(), "state-")
		if !ok {
			continue
		}
		if s, ok = strings.CutSuffix(s, ".log"); !ok {
			continue
		}
		g, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			continue
		}
		gens = append(gens, g)
	}
	slices.Sort(gens)
	return gens, nil
}

// readLogs returns the records of every state log in dir, oldest first.
func readLogs(dir string) ([]StateRecord, []uint64, error) {
	gens, err := logGens(dir)
	if err != nil {
		return nil, nil, err
	}
	var out []StateRecord
	for i, g := range gens {
		name := filepath.Join(dir, logName(g))
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, err
		}
		rs, err := DecodeStateLog(name, b, i == len(gens)-1)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, rs...)
	}
	return out, gens, nil
}

// openStateLog starts a new log file after gen.
func openStateLog(dir string, gen uint64) (*stateLog, error) {
	l := &stateLog{dir: dir}
	if err := l.openLocked(gen + 1); err != nil {
		return nil, err
	}
	return l, nil
}

// openLocked creates state-<gen>.log with its version byte, synced.
func (l *stateLog) openLocked(gen uint64) error {
	f, err := os.OpenFile(filepath.Join(l.dir, logName(gen)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create alertmanager state log: %w", err)
	}
	if _, err := f.Write([]byte{StateLogVersion}); err != nil {
		return errors.Join(fmt.Errorf("write alertmanager state log: %w", err), f.Close())
	}
	if err := errors.Join(f.Sync(), atomicfile.SyncDir(l.dir)); err != nil {
		return errors.Join(fmt.Errorf("sync alertmanager state log: %w", err), f.Close())
	}
	l.mu.f, l.mu.gen = f, gen
	return nil
}

// append writes one record and syncs it. The library's broadcast
// function cannot fail, so an error is kept and returned by the next
// rotate (the maintenance logs it and the snapshot covers the record).
func (l *stateLog) append(kind byte, payload []byte) {
	buf := AppendStateRecord(nil, kind, payload)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.f == nil {
		return // closed
	}
	if _, err := l.mu.f.Write(buf); err != nil {
		l.mu.err = errors.Join(l.mu.err, fmt.Errorf("append to alertmanager state log: %w", err))
		return
	}
	if err := l.mu.f.Sync(); err != nil {
		l.mu.err = errors.Join(l.mu.err, fmt.Errorf("sync alertmanager state log: %w", err))
	}
}

// rotate starts the next log file and returns the generation of the
// one it closed: a snapshot taken after rotate covers every record of
// that generation and of the older ones.
func (l *stateLog) rotate() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old, err := l.mu.gen, l.mu.err
	l.mu.err = nil
	if l.mu.f != nil {
		err = errors.Join(err, l.mu.f.Close())
	}
	return old, errors.Join(err, l.openLocked(old+1))
}

// dropThrough removes the log files of generations <= gen.
func (l *stateLog) dropThrough(gen uint64) error {
	gens, err := logGens(l.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range gens {
		if g <= gen {
			errs = append(errs, os.Remove(filepath.Join(l.dir, logName(g))))
		}
	}
	return errors.Join(append(errs, atomicfile.SyncDir(l.dir))...)
}

// close closes the current file; later appends are dropped.
func (l *stateLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.f == nil {
		return nil
	}
	err := l.mu.f.Close()
	l.mu.f = nil
	return err
}

// writeSnapshot writes what snap writes to path atomically.
func writeSnapshot(path string, snap func(io.Writer) (int64, error)) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = snap(f)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}
