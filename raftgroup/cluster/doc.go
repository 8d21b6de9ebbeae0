// Package cluster runs a node of a Myelin cluster: its replica of the
// metadata Raft group, whose state machine is raftgroup/ring's State, and
// its replicas of the data groups the metadata places on it, all over
// the node's one listener (raftgroup.Mux). It keeps the Raft
// configurations following the placement and routes proposals to group
// leaders. It knows nothing of the engine: cmd wires a Storage that opens
// each group's state machine, whose apply outcomes it carries as bytes. It
// must not import engine or server.
//
// # Caller protocol
//
//  1. Open the node's Mux (raftgroup.NewMux) with a Resolve that asks the
//     node (Node.Resolve) once it exists.
//  2. n, err := Start(Options{...}): opens the metadata replica
//     (bootstrapping a new cluster with Peers, or alone; joining through
//     Join; or recovering Dir/meta) and starts the node's loops. It does
//     not wait for the cluster.
//  3. Serve n.Handler() under PathPrefix on the HTTP server of the Mux's
//     KindHTTP connections (the control RPCs, see rpc.go).
//  4. Write with n.Propose(ctx, group, entry); read a group through its
//     leader (n.Leader, n.Replica); route with n.View().State.
//  5. n.Drain(ctx, id) to move a node's replicas away and remove it.
//  6. n.Close(): stops the loops, checkpoints and closes every replica.
//
// # Loops (goroutines owned by Node, stopped by Close)
//
//   - heartbeat: every Options.Heartbeat, report this node and its
//     replicas to the metadata leader; the report is also how a node
//     joins (or rejoins after being declared dead).
//   - control: open the replicas the metadata places here; for each
//     group this node leads, make one configuration change towards the
//     placement (add non-voter, promote once caught up, then remove,
//     then hand leadership to the preferred leader); close and delete
//     replicas the placement moved away, once their group's leader has
//     removed them.
//   - metadata (on its leader only): declare dead the nodes silent for
//     DeadAfter, plan a reconcile, keep the metadata group's voters on
//     (up to three) active nodes.
//
// docs/design.md "Scale-out" has the reasons.
//
// # Metadata log entries
//
// A ring step (ring.AppendStep, first byte ring.StepVersion), or
//
//	0x80 | group:uvarint    the group's first replica has started: no
//	                        replica may bootstrap it again
//
// The metadata checkpoint and snapshot format is in meta.go (metaFSM).
package cluster
