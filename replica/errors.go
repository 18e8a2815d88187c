package replica

import "errors"

// Errors returned by this package. They are wrapped with details (bucket,
// epochs, numbers); classify them with errors.Is. Several configuration
// problems found at once are joined with errors.Join.
var (
	// ErrBadConfig reports a Config field out of range.
	ErrBadConfig = errors.New("replica: bad config")
	// ErrBadRestore reports a restored log that is not contiguous.
	ErrBadRestore = errors.New("replica: bad restored log")
	// ErrNotPrimary: this node is not the bucket's primary in the
	// configuration it has applied, or it learned that a newer
	// configuration exists (it was deposed). The client routes again.
	ErrNotPrimary = errors.New("replica: not the bucket's primary")
	// ErrNoReplicas: the in-sync set is smaller than 1 +
	// Config.MinReplicasToWrite; writes are refused, reads continue. The
	// driver answers Redis's "-NOREPLICAS Not enough good replicas to
	// write."
	ErrNoReplicas = errors.New("replica: not enough good replicas to write")
	// ErrNotReady: the node is primary but may not serve yet: it waits
	// out the lease it granted to the previous primary, its restart
	// needs a new epoch first, or (reads) its reconciled suffix is not
	// committed yet. Retry shortly.
	ErrNotReady = errors.New("replica: primary not ready")
	// ErrNoLease: the primary holds no valid read lease (its set has not
	// acknowledged recently, or a configuration change is in progress).
	ErrNoLease = errors.New("replica: no read lease")
	// ErrBackpressure: the in-flight window (entries or bytes) is full.
	ErrBackpressure = errors.New("replica: replication window full")
	// ErrTooLarge: one write is larger than Config.BatchBytesMax.
	ErrTooLarge = errors.New("replica: write too large")
	// ErrOutcomeUnknown is given in a Reply for a write the primary
	// shipped but could not see committed before it lost its role: a
	// newer primary may or may not hold it. Never report it as failed.
	ErrOutcomeUnknown = errors.New("replica: write outcome unknown")
)
