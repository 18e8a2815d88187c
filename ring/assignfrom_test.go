package ring

import (
	"errors"
	"slices"
	"testing"
)

func TestAssignFromNilAndSelf(t *testing.T) {
	r, err := New(smallConfig(), nodesOf(1, 0.5, 3, 2))
	if err != nil {
		t.Fatal(err)
	}
	a := r.Assign()
	got, err := r.AssignFrom(nil)
	if err != nil || !slices.Equal(got.Owners, a.Owners) {
		t.Fatalf("AssignFrom(nil) = %v, %v; want Assign()", err, got.Owners[:8])
	}
	// A table already within the bounds is kept as it is.
	got, err = r.AssignFrom(&a)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Owners, a.Owners) || got.Displaced != a.Displaced {
		t.Fatal("AssignFrom(Assign()) on the same ring changed the table")
	}
}

func TestAssignFromErrors(t *testing.T) {
	r, err := New(smallConfig(), nodesOf(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	a := r.Assign()
	bad := []Assignment{
		{Nodes: a.Nodes, RF: 0, Owners: a.Owners},
		{Nodes: a.Nodes, RF: 1, Owners: a.Owners[:10]},
		{Nodes: a.Nodes[:1], RF: 1, Owners: a.Owners},
	}
	for i, p := range bad {
		if _, err := r.AssignFrom(&p); !errors.Is(err, ErrBadAssignment) {
			t.Errorf("case %d: err = %v, want ErrBadAssignment", i, err)
		}
	}
}

// TestAssignFromMovesOnlyTheChange: removing a node moves its buckets and
// nothing else; adding one moves buckets only onto it, unless the bounds
// force an overfull node to give up a bucket elsewhere; the input order of
// the nodes does not matter; prev may be of another RF.
func TestAssignFromMovesOnlyTheChange(t *testing.T) {
	cfg := smallConfig()
	nodes := nodesOf(1, 0.5, 3, 2, 0.25, 1.5, 1, 2.5)
	r, err := New(cfg, nodes)
	if err != nil {
		t.Fatal(err)
	}
	base := r.Assign()
	r2, err := r.WithoutNode("n3")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := r2.AssignFrom(&base)
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < NumBuckets; b++ {
		before, after := base.Nodes[base.Owners[b]], a2.Nodes[a2.Owners[b]]
		if before != "n3" && before != after {
			t.Fatalf("bucket %d moved %s → %s though only n3 left", b, before, after)
		}
	}
	checkBounds(t, r2, a2)

	rev := slices.Clone(nodes)
	slices.Reverse(rev)
	rev = append(rev, Node{ID: "n9", Weight: 2})
	r3, err := New(cfg, rev)
	if err != nil {
		t.Fatal(err)
	}
	a3, err := r3.AssignFrom(&base)
	if err != nil {
		t.Fatal(err)
	}
	moved, elsewhere := 0, 0
	for b := 0; b < NumBuckets; b++ {
		before, after := base.Nodes[base.Owners[b]], a3.Nodes[a3.Owners[b]]
		if before != after {
			moved++
			if after != "n9" {
				elsewhere++
			}
		}
	}
	want := r3.Share("n9") * NumBuckets
	if float64(moved) > 1.15*want || elsewhere > moved/20 {
		t.Errorf("adding n9 (share %.1f buckets) moved %d, %d not onto n9", want, moved, elsewhere)
	}
	checkBounds(t, r3, a3)

	// The same from an RF 3 table of the same ring.
	cfg3 := cfg
	cfg3.RF = 3
	r3rf, err := New(cfg3, nodes)
	if err != nil {
		t.Fatal(err)
	}
	base3 := r3rf.Assign()
	a3b, err := r3.AssignFrom(&base3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a3b.Owners, a3.Owners) {
		t.Error("AssignFrom depends on prev's replicas")
	}
}

func checkBounds(t *testing.T, r *Ring, a Assignment) {
	t.Helper()
	total := 0.0
	for _, n := range r.nodes {
		total += n.Weight
	}
	lo, hi := bounds(r.nodes, total, r.cfg.LoadEpsilon)
	cnt := make([]int32, len(a.Nodes))
	for b := 0; b < NumBuckets; b++ {
		cnt[a.Owners[b*a.RF]]++
	}
	for i := range cnt {
		if cnt[i] < lo[i] || cnt[i] > hi[i] {
			t.Errorf("%s: %d buckets, bounds [%d, %d]", a.Nodes[i], cnt[i], lo[i], hi[i])
		}
	}
}

// TestAssignFromFallback: the history-aware placement also goes through the
// exact candidate search when the walk finds too few candidates.
func TestAssignFromFallback(t *testing.T) {
	cfg := Config{VnodesPerNode: 64, RF: 1, LoadEpsilon: 0.05}
	r, err := New(cfg, nodesOf(1, 2, 0.5, 1, 3, 0.25))
	if err != nil {
		t.Fatal(err)
	}
	base := r.Assign()
	defer func(w int) { walkMax = w }(walkMax)
	walkMax = 1
	r2, err := r.WithWeight("n2", 0.5)
	if err != nil {
		t.Fatal(err)
	}
	a, err := r2.AssignFrom(&base)
	if err != nil {
		t.Fatal(err)
	}
	checkBounds(t, r2, a)
}
