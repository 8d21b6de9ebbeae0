package distributor

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/write"
)

// DeleteSeries commits a delete_series entry (write.AppendDeleteSeries)
// in every group of the ring, concurrently, and waits for all: a
// tenant's series may be in any group. err != nil wraps ErrIncomplete:
// some group may not have applied it, and the caller sends it again (a
// deletion applied twice deletes nothing more).
func (d *Distributor) DeleteSeries(ctx context.Context, ds *write.DeleteSeries) error {
	return d.everyGroup(ctx, ds.Tenant, write.AppendDeleteSeries(nil, ds))
}

// DeleteTenant commits the deletion of tenant in every group of the
// ring, as DeleteSeries.
func (d *Distributor) DeleteTenant(ctx context.Context, tenant string) error {
	return d.everyGroup(ctx, tenant, write.AppendDeleteTenant(nil, tenant))
}

// everyGroup proposes entry to every group and checks each outcome.
func (d *Distributor) everyGroup(ctx context.Context, tenant string, entry []byte) error {
	r, err := d.ring()
	if err != nil {
		return fmt.Errorf("delete in tenant %s: %w: %w", tenant, ErrIncomplete, err)
	}
	groups := r.Groups()
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { errs[i] = d.proposeDeletion(ctx, g, entry) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete in tenant %s: %w: %w", tenant, ErrIncomplete, err)
	}
	return nil
}

func (d *Distributor) proposeDeletion(ctx context.Context, g ring.GroupID, entry []byte) error {
	outcome, err := d.p.Propose(ctx, g, entry)
	if err != nil {
		return fmt.Errorf("group %d: %w", g, err)
	}
	o, err := write.DecodeOutcome(outcome)
	if err != nil {
		return fmt.Errorf("group %d: %w", g, err)
	}
	if o.Err != nil {
		return fmt.Errorf("group %d refused the deletion: %w", g, o.Err)
	}
	return nil
}

// Retain commits a retention step (write.AppendRetain) in every group
// of the ring, as DeleteSeries.
func (d *Distributor) Retain(ctx context.Context, r write.Retain) error {
	return d.everyGroup(ctx, r.Tenant, write.AppendRetain(nil, r))
}
