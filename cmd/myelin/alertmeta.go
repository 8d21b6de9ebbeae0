package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/server/alertmanager"
)

// alertMetadata is the Alertmanager's view of the node's metadata
// replica (alertmanager.Metadata over cluster.Node): the room does not
// import the Raft layer, so the translation of changes and errors is
// here.
type alertMetadata struct{ n *cluster.Node }

var _ alertmanager.Metadata = alertMetadata{}

func (m alertMetadata) ConfigTenants() []string { return m.n.View().Alerts.ConfigTenants() }

func (m alertMetadata) Config(tenant string) ([]byte, bool) { return m.n.View().Alerts.Config(tenant) }

func (m alertMetadata) SetConfig(ctx context.Context, tenant string, yaml []byte) error {
	return m.change(ctx, cluster.SetAlertConfig(tenant, yaml))
}

func (m alertMetadata) DeleteConfig(ctx context.Context, tenant string) error {
	return m.change(ctx, cluster.DeleteAlertConfig(tenant))
}

func (m alertMetadata) Records(tenant string) []alertmanager.Record {
	rs := m.n.View().Alerts.Records(tenant)
	out := make([]alertmanager.Record, len(rs))
	for i, r := range rs {
		out[i] = alertmanager.Record{Kind: r.Kind, Key: r.Key, Updated: time.Unix(0, r.UpdatedNanos), Expires: time.Unix(0, r.ExpiresNanos), Payload: r.Payload}
	}
	return out
}

func (m alertMetadata) PutRecord(ctx context.Context, tenant string, r alertmanager.Record) error {
	return m.change(ctx, cluster.PutAlertRecord(tenant, cluster.AlertRecord{
		Kind: r.Kind, Key: r.Key, UpdatedNanos: r.Updated.UnixNano(), ExpiresNanos: r.Expires.UnixNano(), Payload: r.Payload,
	}))
}

func (m alertMetadata) GCRecords(ctx context.Context, tenant string, now time.Time) error {
	return m.change(ctx, cluster.GCAlertRecords(tenant, now))
}

func (m alertMetadata) change(ctx context.Context, c cluster.AlertChange) error {
	err := m.n.ChangeAlerts(ctx, c)
	if errors.Is(err, cluster.ErrUnavailable) {
		return fmt.Errorf("%w: %w", alertmanager.ErrUnavailable, err)
	}
	return err
}

func (m alertMetadata) Owner(tenant string) string {
	return string(m.n.View().AlertmanagerOwner(tenant))
}

func (m alertMetadata) ID() string { return m.n.ID() }

// Index is the metadata index of the last change of the configurations
// or their placement: silences and notifications do not make every
// node sync its configurations.
func (m alertMetadata) Index() uint64 { return m.n.View().AlertConfigsIndex }

func (m alertMetadata) MetadataAge() time.Duration { return m.n.MetadataAge() }

func (m alertMetadata) Address(node string) string { return m.n.Resolve(node) }

func (m alertMetadata) Client() *http.Client { return m.n.Router().Client() }
