package ring

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"

	"github.com/buraksezer/consistent"
)

// consistentPlacer is the baseline: github.com/buraksezer/consistent v1.0.0
// (consistent hashing with bounded loads, no per-member weights). Its
// partitions are dbx's buckets: PartitionCount = NumBuckets, and bucket b's
// owner is GetPartitionOwner(b).
type consistentPlacer struct {
	replication int     // points per member (consistent's ReplicationFactor)
	load        float64 // consistent's Load: every member holds at most ceil(NumBuckets/n × Load)
}

type member string

func (m member) String() string { return string(m) }

// baselineHasher feeds consistent the same 64-bit hash the ring uses.
type baselineHasher struct{}

func (baselineHasher) Sum64(b []byte) uint64 { return hash64(b) }

func (p consistentPlacer) config() consistent.Config {
	return consistent.Config{
		Hasher:            baselineHasher{},
		PartitionCount:    NumBuckets,
		ReplicationFactor: p.replication,
		Load:              p.load,
	}
}

func (p consistentPlacer) name() string {
	return fmt.Sprintf("consistent v1.0.0 (R=%d, Load=%.2f)", p.replication, p.load)
}

func (p consistentPlacer) weighted() bool { return false }

func (p consistentPlacer) build(nodes []Node) ([]string, error) {
	members := make([]consistent.Member, len(nodes))
	for i, n := range nodes {
		members[i] = member(n.ID)
	}
	c := consistent.New(members, p.config())
	out := make([]string, NumBuckets)
	for b := range out {
		m := c.GetPartitionOwner(b)
		if m == nil {
			return nil, fmt.Errorf("consistent: partition %d has no owner", b)
		}
		out[b] = m.String()
	}
	return out, nil
}

// displaced recomputes consistent's natural owners (first ring point at or
// after the partition's hash, as its distributePartitions starts from).
func (p consistentPlacer) displaced(nodes []Node, primaries []string) []bool {
	type pt struct {
		h  uint64
		id string
	}
	pts := make([]pt, 0, len(nodes)*p.replication)
	var key []byte
	for _, n := range nodes {
		for i := 0; i < p.replication; i++ {
			key = append(strconv.AppendInt(key[:0], int64(i), 10), ':') // consistent's replicaKey
			pts = append(pts, pt{hash64(append(key, n.ID...)), n.ID})
		}
	}
	slices.SortFunc(pts, func(a, b pt) int { return cmp.Compare(a.h, b.h) })
	out := make([]bool, NumBuckets)
	var le [8]byte
	for b := range out {
		binary.LittleEndian.PutUint64(le[:], uint64(b))
		k := hash64(le[:])
		i, _ := slices.BinarySearchFunc(pts, k, func(p pt, k uint64) int {
			switch {
			case p.h < k:
				return -1
			case p.h > k:
				return 1
			}
			return 0
		})
		if i == len(pts) {
			i = 0
		}
		out[b] = pts[i].id != primaries[b]
	}
	return out
}
