package ring

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Node is a cluster member and its weight. A node of weight 2 gets twice the
// buckets of a node of weight 1.
type Node struct {
	ID     string
	Weight float64
}

// Ring is an immutable weighted ring with its computed bucket assignment.
// A *Ring is safe for concurrent use.
type Ring struct {
	cfg   Config
	nodes []Node // sorted by ID; owner indices refer to this order
	a     placement
}

// Assignment is a ring's placement in compact form.
type Assignment struct {
	// Nodes are the member IDs in ascending order; Owners holds indices
	// into it.
	Nodes []string
	// RF is the number of owners per bucket.
	RF int
	// Owners has NumBuckets×RF entries: Owners[b*RF+k] is the k-th owner
	// of bucket b; k = 0 is the primary.
	Owners []uint16
	// Displaced counts buckets whose primary is not their natural owner
	// (the first node clockwise) because of the load bounds.
	Displaced int
}

// New validates cfg and nodes and computes the assignment. Nodes may come
// in any order. Every problem found is reported, joined with errors.Join.
func New(cfg Config, nodes []Node) (*Ring, error) {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	if err := validate(cfg, sorted); err != nil {
		return nil, err
	}
	a, err := place(cfg, sorted, nil)
	if err != nil {
		return nil, err
	}
	return &Ring{cfg: cfg, nodes: sorted, a: a}, nil
}

// validate checks cfg and the ID-sorted nodes.
func validate(cfg Config, nodes []Node) error {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(nodes) == 0 {
		errs = append(errs, ErrEmpty)
	}
	if len(nodes) > MaxNodes {
		errs = append(errs, fmt.Errorf("%w: %d nodes, at most %d allowed", ErrTooLarge, len(nodes), MaxNodes))
	}
	if cfg.RF > len(nodes) && len(nodes) > 0 {
		errs = append(errs, fmt.Errorf("%w: RF %d with %d nodes", ErrRFTooLarge, cfg.RF, len(nodes)))
	}
	vnodesOK := cfg.VnodesPerNode >= 1 && cfg.VnodesPerNode <= MaxVnodesPerNode
	points := 0
	for i, n := range nodes {
		if n.ID == "" || len(n.ID) > MaxNodeIDLen {
			errs = append(errs, fmt.Errorf("%w: %q has %d bytes, want 1 to %d", ErrBadNodeID, n.ID, len(n.ID), MaxNodeIDLen))
		}
		if i > 0 && nodes[i-1].ID == n.ID && (i < 2 || nodes[i-2].ID != n.ID) {
			errs = append(errs, fmt.Errorf("%w: %q", ErrDuplicateNode, n.ID))
		}
		if err := checkWeight(n.ID, n.Weight); err != nil {
			errs = append(errs, err)
			continue
		}
		if !vnodesOK {
			continue
		}
		k := numPoints(cfg.VnodesPerNode, n.Weight)
		if k == 0 {
			errs = append(errs, fmt.Errorf("%w: node %q weight %v gets no ring point with VnodesPerNode %d (minimum weight %v)",
				ErrBadWeight, n.ID, n.Weight, cfg.VnodesPerNode, 0.5/float64(cfg.VnodesPerNode)))
		}
		points += k
	}
	if points > MaxPoints {
		errs = append(errs, fmt.Errorf("%w: %d ring points, at most %d allowed: lower VnodesPerNode (%d) or the weights",
			ErrTooLarge, points, MaxPoints, cfg.VnodesPerNode))
	}
	return errors.Join(errs...)
}

func checkWeight(id string, w float64) error {
	if !(w > 0 && w <= MaxWeight) { // also catches NaN
		return fmt.Errorf("%w: node %q weight %v must be in (0, %v]", ErrBadWeight, id, w, MaxWeight)
	}
	return nil
}

// numPoints is the number of ring points of a node: round(vnodes × weight).
func numPoints(vnodes int, w float64) int {
	return int(math.Round(float64(vnodes) * w))
}

// Config returns the ring's placement policy.
func (r *Ring) Config() Config { return r.cfg }

// Nodes returns the members sorted by ID. The slice is a copy.
func (r *Ring) Nodes() []Node { return slices.Clone(r.nodes) }

// Len returns the number of members.
func (r *Ring) Len() int { return len(r.nodes) }

// Weight returns the weight of node id and whether it is a member.
func (r *Ring) Weight(id string) (float64, bool) {
	i, ok := r.index(id)
	if !ok {
		return 0, false
	}
	return r.nodes[i].Weight, true
}

// Share returns node id's fair share of the buckets, weight / Σ weights, or
// 0 if it is not a member.
func (r *Ring) Share(id string) float64 {
	i, ok := r.index(id)
	if !ok {
		return 0
	}
	return r.nodes[i].Weight / r.a.totalWeight
}

func (r *Ring) index(id string) (int, bool) {
	return slices.BinarySearchFunc(r.nodes, id, func(n Node, id string) int { return strings.Compare(n.ID, id) })
}

// Assign returns the ring's assignment computed from nothing but the ring:
// the one for a cluster's first table. Later tables should come from
// AssignFrom. The result is a copy the caller owns.
func (r *Ring) Assign() Assignment {
	return r.assignment(r.a.owners, r.a.displaced)
}

func (r *Ring) assignment(owners []uint16, displaced int) Assignment {
	ids := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		ids[i] = n.ID
	}
	return Assignment{
		Nodes:     ids,
		RF:        r.cfg.RF,
		Owners:    slices.Clone(owners),
		Displaced: displaced,
	}
}

// AssignFrom returns the ring's assignment computed from prev, the
// cluster's previous assignment (typically of the ring before one node was
// added, removed or reweighted). Every bucket keeps its previous primary
// unless the load bounds of this ring force it off, or that primary is no
// longer a member; the buckets that move are as few as the bounds allow,
// and among those placements the one closest to natural consistent hashing
// is chosen. So a change moves about what the changed node gains or loses,
// and a bucket moves between two other nodes only when their bounds force
// it.
//
// The result depends on prev as well as on the ring (placement is
// path-dependent): the same Config, nodes and prev give the same
// assignment on every process. Replicas (RF > 1) are as in Assign. prev
// may have any RF (only its primaries are used) and nodes that are not
// members; a nil prev gives Assign(). It fails with ErrBadAssignment if
// prev is malformed.
func (r *Ring) AssignFrom(prev *Assignment) (Assignment, error) {
	if prev == nil {
		return r.Assign(), nil
	}
	po, err := r.previousOwners(prev)
	if err != nil {
		return Assignment{}, err
	}
	a, err := place(r.cfg, r.nodes, po)
	if err != nil {
		return Assignment{}, err
	}
	return r.assignment(a.owners, a.displaced), nil
}

// previousOwners maps prev's primaries to this ring's node indices, −1 for
// a node that is not a member.
func (r *Ring) previousOwners(prev *Assignment) ([]int32, error) {
	if prev.RF < 1 || len(prev.Owners) != NumBuckets*prev.RF {
		return nil, fmt.Errorf("%w: RF %d with %d owner entries, want %d buckets × RF ≥ 1", ErrBadAssignment, prev.RF, len(prev.Owners), NumBuckets)
	}
	idx := make([]int32, len(prev.Nodes))
	for i, id := range prev.Nodes {
		j, ok := r.index(id)
		if !ok {
			j = -1
		}
		idx[i] = int32(j)
	}
	po := make([]int32, NumBuckets)
	for b := range po {
		o := int(prev.Owners[b*prev.RF])
		if o >= len(idx) {
			return nil, fmt.Errorf("%w: bucket %d's primary is node index %d of %d", ErrBadAssignment, b, o, len(idx))
		}
		po[b] = idx[o]
	}
	return po, nil
}

// Primary returns the primary owner of bucket b (b < NumBuckets).
func (r *Ring) Primary(b int) string {
	return r.nodes[r.a.owners[b*r.cfg.RF]].ID
}

// WithNode returns a new ring with n added. It fails with ErrDuplicateNode
// if n.ID is already a member.
func (r *Ring) WithNode(n Node) (*Ring, error) {
	if _, ok := r.index(n.ID); ok {
		return nil, fmt.Errorf("%w: %q is already a member", ErrDuplicateNode, n.ID)
	}
	return New(r.cfg, append(slices.Clone(r.nodes), n))
}

// WithoutNode returns a new ring without node id: all of its points go,
// whatever its weight. It fails with ErrUnknownNode if id is not a member,
// and with ErrEmpty or ErrRFTooLarge if too few nodes would remain.
func (r *Ring) WithoutNode(id string) (*Ring, error) {
	i, ok := r.index(id)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownNode, id)
	}
	return New(r.cfg, slices.Delete(slices.Clone(r.nodes), i, i+1))
}

// WithWeight returns a new ring with node id reweighted to w. It fails with
// ErrUnknownNode if id is not a member and ErrBadWeight if w is out of range.
func (r *Ring) WithWeight(id string, w float64) (*Ring, error) {
	i, ok := r.index(id)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownNode, id)
	}
	nodes := slices.Clone(r.nodes)
	nodes[i].Weight = w
	return New(r.cfg, nodes)
}
