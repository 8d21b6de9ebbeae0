package cluster

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Ring is the part of GET /ring?format=json the benchmark reads; other
// fields are ignored.
type Ring struct {
	// ReplicationFactor is the replicas a group wants; zero if not said.
	ReplicationFactor int         `json:"replication_factor"`
	Converged         bool        `json:"converged"`
	Nodes             []RingNode  `json:"nodes"`
	Groups            []RingGroup `json:"groups"`
}

// RingNode is one member of the cluster.
type RingNode struct {
	ID    string `json:"id"`
	State string `json:"state"` // "active" once it takes part
}

// RingGroup is one Raft group of the data.
type RingGroup struct {
	// ID is kept as written (a number or a string).
	ID       json.RawMessage `json:"id"`
	Leader   string          `json:"leader"` // node ID; empty without one
	Replicas []Replica       `json:"replicas"`
}

// Replica is one copy of a group.
type Replica struct {
	Node  string `json:"node"`
	Voter bool   `json:"voter"`
}

// ParseRing decodes a /ring?format=json body.
func ParseRing(body []byte) (Ring, error) {
	var r Ring
	if err := json.Unmarshal(body, &r); err != nil {
		return Ring{}, fmt.Errorf("decode ring: %w", err)
	}
	return r, nil
}

// Ready returns nil when r is converged, lists every node of ids as
// active, and every group has a leader and at least one voter; otherwise
// an error that says what is missing.
func (r Ring) Ready(ids []string) error {
	var missing []string
	if !r.Converged {
		missing = append(missing, "not converged")
	}
	state := make(map[string]string, len(r.Nodes))
	for _, n := range r.Nodes {
		state[n.ID] = n.State
	}
	for _, id := range ids {
		switch s, ok := state[id]; {
		case !ok:
			missing = append(missing, "node "+id+" not listed")
		case s != "active":
			missing = append(missing, fmt.Sprintf("node %s is %q", id, s))
		}
	}
	if len(r.Groups) == 0 {
		missing = append(missing, "no groups")
	}
	for _, g := range r.Groups {
		if g.Leader == "" {
			missing = append(missing, "group "+string(g.ID)+" has no leader")
		}
		if g.Voters() == 0 {
			missing = append(missing, "group "+string(g.ID)+" has no voter")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("ring not ready: %s", strings.Join(missing, "; "))
	}
	return nil
}

// Voters returns the number of voting replicas of g.
func (g RingGroup) Voters() int {
	n := 0
	for _, r := range g.Replicas {
		if r.Voter {
			n++
		}
	}
	return n
}

// Summary describes r in one line for a report: groups, voters per group
// and leaders per node, e.g. "RF 3, 4 groups, 3 voters each, leaders n1:2
// n2:1 n3:1".
func (r Ring) Summary() string {
	voters := map[int]int{}
	leaders := map[string]int{}
	for _, g := range r.Groups {
		voters[g.Voters()]++
		if g.Leader != "" {
			leaders[g.Leader]++
		}
	}
	var b strings.Builder
	if r.ReplicationFactor > 0 {
		fmt.Fprintf(&b, "RF %d, ", r.ReplicationFactor)
	}
	fmt.Fprintf(&b, "%d groups", len(r.Groups))
	if len(voters) == 1 {
		for v := range voters {
			fmt.Fprintf(&b, ", %d voters each", v)
		}
	} else {
		vs := make([]int, 0, len(voters))
		for v := range voters {
			vs = append(vs, v)
		}
		sort.Ints(vs)
		for _, v := range vs {
			fmt.Fprintf(&b, ", %d with %d voters", voters[v], v)
		}
	}
	if len(leaders) > 0 {
		ids := make([]string, 0, len(leaders))
		for id := range leaders {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		b.WriteString(", leaders")
		for _, id := range ids {
			fmt.Fprintf(&b, " %s:%d", id, leaders[id])
		}
	}
	return b.String()
}
