package router

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dbx-kv/dbx/ring"
)

// testRing builds a small ring: fast, and enough for table mechanics.
func testRing(t testing.TB, rf int, weights ...float64) *ring.Ring {
	t.Helper()
	nodes := make([]ring.Node, len(weights))
	for i, w := range weights {
		nodes[i] = ring.Node{ID: fmt.Sprintf("node-%d", i+1), Weight: w}
	}
	r, err := ring.New(ring.Config{VnodesPerNode: 64, RF: rf, LoadEpsilon: 0.09}, nodes)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testTable(t testing.TB, epoch uint64, rf int, weights ...float64) *Table {
	t.Helper()
	tab, err := FromRing(epoch, testRing(t, rf, weights...))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// assignment returns a valid assignment with owners b mod len(nodes), then
// the next ones.
func assignment(nodes []string, rf int) ring.Assignment {
	owners := make([]uint16, NumBuckets*rf)
	for b := 0; b < NumBuckets; b++ {
		for k := 0; k < rf; k++ {
			owners[b*rf+k] = uint16((b + k) % len(nodes))
		}
	}
	return ring.Assignment{Nodes: nodes, RF: rf, Owners: owners}
}

func TestNewTableValidation(t *testing.T) {
	ok := assignment([]string{"a", "b", "c"}, 2)
	tests := []struct {
		name string
		a    func() ring.Assignment
		want string
	}{
		{"no nodes", func() ring.Assignment { return ring.Assignment{RF: 1, Owners: make([]uint16, NumBuckets)} }, "0 nodes"},
		{"unsorted", func() ring.Assignment { return assignment([]string{"b", "a"}, 1) }, "not strictly ascending"},
		{"duplicate", func() ring.Assignment { return assignment([]string{"a", "a"}, 1) }, "not strictly ascending"},
		{"empty id", func() ring.Assignment { return assignment([]string{"", "a"}, 1) }, `node id ""`},
		{"long id", func() ring.Assignment { return assignment([]string{strings.Repeat("x", 256)}, 1) }, "256 bytes"},
		{"rf 0", func() ring.Assignment { a := assignment([]string{"a"}, 1); a.RF = 0; return a }, "RF 0"},
		{"rf above nodes", func() ring.Assignment { a := assignment([]string{"a", "b"}, 2); a.RF = 3; return a }, "RF 3"},
		{"short owners", func() ring.Assignment { a := assignment([]string{"a"}, 1); a.Owners = a.Owners[:10]; return a }, "10 owner entries"},
		{"owner out of range", func() ring.Assignment {
			a := assignment([]string{"a", "b"}, 1)
			a.Owners[77] = 2
			return a
		}, "bucket 77 owner 0 is node index 2 of 2"},
		{"owner twice", func() ring.Assignment {
			a := assignment([]string{"a", "b", "c"}, 2)
			a.Owners[2*9+1] = a.Owners[2*9]
			return a
		}, "bucket 9 lists node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := NewTable(1, tt.a())
			if !errors.Is(err, ErrBadTable) {
				t.Fatalf("NewTable() = %v, %v; want ErrBadTable", tab, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewTable() = %q, missing %q", err, tt.want)
			}
		})
	}
	if _, err := NewTable(1, ok); err != nil {
		t.Fatalf("valid assignment: %v", err)
	}
}

func TestTableLookups(t *testing.T) {
	for _, rf := range []int{1, 3} {
		t.Run(fmt.Sprintf("rf=%d", rf), func(t *testing.T) {
			r := testRing(t, rf, 1, 2, 0.5, 1)
			tab, err := FromRing(7, r)
			if err != nil {
				t.Fatal(err)
			}
			a := r.Assign()
			if tab.Epoch() != 7 || tab.RF() != rf || !slices.Equal(tab.Nodes(), a.Nodes) {
				t.Fatalf("epoch %d rf %d nodes %v", tab.Epoch(), tab.RF(), tab.Nodes())
			}
			perNode := map[string][]uint16{}
			for b := 0; b < NumBuckets; b++ {
				owners := tab.Owners(uint16(b))
				if len(owners) != rf {
					t.Fatalf("bucket %d: %d owners", b, len(owners))
				}
				for k, o := range owners {
					if want := a.Nodes[a.Owners[b*rf+k]]; o != want {
						t.Fatalf("bucket %d owner %d = %s, want %s", b, k, o, want)
					}
				}
				if tab.OwnerOfBucket(uint16(b)) != owners[0] || tab.OwnerOfBucket(uint16(b)) != r.Primary(b) {
					t.Fatalf("bucket %d: OwnerOfBucket disagrees", b)
				}
				perNode[owners[0]] = append(perNode[owners[0]], uint16(b))
			}
			total := 0
			for _, nc := range tab.Counts() {
				if got := tab.BucketsOf(nc.ID); !slices.Equal(got, perNode[nc.ID]) {
					t.Errorf("BucketsOf(%s) disagrees with Owners", nc.ID)
				}
				if tab.Count(nc.ID) != nc.Buckets || nc.Buckets != len(perNode[nc.ID]) {
					t.Errorf("Count(%s) = %d, Counts says %d, Owners says %d", nc.ID, tab.Count(nc.ID), nc.Buckets, len(perNode[nc.ID]))
				}
				total += nc.Buckets
			}
			if total != NumBuckets {
				t.Errorf("counts sum to %d", total)
			}
			if tab.BucketsOf("nope") != nil || tab.Count("nope") != 0 {
				t.Error("unknown node owns buckets")
			}
			for _, key := range []string{"foo", "{user1000}.following", "", "0123456789abcdef"} {
				want := tab.OwnerOfBucket(BucketString(key))
				if tab.Owner([]byte(key)) != want || tab.OwnerString(key) != want {
					t.Errorf("Owner(%q) disagrees with OwnerOfBucket", key)
				}
			}
			if !strings.Contains(tab.String(), "epoch 7") {
				t.Errorf("String() = %q", tab.String())
			}
		})
	}
}

func TestTableIsImmutable(t *testing.T) {
	a := assignment([]string{"a", "b"}, 1)
	tab, err := NewTable(1, a)
	if err != nil {
		t.Fatal(err)
	}
	d := tab.Digest()
	a.Nodes[0] = "zzz"
	a.Owners[0] = 1
	nodes := tab.Nodes()
	nodes[0] = "changed"
	if tab.OwnerOfBucket(0) != "a" || tab.Nodes()[0] != "a" || tab.Digest() != d {
		t.Fatal("table changed through its input or Nodes()")
	}
}

func TestLookupAllocs(t *testing.T) {
	tab := testTable(t, 1, 3, 1, 1, 1)
	key := []byte("0123456789abcdef")
	skey := "0123456789abcdef"
	for name, f := range map[string]func(){
		"Owner":         func() { _ = tab.Owner(key) },
		"OwnerString":   func() { _ = tab.OwnerString(skey) },
		"OwnerOfBucket": func() { _ = tab.OwnerOfBucket(123) },
		"Owners":        func() { _ = tab.Owners(123) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}
