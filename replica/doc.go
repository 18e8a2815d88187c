// Package replica is dbx's bucket replication — primary/backup with the
// Raft metadata as configuration manager (PacificA, Kafka's in-sync
// replicas) — as pure state machines that node/ will drive.
//
// It owns the protocol and nothing else: Replica, one per node, plays
// every role the node has for each bucket (primary, backup, learner), and
// Failover is the metadata leader's promotion of replacements for dead
// primaries. It must not do I/O, start goroutines, read clocks or draw
// random numbers: time comes in as a node-local logical Tick, and every
// message, disk write, client reply and metadata proposal goes out as an
// Effect the driver performs. Outputs never depend on map order.
//
// # Configurations
//
// Each bucket has a Membership in the metadata: an Epoch, a Primary, the
// in-sync Set (the primary included) and the Owners the placement names.
// The driver feeds every applied View (Applied); a configuration changes
// only through a Change, a compare-and-set on the epoch (From), so of two
// racing changes the metadata commits the first and refuses the other.
//
// # Write path
//
// The primary orders writes (Propose) at the next Seq, tagged with the
// epoch of the primary that created them; an entry's ID is (Seq, Epoch).
// It persists each write (Persist) and ships it to every other owner
// (Ship, with the entry before the batch as Prev, its log end Last and
// its commit point). It acknowledges a write (Reply with a nil Err) only
// once its own copy and that of every replica of the current set are
// durable: not a majority, all of the set — so any in-set replica can be
// promoted without comparing logs. A set smaller than 1 +
// MinReplicasToWrite refuses writes (ErrNoReplicas); a full in-flight
// window refuses them with ErrBackpressure.
//
// A backup accepts a Ship only of its current epoch from that epoch's
// primary (ReasonStaleEpoch tells an old primary it was deposed;
// ReasonFutureEpoch makes the primary retry later) and only if Prev
// matches its log (else ReasonGap or ReasonMismatch with a hint, and the
// primary resends from there). Entries it already holds are skipped, so
// nothing is applied twice; a differing entry beyond its commit point is
// truncated (Truncate) before the new ones are appended. It acknowledges
// what is durable and matches the primary's log (Persisted drives that).
//
// A set member that does not answer for AckTimeoutTicks, stays behind the
// log end it had LagTicksMax ago, or lags by more than LagBytesMax is
// proposed out of the set (ProposeChange, new epoch; the changes of all
// of a node's buckets due at one Tick come as one ProposeChange, one
// metadata entry). While any proposal
// of the primary is pending it acknowledges nothing — the replica being
// removed is still in the set until the change is applied. An owner out
// of the set is a learner: it asks for what follows its last entry
// (CatchUp); the primary answers with a delta when the learner's log is a
// prefix of its own, else from the learner's commit point (the learner
// truncates above it), and with NeedCopy (the move protocol's snapshot +
// tail, then Install) when the delta would start before its retained
// log. Caught up, the learner is proposed into the set, again with
// acknowledgements held until the change is applied, so it misses no
// acknowledged write.
//
// # Quiescence
//
// A node is primary of thousands of buckets; heartbeating all of them
// would cost more than the writes. A primary bucket idle for QuiesceTicks
// (no Propose, no Touch) whose whole set is caught up, with nothing
// pending, no learner and no change in flight, goes quiet: no heartbeats,
// no answer clocks, and its lease runs out. Touch (the driver calls it
// before every read), Propose, a catch-up request or a new configuration
// wake it; a woken primary starts a round at once, so a read waits one
// round trip for its lease, and its replicas' answer clocks restart then
// (a replica that died while the bucket was quiet is found out by the
// next write that waits on it, or by the leader's Failover). A primary
// whose bucket is empty starts every new configuration quiet: there is
// nothing to reconcile, and a cluster's first placements reconfigure every
// bucket several times. Failover does not depend on bucket heartbeats:
// the leader hears nodes, not buckets.
//
// # Failover and reconciliation
//
// Failover, on the metadata leader, promotes the lowest-named live in-set
// replica of each bucket whose primary it has not heard from for
// DeadTicks, one ProposeChange per batch of FailoverBatchMax buckets. The
// promoted replica re-ships everything after its commit point to the new
// set; a member with entries beyond the new primary's log truncates them:
// on a Ship that reaches the primary's Last, an entry beyond it from an
// older epoch cannot be in the primary's log (every Last of an epoch
// covers what its primary held at promotion), so it goes with all that
// follows; an entry of the current epoch beyond it came from a later Ship
// and stays. A differing entry at the same seq is replaced the same way.
// Those entries were never acknowledged: their outcome is unknown. A
// primary that learns of a newer epoch (a refusal, or the new
// configuration) answers its pending writes with ErrOutcomeUnknown — they
// may still commit under the new primary; one that crashed answers
// nothing, and its driver must say "unknown".
//
// A restarted node that finds itself primary of an epoch never writes in
// it (it may have shipped entries it did not make durable and lost): it
// proposes the same configuration at the next epoch first.
//
// # Leases and reads
//
// A primary serves reads (CanRead) only while it holds a lease: a round
// (every Ship carries one) sent in the current configuration and
// acknowledged by every other replica of the set gives LeaseTicks from
// its sending, on the primary's clock. A replica that acknowledges a
// round promises not to serve as primary of a later epoch — neither
// writes nor reads — until LeaseTicks + LeaseMarginTicks after its
// acknowledgement, on its own clock; a restarted node waits that long
// from its start. Since a new primary is always a member of the old set,
// every lease the old primary held expires before the new one serves,
// whatever the leader's clock says. The lease is dropped while a change
// the primary proposed is pending and whenever a new configuration is
// applied, and a promoted primary reads only once what it held at
// promotion is committed in its epoch. Failover's DeadTicks ≥ LeaseTicks
// + LeaseMarginTicks only makes that wait over by the time a promotion
// lands.
//
// # Tests
//
// testdata/*.txt are scenario scripts (scenario_test.go, -rewrite to
// regenerate) over a simulated cluster (sim_test.go): nodes with a
// modelled driver and disk, a metadata log of compare-and-set changes
// committed in any order, a leader running Failover, a message queue,
// crashes, pauses, slow disks, nodes cut off from the leader.
// TestRandomSchedules runs seeded schedules of the same operations (half
// of them with idle buckets quiescing) and
// checks after every step that a write is acknowledged only while it is
// durable on every member of the newest committed set and that no seq is
// acknowledged for two writes, that no read is served by a primary of an
// epoch older than one whose primary has accepted a write, nor one
// missing an acknowledged write, and once healed that every owner is back
// in the set with the primary's log and every acknowledged write is on
// every member of the final
// set (-seed to rerun one). TestRandomSchedulesCatchMutations and
// TestScenariosCatchMutations switch key rules off one at a time and
// expect a schedule, or the scenario written for the rule, to fail.
//
// # Caller's duties
//
//   - Drive a Replica (and a Failover) from one goroutine at a time; they
//     are not safe for concurrent use. Pass a monotonic Tick to every
//     call and call Tick at a steady interval (DefaultConfig assumes
//     10 ms); the lease arithmetic assumes tick rates of two nodes differ
//     by less than LeaseMarginTicks over a lease.
//   - Perform the effects of one bucket in the order returned. Persist
//     and Truncate are the bucket's disk writes: perform them in order
//     and, once a write and all before it are durable, call Persisted
//     with its Write number (batching several into one sync is fine).
//     When a write fails, stop (as if crashed). Send may go out before
//     the bucket's earlier disk writes are durable (acks only ever cover
//     durable entries).
//   - Apply an entry to the store when it is persisted and may be read
//     once committed; a Truncate undoes the entries after After (they
//     were never committed: replaying the log from the last snapshot is
//     the simple way).
//   - After a restart: New, then Restore every bucket's durable log tail
//     (at least everything after the commit point) and its commit hint,
//     then Applied. Tell the clients of writes in flight at the crash
//     that the outcome is unknown.
//   - Feed Applied with every applied metadata View, and propose every
//     ProposeChange as one metadata entry whose changes are each
//     compare-and-set on the bucket's epoch. A proposal that fails needs
//     nothing: the state machine proposes again after ProposeRetryTicks.
//   - Deliver Send messages to Msg.To; loss, duplication and reordering
//     are tolerated.
//   - On the metadata leader, call Failover.Heard for every sign of life
//     of a node and Failover.Tick with the applied View; create a new
//     Failover whenever leadership is taken.
//   - Call Touch before every read of a bucket and perform its effects;
//     serve a read only after CanRead returns nil at the current tick;
//     reply to a write only on its Reply. A Reply with ErrOutcomeUnknown
//     is "unknown", never "failed".
//   - For NeedCopy, copy the bucket from this node's store as of Upto
//     (snapshot + tail, throttled like a move) to To, which calls Install
//     once the copy is durable.
//
// # Caveats
//
//   - One write per Ship batch is never split: BatchBytesMax bounds a
//     write. Propose ships each write at once; the driver coalesces
//     messages and syncs to batch them with its group commit.
//   - Lag bytes are summed over the uncommitted log on every tick and
//     propose (bounded by InflightEntriesMax, but O(window)).
//   - A learner refuses nothing for being too far ahead and keeps at most
//     the primary's window beyond its commit point; a learner whose disk
//     is lost simply catches up from zero (or by copy).
//   - Ticks of different nodes are unrelated; safety depends on them only
//     through the lease (bounded drift), liveness on all of them.
//   - Every node waits LeaseTicks + LeaseMarginTicks after New before it
//     serves as primary of any bucket (it cannot know which leases it
//     granted before a restart) — also at a cluster's first start.
//   - A deposed primary keeps its bucket state until a configuration
//     naming its new role is applied; it serves nothing meanwhile.
//   - The tests do not catch a primary that grows its set before its own
//     lease wait is over (the grow-time wait in tickPrimary): it guards
//     a chain of promotion, grow and promotion within one lease.
//   - Driven by node/replicate.go. wire.go is the messages' checksummed
//     wire form, storage.go the durable log's layout; Status and Describe
//     are what status shows (no metrics yet).
package replica
