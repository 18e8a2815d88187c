package kv_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/kv/kvtest"
	"github.com/dbx-kv/dbx/router"
)

func openStore(t *testing.T, now func() time.Time) *engine.Store {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.Now = now
	cfg.Sync = engine.SyncNone
	cfg.Shards = 2
	cfg.MaintenanceInterval = 0
	st, err := engine.Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestEngine(t *testing.T) {
	kvtest.Run(t, func(t *testing.T, now func() time.Time) kvtest.Keyspace {
		return kv.New(openStore(t, now), now)
	})
}

// held reports whether key's stripe lock is held by someone else: taking
// it does not succeed within a moment.
func held(e *kv.Engine, key []byte) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	unlock, err := e.LockKeys(ctx, key)
	if err != nil {
		return errors.Is(err, context.DeadlineExceeded)
	}
	unlock()
	return false
}

// The engine's operations, by kind, on key k.
func ops(e *kv.Engine, k []byte) (reads, writes map[string]func(ctx context.Context) error) {
	reads = map[string]func(ctx context.Context) error{
		"GET":        func(ctx context.Context) error { _, _, err := e.Get(ctx, k); return err },
		"MGET":       func(ctx context.Context) error { _, err := e.MGet(ctx, k); return err },
		"EXISTS":     func(ctx context.Context) error { _, err := e.Exists(ctx, k); return err },
		"EXPIRETIME": func(ctx context.Context) error { _, err := e.ExpireTime(ctx, k); return err },
		"versions":   func(ctx context.Context) error { _, err := e.Versions(ctx, [][]byte{k}); return err },
		"items":      func(ctx context.Context) error { _, _, err := e.Items(ctx, [][]byte{k}); return err },
	}
	writes = map[string]func(ctx context.Context) error{
		"SET":    func(ctx context.Context) error { _, err := e.Set(ctx, k, []byte("v"), kv.SetOptions{}); return err },
		"MSET":   func(ctx context.Context) error { return e.MSet(ctx, kv.KV{Key: k, Value: []byte("v")}) },
		"INCRBY": func(ctx context.Context) error { _, err := e.IncrBy(ctx, k, 1); return err },
		"PEXPIREAT": func(ctx context.Context) error {
			_, err := e.Expire(ctx, k, time.Now().Add(time.Hour).UnixMilli())
			return err
		},
		"PERSIST": func(ctx context.Context) error { _, err := e.Persist(ctx, k); return err },
		"DEL":     func(ctx context.Context) error { _, err := e.Del(ctx, k); return err },
		"exec": func(ctx context.Context) error {
			return e.Exec(ctx, &kv.TxRequest{Keys: [][]byte{k}}, func(map[string]kv.TxItem) ([]kv.TxWrite, error) {
				return []kv.TxWrite{{Key: k, Value: []byte("v")}}, nil
			})
		},
	}
	return reads, writes
}

// TestEngineRechecksAfterRead: every read runs the recheck after reading
// and fails with its error, so a read that began just before its key left
// the node is not answered with what the node held.
func TestEngineRechecksAfterRead(t *testing.T) {
	moved := errors.New("moved away")
	var gone bool
	e := kv.New(openStore(t, time.Now), time.Now,
		kv.WithGuard(func(context.Context, ...[]byte) error { return nil }), // the check before passes
		kv.WithRecheck(func(...[]byte) error {
			if gone {
				return moved
			}
			return nil
		}))
	ctx := context.Background()
	k := []byte("k")
	if _, err := e.Set(ctx, k, []byte("v"), kv.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	reads, _ := ops(e, k)
	for name, read := range reads {
		gone = false
		if err := read(ctx); err != nil && !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("%s while owned: %v", name, err)
		}
		gone = true
		if err := read(ctx); !errors.Is(err, moved) {
			t.Fatalf("%s after the key left: %v, want the recheck's error", name, err)
		}
	}
}

// TestEngineGuard: every operation calls the guard first and fails with its
// error, writing nothing; writes call it holding the key's stripe lock.
func TestEngineGuard(t *testing.T) {
	var (
		e       *kv.Engine
		refuse  error
		calls   int
		locked  bool
		applied int
	)
	k := []byte("k")
	e = kv.New(openStore(t, time.Now), time.Now,
		kv.WithGuard(func(_ context.Context, keys ...[]byte) error {
			calls++
			locked = held(e, k)
			return refuse
		}),
		kv.WithOnApplied(func(uint16, []byte) { applied++ }))
	ctx := context.Background()
	if _, err := e.Set(ctx, k, []byte("1"), kv.SetOptions{}); err != nil {
		t.Fatal(err)
	}
	reads, writes := ops(e, k)
	for name, op := range reads {
		calls, refuse = 0, nil
		if err := op(ctx); err != nil || calls != 1 || locked {
			t.Errorf("%s: err %v, guard called %d times, under the stripe lock: %v; want once, without the lock", name, err, calls, locked)
		}
	}
	for name, op := range writes {
		calls, refuse = 0, nil
		if err := op(ctx); err != nil || calls != 1 || !locked {
			t.Errorf("%s: err %v, guard called %d times, under the stripe lock: %v; want once, under it", name, err, calls, locked)
		}
		if _, err := e.Set(ctx, k, []byte("1"), kv.SetOptions{}); err != nil { // DEL removed it
			t.Fatal(err)
		}
	}
	refuse = errors.New("not here")
	for name, op := range writes {
		applied = 0
		if err := op(ctx); !errors.Is(err, refuse) || applied != 0 {
			t.Errorf("%s refused: err %v, %d keys applied; want the guard's error and none", name, err, applied)
		}
	}
	for name, op := range reads {
		if err := op(ctx); !errors.Is(err, refuse) {
			t.Errorf("%s refused: err %v, want the guard's error", name, err)
		}
	}
	refuse = nil
	if v, _, err := e.Get(ctx, k); string(v) != "1" || err != nil {
		t.Errorf("k after refused writes: %q %v, want \"1\"", v, err)
	}
}

// TestEngineOnApplied: every write reports each key it applied, once,
// while it still holds the key's stripe lock.
func TestEngineOnApplied(t *testing.T) {
	var (
		e   *kv.Engine
		got []string
		bad []string
	)
	e = kv.New(openStore(t, time.Now), time.Now, kv.WithOnApplied(func(b uint16, key []byte) {
		if b != router.Bucket(key) || !held(e, key) {
			bad = append(bad, string(key))
		}
		got = append(got, string(key))
	}))
	ctx := context.Background()
	a, b := []byte("a"), []byte("b")
	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"SET", func() error { _, err := e.Set(ctx, a, []byte("1"), kv.SetOptions{}); return err }, []string{"a"}},
		{"SET NX existing", func() error { _, err := e.Set(ctx, a, []byte("1"), kv.SetOptions{NX: true}); return err }, nil},
		{"MSET", func() error {
			return e.MSet(ctx, kv.KV{Key: a, Value: []byte("2")}, kv.KV{Key: b, Value: []byte("3")}, kv.KV{Key: a, Value: []byte("4")})
		}, []string{"a", "b"}},
		{"INCRBY", func() error { _, err := e.IncrBy(ctx, b, 1); return err }, []string{"b"}},
		{"PEXPIREAT past", func() error { _, err := e.Expire(ctx, b, 1); return err }, []string{"b"}},
		{"DEL", func() error { _, err := e.Del(ctx, a, b); return err }, []string{"a"}},
		{"exec", func() error {
			return e.Exec(ctx, &kv.TxRequest{Keys: [][]byte{a, b}}, func(map[string]kv.TxItem) ([]kv.TxWrite, error) {
				return []kv.TxWrite{{Key: a, Value: []byte("5")}, {Key: b, Delete: true}}, nil
			})
		}, []string{"a", "b"}},
	}
	for _, s := range steps {
		got, bad = nil, nil
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		slices.Sort(got)
		if !slices.Equal(got, s.want) || bad != nil {
			t.Errorf("%s reported %q (without its stripe lock or with a wrong bucket: %q), want %q", s.name, got, bad, s.want)
		}
	}
}

// TestEngineBarrier: Barrier waits for a write that holds its stripe lock,
// and returns only after that write has been applied and reported.
func TestEngineBarrier(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var applied []string
	k := []byte("k")
	e := kv.New(openStore(t, time.Now), time.Now,
		kv.WithGuard(func(ctx context.Context, keys ...[]byte) error {
			if string(keys[0]) == "k" {
				close(entered)
				<-release
			}
			return nil
		}),
		kv.WithOnApplied(func(_ uint16, key []byte) {
			mu.Lock()
			applied = append(applied, string(key))
			mu.Unlock()
		}))
	done := make(chan error, 1)
	go func() {
		_, err := e.Set(context.Background(), k, []byte("v"), kv.SetOptions{})
		done <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	err := e.Barrier(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Barrier while a write holds its stripe: %v, want it to wait (DeadlineExceeded)", err)
	}
	close(release)
	if err := e.Barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(applied)
	mu.Unlock()
	if !slices.Equal(got, []string{"k"}) {
		t.Errorf("after Barrier the write in flight reported %q, want [k]", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
