package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dbx-kv/dbx/ring"
	"github.com/dbx-kv/dbx/router"
)

// Limits of Config.
const (
	// MaxVoters is the largest VotersMax: more voters make every commit
	// slower and no failure more survivable in practice.
	MaxVoters = 5
	// DefaultVoters is VotersMax when it is zero.
	DefaultVoters = 3
)

// Config configures a Coordinator. The zero value of every field but NodeID
// means its default (see DefaultConfig).
type Config struct {
	// NodeID is this node's unique, stable ID: its Raft server ID and its
	// member ID. Required.
	NodeID string
	// Self describes this node as a member (addresses, weight). The leader
	// adds itself to the member list with it; Self.ID and Self.RaftAddr
	// default to NodeID and the transport's local address, Self.Weight to 1.
	Self Member
	// DataDir holds the Raft log and stable store (raft.db, bbolt) and the
	// snapshots. Empty keeps everything in memory: for tests only.
	DataDir string
	// Bootstrap makes this node form a new single-voter cluster if it has
	// no Raft state yet; with state it is ignored (a restart).
	Bootstrap bool
	// VotersMax is the number of voters the leader lets the cluster grow
	// to: the first VotersMax nodes to join are voters, the rest
	// non-voters (they replicate and apply the log, but do not vote).
	// Default 3; 1..MaxVoters.
	VotersMax int
	// HeartbeatTimeout is how long a follower waits without hearing from
	// the leader before it starts an election (raft randomises it up to 2×).
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for votes (randomised
	// up to 2×).
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without
	// reaching a quorum. At most HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout bounds how long a follower may wait to learn that
	// entries are committed when the leader is idle.
	CommitTimeout time.Duration
	// SnapshotThreshold is the number of log entries after which Raft
	// snapshots the state and truncates the log (keeping as many entries).
	SnapshotThreshold uint64
	// ApplyTimeout bounds a command's wait to be enqueued when ctx has no
	// deadline.
	ApplyTimeout time.Duration
	// Placement is the placement policy of the ring (default
	// ring.DefaultConfig()). Every node must use the same one. Its RF is
	// ignored: the leader uses the metadata's (State.PlacementRF).
	Placement ring.Config
	// ReplicationFactor is recorded in the metadata when this node
	// bootstraps the cluster (SetReplicationFactor, before the first
	// placement); other nodes ignore it. Default 1;
	// 1..MaxReplicationFactor. Placement tables get that many owners
	// per bucket (fewer while fewer members are active).
	ReplicationFactor int
	// Holder, if set, receives every placement table as it is applied, for
	// the request path to read without touching the coordinator.
	Holder *router.Holder
	// Logger receives the coordinator's and Raft's logs (nil: discard).
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: 3 voters, a heartbeat and election
// timeout of 500 ms (a new leader within about 1–2 s of the old one's loss
// on a LAN), a lease of 250 ms, a snapshot every 1024 entries, replication
// factor 1.
func DefaultConfig() Config {
	return Config{
		VotersMax:          DefaultVoters,
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		SnapshotThreshold:  1024,
		ApplyTimeout:       5 * time.Second,
		Placement:          ring.DefaultConfig(),
		ReplicationFactor:  DefaultReplicationFactor,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.VotersMax == 0 {
		c.VotersMax = d.VotersMax
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = d.ElectionTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = min(d.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = d.CommitTimeout
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = d.ApplyTimeout
	}
	if c.Placement == (ring.Config{}) {
		c.Placement = d.Placement
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = d.ReplicationFactor
	}
	if c.Self.ID == "" {
		c.Self.ID = c.NodeID
	}
	if c.Self.Weight == 0 {
		c.Self.Weight = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every field out of range at once (after defaults are
// applied to zero fields).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	if err := validID(c.NodeID); err != nil {
		bad("NodeID %q: want 1..%d bytes of UTF-8", truncate(c.NodeID), MaxNodeIDLen)
	}
	if c.Self.ID != c.NodeID {
		bad("Self.ID (%q) must be empty or NodeID (%q)", truncate(c.Self.ID), truncate(c.NodeID))
	}
	if err := validWeight(c.Self.Weight); err != nil {
		bad("Self.Weight (%v) must be in (0, %v]", c.Self.Weight, ring.MaxWeight)
	}
	if c.VotersMax < 1 || c.VotersMax > MaxVoters {
		bad("VotersMax (%d) must be in 1..%d", c.VotersMax, MaxVoters)
	}
	if c.HeartbeatTimeout < 5*time.Millisecond {
		bad("HeartbeatTimeout (%s) must be at least 5ms", c.HeartbeatTimeout)
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout (%s) must be equal or greater than HeartbeatTimeout (%s)", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.LeaderLeaseTimeout < 5*time.Millisecond || c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("LeaderLeaseTimeout (%s) must be in [5ms, HeartbeatTimeout (%s)]", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.CommitTimeout < time.Millisecond {
		bad("CommitTimeout (%s) must be at least 1ms", c.CommitTimeout)
	}
	if c.ApplyTimeout <= 0 {
		bad("ApplyTimeout (%s) must be positive", c.ApplyTimeout)
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > MaxReplicationFactor {
		bad("ReplicationFactor (%d) must be in 1..%d", c.ReplicationFactor, MaxReplicationFactor)
	}
	if err := c.Placement.Validate(); err != nil {
		bad("Placement: %w", err)
	}
	return errors.Join(errs...)
}
