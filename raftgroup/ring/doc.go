// Package ring owns Myelin's cluster metadata as a pure value: the ring
// that maps a series' hash to a Raft group, the membership (nodes and
// their states), the placement of every group's replicas and preferred
// leader, and the history of token ownership that queries need. It also
// plans placement changes. It does no I/O, starts no goroutine, holds no
// lock and reads no clock: cmd keeps a State as the state machine of the
// metadata Raft group and feeds it Steps; the server's distributor and
// querier read a Ring and the history. It must not import engine or
// raftgroup (an arch test enforces that it imports only the standard
// library and xxhash).
//
// # Model
//
// A series of tenant t with label set l (engine encoding) has the ring
// position Hash(t, l) (a format, see Hash). The ring is a sorted list of
// 64-bit tokens, each owned by a group; a hash belongs to the group that
// owns the first token >= it (wrapping, although the last token is always
// MaxUint64). Groups are created by the planner, GroupsPerNode per active
// node, and never deleted; a new group takes exactly its 1/n share of the
// hash space from the groups above it (Ring.withGroup), so every group
// owns 1/n of the space and only the series the new group takes move.
// Each token assignment is an Epoch with the time it took effect; the
// epochs are the ownership history (Owners, OwnersOfHash).
//
// # Caller protocol
//
//  1. s, err := NewState(Options{...}) for a new cluster, or
//     DecodeState(bytes) for a stored one (a metadata snapshot).
//  2. On an event (a node joins, is drained, or is declared dead after the
//     failure detector's delay), steps, err := Plan(s, Event{..., AtMillis:
//     now}). Plan does not change s.
//  3. Propose each step (AppendStep) to the metadata group, in order; its
//     FSM applies each committed entry with s.Apply(DecodeStep(entry)) on
//     every replica. Apply refuses a step that no longer fits (the state
//     moved on): the leader then plans again (Plan(s, Event{}), a
//     reconcile). A plan cut short is finished the same way.
//  4. The node executing the placement does what each applied step says,
//     one step at a time: for StepAddReplica, raft AddNonvoter, wait for
//     the new replica to catch up (snapshot, then log), then AddVoter, so
//     the quorum never waits on a copy being made; RemoveServer for
//     StepRemoveReplica; a leadership transfer for StepTransferLeader.
//  5. Readers take s.Ring() (immutable, safe to share) for writes and
//     s.Owners(mint, maxt, window) for queries.
//
// # Placement rules (Plan)
//
// Replication factor min(ReplicationFactor, active nodes); no two
// replicas of a group on one node; replicas and preferred leaders per
// active node balanced within 1; add-then-remove, so a StepRemoveReplica
// never leaves a group with fewer active replicas than that factor
// (INVARIANT, checked by Apply). A group that lost its quorum (a
// majority of its replicas on dead nodes, State.HasQuorum) cannot commit
// a membership change, so the planner leaves it and its dead nodes alone
// until enough of them come back (or an operator runs raft's manual
// recovery); it never replaces the last copies of data by empty replicas.
//
// # State format (version 2)
//
// Integers are unsigned LEB128 varints (uvarint) unless stated; varint is
// zig-zag; str is uvarint length then bytes (at most MaxNameBytes).
//
//	"myrg" | version:byte(2) | generation | replicationFactor | groupsPerNode
//	nodes:uvarint  { id:str addr:str state:byte }           sorted by id
//	groups:uvarint { id leader:nodeIndex replicas:uvarint { nodeIndex } starter:str }
//	epochs:uvarint { generation fromMillis:varint tokens:uvarint
//	                 { token:uint64 big-endian group } }
//	removed:uvarint { id:str drained:byte(0|1) }            sorted by id
//
// nodeIndex is an index in the node list; starter is empty once the group
// started. Equal states encode to equal bytes (testdata/state.golden).
// DecodeState checks every invariant of State. Version 1 (the same without
// starter and removed, testdata/state-v1.golden) still decodes: the
// metadata FSM kept those two in side maps then.
//
// # Step format (version 1), one metadata log entry
//
//	version:byte(1) | kind:byte | node:str | addr:str | state:byte | group | atMillis:varint
//
// kind is a StepKind (1 add-node ... 9 start-group).
package ring
