package router

import (
	"testing"

	"github.com/dbx-kv/dbx/ring"
)

func TestFromRingPrev(t *testing.T) {
	r := testRing(t, 2, 1, 2, 0.5, 1.5)
	first, err := FromRing(1, r)
	if err != nil {
		t.Fatal(err)
	}
	same, err := FromRingPrev(1, r, nil)
	if err != nil || same.Digest() != first.Digest() {
		t.Fatalf("FromRingPrev(nil) = %v, %v; want FromRing", same, err)
	}
	// The table in force is already within the ring's bounds: nothing moves.
	again, err := FromRingPrev(1, r, first)
	if err != nil || again.Digest() != first.Digest() {
		t.Fatalf("FromRingPrev(own table) = %v, %v; want it unchanged", again, err)
	}
	// Removing node-2 moves only n2's buckets.
	r2, err := r.WithoutNode("node-2")
	if err != nil {
		t.Fatal(err)
	}
	next, err := FromRingPrev(2, r2, first)
	if err != nil {
		t.Fatal(err)
	}
	if next.Epoch() != 2 || next.RF() != 2 || next.Count("node-2") != 0 {
		t.Fatalf("next = %v", next)
	}
	for b := uint16(0); b < NumBuckets; b++ {
		if was := first.OwnerOfBucket(b); was != "node-2" && next.OwnerOfBucket(b) != was {
			t.Fatalf("bucket %d moved %s → %s though only node-2 left", b, was, next.OwnerOfBucket(b))
		}
	}
}

// TestFromRingPrevNoCommonNodes: a previous table none of whose nodes is a
// member gives the ring's bounds all the same.
func TestFromRingPrevNoCommonNodes(t *testing.T) {
	r, err := ring.New(ring.Config{VnodesPerNode: 16, RF: 1, LoadEpsilon: 0}, []ring.Node{{ID: "a", Weight: 1}, {ID: "b", Weight: 1}})
	if err != nil {
		t.Fatal(err)
	}
	next, err := FromRingPrev(2, r, testTable(t, 1, 1, 1, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if next.Count("a") != NumBuckets/2 || next.Count("b") != NumBuckets/2 {
		t.Errorf("exact quotas not met: %v", next.Counts())
	}
}
