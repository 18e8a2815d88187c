package coordinator

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/dbx-kv/dbx/ring"
)

// Limits of the metadata, enforced when commands are applied and snapshots
// decoded.
const (
	// MaxMembers is the largest number of members (the ring's node limit).
	MaxMembers = ring.MaxNodes
	// MaxNodeIDLen is the longest member ID, in bytes.
	MaxNodeIDLen = ring.MaxNodeIDLen
	// MaxAddrLen is the longest address of a member, in bytes.
	MaxAddrLen = 255
	// MaxCommandBytes is the largest encoded command (a SetPlacement carries
	// a whole table: about 32 KiB per unit of RF, base64-encoded).
	MaxCommandBytes = 4 << 20
	// MaxSnapshotBytes is the largest encoded state.
	MaxSnapshotBytes = 64 << 20
)

// MemberState is where a member is in its life cycle.
type MemberState string

// Member states. Only active members are placed (own buckets).
const (
	// StateJoining: added, replicating the Raft log, not placed yet. The
	// leader makes it active as soon as placement may change (no data yet).
	StateJoining MemberState = "joining"
	// StateActive: placed, or about to be placed by the leader.
	StateActive MemberState = "active"
	// StateDraining: leaving; taken out of the placement (no ring points).
	StateDraining MemberState = "draining"
	// StateLeft: gone on purpose. Terminal: a node that comes back is added
	// again (AddMember), which makes it joining.
	StateLeft MemberState = "left"
	// StateFailed: declared dead by failure detection; taken out of the
	// placement. SetState(active) brings it back.
	StateFailed MemberState = "failed"
)

// Valid reports whether s is one of the member states.
func (s MemberState) Valid() bool {
	switch s {
	case StateJoining, StateActive, StateDraining, StateLeft, StateFailed:
		return true
	}
	return false
}

// Member is a node of the cluster as the metadata records it.
type Member struct {
	// ID is the node's unique, stable ID (also its Raft server ID).
	ID string `json:"id"`
	// RaftAddr is the address of the node's Raft transport.
	RaftAddr string `json:"raft_addr"`
	// RPCAddr is the address of the node's dbx RPC transport (node to
	// node; also where calls are forwarded to the leader).
	RPCAddr string `json:"rpc_addr"`
	// RESPAddr is the address clients speak RESP to.
	RESPAddr string `json:"resp_addr"`
	// ClusterRESPAddr is the RESP address advertised to cluster-aware
	// clients (CLUSTER SLOTS); empty for members that predate it.
	ClusterRESPAddr string `json:"cluster_resp_addr,omitempty"`
	// HTTPAddr is the address of the admin API.
	HTTPAddr string `json:"http_addr"`
	// Weight is the node's placement weight, in (0, ring.MaxWeight].
	Weight float64 `json:"weight"`
	// State is the node's life-cycle state.
	State MemberState `json:"state"`
	// JoinedIndex is the Raft log index of the command that added the node.
	JoinedIndex uint64 `json:"joined_index"`
}

func validID(id string) error {
	if id == "" || len(id) > MaxNodeIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("%w: node id %q: want 1..%d bytes of UTF-8", ErrBadCommand, truncate(id), MaxNodeIDLen)
	}
	return nil
}

func validWeight(w float64) error {
	if math.IsNaN(w) || math.IsInf(w, 0) || w <= 0 || w > ring.MaxWeight {
		return fmt.Errorf("%w: weight %v: want (0, %v]", ErrBadCommand, w, ring.MaxWeight)
	}
	return nil
}

// validate checks the fields a command may set (not State or JoinedIndex).
func (m *Member) validate() error {
	if err := validID(m.ID); err != nil {
		return err
	}
	if err := validWeight(m.Weight); err != nil {
		return fmt.Errorf("member %s: %w", m.ID, err)
	}
	for _, a := range []struct{ name, v string }{
		{"raft", m.RaftAddr}, {"rpc", m.RPCAddr}, {"resp", m.RESPAddr}, {"cluster_resp", m.ClusterRESPAddr}, {"http", m.HTTPAddr},
	} {
		if len(a.v) > MaxAddrLen || !utf8.ValidString(a.v) {
			return fmt.Errorf("%w: member %s: %s address: want at most %d bytes of UTF-8", ErrBadCommand, m.ID, a.name, MaxAddrLen)
		}
	}
	if m.RaftAddr == "" {
		return fmt.Errorf("%w: member %s: empty raft address", ErrBadCommand, m.ID)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
