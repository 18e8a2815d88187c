package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/engine/vfs"
)

func testConfig(fs vfs.FS) Config {
	c := DefaultConfig()
	c.FS = fs
	c.Shards = 3
	c.MemtableBytes = 64 << 10
	c.TargetFileBytes = 64 << 10
	c.L0CompactionTrigger = 3
	c.L0StopWrites = 8
	c.MaintenanceInterval = 0
	c.BlockCacheBytes = 1 << 20
	return c
}

func mustOpen(t testing.TB, fs vfs.FS, dir string, cfg Config) *Store {
	t.Helper()
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestBasicPutGetDelete(t *testing.T) {
	fs := vfs.NewMem()
	s := mustOpen(t, fs, "/db", testConfig(fs))
	ctx := context.Background()
	if err := s.Put(ctx, 7, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(7, []byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("get = %q, %v", v, err)
	}
	if _, err := s.Get(8, []byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other bucket: %v", err)
	}
	if err := s.Delete(ctx, 7, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(7, []byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	// Survives reopen, through WAL replay and through flushed segments.
	for i := 0; i < 2000; i++ {
		if err := s.Put(ctx, uint16(i%50), fmt.Appendf(nil, "k%05d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, fs, "/db", testConfig(fs))
	defer s.Close()
	for i := 0; i < 2000; i++ {
		v, err := s.Get(uint16(i%50), fmt.Appendf(nil, "k%05d", i))
		if err != nil || string(v) != fmt.Sprintf("v%d", i) {
			t.Fatalf("key %d after reopen: %q %v", i, v, err)
		}
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	it, err := s.NewIter(0, 49)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var lastB uint16
	var lastK string
	for it.First(); it.Valid(); it.Next() {
		if n > 0 && (it.Bucket() < lastB || (it.Bucket() == lastB && string(it.Key()) <= lastK)) {
			t.Fatalf("out of order: %d/%s after %d/%s", it.Bucket(), it.Key(), lastB, lastK)
		}
		lastB, lastK = it.Bucket(), string(it.Key())
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if n != 2000 {
		t.Fatalf("iterated %d keys, want 2000", n)
	}
}

func TestBadInput(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	s := mustOpen(t, fs, "/db", cfg)
	defer s.Close()
	ctx := context.Background()
	big := make([]byte, cfg.KeyBytesMax+1)
	if err := s.Put(ctx, 1, big, nil); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversize key: %v", err)
	}
	if err := s.Put(ctx, 1, []byte("k"), make([]byte, cfg.ValueBytesMax+1)); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("oversize value: %v", err)
	}
	if err := s.Put(ctx, 1, nil, []byte("v")); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("empty key: %v", err)
	}
	// Still serving.
	if err := s.Put(ctx, 1, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	s := mustOpen(t, fs, "/db", cfg)
	if _, err := Open("/db", cfg); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	fs.MkdirAll("/other", 0o755)
	f, _ := fs.Create("/other/hello.txt")
	f.Close()
	if _, err := Open("/other", cfg); !errors.Is(err, ErrNotStore) {
		t.Fatalf("not a store: %v", err)
	}
	bad := cfg
	bad.MemtableBytes = 1
	bad.L0StopWrites = 1
	err := bad.Validate()
	if !errors.Is(err, ErrInvalidConfig) || !contains(err.Error(), "MemtableBytes") || !contains(err.Error(), "L0StopWrites") {
		t.Fatalf("validate should list every problem: %v", err)
	}
	other := cfg
	other.Shards = 5
	if _, err := Open("/db", other); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("shard count change: %v", err)
	}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}
func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestExpiry(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	now := time.Unix(1000, 0)
	cfg.Now = func() time.Time { return now }
	s := mustOpen(t, fs, "/db", cfg)
	defer s.Close()
	ctx := context.Background()
	var b Batch
	b.Set(1, []byte("old"), []byte("v1"))
	if err := s.Write(ctx, &b); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	b.SetWithExpiry(1, []byte("old"), []byte("v2"), now.Add(time.Second).UnixMilli())
	if err := s.Write(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if it, err := s.GetItem(1, []byte("old")); err != nil || string(it.Value) != "v2" || it.ExpireAt != now.Add(time.Second).UnixMilli() {
		t.Fatalf("before expiry: %+v %v", it, err)
	}
	now = now.Add(2 * time.Second)
	if _, err := s.Get(1, []byte("old")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired key visible: %v", err)
	}
	// Compaction purges it without resurrecting v1.
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(1, []byte("old")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after compaction: %v", err)
	}
	if st := s.Stats(); st.Keys != 0 {
		t.Fatalf("expired entry not purged: %d entries remain", st.Keys)
	}
}
