package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"
)

// FuzzNew feeds New arbitrary weights, replication factors and bounds: it
// must return a ring that meets its bounds or an error from this package,
// never panic.
func FuzzNew(f *testing.F) {
	le := func(ws ...float64) []byte {
		var b []byte
		for _, w := range ws {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(w))
		}
		return b
	}
	f.Add(le(1, 2, 3), uint8(1), uint8(9))
	f.Add(le(0.25, 4, 0.001, 100), uint8(2), uint8(0))
	f.Add(le(math.NaN(), -1, 0), uint8(1), uint8(100))
	f.Add(le(1), uint8(3), uint8(50))
	f.Fuzz(func(t *testing.T, raw []byte, rf uint8, epsPct uint8) {
		var nodes []Node
		for i := 0; i+8 <= len(raw) && len(nodes) < 40; i += 8 {
			w := math.Float64frombits(binary.LittleEndian.Uint64(raw[i:]))
			nodes = append(nodes, Node{ID: fmt.Sprintf("n%d", i/8%7), Weight: w}) // IDs repeat past 7
		}
		cfg := Config{VnodesPerNode: 16, RF: int(rf % 5), LoadEpsilon: float64(epsPct) / 100}
		r, err := New(cfg, nodes)
		if err != nil {
			for _, known := range []error{ErrBadConfig, ErrBadWeight, ErrBadNodeID, ErrDuplicateNode, ErrEmpty, ErrRFTooLarge, ErrTooLarge} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("New: unclassified error %v", err)
		}
		total := 0.0
		for _, n := range r.nodes {
			total += n.Weight
		}
		lo, hi := bounds(r.nodes, total, cfg.LoadEpsilon)
		c := make([]int32, len(r.nodes))
		a := r.Assign()
		for b := 0; b < NumBuckets; b++ {
			c[a.Owners[b*a.RF]]++
		}
		for i := range c {
			if c[i] < lo[i] || c[i] > hi[i] {
				t.Fatalf("node %s: %d buckets, bounds [%d, %d]", r.nodes[i].ID, c[i], lo[i], hi[i])
			}
		}
	})
}
