package engine

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// snapshotVersion is the first byte of a group snapshot stream.
const snapshotVersion byte = 1

// Snapshot writes the group's whole state to w, for a Raft snapshot: it
// checkpoints (so the head is in Pebble), takes a Pebble snapshot and
// streams every key of the group from it. Applies wait only for the
// checkpoint, not for the stream.
//
// Stream layout: version byte (1), then per key: uvarint len(key), key
// without the 4-byte group prefix, uvarint len(value), value; then a zero
// byte (an empty key ends the stream: every real key has a tenant and a
// kind). The restored group is at the checkpoint index.
func (g *Group) Snapshot(w io.Writer) error {
	_, err := g.SnapshotIndex(w)
	return err
}

// SnapshotIndex is Snapshot, and returns the applied index the stream
// covers (the index a group restored from it is at).
func (g *Group) SnapshotIndex(w io.Writer) (uint64, error) {
	// Checkpoint and snapshot under applyMu, so that the snapshot holds
	// exactly the checkpoint (no apply committed in between).
	g.applyMu.Lock()
	if err := g.checkpointLocked(); err != nil {
		g.applyMu.Unlock()
		return 0, fmt.Errorf("snapshot group %d: %w", g.id, err)
	}
	index := g.AppliedIndex()
	snap := g.db.pdb.NewSnapshot()
	g.applyMu.Unlock()
	defer snap.Close()
	return index, g.streamSnapshot(w, snap)
}

// streamSnapshot writes every key of the group in snap to w.
func (g *Group) streamSnapshot(w io.Writer, snap *pebble.Snapshot) error {
	lo := binary.BigEndian.AppendUint32(nil, g.id)
	hi := binary.BigEndian.AppendUint32(nil, g.id+1)
	opts := &pebble.IterOptions{LowerBound: lo}
	if g.id != ^uint32(0) {
		opts.UpperBound = hi
	}
	it, err := snap.NewIter(opts)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf []byte
	buf = append(buf, snapshotVersion)
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("snapshot group %d: %w", g.id, err)
		}
		k := it.Key()[4:]
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
		if len(buf) >= 32<<10 {
			if _, err := bw.Write(buf); err != nil {
				it.Close()
				return fmt.Errorf("write snapshot of group %d: %w", g.id, err)
			}
			buf = buf[:0]
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("snapshot group %d: %w", g.id, err)
	}
	buf = append(buf, 0)
	if _, err := bw.Write(buf); err != nil {
		return fmt.Errorf("write snapshot of group %d: %w", g.id, err)
	}
	return bw.Flush()
}

// ErrCorruptSnapshot is returned by Restore for a malformed stream.
var ErrCorruptSnapshot = errors.New("engine: corrupt snapshot")

// Restore replaces the group's whole state with a stream written by
// Snapshot (of this or another replica of the group) and reloads it. The
// group's applied index becomes the snapshot's checkpoint index. Queriers
// opened before keep reading the old state until closed.
func (g *Group) Restore(r io.Reader) error {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	partial := false
	err := g.restoreLocked(r, &partial)
	if err != nil && partial {
		// Pebble holds part of the snapshot: the head no longer matches.
		g.fail(err)
	}
	return err
}

func (g *Group) restoreLocked(r io.Reader, partial *bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	v, err := br.ReadByte()
	if err != nil {
		return fmt.Errorf("restore group %d: %w", g.id, err)
	}
	if v != snapshotVersion {
		return fmt.Errorf("restore group %d: version %d: %w", g.id, v, ErrCorruptSnapshot)
	}
	db := g.db
	lo := binary.BigEndian.AppendUint32(nil, g.id)
	hi := []byte{0xff, 0xff, 0xff, 0xff, 0xff} // above every key of group 2^32-1
	if g.id != ^uint32(0) {
		hi = binary.BigEndian.AppendUint32(nil, g.id+1)
	}
	pb := db.pdb.NewBatch()
	defer func() { pb.Close() }()
	if err := pb.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	var key, val []byte
	for n := 0; ; n++ {
		kl, err := binary.ReadUvarint(br)
		if err != nil {
			return fmt.Errorf("restore group %d: key %d: %w", g.id, n, errors.Join(ErrCorruptSnapshot, err))
		}
		if kl == 0 {
			break
		}
		if kl > 1<<20 {
			return fmt.Errorf("restore group %d: key %d of %d bytes: %w", g.id, n, kl, ErrCorruptSnapshot)
		}
		key = append(append(key[:0], lo...), make([]byte, kl)...)
		if _, err := io.ReadFull(br, key[4:]); err != nil {
			return fmt.Errorf("restore group %d: key %d: %w", g.id, n, errors.Join(ErrCorruptSnapshot, err))
		}
		vl, err := binary.ReadUvarint(br)
		if err != nil || vl > 64<<20 {
			return fmt.Errorf("restore group %d: value %d: %w", g.id, n, errors.Join(ErrCorruptSnapshot, err))
		}
		val = append(val[:0], make([]byte, vl)...)
		if _, err := io.ReadFull(br, val); err != nil {
			return fmt.Errorf("restore group %d: value %d: %w", g.id, n, errors.Join(ErrCorruptSnapshot, err))
		}
		if err := pb.Set(key, val, nil); err != nil {
			return err
		}
		// Commit in pieces: a snapshot can be larger than memory should
		// hold. A crash in the middle leaves a partial group, which is
		// fine: Raft restores the snapshot again before using the group
		// (it records the snapshot as installed only after Restore).
		if pb.Len() >= 16<<20 {
			*partial = true
			if err := pb.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("restore group %d: %w", g.id, err)
			}
			pb.Close()
			pb = db.pdb.NewBatch()
		}
	}
	*partial = true
	if err := pb.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("restore group %d: %w", g.id, err)
	}
	if err := db.syncPebble(); err != nil {
		return fmt.Errorf("restore group %d: %w", g.id, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.tenants = map[string]*tenant{}
	g.mu.nextTenant = 1
	g.mu.failed = nil
	if err := g.load(); err != nil {
		return fmt.Errorf("restore group %d: %w", g.id, err)
	}
	return nil
}
