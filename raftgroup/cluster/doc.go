// Package cluster runs a node of a Myelin cluster: its replica of the
// metadata Raft group, whose state machine is raftgroup/ring's State, and
// its replicas of the data groups the metadata places on it, all over
// the node's one listener (raftgroup.Mux). It keeps the Raft
// configurations following the placement and routes proposals to group
// leaders. It knows nothing of the engine: cmd wires a Storage that opens
// each group's state machine, whose apply outcomes it carries as bytes. It
// must not import engine or server.
//
// A single node is a cluster of one: the same code, with one metadata
// voter and groups of one replica, on a Mux that may listen nowhere
// (raftgroup.MuxOptions); on such a node the groups elect themselves after
// a short timeout (singleVoterHeartbeat).
//
// # Roles
//
// Node composes one type per role; each holds only what it needs:
//
//   - metadata (metadata.go, meta.go): this node's replica of the
//     metadata group: its state machine (metaFSM over ring.State), the
//     applied View, proposals, and calls to the metadata leader.
//   - placement (placement.go): this node's data replicas: opens the ones
//     placed here, drops the ones moved away, and for each group it leads
//     makes one configuration change at a time towards the placement.
//   - reporter (reporter.go): the heartbeat to the metadata leader, which
//     is also how a node joins; it keeps the leaders the replies name.
//   - metaLeader (metaleader.go, status.go): what the metadata leader
//     does: takes heartbeats, declares silent nodes dead, plans and
//     commits placement steps, keeps the metadata voters on active
//     nodes, assembles Status.
//   - Router (router.go): proposals and reads to group leaders, with one
//     leader lookup, one retry policy and one client.
//   - rpcClient and Handler (rpc.go): the control RPCs between nodes.
//
// # Caller protocol
//
//  1. Open the node's Mux (raftgroup.NewMux) with a Resolve that asks the
//     node (Node.Resolve) once it exists; without a listener for a node
//     nobody else joins.
//  2. n, err := Start(Options{...}): opens the metadata replica
//     (bootstrapping a new cluster with Peers, or alone; joining through
//     Join; or recovering Dir/meta) and starts the node's loops. It does
//     not wait for the cluster: Ready says when it can serve.
//  3. Serve n.Handler() under PathPrefix on the HTTP server of the Mux's
//     KindHTTP connections (the control RPCs, see rpc.go).
//  4. Write with n.Router().Propose(ctx, group, entry); read a group
//     through n.Router().Read; route with n.Router().Ring and Owners.
//  5. n.Drain(ctx, id) to move a node's replicas away and remove it.
//  6. n.Stop() when a shutdown begins; n.Close(): stops the loops,
//     checkpoints and closes every replica.
//
// # Loops (goroutines owned by Node, stopped by Close)
//
//   - reporter: every Options.Heartbeat (fast retries until the first
//     success), report this node and its replicas to the metadata leader.
//   - placement: open, drop and reconcile replicas, every half heartbeat
//     and at every metadata change.
//   - metaLeader (acting on the metadata leader only): declare dead the
//     nodes silent for DeadAfter, plan a reconcile, keep the metadata
//     group's voters on (up to three) active nodes.
//
// docs/design.md "Scale-out" has the reasons.
//
// # Metadata log entries
//
// A ring step (ring.AppendStep, first byte ring.StepVersion), a rule
// group change (AppendRuleChange, first byte 0x81, rules.go), or a bump
// of a tenant's results-cache generation (AppendCacheGenBump, first
// byte 0x82, cachegen.go). The metadata is one ring.State (membership,
// placement, ring history, which groups await their bootstrap, which
// nodes were removed), the tenants' rule groups (RuleGroups), placed on
// the active nodes by View.RuleOwner, and the tenants' cache generations
// (CacheGenerations); Node.ChangeRules and Node.BumpCacheGeneration
// commit a change through the metadata leader. Logs written
// before ring.StepStartGroup may hold 0x80 | group:uvarint, applied as
// that step. The checkpoint and snapshot format is in meta.go (metaFSM).
package cluster
