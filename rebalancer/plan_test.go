package rebalancer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dbx-kv/dbx/ring"
	"github.com/dbx-kv/dbx/router"
)

const nb = router.NumBuckets

// table builds a table from a primary-per-bucket function (RF 1).
func table(t testing.TB, epoch uint64, nodes []string, owner func(b int) int) *router.Table {
	t.Helper()
	owners := make([]uint16, nb)
	for b := range owners {
		owners[b] = uint16(owner(b))
	}
	tab, err := router.NewTable(epoch, ring.Assignment{Nodes: nodes, RF: 1, Owners: owners})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestPlanTable(t *testing.T) {
	abc := []string{"a", "b", "c"}
	halves := func(b int) int { return b * 2 / nb } // a: 0-8191, b: 8192-16383
	tests := []struct {
		name   string
		prev   *router.Table
		next   *router.Table
		tasks  []Task
		moved  int
		frac   float64
		output string
	}{
		{
			name: "no change",
			prev: table(t, 1, abc, halves), next: table(t, 2, abc, halves),
			tasks: []Task{},
		},
		{
			name: "one run",
			prev: table(t, 1, abc, halves),
			next: table(t, 2, abc, func(b int) int {
				if b >= 100 && b <= 199 {
					return 2
				}
				return halves(b)
			}),
			tasks: []Task{{From: "a", To: "c", Ranges: []BucketRange{{100, 199}}, Buckets: 100}},
			moved: 100, frac: 100.0 / nb,
		},
		{
			name: "runs split and grouped, tasks sorted",
			prev: table(t, 1, abc, halves),
			next: table(t, 2, abc, func(b int) int {
				switch {
				case b == 0 || b == 2 || b == 3 || b == nb-1:
					return 2 // a→c at 0, 2-3; b→c at the last bucket
				case b >= 8190 && b <= 8193:
					return 1 - halves(b) // a↔b swap around the boundary
				}
				return halves(b)
			}),
			tasks: []Task{
				{From: "a", To: "b", Ranges: []BucketRange{{8190, 8191}}, Buckets: 2},
				{From: "a", To: "c", Ranges: []BucketRange{{0, 0}, {2, 3}}, Buckets: 3},
				{From: "b", To: "a", Ranges: []BucketRange{{8192, 8193}}, Buckets: 2},
				{From: "b", To: "c", Ranges: []BucketRange{{nb - 1, nb - 1}}, Buckets: 1},
			},
			moved: 8, frac: 8.0 / nb,
		},
		{
			name:  "everything moves",
			prev:  table(t, 1, abc, func(int) int { return 0 }),
			next:  table(t, 2, abc, func(int) int { return 1 }),
			tasks: []Task{{From: "a", To: "b", Ranges: []BucketRange{{0, nb - 1}}, Buckets: nb}},
			moved: nb, frac: 1,
		},
		{
			name:  "node set changes",
			prev:  table(t, 1, []string{"a"}, func(int) int { return 0 }),
			next:  table(t, 2, []string{"a", "z"}, func(b int) int { return b % 2 }),
			moved: nb / 2, frac: 0.5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Plan(tt.prev, tt.next)
			if err != nil {
				t.Fatal(err)
			}
			if m.FromEpoch != tt.prev.Epoch() || m.ToEpoch != tt.next.Epoch() {
				t.Errorf("epochs %d → %d", m.FromEpoch, m.ToEpoch)
			}
			if tt.tasks != nil && !slices.EqualFunc(m.Tasks, tt.tasks, func(a, b Task) bool {
				return a.From == b.From && a.To == b.To && a.Buckets == b.Buckets && slices.Equal(a.Ranges, b.Ranges)
			}) {
				t.Errorf("tasks\n got %+v\nwant %+v", m.Tasks, tt.tasks)
			}
			if m.Moved != tt.moved || m.Fraction != tt.frac {
				t.Errorf("moved %d (%v), want %d (%v)", m.Moved, m.Fraction, tt.moved, tt.frac)
			}
			checkPlan(t, tt.prev, tt.next, m)
		})
	}
}

// checkPlan verifies that the migration, applied to prev's primaries, gives
// next's, and that its ranges are compressed and its tasks ordered.
func checkPlan(t *testing.T, prev, next *router.Table, m Migration) {
	t.Helper()
	primaries := make([]string, nb)
	for b := range primaries {
		primaries[b] = prev.OwnerOfBucket(uint16(b))
	}
	total := 0
	for i, task := range m.Tasks {
		if i > 0 && (m.Tasks[i-1].From > task.From || m.Tasks[i-1].From == task.From && m.Tasks[i-1].To >= task.To) {
			t.Fatalf("tasks out of order at %d", i)
		}
		if task.From == task.To {
			t.Fatalf("task %s → %s moves nothing", task.From, task.To)
		}
		n := 0
		for j, r := range task.Ranges {
			if r.Lo > r.Hi || j > 0 && int(task.Ranges[j-1].Hi)+1 >= int(r.Lo) {
				t.Fatalf("task %s → %s: ranges %v not ascending and separate", task.From, task.To, task.Ranges)
			}
			for b := int(r.Lo); b <= int(r.Hi); b++ {
				if primaries[b] != task.From {
					t.Fatalf("bucket %d moves from %s but is on %s", b, task.From, primaries[b])
				}
				primaries[b] = task.To
			}
			n += r.Len()
		}
		if n != task.Buckets {
			t.Fatalf("task %s → %s: %d buckets in ranges, Buckets = %d", task.From, task.To, n, task.Buckets)
		}
		total += n
	}
	if total != m.Moved {
		t.Fatalf("tasks hold %d buckets, Moved = %d", total, m.Moved)
	}
	for b, p := range primaries {
		if want := next.OwnerOfBucket(uint16(b)); p != want {
			t.Fatalf("after the plan bucket %d is on %s, want %s", b, p, want)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	tab := table(t, 1, []string{"a"}, func(int) int { return 0 })
	for _, c := range [][2]*router.Table{{nil, tab}, {tab, nil}, {nil, nil}} {
		if _, err := Plan(c[0], c[1]); !errors.Is(err, ErrNoTable) {
			t.Errorf("Plan(%v, %v) = %v, want ErrNoTable", c[0] != nil, c[1] != nil, err)
		}
	}
}

func ringTable(t testing.TB, epoch uint64, cfg ring.Config, nodes []ring.Node) (*ring.Ring, *router.Table) {
	t.Helper()
	r, err := ring.New(cfg, nodes)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := router.FromRing(epoch, r)
	if err != nil {
		t.Fatal(err)
	}
	return r, tab
}

func TestPlanRingChanges(t *testing.T) {
	cfg := ring.Config{VnodesPerNode: 128, RF: 1, LoadEpsilon: 0.09}
	var nodes []ring.Node
	for i := 0; i < 10; i++ {
		nodes = append(nodes, ring.Node{ID: fmt.Sprintf("n%d", i), Weight: 1 + float64(i%3)})
	}
	r, prev := ringTable(t, 1, cfg, nodes)
	added, err := r.WithNode(ring.Node{ID: "new", Weight: 2})
	if err != nil {
		t.Fatal(err)
	}
	next, err := router.FromRing(2, added)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Plan(prev, next)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, prev, next, m)
	toNew := 0
	for _, task := range m.Tasks {
		if task.To == "new" {
			toNew += task.Buckets
		}
		if task.From == "new" {
			t.Fatalf("a bucket moves away from the node being added")
		}
	}
	if toNew != next.Count("new") {
		t.Fatalf("%d buckets move to the new node, which owns %d", toNew, next.Count("new"))
	}
	if m.Moved < toNew || float64(m.Moved) > 1.5*float64(toNew) {
		t.Errorf("moved %d for a node that takes %d", m.Moved, toNew)
	}
	if !strings.Contains(m.String(), "→ new") {
		t.Errorf("String() = %q", m.String())
	}
}

// TestPlanFromRingPrev: with the next table computed from the previous
// one, adding a node moves buckets onto it and nowhere else (these bounds
// force no other move), and fewer than the table computed from scratch.
func TestPlanFromRingPrev(t *testing.T) {
	cfg := ring.Config{VnodesPerNode: 128, RF: 1, LoadEpsilon: 0.09}
	var nodes []ring.Node
	for i := 0; i < 10; i++ {
		nodes = append(nodes, ring.Node{ID: fmt.Sprintf("n%d", i), Weight: 1 + float64(i%3)})
	}
	r, prev := ringTable(t, 1, cfg, nodes)
	added, err := r.WithNode(ring.Node{ID: "new", Weight: 2})
	if err != nil {
		t.Fatal(err)
	}
	next, err := router.FromRingPrev(2, added, prev)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Plan(prev, next)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, prev, next, m)
	for _, task := range m.Tasks {
		if task.To != "new" {
			t.Errorf("%d buckets move %s → %s, not onto the added node", task.Buckets, task.From, task.To)
		}
	}
	scratch, err := router.FromRing(2, added)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Plan(prev, scratch)
	if err != nil {
		t.Fatal(err)
	}
	if m.Moved == 0 || m.Moved > ms.Moved {
		t.Errorf("FromRingPrev moves %d buckets, FromRing %d", m.Moved, ms.Moved)
	}
}

func TestPlanReplicaOnly(t *testing.T) {
	cfg := ring.Config{VnodesPerNode: 64, RF: 2, LoadEpsilon: 0.09}
	nodes := []ring.Node{{ID: "a", Weight: 1}, {ID: "b", Weight: 1}, {ID: "c", Weight: 1}}
	_, prev := ringTable(t, 1, cfg, nodes)
	_, next := ringTable(t, 2, cfg, append(nodes, ring.Node{ID: "d", Weight: 1}))
	m, err := Plan(prev, next)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, prev, next, m)
	want := 0
	for b := uint16(0); b < nb; b++ {
		if prev.OwnerOfBucket(b) == next.OwnerOfBucket(b) && !slices.Equal(prev.Owners(b), next.Owners(b)) {
			want++
		}
	}
	if m.ReplicaChanged != want || want == 0 {
		t.Errorf("ReplicaChanged = %d, want %d (> 0)", m.ReplicaChanged, want)
	}
}

func TestPlanDeterministic(t *testing.T) {
	// Many tasks: the order must come from sorting, not from map iteration.
	nodes := make([]string, 40)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("n%02d", i)
	}
	prev := table(t, 1, nodes, func(b int) int { return b % 40 })
	next := table(t, 2, nodes, func(b int) int { return (b*7 + b/100) % 40 })
	first, err := Plan(prev, next)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		again, _ := Plan(prev, next)
		if again.String() != first.String() || !slices.EqualFunc(again.Tasks, first.Tasks, func(a, b Task) bool {
			return a.From == b.From && a.To == b.To && slices.Equal(a.Ranges, b.Ranges)
		}) {
			t.Fatal("Plan is not deterministic")
		}
	}
	checkPlan(t, prev, next, first)
}

// BenchmarkPlan diffs two 64-node tables that differ by one added node.
func BenchmarkPlan(b *testing.B) {
	var nodes []ring.Node
	for i := 0; i < 64; i++ {
		nodes = append(nodes, ring.Node{ID: fmt.Sprintf("node-%02d", i), Weight: 0.25 * float64(1+(i*7)%16)})
	}
	cfg := ring.DefaultConfig()
	_, prev := ringTable(b, 1, cfg, nodes)
	_, next := ringTable(b, 2, cfg, append(nodes, ring.Node{ID: "node-new", Weight: 2}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Plan(prev, next); err != nil {
			b.Fatal(err)
		}
	}
}
