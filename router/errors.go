package router

import "errors"

// Errors returned by this package, wrapped with details; classify them with
// errors.Is.
var (
	// ErrBadTable reports an assignment or an encoding that is not a valid
	// table (wrong sizes, unknown or repeated owners, unsorted node IDs,
	// bad checksum, truncated or trailing bytes, ...).
	ErrBadTable = errors.New("router: bad table")
	// ErrStaleEpoch reports a Holder.Store of a table older than the one
	// held.
	ErrStaleEpoch = errors.New("router: stale epoch")
	// ErrEpochConflict reports a Holder.Store of a different table with the
	// epoch of the one held.
	ErrEpochConflict = errors.New("router: epoch conflict")
)
