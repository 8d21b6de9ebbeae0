package engine

import (
	"encoding/binary"
	"errors"
	"math"
)

// formatVersion is the on-disk format of a group, stored under kindFormat
// when the group is created and checked when it is opened. Bump it with
// every incompatible change of the key schema (doc.go). Version 1 encoded
// label sets with uvarint lengths; 2 uses write's label set encoding
// (write.AppendLabel); 3 seals histogram chunks in chunkenc's EncHistPack
// and EncFloatHistPack. A binary that reads only 2 would fail on such a
// chunk at query time, so 3 is a new version; this binary opens a
// group of version 2 (whose sealed histogram chunks are Prometheus's,
// which it reads as they are) and marks it 3 before writing to it.
// 4 starts every 'o' value with a version byte and a flags byte
// (appendOpen): a binary that reads only 3 would take them for a merge
// run.
const formatVersion byte = 4

// formatUpgradable is the earliest format this binary opens and upgrades
// to formatVersion (Group.upgradeFormat): 3 only added encodings, so
// every key and value of a version 2 group reads as one of 3; from 3 to
// 4 only the 'o' values change, and they are rewritten with the format
// byte.
const formatUpgradable byte = 2

// ErrFormat: a group's data was written in a format this binary cannot read.
var ErrFormat = errors.New("engine: unsupported on-disk format")

// Key kinds: the byte after the group and tenant prefix (doc.go has the
// whole schema). Values are part of the on-disk format: never reuse one.
const (
	// Group meta, under tenant id 0.
	kindApplied    = 'a' // -> uint64 BE applied index
	kindCheckpoint = 'k' // -> uint64 BE index of the last head checkpoint
	kindNextTenant = 'n' // -> uint32 BE next tenant id
	kindTenant     = 't' // + tenant name -> uint32 BE tenant id
	kindFormat     = 'f' // -> formatVersion byte

	// Per tenant.
	kindMeta     = 'm' // + metaXxx byte
	kindSeries   = 's' // + series id -> encoded labels
	kindHash     = 'h' // + labels hash + series id -> empty
	kindPostings = 'p' // + partition + esc(name) + esc(value) + series id -> empty
	kindChunk    = 'c' // + partition + series id + chunk mint -> uvarint(maxt-mint) + chunk
	kindOpen     = 'o' // + series id -> head (open) chunk, EncXOR, as of the checkpoint
	kindEvicted  = 'e' // + series id + entry index -> time:8, value bits:8 of the newest sample
	kindST       = 'S' // + partition + series id + sub + time -> a start timestamp rule or point (st.go)
)

// Tenant meta keys ([g][t]['m'][sub]).
const (
	metaNextSeries = 'i' // -> uint64 BE next series id; written by Apply
	metaMaxTime    = 'x' // -> uint64 BE (sign-flipped) newest sample time; written by Checkpoint
	metaRetain     = 'r' // -> uint32 BE oldest partition kept by retention entries [+ uint64 BE retention period ms]; written by ApplyRetain
	// metaEvictedNewest -> time (sign-flipped) at or after the newest sample
	// left to a series a range deletion evicted; written by ApplyDeleteSeries
	metaEvictedNewest = 'g'
	// metaHasST -> empty: the tenant has start timestamps (st.go); written by Apply
	metaHasST = 's'
)

// groupMetaTenant is the tenant id under which group meta keys live. Real
// tenants get ids from 1.
const groupMetaTenant = 0

const prefixLen = 4 + 4 + 1 // group, tenant, kind

func appendPrefix(dst []byte, group, tenant uint32, kind byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, group)
	dst = binary.BigEndian.AppendUint32(dst, tenant)
	return append(dst, kind)
}

// appendTime appends t as 8 bytes that sort like the signed value.
func appendTime(dst []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t)^(1<<63))
}

func readTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// partitionOf returns the partition number of time t: floor(t/width) offset
// by 2^31 so that it sorts as an unsigned big-endian uint32, clamped to the
// uint32 range (with 1 day partitions that is +-5.8 million years).
func partitionOf(t, width int64) uint32 {
	p := t / width
	if t%width != 0 && t < 0 {
		p--
	}
	// Clamp before adding the offset: p + 2^31 overflows for t near
	// math.MaxInt64 with width 1.
	return uint32(max(-1<<31, min(p, math.MaxUint32-1<<31)) + 1<<31)
}

// partitionEnd returns the first time after partition p: math.MaxInt64 for
// the last partition, which partitionOf clamps all later times into.
func partitionEnd(p uint32, width int64) int64 {
	next := int64(p) - 1<<31 + 1
	if p == math.MaxUint32 || next > math.MaxInt64/width {
		return math.MaxInt64
	}
	return next * width // >= (1-2^31)*width: no underflow for width < 2^32
}

// appendEscaped appends s in an order-preserving, self-delimiting form:
// 0x00 becomes 0x00 0xff and the string ends with 0x00 0x01. Escaped
// strings compare like the raw strings, and no escaped string is a prefix of
// another, so name/value pairs concatenate without ambiguity. (CockroachDB
// encodes bytes the same way.)
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			dst = append(dst, 0, 0xff)
		} else {
			dst = append(dst, s[i])
		}
	}
	return append(dst, 0, 1)
}

// appendEscapedPrefix appends s escaped without the terminator: every
// escaped string with raw prefix s starts with it.
func appendEscapedPrefix(dst []byte, s string) []byte {
	e := appendEscaped(dst, s)
	return e[:len(e)-2]
}

var errBadEscape = errors.New("bad escaped string")

// readEscaped decodes an escaped string from the start of b, appending it
// to dst, and returns the rest of b.
func readEscaped(dst []byte, b []byte) ([]byte, []byte, error) {
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		if i+1 >= len(b) {
			return dst, nil, errBadEscape
		}
		switch b[i+1] {
		case 1:
			return append(dst, b[:i]...), b[i+2:], nil
		case 0xff:
			dst = append(dst, b[:i+1]...)
			b = b[i+2:]
			i = -1
		default:
			return dst, nil, errBadEscape
		}
	}
	return dst, nil, errBadEscape
}

// skipEscaped returns b after the escaped string at its start.
func skipEscaped(b []byte) ([]byte, error) {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == 0 {
			if b[i+1] == 1 {
				return b[i+2:], nil
			}
			if b[i+1] != 0xff {
				return nil, errBadEscape
			}
			i++
		}
	}
	return nil, errBadEscape
}

// successor returns the smallest key greater than every key with prefix
// p, in a new slice. p must not be all 0xff bytes.
func successor(p []byte) []byte {
	s := append([]byte(nil), p...)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 0xff {
			s[i]++
			return s[:i+1]
		}
	}
	panic("BUG: successor of all-0xff key")
}

// Keys of one group and tenant. A keyspace is a value; methods append to
// dst so hot paths reuse buffers.
type keyspace struct {
	group, tenant uint32
}

func (k keyspace) seriesKey(dst []byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(appendPrefix(dst, k.group, k.tenant, kindSeries), id)
}

func (k keyspace) hashKey(dst []byte, hash, id uint64) []byte {
	dst = binary.BigEndian.AppendUint64(appendPrefix(dst, k.group, k.tenant, kindHash), hash)
	return binary.BigEndian.AppendUint64(dst, id)
}

func (k keyspace) hashPrefix(dst []byte, hash uint64) []byte {
	return binary.BigEndian.AppendUint64(appendPrefix(dst, k.group, k.tenant, kindHash), hash)
}

func (k keyspace) postingsPart(dst []byte, part uint32) []byte {
	return binary.BigEndian.AppendUint32(appendPrefix(dst, k.group, k.tenant, kindPostings), part)
}

// postingsName is the prefix of all postings of label name in part.
func (k keyspace) postingsName(dst []byte, part uint32, name string) []byte {
	return appendEscaped(k.postingsPart(dst, part), name)
}

// postingsValue is the prefix of the postings list of name=value in part.
func (k keyspace) postingsValue(dst []byte, part uint32, name, value string) []byte {
	return appendEscaped(k.postingsName(dst, part, name), value)
}

func (k keyspace) chunkPart(dst []byte, part uint32) []byte {
	return binary.BigEndian.AppendUint32(appendPrefix(dst, k.group, k.tenant, kindChunk), part)
}

func (k keyspace) chunkSeries(dst []byte, part uint32, id uint64) []byte {
	return binary.BigEndian.AppendUint64(k.chunkPart(dst, part), id)
}

func (k keyspace) chunkKey(dst []byte, part uint32, id uint64, mint int64) []byte {
	return appendTime(k.chunkSeries(dst, part, id), mint)
}

// openKeyLen is the length of an openKey.
const openKeyLen = 4 + 4 + 1 + 8

func (k keyspace) openKey(dst []byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(appendPrefix(dst, k.group, k.tenant, kindOpen), id)
}

// evictedKey is the eviction record of series id by entry index; index 0
// gives the prefix of the series' records.
func (k keyspace) evictedKey(dst []byte, id, index uint64) []byte {
	dst = binary.BigEndian.AppendUint64(appendPrefix(dst, k.group, k.tenant, kindEvicted), id)
	return binary.BigEndian.AppendUint64(dst, index)
}

func (k keyspace) metaKey(dst []byte, sub byte) []byte {
	return append(appendPrefix(dst, k.group, k.tenant, kindMeta), sub)
}

func groupKey(dst []byte, group uint32, kind byte) []byte {
	return appendPrefix(dst, group, groupMetaTenant, kind)
}

func tenantNameKey(dst []byte, group uint32, name string) []byte {
	return append(groupKey(dst, group, kindTenant), name...)
}
