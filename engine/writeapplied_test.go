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

// TestWriteAppliedVisibility holds the WAL sync: a write returned by
// WriteApplied is seen by GetLatestItem but not by Get or a snapshot until
// it is durable; wait returns once the sync is released, and then Get sees it.
func TestWriteAppliedVisibility(t *testing.T) {
	mem := vfs.NewMem()
	var hold atomic.Bool
	release := make(chan struct{})
	inj := vfs.InjectorFunc(func(op vfs.Op, name string) error {
		if hold.Load() && op == vfs.OpSync && strings.HasSuffix(name, ".wal") {
			<-release
		}
		return nil
	})
	s := mustOpen(t, mem, "/db", testConfig(vfs.WithErrors(mem, inj)))
	released := false
	releaseSync := func() {
		if !released {
			released = true
			hold.Store(false)
			close(release)
		}
	}
	defer func() { releaseSync(); s.Close() }() // a failed assertion must not leave Close waiting on the held sync
	ctx := context.Background()
	if err := s.Put(ctx, 4, []byte("k"), []byte("old")); err != nil {
		t.Fatal(err)
	}
	hold.Store(true)
	var b Batch
	b.Set(4, []byte("k"), []byte("new"))
	wait, err := s.WriteApplied(ctx, &b)
	if err != nil {
		t.Fatal(err)
	}
	if it, err := s.GetLatestItem(4, []byte("k")); err != nil || string(it.Value) != "new" {
		t.Fatalf("GetLatestItem before durable = %q, %v; want new", it.Value, err)
	}
	if v, err := s.Get(4, []byte("k")); err != nil || string(v) != "old" {
		t.Fatalf("Get before durable = %q, %v; want old (not yet visible)", v, err)
	}
	sn, _ := s.Snapshot()
	if v, _ := sn.Get(4, []byte("k")); string(v) != "old" {
		t.Fatalf("snapshot before durable sees %q", v)
	}
	sn.Close()
	// WaitVisible waits for the applied write to become visible.
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	if err := s.WaitVisible(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitVisible with the sync held: %v, want a deadline error", err)
	}
	cancel()
	visible := make(chan error, 1)
	go func() { visible <- s.WaitVisible(ctx) }()
	waited := make(chan error, 1)
	go func() { waited <- wait() }()
	select {
	case err := <-waited:
		t.Fatalf("wait returned before the sync: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	releaseSync()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if err := <-visible; err != nil {
		t.Fatalf("WaitVisible after the sync: %v", err)
	}
	if v, err := s.Get(4, []byte("k")); err != nil || string(v) != "new" {
		t.Fatalf("Get after durable = %q, %v", v, err)
	}
	if _, err := s.GetLatestItem(5, []byte("absent")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetLatestItem of a missing key: %v", err)
	}
}
