package router

import (
	"fmt"
	"slices"
)

// Reassign returns a copy of t at epoch whose primary owner of every bucket
// in buckets is to: one step of a migration (RF 1 only). The node list
// gains to if needed and loses every node left owning nothing.
func (t *Table) Reassign(epoch uint64, buckets []uint16, to string) (*Table, error) {
	if t.rf != 1 {
		return nil, fmt.Errorf("%w: Reassign needs RF 1, table has %d", ErrBadTable, t.rf)
	}
	ids := slices.Clone(t.ids)
	for _, b := range buckets {
		if int(b) >= NumBuckets {
			return nil, fmt.Errorf("%w: bucket %d out of range", ErrBadTable, b)
		}
		ids[b] = to
	}
	return fromIDs(epoch, ids)
}

// WithEpoch returns a copy of t at epoch.
func (t *Table) WithEpoch(epoch uint64) *Table {
	return build(epoch, slices.Clone(t.nodes), t.rf, slices.Clone(t.owners))
}

// fromIDs builds an RF-1 table from one owner ID per bucket.
func fromIDs(epoch uint64, ids []string) (*Table, error) {
	var nodes []string
	seen := map[string]bool{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			nodes = append(nodes, id)
		}
	}
	slices.Sort(nodes)
	owners := make([]uint16, len(ids))
	for b, id := range ids {
		i, _ := slices.BinarySearch(nodes, id)
		owners[b] = uint16(i)
	}
	if err := validate(nodes, 1, owners); err != nil {
		return nil, err
	}
	return build(epoch, nodes, 1, owners), nil
}
