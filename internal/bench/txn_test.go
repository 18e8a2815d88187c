package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dbx-kv/dbx/router"
)

// ownerOf is the node of threeNodes that owns key.
func ownerOf(key string) string {
	b := int(router.BucketString(key))
	for _, r := range threeNodes {
		if b >= r.start && b <= r.end {
			return r.node
		}
	}
	return ""
}

// checkPlaced refuses a transaction whose keys are not k distinct keys
// spread over min(k, 3) owners (cross) or all on one owner (same).
func checkPlaced(k int, cross, same bool) func([]string) error {
	return func(keys []string) error {
		if len(keys) != k {
			return fmt.Errorf("%d keys %v, want %d", len(keys), keys, k)
		}
		owners := map[string]bool{}
		for _, key := range keys {
			owners[ownerOf(key)] = true
		}
		switch {
		case cross && len(owners) != min(k, 3):
			return fmt.Errorf("cross-node keys %v span %d owners, want %d", keys, len(owners), min(k, 3))
		case same && len(owners) != 1:
			return fmt.Errorf("same-node keys %v span %d owners", keys, len(owners))
		}
		return nil
	}
}

func TestTxnWorkload(t *testing.T) {
	for _, tc := range []struct {
		keys        int
		cross, same bool
		cluster     bool
		pipeline    int
	}{
		{keys: 2, pipeline: 1},
		{keys: 4, pipeline: 3},
		{keys: 2, cross: true, pipeline: 1},
		{keys: 4, cross: true, pipeline: 2},
		{keys: 8, cross: true, pipeline: 1, cluster: true},
		{keys: 2, same: true, pipeline: 1},
		{keys: 8, same: true, pipeline: 4},
		{keys: 2, same: true, pipeline: 1, cluster: true},
	} {
		name := fmt.Sprintf("k%d-cross%v-same%v-cluster%v-P%d", tc.keys, tc.cross, tc.same, tc.cluster, tc.pipeline)
		t.Run(name, func(t *testing.T) {
			f := &fakeServer{slots: threeNodes, checkTxn: checkPlaced(tc.keys, tc.cross, tc.same)}
			cfg := testConfig(f.start(t))
			cfg.Workload, cfg.TxnKeys, cfg.CrossNode, cfg.SameNode = WorkloadTxn, tc.keys, tc.cross, tc.same
			cfg.Cluster, cfg.Pipeline, cfg.Requests = tc.cluster, tc.pipeline, 601
			if tc.same || tc.cross {
				cfg.Distribution = DistZipfian
			}
			res, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != 601 || res.Errors != 0 || res.Latency.Count != 601 {
				t.Fatalf("ops %d errors %d histogram %d, want 601/0/601 (%v)", res.Ops, res.Errors, res.Latency.Count, res.ErrorMessages)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.execs != 601+1 || f.txnKeys != 601*tc.keys { // +1: the probe
				t.Errorf("server saw %d EXECs writing %d keys, want 602 and %d", f.execs, f.txnKeys, 601*tc.keys)
			}
			if f.violations > 0 {
				t.Errorf("%d of 601 transactions misplaced, first: %s", f.violations, f.violation)
			}
			if f.calls["multi"] != 601+1 { // +1: the probe
				t.Errorf("MULTI calls %d, want 602", f.calls["multi"])
			}
			rc := res.Config
			if rc.TxnKeys != tc.keys || rc.CrossNode != tc.cross || rc.SameNode != tc.same {
				t.Errorf("result config %+v", rc)
			}
		})
	}
}

func TestTxnAbortedAndFailed(t *testing.T) {
	f := &fakeServer{abortEvery: 4}
	cfg := testConfig(f.start(t))
	cfg.Workload, cfg.Requests, cfg.Clients = WorkloadTxn, 400, 4
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 400 || res.Errors != 100 || res.Latency.Count != 300 {
		t.Fatalf("ops %d errors %d histogram %d, want 400/100/300", res.Ops, res.Errors, res.Latency.Count)
	}
	if len(res.ErrorMessages) != 1 || res.ErrorMessages[0] != (ErrorMessage{ErrTxnAborted.Error(), 100}) {
		t.Errorf("error messages %v, want 100x %q", res.ErrorMessages, ErrTxnAborted)
	}

	// A queued command that fails makes EXEC answer EXECABORT; the error
	// reported is the first, the SET's.
	f2 := &fakeServer{setErr: "ERR boom"}
	cfg.Addrs = []string{f2.start(t)}
	res, err = Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 400 || len(res.ErrorMessages) != 1 || res.ErrorMessages[0].Message != "SET after MULTI: ERR boom" {
		t.Errorf("errors %d %v, want 400x %q", res.Errors, res.ErrorMessages, "SET after MULTI: ERR boom")
	}
}

func TestTxnNotSupported(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     *fakeServer
		wants []string
	}{
		{"no MULTI", &fakeServer{noMulti: true}, []string{"does not serve MULTI/EXEC", "MULTI answered", "unknown command 'multi'"}},
		{"no transactional backend", &fakeServer{execErr: "ERR MULTI/EXEC is not supported by this server's backend"},
			[]string{"does not serve MULTI/EXEC", "EXEC answered", "not supported by this server's backend"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.f.start(t))
			cfg.Workload = WorkloadTxn
			res, err := Run(context.Background(), cfg, nil)
			if !errors.Is(err, ErrNotSupported) || res != nil {
				t.Fatalf("Run = %v, %v; want ErrNotSupported and no result", res, err)
			}
			for _, want := range append(tc.wants, tc.f.addr) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if n := tc.f.count("set"); n != 0 {
				t.Errorf("%d SETs reached a server that cannot run transactions", n)
			}
		})
	}
}

func TestTxnPlacementNeedsCluster(t *testing.T) {
	plain := &fakeServer{}
	one := &fakeServer{slots: []slotRange{{0, 16383, "solo"}}}
	memAddr, _ := startServer(t, "")
	// key:0 and key:1 are in buckets 2592 and 6657.
	lopsided := &fakeServer{slots: []slotRange{{0, 8000, "big"}, {8001, 16383, "small"}}}
	for _, tc := range []struct {
		name  string
		addr  string
		edit  func(*Config)
		wants []string
	}{
		{"plain redis", plain.start(t), func(c *Config) { c.CrossNode = true },
			[]string{"cross-node needs CLUSTER SLOTS", "cluster support disabled"}},
		{"plain redis same-node", plain.addr, func(c *Config) { c.SameNode = true },
			[]string{"same-node needs CLUSTER SLOTS"}},
		{"one node", one.start(t), func(c *Config) { c.CrossNode = true },
			[]string{"lists 1 node(s) [solo]", "at least 2"}},
		{"in-memory dbx", memAddr, func(c *Config) { c.CrossNode = true },
			[]string{"lists 1 node(s)"}},
		{"keys on one node", lopsided.start(t), func(c *Config) { c.CrossNode, c.Keys = true, 2 },
			[]string{"key:0 … key:1 all land on node [big]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.addr)
			cfg.Workload = WorkloadTxn
			tc.edit(&cfg)
			_, err := Run(context.Background(), cfg, nil)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Run = %v, want ErrInvalidConfig", err)
			}
			for _, want := range tc.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestPlacement(t *testing.T) {
	p, owners := newPlacement(threeNodes, 3000, false, 2)
	if owners != 3 || !slices.Equal(p.nodes, []string{"n1", "n2", "n3"}) || len(p.same) != 3 {
		t.Fatalf("owners %d nodes %v same %v", owners, p.nodes, p.same)
	}
	total := 0
	for i, pool := range p.pools {
		total += len(pool)
		if len(pool) < 800 {
			t.Errorf("node %s owns %d of 3000 keys", p.nodes[i], len(pool))
		}
		for _, k := range pool {
			if got := ownerOf(keyName(uint64(k))); got != p.nodes[i] {
				t.Fatalf("key:%d in the pool of %s, owned by %s", k, p.nodes[i], got)
			}
		}
	}
	if total != 3000 {
		t.Errorf("pools hold %d keys, want 3000", total)
	}

	// Uncovered buckets leave keys out; zipfian draws stay in the pool.
	pz, owners := newPlacement(threeNodes[:2], 3000, true, 2)
	if owners != 2 || len(pz.pools) != 2 || len(pz.zipfs) != 2 {
		t.Fatalf("owners %d pools %d zipfs %d", owners, len(pz.pools), len(pz.zipfs))
	}
	w := &worker{r: &runner{cfg: &Config{CrossNode: true, Keys: 3000}, place: pz}, rng: newTestRand()}
	keys := make([]string, 4)
	for range 200 {
		w.txnKeys(keys)
		a, b := ownerOf(keys[0]), ownerOf(keys[1])
		if a == b || a == "n3" || b == "n3" || ownerOf(keys[2]) != a || ownerOf(keys[3]) != b {
			t.Fatalf("cross-node keys %v: owners %s %s %s %s", keys, a, b, ownerOf(keys[2]), ownerOf(keys[3]))
		}
		if len(slices.Compact(slices.Sorted(slices.Values(keys)))) != 4 {
			t.Fatalf("repeated key in %v", keys)
		}
	}

	// SameNode needs a node owning TxnKeys keys.
	cfg := &Config{Addrs: []string{"x:1"}, Keys: 5, TxnKeys: 4, SameNode: true}
	p5, owners := newPlacement(threeNodes, 5, false, 4)
	largest := 0
	for _, pool := range p5.pools {
		largest = max(largest, len(pool))
	}
	if err := p5.check(cfg, owners); (largest < 4) != (err != nil) {
		t.Errorf("largest pool %d of 5 keys, check = %v", largest, err)
	}
}

func TestRunTxnAgainstMem(t *testing.T) {
	addr, b := startServer(t, "")
	cfg := testConfig(addr)
	cfg.Workload, cfg.TxnKeys = WorkloadTxn, 4
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != cfg.Requests || res.Errors != 0 {
		t.Fatalf("ops %d errors %d %v", res.Ops, res.Errors, res.ErrorMessages)
	}
	if n, err := b.DBSize(context.Background()); err != nil || n == 0 {
		t.Errorf("DBSIZE = %d, %v after transactions", n, err)
	}
}

// startRedis runs a redis-server without persistence on a free loopback
// port until the test ends, or skips the test when it is not installed.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (Debian: apt-get install redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", "")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return addr
		}
		if i == 50 {
			t.Fatalf("redis-server on %s did not answer PING in 10 s: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// commandCalls reads INFO commandstats: calls per command.
func commandCalls(t *testing.T, addr string) map[string]int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer c.Close()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int64{}
	for _, m := range regexp.MustCompile(`cmdstat_(\w+):calls=(\d+)`).FindAllStringSubmatch(info, -1) {
		calls[m[1]], _ = strconv.ParseInt(m[2], 10, 64)
	}
	return calls
}

func TestTxnAgainstRedis(t *testing.T) {
	addr := startRedis(t)
	var want int64
	for _, tc := range []struct{ keys, pipeline int }{{2, 1}, {4, 1}, {8, 1}, {2, 8}} {
		cfg := testConfig(addr)
		cfg.Workload, cfg.TxnKeys, cfg.Pipeline, cfg.Requests, cfg.ValueBytes = WorkloadTxn, tc.keys, tc.pipeline, 1000, 100
		res, err := Run(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Ops != 1000 || res.Errors != 0 || res.Latency.Count != 1000 {
			t.Fatalf("K=%d P=%d: ops %d errors %d histogram %d %v", tc.keys, tc.pipeline, res.Ops, res.Errors, res.Latency.Count, res.ErrorMessages)
		}
		want += 1000
	}
	calls := commandCalls(t, addr)
	if calls["exec"] != want+4 || calls["multi"] != want+4 || calls["set"] != 1000*(2+4+8+2) { // +4: the probes
		t.Errorf("redis saw MULTI %d EXEC %d SET %d, want %d, %d, %d", calls["multi"], calls["exec"], calls["set"], want+4, want+4, 1000*16)
	}

	cfg := testConfig(addr)
	cfg.Workload, cfg.CrossNode = WorkloadTxn, true
	if _, err := Run(context.Background(), cfg, nil); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "cluster support disabled") {
		t.Errorf("cross-node against plain redis: %v", err)
	}
}
