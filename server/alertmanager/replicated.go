package alertmanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protodelim"
)

// ErrUnavailable: the replicated store cannot take a change now (no
// metadata leader); answered 503, the client retries.
var ErrUnavailable = errors.New("alertmanager: replicated store unavailable")

// Metadata is what a replicated Multitenant needs of the node's
// metadata replica (cmd adapts raftgroup/cluster's Node: the room does
// not import the Raft layer). Reads are this node's applied copy.
type Metadata interface {
	// ConfigTenants lists the tenants with a configuration, sorted.
	ConfigTenants() []string
	// Config returns the tenant's configuration (the YAML of a
	// UserConfig); false if it has none.
	Config(tenant string) ([]byte, bool)
	// SetConfig and DeleteConfig commit a change through the metadata
	// leader and return once this node has applied it; no leader: an
	// error wrapping ErrUnavailable.
	SetConfig(ctx context.Context, tenant string, yaml []byte) error
	DeleteConfig(ctx context.Context, tenant string) error
	// Records returns the tenant's replicated silences and notification
	// log entries, the latest of each key.
	Records(tenant string) []Record
	// PutRecord commits a record (as SetConfig).
	PutRecord(ctx context.Context, tenant string, r Record) error
	// GCRecords commits the removal of the tenant's records that expire
	// at or before now.
	GCRecords(ctx context.Context, tenant string, now time.Time) error
	// Owner is the node that runs the tenant's Alertmanager by the
	// applied metadata ("" if none).
	Owner(tenant string) string
	// ID is this node's ID.
	ID() string
	// Index changes whenever the configurations or the owners may have
	// (the applied metadata index of the last such change).
	Index() uint64
	// MetadataAge is how long ago this node last heard from the metadata
	// leader (zero on the leader).
	MetadataAge() time.Duration
	// Address is the internal HTTP address (host:port) of node, "" if
	// unknown; Client reaches it (with the cluster's node auth).
	Address(node string) string
	Client() *http.Client
}

// Record is one replicated silence or notification log entry of a
// tenant: Payload is what the library broadcast (and Merge takes); Key
// is the silence ID or the notification log key; a later Updated
// replaces a record of the same kind and key (the library's Merge rule).
type Record struct {
	Kind    byte // KindSilences, KindNflog
	Key     string
	Updated time.Time
	Expires time.Time
	Payload []byte
}

// recordOf names the library's broadcast bytes of kind: its key, update
// and expiry times, read from the one message they hold.
func recordOf(kind byte, payload []byte) (Record, error) {
	r := Record{Kind: kind, Payload: payload}
	rd := bytes.NewReader(payload)
	switch kind {
	case KindSilences:
		var m silencepb.MeshSilence
		if err := protodelim.UnmarshalFrom(rd, &m); err != nil {
			return r, fmt.Errorf("decode silence: %w", err)
		}
		if m.GetSilence().GetId() == "" {
			return r, errors.New("decode silence: no ID")
		}
		r.Key = m.Silence.Id
		r.Updated = m.Silence.GetUpdatedAt().AsTime()
		r.Expires = m.GetExpiresAt().AsTime()
	case KindNflog:
		var m nflogpb.MeshEntry
		if err := protodelim.UnmarshalFrom(rd, &m); err != nil {
			return r, fmt.Errorf("decode notification log entry: %w", err)
		}
		e := m.GetEntry()
		if e == nil || e.Receiver == nil {
			return r, errors.New("decode notification log entry: no entry or receiver")
		}
		// The library's own key (nflog's stateKey).
		r.Key = fmt.Sprintf("%s:%s/%s/%d", e.GroupKey, e.Receiver.GroupName, e.Receiver.Integration, e.Receiver.Idx)
		r.Updated = e.GetTimestamp().AsTime()
		r.Expires = m.GetExpiresAt().AsTime()
	default:
		return r, fmt.Errorf("unknown record kind %d", kind)
	}
	if rd.Len() != 0 {
		return r, fmt.Errorf("%d bytes after the record's message", rd.Len())
	}
	return r, nil
}

// recordTimeout bounds the commit of one record: the library waits for
// it under its lock (a silence's API call, a notification's log).
const recordTimeout = 10 * time.Second

// MetaStore is the replicated Store: the configurations live in the
// metadata Raft group (docs/design.md "Alertmanager"); a change is
// committed through the metadata leader, retried while there is none,
// and a read is this node's applied copy.
type MetaStore struct{ md Metadata }

var _ Store = MetaStore{}

// NewMetaStore returns the store over md.
func NewMetaStore(md Metadata) MetaStore { return MetaStore{md} }

func (s MetaStore) Tenants(context.Context) ([]string, error) { return s.md.ConfigTenants(), nil }

func (s MetaStore) Get(_ context.Context, tenant string) (UserConfig, error) {
	var uc UserConfig
	b, ok := s.md.Config(tenant)
	if !ok {
		return uc, ErrNotFound
	}
	if err := yaml.Unmarshal(b, &uc); err != nil {
		return uc, fmt.Errorf("decode alertmanager config of tenant %s: %w", tenant, err)
	}
	return uc, nil
}

func (s MetaStore) Set(ctx context.Context, tenant string, uc UserConfig) error {
	b, err := yaml.Marshal(uc)
	if err != nil {
		return fmt.Errorf("encode alertmanager config of tenant %s: %w", tenant, err)
	}
	return retryUnavailable(ctx, func(ctx context.Context) error { return s.md.SetConfig(ctx, tenant, b) })
}

func (s MetaStore) Delete(ctx context.Context, tenant string) error {
	return retryUnavailable(ctx, func(ctx context.Context) error { return s.md.DeleteConfig(ctx, tenant) })
}

// retryUnavailable calls f until it succeeds, fails otherwise than with
// ErrUnavailable, or 10 s have passed: while the metadata group elects
// a leader (a set or delete is the same when retried).
func retryUnavailable(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	wait := 20 * time.Millisecond
	for {
		err := f(ctx)
		if err == nil || !errors.Is(err, ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		select {
		case <-ctx.Done():
			if !errors.Is(err, ErrUnavailable) {
				err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}
