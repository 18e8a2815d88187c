package ring

import (
	"encoding/binary"
	"testing"
)

func TestPointHashDefinition(t *testing.T) {
	// pointHash is hash64(id ‖ uint64le(i)); buildPoints computes it
	// incrementally and must agree.
	for _, id := range []string{"", "a", "node-1", "n1", "n11"} {
		for _, i := range []uint64{0, 1, 255, 256, 1 << 40} {
			data := binary.LittleEndian.AppendUint64([]byte(id), i)
			if got, want := pointHash(id, i), hash64(data); got != want {
				t.Errorf("pointHash(%q, %d) = %x, want %x", id, i, got, want)
			}
		}
	}
	h, o := buildPoints(3, []Node{{"x", 1}})
	want := map[uint64]bool{pointHash("x", 0): true, pointHash("x", 1): true, pointHash("x", 2): true}
	for i := range h {
		if !want[h[i]] || o[i] != 0 {
			t.Errorf("point %d = %x of node %d, not one of x's", i, h[i], o[i])
		}
	}
	// Pinned values: changing them moves every bucket of every cluster.
	if got := pointHash("node-1", 7); got != 0xb1fbc9ce6ca1e982 {
		t.Errorf("pointHash(node-1, 7) = %#x, want 0xb1fbc9ce6ca1e982", got)
	}
	if got := bucketPoint(0); got != 0x0002000000000000 {
		t.Errorf("bucketPoint(0) = %#x, want 0x0002000000000000", got)
	}
	if got := bucketPoint(NumBuckets - 1); got != 0xfffe000000000000 {
		t.Errorf("bucketPoint(%d) = %#x, want 0xfffe000000000000", NumBuckets-1, got)
	}
}

func TestBucketPointsDistinct(t *testing.T) {
	seen := make(map[uint64]bool, NumBuckets)
	bt := bucketPoints()
	for b := 0; b < NumBuckets; b++ {
		if seen[bt.point[b]] {
			t.Fatalf("bucket %d shares its point", b)
		}
		seen[bt.point[b]] = true
		if b > 0 && bt.point[bt.order[b-1]] >= bt.point[bt.order[b]] {
			t.Fatalf("bucket order not ascending at %d", b)
		}
	}
}
