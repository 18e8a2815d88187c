package vfs

import (
	"errors"
	"io"
	"os"
)

// File is an open file. Writes are appended at the current offset (files are
// written sequentially by the engine); ReadAt is safe for concurrent use.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes every byte written so far durable.
	Sync() error
	// Size reports the file's current size in bytes.
	Size() (int64, error)
	// Truncate cuts the file to size bytes (used to drop a torn WAL tail).
	Truncate(size int64) error
}

// FS is the set of file-system operations the engine needs. Names are
// slash- or OS-separated paths; implementations use path/filepath.
//
// Durability rules (as on POSIX): file contents are durable after File.Sync;
// creating, removing, renaming or linking a name is durable only after
// SyncDir on the parent directory.
type FS interface {
	// Create creates (or truncates) name for writing.
	Create(name string) (File, error)
	// Open opens name read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing, positioned at its end.
	OpenReadWrite(name string) (File, error)
	Remove(name string) error
	// RemoveAll removes a directory tree (no error if it does not exist).
	RemoveAll(name string) error
	Rename(oldname, newname string) error
	// Link creates newname as a hard link to oldname.
	Link(oldname, newname string) error
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names (not paths) of the entries of dir, sorted.
	List(dir string) ([]string, error)
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the directory entries of dir durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on name (creating it), failing at once
	// with an error wrapping ErrLocked if another holder has it.
	Lock(name string) (io.Closer, error)
}

// ErrLocked is returned (wrapped) by Lock when the lock is held elsewhere.
var ErrLocked = errors.New("vfs: lock held by another process")

// ErrNoSpace is returned (wrapped) when a write exceeds a MemFS capacity; it
// stands in for ENOSPC. Disk FS returns the OS error (errors.Is(err, syscall.ENOSPC)).
// Both implementations return errors that match both ErrNoSpace and
// syscall.ENOSPC under errors.Is, so callers may test either.
var ErrNoSpace = errors.New("vfs: no space left on device")

// noSpaceError marks err as an out-of-space error: errors.Is matches it
// against ErrNoSpace as well as against everything err matches.
type noSpaceError struct{ err error }

func (e *noSpaceError) Error() string   { return e.err.Error() }
func (e *noSpaceError) Unwrap() []error { return []error{e.err, ErrNoSpace} }

// ErrInjected is the error ErrorFS returns for an injected fault.
var ErrInjected = errors.New("vfs: injected error")
