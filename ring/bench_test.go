package ring

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchNodes returns n nodes with weights uniform in [0.25, 4], seeded.
func benchNodes(n int) []Node {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: fmt.Sprintf("node-%02d", i), Weight: 0.25 + rng.Float64()*3.75}
	}
	return nodes
}

// BenchmarkNew measures a full table build (what the Raft leader runs on
// every membership or weight change).
func BenchmarkNew(b *testing.B) {
	for _, n := range []int{3, 16, 64, 256} {
		nodes := benchNodes(n)
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(DefaultConfig(), nodes); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNewEqualWeights64 is the 64-node build with all weights 1.
func BenchmarkNewEqualWeights64(b *testing.B) {
	nodes := benchNodes(64)
	for i := range nodes {
		nodes[i].Weight = 1
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(DefaultConfig(), nodes); err != nil {
			b.Fatal(err)
		}
	}
}
