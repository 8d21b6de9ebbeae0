package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// Storage opens the state machines of this node's data-group replicas
// (cmd wires the engine).
type Storage interface {
	// Open opens the node's state of group g, empty if it has none.
	Open(g ring.GroupID) (raftgroup.Applier, error)
	// Close releases group g's state after its replica closed.
	Close(g ring.GroupID) error
	// Drop deletes group g's state after its replica closed: the replica
	// was moved to another node.
	Drop(g ring.GroupID) error
}

// Options configure a cluster node.
type Options struct {
	// NodeID is this node's ID, unique for all time; also its Raft server
	// ID in every group. Required.
	NodeID string
	// Advertise is the address of this node's Mux that others dial.
	// Required.
	Advertise string
	// Dir holds the node's Raft groups: Dir/meta (the metadata group) and
	// Dir/groups/<id>. Required.
	Dir string
	// Mux is the node's listener; the node registers its groups on it.
	// Required.
	Mux *raftgroup.Mux
	// Storage opens data-group state machines. Required.
	Storage Storage
	// Peers: the metadata group's first voters, this node included, given
	// identically to each of them (a cluster that starts with several
	// nodes). Empty with Join empty starts a new cluster of this node.
	// Ignored once Dir/meta holds the group.
	Peers []raftgroup.Voter
	// Join: the Mux address of any member of a running cluster; this
	// node asks to be added through it. Empty or this node's own address
	// means this node starts the cluster (or Peers do).
	Join string
	// Ring configures a new cluster's state (replication factor, groups
	// per node). Ignored once the metadata exists.
	Ring ring.Options
	// DeadAfter: a node not heard from for this long is declared dead and
	// its replicas are replaced. Zero means 1m.
	DeadAfter time.Duration
	// Heartbeat: how often a node reports to the metadata leader and the
	// reconcile loops run. Zero means 1s.
	Heartbeat time.Duration
	// Raft is the template for every group's raftgroup.Options (timeouts,
	// log store, snapshot policy); Dir, ID, Name, Applier, Transport,
	// Voters, Join and Registerer are set per group.
	Raft raftgroup.Options
	// Tenants returns this node's share of each tenant for the status
	// page: the series of group g if it leads g is asked per group.
	// Nil means no tenant statistics.
	Tenants func(led []ring.GroupID) []TenantStat
	// Registerer receives metrics; nil means none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger // nil means discard
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.DeadAfter == 0 {
		o.DeadAfter = time.Minute
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate reports every problem at once.
func (o Options) Validate() error {
	var errs []error
	if o.NodeID == "" || len(o.NodeID) > ring.MaxNameBytes {
		errs = append(errs, errors.New("NodeID: want 1 to 1024 bytes"))
	}
	if _, _, err := net.SplitHostPort(o.Advertise); err != nil {
		errs = append(errs, fmt.Errorf("advertise address %q: %w", o.Advertise, err))
	}
	if o.Dir == "" || o.Mux == nil || o.Storage == nil {
		errs = append(errs, errors.New("options Dir, Mux and Storage are required"))
	}
	if o.DeadAfter < 0 || o.Heartbeat < 0 {
		errs = append(errs, errors.New("DeadAfter and Heartbeat must not be negative"))
	}
	if o.DeadAfter != 0 && o.DeadAfter < 3*max(o.Heartbeat, time.Second/10) {
		errs = append(errs, fmt.Errorf("DeadAfter %v: want at least three heartbeats", o.DeadAfter))
	}
	if err := o.Ring.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster options: %w", err)
	}
	return nil
}
