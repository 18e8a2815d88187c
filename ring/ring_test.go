package ring

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// smallConfig keeps unit tests fast; the placement logic is the same.
func smallConfig() Config { return Config{VnodesPerNode: 128, RF: 1, LoadEpsilon: 0.09} }

func nodesOf(weights ...float64) []Node {
	out := make([]Node, len(weights))
	for i, w := range weights {
		out[i] = Node{ID: fmt.Sprintf("n%d", i+1), Weight: w}
	}
	return out
}

func TestNewErrors(t *testing.T) {
	long := strings.Repeat("x", MaxNodeIDLen+1)
	many := make([]Node, MaxNodes+1)
	for i := range many {
		many[i] = Node{ID: fmt.Sprintf("n%04d", i), Weight: 1}
	}
	tests := []struct {
		name  string
		cfg   Config
		nodes []Node
		want  []error
		text  []string
	}{
		{"empty", smallConfig(), nil, []error{ErrEmpty}, nil},
		{"zero weight", smallConfig(), nodesOf(1, 0), []error{ErrBadWeight}, []string{`node "n2" weight 0 must be in (0, 100]`}},
		{"negative weight", smallConfig(), nodesOf(-1, 1), []error{ErrBadWeight}, []string{"weight -1"}},
		{"NaN weight", smallConfig(), nodesOf(math.NaN(), 1), []error{ErrBadWeight}, []string{"weight NaN"}},
		{"infinite weight", smallConfig(), nodesOf(math.Inf(1), 1), []error{ErrBadWeight}, []string{"weight +Inf"}},
		{"weight above max", smallConfig(), nodesOf(100.5, 1), []error{ErrBadWeight}, []string{"weight 100.5"}},
		{"weight too small for a point", Config{VnodesPerNode: 4, RF: 1, LoadEpsilon: 0.1}, nodesOf(0.1, 1), []error{ErrBadWeight}, []string{"gets no ring point", "minimum weight 0.125"}},
		{"duplicate", smallConfig(), []Node{{"a", 1}, {"b", 1}, {"a", 2}}, []error{ErrDuplicateNode}, []string{`"a"`}},
		{"empty id", smallConfig(), []Node{{"", 1}, {"b", 1}}, []error{ErrBadNodeID}, nil},
		{"long id", smallConfig(), []Node{{long, 1}}, []error{ErrBadNodeID}, []string{"256 bytes"}},
		{"rf too large", Config{VnodesPerNode: 8, RF: 3, LoadEpsilon: 0.1}, nodesOf(1, 1), []error{ErrRFTooLarge}, []string{"RF 3 with 2 nodes"}},
		{"bad config", Config{VnodesPerNode: 0, RF: 1}, nodesOf(1), []error{ErrBadConfig}, nil},
		{"too many nodes", Config{VnodesPerNode: 1, RF: 1, LoadEpsilon: 0.1}, many, []error{ErrTooLarge}, []string{"1025 nodes"}},
		{"too many points", Config{VnodesPerNode: MaxVnodesPerNode, RF: 1, LoadEpsilon: 0.1}, nodesOf(100), []error{ErrTooLarge}, []string{"6553600 ring points"}},
		{"everything at once", Config{VnodesPerNode: 8, RF: 4, LoadEpsilon: 0.1}, []Node{{"a", 0}, {"a", math.NaN()}, {"", 1}},
			[]error{ErrBadWeight, ErrDuplicateNode, ErrBadNodeID, ErrRFTooLarge}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg, tt.nodes)
			if err == nil {
				t.Fatalf("New() = %v, nil; want error", r)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("New() = %v; want errors.Is %v", err, w)
				}
			}
			for _, s := range tt.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("New() = %q; missing %q", err, s)
				}
			}
		})
	}
}

func TestNumPoints(t *testing.T) {
	for _, tt := range []struct {
		v    int
		w    float64
		want int
	}{
		{1024, 1, 1024}, {1024, 0.25, 256}, {1024, 4, 4096}, {1024, 0.0004, 0}, {1024, 0.0005, 1}, {3, 0.5, 2}, {128, 100, 12800},
	} {
		if got := numPoints(tt.v, tt.w); got != tt.want {
			t.Errorf("numPoints(%d, %v) = %d, want %d", tt.v, tt.w, got, tt.want)
		}
	}
	// The ring holds exactly round(V × w) points per node.
	nodes := nodesOf(0.25, 1, 2.5)
	_, pn := buildPoints(100, nodes)
	got := make([]int, len(nodes))
	for _, n := range pn {
		got[n]++
	}
	if !slices.Equal(got, []int{25, 100, 250}) {
		t.Errorf("points per node = %v, want [25 100 250]", got)
	}
}

func TestSortPoints(t *testing.T) {
	for _, n := range []int{0, 1, 2, 100, 5000, 70000} {
		keys := make([]uint64, n)
		vals := make([]uint16, n)
		for i := range keys {
			keys[i] = mix64(uint64(i))
			if i%7 == 0 && i > 0 {
				keys[i] = keys[i-1] // ties keep input order
			}
			vals[i] = uint16(i)
		}
		type kv struct {
			k uint64
			v uint16
		}
		want := make([]kv, n)
		for i := range keys {
			want[i] = kv{keys[i], vals[i]}
		}
		slices.SortStableFunc(want, func(a, b kv) int {
			switch {
			case a.k < b.k:
				return -1
			case a.k > b.k:
				return 1
			}
			return 0
		})
		sortPoints(keys, vals)
		for i := range want {
			if keys[i] != want[i].k || vals[i] != want[i].v {
				t.Fatalf("n=%d: element %d = (%x, %d), want (%x, %d)", n, i, keys[i], vals[i], want[i].k, want[i].v)
			}
		}
	}
}

func counts(r *Ring) map[string]int {
	c := map[string]int{}
	for b := 0; b < NumBuckets; b++ {
		c[r.Primary(b)]++
	}
	return c
}

func TestBalanceWithinBounds(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		nodes []Node
	}{
		{"single node", smallConfig(), nodesOf(1)},
		{"two equal", smallConfig(), nodesOf(1, 1)},
		{"uneven", smallConfig(), nodesOf(0.25, 4, 1, 2.5, 0.3)},
		{"extreme ratio", smallConfig(), nodesOf(0.01, 100, 50)},
		{"exact quotas", Config{VnodesPerNode: 128, RF: 1, LoadEpsilon: 0}, nodesOf(1, 2, 3, 0.5, 0.25)},
		{"one vnode each", Config{VnodesPerNode: 1, RF: 1, LoadEpsilon: 0.05}, nodesOf(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)},
		{"loose bounds", Config{VnodesPerNode: 16, RF: 1, LoadEpsilon: 1}, nodesOf(1, 2, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg, tt.nodes)
			if err != nil {
				t.Fatal(err)
			}
			total := 0.0
			for _, n := range tt.nodes {
				total += n.Weight
			}
			lo, hi := bounds(r.nodes, total, tt.cfg.LoadEpsilon)
			c := counts(r)
			sum := 0
			for i, n := range r.nodes {
				got := int32(c[n.ID])
				sum += c[n.ID]
				if got < lo[i] || got > hi[i] {
					t.Errorf("node %s weight %v: %d buckets, bounds [%d, %d]", n.ID, n.Weight, got, lo[i], hi[i])
				}
				fair := n.Weight / total * NumBuckets
				if tt.cfg.LoadEpsilon == 0 && math.Abs(float64(got)-fair) >= 1 {
					t.Errorf("exact quotas: node %s has %d buckets, fair share %.2f", n.ID, got, fair)
				}
			}
			if sum != NumBuckets {
				t.Errorf("%d buckets placed, want %d", sum, NumBuckets)
			}
		})
	}
}

func TestBoundsFeasible(t *testing.T) {
	for _, eps := range []float64{0, 0.01, 0.09, 0.5, 1} {
		for _, ws := range [][]float64{{1}, {1, 1, 1}, {0.001, 100}, {0.3, 0.3, 0.3, 7}, {1, 2, 3, 4, 5, 6, 7}} {
			nodes := nodesOf(ws...)
			total := 0.0
			for _, n := range nodes {
				total += n.Weight
			}
			lo, hi := bounds(nodes, total, eps)
			var sl, sh int32
			for i := range lo {
				if lo[i] > hi[i] || lo[i] < 0 {
					t.Errorf("eps %v weights %v: node %d bounds [%d, %d]", eps, ws, i, lo[i], hi[i])
				}
				sl += lo[i]
				sh += hi[i]
			}
			if sl > NumBuckets || sh < NumBuckets {
				t.Errorf("eps %v weights %v: Σlo %d Σhi %d do not bracket %d", eps, ws, sl, sh, NumBuckets)
			}
		}
	}
}

func TestOrderIndependent(t *testing.T) {
	nodes := nodesOf(1, 0.5, 3, 2, 0.25, 1.5)
	a, err := New(smallConfig(), nodes)
	if err != nil {
		t.Fatal(err)
	}
	rev := slices.Clone(nodes)
	slices.Reverse(rev)
	b, err := New(smallConfig(), rev)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Assign().Owners, b.Assign().Owners) {
		t.Fatal("assignment depends on input order")
	}
}

func TestRemovedNodeOwnsNothing(t *testing.T) {
	r, err := New(smallConfig(), nodesOf(1, 50, 0.25, 2))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		r2, err := r.WithoutNode(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := r2.Weight(id); ok {
			t.Errorf("%s still a member", id)
		}
		if c := counts(r2)[id]; c != 0 {
			t.Errorf("%s removed but owns %d buckets", id, c)
		}
		a := r2.Assign()
		if slices.Contains(a.Nodes, id) {
			t.Errorf("%s removed but in Assign().Nodes", id)
		}
	}
}

func TestWithChanges(t *testing.T) {
	r, err := New(smallConfig(), nodesOf(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.WithNode(Node{"n1", 1}); !errors.Is(err, ErrDuplicateNode) {
		t.Errorf("WithNode(existing) = %v, want ErrDuplicateNode", err)
	}
	if _, err := r.WithNode(Node{"n3", 0}); !errors.Is(err, ErrBadWeight) {
		t.Errorf("WithNode(weight 0) = %v, want ErrBadWeight", err)
	}
	if _, err := r.WithoutNode("nope"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("WithoutNode(unknown) = %v, want ErrUnknownNode", err)
	}
	if _, err := r.WithWeight("nope", 1); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("WithWeight(unknown) = %v, want ErrUnknownNode", err)
	}
	if _, err := r.WithWeight("n1", math.NaN()); !errors.Is(err, ErrBadWeight) {
		t.Errorf("WithWeight(NaN) = %v, want ErrBadWeight", err)
	}
	one, err := r.WithoutNode("n1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.WithoutNode("n2"); !errors.Is(err, ErrEmpty) {
		t.Errorf("removing the last node = %v, want ErrEmpty", err)
	}
	rf2, err := New(Config{VnodesPerNode: 16, RF: 2, LoadEpsilon: 0.1}, nodesOf(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rf2.WithoutNode("n1"); !errors.Is(err, ErrRFTooLarge) {
		t.Errorf("dropping below RF = %v, want ErrRFTooLarge", err)
	}

	// Changes build new rings and leave the old one alone.
	before := r.Assign()
	r3, err := r.WithNode(Node{"n3", 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := r3.Len(); got != 3 {
		t.Errorf("WithNode: %d nodes, want 3", got)
	}
	if !slices.Equal(r.Assign().Owners, before.Owners) || r.Len() != 2 {
		t.Error("WithNode changed the original ring")
	}
	rw, err := r.WithWeight("n1", 4)
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := rw.Weight("n1"); w != 4 {
		t.Errorf("WithWeight: weight %v, want 4", w)
	}
	if s := rw.Share("n1"); s != 4.0/6 {
		t.Errorf("Share = %v, want %v", s, 4.0/6)
	}
	// Reweighting back gives the original placement exactly.
	back, err := rw.WithWeight("n1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Assign().Owners, before.Owners) {
		t.Error("reweighting there and back changed the placement")
	}
}

func TestReplicas(t *testing.T) {
	cfg := Config{VnodesPerNode: 64, RF: 3, LoadEpsilon: 0.09}
	r, err := New(cfg, nodesOf(1, 2, 0.5, 1, 3))
	if err != nil {
		t.Fatal(err)
	}
	a := r.Assign()
	if a.RF != 3 || len(a.Owners) != NumBuckets*3 {
		t.Fatalf("RF %d, %d owners", a.RF, len(a.Owners))
	}
	ph, pn := buildPoints(cfg.VnodesPerNode, r.nodes)
	for b := 0; b < NumBuckets; b++ {
		os := a.Owners[b*3 : b*3+3]
		if os[0] == os[1] || os[0] == os[2] || os[1] == os[2] {
			t.Fatalf("bucket %d owners %v not distinct", b, os)
		}
		if a.Nodes[os[0]] != r.Primary(b) {
			t.Fatalf("bucket %d: owners[0] is not the primary", b)
		}
		// Replicas are the first distinct non-primary nodes clockwise.
		var want []uint16
		p := firstAtOrAfter(ph, bucketPoint(b))
		for len(want) < 2 {
			if n := pn[p]; n != os[0] && !slices.Contains(want, n) {
				want = append(want, n)
			}
			p = (p + 1) % len(ph)
		}
		if !slices.Equal(os[1:], want) {
			t.Fatalf("bucket %d replicas %v, want %v", b, os[1:], want)
		}
	}
}

func TestCandidatesWalkMatchesExact(t *testing.T) {
	// The fast walk and the fallback's per-node search must agree whenever
	// the walk is not cut short.
	for _, nodes := range [][]Node{nodesOf(1, 1, 1), nodesOf(0.25, 4, 1, 2, 3, 0.5, 1, 1, 2), nodesOf(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)} {
		ph, pn := buildPoints(64, nodes)
		k := min(len(nodes), 4)
		w := walkCandidates(ph, pn, k)
		e := exactCandidates(ph, pn, len(nodes), k)
		if !w.complete || !slices.Equal(w.node, e.node) || !slices.Equal(w.cost, e.cost) || !slices.Equal(w.num, e.num) {
			t.Fatalf("%d nodes: walk and exact candidates differ", len(nodes))
		}
	}
}

func TestFallbackCandidates(t *testing.T) {
	// With one candidate per bucket the fast path cannot fix any bound, so
	// New must fall back to the exact candidate search and still meet the
	// bounds.
	nodes := nodesOf(1, 2, 0.5, 1, 3, 0.25)
	cfg := Config{VnodesPerNode: 64, RF: 1, LoadEpsilon: 0.05}
	defer func(w int) { walkMax = w }(walkMax)
	walkMax = 1
	r, err := New(cfg, nodes)
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, n := range nodes {
		total += n.Weight
	}
	lo, hi := bounds(r.nodes, total, cfg.LoadEpsilon)
	c := counts(r)
	for i, n := range r.nodes {
		if got := int32(c[n.ID]); got < lo[i] || got > hi[i] {
			t.Errorf("%s: %d buckets, bounds [%d, %d]", n.ID, got, lo[i], hi[i])
		}
	}
	if r.Assign().Displaced == 0 {
		t.Error("nothing displaced: the fallback did not run")
	}
}

func TestSolverReportsInfeasible(t *testing.T) {
	nodes := nodesOf(1, 1, 1)
	ph, pn := buildPoints(16, nodes)
	c := walkCandidates(ph, pn, 1) // natural owner only: nothing can move
	lo, hi := bounds(nodes, 3, 0)
	if newSolver(3, c, lo, hi).run() {
		t.Fatal("solver fixed exact quotas with no alternative candidates")
	}
}

func TestDisplacedCountsBoundMoves(t *testing.T) {
	// With loose enough bounds nothing is displaced: the placement is plain
	// consistent hashing.
	r, err := New(Config{VnodesPerNode: 256, RF: 1, LoadEpsilon: 1}, nodesOf(1, 1, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Assign().Displaced; d != 0 {
		t.Errorf("ε=1: %d displaced buckets, want 0", d)
	}
	r, err = New(Config{VnodesPerNode: 256, RF: 1, LoadEpsilon: 0}, nodesOf(1, 1, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Assign().Displaced; d == 0 {
		t.Error("exact quotas displaced nothing; natural hashing is never exactly fair")
	}
}
