// Package twophase is dbx's cross-node transaction protocol — two-phase
// commit with the decision kept in a transaction record — as pure state
// machines that node/ drives.
//
// It owns the protocol and nothing else: the Coordinator (collects votes,
// decides, reports the outcome), the Participant of each node (locks,
// WATCH checks, prepare records, in-doubt resolution, and the transaction
// records it holds as first participant), the lock table (Locks) and the
// storage adapter (storage.go: how records are stored as key/value pairs
// and read back into a Participant at start). It must not do I/O, start
// goroutines, read clocks or draw random numbers: time comes in as a
// node-local logical Tick, and every message, disk write and client reply
// goes out as an Effect the caller performs. The 1PC fast path (every key
// on one node) is not here: node/ commits such a transaction in one engine
// batch, after checking Locks.
//
// # Protocol
//
// The coordinator sends Prepare to every participant; Parts[0] is the
// record holder. A participant takes its keys' locks without waiting (a
// held key votes no with ErrLockConflict, so there are no deadlocks),
// checks the WATCH versions, and emits its Prepared record; the record
// holder also creates the transaction record, PENDING. Once the caller has
// made the record durable it calls Persisted, which emits the yes vote.
// Until then the participant may still abort on its own (AbortUnvoted, or
// a deadline in Tick); after, only the record decides. When every vote is
// yes the coordinator sends Decide(COMMITTED) to the holder, which applies
// it as a compare-and-set on the record (PENDING → COMMITTED) and answers
// with the record's final status (as soon as the record is durable; its
// own part is finished after that); the coordinator then sends Commit or
// Abort to everyone and replies to the client. A no vote or the deadline
// before that makes it decide ABORTED at once: only the coordinator ever
// asks for COMMITTED, so that outcome is certain.
//
// A voted participant that hears nothing queries the holder every
// ResolveTicks (Resolve). The holder answers with the record; an unknown
// record, or a PENDING one past RecordTTLTicks, is turned ABORTED first
// (presumed abort). That is a compare-and-set too, so it cannot race the
// coordinator: whichever lands first wins and the other learns it. Commit,
// Abort, Decide and Prepare are idempotent by TxID; an Abort that arrives
// before its Prepare is remembered and the Prepare is refused.
//
// A participant's keys are locked from its Prepare until its decision is
// durable: a commit's intents applied and its Committed marker written, or
// its Aborted record written. The participant enters Committed or Aborted
// when it learns the decision, but releases the locks only when the
// caller reports that with Applied. So the lock table alone says which
// keys the node must not serve, and a later transaction can neither read
// around nor overwrite a commit that is not applied yet, nor leave a
// second Prepared record on a key whose abort is not yet on disk.
//
// # Caller's duties
//
//   - Drive each state machine from one goroutine at a time; none is safe
//     for concurrent use. Call Tick at a steady interval (DefaultConfig
//     assumes 100 ms).
//   - Perform the effects a state machine returns for one transaction in
//     the order it returned them, across calls: effects of different
//     transactions (or of a node's Coordinator and Participant for the
//     same one, which only talk through messages) may run concurrently,
//     those of one never (node/ keeps a queue per transaction and state
//     machine; TxnOf names an effect's transaction). Make PersistPrepare
//     and PersistRecord durable before performing that transaction's
//     later effects; when a write fails, perform none of them (as if the
//     node had crashed), except as below.
//   - For a Prepared record: once durable, call Persisted and perform what
//     it returns; if it cannot be written, call AbortUnvoted instead.
//   - For a Committed PersistPrepare: apply Rec.Intents, then write the
//     record (a marker: EncodePrepare drops the intents), then call
//     Applied. For an Aborted one: write it, then call Applied. The keys
//     stay locked until Applied.
//   - The intents and the marker need not be one atomic batch, nor the
//     intents among themselves (dbx's driver writes them per engine shard,
//     then the marker: one batch spanning engine shards takes the
//     engine's cross-shard protocol, which is serialized per store and
//     stalls every shard it touches until its second sync — on every 2PC
//     commit of every participant). The order is what makes this safe:
//     the marker is written only once every intent is durable, and the
//     keys stay locked until the marker is. A crash before the marker is
//     durable leaves the Prepared record, with the intents: Restore locks
//     the keys again, the transaction resolves to COMMITTED from its
//     record, and the same values are written again, with no other write
//     to those keys in between. A crash after it leaves only the marker,
//     and every intent is on disk. (The record holder's COMMITTED record
//     is written before either, so the resolution cannot come out
//     otherwise.)
//   - Pass Step the current versions of the watched keys, read in the same
//     critical section that keeps other Prepares and writes of those keys
//     out (keys absent from the map have version 0). Give VersionBusy for
//     a key the caller cannot serve to the transaction (not owned, being
//     moved, unreadable), and for one Locks().Holder shows locked by
//     another transaction when the caller looked before reading versions:
//     that transaction's intents may be applied at any moment.
//   - Before serving a key — plain reads and writes and 1PC batches
//     included — check Locks().Holder: a locked key belongs to its
//     transaction until that is resolved and applied.
//   - After a restart, rebuild the Participant with Stored.Add for every
//     persisted entry and Stored.Restore (or Participant.Restore) before
//     serving any key; prepared transactions take their locks again and
//     ask their holders at once. A restarted coordinator starts empty:
//     tell the clients of its lost transactions that the outcome is
//     unknown.
//   - Make TxIDs unique across the cluster and across restarts.
//   - Deliver messages to the node in Message.To; loss, duplication and
//     reordering are tolerated. There, MsgVote and MsgDecision go to the
//     node's Coordinator and every other type to its Participant, also
//     when From == To (a node that coordinates and holds the record).
//   - Retry a transaction aborted with ErrLockConflict a bounded number
//     of times; one aborted with ErrWatchConflict returns nil to EXEC.
//
// # Caveats
//
//   - A final transaction record is dropped (ForgetRecord) after
//     RecordKeepTicks if COMMITTED, FinishedTTLTicks if ABORTED (a missing
//     record reads as ABORTED anyway). There are no acknowledgements, so a
//     participant in doubt that cannot reach the holder for longer than
//     RecordKeepTicks (1 h by default) would presume a committed
//     transaction aborted: keep it far above any partition to survive.
//   - A participant forgets a finished transaction after
//     FinishedTTLTicks (Forget). A Prepare delayed longer than that would
//     be prepared again; a committed one would then resolve to COMMITTED
//     and re-apply its intents. FinishedTTLTicks must exceed any message
//     delay the transport allows.
//   - Locks are exclusive for read, written and watched keys alike, and
//     there is no waiting: under contention transactions abort and retry
//     rather than queue. A decided transaction keeps its locks until
//     Applied, so a slow or failing disk keeps its keys unavailable (a
//     transaction never applied is kept, locks and all, until a restart).
//   - Ticks of different nodes are unrelated. Safety never depends on
//     them; liveness does (a holder whose clock stalls never presumes
//     abort, a participant whose clock stalls never asks).
//   - A coordinator timing out after asking for COMMITTED reports
//     OutcomeUnknown (ErrOutcomeUnknown) and forgets the transaction, even
//     if the decision arrives a moment later; participants still resolve
//     it from the record.
package twophase
