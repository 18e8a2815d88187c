// Package rebalancer turns a change of placement into bucket moves and
// owns the move protocol.
//
// # Planning
//
// Plan compares two placement tables and lists, for every (source,
// target) pair of nodes, the buckets whose primary moves from the source
// to the target, with contiguous bucket numbers compressed into ranges (a
// bucket is a key range in the engine, so a run of buckets is one scan).
// It is the one placement diff: the coordinator's State.Pending is Plan's
// buckets less those a move carries. It needs no key list: buckets are
// the unit of movement.
//
// # The move protocol
//
// A move carries up to ChunkBucketsMax buckets from one node (the source)
// to another (the target). Three state machines run it, each pure — no
// I/O, no clock, no goroutines — in the style of etcd-io/raft: the driver
// (package node) feeds them events and the applied metadata (a View; the
// coordinator's State is one), and performs the Effects they return, in
// order.
//
//   - Leader, on the metadata leader: Plan cuts the pending buckets into
//     moves, proposes their start (ProposeStart), has the target pull
//     (RunPull), and commits the switch (ProposeFinish) or the
//     cancellation (ProposeCancel) from PullDone. Moves in the log that no
//     running leader carries are cancelled.
//   - Pull, the target's sequence: Begin (the source taps the buckets and
//     takes a snapshot), Copy (the snapshot, page by page), Tail (rounds
//     of the keys changed since, until few are left), Fence (the source
//     stops serving the buckets and hands over the last changes), Durable,
//     Done. A failure before the fence tells the source to drop the move;
//     after it, only the log's verdict may lift the fence.
//   - Local, every node's own side: as a source the tap (Written), the
//     snapshot's generation, the fence (Fenced), and the verdict
//     (Applied: switched — lift the fence, then delete what was handed
//     over — or cancelled); as a target which pull may write which
//     buckets (PullStart, ApplyBegin: a newer pull of a bucket supersedes
//     an older one, whose late answers are refused); the gate every
//     deletion of local bucket data passes (never a bucket owned,
//     received or being pulled here, judged by the newest state the node
//     has seen, and nothing before the node is synced); and the catch-up
//     of a restarted or joining node, which serves nothing until it has
//     applied the log as far as the leader had committed (CatchUpTo) —
//     it may have replayed old tables that gave it buckets — and then
//     fences and cancels moves from itself that it no longer runs.
//
// # Caller duties
//
// Serialise every call into one Local (one mutex), perform effects in the
// order returned, call Written for every write applied to a tapped bucket
// while the write holds its key's lock, and refuse a key whose bucket is
// Fenced or while CatchingUp, checked under the key's lock. Feed Applied
// with every applied metadata change and Tick at a steady pace.
//
// # Tests
//
// testdata/*.txt are scenario scripts over a simulated cluster
// (sim_test.go: nodes with Local and a modelled driver, a metadata log
// each node applies at its own pace, messages delivered in any order or
// lost, crashes, restarts with a wiped disk). TestRandomSchedules runs
// seeded schedules of the same operations and checks that no bucket ever
// has two nodes accepting writes and that, once healed, every
// acknowledged write is held by its key's owner.
//
// # Replication
//
// With RF > 1 a move is a change of primary: a bucket whose primary is the
// same in both tables is not moved even if its replica set changed; such
// buckets are counted in Migration.ReplicaChanged so that replica catch-up
// can be scheduled separately.
//
// The package must not decide placement (package ring's job; the tables
// come from package router), and must not import node, the engine or the
// transport: effects, not files or sockets.
package rebalancer
