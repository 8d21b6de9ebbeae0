package cluster

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/myelindb/myelin/raftgroup/ring"
)

// The Alertmanager's replicated state lives in the metadata group beside
// the rule groups (docs/design.md "Alertmanager"): each tenant's
// configuration, and the latest record of each of its silences and
// notification log entries (the Alertmanager library's own Merge bytes,
// opaque here, keyed by the room). Every node follows the metadata, so
// the next owner of a tenant after a failover has its silences and knows
// what was notified.
//
// Metadata log entry of an Alertmanager change:
//
//	entryAlerts | version:byte(1) | op:byte | tenant:str
//	  op alertConfigSet:    config:bytes
//	  op alertConfigDelete: (nothing more)
//	  op alertRecord:       kind:byte key:str updated:varint expires:varint payload:bytes
//	  op alertGC:           at:varint
//
// str and bytes are uvarint length-prefixed; updated, expires and at are
// Unix nanoseconds. A record replaces the one of the same (tenant, kind,
// key) only if its updated time is later (the library's own Merge rule,
// so replicas and Merge agree whatever the order of two owners'
// records); alertGC drops the tenant's records that expire at or before
// at (the proposer's clock, carried in the entry: apply stays
// deterministic).
//
// The snapshot section (metadata version 5, after the cache generations
// section):
//
//	len:uvarint | version:byte(1)
//	  | configs:uvarint { tenant:str config:bytes }
//	  | records:uvarint { tenant:str kind:byte key:str updated:varint expires:varint payload:bytes }
//
// in (tenant) and (tenant, kind, key) order.
const (
	entryAlerts       byte = 0x83
	alertsVersion     byte = 1
	alertConfigSet    byte = 1
	alertConfigDelete byte = 2
	alertRecord       byte = 3
	alertGC           byte = 4
	// MaxAlertConfigBytes bounds one tenant's configuration (with its
	// templates) in the metadata.
	MaxAlertConfigBytes = 8 << 20
	// MaxAlertRecordBytes bounds one silence or notification log record.
	MaxAlertRecordBytes = 1 << 20
)

// AlertRecord is one replicated silence or notification log entry of a
// tenant: Payload is what the Alertmanager library's Merge takes; Kind
// and Key name it (the room's: silence ID, notification log key), so a
// newer record of the same kind and key replaces it.
type AlertRecord struct {
	Kind         byte
	Key          string
	UpdatedNanos int64
	ExpiresNanos int64
	Payload      []byte
}

type alertRecordKey struct {
	kind byte
	key  string
}

// alertTenant is one tenant's replicated Alertmanager state. Immutable.
type alertTenant struct {
	config  []byte // nil: none
	records map[alertRecordKey]AlertRecord
}

// AlertState is the tenants' replicated Alertmanager state. Immutable: a
// change builds a new value sharing the other tenants'. The nil value is
// empty.
type AlertState struct {
	tenants map[string]*alertTenant
}

// ConfigTenants returns the tenants with a configuration, sorted.
func (s *AlertState) ConfigTenants() []string {
	if s == nil {
		return nil
	}
	var out []string
	for t, at := range s.tenants {
		if at.config != nil {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// Config returns the tenant's configuration; false if it has none. The
// bytes are shared: do not modify them.
func (s *AlertState) Config(tenant string) ([]byte, bool) {
	if s == nil || s.tenants[tenant] == nil || s.tenants[tenant].config == nil {
		return nil, false
	}
	return s.tenants[tenant].config, true
}

// Records returns the tenant's records in (kind, key) order. The
// payloads are shared: do not modify them.
func (s *AlertState) Records(tenant string) []AlertRecord {
	if s == nil || s.tenants[tenant] == nil {
		return nil
	}
	at := s.tenants[tenant]
	out := make([]AlertRecord, 0, len(at.records))
	for _, r := range at.records {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b AlertRecord) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Key, b.Key)) })
	return out
}

// Len is the number of configurations and records of every tenant.
func (s *AlertState) Len() int {
	n := 0
	if s != nil {
		for _, at := range s.tenants {
			n += len(at.records)
			if at.config != nil {
				n++
			}
		}
	}
	return n
}

// AlertChange is one change of the Alertmanager state, as proposed.
type AlertChange struct {
	Op      byte // alertConfigSet, alertConfigDelete, alertRecord, alertGC
	Tenant  string
	Config  []byte
	Record  AlertRecord
	AtNanos int64
}

// SetAlertConfig, DeleteAlertConfig, PutAlertRecord and GCAlertRecords
// are the changes.
func SetAlertConfig(tenant string, config []byte) AlertChange {
	return AlertChange{Op: alertConfigSet, Tenant: tenant, Config: config}
}

func DeleteAlertConfig(tenant string) AlertChange {
	return AlertChange{Op: alertConfigDelete, Tenant: tenant}
}

func PutAlertRecord(tenant string, r AlertRecord) AlertChange {
	return AlertChange{Op: alertRecord, Tenant: tenant, Record: r}
}

func GCAlertRecords(tenant string, at time.Time) AlertChange {
	return AlertChange{Op: alertGC, Tenant: tenant, AtNanos: at.UnixNano()}
}

// AppendAlertChange appends c's metadata log entry.
func AppendAlertChange(b []byte, c AlertChange) []byte {
	b = append(b, entryAlerts, alertsVersion, c.Op)
	b = appendBytes(b, []byte(c.Tenant))
	switch c.Op {
	case alertConfigSet:
		b = appendBytes(b, c.Config)
	case alertRecord:
		b = appendAlertRecord(b, c.Record)
	case alertGC:
		b = binary.AppendVarint(b, c.AtNanos)
	}
	return b
}

func appendAlertRecord(b []byte, r AlertRecord) []byte {
	b = append(b, r.Kind)
	b = appendBytes(b, []byte(r.Key))
	b = binary.AppendVarint(b, r.UpdatedNanos)
	b = binary.AppendVarint(b, r.ExpiresNanos)
	return appendBytes(b, r.Payload)
}

func readVarint(b []byte) (int64, []byte, error) {
	v, k := binary.Varint(b)
	if k <= 0 || k != len(binary.AppendVarint(nil, v)) { // canonical only: entries re-encode to their bytes
		return 0, nil, fmt.Errorf("%w: varint", ErrCorruptMeta)
	}
	return v, b[k:], nil
}

func readAlertRecord(b []byte) (AlertRecord, []byte, error) {
	var r AlertRecord
	if len(b) < 1 {
		return r, nil, fmt.Errorf("%w: alert record kind", ErrCorruptMeta)
	}
	r.Kind, b = b[0], b[1:]
	key, b, err := readBytes(b, maxRuleNameBytes)
	if err != nil {
		return r, nil, err
	}
	if len(key) == 0 {
		return r, nil, fmt.Errorf("%w: alert record without a key", ErrCorruptMeta)
	}
	r.Key = string(key)
	if r.UpdatedNanos, b, err = readVarint(b); err != nil {
		return r, nil, err
	}
	if r.ExpiresNanos, b, err = readVarint(b); err != nil {
		return r, nil, err
	}
	if r.Payload, b, err = readBytes(b, MaxAlertRecordBytes); err != nil {
		return r, nil, err
	}
	return r, b, nil
}

// DecodeAlertChange decodes an Alertmanager change entry
// (AppendAlertChange). Errors wrap ErrCorruptMeta.
func DecodeAlertChange(b []byte) (AlertChange, error) {
	var c AlertChange
	if len(b) < 3 || b[0] != entryAlerts {
		return c, fmt.Errorf("%w: alertmanager change header", ErrCorruptMeta)
	}
	if b[1] != alertsVersion {
		return c, fmt.Errorf("%w: alertmanager change version %d", ErrCorruptMeta, b[1])
	}
	c.Op, b = b[2], b[3:]
	tenant, b, err := readBytes(b, maxRuleNameBytes)
	if err != nil {
		return c, err
	}
	if len(tenant) == 0 {
		return c, fmt.Errorf("%w: alertmanager change without a tenant", ErrCorruptMeta)
	}
	c.Tenant = string(tenant)
	switch c.Op {
	case alertConfigSet:
		if c.Config, b, err = readBytes(b, MaxAlertConfigBytes); err != nil {
			return c, err
		}
	case alertConfigDelete:
	case alertRecord:
		if c.Record, b, err = readAlertRecord(b); err != nil {
			return c, err
		}
	case alertGC:
		if c.AtNanos, b, err = readVarint(b); err != nil {
			return c, err
		}
	default:
		return c, fmt.Errorf("%w: alertmanager change op %d", ErrCorruptMeta, c.Op)
	}
	if len(b) != 0 {
		return c, fmt.Errorf("%w: %d bytes after an alertmanager change", ErrCorruptMeta, len(b))
	}
	return c, nil
}

// Apply returns s with c applied; s is unchanged. A record older than
// the one it would replace changes nothing.
func (s *AlertState) Apply(c AlertChange) *AlertState {
	var old alertTenant
	if s != nil && s.tenants[c.Tenant] != nil {
		old = *s.tenants[c.Tenant]
	}
	at := &alertTenant{config: old.config, records: old.records}
	switch c.Op {
	case alertConfigSet:
		at.config = c.Config
		if at.config == nil {
			at.config = []byte{}
		}
	case alertConfigDelete:
		at.config = nil
	case alertRecord:
		k := alertRecordKey{c.Record.Kind, c.Record.Key}
		if prev, ok := old.records[k]; ok && prev.UpdatedNanos >= c.Record.UpdatedNanos {
			return s
		}
		at.records = maps.Clone(old.records)
		if at.records == nil {
			at.records = map[alertRecordKey]AlertRecord{}
		}
		at.records[k] = c.Record
	case alertGC:
		at.records = maps.Clone(old.records)
		maps.DeleteFunc(at.records, func(_ alertRecordKey, r AlertRecord) bool { return r.ExpiresNanos <= c.AtNanos })
	}
	out := &AlertState{tenants: map[string]*alertTenant{}}
	if s != nil {
		maps.Copy(out.tenants, s.tenants)
	}
	if at.config == nil && len(at.records) == 0 {
		delete(out.tenants, c.Tenant)
	} else {
		out.tenants[c.Tenant] = at
	}
	return out
}

// appendAlertsSection appends the snapshot section of s.
func appendAlertsSection(dst []byte, s *AlertState) []byte {
	b := []byte{alertsVersion}
	tenants := slices.Sorted(maps.Keys(s.tenants))
	cfgs := s.ConfigTenants()
	b = binary.AppendUvarint(b, uint64(len(cfgs)))
	for _, t := range cfgs {
		b = appendBytes(b, []byte(t))
		b = appendBytes(b, s.tenants[t].config)
	}
	b = binary.AppendUvarint(b, uint64(s.Len()-len(cfgs)))
	for _, t := range tenants {
		for _, r := range s.Records(t) {
			b = appendBytes(b, []byte(t))
			b = appendAlertRecord(b, r)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decodeAlertsSection reads the snapshot section and returns the rest.
func decodeAlertsSection(b []byte) (*AlertState, []byte, error) {
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) || l < 1 {
		return nil, nil, fmt.Errorf("%w: alertmanager section length", ErrCorruptMeta)
	}
	sec, rest := b[k:k+int(l)], b[k+int(l):]
	if sec[0] != alertsVersion {
		return nil, nil, fmt.Errorf("%w: alertmanager section version %d", ErrCorruptMeta, sec[0])
	}
	sec = sec[1:]
	s := &AlertState{tenants: map[string]*alertTenant{}}
	tenant := func(t []byte) (*alertTenant, error) {
		if len(t) == 0 {
			return nil, fmt.Errorf("%w: alertmanager state without a tenant", ErrCorruptMeta)
		}
		at := s.tenants[string(t)]
		if at == nil {
			at = &alertTenant{}
			s.tenants[string(t)] = at
		}
		return at, nil
	}
	n, k := binary.Uvarint(sec)
	if k <= 0 || n > uint64(len(sec)) {
		return nil, nil, fmt.Errorf("%w: alertmanager config count", ErrCorruptMeta)
	}
	sec = sec[k:]
	for range n {
		var t, cfg []byte
		var err error
		if t, sec, err = readBytes(sec, maxRuleNameBytes); err != nil {
			return nil, nil, err
		}
		if cfg, sec, err = readBytes(sec, MaxAlertConfigBytes); err != nil {
			return nil, nil, err
		}
		at, err := tenant(t)
		if err != nil {
			return nil, nil, err
		}
		if at.config != nil {
			return nil, nil, fmt.Errorf("%w: alertmanager config of tenant %q twice", ErrCorruptMeta, t)
		}
		at.config = cfg
	}
	n, k = binary.Uvarint(sec)
	if k <= 0 || n > uint64(len(sec)) {
		return nil, nil, fmt.Errorf("%w: alertmanager record count", ErrCorruptMeta)
	}
	sec = sec[k:]
	for range n {
		var t []byte
		var r AlertRecord
		var err error
		if t, sec, err = readBytes(sec, maxRuleNameBytes); err != nil {
			return nil, nil, err
		}
		if r, sec, err = readAlertRecord(sec); err != nil {
			return nil, nil, err
		}
		at, err := tenant(t)
		if err != nil {
			return nil, nil, err
		}
		if at.records == nil {
			at.records = map[alertRecordKey]AlertRecord{}
		}
		k := alertRecordKey{r.Kind, r.Key}
		if _, dup := at.records[k]; dup {
			return nil, nil, fmt.Errorf("%w: alertmanager record %d/%q of tenant %q twice", ErrCorruptMeta, r.Kind, r.Key, t)
		}
		at.records[k] = r
	}
	if len(sec) != 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes after the alertmanager state", ErrCorruptMeta, len(sec))
	}
	return s, rest, nil
}

// AlertmanagerHash is the ring position of a tenant's Alertmanager.
func AlertmanagerHash(tenant string) uint64 {
	var d xxhash.Digest
	d.WriteString("alertmanager:")
	d.WriteString(strconv.Itoa(len(tenant)))
	d.WriteString(":")
	d.WriteString(tenant)
	return d.Sum64()
}

// AlertmanagerOwner returns the node that runs the tenant's Alertmanager
// (its dispatcher, the one that notifies): the first active node
// clockwise from AlertmanagerHash on the ring of RuleOwner; "" when no
// node is active.
func (v *View) AlertmanagerOwner(tenant string) ring.NodeID {
	return v.ownerOf(AlertmanagerHash(tenant))
}

// ownerOf returns the first active node clockwise from h on the node
// ring; "" when no node is active.
func (v *View) ownerOf(h uint64) ring.NodeID {
	rr := v.ruleRing
	if rr == nil {
		rr = &ruleRing{}
	}
	ts := rr.build(v)
	if len(ts) == 0 {
		return ""
	}
	i, _ := slices.BinarySearchFunc(ts, h, func(t ruleToken, h uint64) int { return cmp.Compare(t.token, h) })
	return ts[i%len(ts)].node
}

// ChangeAlerts commits an Alertmanager change through the metadata
// leader (this node or another). A configuration change returns once
// this node has applied it (a read here sees it); a record or a
// collection once it is committed: the Alertmanager that proposes a
// record holds it already, and a follower learns of a commit only with
// the leader's next append (hashicorp/raft's CommitTimeout, 50 ms):
// BenchmarkPutAlertRecord measured 1.2-1.9 ms a record through a
// follower, 29-89 ms a change that waits for the follower's apply, in
// the same runs. No leader: an error wrapping ErrUnavailable.
func (n *Node) ChangeAlerts(ctx context.Context, c AlertChange) error {
	entry := AppendAlertChange(nil, c)
	if len(entry) > maxEntryBytes {
		return fmt.Errorf("alertmanager change of %d bytes: too large", len(entry))
	}
	wait := c.Op == alertConfigSet || c.Op == alertConfigDelete
	res, err := n.commitMeta(ctx, entry, wait)
	if err != nil {
		return err
	}
	if res.Outcome != "" {
		return fmt.Errorf("%w: %s", errRefused, res.Outcome)
	}
	return nil
}
