package twophase

import "errors"

// Errors returned by this package. They are wrapped with details (txn IDs,
// keys, numbers); classify them with errors.Is. Several configuration
// problems found at once are joined with errors.Join.
var (
	// ErrBadConfig reports a Config field out of range.
	ErrBadConfig = errors.New("twophase: bad config")
	// ErrBadTxn reports a transaction that cannot start: no ID, no keys, no
	// participants, or a participant listed twice.
	ErrBadTxn = errors.New("twophase: bad transaction")
	// ErrTooManyKeys reports a transaction with more distinct keys than
	// Config.KeysPerTxnMax.
	ErrTooManyKeys = errors.New("twophase: too many keys in transaction")
	// ErrDuplicateTxn reports Begin with the ID of a transaction the
	// coordinator is still running.
	ErrDuplicateTxn = errors.New("twophase: transaction already in flight")
	// ErrTxnAborted is wrapped by every abort outcome; the reason (one of
	// the errors below) is wrapped next to it.
	ErrTxnAborted = errors.New("twophase: transaction aborted")
	// ErrLockConflict is the abort reason when a participant found a key
	// locked by another transaction (no-wait locking). The caller may retry
	// the whole transaction a bounded number of times.
	ErrLockConflict = errors.New("twophase: lock conflict")
	// ErrWatchConflict is the abort reason when a watched key's version
	// changed (Redis: EXEC returns nil). Not worth retrying as is.
	ErrWatchConflict = errors.New("twophase: watched key changed")
	// ErrDeadline is the abort reason when the coordinator's deadline passed
	// before every vote arrived. No COMMITTED decision can exist then.
	ErrDeadline = errors.New("twophase: transaction deadline exceeded")
	// ErrRecordAborted is the abort reason when the transaction record was
	// already ABORTED (presumed abort by an in-doubt participant, or an
	// earlier abort) when the participant or the coordinator got to it.
	ErrRecordAborted = errors.New("twophase: transaction record aborted")
	// ErrParticipantAborted is the abort reason when a participant gave up
	// before voting (for example its prepare record could not be written).
	ErrParticipantAborted = errors.New("twophase: participant aborted before voting")
	// ErrOutcomeUnknown is returned when the commit decision was requested
	// but its result did not arrive before the deadline. The transaction
	// may have committed or aborted; participants resolve it on their own.
	ErrOutcomeUnknown = errors.New("twophase: transaction outcome unknown")
	// ErrAlreadyVoted is returned by Participant.AbortUnvoted when the
	// participant has voted yes (or may have): it can no longer abort alone.
	ErrAlreadyVoted = errors.New("twophase: participant already voted")
	// ErrBadRecords reports persisted records that cannot be restored
	// (two prepared transactions holding the same key, a duplicate ID).
	ErrBadRecords = errors.New("twophase: inconsistent persisted records")
)
