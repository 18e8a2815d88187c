// Package rebalancer turns a change of placement into bucket moves.
//
// This is the planning half: Plan compares two placement tables and lists,
// for every (source, target) pair of nodes, the buckets whose primary moves
// from the source to the target, with contiguous bucket numbers compressed
// into ranges (a bucket is a key range in the engine, so a run of buckets is
// one scan). It is pure and deterministic: no I/O, no clocks, no
// goroutines, and its output does not depend on map iteration order. It
// needs no key list: buckets are the unit of movement.
//
// The package must not decide placement (that is package ring's job; the
// tables come from package router). The execution half, the bucket-move
// protocol (snapshot, tail, fence, commit the new owner through Raft, drop
// the source copy) with its throttle and progress, runs today in node
// (migrate.go) over coordinator commands (StartMove, FinishMove,
// CancelMove); moving it here as state machines is planned. Plan is the
// one placement diff: the coordinator's State.Pending is Plan's buckets
// less those a move carries.
//
// # Replication
//
// With RF > 1 a move is a change of primary: a bucket whose primary is the
// same in both tables is not moved even if its replica set changed; such
// buckets are counted in Migration.ReplicaChanged so that replica catch-up
// can be scheduled separately.
package rebalancer
