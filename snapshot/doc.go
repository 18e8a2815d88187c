// Package snapshot is dbx's global snapshot take: a pure state machine
// the Raft leader's node drives. The snapshot's files (layout, export,
// restore) are package snapshot/archive's.
//
// It owns the take's sequence (Take), the check that the metadata allows
// one and what it covers (NewPlan), every node's side of the pause (Gate:
// the commit decisions it holds and the ones it sent) and the steps' wire
// types. It must not do I/O, send messages, read clocks or start
// goroutines: the take's steps go out as Effects that node/ performs, and
// Gate is told the time. The steps' handlers, the Gate's lock, lease
// timer and Prepare waits, and the manifest files a node keeps are in
// node/ (gsnapshot.go).
//
// # The take
//
//	plan, err := snapshot.NewPlan(state, id, createdMs) // refuses: no placement, a migration, a duplicate ID
//	take := snapshot.NewTake(plan, snapshot.DefaultConfig())
//	for e := take.Start(); e.Kind != snapshot.Done; e = take.Step(ev) {
//		ev = perform(e) // Call, Wait, Commit, Release; ev.Now since the start
//	}
//
// The sequence is pause → drain → checkpoint → resume → describe →
// commit (Take's comment has each step's meaning). A failure resumes the
// paused nodes and, once checkpoints exist, releases them; a commit whose
// outcome is unknown keeps them (the manifest may be listed). Every error
// wraps ErrFailed and names the node.
//
// # Caller's duties
//
//   - Drive one Take from one goroutine; it is not safe for concurrent use.
//     Guard each node's Gate with a lock; end a pause at its lease's end
//     (Gate.Until) by Resume, sending what it returns, and let Prepares
//     that wait for the pause go when it ends.
//   - Perform a Call on every node of To at once, each call bounded by
//     Timeout and the take's context, and report one Reply per node in
//     To's order; a node's own steps may run without the transport.
//   - Report Event.Now from a monotonic clock: the drain's bound is in it.
//   - Perform Release with a context that outlives the take's (it runs
//     after the take's may have ended), best effort.
//   - Only the Done effect ends a take; Done with a nil Err means the
//     manifest is committed: then write the manifest file and apply the
//     retention.
//
// # Caveats
//
//   - ErrFailed keeps the text and the transport code it had in node/
//     ("node: snapshot failed", "node.snapshot").
package snapshot
