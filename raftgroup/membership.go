package raftgroup

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"
)

// Member is a replica in the group's configuration.
type Member struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

// Status is a replica's view of its group.
type Status struct {
	ID       string   `json:"id"`
	State    string   `json:"state"` // Leader, Follower, Candidate, Shutdown
	Term     uint64   `json:"term"`
	LeaderID string   `json:"leader_id"`
	Leader   string   `json:"leader_address"`
	Members  []Member `json:"members"`
	Stats    Stats    `json:"stats"`
}

// IsLeader reports whether this replica believes it leads. Use
// VerifyRead before serving a read.
func (g *Group) IsLeader() bool { return g.raft.State() == raft.Leader }

// Status returns the replica's view of the group.
func (g *Group) Status() (Status, error) {
	st := Status{ID: g.opts.ID, State: g.raft.State().String(), Term: g.raft.CurrentTerm(), Stats: g.Stats()}
	st.LeaderID, st.Leader = g.Leader()
	var err error
	st.Members, err = g.Members()
	return st, err
}

// VerifyRead returns nil if a read served now by this replica sees every
// write acknowledged before the call (a read index): the replica is the
// leader, it has applied a barrier in its current term (so every entry
// committed by earlier leaders is applied), and a quorum still accepts it
// as leader (raft's VerifyLeader, one heartbeat round). Otherwise it
// returns a *NotLeaderError or the reason.
func (g *Group) VerifyRead(ctx context.Context) error {
	if g.raft.State() != raft.Leader {
		return g.notLeader()
	}
	term := g.raft.CurrentTerm()
	if g.readTerm.Load() != term {
		if err := g.raft.Barrier(g.timeout(ctx)).Error(); err != nil {
			return fmt.Errorf("read barrier of %s: %w", g.opts.ID, g.mapErr(err))
		}
		// If the term moved on meanwhile the next read barriers again.
		g.readTerm.Store(term)
	}
	if err := g.raft.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("verify leader %s: %w", g.opts.ID, g.mapErr(err))
	}
	return nil
}

// AddVoter adds the replica id at address to the group as a voter, or
// updates its address; call it on the leader. The new replica (opened
// with Options.Join) catches up from the log, or from a snapshot of the
// leader's state (kind 1, see doc.go) if the log no longer reaches back
// far enough. Returns when the configuration change is committed.
func (g *Group) AddVoter(ctx context.Context, id, address string) error {
	err := g.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(address), 0, g.timeout(ctx)).Error()
	if err != nil {
		return fmt.Errorf("add voter %s at %s to %s: %w", id, address, g.opts.ID, g.mapErr(err))
	}
	return nil
}

// RemoveServer removes the replica id from the group; call it on the
// leader. A leader removing itself steps down once the change commits.
func (g *Group) RemoveServer(ctx context.Context, id string) error {
	err := g.raft.RemoveServer(raft.ServerID(id), 0, g.timeout(ctx)).Error()
	if err != nil {
		return fmt.Errorf("remove %s from %s: %w", id, g.opts.ID, g.mapErr(err))
	}
	return nil
}

// MemberAddress returns the address of replica id in the group's latest
// configuration, or "" if it is not a member.
func (g *Group) MemberAddress(id string) string {
	f := g.raft.GetConfiguration()
	if f.Error() != nil {
		return ""
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return string(s.Address)
		}
	}
	return ""
}

// AddNonvoter adds the replica id at address as a non-voter: it receives
// the log (or a snapshot) but does not count for the quorum, so the group
// keeps committing while a new copy is made. Promote it with AddVoter
// once it has caught up. Call it on the leader.
func (g *Group) AddNonvoter(ctx context.Context, id, address string) error {
	err := g.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(address), 0, g.timeout(ctx)).Error()
	if err != nil {
		return fmt.Errorf("add non-voter %s at %s to %s: %w", id, address, g.opts.ID, g.mapErr(err))
	}
	return nil
}

// TransferLeadership asks the voter id at address to take over as leader
// and returns once it has (or the attempt failed). Call it on the leader.
func (g *Group) TransferLeadership(id, address string) error {
	err := g.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(address)).Error()
	if err != nil {
		return fmt.Errorf("transfer leadership of %s to %s: %w", g.opts.ID, id, g.mapErr(err))
	}
	return nil
}

// Members returns the group's latest configuration as this replica knows
// it (committed or not).
func (g *Group) Members() ([]Member, error) {
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("configuration of %s: %w", g.opts.ID, g.mapErr(err))
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}
