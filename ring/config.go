package ring

import (
	"errors"
	"fmt"
	"math"
)

// Fixed sizes and limits.
const (
	// NumBuckets is the size of the bucket space (Redis Cluster's 16384
	// hash slots).
	NumBuckets = 16384
	// MaxWeight is the largest node weight; weights lie in (0, MaxWeight].
	MaxWeight = 100.0
	// MaxNodes is the largest number of nodes in a ring.
	MaxNodes = 1024
	// MaxNodeIDLen is the longest node ID, in bytes.
	MaxNodeIDLen = 255
	// MaxRF is the largest replication factor.
	MaxRF = 16
	// MaxVnodesPerNode is the largest VnodesPerNode.
	MaxVnodesPerNode = 1 << 16
	// MaxPoints bounds the number of points on a ring (Σ round(VnodesPerNode
	// × weight)); it keeps the memory of one placement under about 40 MiB.
	MaxPoints = 1 << 21
	// MaxLoadEpsilon is the largest LoadEpsilon.
	MaxLoadEpsilon = 1.0
)

// Config is the placement policy. All members of a cluster must use the same
// Config: it is part of the input that determines the assignment.
type Config struct {
	// VnodesPerNode is the number of ring points of a node of weight 1; a
	// node of weight w gets round(VnodesPerNode × w) points. More points
	// make natural consistent hashing closer to fair, so fewer buckets need
	// the load bound, at a cost in build time and memory.
	VnodesPerNode int
	// RF is the replication factor: the number of distinct owners of each
	// bucket. Owners[0] is the primary.
	RF int
	// LoadEpsilon bounds every node's primary count to within ±LoadEpsilon
	// of its weight share of NumBuckets (after rounding to whole buckets).
	// 0 means exact quotas: perfect balance, more buckets moved per change.
	LoadEpsilon float64
}

// DefaultConfig returns the placement policy dbx runs with: 1024 points per
// unit of weight, one owner per bucket, and loads within ±9% of fair share.
// The figures behind these choices are printed by `make bench-placement`.
func DefaultConfig() Config {
	return Config{VnodesPerNode: 1024, RF: 1, LoadEpsilon: 0.09}
}

// Validate reports every field out of range at once.
func (c Config) Validate() error {
	var errs []error
	if c.VnodesPerNode < 1 || c.VnodesPerNode > MaxVnodesPerNode {
		errs = append(errs, fmt.Errorf("%w: VnodesPerNode (%d) must be in [1, %d]", ErrBadConfig, c.VnodesPerNode, MaxVnodesPerNode))
	}
	if c.RF < 1 || c.RF > MaxRF {
		errs = append(errs, fmt.Errorf("%w: RF (%d) must be in [1, %d]", ErrBadConfig, c.RF, MaxRF))
	}
	if math.IsNaN(c.LoadEpsilon) || c.LoadEpsilon < 0 || c.LoadEpsilon > MaxLoadEpsilon {
		errs = append(errs, fmt.Errorf("%w: LoadEpsilon (%v) must be in [0, %v]", ErrBadConfig, c.LoadEpsilon, MaxLoadEpsilon))
	}
	return errors.Join(errs...)
}
