package engine

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// TestHotShardDoesNotStallOthers blocks shard 0's WAL sync, fills its
// bounded mailbox, and checks that (1) a caller that cannot queue gives up
// with its ctx error, and (2) writes to other shards keep completing.
func TestHotShardDoesNotStallOthers(t *testing.T) {
	mem := vfs.NewMem()
	block := make(chan struct{})
	blocking := make(chan struct{}, 1)
	var armed atomic.Bool
	inj := vfs.InjectorFunc(func(op vfs.Op, name string) error {
		if armed.Load() && op == vfs.OpSync && strings.Contains(name, "shard-000") && strings.HasSuffix(name, ".wal") {
			select {
			case blocking <- struct{}{}:
			default:
			}
			<-block
		}
		return nil
	})
	cfg := testConfig(vfs.WithErrors(mem, inj))
	cfg.MailboxSize = 2
	s := mustOpen(t, mem, "/db", cfg)
	defer func() { close(block); s.Close() }()
	armed.Store(true)
	ctx := context.Background()

	// Bucket 0 -> shard 0 (3 shards). The first write blocks in its sync;
	// the worker pipelines a few more groups and then stops taking from
	// its mailbox, which fills.
	const writesMax = 32
	stuck := make(chan error, writesMax)
	go func() { stuck <- s.Put(ctx, 0, []byte("first"), []byte("v")) }()
	<-blocking
	full := func() bool { return len(s.shards[0].mailbox) == cfg.MailboxSize }
	for i := 0; i < writesMax && !full(); i++ {
		go func() { stuck <- s.Put(ctx, 0, []byte{byte('a' + i)}, []byte("v")) }()
		for wait := 0; wait < 100 && !full(); wait++ {
			time.Sleep(time.Millisecond)
		}
	}
	if n := len(s.shards[0].mailbox); n != cfg.MailboxSize {
		t.Fatalf("shard 0 mailbox holds %d, want it full (%d)", n, cfg.MailboxSize)
	}
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := s.Put(tctx, 3, []byte("late"), []byte("v")) // bucket 3 -> shard 0
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write to a full mailbox: %v, want deadline exceeded", err)
	}
	// Other shards serve normally meanwhile.
	for b := uint16(1); b < 30; b++ {
		if b%3 == 0 {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.Put(wctx, b, []byte("k"), []byte("v"))
		cancel()
		if err != nil {
			t.Fatalf("write to bucket %d (shard %d) while shard 0 is stuck: %v", b, b%3, err)
		}
	}
	select {
	case err := <-stuck:
		t.Fatalf("a write to the stuck shard returned early: %v", err)
	default:
	}
}

// TestMaintenanceRewritesFragmentedFiles range-deletes most of the data in
// level-1 files; Maintain recounts their garbage, rewrites them and the
// space comes back, while the surviving keys stay readable.
func TestMaintenanceRewritesFragmentedFiles(t *testing.T) {
	mem := vfs.NewMem()
	cfg := testConfig(mem)
	cfg.Shards = 1
	s := mustOpen(t, mem, "/db", cfg)
	defer s.Close()
	ctx := context.Background()
	val := []byte(strings.Repeat("x", 500))
	for i := 0; i < 2000; i++ {
		b := uint16(i % 10)
		if err := s.Put(ctx, b, []byte{byte(i >> 8), byte(i)}, val); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	before := s.Stats().SegmentBytes
	if err := s.DeleteBucketRange(ctx, 0, 7); err != nil { // 80% of the data
		t.Fatal(err)
	}
	res, err := s.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if res.Scanned == 0 || res.Rewritten == 0 {
		t.Fatalf("maintenance scanned %d and rewrote %d files; want both > 0", res.Scanned, res.Rewritten)
	}
	if st.SegmentBytes > before/2 {
		t.Fatalf("segment bytes %d after rewrite, %d before: space not reclaimed", st.SegmentBytes, before)
	}
	for _, f := range st.Files {
		if f.LiveFrac < 1 {
			t.Fatalf("file %d still reports garbage after rewrite: %+v", f.Num, f)
		}
	}
	for i := 0; i < 2000; i++ {
		b := uint16(i % 10)
		_, err := s.Get(b, []byte{byte(i >> 8), byte(i)})
		if b <= 7 && !errors.Is(err, ErrNotFound) {
			t.Fatalf("range-deleted key %d in bucket %d: %v", i, b, err)
		}
		if b > 7 && err != nil {
			t.Fatalf("surviving key %d in bucket %d: %v", i, b, err)
		}
	}
	t.Logf("segment bytes %d -> %d; %+v", before, st.SegmentBytes, res)
}
