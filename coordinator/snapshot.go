package coordinator

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/dbx-kv/dbx/ring"
	"github.com/dbx-kv/dbx/router"
)

// State encoding (Raft snapshots):
//
//	magic   [4]byte "DBXC"
//	version uint16  big-endian, snapshotVersion
//	length  uint32  big-endian, length of body
//	body    [length]byte JSON of snapshotV1 (members sorted by ID)
//	crc     uint32  big-endian, CRC-32C of everything before it
const (
	snapshotMagic   = "DBXC"
	snapshotVersion = 1
	snapshotHeader  = 4 + 2 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapshotV1 is the body of a version-1 snapshot. Later versions (global
// snapshot manifests, migration state) add a version and a decoder.
type snapshotV1 struct {
	Index   uint64      `json:"index"`
	Members []Member    `json:"members"`
	Table   []byte      `json:"table,omitempty"`
	Placed  []ring.Node `json:"placed"`
	HasData bool        `json:"has_data"`
	// Migration state (absent in snapshots written before it existed).
	Target []byte            `json:"target,omitempty"`
	Moves  []Move            `json:"moves,omitempty"`
	Mig    MigrationProgress `json:"migration"`
	Limits *MoveLimits       `json:"limits,omitempty"`
	// Global snapshot manifests, oldest first (absent before the first).
	Snapshots []SnapshotManifest `json:"snapshots,omitempty"`
	// Replication (absent in snapshots written before it existed: RF 1,
	// every bucket at epoch 1 with its derived configuration). Bucket
	// epochs are runs from bucket 0; replica sets are the explicit
	// configurations, by bucket.
	ReplicationFactor int              `json:"replication_factor,omitempty"`
	BucketEpochs      []epochRun       `json:"bucket_epochs,omitempty"`
	ReplicaSets       []replicaSetJSON `json:"replica_sets,omitempty"`
}

// MarshalBinary returns the state's canonical encoding: versioned,
// checksummed, and the same bytes on every node that applied the same log.
func (s *State) MarshalBinary() ([]byte, error) {
	body := snapshotV1{
		Index:     s.index,
		Members:   s.Members(),
		Placed:    s.placed,
		HasData:   s.hasData,
		Moves:     s.Moves(),
		Mig:       s.mig,
		Limits:    &s.limits,
		Snapshots: s.snapshots,

		ReplicationFactor: s.rf,
	}
	body.BucketEpochs, body.ReplicaSets = s.encodeReplicas()
	if s.target != nil {
		t, err := s.target.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("coordinator: encode state: %w", err)
		}
		body.Target = t
	}
	if body.Placed == nil {
		body.Placed = []ring.Node{}
	}
	if s.table != nil {
		t, err := s.table.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("coordinator: encode state: %w", err)
		}
		body.Table = t
	}
	js, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("coordinator: encode state: %w", err)
	}
	out := make([]byte, 0, snapshotHeader+len(js)+4)
	out = append(out, snapshotMagic...)
	out = binary.BigEndian.AppendUint16(out, snapshotVersion)
	out = binary.BigEndian.AppendUint32(out, uint32(len(js)))
	out = append(out, js...)
	out = binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	return out, nil
}

// ParseState decodes a state encoded by MarshalBinary, validating it fully:
// malformed input gives an error wrapping ErrBadSnapshot, never a panic.
func ParseState(data []byte) (*State, error) {
	if len(data) < snapshotHeader+4 {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrBadSnapshot, len(data))
	}
	if len(data) > MaxSnapshotBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadSnapshot, len(data), MaxSnapshotBytes)
	}
	if string(data[:4]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrBadSnapshot, data[:4])
	}
	if v := binary.BigEndian.Uint16(data[4:6]); v != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadSnapshot, v, snapshotVersion)
	}
	n := binary.BigEndian.Uint32(data[6:10])
	if uint64(n) != uint64(len(data)-snapshotHeader-4) {
		return nil, fmt.Errorf("%w: body length %d, have %d bytes", ErrBadSnapshot, n, len(data)-snapshotHeader-4)
	}
	end := len(data) - 4
	if got, want := crc32.Checksum(data[:end], castagnoli), binary.BigEndian.Uint32(data[end:]); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrBadSnapshot, got, want)
	}
	var body snapshotV1
	if err := decodeStrict(data[snapshotHeader:end], &body); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	s := NewState()
	s.index = body.Index
	s.hasData = body.HasData
	s.mig = body.Mig
	if body.Limits != nil {
		s.limits = *body.Limits
	}
	if body.ReplicationFactor != 0 {
		if body.ReplicationFactor < 1 || body.ReplicationFactor > MaxReplicationFactor {
			return nil, fmt.Errorf("%w: replication factor %d, want 1 to %d", ErrBadSnapshot, body.ReplicationFactor, MaxReplicationFactor)
		}
		s.rf = body.ReplicationFactor
	}
	if len(body.Target) > 0 {
		t, err := router.ParseTable(body.Target)
		if err != nil {
			return nil, fmt.Errorf("%w: target: %w", ErrBadSnapshot, err)
		}
		s.target = t
	}
	if len(body.Snapshots) > MaxSnapshots {
		return nil, fmt.Errorf("%w: %d global snapshots, more than %d", ErrBadSnapshot, len(body.Snapshots), MaxSnapshots)
	}
	for _, m := range body.Snapshots {
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		if _, dup := s.Snapshot(m.ID); dup {
			return nil, fmt.Errorf("%w: global snapshot %s repeated", ErrBadSnapshot, m.ID)
		}
		s.snapshots = append(s.snapshots, m)
	}
	for _, m := range body.Moves {
		if m.Token == "" || s.moves[m.Token].Token != "" {
			return nil, fmt.Errorf("%w: move token %q empty or repeated", ErrBadSnapshot, m.Token)
		}
		s.moves[m.Token] = m
	}
	if len(body.Members) > MaxMembers {
		return nil, fmt.Errorf("%w: %d members, more than %d", ErrBadSnapshot, len(body.Members), MaxMembers)
	}
	for i, m := range body.Members {
		if err := m.validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		if !m.State.Valid() {
			return nil, fmt.Errorf("%w: member %s: state %q", ErrBadSnapshot, m.ID, truncate(string(m.State)))
		}
		if i > 0 && body.Members[i-1].ID >= m.ID {
			return nil, fmt.Errorf("%w: members not sorted or repeated at %s", ErrBadSnapshot, m.ID)
		}
		s.members[m.ID] = m
	}
	if len(body.Table) == 0 {
		if len(body.Placed) != 0 {
			return nil, fmt.Errorf("%w: placement inputs without a table", ErrBadSnapshot)
		}
		if err := s.decodeReplicas(body.BucketEpochs, body.ReplicaSets); err != nil {
			return nil, err
		}
		return s, nil
	}
	t, err := router.ParseTable(body.Table)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	nodes := t.Nodes()
	if len(nodes) != len(body.Placed) {
		return nil, fmt.Errorf("%w: table has %d nodes, %d placement inputs", ErrBadSnapshot, len(nodes), len(body.Placed))
	}
	for i, nd := range body.Placed {
		if nd.ID != nodes[i] {
			return nil, fmt.Errorf("%w: placement input %s is not table node %s", ErrBadSnapshot, nd.ID, nodes[i])
		}
		if err := validWeight(nd.Weight); err != nil {
			return nil, fmt.Errorf("%w: placement input %s: %w", ErrBadSnapshot, nd.ID, err)
		}
	}
	if !slices.IsSortedFunc(body.Placed, func(a, b ring.Node) int { return strings.Compare(a.ID, b.ID) }) {
		return nil, fmt.Errorf("%w: placement inputs not sorted", ErrBadSnapshot)
	}
	s.table = t
	s.placed = body.Placed
	if err := s.decodeReplicas(body.BucketEpochs, body.ReplicaSets); err != nil {
		return nil, err
	}
	return s, nil
}
