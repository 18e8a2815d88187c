package server

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/router"
	"github.com/redis/go-redis/v9"
)

func TestGoRedisClient(t *testing.T) {
	cfg := testConfig(nil)
	cfg.RequirePass = "pw"
	_, addr := startServer(t, cfg, newMemBackend(nil))
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: addr, Password: "pw", ClientName: "t1", MaxRetries: -1})
	defer c.Close()

	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Set(ctx, "k", "v", 0).Err())
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET: %q %v", v, err)
	}
	if _, err := c.Get(ctx, "missing").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET missing: %v", err)
	}
	must(c.Set(ctx, "e", "v", 10*time.Second).Err())
	if d, err := c.TTL(ctx, "e").Result(); err != nil || d != 10*time.Second {
		t.Fatalf("TTL: %v %v", d, err)
	}
	if d, err := c.PTTL(ctx, "e").Result(); err != nil || d <= 9*time.Second {
		t.Fatalf("PTTL: %v %v", d, err)
	}
	if ok, err := c.Persist(ctx, "e").Result(); err != nil || !ok {
		t.Fatalf("PERSIST: %v %v", ok, err)
	}
	if d, _ := c.TTL(ctx, "e").Result(); d != -1 {
		t.Fatalf("TTL after PERSIST: %v", d)
	}
	if ok, err := c.SetNX(ctx, "k", "x", 0).Result(); err != nil || ok {
		t.Fatalf("SETNX existing: %v %v", ok, err)
	}
	if ok, err := c.SetXX(ctx, "k", "x", time.Minute).Result(); err != nil || !ok {
		t.Fatalf("SETXX: %v %v", ok, err)
	}
	if ok, err := c.SetNX(ctx, "nx", "1", 0).Result(); err != nil || !ok {
		t.Fatalf("SETNX new: %v %v", ok, err)
	}
	if n, err := c.Incr(ctx, "nx").Result(); err != nil || n != 2 {
		t.Fatalf("INCR: %v %v", n, err)
	}
	if n, err := c.DecrBy(ctx, "nx", 5).Result(); err != nil || n != -3 {
		t.Fatalf("DECRBY: %v %v", n, err)
	}
	if err := c.Incr(ctx, "k").Err(); err == nil || err.Error() != "ERR value is not an integer or out of range" {
		t.Fatalf("INCR non-int: %v", err)
	}
	must(c.MSet(ctx, "a", "1", "b", "2").Err())
	vs, err := c.MGet(ctx, "a", "zz", "b").Result()
	if err != nil || len(vs) != 3 || vs[0] != "1" || vs[1] != nil || vs[2] != "2" {
		t.Fatalf("MGET: %v %v", vs, err)
	}
	if n, err := c.Exists(ctx, "a", "b", "zz").Result(); err != nil || n != 2 {
		t.Fatalf("EXISTS: %v %v", n, err)
	}
	if n, err := c.Del(ctx, "a", "zz").Result(); err != nil || n != 1 {
		t.Fatalf("DEL: %v %v", n, err)
	}
	if ok, err := c.Expire(ctx, "b", time.Minute).Result(); err != nil || !ok {
		t.Fatalf("EXPIRE: %v %v", ok, err)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 4 {
		t.Fatalf("DBSIZE: %v %v", n, err)
	}
	var all []string
	iter := c.Scan(ctx, 0, "*", 2).Iterator()
	for iter.Next(ctx) {
		all = append(all, iter.Val())
	}
	if iter.Err() != nil || len(all) != 4 {
		t.Fatalf("SCAN: %v %v", all, iter.Err())
	}
	if s, err := c.Info(ctx, "server").Result(); err != nil || len(s) == 0 {
		t.Fatalf("INFO: %v", err)
	}
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil || len(slots) != 1 || slots[0].Start != 0 || slots[0].End != router.NumBuckets-1 {
		t.Fatalf("CLUSTER SLOTS: %+v %v", slots, err)
	}
	if n, err := c.ClusterKeySlot(ctx, "foo").Result(); err != nil || n != 12182 {
		t.Fatalf("CLUSTER KEYSLOT: %v %v", n, err)
	}
	if _, err := c.Command(ctx).Result(); err != nil {
		t.Fatalf("COMMAND: %v", err)
	}
	if name, err := c.ClientGetName(ctx).Result(); err != nil || name != "t1" {
		t.Fatalf("CLIENT GETNAME: %q %v", name, err)
	}
	// Pipelines.
	p := c.Pipeline()
	for i := 0; i < 100; i++ {
		p.Set(ctx, "p"+strconv.Itoa(i), i, 0)
	}
	get := p.Get(ctx, "p42")
	if _, err := p.Exec(ctx); err != nil || get.Val() != "42" {
		t.Fatalf("pipeline: %v %q", err, get.Val())
	}

	// A wrong password fails cleanly.
	bad := redis.NewClient(&redis.Options{Addr: addr, Password: "nope", MaxRetries: -1})
	defer bad.Close()
	if err := bad.Ping(ctx).Err(); err == nil {
		t.Fatal("PING with a wrong password succeeded")
	}
}

// TestGoRedisClusterClient runs two servers, each owning half the buckets
// with its own in-memory backend, and checks that go-redis's ClusterClient routes
// every key to its owner by itself (from CLUSTER SLOTS).
func TestGoRedisClusterClient(t *testing.T) {
	lnA, _ := net.Listen("tcp", "127.0.0.1:0")
	lnB, _ := net.Listen("tcp", "127.0.0.1:0")
	addrA, addrB := lnA.Addr().String(), lnB.Addr().String()
	lnA.Close()
	lnB.Close()
	view := func(self string) ClusterView {
		return ClusterView{Epoch: 7, Self: self, Nodes: []ClusterNode{
			{ID: "node-a", Addr: addrA, Ranges: []BucketRange{{Start: 0, End: 8191}}},
			{ID: "node-b", Addr: addrB, Ranges: []BucketRange{{Start: 8192, End: router.NumBuckets - 1}}},
		}}
	}
	ma, mb := newMemBackend(nil), newMemBackend(nil)
	ma.SetClusterView(view("node-a"))
	mb.SetClusterView(view("node-b"))
	for _, x := range []struct {
		b    Backend
		addr string
	}{{ma, addrA}, {mb, addrB}} {
		s, err := New(testConfig(nil), x.b)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", x.addr)
		if err != nil {
			t.Skipf("port reuse raced: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		t.Cleanup(func() { s.Close(); <-done })
	}
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addrA}, MaxRedirects: 0})
	defer cc.Close()
	for i := 0; i < 200; i++ {
		k := "key" + strconv.Itoa(i)
		if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	for i := 0; i < 200; i++ {
		k := "key" + strconv.Itoa(i)
		owner := ma
		if router.BucketString(k) >= 8192 {
			owner = mb
		}
		if _, _, err := owner.Get(ctx, []byte(k)); err != nil {
			t.Fatalf("%s (bucket %d) not on its owner: %v", k, router.BucketString(k), err)
		}
		if v, err := cc.Get(ctx, k).Result(); err != nil || v != strconv.Itoa(i) {
			t.Fatalf("GET %s: %q %v", k, v, err)
		}
	}
	na, _ := ma.DBSize(ctx)
	nb, _ := mb.DBSize(ctx)
	if na+nb != 200 || na == 0 || nb == 0 {
		t.Fatalf("keys split %d/%d", na, nb)
	}
	if err := cc.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
}

// TestGoRedisClusterClientMoved checks go-redis follows a MOVED reply.
func TestGoRedisClusterClientMoved(t *testing.T) {
	mem := newMemBackend(nil)
	_, addr := startServer(t, testConfig(nil), &movedOnce{memBackend: mem})
	mem.SetClusterView(SingleNodeView("solo", addr))
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	defer cc.Close()
	ctx := context.Background()
	if err := cc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := cc.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET after MOVED: %q %v", v, err)
	}
}

// movedOnce answers the first Get with MOVED to its own address.
type movedOnce struct {
	*memBackend
	moved atomic.Bool
}

func (m *movedOnce) Get(ctx context.Context, key []byte) ([]byte, int64, error) {
	if m.moved.CompareAndSwap(false, true) {
		return nil, 0, &MovedError{Bucket: router.Bucket(key), Addr: m.ClusterView().Nodes[0].Addr}
	}
	return m.memBackend.Get(ctx, key)
}
