package node

import (
	"errors"

	"github.com/dbx-kv/dbx/coordinator"
	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/transport"
)

var (
	// ErrBadConfig wraps every Config.Validate problem.
	ErrBadConfig = errors.New("node: bad config")
	// ErrNotOwner reports a forwarded key request that reached a node which
	// does not own the key's bucket under its placement table (the tables
	// of the two nodes differ for a moment); the caller retries with its
	// newer table.
	ErrNotOwner = errors.New("node: not the owner of the bucket")
	// ErrNoLeader reports a call that needs the Raft leader while none is
	// known (an election is under way) until the call's deadline.
	ErrNoLeader = errors.New("node: no raft leader")
	// ErrClosed reports a call on a closed Node.
	ErrClosed = errors.New("node: closed")
)

// Error codes carried between nodes. Every node registers the same ones (in
// init), so a remote handler's sentinel matches with errors.Is at the caller.
//
// A handler error travels with the first registered code it matches, so
// errFenced (which wraps server.ErrTryAgain) comes before it.
func init() {
	transport.RegisterError("node.snapshot", ErrSnapshot)
	transport.RegisterError("node.fenced", errFenced)
	transport.RegisterError("node.replica_not_ready", errReplNotReady)
	transport.RegisterError("node.not_owner", ErrNotOwner)
	transport.RegisterError("node.no_leader", ErrNoLeader)
	transport.RegisterError("coordinator.has_data", coordinator.ErrHasData)
	transport.RegisterError("coordinator.not_leader", coordinator.ErrNotLeader)
	transport.RegisterError("coordinator.unknown_member", coordinator.ErrUnknownMember)
	transport.RegisterError("coordinator.bad_command", coordinator.ErrBadCommand)
	transport.RegisterError("coordinator.stale_epoch", coordinator.ErrStaleEpoch)
	transport.RegisterError("coordinator.unknown_outcome", coordinator.ErrUnknownOutcome)
	transport.RegisterError("coordinator.closed", coordinator.ErrClosed)
	transport.RegisterError("server.not_integer", server.ErrNotInteger)
	transport.RegisterError("server.overflow", server.ErrOverflow)
	transport.RegisterError("server.key_too_large", server.ErrKeyTooLarge)
	transport.RegisterError("server.value_too_large", server.ErrValueTooLarge)
	transport.RegisterError("server.no_replicas", server.ErrNoReplicas)
	transport.RegisterError("server.outcome_unknown", server.ErrOutcomeUnknown)
	transport.RegisterError("server.try_again", server.ErrTryAgain)
	transport.RegisterError("server.cluster_down", server.ErrClusterDown)
	transport.RegisterError("server.watch_failed", server.ErrWatchFailed)
}
