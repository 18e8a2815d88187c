// Package snapshot is dbx's global snapshot: the take as a pure state
// machine the Raft leader's node drives, and the export and restore of a
// snapshot's files through vfs.FS.
//
// It owns the take's sequence (Take), the check that the metadata allows
// one and what it covers (NewPlan), every node's side of the pause (Gate:
// the commit decisions it holds and the ones it sent), the steps' wire
// types, the layout of a node's snapshot files (CheckpointDir,
// ManifestPath, EpochFile), Export and Restore. It must not send
// messages, read clocks or start goroutines: the take's steps go out as
// Effects that node/ performs, Gate is told the time, and every file
// operation of Export and Restore goes through the vfs.FS it is given, so
// MemFS can crash them at every operation (crash_test.go). The steps'
// handlers, the Gate's lock, lease timer and Prepare waits, and the
// manifest files a node keeps are in node/ (gsnapshot.go).
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
// # Export and restore
//
// Export fetches every file of every part from the node holding it,
// checks its size and SHA-256, syncs it, syncs the part's directories,
// and writes the manifest last (temporary file, sync, rename, sync of the
// directory): an export directory with a manifest is complete. Restore
// checks every file before touching anything, copies the part into
// DataDir/engine.restore, syncs it with every directory entry, and swaps
// it in with two renames made durable by one SyncDir of DataDir.
//
// # Caveats
//
//   - The swap's two renames are made durable together by one SyncDir; a
//     file system that persisted the first rename alone would leave
//     DataDir/engine missing (the old one under engine.pre-restore-*).
//     The in-memory crash model (vfs.MemFS) cannot produce that state.
//   - A crash mid-restore can leave engine.restore or engine.pre-restore-*
//     behind; the next restore removes the first, the second is removed
//     by hand.
//   - A crash in WriteFileAtomic can leave its temporary file
//     (<name>.<n>.tmp) next to the file; nothing reads or removes it.
//   - ErrFailed and ErrRestoreRefused keep the texts and the transport
//     code they had in node/ ("node: snapshot failed", "node.snapshot").
package snapshot
