package engine

import (
	"errors"
	"fmt"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// Errors returned by the engine. Callers classify them with errors.Is; the
// engine wraps them with the detail (sizes, file names) in the message.
var (
	// ErrNotFound means the key has no visible value.
	ErrNotFound = errors.New("engine: not found")
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("engine: store closed")
	// ErrKeyTooLarge and ErrValueTooLarge report input over Config's limits.
	ErrKeyTooLarge   = errors.New("engine: key too large")
	ErrValueTooLarge = errors.New("engine: value too large")
	// ErrBatchTooLarge reports a batch over Config.BatchBytesMax or BatchOpsMax.
	ErrBatchTooLarge = errors.New("engine: batch too large")
	// ErrEmptyKey reports a zero-length key.
	ErrEmptyKey = errors.New("engine: empty key")
	// ErrReadOnly means a shard stopped accepting writes after an I/O error
	// on its WAL; reads keep working and a reopen recovers.
	ErrReadOnly = errors.New("engine: shard is read-only after a write error")
	// ErrNotStore means the directory exists but holds no dbx store.
	ErrNotStore = errors.New("engine: not a dbx store")
	// ErrLocked means another process (or Store) has the directory open.
	ErrLocked = vfs.ErrLocked
	// ErrCorrupt reports damaged data found on open or read.
	ErrCorrupt = errors.New("engine: corruption")
	// ErrMissingWAL means Open found a WAL missing that a shard's manifest
	// lists as live: acknowledged writes would be lost. It wraps ErrCorrupt.
	// Config.ForceRecover opens without the WAL.
	ErrMissingWAL = fmt.Errorf("%w: live wal missing", ErrCorrupt)
	// ErrInvalidConfig wraps every Config.Validate problem.
	ErrInvalidConfig = errors.New("engine: invalid config")
)
