package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/engine"
)

// backends returns the Backend implementations under test, each with the
// clock it uses, so one conformance suite runs on all of them.
func backends(t *testing.T) map[string]func(t *testing.T) (Backend, *clock) {
	return map[string]func(t *testing.T) (Backend, *clock){
		"mem": func(t *testing.T) (Backend, *clock) {
			clk := newClock()
			return NewMemBackend(clk.Now), clk
		},
		"engine": func(t *testing.T) (Backend, *clock) {
			clk := newClock()
			st := openEngine(t, clk)
			return NewEngineBackend(st, clk.Now), clk
		},
	}
}

func openEngine(t *testing.T, clk *clock) *engine.Store {
	t.Helper()
	cfg := engine.DefaultConfig()
	cfg.Now = clk.Now
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

func TestBackendConformance(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b, clk := mk(t)
			ctx := context.Background()
			now := clk.Now().UnixMilli()
			k := []byte("k")
			check := func(what string, got, want any) {
				t.Helper()
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: got %v, want %v", what, got, want)
				}
			}
			_, _, err := b.Get(ctx, k)
			check("get missing", errors.Is(err, ErrNotFound), true)
			r, err := b.Set(ctx, k, []byte("v1"), SetOptions{XX: true})
			check("set xx missing", fmt.Sprint(r.Applied, err), "false <nil>")
			r, _ = b.Set(ctx, k, []byte("v1"), SetOptions{NX: true, ExpireAtMs: now + 1000})
			check("set nx", r.Applied, true)
			v, at, _ := b.Get(ctx, k)
			check("get", string(v)+" "+strconv.FormatInt(at-now, 10), "v1 1000")
			r, _ = b.Set(ctx, k, []byte("v2"), SetOptions{NX: true, Get: true})
			check("set nx existing", fmt.Sprintf("%v %s %v", r.Applied, r.Old, r.OldFound), "false v1 true")
			r, _ = b.Set(ctx, k, []byte("v2"), SetOptions{XX: true, KeepTTL: true})
			check("set xx keepttl", r.Applied, true)
			at, _ = b.ExpireTime(ctx, k)
			check("keepttl", at-now, 1000)
			clk.Advance(999 * time.Millisecond)
			n, _ := b.Exists(ctx, k, k)
			check("exists twice", n, 2)
			clk.Advance(time.Millisecond)
			n, _ = b.Exists(ctx, k)
			check("expired at once", n, 0)
			_, err = b.ExpireTime(ctx, k)
			check("expiretime expired", errors.Is(err, ErrNotFound), true)
			sz, _ := b.DBSize(ctx)
			check("dbsize", sz, 0)

			now = clk.Now().UnixMilli()
			b.Set(ctx, k, []byte("10"), SetOptions{ExpireAtMs: now + 5000})
			i, err := b.IncrBy(ctx, k, 5)
			check("incr", fmt.Sprint(i, err), "15 <nil>")
			at, _ = b.ExpireTime(ctx, k)
			check("incr keeps ttl", at-now, 5000)
			ok, _ := b.Persist(ctx, k)
			check("persist", ok, true)
			ok, _ = b.Persist(ctx, k)
			check("persist again", ok, false)
			ok, _ = b.Expire(ctx, k, now+100)
			check("expire", ok, true)
			ok, _ = b.Expire(ctx, []byte("nope"), now+100)
			check("expire missing", ok, false)
			ok, _ = b.Expire(ctx, k, now)
			check("expire past", ok, true)
			n, _ = b.Exists(ctx, k)
			check("expire past deletes", n, 0)
			i, err = b.IncrBy(ctx, []byte("ctr"), -3)
			check("incr new", fmt.Sprint(i, err), "-3 <nil>")
			b.Set(ctx, []byte("s"), []byte("abc"), SetOptions{})
			_, err = b.IncrBy(ctx, []byte("s"), 1)
			check("incr non-int", errors.Is(err, ErrNotInteger), true)
			b.Set(ctx, []byte("e"), []byte(""), SetOptions{})
			_, err = b.IncrBy(ctx, []byte("e"), 1)
			check("incr empty", errors.Is(err, ErrNotInteger), true)
			b.Set(ctx, []byte("m"), []byte("9223372036854775807"), SetOptions{})
			_, err = b.IncrBy(ctx, []byte("m"), 1)
			check("incr overflow", errors.Is(err, ErrOverflow), true)

			err = b.MSet(ctx, KV{[]byte("a"), []byte("1")}, KV{[]byte("b"), []byte("2")}, KV{[]byte("a"), []byte("3")})
			check("mset", err, nil)
			vs, _ := b.MGet(ctx, []byte("a"), []byte("x"), []byte("b"), []byte("e"))
			check("mget", fmt.Sprintf("%q", vs), `["3" "" "2" ""]`)
			check("mget nil vs empty", fmt.Sprint(vs[1] == nil, vs[3] == nil), "true false")
			n, _ = b.Del(ctx, []byte("a"), []byte("a"), []byte("x"), []byte("b"))
			check("del", n, 2)

			// SCAN visits every key exactly once across calls.
			want := map[string]bool{}
			for i := range 300 {
				key := "scan:" + strconv.Itoa(i)
				want[key] = true
				b.Set(ctx, []byte(key), []byte("v"), SetOptions{})
			}
			got := map[string]int{}
			var cursor uint64
			for calls := 0; ; calls++ {
				if calls > 1000 {
					t.Fatal("scan does not end")
				}
				next, keys, err := b.Scan(ctx, cursor, []byte("scan:*"), 20)
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys {
					got[string(k)]++
				}
				if cursor = next; cursor == 0 {
					break
				}
			}
			check("scan count", len(got), len(want))
			for k, c := range got {
				if !want[k] || c != 1 {
					t.Errorf("scan: %q seen %d times", k, c)
				}
			}
			sz, _ = b.DBSize(ctx)
			check("dbsize", sz, 304) // ctr s e m + 300

			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := b.Set(cctx, k, k, SetOptions{}); !errors.Is(err, context.Canceled) {
				t.Errorf("Set with a canceled ctx: %v", err)
			}
		})
	}
}

// TestBackendIncrAtomic: concurrent INCRs of one key lose no update.
func TestBackendIncrAtomic(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			b, _ := mk(t)
			ctx := context.Background()
			const workers, each = 4, 50
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						if _, err := b.IncrBy(ctx, []byte("n"), 1); err != nil {
							t.Error(err)
							return
						}
						// Plain SETs of other keys interleave.
						b.Set(ctx, []byte("other"), []byte("x"), SetOptions{})
					}
				}()
			}
			wg.Wait()
			v, _, _ := b.Get(ctx, []byte("n"))
			if string(v) != strconv.Itoa(workers*each) {
				t.Errorf("n = %s, want %d", v, workers*each)
			}
		})
	}
}

// TestEngineBackendServer runs the RESP server over a real engine and checks
// that expiry is visible at once through the injected clock, and survives
// compaction as a purge.
func TestEngineBackendServer(t *testing.T) {
	clk := newClock()
	st := openEngine(t, clk)
	_, addr := startServer(t, testConfig(clk), NewEngineBackend(st, clk.Now))
	r := dialRaw(t, addr)
	runSteps(t, r, []step{
		cmd("+OK", "SET", "k", "v", "PX", "100"),
		cmd("+OK", "SET", "p", "v"),
		cmd(":100", "PTTL", "k"),
		cmd(":2", "DBSIZE"),
	})
	clk.Advance(100 * time.Millisecond)
	runSteps(t, r, []step{
		cmd("(nil)", "GET", "k"),
		cmd(":1", "DBSIZE"),
		cmd("(nil)", "SET", "k", "v2", "XX"),
	})
	if err := st.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	runSteps(t, r, []step{
		cmd("(nil)", "GET", "k"),
		cmd(`"v"`, "GET", "p"),
		cmd(`["0", ["p"]]`, "SCAN", "0"),
	})
}

// TestEngineBackendRechecksAfterRead: every read runs the recheck after
// reading and fails with its error, so a read that began just before its
// key left the node is not answered with what the node held.
func TestEngineBackendRechecksAfterRead(t *testing.T) {
	clk := newClock()
	e := NewEngineBackend(openEngine(t, clk), clk.Now)
	ctx := context.Background()
	k := []byte("k")
	if _, err := e.Set(ctx, k, []byte("v"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	moved := errors.New("moved away")
	var gone bool
	e.SetGuard(func(context.Context, ...[]byte) error { return nil }) // the check before passes
	e.SetRecheck(func(...[]byte) error {
		if gone {
			return moved
		}
		return nil
	})
	reads := map[string]func() error{
		"GET":        func() error { _, _, err := e.Get(ctx, k); return err },
		"MGET":       func() error { _, err := e.MGet(ctx, k); return err },
		"EXISTS":     func() error { _, err := e.Exists(ctx, k); return err },
		"EXPIRETIME": func() error { _, err := e.ExpireTime(ctx, k); return err },
		"versions":   func() error { _, err := e.Versions(ctx, [][]byte{k}); return err },
		"items":      func() error { _, _, err := e.Items(ctx, [][]byte{k}); return err },
	}
	for name, read := range reads {
		gone = false
		if err := read(); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s while owned: %v", name, err)
		}
		gone = true
		if err := read(); !errors.Is(err, moved) {
			t.Fatalf("%s after the key left: %v, want the recheck's error", name, err)
		}
	}
}
