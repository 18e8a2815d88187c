// Package integration runs whole dbx clusters: here, three nodes in one
// process on 127.0.0.1 with every port 0.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/dbx-kv/dbx/node"
	"github.com/dbx-kv/dbx/router"
)

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nodeConfig(t *testing.T, id, dir string, join []string) node.Config {
	cfg := node.DefaultConfig()
	cfg.ID = id
	cfg.DataDir = dir
	cfg.RESPAddr, cfg.RPCAddr, cfg.GossipAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Join = join
	cfg.JoinTimeout = 15 * time.Second
	cfg.GossipProfile = "local"
	cfg.Sync = "none"
	cfg.Engine.Shards = 2
	cfg.Engine.MemtableBytes = 4 << 20
	cfg.Engine.BlockCacheBytes = 4 << 20
	cfg.Logger = slog.New(slog.NewTextHandler(testOutput(t), &slog.HandlerOptions{Level: testLogLevel}))
	return cfg
}

func startNode(t *testing.T, cfg node.Config) *node.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.ID, err)
	}
	return n
}

type cluster struct {
	nodes []*node.Node
	dirs  []string
}

func startCluster(t *testing.T, size int) *cluster {
	t.Helper()
	return startClusterWith(t, size, nil)
}

// startClusterWith starts size nodes, each config passed through edit
// (when not nil) before its node starts.
func startClusterWith(t *testing.T, size int, edit func(*node.Config)) *cluster {
	t.Helper()
	c := &cluster{}
	for i := range size {
		dir := t.TempDir()
		var join []string
		if i > 0 {
			join = []string{c.nodes[0].GossipAddr()}
		}
		cfg := nodeConfig(t, fmt.Sprintf("n%d", i+1), dir, join)
		if edit != nil {
			edit(&cfg)
		}
		n := startNode(t, cfg)
		c.nodes = append(c.nodes, n)
		c.dirs = append(c.dirs, dir)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n != nil {
				n.Close()
			}
		}
	})
	waitConverged(t, c.live(), size)
	return c
}

func (c *cluster) live() []*node.Node {
	var out []*node.Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// waitConverged waits until every node has applied the same metadata state
// with a placement over placed nodes.
func waitConverged(t *testing.T, nodes []*node.Node, placed int) {
	t.Helper()
	waitFor(t, 15*time.Second, "convergence", func() error {
		first := nodes[0].Coordinator().Current()
		if first.Table() == nil || len(first.Table().Nodes()) != placed {
			return fmt.Errorf("%s: table %v", nodes[0].ID(), first.Table())
		}
		for _, n := range nodes[1:] {
			s := n.Coordinator().Current()
			if s.Digest() != first.Digest() {
				return fmt.Errorf("%s at index %d epoch %d, %s at index %d epoch %d", n.ID(), s.Index(), s.Epoch(), nodes[0].ID(), first.Index(), first.Epoch())
			}
			if n.Table() == nil || n.Table().Digest() != first.Table().Digest() {
				return fmt.Errorf("%s routes with another table", n.ID())
			}
		}
		return nil
	})
}

func client(t *testing.T, n *node.Node) *redis.Client {
	// ReadTimeout above the server's transaction timeout (6 s): an EXEC
	// retrying under contention answers within it.
	c := redis.NewClient(&redis.Options{MaintNotificationsConfig: noMaint(), Addr: n.RESPAddr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 10 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// keyOwnedBy returns a key whose bucket node id owns.
func keyOwnedBy(t *testing.T, tab *router.Table, id, prefix string) string {
	for i := range 100000 {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if tab.OwnerString(k) == id {
			return k
		}
	}
	t.Fatalf("no key owned by %s", id)
	return ""
}

type clusterJSON struct {
	Epoch  uint64 `json:"epoch"`
	Leader string `json:"leader"`
	Nodes  []struct {
		ID       string  `json:"id"`
		Weight   float64 `json:"weight"`
		State    string  `json:"state"`
		Buckets  int     `json:"buckets"`
		RespAddr string  `json:"resp_addr"`
	} `json:"nodes"`
	Migration struct {
		Active      bool  `json:"active"`
		Pending     int   `json:"pending"`
		Done        int   `json:"done"`
		Total       int   `json:"total"`
		Bytes       int64 `json:"bytes"`
		Concurrency int   `json:"concurrency"`
		BytesPerSec int64 `json:"bytes_per_sec"`
	} `json:"migration"`
}

func getCluster(httpAddr string) (clusterJSON, error) {
	var cj clusterJSON
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + httpAddr + "/v1/cluster")
	if err != nil {
		return cj, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return cj, fmt.Errorf("status %d", resp.StatusCode)
	}
	return cj, json.NewDecoder(resp.Body).Decode(&cj)
}

func post(httpAddr, path, body string) (int, string, error) {
	hc := http.Client{Timeout: 15 * time.Second}
	resp, err := hc.Post("http://"+httpAddr+path, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String(), nil
}

func TestCluster(t *testing.T) {
	c := startCluster(t, 3)
	a, b, cc := c.nodes[0], c.nodes[1], c.nodes[2]
	ctx := context.Background()

	t.Run("Converged", func(t *testing.T) {
		tab := a.Table()
		for _, n := range c.nodes {
			if tab.Count(n.ID()) == 0 {
				t.Errorf("%s owns no bucket", n.ID())
			}
		}
		cj, err := getCluster(b.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		if cj.Epoch != tab.Epoch() || cj.Leader == "" || len(cj.Nodes) != 3 {
			t.Fatalf("/v1/cluster = %+v, want epoch %d, a leader, 3 nodes", cj, tab.Epoch())
		}
		for _, nd := range cj.Nodes {
			if nd.State != "active" || nd.RespAddr == "" || nd.Buckets != tab.Count(nd.ID) {
				t.Errorf("node %+v", nd)
			}
		}
	})

	t.Run("ReweightBeforeData", func(t *testing.T) {
		epoch := a.Table().Epoch()
		code, body, err := post(cc.HTTPAddr(), "/v1/nodes/n2/weight", `{"weight": 2}`)
		if err != nil || code != 200 {
			t.Fatalf("reweight: %d %s %v", code, body, err)
		}
		waitFor(t, 10*time.Second, "new placement", func() error {
			for _, n := range c.nodes {
				if n.Table().Epoch() <= epoch {
					return fmt.Errorf("%s at epoch %d", n.ID(), n.Table().Epoch())
				}
			}
			return nil
		})
		waitConverged(t, c.nodes, 3)
		if got, other := a.Table().Count("n2"), a.Table().Count("n1"); got <= other {
			t.Errorf("n2 (weight 2) owns %d buckets, n1 (weight 1) %d", got, other)
		}
	})

	t.Run("ClusterSlotsCoverEveryBucketOnce", func(t *testing.T) {
		for _, n := range c.nodes {
			slots, err := client(t, n).ClusterSlots(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			seen := make([]int, router.NumBuckets)
			for _, s := range slots {
				for i := s.Start; i <= s.End; i++ {
					seen[i]++
				}
				if len(s.Nodes) == 0 || s.Nodes[0].Addr == "" {
					t.Errorf("%s: slots %d-%d without address", n.ID(), s.Start, s.End)
				}
			}
			for i, k := range seen {
				if k != 1 {
					t.Fatalf("%s: bucket %d covered %d times", n.ID(), i, k)
				}
			}
		}
	})

	t.Run("Forwarding", func(t *testing.T) {
		key := keyOwnedBy(t, a.Table(), b.ID(), "fwd")
		if err := client(t, a).Set(ctx, key, "v1", 0).Err(); err != nil {
			t.Fatalf("SET on %s of a key of %s: %v", a.ID(), b.ID(), err)
		}
		if v, err := client(t, cc).Get(ctx, key).Result(); err != nil || v != "v1" {
			t.Fatalf("GET on %s = %q, %v", cc.ID(), v, err)
		}
		if n, err := client(t, b).DBSize(ctx).Result(); err != nil || n < 1 {
			t.Fatalf("DBSIZE on owner %s = %d, %v", b.ID(), n, err)
		}
		// Multi-key commands across owners.
		keys := []string{keyOwnedBy(t, a.Table(), "n1", "m"), keyOwnedBy(t, a.Table(), "n2", "m"), keyOwnedBy(t, a.Table(), "n3", "m")}
		if err := client(t, cc).MSet(ctx, keys[0], "x", keys[1], "y", keys[2], "z").Err(); err != nil {
			t.Fatal(err)
		}
		vals, err := client(t, a).MGet(ctx, keys[0], keys[1], keys[2], "missing-key").Result()
		if err != nil || fmt.Sprint(vals) != "[x y z <nil>]" {
			t.Fatalf("MGET = %v, %v", vals, err)
		}
		if n, err := client(t, b).Exists(ctx, keys...).Result(); err != nil || n != 3 {
			t.Fatalf("EXISTS = %d, %v", n, err)
		}
		if n, err := client(t, b).Del(ctx, keys[0], keys[1], keys[1]).Result(); err != nil || n != 2 {
			t.Fatalf("DEL = %d, %v", n, err)
		}
		if n, err := client(t, cc).Incr(ctx, keyOwnedBy(t, a.Table(), "n1", "ctr")).Result(); err != nil || n != 1 {
			t.Fatalf("INCR = %d, %v", n, err)
		}
	})

	t.Run("AdminRejectsBadPlacementRequests", func(t *testing.T) {
		for _, p := range []struct{ path, body string }{{"/v1/nodes/n3/weight", `{"weight": -1}`}, {"/v1/nodes/nosuch/drain", ``}} {
			code, body, err := post(a.HTTPAddr(), p.path, p.body)
			if err != nil || code < 400 || code >= 500 {
				t.Errorf("POST %s = %d %s %v, want a 4xx", p.path, code, body, err)
			}
		}
	})

	t.Run("GoRedisClusterClient", func(t *testing.T) {
		var addrs []string
		for _, n := range c.nodes {
			addrs = append(addrs, n.RESPAddr())
		}
		rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaxRedirects: 0})
		defer rc.Close()
		for i := range 200 {
			if err := rc.Set(ctx, fmt.Sprintf("cc-%d", i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 200 {
			k := fmt.Sprintf("cc-%d", i)
			if v, err := client(t, c.nodes[i%3]).Get(ctx, k).Int(); err != nil || v != i {
				t.Fatalf("GET %s = %d, %v", k, v, err)
			}
			if v, err := rc.Get(ctx, k).Int(); err != nil || v != i {
				t.Fatalf("cluster GET %s = %d, %v", k, v, err)
			}
		}
	})

	t.Run("LeaderFailoverAndRestart", func(t *testing.T) {
		li := -1
		for i, n := range c.nodes {
			if n.IsLeader() {
				li = i
			}
		}
		if li < 0 {
			t.Fatal("no leader")
		}
		old := c.nodes[li]
		tab := old.Table()
		oldKey := keyOwnedBy(t, tab, old.ID(), "survivor")
		if err := client(t, c.nodes[(li+1)%3]).Set(ctx, oldKey, "kept", 0).Err(); err != nil {
			t.Fatal(err)
		}
		oldID := old.ID()
		if err := old.Close(); err != nil {
			t.Logf("close %s: %v", oldID, err)
		}
		c.nodes[li] = nil
		stopped := time.Now()
		rest := c.live()
		waitFor(t, 5*time.Second, "new leader", func() error {
			for _, n := range rest {
				if n.IsLeader() {
					return nil
				}
			}
			return fmt.Errorf("no leader among %d nodes", len(rest))
		})
		t.Logf("new leader after %s", time.Since(stopped))
		// Every live node learns the new leader (a follower hears of it
		// with the leader's first heartbeat, a moment after the election).
		waitFor(t, 5*time.Second, "every node reports the new leader", func() error {
			for _, n := range rest {
				cj, err := getCluster(n.HTTPAddr())
				if err != nil || cj.Leader == "" || cj.Leader == oldID {
					return fmt.Errorf("/v1/cluster on %s: leader %q, %v", n.ID(), cj.Leader, err)
				}
			}
			return nil
		})
		// The stopped node's keys fail within the request bound (2 s).
		start := time.Now()
		err := client(t, rest[0]).Get(ctx, oldKey).Err()
		if took := time.Since(start); err == nil || took > 3*time.Second {
			t.Fatalf("GET of a key of the stopped node: %v after %s, want an error within the 2 s bound", err, took)
		}
		t.Logf("key of stopped node: %v after %s", err, time.Since(start))
		// Other keys still work.
		k := keyOwnedBy(t, tab, rest[0].ID(), "alive")
		if err := client(t, rest[1]).Set(ctx, k, "ok", 0).Err(); err != nil {
			t.Fatal(err)
		}

		// Restart with the same data dir, new ports: it rejoins with its data.
		cfg := nodeConfig(t, oldID, c.dirs[li], []string{rest[0].GossipAddr()})
		back := startNode(t, cfg)
		c.nodes[li] = back
		waitFor(t, 10*time.Second, "restarted node readable", func() error {
			for _, n := range c.nodes {
				v, err := client(t, n).Get(ctx, oldKey).Result()
				if err != nil || v != "kept" {
					return fmt.Errorf("GET on %s = %q, %v", n.ID(), v, err)
				}
			}
			return nil
		})
		waitFor(t, 10*time.Second, "restarted node active", func() error {
			cj, err := getCluster(rest[0].HTTPAddr())
			if err != nil {
				return err
			}
			for _, nd := range cj.Nodes {
				if nd.State != "active" {
					return fmt.Errorf("%s is %s", nd.ID, nd.State)
				}
			}
			return nil
		})
		waitConverged(t, c.nodes, 3)
	})
}

// testLogLevel is the nodes' log level in in-process tests.
var testLogLevel = func() slog.Level {
	if os.Getenv("DBX_TEST_LOG") != "" {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}()

// gatedWriter passes writes to t.Output() until the test's cleanup closes
// it. Node.Close returns while memberlist may still run a probe goroutine
// that logs (memberlist's Shutdown does not wait for it); a write to
// t.Output() after the test completed panics.
type gatedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

// testOutput returns a writer to t.Output() that drops writes once t's
// cleanups (which close the nodes) have run.
func testOutput(t *testing.T) io.Writer {
	g := &gatedWriter{w: t.Output()}
	t.Cleanup(func() {
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
	})
	return g
}

// noMaint turns off go-redis's maintenance-notifications handshake. dbx
// does not speak it; in auto mode go-redis then rewrites the client's
// options on a new connection while Watch clones them — a data race
// inside go-redis (v9.17) that -race reports when a node restarts under a
// WATCH workload.
func noMaint() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}
