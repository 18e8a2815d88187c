package router

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	"github.com/dbx-kv/dbx/ring"
)

// Table limits, also enforced when decoding.
const (
	// MaxNodes is the largest node count of a table.
	MaxNodes = ring.MaxNodes
	// MaxNodeIDLen is the longest node ID, in bytes.
	MaxNodeIDLen = ring.MaxNodeIDLen
	// MaxRF is the largest number of owners per bucket.
	MaxRF = ring.MaxRF
)

// Table is an immutable, epoch-stamped placement: for every bucket, the
// ordered list of its owners (the first is the primary). A *Table is safe
// for concurrent use.
type Table struct {
	epoch  uint64
	rf     int
	nodes  []string // ascending
	owners []uint16 // NumBuckets × rf indices into nodes
	ids    []string // NumBuckets × rf owner IDs, for allocation-free lookups
	counts []int    // primaries per node
	digest [32]byte
}

// NodeCount is a node and the number of buckets it is primary for.
type NodeCount struct {
	ID      string
	Buckets int
}

// NewTable builds a table from an assignment (see ring.Assignment). The
// assignment is validated and copied. Nodes must be sorted, distinct and
// non-empty; every bucket must have RF distinct owners.
func NewTable(epoch uint64, a ring.Assignment) (*Table, error) {
	if err := validate(a.Nodes, a.RF, a.Owners); err != nil {
		return nil, err
	}
	return build(epoch, slices.Clone(a.Nodes), a.RF, slices.Clone(a.Owners)), nil
}

// FromRing builds the table of r's assignment at epoch, computed from the
// ring alone (ring.Ring.Assign): use it for a cluster's first table.
func FromRing(epoch uint64, r *ring.Ring) (*Table, error) {
	return NewTable(epoch, r.Assign())
}

// FromRingPrev builds the table of r's assignment at epoch computed from
// prev, the table in force (ring.Ring.AssignFrom): buckets stay where prev
// put them unless r's load bounds force them off or their owner left, so a
// change of one node moves about what that node gains or loses. The result
// depends on prev: the same ring and prev give the same table on every
// process. A nil prev gives FromRing.
func FromRingPrev(epoch uint64, r *ring.Ring, prev *Table) (*Table, error) {
	if prev == nil {
		return FromRing(epoch, r)
	}
	a, err := r.AssignFrom(&ring.Assignment{Nodes: prev.nodes, RF: prev.rf, Owners: prev.owners})
	if err != nil {
		return nil, err
	}
	return NewTable(epoch, a)
}

func validate(nodes []string, rf int, owners []uint16) error {
	if len(nodes) == 0 || len(nodes) > MaxNodes {
		return fmt.Errorf("%w: %d nodes, want 1 to %d", ErrBadTable, len(nodes), MaxNodes)
	}
	for i, id := range nodes {
		if id == "" || len(id) > MaxNodeIDLen {
			return fmt.Errorf("%w: node id %q has %d bytes, want 1 to %d", ErrBadTable, id, len(id), MaxNodeIDLen)
		}
		if i > 0 && nodes[i-1] >= id {
			return fmt.Errorf("%w: node ids not strictly ascending at %d (%q, %q)", ErrBadTable, i, nodes[i-1], id)
		}
	}
	if rf < 1 || rf > MaxRF || rf > len(nodes) {
		return fmt.Errorf("%w: RF %d, want 1 to min(%d, %d nodes)", ErrBadTable, rf, MaxRF, len(nodes))
	}
	if len(owners) != NumBuckets*rf {
		return fmt.Errorf("%w: %d owner entries, want %d buckets × RF %d", ErrBadTable, len(owners), NumBuckets, rf)
	}
	for b := 0; b < NumBuckets; b++ {
		os := owners[b*rf : (b+1)*rf]
		for k, o := range os {
			if int(o) >= len(nodes) {
				return fmt.Errorf("%w: bucket %d owner %d is node index %d of %d", ErrBadTable, b, k, o, len(nodes))
			}
			if slices.Contains(os[:k], o) {
				return fmt.Errorf("%w: bucket %d lists node %q twice", ErrBadTable, b, nodes[o])
			}
		}
	}
	return nil
}

// build assembles a table from validated parts it takes ownership of.
func build(epoch uint64, nodes []string, rf int, owners []uint16) *Table {
	t := &Table{epoch: epoch, rf: rf, nodes: nodes, owners: owners}
	t.ids = make([]string, len(owners))
	for i, o := range owners {
		t.ids[i] = nodes[o]
	}
	t.counts = make([]int, len(nodes))
	for b := 0; b < NumBuckets; b++ {
		t.counts[owners[b*rf]]++
	}
	t.digest = sha256.Sum256(t.encode())
	return t
}

// Epoch returns the table's epoch.
func (t *Table) Epoch() uint64 { return t.epoch }

// RF returns the number of owners per bucket.
func (t *Table) RF() int { return t.rf }

// Nodes returns the IDs of the table's nodes in ascending order (a copy).
func (t *Table) Nodes() []string { return slices.Clone(t.nodes) }

// Owner returns the primary owner of key's bucket. It does not allocate.
func (t *Table) Owner(key []byte) string { return t.ids[int(Bucket(key))*t.rf] }

// OwnerString is Owner for a string key. It does not allocate.
func (t *Table) OwnerString(key string) string { return t.ids[int(BucketString(key))*t.rf] }

// OwnerOfBucket returns bucket b's primary owner. b must be < NumBuckets.
func (t *Table) OwnerOfBucket(b uint16) string { return t.ids[int(b)*t.rf] }

// HasOwner reports whether id is one of bucket b's owners (primary or
// replica); it does not allocate.
func (t *Table) HasOwner(b uint16, id string) bool {
	for _, o := range t.ids[int(b)*t.rf : int(b+1)*t.rf] {
		if o == id {
			return true
		}
	}
	return false
}

// Owners returns bucket b's owners, primary first. The slice is shared by
// every caller and must not be modified. It does not allocate.
func (t *Table) Owners(b uint16) []string {
	i := int(b) * t.rf
	return t.ids[i : i+t.rf : i+t.rf]
}

// BucketsOf returns, in ascending order, the buckets whose primary is node
// id (none if id is not in the table).
func (t *Table) BucketsOf(id string) []uint16 {
	i, ok := slices.BinarySearch(t.nodes, id)
	if !ok {
		return nil
	}
	out := make([]uint16, 0, t.counts[i])
	for b := 0; b < NumBuckets; b++ {
		if int(t.owners[b*t.rf]) == i {
			out = append(out, uint16(b))
		}
	}
	return out
}

// Count returns the number of buckets whose primary is node id.
func (t *Table) Count(id string) int {
	i, ok := slices.BinarySearch(t.nodes, id)
	if !ok {
		return 0
	}
	return t.counts[i]
}

// Counts returns every node's primary bucket count, in node ID order.
func (t *Table) Counts() []NodeCount {
	out := make([]NodeCount, len(t.nodes))
	for i, id := range t.nodes {
		out[i] = NodeCount{ID: id, Buckets: t.counts[i]}
	}
	return out
}

// Digest returns the SHA-256 of the table's canonical encoding (epoch
// included). Two tables are equal if and only if their digests are.
func (t *Table) Digest() [32]byte { return t.digest }

// String summarises the table for logs.
func (t *Table) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %d rf %d digest %x nodes", t.epoch, t.rf, t.digest[:6])
	for i, id := range t.nodes {
		fmt.Fprintf(&b, " %s:%d", id, t.counts[i])
	}
	return b.String()
}
