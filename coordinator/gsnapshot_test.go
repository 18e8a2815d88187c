package coordinator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dbx-kv/dbx/router"
)

// testManifest splits the buckets between two nodes.
func testManifest(id string) SnapshotManifest {
	sum := strings.Repeat("ab", 32)
	return SnapshotManifest{ID: id, Buckets: router.NumBuckets, Epoch: 3, CreatedMs: 1700000000000, Parts: []SnapshotPart{
		{Node: "a", Ranges: []BucketRange{{0, 8191}}, Files: []SnapshotFile{{Name: "STORE", Bytes: 10, SHA256: sum}, {Name: "shard-000/000001.seg", Bytes: 100, SHA256: sum}}},
		{Node: "b", Ranges: []BucketRange{{8192, router.NumBuckets - 1}}, Files: []SnapshotFile{{Name: "STORE", Bytes: 10, SHA256: sum}}},
	}}
}

func TestStateSnapshots(t *testing.T) {
	st := newStepper(t)
	st.apply(AddSnapshot{Manifest: testManifest("s1")}, nil)
	st.apply(AddSnapshot{Manifest: testManifest("s1")}, ErrBadCommand) // taken
	m, ok := st.s.Snapshot("s1")
	if !ok || m.Bytes() != 120 || m.Owner(8191) != "a" || m.Owner(8192) != "b" {
		t.Fatalf("snapshot s1: %v %+v", ok, m)
	}

	bad := map[string]func(*SnapshotManifest){
		"empty id":        func(m *SnapshotManifest) { m.ID = "" },
		"id with slash":   func(m *SnapshotManifest) { m.ID = "a/b" },
		"dot id":          func(m *SnapshotManifest) { m.ID = ".." },
		"buckets":         func(m *SnapshotManifest) { m.Buckets = 100 },
		"no parts":        func(m *SnapshotManifest) { m.Parts = nil },
		"gap":             func(m *SnapshotManifest) { m.Parts[1].Ranges[0].From = 8193 },
		"overlap":         func(m *SnapshotManifest) { m.Parts[1].Ranges[0].From = 8191 },
		"out of range":    func(m *SnapshotManifest) { m.Parts[1].Ranges[0].To = router.NumBuckets },
		"repeated node":   func(m *SnapshotManifest) { m.Parts[1].Node = "a" },
		"escaping file":   func(m *SnapshotManifest) { m.Parts[0].Files[1].Name = "../x" },
		"absolute file":   func(m *SnapshotManifest) { m.Parts[0].Files[1].Name = "/etc/passwd" },
		"repeated file":   func(m *SnapshotManifest) { m.Parts[0].Files[1].Name = "STORE" },
		"bad checksum":    func(m *SnapshotManifest) { m.Parts[0].Files[0].SHA256 = "xyz" },
		"negative length": func(m *SnapshotManifest) { m.Parts[0].Files[0].Bytes = -1 },
	}
	for name, f := range bad {
		m := testManifest("s2")
		f(&m)
		st.apply(AddSnapshot{Manifest: m}, ErrBadCommand)
		if _, ok := st.s.Snapshot("s2"); ok {
			t.Fatalf("%s: listed", name)
		}
	}

	// Retention: keep the newest 5 of 12.
	for i := 2; i <= 12; i++ {
		st.apply(AddSnapshot{Manifest: testManifest(fmt.Sprintf("s%d", i))}, nil)
	}
	drop := st.s.SnapshotsBeyond(5)
	if len(drop) != 7 || drop[0] != "s1" || drop[6] != "s7" {
		t.Fatalf("beyond 5: %v", drop)
	}
	before := st.s
	st.apply(DropSnapshots{IDs: drop}, nil)
	if len(before.Snapshots()) != 12 {
		t.Fatal("DropSnapshots modified the previous state")
	}
	got := st.s.Snapshots()
	if len(got) != 5 || got[0].ID != "s8" || got[4].ID != "s12" {
		t.Fatalf("after retention: %d snapshots, first %s", len(got), got[0].ID)
	}
	st.apply(DropSnapshots{IDs: []string{"s1", "nope"}}, nil) // repeat: harmless
	if len(st.s.Snapshots()) != 5 {
		t.Fatal("repeated drop changed the list")
	}

	// The manifests survive the state encoding, byte for byte.
	data, err := st.s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseState(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Digest() != st.s.Digest() || len(back.Snapshots()) != 5 || back.Snapshots()[4].Parts[0].Files[1].Name != "shard-000/000001.seg" {
		t.Fatal("snapshots not restored from the state encoding")
	}
}

func TestSnapshotsLimit(t *testing.T) {
	st := newStepper(t)
	for i := range MaxSnapshots {
		st.apply(AddSnapshot{Manifest: testManifest(fmt.Sprintf("s%d", i))}, nil)
	}
	st.apply(AddSnapshot{Manifest: testManifest("one-more")}, ErrBadCommand)
}

func TestRanges(t *testing.T) {
	got := Ranges([]uint16{1, 2, 3, 7, 9, 10})
	want := []BucketRange{{1, 3}, {7, 7}, {9, 10}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Ranges: %v, want %v", got, want)
	}
}
