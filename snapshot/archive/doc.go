// Package archive is the file side of dbx's global snapshots: the layout
// of a node's snapshot files (CheckpointDir, ManifestPath, EpochFile),
// Export (every part fetched, checked and synced, the manifest last) and
// Restore (every file checked before anything is touched, then swapped in
// durably).
//
// Every file operation goes through the vfs.FS it is given, so MemFS can
// crash Export and Restore at every operation (crash_test.go): an export
// directory with a manifest is complete, and a crashed restore leaves the
// old engine directory or the whole snapshot, never a mix. It must not
// send messages or start goroutines; Export reads the parts through the
// Open function it is given.
//
// # Export and restore
//
// Export fetches every file of every part from the node holding it,
// checks its size and SHA-256, syncs it, syncs the part's directories,
// and writes the manifest last (temporary file, sync, rename, sync of the
// directory). Restore checks every file before touching anything, copies
// the part into DataDir/engine.restore, syncs it with every directory
// entry, and swaps it in with two renames made durable by one SyncDir of
// DataDir.
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
//   - ErrRestoreRefused keeps the text it had in node/ ("node: restore
//     refused").
package archive
