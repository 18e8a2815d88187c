package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// TestHotShardDoesNotStallOthers keeps shard 0's worker busy (the test
// holds the lock its next apply needs), so shard 0's bounded mailbox fills.
// Then (1) a caller that cannot queue gives up with its ctx error, (2)
// writes to the other shards keep completing, and (3) once shard 0 is
// released every queued write completes.
func TestHotShardDoesNotStallOthers(t *testing.T) {
	mem := vfs.NewMem()
	cfg := testConfig(mem)
	cfg.MailboxSize = 2
	s := mustOpen(t, mem, "/db", cfg)
	defer s.Close()
	ctx := context.Background()
	hot := s.shards[0]

	hot.manifestMu.Lock() // a range delete on shard 0 will wait for it in the worker
	released := false
	release := func() {
		if !released {
			released = true
			hot.manifestMu.Unlock()
		}
	}
	defer release()
	const writesMax = 32
	results := make(chan error, writesMax+1)
	groups := hot.stats.groups.Load()
	go func() { results <- s.DeleteBucketRange(ctx, 0, 0) }() // bucket 0 -> shard 0 only (3 shards)
	for wait := 0; wait < 2000 && hot.stats.groups.Load() == groups; wait++ {
		time.Sleep(time.Millisecond) // until the worker has taken the range delete
	}
	if hot.stats.groups.Load() == groups {
		t.Fatal("shard 0's worker never took the range delete")
	}
	full := func() bool { return len(hot.mailbox) == cfg.MailboxSize }
	started := 1
	for i := 0; i < writesMax && !full(); i++ {
		started++
		go func() { results <- s.Put(ctx, 3, []byte{byte('a' + i)}, []byte("v")) }() // bucket 3 -> shard 0
		for wait := 0; wait < 100 && !full(); wait++ {
			time.Sleep(time.Millisecond)
		}
	}
	if !full() {
		t.Fatalf("shard 0 mailbox holds %d, want it full (%d)", len(hot.mailbox), cfg.MailboxSize)
	}
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := s.Put(tctx, 6, []byte("late"), []byte("v")) // bucket 6 -> shard 0
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
			t.Fatalf("write to bucket %d (shard %d) while shard 0 is busy: %v", b, b%3, err)
		}
	}
	select {
	case err := <-results:
		t.Fatalf("a write to the busy shard returned early: %v", err)
	default:
	}
	release()
	for i := 0; i < started; i++ {
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("queued write on shard 0 failed after release: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("queued writes on shard 0 did not finish after release (%d of %d)", i, started)
		}
	}
}

// TestMaintenanceRewritesFragmentedFiles range-deletes most of the data in
// level-1 files; Maintain recounts their garbage, rewrites them and the
// space comes back, while the surviving keys stay readable.
func TestMaintenanceRewritesFragmentedFiles(t *testing.T) {
	mem := vfs.NewMem()
	cfg := testConfig(mem)
	cfg.Shards = 1
	// One level-1 file holds all ~1 MB, so it straddles the deleted
	// buckets' edge: with 64 KiB files a file boundary could fall exactly
	// on that edge, the range delete then dropped whole files and left
	// nothing for maintenance to find (a CI run saw "scanned 0").
	cfg.TargetFileBytes = 4 << 20
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
