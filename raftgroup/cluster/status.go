package cluster

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// Status is the cluster as the metadata leader sees it: the metadata,
// and each replica as its node last reported it (reports older than
// three heartbeats are left out). server.RingHandler serves it at /ring;
// its JSON shape is an API (bench and tests decode it).
type Status struct {
	NodeID            string `json:"node_id"`    // the node answering
	Generation        uint64 `json:"generation"` // metadata state version
	ReplicationFactor int    `json:"replication_factor"`
	GroupsPerNode     int    `json:"groups_per_node"`
	MetadataLeader    string `json:"metadata_leader"`
	// Converged: every node is active; every group has its target number
	// of replicas, all voters in its Raft configuration, caught up, and
	// led by its preferred leader; the planner has nothing left to do;
	// the metadata group's members are the nodes and its voters
	// min(3, active nodes) active ones.
	Converged bool          `json:"converged"`
	Nodes     []NodeStatus  `json:"nodes"`
	Groups    []GroupStatus `json:"groups"`
	Epochs    []EpochStatus `json:"epochs"`
	Errors    []string      `json:"errors,omitempty"` // nodes without a recent report
	Tenants   []TenantStat  `json:"tenants,omitempty"`
}

// NodeStatus is one node of Status.
type NodeStatus struct {
	ID               string `json:"id"`
	Address          string `json:"address"`
	State            string `json:"state"` // "active", "draining", "dead"
	Replicas         int    `json:"replicas"`
	Leaders          int    `json:"leaders"`
	PreferredLeaders int    `json:"preferred_leaders"`
	MetadataVoter    bool   `json:"metadata_voter"`
	// LastSeen: the node's last heartbeat to this metadata leader; nil if
	// none since it took over.
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// GroupStatus is one group of Status.
type GroupStatus struct {
	ID              uint32          `json:"id"`
	Ownership       float64         `json:"ownership"` // share of the hash space, 0..1
	Tokens          int             `json:"tokens"`
	PreferredLeader string          `json:"preferred_leader"`
	Leader          string          `json:"leader"` // the current Raft leader, "" unknown
	Replicas        []ReplicaStatus `json:"replicas"`
}

// ReplicaStatus is one replica of a group: placed by the metadata, in
// the Raft configuration, or both.
type ReplicaStatus struct {
	Node         string `json:"node"`
	Desired      bool   `json:"desired"` // placed by the metadata
	Voter        bool   `json:"voter"`   // a voter in the leader's configuration
	State        string `json:"state"`   // Leader, Follower, Candidate; "" unreported
	AppliedIndex uint64 `json:"applied_index"`
	Lag          uint64 `json:"lag"` // the leader's applied index minus this one's
}

// EpochStatus is one ring epoch: from From on, writes are placed over
// Groups groups.
type EpochStatus struct {
	Generation uint64    `json:"generation"`
	From       time.Time `json:"from"`
	Groups     int       `json:"groups"`
}

// convergedLag: a replica this many entries behind its leader or fewer
// counts as caught up for Status.Converged.
const convergedLag = 1000

// Status returns the cluster's status from the metadata leader.
func (n *Node) Status(ctx context.Context) (*Status, error) {
	if n.meta.isLeader() {
		return n.leader.status()
	}
	var st Status
	if err := n.meta.callLeader(ctx, http.MethodGet, "status", nil, nil, &st); err != nil {
		return nil, err
	}
	st.NodeID = n.opts.NodeID
	return &st, nil
}

// status assembles the cluster's status from the metadata and the
// nodes' recent reports.
func (l *metaLeader) status() (*Status, error) {
	v := l.meta.View()
	s := v.State
	ms, err := l.meta.g.Status()
	if err != nil {
		return nil, err
	}
	st := &Status{
		NodeID: l.opts.NodeID, Generation: s.Generation, ReplicationFactor: s.ReplicationFactor,
		GroupsPerNode: s.GroupsPerNode, MetadataLeader: l.opts.NodeID, Converged: true,
	}
	l.mu.Lock()
	leaders := l.freshLeadersLocked(l.opts.Now())
	reports := make(map[ring.NodeID]Report, len(l.mu.reports))
	for k, r := range l.mu.reports {
		if l.opts.Now().Sub(l.mu.lastSeen[k]) <= 3*l.opts.Heartbeat {
			reports[k] = r
		}
	}
	seen := make(map[ring.NodeID]time.Time, len(l.mu.lastSeen))
	for k, t := range l.mu.lastSeen {
		seen[k] = t
	}
	l.mu.Unlock()
	// replicaOf: what node reported about its replica of g.
	replicaOf := func(node ring.NodeID, g ring.GroupID) (ReplicaReport, bool) {
		for _, r := range reports[node].Replicas {
			if r.Group == uint32(g) {
				return r, true
			}
		}
		return ReplicaReport{}, false
	}
	nodes := map[ring.NodeID]*NodeStatus{}
	for _, nd := range s.Nodes {
		ns := NodeStatus{ID: string(nd.ID), Address: nd.Addr, State: nd.State.String()}
		if t, ok := seen[nd.ID]; ok {
			ns.LastSeen = &t
		}
		ns.MetadataVoter = slices.ContainsFunc(ms.Members, func(m raftgroup.Member) bool { return m.ID == string(nd.ID) && m.Voter })
		st.Nodes = append(st.Nodes, ns)
		if nd.State != ring.NodeActive {
			st.Converged = false
		}
	}
	for i := range st.Nodes {
		nodes[ring.NodeID(st.Nodes[i].ID)] = &st.Nodes[i]
	}
	// The metadata group must have settled too: its members are the
	// known nodes, its voters min(3, active) active ones. Until then a
	// node that looks gone may still be needed for its quorum.
	voters := 0
	for _, m := range ms.Members {
		nd := s.Node(ring.NodeID(m.ID))
		switch {
		case nd == nil || nd.State == ring.NodeDead:
			st.Converged = false
		case m.Voter && nd.State == ring.NodeActive:
			voters++
		case m.Voter:
			st.Converged = false
		}
	}
	if voters != min(metadataVoters, len(s.ActiveNodes())) {
		st.Converged = false
	}
	var own []uint64
	var tokens map[ring.GroupID]int
	if r := s.Ring(); r != nil {
		own = r.Ownership()
		tokens = map[ring.GroupID]int{}
		for _, t := range r.Tokens() {
			tokens[t.Group]++
		}
	}
	for i, g := range s.Groups {
		gs := GroupStatus{ID: uint32(g.ID), PreferredLeader: string(g.Leader), Tokens: tokens[g.ID]}
		if i < len(own) {
			gs.Ownership = float64(own[i]) / (1 << 64)
		}
		// The leader's report gives the configuration and the applied
		// index the lag is measured from.
		lead := leaders[g.ID].report
		gs.Leader = string(leaders[g.ID].node)
		names := slices.Clone(g.Replicas)
		for _, m := range lead.Members {
			if !slices.Contains(names, ring.NodeID(m.ID)) {
				names = append(names, ring.NodeID(m.ID))
			}
		}
		for _, id := range names {
			rs := ReplicaStatus{Node: string(id), Desired: slices.Contains(g.Replicas, id)}
			rs.Voter = slices.ContainsFunc(lead.Members, func(m raftgroup.Member) bool { return m.ID == string(id) && m.Voter })
			if r, ok := replicaOf(id, g.ID); ok {
				rs.State, rs.AppliedIndex = r.State, r.Applied
				if lead.Applied > r.Applied {
					rs.Lag = lead.Applied - r.Applied
				}
			}
			if !rs.Desired || !rs.Voter || rs.State == "" || rs.Lag > convergedLag {
				st.Converged = false
			}
			gs.Replicas = append(gs.Replicas, rs)
			if nd := nodes[id]; nd != nil && rs.Desired {
				nd.Replicas++
				if gs.Leader == string(id) {
					nd.Leaders++
				}
				if g.Leader == id {
					nd.PreferredLeaders++
				}
			}
		}
		if gs.Leader == "" || gs.Leader != gs.PreferredLeader || len(g.Replicas) < s.TargetReplicas() {
			st.Converged = false
		}
		st.Groups = append(st.Groups, gs)
	}
	if s.Ring() == nil {
		st.Converged = false
	}
	if steps, err := ring.Plan(s, ring.Event{}); err != nil || len(steps) > 0 {
		st.Converged = false
	}
	for _, e := range s.Epochs {
		st.Epochs = append(st.Epochs, EpochStatus{Generation: e.Generation, From: time.UnixMilli(e.FromMillis).UTC(), Groups: e.Ring.NumGroups()})
	}
	tenants := map[string]*TenantStat{}
	for _, nd := range s.Nodes {
		if _, ok := reports[nd.ID]; !ok && nd.State != ring.NodeDead {
			st.Errors = append(st.Errors, "no recent report from node "+string(nd.ID))
		}
		for _, t := range reports[nd.ID].Tenants {
			ts := tenants[t.Tenant]
			if ts == nil {
				ts = &TenantStat{Tenant: t.Tenant}
				tenants[t.Tenant] = ts
			}
			ts.Series += t.Series
			ts.Samples += t.Samples
		}
	}
	for _, t := range tenants {
		st.Tenants = append(st.Tenants, *t)
	}
	slices.SortFunc(st.Tenants, func(a, b TenantStat) int { return strings.Compare(a.Tenant, b.Tenant) })
	return st, nil
}
