package ring

import "errors"

// Errors returned by this package. They are wrapped with details (node IDs,
// numbers); classify them with errors.Is. Several problems found at once are
// joined with errors.Join, and errors.Is matches any of them.
var (
	// ErrBadConfig reports a Config field out of range.
	ErrBadConfig = errors.New("ring: bad config")
	// ErrBadWeight reports a weight that is NaN, infinite, ≤ 0, above
	// MaxWeight, or so small that the node would get no point on the ring.
	ErrBadWeight = errors.New("ring: bad weight")
	// ErrBadNodeID reports an empty node ID or one longer than MaxNodeIDLen.
	ErrBadNodeID = errors.New("ring: bad node id")
	// ErrDuplicateNode reports two nodes with the same ID, or adding a node
	// that is already a member.
	ErrDuplicateNode = errors.New("ring: duplicate node")
	// ErrUnknownNode reports removing or reweighting a node that is not a
	// member.
	ErrUnknownNode = errors.New("ring: unknown node")
	// ErrEmpty reports a ring without nodes.
	ErrEmpty = errors.New("ring: no nodes")
	// ErrRFTooLarge reports a replication factor above the number of nodes.
	ErrRFTooLarge = errors.New("ring: replication factor larger than node count")
	// ErrTooLarge reports more than MaxNodes nodes or more than MaxPoints
	// points on the ring.
	ErrTooLarge = errors.New("ring: too large")
	// ErrBadAssignment reports a previous assignment given to AssignFrom
	// with the wrong number of owners or an owner index out of range.
	ErrBadAssignment = errors.New("ring: bad previous assignment")
)
