package kvtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/kv"
)

// Keyspace is what the conformance suite checks: the methods kv.Engine and
// Mem share, with kv.Engine's documentation. Every method may be called
// from any number of goroutines at once.
type Keyspace interface {
	Get(ctx context.Context, key []byte) (value []byte, expireAtMs int64, err error)
	Set(ctx context.Context, key, value []byte, opt kv.SetOptions) (kv.SetResult, error)
	Del(ctx context.Context, keys ...[]byte) (int, error)
	Exists(ctx context.Context, keys ...[]byte) (int, error)
	MGet(ctx context.Context, keys ...[]byte) ([][]byte, error)
	MSet(ctx context.Context, pairs ...kv.KV) error
	IncrBy(ctx context.Context, key []byte, delta int64) (int64, error)
	Expire(ctx context.Context, key []byte, atMs int64) (bool, error)
	Persist(ctx context.Context, key []byte) (bool, error)
	ExpireTime(ctx context.Context, key []byte) (int64, error)
	DBSize(ctx context.Context) (int64, error)
	Scan(ctx context.Context, cursor uint64, pattern []byte, count int) (next uint64, keys [][]byte, err error)
	Versions(ctx context.Context, keys [][]byte) ([]uint64, error)
	Exec(ctx context.Context, req *kv.TxRequest, run kv.TxFunc) error
}

// Clock is a settable clock for expiry tests, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at a fixed instant (Unix ms 1,700,000,000,000).
func NewClock() *Clock { return &Clock{t: time.UnixMilli(1_700_000_000_000)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Run is the conformance suite of a keyspace: open returns an empty one
// whose expiry uses the clock now (it may register cleanups on t). The
// same suite passes on kv.Engine and on Mem, so tests run against Mem
// stand for the engine.
func Run(t *testing.T, open func(t *testing.T, now func() time.Time) Keyspace) {
	t.Run("Strings", func(t *testing.T) {
		clk := NewClock()
		testStrings(t, open(t, clk.Now), clk)
	})
	t.Run("IncrAtomic", func(t *testing.T) { testIncrAtomic(t, open(t, NewClock().Now)) })
	t.Run("Watch", func(t *testing.T) {
		clk := NewClock()
		testWatch(t, open(t, clk.Now), clk)
	})
}

func testStrings(t *testing.T, b Keyspace, clk *Clock) {
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
	check("get missing", errors.Is(err, kv.ErrNotFound), true)
	r, err := b.Set(ctx, k, []byte("v1"), kv.SetOptions{XX: true})
	check("set xx missing", fmt.Sprint(r.Applied, err), "false <nil>")
	r, _ = b.Set(ctx, k, []byte("v1"), kv.SetOptions{NX: true, ExpireAtMs: now + 1000})
	check("set nx", r.Applied, true)
	v, at, _ := b.Get(ctx, k)
	check("get", string(v)+" "+strconv.FormatInt(at-now, 10), "v1 1000")
	r, _ = b.Set(ctx, k, []byte("v2"), kv.SetOptions{NX: true, Get: true})
	check("set nx existing", fmt.Sprintf("%v %s %v", r.Applied, r.Old, r.OldFound), "false v1 true")
	r, _ = b.Set(ctx, k, []byte("v2"), kv.SetOptions{XX: true, KeepTTL: true})
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
	check("expiretime expired", errors.Is(err, kv.ErrNotFound), true)
	sz, _ := b.DBSize(ctx)
	check("dbsize", sz, 0)

	now = clk.Now().UnixMilli()
	b.Set(ctx, k, []byte("10"), kv.SetOptions{ExpireAtMs: now + 5000})
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
	b.Set(ctx, []byte("s"), []byte("abc"), kv.SetOptions{})
	_, err = b.IncrBy(ctx, []byte("s"), 1)
	check("incr non-int", errors.Is(err, kv.ErrNotInteger), true)
	b.Set(ctx, []byte("e"), []byte(""), kv.SetOptions{})
	_, err = b.IncrBy(ctx, []byte("e"), 1)
	check("incr empty", errors.Is(err, kv.ErrNotInteger), true)
	b.Set(ctx, []byte("m"), []byte("9223372036854775807"), kv.SetOptions{})
	_, err = b.IncrBy(ctx, []byte("m"), 1)
	check("incr overflow", errors.Is(err, kv.ErrOverflow), true)

	err = b.MSet(ctx, kv.KV{Key: []byte("a"), Value: []byte("1")}, kv.KV{Key: []byte("b"), Value: []byte("2")}, kv.KV{Key: []byte("a"), Value: []byte("3")})
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
		b.Set(ctx, []byte(key), []byte("v"), kv.SetOptions{})
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
	if _, err := b.Set(cctx, k, k, kv.SetOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Set with a canceled ctx: %v", err)
	}
}

// testIncrAtomic: concurrent INCRs of one key lose no update.
func testIncrAtomic(t *testing.T, b Keyspace) {
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
				b.Set(ctx, []byte("other"), []byte("x"), kv.SetOptions{})
			}
		}()
	}
	wg.Wait()
	v, _, _ := b.Get(ctx, []byte("n"))
	if string(v) != strconv.Itoa(workers*each) {
		t.Errorf("n = %s, want %d", v, workers*each)
	}
}

// testWatch: versions are 0 for missing keys and change with every write
// (the same value rewritten too); Exec checks them before run, commits
// run's writes and deletes atomically, and writes nothing when run fails.
func testWatch(t *testing.T, b Keyspace, clk *Clock) {
	ctx := context.Background()
	a, z, gone := []byte("a"), []byte("z"), []byte("gone")
	versions := func(keys ...[]byte) []uint64 {
		t.Helper()
		vs, err := b.Versions(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
	if vs := versions(a, z); vs[0] != 0 || vs[1] != 0 {
		t.Fatalf("versions of missing keys: %v, want 0s", vs)
	}
	b.Set(ctx, a, []byte("1"), kv.SetOptions{})
	b.Set(ctx, gone, []byte("x"), kv.SetOptions{ExpireAtMs: clk.Now().UnixMilli() + 10})
	v1 := versions(a)[0]
	if v1 == 0 {
		t.Fatal("version of a present key is 0")
	}
	b.Set(ctx, a, []byte("1"), kv.SetOptions{})
	v2 := versions(a)[0]
	if v2 == v1 || v2 == 0 {
		t.Fatalf("rewriting the same value: version %d → %d, want a change", v1, v2)
	}
	clk.Advance(10 * time.Millisecond)
	if vs := versions(gone); vs[0] != 0 {
		t.Errorf("version of an expired key: %d, want 0", vs[0])
	}

	// A stale watch fails before run and writes nothing.
	ran := false
	err := b.Exec(ctx, &kv.TxRequest{Keys: [][]byte{a, z}, Reads: [][]byte{a}, Watch: []kv.WatchedKey{{Key: a, Version: v1}}},
		func(map[string]kv.TxItem) ([]kv.TxWrite, error) {
			ran = true
			return []kv.TxWrite{{Key: z, Value: []byte("no")}}, nil
		})
	if !errors.Is(err, kv.ErrWatchFailed) || ran {
		t.Fatalf("Exec with a stale watch: %v (run called: %v), want ErrWatchFailed before run", err, ran)
	}
	if n, _ := b.Exists(ctx, z); n != 0 {
		t.Fatal("a failed Exec wrote")
	}

	// A current watch: run sees the values, its writes commit together.
	at := clk.Now().UnixMilli() + 5000
	err = b.Exec(ctx, &kv.TxRequest{Keys: [][]byte{a, z, gone}, Reads: [][]byte{a, z, gone}, Watch: []kv.WatchedKey{{Key: a, Version: v2}, {Key: z}}},
		func(items map[string]kv.TxItem) ([]kv.TxWrite, error) {
			if it := items["a"]; !it.Found || string(it.Value) != "1" || items["z"].Found || items["gone"].Found {
				t.Errorf("run's items: %+v", items)
			}
			return []kv.TxWrite{{Key: a, Delete: true}, {Key: z, Value: []byte("2"), ExpireAtMs: at}}, nil
		})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if _, _, err := b.Get(ctx, a); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("a after Exec deleted it: %v", err)
	}
	if v, exp, err := b.Get(ctx, z); string(v) != "2" || exp != at || err != nil {
		t.Errorf("z after Exec: %q %d %v", v, exp, err)
	}
	if vs := versions(a, z); vs[0] != 0 || vs[1] == 0 {
		t.Errorf("versions after Exec: %v, want [0 non-0]", vs)
	}

	// run's error is Exec's, and nothing is written.
	boom := errors.New("boom")
	vz := versions(z)[0]
	err = b.Exec(ctx, &kv.TxRequest{Keys: [][]byte{z}, Reads: [][]byte{z}}, func(map[string]kv.TxItem) ([]kv.TxWrite, error) {
		return []kv.TxWrite{{Key: z, Delete: true}}, boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Exec whose run fails: %v, want its error", err)
	}
	if vs := versions(z); vs[0] != vz {
		t.Errorf("z's version after a failed run: %d, want %d", vs[0], vz)
	}
}
