// Package coordinator holds dbx's cluster metadata in a Raft group that
// every node embeds: the members (addresses, weight, life-cycle state), the
// placement table with its epoch, the inputs it was computed from, and
// whether the cluster holds data, the migration (target table, moves in
// flight, limits, progress), the global snapshot manifests, and the
// replication metadata: the replication factor and every bucket's replica
// configuration (package replica's Membership).
//
// It owns three layers:
//
//   - State, the pure state machine: Apply(index, command) returns a new
//     immutable State and a Result; no I/O, no clocks, no map-order
//     dependence, so every node that applies the same log reaches a
//     byte-identical state (MarshalBinary, Digest). Rejected commands are
//     rejected the same way everywhere and change nothing but the index.
//     Plan computes, from a State, the placement it should have.
//   - FSM, the raft.FSM adapter: it publishes each new State through an
//     atomic pointer (Current, Watch) and, if given one, a router.Holder.
//   - Coordinator, which runs the FSM on hashicorp/raft with raft-boltdb/v2
//     (log + stable store behind raft.NewLogCache) and file snapshots, and a
//     leader loop that keeps the metadata reconciled.
//
// It must not sit on the per-request hot path: requests read the router
// Table published to the Holder, never the coordinator.
//
// # Usage
//
//	c, err := coordinator.Open(coordinator.Config{
//		NodeID: "n1", DataDir: dir, Bootstrap: first,
//		Self:   coordinator.Member{RPCAddr: rpc, RESPAddr: resp, HTTPAddr: http, Weight: 1},
//		Holder: &holder, Logger: log,
//	}, raftTransport)
//	defer c.Close()
//	// on the leader, when node n2 asks to join (the node layer forwards):
//	err = c.Join(ctx, coordinator.Member{ID: "n2", RaftAddr: a, RPCAddr: r, ...})
//	// operator actions and failure detection, on the leader:
//	_, err = c.Apply(ctx, coordinator.SetWeight{ID: "n2", Weight: 2})
//	_, err = c.Apply(ctx, coordinator.SetState{ID: "n3", State: coordinator.StateFailed})
//	// readers, anywhere:
//	s, changed := c.Watch()
//
// # Membership and placement
//
// The first node bootstraps a single-voter cluster. Join, on the leader,
// applies AddMember (the member is joining) and adds the node to the Raft
// configuration: as a voter while there are fewer than VotersMax (default
// 3, at most 5) voters, else as a non-voter, which replicates and applies
// the log without voting. When a voter is removed the leader promotes the
// oldest non-voter that is joining or active.
//
// The leader loop runs after every applied command, on gaining leadership
// and every 10 s. It adds the leader itself as a member at bootstrap, makes joining
// members active, and when the
// active members or their weights differ from the ones the current table
// was computed from, plans a new table from the current one (ring.New →
// router.FromRingPrev, at epoch + 1) and applies SetPlacement. SetPlacement is accepted only at exactly
// epoch + 1 and only if it was computed from the current active members and
// weights, so a plan raced by another change is rejected deterministically
// and the loop plans again. Failed Raft operations are retried with a
// doubling backoff (50 ms to 2 s), at most 8 times per trigger.
//
// # Data and migrations
//
// Once the node layer applies MarkHasData (sent when a node first stores a
// key; it cannot be undone), a SetPlacement that changes some bucket's
// owner no longer replaces the table: the new table becomes the migration
// target, the table stays, and the buckets move one StartMove/FinishMove
// pair at a time (each FinishMove switches the moved buckets' owner, epoch
// + 1; CancelMove gives a move up). A change during a migration extends it.
// RemoveMember of a member that owns buckets is refused with ErrHasData
// (drain it first). The moves themselves are run by the node layer.
//
// # Replication metadata
//
// A *State is a replica.View: every bucket has a Membership (epoch,
// primary, in-sync set, owners) once the first placement exists. It is
// derived from the table — the primary is the bucket's first owner, the
// set every owner, so with RF 1 {owner} — unless a ChangeReplicas set it
// otherwise. The epoch is 1 at the first placement and goes up by one
// whenever the bucket's owners change (a SetPlacement that replaces the
// table, a FinishMove's switch; a change of owners also drops an explicit
// configuration) and with every accepted replica Change; nothing else
// changes it. ChangeReplicas applies a replica.ProposeChange as one
// entry: each change is a compare-and-set on its bucket's epoch, judged
// on its own in order, as replica's contract says (of two racing changes
// the first committed wins); a refused change leaves its bucket alone and
// the rest of the entry applies (Result.Changes). Owners always come from
// the table: a change may set the primary and the in-sync set, never the
// owners. Storage is compact: one epoch per bucket in 64 chunks, shared
// between States and copied on write chunk by chunk by a command that
// changes some bucket's epoch, plus a map of the explicit configurations
// that differ from the derived one (an RF-1 restart's same-configuration
// bump stores only its epoch). Cloning a State copies one pointer.
//
// SetReplicationFactor records the replication factor; the bootstrapping
// node applies it before the first placement when Config.ReplicationFactor
// is not the default 1, and it cannot change once a placement exists.
// It is recorded only: tables are still built from Config.Placement.RF
// and the node serves RF 1 until replication is wired.
//
// # Concurrency
//
// Raft calls FSM.Apply, Restore and Snapshot on one goroutine; Persist
// runs concurrently with later Applies, which is safe because a snapshot
// holds an immutable *State. Current, Watch, Leader and IsLeader never
// block. Apply, Join, Remove and LinearizableRead block for a Raft round
// trip and are leader-only: elsewhere they return a *NotLeaderError
// (errors.Is(err, ErrNotLeader)) naming the leader's ID, Raft address and
// RPC address; forwarding is the caller's job. Close stops the leader loop
// and Raft and waits for them.
//
// # Caveats
//
//   - Apply of a SetPlacement does not rebuild the ring to check the table:
//     it checks the epoch, the encoding and that the table's nodes and the
//     recorded inputs are the active members and weights. The leader is
//     trusted to have computed the table with the cluster's ring.Config,
//     which every node must share (Config.Placement).
//   - Leadership lost while a command is in flight gives ErrUnknownOutcome:
//     the command may or may not be committed. Commands are idempotent
//     except SetPlacement, whose retry is rejected with ErrStaleEpoch; read
//     the state before retrying.
//   - ctx bounds the time to enqueue a command in Raft, not the wait for its
//     commit: Raft always resolves it (commit, leadership lost after the
//     lease timeout, or shutdown).
//   - Failure detection is not here: the node layer (memberlist) applies
//     SetState failed/active. Nothing removes a failed voter from the Raft
//     configuration automatically; with 3 voters, one failure is survived,
//     two are not, until an operator removes the dead nodes (Remove).
//   - Non-voters are promoted when joining or active, never when failed,
//     draining or left.
//   - The leader adds itself as a member only at bootstrap (empty member
//     list) or to update its own addresses; other nodes are added by Join.
//   - Config.DataDir empty keeps the Raft log in memory: tests only.
//   - Nothing drives the replication metadata yet: node/ neither feeds the
//     View to package replica nor proposes ChangeReplicas, so with RF 1
//     every bucket's configuration is its table owner and only owner
//     changes move epochs.
//   - A snapshot written before the replication metadata existed restores
//     with RF 1 and every bucket at epoch 1. Nodes that restore different
//     such snapshots and replay different log suffixes can disagree on
//     bucket epochs (on nothing else), and would then disagree on which
//     ChangeReplicas apply. Harmless while nothing proposes one; before
//     replication is wired, an upgraded cluster needs its epochs re-based
//     through the log (not built).
//   - With a table of RF > 1 (Placement.RF) the derived set is every
//     owner, right for a cluster without data; moves are RF 1 only today,
//     so owners with data never change under RF > 1.
//   - A ChangeReplicas larger than MaxReplicaChanges or MaxCommandBytes
//     is refused; the driver splits a large ProposeChange into entries.
//   - Commands and snapshots are JSON behind a kind byte and a versioned,
//     CRC-32C-checked header; unknown fields are rejected, so all nodes of
//     a cluster must run the same command format (no mixed-version upgrade
//     yet).
package coordinator
