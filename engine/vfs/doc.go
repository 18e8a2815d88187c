// Package vfs is the file-system boundary of the storage engine. Every file
// operation the engine performs goes through FS, so tests can run the engine
// on MemFS (which can simulate a crash by dropping unsynced data) or wrap any
// FS with error injection.
//
// The package owns three implementations of FS and nothing else: it knows no
// file formats and starts no goroutines.
//
//   - Default is the operating system's file system. Lock uses flock(2).
//   - MemFS (NewMem) is an in-memory file system that records, for every file,
//     what has been synced, and for every directory, which entries have been
//     synced. CrashClone returns what a power loss would leave behind.
//   - WithErrors wraps any FS and asks an Injector, before each operation,
//     whether it should fail. OnIndex, Random and InjectorFunc are ready-made
//     injectors.
//
// # Concurrency
//
// An FS may be used from many goroutines at once. A single File is used by one
// goroutine at a time for Read, Write, Truncate and Sync (they share the file
// offset); ReadAt and Size may be called concurrently with each other and with
// those. MemFS guards all of its state with one lock and is safe for any mix
// of calls; CrashClone observes a single point in time. Injectors are called
// from whatever goroutine performs the operation and must be safe for
// concurrent use (the provided ones are).
//
// # Durability model
//
// As on POSIX, and as in pebble's strict MemFS:
//
//   - File.Sync makes every byte written to the file so far durable, under
//     every name the file has (hard links share one inode).
//   - Creating, removing, renaming or linking a name is durable only after
//     SyncDir on the parent directory (both parents for a rename across
//     directories). A directory created by MkdirAll is itself an entry of its
//     parent and needs SyncDir of that parent.
//
// The engine's sequence for a new file is therefore: Create, Write, Sync,
// SyncDir(dir). For an atomic replace: Create tmp, Write, Sync, Rename(tmp,
// final), SyncDir(dir).
//
// MemFS.CrashClone applies exactly these rules: it keeps the directory
// entries as of each directory's last SyncDir, and for each surviving file
// its content as of its last Sync. With CrashOptions.TearUnsynced, a random
// prefix of the bytes appended since the last Sync survives too, optionally
// with its last few bytes garbled (CrashOptions.GarbageTail), like a torn
// sector.
//
// # Errors
//
// Errors carry the operation and the name (*os.PathError, *os.LinkError or
// a wrapping error). Classify them with errors.Is: os.ErrNotExist,
// os.ErrExist, os.ErrClosed, ErrLocked, ErrNoSpace (which also matches
// syscall.ENOSPC, on disk and in memory), ErrInjected.
//
// # Caveats
//
//   - MemFS is strict: a file whose data was synced but whose directory entry
//     was never made durable by SyncDir does not exist after CrashClone. Real
//     file systems often keep such files; the engine must not rely on that.
//   - A removal or rename that was not followed by SyncDir is rolled back by
//     CrashClone: the old name comes back with the file's synced content.
//   - If a file was truncated, re-created (Create on an existing name) or
//     overwritten below its synced length since its last Sync, CrashClone
//     restores the last synced content exactly and TearUnsynced does not apply
//     to it; tearing only models appends past the synced length.
//   - GarbageTail garbles only bytes that were never synced; synced bytes are
//     never corrupted.
//   - File.Truncate moves the file offset back to the new end if it was past
//     it (unlike ftruncate(2)), so that appending after dropping a torn tail
//     leaves no hole. Both Default and MemFS do this.
//   - Locks: Default locks with flock(2) and also keeps an in-process set of
//     held paths, so a second Lock of the same path fails even in the same
//     process. MemFS locks are in-process only. Locks do not survive
//     CrashClone. Closing the lock does not remove the lock file.
//   - MemFS capacity (SetCapacity) counts the bytes of every live file,
//     including removed files still held open; a Write or growing Truncate
//     that would exceed it fails and changes nothing. Directories and names
//     cost nothing.
//   - ErrorFS consults the injector before forwarding an operation; an
//     injected error means the operation was not performed at all (a failed
//     Write writes nothing, a failed Sync syncs nothing). File.Close and
//     closing a lock are never injected. For Rename and Link the injector is
//     given the old name.
package vfs
