package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// metadata is this node's replica of the metadata group: the applied
// view, proposals when it leads, and calls to the leader when it does
// not. Its fields are immutable after openMetadata.
type metadata struct {
	self      ring.NodeID
	advertise string
	join      string
	peers     []raftgroup.Voter
	g         *raftgroup.Group
	fsm       *metaFSM
	rpc       *rpcClient
}

// openMetadata opens the metadata replica in dir: a new cluster of this
// node alone (no Peers, no Join), the first voters of a cluster (Peers),
// a replica that waits to be added (Join), or the one recovered from dir.
// changed is called after every applied change.
func openMetadata(opts Options, dir string, rpc *rpcClient, changed func()) (*metadata, error) {
	m := &metadata{self: ring.NodeID(opts.NodeID), advertise: opts.Advertise, join: opts.Join, peers: opts.Peers, rpc: rpc}
	if m.join == opts.Advertise {
		m.join = "" // joining oneself is starting alone
	}
	fsm, err := openMetaFSM(dir, opts.Ring, changed)
	if err != nil {
		return nil, err
	}
	m.fsm = fsm
	// A node that others cannot reach cannot be part of a cluster of
	// several nodes: say so rather than wait for peers forever.
	if !opts.Mux.Listening() && (len(opts.Peers) > 0 || m.join != "" || len(fsm.View().State.Nodes) > 1) {
		return nil, fmt.Errorf("this node has no Raft listener but belongs to a cluster of several nodes: %w", raftgroup.ErrNoListener)
	}
	tr, err := opts.Mux.Transport(MetaGroup, raftgroup.TransportOptions{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	ro := raftOptions(opts, dir, "meta", fsm)
	ro.Transport = tr
	// The metadata log is small and rarely written: snapshot it often so
	// a restart replays little and a new member gets one small snapshot;
	// small segments keep its log a few hundred KB on disk.
	ro.SnapshotThreshold, ro.TrailingLogs = 256, 256
	ro.WALSegmentBytes = 256 << 10
	if opts.Mux.Listening() {
		ro.LogCacheEntries = 64
	}
	// Its entries are few and small and the cluster needs them: refused
	// only once the disk is full, not under the guard's minimum.
	ro.ProposeBelowDiskMinimum = true
	switch {
	case len(opts.Peers) > 0:
		ro.Voters = opts.Peers
	case m.join != "":
		ro.Join = true
	}
	if !opts.Mux.Listening() {
		ro.HeartbeatTimeout = singleVoterHeartbeat
	}
	if m.g, err = raftgroup.Open(ro); err != nil {
		return nil, errors.Join(fmt.Errorf("open metadata group: %w", err), tr.Close())
	}
	return m, nil
}

// View returns the latest metadata this node has applied.
func (m *metadata) View() *View { return m.fsm.View() }

func (m *metadata) isLeader() bool { return m.g.IsLeader() }

// resolve returns the Mux address of node id, "" if unknown.
func (m *metadata) resolve(id string) string {
	if id == string(m.self) {
		return m.advertise
	}
	// The operator's peer list first: it may route through addresses the
	// nodes do not advertise (a proxy, another interface).
	for _, p := range m.peers {
		if p.ID == id {
			return p.Address
		}
	}
	if nd := m.fsm.View().State.Node(ring.NodeID(id)); nd != nil {
		return nd.Addr
	}
	if m.g != nil {
		return m.g.MemberAddress(id)
	}
	return ""
}

// errRefused: the metadata state machine refused a committed entry (a
// step planned on an older state).
var errRefused = errors.New("cluster: metadata entry refused")

// propose commits a metadata entry (on the metadata leader). An entry the
// state machine refused is an error wrapping errRefused.
func (m *metadata) propose(ctx context.Context, entry []byte) error {
	_, outcome, err := m.g.Propose(ctx, entry)
	if err == nil && outcome != nil {
		err = fmt.Errorf("%w: %s", errRefused, outcome)
	}
	return err
}

// callLeader sends a metadata-leader RPC: to the leader this node knows,
// else to the join address, the peers and the known nodes, following one
// 421 redirect.
func (m *metadata) callLeader(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	var addrs []string
	if _, a := m.g.Leader(); a != "" {
		addrs = append(addrs, a)
	}
	if m.join != "" {
		addrs = append(addrs, m.join)
	}
	for _, p := range m.peers {
		addrs = append(addrs, p.Address)
	}
	for _, nd := range m.fsm.View().State.Nodes {
		addrs = append(addrs, m.resolve(string(nd.ID)))
	}
	if ms, err := m.g.Members(); err == nil {
		for _, mb := range ms {
			if mb.Voter {
				addrs = append(addrs, m.resolve(mb.ID))
			}
		}
	}
	var errs []error
	tried := map[string]bool{m.advertise: true}
	for len(addrs) > 0 {
		addr := addrs[0]
		addrs = addrs[1:]
		if tried[addr] || addr == "" {
			continue
		}
		tried[addr] = true
		_, _, err := m.rpc.call(ctx, method, addr, path, q, body, out)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		var re *rpcError
		if errors.As(err, &re) && re.Code == 421 && re.Leader != "" {
			addrs = append([]string{re.Leader}, addrs...)
		}
		if ctx.Err() != nil || len(errs) >= 8 {
			break
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no metadata leader known yet"))
	}
	return fmt.Errorf("%w: metadata leader: %w", ErrUnavailable, errors.Join(errs...))
}

// close checkpoints and closes the metadata replica.
func (m *metadata) close() error {
	return errors.Join(m.g.Checkpoint(), m.g.Close())
}
