package router

import (
	"testing"

	"github.com/dbx-kv/dbx/ring"
)

func TestReassign(t *testing.T) {
	r, err := ring.New(ring.DefaultConfig(), []ring.Node{{ID: "a", Weight: 1}, {ID: "b", Weight: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t1, err := FromRing(1, r)
	if err != nil {
		t.Fatal(err)
	}
	moved := t1.BucketsOf("a")[:10]
	t2, err := t1.Reassign(2, moved, "c")
	if err != nil {
		t.Fatal(err)
	}
	if t2.Epoch() != 2 || t2.Count("c") != 10 || t2.Count("a") != t1.Count("a")-10 || t2.Count("b") != t1.Count("b") {
		t.Fatalf("after Reassign: epoch %d, counts %v (before %v)", t2.Epoch(), t2.Counts(), t1.Counts())
	}
	for _, b := range moved {
		if t2.OwnerOfBucket(b) != "c" {
			t.Fatalf("bucket %d owned by %s", b, t2.OwnerOfBucket(b))
		}
	}
	// A node left with nothing leaves the node list.
	t3, err := t2.Reassign(3, t2.BucketsOf("c"), "b")
	if err != nil {
		t.Fatal(err)
	}
	if got := t3.Nodes(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("nodes after c lost everything: %v", got)
	}
	if t1.WithEpoch(9).Epoch() != 9 || t1.WithEpoch(9).Count("a") != t1.Count("a") {
		t.Fatal("WithEpoch changed owners")
	}
	if t1.Epoch() != 1 || t1.Count("c") != 0 {
		t.Fatal("Reassign modified its receiver")
	}
}
