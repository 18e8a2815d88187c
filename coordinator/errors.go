package coordinator

import (
	"errors"
	"fmt"
	"github.com/dbx-kv/dbx/rebalancer"
)

// Errors returned by this package, wrapped with details; classify them with
// errors.Is. Rejections of a command by the state machine (ErrBadCommand,
// ErrUnknownMember, ErrHasData, ErrStaleEpoch, ErrBadPlacement) are
// deterministic: every node applies the same log entry, rejects it the same
// way and ends in the same state.
var (
	// ErrNotLeader reports a call that only the Raft leader can serve. The
	// error is a *NotLeaderError naming the leader when one is known:
	// forward the call there.
	ErrNotLeader = errors.New("coordinator: not the leader")
	// ErrHasData reports a placement change refused because the cluster
	// holds data and buckets cannot move yet: the change would make keys
	// unreachable.
	ErrHasData = errors.New("coordinator: placement change refused, the cluster holds data")
	// ErrUnknownMove reports a FinishMove or CancelMove of a move that is
	// not in progress (the other one won, or it never started).
	ErrUnknownMove = rebalancer.ErrUnknownMove
	// ErrBadMove reports a StartMove or FinishMove whose buckets are not
	// where it says.
	ErrBadMove = rebalancer.ErrBadMove
	// ErrBadCommand reports a command that cannot be decoded or whose fields
	// are out of range, or a member state transition that is not allowed.
	ErrBadCommand = errors.New("coordinator: bad command")
	// ErrUnknownMember reports a command about a node that is not a member.
	ErrUnknownMember = errors.New("coordinator: unknown member")
	// ErrStaleEpoch reports a SetPlacement whose epoch is not the current
	// epoch + 1: another placement was committed since it was planned.
	ErrStaleEpoch = errors.New("coordinator: stale placement epoch")
	// ErrBadPlacement reports a SetPlacement whose table does not decode or
	// was not built from the current active members and weights.
	ErrBadPlacement = errors.New("coordinator: bad placement")
	// ErrStaleMembership reports a replica Change whose From is not the
	// bucket's epoch: another change of the bucket (or of its owners)
	// was committed since it was proposed.
	ErrStaleMembership = errors.New("coordinator: stale replica epoch")
	// ErrBadMembership reports a replica Change whose configuration is
	// not valid for the bucket: epoch not From+1, owners not the
	// placement's, a set that is empty, unsorted, not within the owners
	// or without the primary, or a node that is not a member.
	ErrBadMembership = errors.New("coordinator: bad replica configuration")
	// ErrBadSnapshot reports a state snapshot that does not decode: bad
	// magic, unknown version, checksum mismatch or invalid contents.
	ErrBadSnapshot = errors.New("coordinator: bad snapshot")
	// ErrBadConfig reports a Config field out of range.
	ErrBadConfig = errors.New("coordinator: bad config")
	// ErrUnknownOutcome reports a command whose fate is unknown: leadership
	// was lost after it was sent, so it may or may not be committed. Read
	// the state before retrying.
	ErrUnknownOutcome = errors.New("coordinator: outcome unknown")
	// ErrClosed reports a call on a closed Coordinator (or a Raft instance
	// that shut down, for example after this node was removed).
	ErrClosed = errors.New("coordinator: closed")
)

// NotLeaderError is the ErrNotLeader returned by a node that is not the
// leader. The fields are empty when no leader is known (an election is under
// way): retry later.
type NotLeaderError struct {
	// LeaderID is the leader's node ID.
	LeaderID string
	// RaftAddr is the leader's Raft address.
	RaftAddr string
	// RPCAddr is the leader's dbx RPC address, from the member list
	// (empty if the leader is not a member yet).
	RPCAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "coordinator: not the leader (no leader known)"
	}
	return fmt.Sprintf("coordinator: not the leader (leader %s, raft %s, rpc %s)", e.LeaderID, e.RaftAddr, e.RPCAddr)
}

// Unwrap makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }
