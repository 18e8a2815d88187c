package engine

import (
	"context"
	"testing"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// TestItemSeqIsAVersion: Item.Seq is non-zero, grows with every write of a
// key, and survives flush, compaction and reopening (it is what WATCH
// compares).
func TestItemSeqIsAVersion(t *testing.T) {
	mem := vfs.NewMem()
	ctx := context.Background()
	s := mustOpen(t, mem, "/db", testConfig(mem))
	seqOf := func(s *Store, key string) uint64 {
		t.Helper()
		it, err := s.GetItem(7, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		lit, err := s.GetLatestItem(7, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		if it.Seq != lit.Seq {
			t.Fatalf("GetItem seq %d != GetLatestItem seq %d", it.Seq, lit.Seq)
		}
		return it.Seq
	}
	if err := s.Put(ctx, 7, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	v1 := seqOf(s, "a")
	if v1 == 0 {
		t.Fatal("Seq of a stored key is 0")
	}
	if err := s.Put(ctx, 7, []byte("b"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := seqOf(s, "a"); got != v1 {
		t.Fatalf("writing another key changed a's Seq: %d -> %d", v1, got)
	}
	if err := s.Put(ctx, 7, []byte("a"), []byte("1")); err != nil { // same value: still a new version
		t.Fatal(err)
	}
	v2 := seqOf(s, "a")
	if v2 <= v1 {
		t.Fatalf("rewrite of a: Seq %d, want > %d", v2, v1)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if got := seqOf(s, "a"); got != v2 {
		t.Fatalf("after flush+compaction Seq = %d, want %d", got, v2)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, mem, "/db", testConfig(mem))
	defer s.Close()
	if got := seqOf(s, "a"); got != v2 {
		t.Fatalf("after reopen Seq = %d, want %d", got, v2)
	}
	if err := s.Put(ctx, 7, []byte("a"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if got := seqOf(s, "a"); got <= v2 {
		t.Fatalf("write after reopen: Seq %d, want > %d", got, v2)
	}
}
